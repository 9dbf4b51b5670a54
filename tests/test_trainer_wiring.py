"""What the trainer wires in from the scale-out pieces: LoRA through the config, episodes ended by an
infrastructure failure left out of the advantage groups, the weight-sync check, the log-prob drift metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentrl.cli import main
from agentrl.core.checkpoint import latest_checkpoint
from agentrl.train.config import load_config
from agentrl.train.invariants import InvariantError
from agentrl.train.lora import ReferenceView
from agentrl.train.trainer import Trainer

SMALL = [
    "model=tiny-random",
    "env.kwargs.turns=2",
    "rollout.groups=2",
    "rollout.group_size=3",
    "rollout.constrained=true",
    "rollout.max_new_tokens=4",
    "train.updates=1",
    "ppo.minibatch_size=6",
    "ppo.micro_batch_size=3",
    "train.log_episodes=1",
    "algorithm.name=grpo",
]


def _trainer(tmp_path: Path, *extra: str) -> Trainer:
    return Trainer(load_config(None, [*SMALL, f"train.run_dir={tmp_path / 'run'}", *extra]), console=False)


def test_lora_from_the_config_trains_only_the_adapters_and_exports_a_merged_model(tmp_path: Path) -> None:
    # random returns: tiny-random's env rewards can all be equal (0 on an AVX2-only CPU, whose sampling differs),
    # and zero advantages with adapters at B = 0 give a zero gradient, so nothing would move
    t = _trainer(tmp_path, "lora.r=4", "ppo.kl_coef=0.1", "optim.lr=1e-2", "train.random_reward=0.5")
    assert isinstance(t.ref_model, ReferenceView)  # the base with the adapters off: no second copy
    names = [n for n, p in t.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    frozen = {n: p.detach().clone() for n, p in t.model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in t.model.named_parameters() if p.requires_grad}
    t.run()
    assert all(torch.equal(p, frozen[n]) for n, p in t.model.named_parameters() if n in frozen)
    assert any(not torch.equal(p, trained[n]) for n, p in t.model.named_parameters() if n in trained)
    assert (latest_checkpoint(tmp_path / "run") / "model" / "adapter_model.safetensors").exists()
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "merged"), "--merge"]) == 0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).config.num_hidden_layers == 2


def test_an_episode_whose_env_raises_is_left_out_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from environments.credit.env import CreditChainEnv

    step = CreditChainEnv.step
    calls = {"n": 0}

    def flaky(self, action):  # the 2nd step of the run fails inside the env
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("the env's backing service went away")
        return step(self, action)

    monkeypatch.setattr(CreditChainEnv, "step", flaky)
    t = _trainer(tmp_path)
    collect, seen = t.runner.collect, []
    t.runner.collect = lambda specs: seen.extend(collect(specs)) or seen  # type: ignore[method-assign]
    t.run()
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["episode/outcome/env_error"] == 1.0
    assert row["episode/dropped"] >= 1.0  # excluded from the advantage groups, not scored 0
    assert row["tokens/sampled"] == sum(ep.num_sampled for ep in seen)  # what a dropped episode sampled still counts


def test_a_broken_weight_sync_is_caught(tmp_path: Path) -> None:
    t = _trainer(tmp_path)
    real = t.policy.weights_digest
    t.policy.weights_digest = lambda: {
        k: (v[0] + 1.0, *v[1:]) if isinstance(v, tuple) else v  # a stale engine
        for k, v in real().items()
    }
    with pytest.raises(InvariantError, match="differ from the trainer's after sync"):
        t.run()


def test_the_logprob_drift_metric_is_logged_and_tiny(tmp_path: Path) -> None:
    # every row forwarded: at some seeds every group's returns are equal, and zero-advantage rows skip the forward
    _trainer(tmp_path, "ppo.skip_zero_advantage=false").run()
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert 0.0 <= row["logprob/max_abs_diff"] < 1e-3, row["logprob/max_abs_diff"]
