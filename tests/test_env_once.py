"""Each env is built once per run (issue 32, item 5): `resolve_env` checks the id, the kwargs' names (one reading of
the constructor's signature) and their values with one probe instance, which also gives the task list; the runner,
the task draws and the held-out evaluator take that record. A run builds the env as many times as its runners keep
envs, plus one check instance when a simulator is set (the probe then holds a stand-in for its model)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest
from test_task_draws import Families

import agentrl.core.registry as registry
import agentrl.rollout.build as build
from agentrl.core.chat import BaseChatModel
from agentrl.core.errors import UsageError
from agentrl.core.registry import load_env_plugins, register_scripted
from agentrl.eval.evaluate import evaluate
from agentrl.rollout.build import resolve_env
from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer

ENV_ID = "test_env_once:Counted-v0"
TASKS = {"train": ["a-0", "a-1", "b-0", "b-1"], "test": ["e-0", "e-1", "e-2"]}
BUILT: Counter[str] = Counter()  # constructions by split; "stand-in" for those with check_simulator's stand-in


class Counted(Families):
    """Families' env (reply "1" or "2" `turns` times) with splits of its own; counts its constructions. `user="llm"`
    takes a simulator (never called) the way FlightBooking's does."""

    def __init__(self, turns: int = 2, split: str = "train", user: str = "rule", simulator=None, render_mode=None):
        if split not in TASKS:
            raise ValueError(f"split must be one of {', '.join(TASKS)}, got {split!r}")
        if (user == "llm") != (simulator is not None):
            raise ValueError(f"user={user!r} and simulator={type(simulator).__name__}: user='llm' takes one")
        if simulator is not None and not isinstance(simulator, BaseChatModel):
            raise ValueError("simulator must be a chat model")
        stand_in = type(simulator).__name__ == "_ModelNotLoaded"
        BUILT["stand-in" if stand_in else split] += 1
        super().__init__(turns=turns, render_mode=render_mode)
        self.split, self.simulator = split, simulator

    def task_ids(self) -> list[str]:
        return list(TASKS[self.split])

    def task_family(self, task_id: str) -> str | None:
        return task_id.split("-")[0]

    def setup(self, options):
        self.task_id = self.choose_task_id(options, TASKS[self.split])
        self.state = {"picks": []}
        return "Reply with one digit: 1 or 2.", f"Task {self.task_id}. Pick one."


load_env_plugins()
if "Counted-v0" not in gym.registry:
    gym.register(id="Counted-v0", entry_point=Counted)
register_scripted("Counted-v0", {"ones": lambda env: lambda convo: "1"})


@pytest.fixture
def inspections(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts readings of the constructor's signature (`env_kwarg_names`, wherever it is called from) and clears
    the construction counts."""
    BUILT.clear()
    n: Counter[str] = Counter()
    real = registry.env_kwarg_names

    def counted(env_id: str):
        n["signature"] += 1
        return real(env_id)

    monkeypatch.setattr(registry, "env_kwarg_names", counted)
    monkeypatch.setattr(build, "env_kwarg_names", counted)
    return n


TRAIN = [
    "model=tiny-random",
    f"env.id={ENV_ID}",
    "algorithm.name=grpo",
    "rollout.groups=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=2",
    "rollout.constrained=true",
    "rollout.task_draw=stratified",  # reads the task list: before, a probe env of its own
    "ppo.minibatch_size=2",
    "ppo.micro_batch_size=2",
    "train.updates=2",
    "train.log_episodes=0",
    "train.eval_every=1",
    "train.eval_tasks=2",
]


def test_a_training_run_builds_each_env_once(tmp_path: Path, inspections: Counter[str]) -> None:
    """Training envs: one per episode of an update (the runner keeps them: the probe is the first); held-out envs
    (another split): one per held-out task, its probe the first. No check instance, one signature reading."""
    trainer = Trainer(
        load_config(None, TRAIN + ["train.eval_env_kwargs={split: test}", f"train.run_dir={tmp_path / 'r'}"]),
        console=False,
    )
    assert BUILT == {"train": 1, "test": 1}, "the probes, before any episode"
    assert trainer.task_draws.names == ["a", "b"] and [t for _, t in trainer.held_out.tasks] == ["e-0", "e-1"]
    trainer.run()
    assert BUILT == {"train": 4, "test": 2}, BUILT  # 2 groups x 2 episodes; 2 held-out tasks
    assert (len(trainer.runner._pool), len(trainer.held_out.runner._pool)) == (4, 2)
    assert inspections["signature"] == 1
    trainer.close()


def test_a_training_run_with_a_simulator_adds_one_check_instance(tmp_path: Path, inspections: Counter[str]) -> None:
    """With a simulator the probe holds a stand-in for its model (checked before the model loads), so it is the one
    instance that runs no episode; the held-out env (same kwargs) shares the run's record."""
    cfg = load_config(
        None,
        TRAIN
        + [
            "env.kwargs={user: llm}",
            "env.simulator.model=tiny-random",
            "env.simulator.batch=false",
            f"train.run_dir={tmp_path / 'r'}",
        ],
    )
    trainer = Trainer(cfg, console=False)
    assert trainer.eval_env is trainer.env and trainer.env.simulator == "tiny-random"
    trainer.run()
    assert BUILT["stand-in"] == 1
    assert BUILT["train"] == len(trainer.runner._pool) + len(trainer.held_out.runner._pool) == 4 + 2
    assert inspections["signature"] == 1
    trainer.close()


def test_eval_builds_the_env_once_per_episode_it_runs(inspections: Counter[str]) -> None:
    res = evaluate(ENV_ID, "scripted:ones", tasks=3, k=2)
    assert res.success_rate == 1.0 and res.tasks == 3 and res.trials == 2
    assert BUILT == {"train": 1}  # a text agent plays every episode on the probe
    BUILT.clear()
    res = evaluate(
        ENV_ID, "tiny-random", env_kwargs={"split": "test"}, tasks=2, k=1, max_new_tokens=2, constrained=True
    )
    assert res.tasks == 2 and BUILT == {"test": 2}  # the runner's two envs, the probe the first
    assert inspections["signature"] == 2  # once per run
    with pytest.raises(UsageError, match="on_episode is for text agents"):  # before anything is built
        evaluate(ENV_ID, "tiny-random", on_episode=lambda env, ep: None)


def test_bad_ids_and_kwargs_still_fail_before_anything_is_built(inspections: Counter[str]) -> None:
    with pytest.raises(UsageError, match="unknown environment 'agentrl/Nope-v0'; registered:"):
        resolve_env("agentrl/Nope-v0", {})
    with pytest.raises(UsageError, match=f"unknown env kwarg 'bogus' for {ENV_ID}; allowed: turns, split"):
        resolve_env(ENV_ID, {"bogus": 1})
    with pytest.raises(TypeError, match="unknown env kwarg 'nope'"):
        resolve_env(ENV_ID, {}, check_also={"nope": 1})
    assert not BUILT
    with pytest.raises(UsageError, match=f"{ENV_ID}: split must be one of train, test, got 'dev'"):
        resolve_env(ENV_ID, {"split": "dev"})
    env = resolve_env(ENV_ID, {})
    with pytest.raises(UsageError, match="unknown env kwarg 'bogus'"):
        env.with_kwargs({"bogus": 1})
    with pytest.raises(UsageError, match="split must be one of"):
        env.with_kwargs({"split": "dev"})
    assert env.with_kwargs({}) is env and env.with_kwargs({"split": "test"}).task_ids == TASKS["test"]
    with pytest.raises(UsageError, match="takes no simulator"):
        resolve_env("agentrl/CreditChain-v0", {}, load_config(None, ["env.simulator.model=tiny-random"]).env.simulator)


def test_sft_builds_its_env_once_through_the_cli(tmp_path: Path, inspections: Counter[str]) -> None:
    """`agentrl sft` from a scripted source with a held-out evaluation: the CLI's check resolves the env, and the
    run plays every demonstration on that probe (one train-split env) and evaluates on one test-split env per
    held-out task, its probe the first; the constructor's signature is read for the --split check and the record."""
    from agentrl.cli import main

    args = ["sft", "--from", "scripted:ones", "--env", ENV_ID, "--split", "train", "--model", "tiny-random"]
    args += ["--out", str(tmp_path / "sft"), "--epochs", "1", "train.eval_every=1", "train.eval_tasks=2"]
    assert main(args) == 0
    assert BUILT == {"train": 1, "test": 2}, BUILT  # before: a check env, the demonstrating env, the held-out probe
    assert inspections["signature"] == 2
