"""Who creates a run's `SimulatorQueue` and who gets it: `build_runner` gives its runner the queue its env's simulator
joined (`resolve_env`); two runners built apart get two queues; a trainer's simulator, runner and held-out evaluator share the
trainer's queue, and two trainers share none."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from agentrl.core.chat_format import ChatFormatter
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.rollout.build import build_runner, resolve_env
from agentrl.rollout.runner import EpisodeSpec
from agentrl.sim.batching import BatchingChatModel, SimulatorQueue

CONSULT = "agentrl/Consultation-v0"
PATIENT = {"patient": "llm", "max_turns": 2}
SIM = SimpleNamespace(model="tiny-random", batch=True, max_batch=8, max_wait_s=0.05, kv_store=0, dtype="float32")


def _runner(tiny, env=None, **kw):
    model, tok = tiny
    return build_runner(
        env if env is not None else resolve_env(CONSULT, PATIENT, SIM),
        HFPolicy(model, tok),
        ChatFormatter(tok),
        SamplingParams(temperature=1.0, max_new_tokens=4),
        env_workers=2,
        **kw,
    )


def _simulator(runner) -> BatchingChatModel:
    return runner.make_env().unwrapped.simulator


def test_build_runner_serves_the_queue_its_simulator_joined(tiny) -> None:
    a, b = _runner(tiny), _runner(tiny)
    assert a.simulator_queue.models == [_simulator(a)] and b.simulator_queue.models == [_simulator(b)]
    assert a.simulator_queue is not b.simulator_queue  # two runs, nothing shared
    sim = _simulator(a)
    threads: set[int] = set()
    answer = sim.model.complete_rows
    sim.model.complete_rows = lambda *x, **k: (threads.add(threading.get_ident()), answer(*x, **k))[1]
    eps = a.collect([EpisodeSpec(seed=i, group_id=i) for i in range(2)])
    assert len(eps) == 2 and sim.requests >= 2
    assert threads == {threading.get_ident()}, "the simulator's batches ran on an env thread, not the runner's"


def test_a_resolved_env_brings_its_queue_and_a_given_queue_is_used(tiny) -> None:
    queue = SimulatorQueue()
    env = resolve_env(CONSULT, PATIENT, SIM, queue)
    assert env.kwargs["simulator"].queue is queue and env.simulator == "tiny-random"
    assert _runner(tiny, env).simulator_queue is queue  # found from the kwargs' simulator
    assert _runner(tiny, env, simulator_queue=queue).simulator_queue is queue
    assert _runner(tiny, resolve_env(CONSULT, {"max_turns": 2})).simulator_queue.models == []  # no simulator: its own


def test_a_trainer_and_its_held_out_eval_share_one_queue_and_two_trainers_none(tmp_path: Path) -> None:
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    def trainer(name: str) -> Trainer:
        return Trainer(
            load_config(
                None,
                [
                    "model=tiny-random",
                    f"env.id={CONSULT}",
                    "env.kwargs={patient: llm, max_turns: 2}",
                    "env.simulator.model=tiny-random",
                    "algorithm.name=grpo",
                    "rollout.groups=1",
                    "rollout.group_size=2",
                    "rollout.max_new_tokens=2",
                    "rollout.env_workers=2",
                    "ppo.minibatch_size=2",
                    "ppo.micro_batch_size=2",
                    "train.eval_every=1",
                    "train.eval_tasks=1",
                    f"train.run_dir={tmp_path / name}",
                ],
            ),
            console=False,
        )

    t1, t2 = trainer("a"), trainer("b")
    q = t1.simulator_queue
    assert t1.runner.simulator_queue is q and t1.held_out.runner.simulator_queue is q
    assert q.models == [_simulator(t1.runner)] and _simulator(t1.held_out.runner) is _simulator(t1.runner)
    assert t2.simulator_queue is not q and t2.simulator_queue.models == [_simulator(t2.runner)]
    t1.close()
    t2.close()
