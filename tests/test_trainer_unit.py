"""Trainer pieces: one update end to end, the update step's guards, pass^k, and the estimator lookup."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from agentrl.core.records import EpisodeRecord
from agentrl.core.types import TrainBatch
from agentrl.eval.evaluate import evaluate, pass_hat_k
from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer
from agentrl.train.update import ppo_update

SMALL = [
    "model=tiny-random",
    "env.kwargs.turns=3",
    "rollout.groups=2",
    "rollout.group_size=3",
    "rollout.constrained=true",
    "rollout.max_new_tokens=4",
    "train.updates=1",
    "ppo.minibatch_size=6",
    "ppo.micro_batch_size=2",
    "train.log_episodes=2",
]


@pytest.mark.parametrize("algorithm", ["trepo", "ppo_gae", "ppo_turn", "grpo", "rloo", "remax", "reinforce", "gigpo"])
def test_one_update_per_algorithm(algorithm: str, tmp_path: Path) -> None:
    cfg = load_config(None, SMALL + [f"algorithm.name={algorithm}", f"train.run_dir={tmp_path}"])
    tr = Trainer(cfg, console=False)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.run()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    for key in (
        "reward/mean",
        "reward/std",
        "success_rate",
        "adv/mean",
        "adv/std",
        "clip_fraction",
        "entropy",
        "grad_norm",
        "tokens/sampled",
        "tokens/branch",
        "time/collect",
        "time/update",
        "time/total",
    ):
        assert key in row, key
    assert row["tokens/sampled"] > 0
    if algorithm in ("trepo", "remax"):
        assert row["tokens/branch"] > 0, "TRePO continuations / ReMax greedy rollouts are counted"
    else:
        assert row["tokens/branch"] == 0
    changed = any(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())
    assert changed, "the optimizer step changed no weight"
    ep = json.loads((tmp_path / "episodes" / "step_000001.jsonl").read_text().splitlines()[0])
    assert len(ep["tokens"]) == len(ep["advantages"]) == len(ep["action_mask"])
    assert all(a == 0 for a, m in zip(ep["advantages"], ep["action_mask"]) if m == 0), "env tokens carry no advantage"
    rec = EpisodeRecord.from_dict(ep)  # the one episode shape: the conversation is there too, as in a rollout's
    assert rec.step == 1 and rec.algorithm == algorithm and len(rec.turns) == 3 and rec.messages[0]["role"] == "system"
    assert rec.extra == {} and rec.prompt_tokens == rec.action_mask.index(1)
    assert (tmp_path / "checkpoints" / "step_000001" / "model" / "model.safetensors").exists()


def test_non_finite_loss_skips_the_step_and_counts_it(tmp_path: Path) -> None:
    cfg = load_config(None, SMALL + [f"train.run_dir={tmp_path}"])
    tr = Trainer(cfg, console=False)
    B, T = 2, 6
    ids = torch.randint(3, 100, (B, T))
    mask = torch.tensor([[0, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1]], dtype=torch.float32)
    adv = torch.full((B, T), float("nan")) * mask
    batch = TrainBatch(ids, torch.ones_like(ids), mask, torch.zeros(B, T), adv)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    stats = ppo_update(
        tr.model,
        None,
        tr.optimizer,
        None,
        batch,
        cfg.ppo,
        temperature=1.0,
        grad_clip=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert stats["skipped_steps"] == 1 and stats["optimizer_steps"] == 0
    assert all(torch.equal(before[k], v) for k, v in tr.model.state_dict().items()), (
        "a NaN step must not touch the weights"
    )


def test_pass_hat_k_by_hand() -> None:
    # task A: 3 of 4 succeed, task B: 1 of 4. pass^1 = (3/4 + 1/4)/2; pass^2 = (C(3,2)/C(4,2) + 0)/2 = (3/6)/2
    s = [[True, True, True, False], [True, False, False, False]]
    assert pass_hat_k(s, 1) == pytest.approx(0.5)
    assert pass_hat_k(s, 2) == pytest.approx(0.25)
    assert pass_hat_k(s, 4) == 0.0
    with pytest.raises(ValueError, match="at least 5 trials"):
        pass_hat_k(s, 5)


def test_eval_scripted_gold_on_credit_chain() -> None:
    res = evaluate("agentrl/CreditChain-v0", "scripted:gold", tasks=5, k=2)
    assert res.success_rate == 1.0 and res.pass_k[2] == 1.0 and res.mean_reward == 1.0
    assert math.isclose(res.mean_turns, 6)


def test_eval_unknown_scripted_agent_names_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"no scripted agent 'nope'; available: scripted:gold"):
        evaluate("agentrl/CreditChain-v0", "scripted:nope", tasks=1)


def test_constrained_batch_trains_the_policy_that_sampled(tmp_path: Path) -> None:
    """Under constrained decoding the rollout records log pi_c (renormalised over the allowed tokens) and the
    update scores the same distribution: before any step the PPO ratio is exactly 1, and forced tokens (one
    allowed id, e.g. the EOS after a CreditChain digit) have log 1 = 0, so they carry no gradient."""
    from agentrl.train.forward import forward

    cfg = load_config(None, SMALL + [f"train.run_dir={tmp_path}", "algorithm.name=grpo"])
    tr = Trainer(cfg, console=False)
    specs = tr._episode_specs(0)
    episodes = tr.runner.collect(specs)
    returns = tr.returns(episodes)
    batch = tr._batch(episodes, returns, tr._extra_sampling(episodes, specs, returns))
    assert batch.allowed is not None
    for e in episodes:
        for t in e.turns:
            assert t.allowed is not None and len(t.allowed) == len(t.sampled_ids)
            assert all(tok in a for tok, a in zip(t.sampled_ids, t.allowed))
    on = batch.action_mask > 0
    forced = on & (batch.allowed >= 0).sum(-1).eq(1)
    assert forced.any() and torch.equal(batch.old_logprobs[forced], torch.zeros(int(forced.sum())))
    with torch.no_grad():
        new = forward(
            tr.model,
            None,
            batch.input_ids,
            batch.attention_mask,
            1.0,
            entropy=False,
            mask=batch.action_mask,
            allowed=batch.allowed,
        ).logprobs
        full = forward(
            tr.model, None, batch.input_ids, batch.attention_mask, 1.0, entropy=False, mask=batch.action_mask
        ).logprobs
    assert torch.allclose(new[on], batch.old_logprobs[on], atol=1e-4), "ratio 1 on the first step (on-policy)"
    assert (full[on] - batch.old_logprobs[on]).abs().max() > 1.0, "the whole-vocabulary logprob is a different policy"
