"""Every config key reaches what it configures (issue 32): a key that is validated and documented but read by
nothing fails here.

`READERS` maps each leaf key of `Config` to a check that the component meant to read it saw its non-default
value, or to a string saying why no per-key check exists. `test_every_key_has_a_reader` fails when a key is added
to the config without an entry. The checks share four builds (module fixture `built`): A, a two-update run with
most keys away from their defaults; R, A resumed; B, a build with LoRA, the KL in the reward, a simulator, the vLLM
backend (its engine stood in for) and what conflicts with A, one update and nothing written."""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import pytest
import torch
from pydantic import BaseModel
from test_failed_episodes_wiring import FailingPick

import agentrl.sim.models as sim_models
import agentrl.train.checkpoint as checkpoint_mod
import agentrl.train.engine as engine_mod
import agentrl.train.forward as forward_mod
import agentrl.train.held_out as held_out_mod
import agentrl.train.metrics as metrics_mod
import agentrl.train.run_dir as run_dir_mod
import agentrl.train.sft as sft_mod
import agentrl.train.shared_prefix as shared_prefix_mod
import agentrl.train.trainer as trainer_mod
from agentrl.algo.advantages import REGISTRY
from agentrl.core.outcomes import EpisodeEnd
from agentrl.core.registry import register_scripted
from agentrl.core.types import Episode
from agentrl.inference.models import load_model
from agentrl.sim.batching import BatchingChatModel
from agentrl.train import distributed
from agentrl.train.config import Config, SimulatorConfig, load_config
from agentrl.train.lr_schedule import lr_factor
from agentrl.train.reward_shaping import KLShapedReturns, RandomReturns
from agentrl.train.sft_config import SFTConfig
from agentrl.train.task_draws import SuccessBandDraws

ENV = "test_failed_episodes_wiring:FailingPick-v0"  # tests/test_failed_episodes_wiring.py

A = [
    f"env.id={ENV}",
    "env.kwargs={turns: 3}",
    "algorithm.name=ppo_gae",
    "algorithm.whiten=scale",
    "rollout.groups=2",
    "rollout.group_size=2",
    "rollout.refill_rounds=1",
    "rollout.task_draw=success_band",
    "rollout.draw_window=3",
    "rollout.draw_uniform=0.5",
    "rollout.temperature=0.7",
    "rollout.top_p=0.9",
    "rollout.max_new_tokens=3",
    "rollout.max_seq_len=512",
    "rollout.constrained=true",
    "rollout.prefix_reuse=false",
    "rollout.kv_store=3",
    "rollout.env_workers=2",
    "rollout.episode_timeout_s=100",
    "rollout.failed_episodes=score_zero",
    "optim.lr=1e-4",
    "optim.weight_decay=0.01",
    "optim.betas=[0.8, 0.99]",
    "optim.grad_clip=0.5",
    "optim.schedule=cosine",
    "optim.warmup_steps=2",
    "ppo.epochs=2",
    "ppo.minibatch_size=2",
    "ppo.micro_batch_size=1",
    "ppo.clip_low=0.1",
    "ppo.clip_high=0.3",
    "ppo.dual_clip=3.0",
    "ppo.loss_agg=seq-mean-token-sum",
    "ppo.kl_coef=0.05",
    "ppo.kl_kind=k1",
    "ppo.entropy_coef=0.01",
    "ppo.vf_coef=0.3",
    "ppo.vf_clip=0.5",
    "ppo.shared_prefix=false",
    "ppo.skip_zero_advantage=false",
    "ppo.shift_rows=2",
    "ppo.logprob_drift_warn_at=2.0",
    "ppo.logprob_drift_error_at=5.0",
    "train.updates=2",
    "train.seed=3",
    "train.checkpoint_every=1",
    "train.keep_checkpoints=1",
    "train.snapshot_every=2",
    "train.log_episodes=1",
    "train.eval_every=1",
    "train.eval_tasks=1",
    "train.eval_env_kwargs={turns: 2}",
    "train.eval_before_train=false",
    "train.max_tokens=1000000000",
    "train.parallel=ddp",
    "train.collective_timeout_s=30",
    "train.max_skipped_updates=5",
    "train.check_invariants=false",
    "train.verify_weight_sync=false",
    "train.autocast=bfloat16",
    "train.device=cpu",
    "train.gradient_checkpointing=true",
    "train.attn_implementation=eager",
    "train.random_reward=0.5",
]
B = [
    "model=tiny-random",
    f"env.id={ENV}",
    "env.simulator.model=tiny-random",
    "env.simulator.max_batch=3",
    "env.simulator.max_wait_s=0.5",
    "env.simulator.kv_store=0",
    "env.simulator.dtype=bfloat16",
    "algorithm.name=grpo",
    "rollout.backend=vllm",
    "rollout.vllm_gpu_memory_utilization=0.3",
    "rollout.vllm_tensor_parallel_size=2",
    "rollout.groups=1",
    "rollout.group_size=2",
    "ppo.minibatch_size=2",
    "ppo.micro_batch_size=2",
    "ppo.kl_coef=0.1",
    "ppo.kl_in_reward=true",
    "ppo.offpolicy_correction=mis_seq",
    "ppo.is_cap=3.0",
    "train.dtype=bfloat16",
    "train.threads=2",
    "train.overwrite=true",
    "train.report_to=[tensorboard]",
    "lora.r=4",
    "lora.alpha=8",
    "lora.dropout=0.1",
    "lora.target_modules=[q_proj, v_proj]",
]


class _Reads:
    """Stands in for a config section and records every field read from it (name -> value seen)."""

    def __init__(self, section: Any, seen: dict[str, Any]):
        object.__setattr__(self, "_section", section)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._section, name)
        self._seen[name] = value
        return value


def _spy(
    mp: pytest.MonkeyPatch, calls: dict[str, list], owner: Any, name: str, wrap: Callable[..., Any] | None = None
) -> None:
    """Record every call of owner.name as (args, kwargs); `wrap(real, *args, **kwargs)` replaces the call."""
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.setdefault(name, []).append((args, kwargs))
        return wrap(real, *args, **kwargs) if wrap else real(*args, **kwargs)

    mp.setattr(owner, name, spy)


def _engine_copy(model: torch.nn.Module) -> torch.nn.Module:
    """What a vLLM engine holds: the plain model (a LoRA model merged), apart from the trainer's."""
    m = copy.deepcopy(model)
    return m.merge_and_unload() if hasattr(m, "merge_and_unload") else m


def _build(cfg: Config, calls: dict[str, list], ppo_reads: dict[str, Any]) -> trainer_mod.Trainer:
    with pytest.MonkeyPatch.context() as mp:
        for owner, name in [
            (engine_mod, "load_model"),
            (engine_mod, "enable_activation_checkpointing"),
            (trainer_mod, "check_run_dir"),
            (trainer_mod, "save_checkpoint"),
            (trainer_mod, "whiten"),
            (trainer_mod, "check_trained_equals_sampled"),
            (trainer_mod, "verify_weights"),
            (distributed, "init_from_env"),
            (distributed, "train_device"),
            (sim_models, "make_chat_model"),
        ]:
            _spy(mp, calls, owner, name)
        _spy(mp, calls, trainer_mod, "MetricsLogger", lambda real, *a, **k: real(*a, **{**k, "report_to": []}))
        _spy(
            mp,
            calls,
            trainer_mod,
            "ppo_update",
            lambda real, *a, **k: real(*a[:5], _Reads(a[5], ppo_reads), *a[6:], **k),
        )
        _spy(
            mp,
            calls,
            trainer_mod,
            "correct_batch",
            lambda real, *a, **k: real(a[0], a[1], _Reads(a[2], calls.setdefault("correct_batch_reads", {})), **k),
        )
        from agentrl.inference.hf import HFPolicy
        from agentrl.inference.vllm import VLLMPolicy  # its engine stood in for by the hf backend: no vLLM on CPU

        _spy(mp, calls, VLLMPolicy, "from_model", lambda real, model, tok, **k: HFPolicy(_engine_copy(model), tok))
        threads = torch.get_num_threads()
        t = trainer_mod.Trainer(cfg, console=False)
        calls["threads"] = torch.get_num_threads()
        torch.set_num_threads(threads)
        if cfg.train.updates == 2 and not cfg.train.resume:
            t.run()
        elif not cfg.train.resume:
            t.train_step()  # one update, nothing written
    return t


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("wiring")
    model, tok = load_model("tiny-random")
    model.save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    run = tmp / "run"
    b = SimpleNamespace(model_dir=str(tmp / "model"), run=run)
    b.cfg_a = load_config(None, [f"model={b.model_dir}", *A, f"train.run_dir={run}"])
    b.calls_a, b.ppo_a = {}, {}
    b.a = _build(b.cfg_a, b.calls_a, b.ppo_a)
    b.rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    b.checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
    b.snapshots = sorted(p.name for p in (run / "snapshots").iterdir()) if (run / "snapshots").is_dir() else []
    b.episode_lines = len((run / "episodes" / "step_000001.jsonl").read_text().splitlines())
    b.r = _build(load_config(None, [f"model={b.model_dir}", *A, f"train.run_dir={run}", "train.resume=true"]), {}, {})
    b.cfg_b = load_config(None, [*B, f"train.run_dir={run}"])  # overwrite: A's run is cleared
    b.calls_b, b.ppo_b = {}, {}
    b.b = _build(b.cfg_b, b.calls_b, b.ppo_b)
    b.checkpoints_after_b = list((run / "checkpoints").glob("step_*")) if (run / "checkpoints").exists() else []
    return b


def _kw(calls: dict[str, list], name: str, i: int = 0) -> dict[str, Any]:
    return calls[name][i][1]


def _arg(calls: dict[str, list], name: str, pos: int, i: int = 0) -> Any:
    return calls[name][i][0][pos]


def _ppo_read(key: str) -> Callable[[SimpleNamespace], None]:
    """ppo_update read the field, and saw the config's value."""

    def check(b: SimpleNamespace) -> None:
        field = key.split(".")[1]
        assert field in b.ppo_a, f"ppo_update never read {key}"
        assert b.ppo_a[field] == getattr(b.cfg_a.ppo, field) != getattr(type(b.cfg_a.ppo)(), field)

    return check


def _async(b: SimpleNamespace) -> None:
    """A build of its own (A runs under train.parallel=ddp, which asynchronous rollouts refuse)."""
    cfg = load_config(
        None,
        [
            f"model={b.model_dir}",
            "rollout.groups=1",
            "rollout.group_size=2",
            "rollout.constrained=true",
            "rollout.max_new_tokens=2",
            "ppo.minibatch_size=2",
            "ppo.micro_batch_size=2",
            "train.updates=2",
            "train.log_episodes=0",
            "rollout.max_staleness=1",
            f"train.run_dir={b.run.parent / 'async'}",
        ],
    )
    t = trainer_mod.Trainer(cfg, console=False)
    t.run()
    rows = [json.loads(x) for x in (b.run.parent / "async" / "metrics.jsonl").read_text().splitlines()]
    assert t.sampler_model is not t.model and [r["policy/staleness"] for r in rows] == [0.0, 1.0]


def _failed_episodes(b: SimpleNamespace) -> None:
    eps = [
        Episode(prompt_ids=[1], group_id=g, end=end)
        for g, end in [(0, EpisodeEnd.ENV_ERROR), (0, EpisodeEnd.TERMINATED)]
    ]
    kept, _ = b.a._drop_failed(eps, 0)
    assert kept == eps  # score_zero keeps the failed episode (exclude_infra would drop the group)


def _schedule(b: SimpleNamespace) -> None:
    f = b.a.scheduler.lr_lambdas[0]
    assert [f(k) for k in range(4)] == [lr_factor(k, 2, schedule="cosine", warmup_steps=2) for k in range(4)]
    assert f(3) < 1.0  # constant would stay at 1 after the warm-up


def _warmup(b: SimpleNamespace) -> None:
    assert b.a.scheduler.lr_lambdas[0](0) == 0.5  # the first of two warm-up steps (1.0 without)


def _max_tokens(b: SimpleNamespace) -> None:
    before = b.a.tokens_cumulative
    try:
        assert not b.a.out_of_tokens()
        b.a.tokens_cumulative = 10**9
        assert b.a.out_of_tokens()
    finally:
        b.a.tokens_cumulative = before


def _task_draws(b: SimpleNamespace) -> None:
    assert isinstance(b.a.task_draws, SuccessBandDraws) and "draw/band_tasks" in b.rows[0]
    assert b.a.task_draws.recent, "the groups' outcomes reached the draws"
    assert b.r.task_draws.state_dict() == b.a.task_draws.state_dict(), "resume restores where the draws stood"


def _simulator(b: SimpleNamespace) -> Any:
    sim = b.b.runner.make_env().unwrapped.simulator
    assert isinstance(sim, BatchingChatModel)
    return sim


# key -> a check over the builds (True, or None after asserting), or why the key has no check of its own
READERS: dict[str, Callable[[SimpleNamespace], bool | None] | str] = {
    "model": lambda b: _arg(b.calls_a, "load_model", 0) == b.model_dir,
    "env.id": lambda b: type(b.a.runner.make_env().unwrapped).__name__ == "FailingPick",
    "env.kwargs": lambda b: b.a.runner.make_env().unwrapped.turns == 3,
    "env.simulator.model": lambda b: _arg(b.calls_b, "make_chat_model", 0) == "tiny-random",
    "env.simulator.batch": lambda b: (
        not isinstance(
            sim_models.env_kwargs_with_simulator({}, SimulatorConfig(model="tiny-random", batch=False))["simulator"],
            BatchingChatModel,
        )
    ),
    "env.simulator.max_batch": lambda b: _simulator(b).max_batch == 3,
    "env.simulator.max_wait_s": lambda b: _simulator(b).max_wait_s == 0.5,
    "env.simulator.kv_store": lambda b: _simulator(b).model.store is None,
    "env.simulator.dtype": lambda b: next(_simulator(b).model.policy.model.parameters()).dtype == torch.bfloat16,
    "algorithm.name": lambda b: b.a.spec is REGISTRY["ppo_gae"] and b.a.value_head is not None,
    "algorithm.params": "an estimator's own parameters: validated per estimator in tests/test_config.py and read by "
    "its function (estimator_kwargs) or branch_values.py, tested with each estimator",
    "algorithm.whiten": lambda b: (
        bool(b.calls_a["whiten"]) and all(c[1]["center"] is False for c in b.calls_a["whiten"])
    ),
    "rollout.backend": lambda b: "from_model" in b.calls_b,
    "rollout.groups": lambda b: len(b.a.groups) == 2,
    "rollout.group_size": lambda b: [s.group_id for s in b.a._episode_specs(0)] == [0, 0, 1, 1],
    "rollout.refill_rounds": lambda b: "groups/refill_rounds" in b.rows[0],
    "rollout.task_draw": _task_draws,
    "rollout.draw_window": lambda b: (
        b.a.task_draws.window == 3
        and b.a.task_draws.recent
        and all(len(r) <= 3 for r in b.a.task_draws.recent.values())
    ),
    "rollout.draw_uniform": lambda b: b.a.task_draws.uniform == 0.5 and "draw/from_uniform" in b.rows[0],
    "rollout.temperature": lambda b: (
        b.a.sampling.temperature == 0.7 and _kw(b.calls_a, "ppo_update")["temperature"] == 0.7
    ),
    "rollout.top_p": lambda b: b.a.sampling.top_p == 0.9,
    "rollout.max_new_tokens": lambda b: b.a.sampling.max_new_tokens == 3,
    "rollout.max_seq_len": lambda b: b.a.runner.max_seq_len == 512,
    "rollout.constrained": lambda b: b.a.runner.constrained is True,
    "rollout.prefix_reuse": lambda b: b.a.policy.prefix_reuse is False,
    "rollout.kv_store": lambda b: b.a.policy.store is not None and b.a.policy.store.max_entries == 3,
    "rollout.env_workers": lambda b: b.a.runner.env_workers == 2,
    "rollout.episode_timeout_s": lambda b: (
        b.a.runner.episode_timeout_s == 100 and b.a.held_out.runner.episode_timeout_s == 100
    ),
    "rollout.failed_episodes": _failed_episodes,
    "rollout.dtype": "tests/test_offpolicy_correction.py::test_bfloat16_sampler_copy_is_synced_and_corrected sets it "
    "and checks the sampler's bfloat16 copy, its sync after every update and the tis correction it turns on",
    "rollout.max_staleness": _async,
    **{
        f"rollout.{k}": "the remote backend needs servers to build: tests/test_remote_policy_fake_vllm_server.py::"
        "test_factory_builds_from_config_and_pushes_the_trainers_weights sets it and checks it reaches RemotePolicy"
        for k in ("servers", "remote_weights_dir", "server_attempts", "server_timeout_s")
    },
    "ppo.offpolicy_correction": lambda b: (
        b.b.offpolicy == "mis_seq"
        # one optimizer step: π_old from the update's own forward (ppo_update's offpolicy), else correct_batch's pass
        and (
            _kw(b.calls_b, "correct_batch")["mode"]
            if "correct_batch" in b.calls_b
            else _kw(b.calls_b, "ppo_update")["offpolicy"]
        )
        == "mis_seq"
    ),
    "ppo.is_cap": lambda b: {**b.calls_b.get("correct_batch_reads", {}), **b.ppo_b}["is_cap"] == 3.0,
    "rollout.vllm_gpu_memory_utilization": lambda b: _kw(b.calls_b, "from_model")["gpu_memory_utilization"] == 0.3,
    "rollout.vllm_tensor_parallel_size": lambda b: _kw(b.calls_b, "from_model")["tensor_parallel_size"] == 2,
    "optim.lr": lambda b: b.a.optimizer.param_groups[0]["initial_lr"] == 1e-4,
    "optim.weight_decay": lambda b: b.a.optimizer.param_groups[0]["weight_decay"] == 0.01,
    "optim.betas": lambda b: tuple(b.a.optimizer.param_groups[0]["betas"]) == (0.8, 0.99),
    "optim.grad_clip": lambda b: _kw(b.calls_a, "ppo_update")["grad_clip"] == 0.5,
    "optim.schedule": _schedule,
    "optim.warmup_steps": _warmup,
    **{
        f"ppo.{k}": _ppo_read(f"ppo.{k}")
        for k in (
            "epochs",
            "minibatch_size",
            "micro_batch_size",
            "clip_low",
            "clip_high",
            "dual_clip",
            "loss_agg",
            "kl_coef",
            "kl_kind",
            "entropy_coef",
            "vf_coef",
            "vf_clip",
            "shared_prefix",
            "skip_zero_advantage",
            "shift_rows",
            "logprob_drift_warn_at",
            "logprob_drift_error_at",
        )
    },
    "train.random_reward": lambda b: isinstance(b.a.returns, RandomReturns) and b.a.returns.p == 0.5,
    "ppo.kl_in_reward": lambda b: isinstance(b.b.returns, KLShapedReturns) and b.b.returns.beta == 0.1,
    "train.updates": lambda b: [r["step"] for r in b.rows] == [1, 2],
    "train.seed": lambda b: b.a.runner.seed == 3 and _kw(b.calls_a, "load_model")["seed"] == 3,
    "train.run_dir": lambda b: b.a.run_dir == b.run and bool(b.rows),
    "train.dtype": lambda b: _kw(b.calls_b, "load_model")["dtype"] == torch.bfloat16,
    "train.checkpoint_every": lambda b: [_arg(b.calls_a, "save_checkpoint", 1, i) for i in range(2)] == [1, 2],
    "train.keep_checkpoints": lambda b: b.checkpoints == ["step_000002"],
    "train.snapshot_every": lambda b: b.snapshots == ["step_000002"],
    "train.resume": lambda b: b.r.step == 2,
    "train.overwrite": lambda b: _kw(b.calls_b, "check_run_dir")["overwrite"] is True and not b.checkpoints_after_b,
    "train.log_episodes": lambda b: b.episode_lines == 1,
    "train.report_to": lambda b: _kw(b.calls_b, "MetricsLogger")["report_to"] == ["tensorboard"],
    "train.threads": lambda b: b.calls_b["threads"] == 2,
    "train.eval_every": lambda b: [r["step"] for r in b.rows if "eval/reward" in r] == [1, 2],
    "train.eval_tasks": lambda b: len(b.a.held_out.tasks) == 1,
    "train.eval_env_kwargs": lambda b: b.a.held_out.runner.make_env().unwrapped.turns == 2,
    "train.eval_before_train": lambda b: b.rows[0]["step"] == 1 and "eval/reward" in b.rows[0],
    "train.max_tokens": _max_tokens,
    "train.parallel": lambda b: _arg(b.calls_a, "init_from_env", 0) == "ddp",
    "train.collective_timeout_s": lambda b: _arg(b.calls_a, "init_from_env", 1) == 30,
    "train.max_skipped_updates": lambda b: b.a.skip_guard.limit == 5,
    "train.check_invariants": lambda b: (
        "check_trained_equals_sampled" not in b.calls_a and "check_trained_equals_sampled" in b.calls_b
    ),
    "train.verify_weight_sync": lambda b: "verify_weights" not in b.calls_a and "verify_weights" in b.calls_b,
    "train.autocast": lambda b: _kw(b.calls_a, "ppo_update")["autocast"] is True,
    "train.device": lambda b: (
        _arg(b.calls_a, "init_from_env", 2) == "cpu" and _arg(b.calls_a, "train_device", 0) == "cpu"
    ),
    "train.gradient_checkpointing": lambda b: (
        "enable_activation_checkpointing" in b.calls_a and "enable_activation_checkpointing" not in b.calls_b
    ),
    "train.attn_implementation": lambda b: _kw(b.calls_a, "load_model")["attn_implementation"] == "eager",
    "lora.r": lambda b: b.b.model.peft_config["default"].r == 4,
    "lora.alpha": lambda b: b.b.model.peft_config["default"].lora_alpha == 8,
    "lora.dropout": lambda b: b.b.model.peft_config["default"].lora_dropout == 0.1,
    "lora.target_modules": lambda b: set(b.b.model.peft_config["default"].target_modules) == {"q_proj", "v_proj"},
}


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted leaf keys of a pydantic model; a section typed `Section | None` (env.simulator, lora) is walked too."""
    out = []
    for name, f in model.model_fields.items():
        sub = next(
            (
                a
                for a in (f.annotation, *typing.get_args(f.annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        out += _leaf_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return out


@pytest.mark.parametrize("key", [k for k, v in READERS.items() if callable(v)])
def test_key_reaches_its_reader(key: str, built: SimpleNamespace) -> None:
    seen = READERS[key](built)  # type: ignore[operator]
    assert seen is None or seen is True, f"{key} did not reach its reader"  # None: the check asserted itself


# -- agentrl sft: the same check over SFTConfig's keys ----------------------------------------------------------------
class SplitPick(FailingPick):
    """FailingPick (never failing) with a `split`: its tasks (train) or "test-" ones; its scripted `gold` says "1"."""

    def __init__(self, turns: int = 2, split: str = "train", render_mode=None):
        super().__init__(turns=turns, render_mode=render_mode)
        self.split = split

    def task_ids(self) -> list[str]:
        return [t if self.split == "train" else f"test-{t}" for t in super().task_ids()]


SPLIT_ENV = "test_config_wiring:SplitPick-v0"
if "SplitPick-v0" not in gym.registry:
    gym.register(id="SplitPick-v0", entry_point=SplitPick)
register_scripted("SplitPick-v0", {"gold": lambda env: lambda convo: "1"})

SFT_YAML = f"""
data: {{source: "scripted:gold", split: train, episodes: 3, max_seq_len: 1024, bucket: false}}
env: {{id: "{SPLIT_ENV}", kwargs: {{turns: 2}}}}
optim: {{lr: 1.0e-4, weight_decay: 0.01, betas: [0.8, 0.99], grad_clip: 0.5, schedule: linear, warmup_steps: 2}}
sft: {{epochs: 2, batch_size: 2, micro_batch_size: 1, shared_prefix: false}}
train: {{seed: 3, checkpoint_every: 1, keep_checkpoints: 1, eval_every: 2, eval_tasks: 1,
        eval_env_kwargs: {{turns: 3}}, eval_max_new_tokens: 3, autocast: bfloat16, device: cpu,
        gradient_checkpointing: true, attn_implementation: eager, parallel: ddp, collective_timeout_s: 30}}
"""


def _sft_build(args: list[str], calls: dict[str, Any]) -> int:
    """`agentrl sft ARGS` with the readers spied on; returns the exit status."""
    from agentrl.cli import main

    def forward_spy(real: Callable[..., Any], *a: Any, **k: Any) -> Any:
        calls.setdefault("autocast", []).append(
            (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), a[2].shape[0])
        )
        return real(*a, **k)

    def keep(name: str) -> Callable[..., Any]:
        def wrap(real: Callable[..., Any], *a: Any, **k: Any) -> Any:
            out = real(*a, **k)
            calls[f"{name}_out"] = out
            return out

        return wrap

    with pytest.MonkeyPatch.context() as mp:
        for owner, name in [
            (engine_mod, "load_model"),
            (engine_mod, "enable_activation_checkpointing"),
            (sft_mod, "demos_from_scripted"),
            (sft_mod, "make_batches"),
            (run_dir_mod, "check_run_dir"),
            (checkpoint_mod, "save_checkpoint"),
            (held_out_mod, "HeldOutEval"),
            (distributed, "train_device"),
            (distributed, "init_from_env"),
            (torch.nn.utils, "clip_grad_norm_"),
        ]:
            _spy(mp, calls, owner, name)
        for name in ("make_optimizer", "make_scheduler", "apply_lora"):
            _spy(mp, calls, engine_mod, name, keep(name))
        _spy(mp, calls, forward_mod, "forward", forward_spy)
        _spy(mp, calls, shared_prefix_mod, "shared_prefix_forward", forward_spy)
        _spy(mp, calls, metrics_mod, "MetricsLogger", lambda real, *a, **k: real(*a, **{**k, "report_to": []}))
        threads = torch.get_num_threads()
        rc = main(args)
        calls["threads"] = torch.get_num_threads()
        torch.set_num_threads(threads)
    return rc


@pytest.fixture(scope="module")
def sft_built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """S: `agentrl sft CONFIG.yaml a.b=v --keep all` with most keys away from their defaults; R: S resumed with one
    more epoch; L: LoRA, bfloat16 weights, threads, trackers and overwrite, from a transcript file, over S's run."""
    tmp = tmp_path_factory.mktemp("sft_wiring")
    model, tok = load_model("tiny-random")
    model.save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    run = tmp / "run"
    (tmp / "sft.yaml").write_text(f"model: {tmp / 'model'}\n" + SFT_YAML)
    b = SimpleNamespace(model_dir=str(tmp / "model"), run=run, s={}, r={}, lora={})
    assert _sft_build(["sft", str(tmp / "sft.yaml"), f"train.run_dir={run}", "--keep", "all"], b.s) == 0
    b.rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    b.checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
    resume = ["sft", str(tmp / "sft.yaml"), f"train.run_dir={run}", "--keep", "all", "--resume", "sft.epochs=3"]
    assert _sft_build(resume, b.r) == 0
    b.resumed_rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    data = tmp / "d.jsonl"
    dialog = [{"role": "user", "content": "Pick."}, {"role": "assistant", "content": "1"}]
    data.write_text("".join(json.dumps({"messages": dialog}) + "\n" for _ in range(2)))
    lora = [
        "model=tiny-random",
        f"data.source={data}",
        f"train.run_dir={run}",
        "train.overwrite=true",
        "train.dtype=bfloat16",
        "train.threads=2",
        "train.report_to=[tensorboard]",
        "sft.epochs=1",
        "lora.r=4",
        "lora.alpha=8",
        "lora.dropout=0.1",
        "lora.target_modules=[q_proj, v_proj]",
    ]
    assert _sft_build(["sft", *lora], b.lora) == 0
    b.adapter = json.loads((run / "checkpoints" / "step_000001" / "model" / "adapter_config.json").read_text())
    return b


def _held_out_call(b: SimpleNamespace) -> tuple[tuple, dict]:
    return b.s["HeldOutEval"][0]


def _optimizer(b: SimpleNamespace) -> Any:
    return b.s["make_optimizer_out"]


def _sft_schedule(b: SimpleNamespace) -> None:
    f = b.s["make_scheduler_out"].lr_lambdas[0]
    assert [f(k) for k in range(4)] == [lr_factor(k, 4, schedule="linear", warmup_steps=2) for k in range(4)]
    assert f(3) < 1.0


SFT_READERS: dict[str, Callable[[SimpleNamespace], bool | None] | str] = {
    "model": lambda b: _arg(b.s, "load_model", 0) == b.model_dir,
    "data.source": lambda b: _arg(b.s, "demos_from_scripted", 2) == "gold" and "demos_from_scripted" not in b.lora,
    "data.split": lambda b: (
        _arg(b.s, "demos_from_scripted", 1)["split"] == "train" and _held_out_call(b)[0][0].kwargs["split"] == "test"
    ),
    "data.episodes": lambda b: _kw(b.s, "demos_from_scripted")["episodes"] == 3,
    "data.keep": lambda b: _kw(b.s, "demos_from_scripted")["keep"] == "all",  # set by the --keep flag
    "data.max_seq_len": lambda b: _held_out_call(b)[1]["max_seq_len"] == 1024,
    "data.bucket": lambda b: _arg(b.s, "make_batches", 3) is False and _arg(b.lora, "make_batches", 3) is True,
    "env.id": lambda b: (
        _arg(b.s, "demos_from_scripted", 0) == SPLIT_ENV and _held_out_call(b)[0][0].env_id == SPLIT_ENV
    ),
    "env.kwargs": lambda b: _arg(b.s, "demos_from_scripted", 1)["turns"] == 2,
    "optim.lr": lambda b: _optimizer(b).param_groups[0]["initial_lr"] == 1e-4,
    "optim.weight_decay": lambda b: _optimizer(b).param_groups[0]["weight_decay"] == 0.01,
    "optim.betas": lambda b: tuple(_optimizer(b).param_groups[0]["betas"]) == (0.8, 0.99),
    "optim.grad_clip": lambda b: _arg(b.s, "clip_grad_norm_", 1) == 0.5,
    "optim.schedule": _sft_schedule,
    "optim.warmup_steps": lambda b: b.s["make_scheduler_out"].lr_lambdas[0](0) == 0.5,
    "sft.epochs": lambda b: max(r.get("epoch", 0) for r in b.rows) == 2,
    "sft.batch_size": lambda b: [r["step"] for r in b.rows if "loss/sft" in r] == [1, 2, 3, 4],  # 3 demos, 2 a step
    "sft.micro_batch_size": lambda b: {n for _, _, n in b.s["autocast"]} == {1},
    "sft.shared_prefix": lambda b: (
        "shared_prefix_forward" not in b.s and "forward" in b.s and "shared_prefix_forward" in b.lora
    ),
    "train.seed": lambda b: _kw(b.s, "load_model")["seed"] == 3 and _kw(b.s, "demos_from_scripted")["seed"] == 3,
    "train.run_dir": lambda b: bool(b.rows) and _arg(b.s, "save_checkpoint", 0) == b.run,
    "train.dtype": lambda b: (
        _kw(b.lora, "load_model")["dtype"] == torch.bfloat16 and _kw(b.s, "load_model")["dtype"] == torch.float32
    ),
    "train.checkpoint_every": lambda b: [_arg(b.s, "save_checkpoint", 1, i) for i in range(4)] == [1, 2, 3, 4],
    "train.keep_checkpoints": lambda b: b.checkpoints == ["step_000004"],
    "train.resume": lambda b: [r["step"] for r in b.resumed_rows if "loss/sft" in r] == [1, 2, 3, 4, 5, 6],
    "train.overwrite": lambda b: _kw(b.lora, "check_run_dir")["overwrite"] is True,
    "train.report_to": lambda b: _kw(b.lora, "MetricsLogger")["report_to"] == ["tensorboard"],
    "train.threads": lambda b: b.lora["threads"] == 2,
    "train.eval_every": lambda b: [r["step"] for r in b.rows if "eval/reward" in r] == [0, 2, 4],
    "train.eval_tasks": lambda b: _held_out_call(b)[1]["tasks"] == 1,
    "train.eval_env_kwargs": lambda b: _held_out_call(b)[0][0].kwargs["turns"] == 3,
    "train.eval_max_new_tokens": lambda b: _held_out_call(b)[1]["max_new_tokens"] == 3,
    "train.autocast": lambda b: (
        {(on, dtype) for on, dtype, _ in b.s["autocast"]} == {(True, torch.bfloat16)}
        and not any(on for on, _, _ in b.lora["autocast"])
    ),
    "train.device": lambda b: _arg(b.s, "train_device", 0) == "cpu" and _arg(b.lora, "train_device", 0) == "auto",
    "train.gradient_checkpointing": lambda b: (
        "enable_activation_checkpointing" in b.s and "enable_activation_checkpointing" not in b.lora
    ),
    "train.attn_implementation": lambda b: _kw(b.s, "load_model")["attn_implementation"] == "eager",
    "train.parallel": lambda b: _arg(b.s, "init_from_env", 0) == "ddp",  # one process here: test_sft_engine runs 2
    "train.collective_timeout_s": lambda b: _arg(b.s, "init_from_env", 1) == 30,
    "lora.r": lambda b: b.adapter["r"] == 4 and "apply_lora" not in b.s,
    "lora.alpha": lambda b: b.adapter["lora_alpha"] == 8,
    "lora.dropout": lambda b: b.adapter["lora_dropout"] == 0.1,
    "lora.target_modules": lambda b: set(b.adapter["target_modules"]) == {"q_proj", "v_proj"},
}


@pytest.mark.parametrize("config,readers", [(Config, READERS), (SFTConfig, SFT_READERS)], ids=["train", "sft"])
def test_every_key_has_a_reader(config: type[BaseModel], readers: dict[str, Any]) -> None:
    keys = _leaf_keys(config)
    missing, stale = sorted(set(keys) - set(readers)), sorted(set(readers) - set(keys))
    assert not missing, f"config keys with no reader check (wire them, then add a check): {missing}"
    assert not stale, f"the readers name keys the config no longer has: {stale}"


@pytest.mark.parametrize("key", [k for k, v in SFT_READERS.items() if callable(v)])
def test_sft_key_reaches_its_reader(key: str, sft_built: SimpleNamespace) -> None:
    seen = SFT_READERS[key](sft_built)  # type: ignore[operator]
    assert seen is None or seen is True, f"{key} did not reach its reader"
