"""`ppo.kl_in_reward`: every episode an estimator sees is scored RM − β·Σ KL before any estimator runs.

Hand-computed against a reference model that differs from the policy (its weights perturbed), so the KL
term is far from zero: GRPO's advantages and TRePO's branch values V̂ must use the shaped returns of the
sampled episodes and of every branch continuation alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentrl.algo.advantages import REGISTRY, AdvantageInputs
from agentrl.core.types import Episode, allowed_tensor, collate
from agentrl.train.config import load_config
from agentrl.train.forward import forward
from agentrl.train.reward_shaping import kl_shaped_rewards
from agentrl.train.trainer import Trainer

BETA = 0.5
BASE = [
    "model=tiny-random",
    "env.kwargs.turns=2",
    "rollout.constrained=true",
    "rollout.max_new_tokens=4",
    f"ppo.kl_coef={BETA}",
    "ppo.kl_in_reward=true",
    "algorithm.whiten=false",
    "train.updates=1",
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=2",
]


def test_kl_shaped_rewards_by_hand() -> None:
    lp = torch.tensor([[0.0, -1.0, -2.0, -0.5], [0.0, -0.3, -0.2, 0.0]])
    ref = torch.tensor([[0.0, -1.5, -1.0, -9.0], [0.0, -0.1, -0.4, 0.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])  # position 3 is an env token: not charged
    out = kl_shaped_rewards(torch.tensor([1.0, 0.0]), lp, ref, mask, BETA)
    # episode 0: KL = (-1 + 1.5) + (-2 + 1) = -0.5 -> 1 + 0.25; episode 1: (-0.3 + 0.1) + (-0.2 + 0.4) = 0 -> 0
    assert torch.allclose(out, torch.tensor([1.25, 0.0]))


def _trainer(tmp_path: Path, *extra: str) -> Trainer:
    t = Trainer(load_config(None, [*BASE, f"train.run_dir={tmp_path}", *extra]), console=False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in t.ref_model.parameters():  # a reference the policy has drifted from
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return t


def _by_hand(t: Trainer, ep: Episode) -> float:
    """RM − β·Σ_agent tokens (log π_old − log π_ref), the reference scored on this episode alone."""
    ids, attn, amask, old_lp = collate([ep], 0)
    ref_lp = forward(
        t.ref_model,
        None,
        ids,
        attn,
        t.cfg.rollout.temperature,
        entropy=False,
        mask=amask,
        allowed=allowed_tensor([ep], ids.shape[1]),
    ).logprobs
    return ep.reward - BETA * float(((old_lp - ref_lp) * amask).sum())


def test_grpo_advantages_use_the_shaped_returns(tmp_path: Path) -> None:
    t = _trainer(tmp_path, "algorithm.name=grpo", "rollout.groups=2", "rollout.group_size=3")
    specs = t._episode_specs(0)
    episodes = t.runner.collect(specs)
    returns = t.returns(episodes)
    hand = [_by_hand(t, ep) for ep in episodes]
    assert returns == pytest.approx(hand, abs=1e-4)
    assert max(abs(h - ep.reward) for h, ep in zip(hand, episodes)) > 0.05, "the KL term is ~0: the test proves little"
    batch = t._batch(episodes, returns, t._extra_sampling(episodes, specs, returns))
    for i, ep in enumerate(episodes):
        group = [h for h, e in zip(hand, episodes) if e.group_id == ep.group_id]
        mean = sum(group) / len(group)
        std = (sum((x - mean) ** 2 for x in group) / (len(group) - 1)) ** 0.5
        want = (hand[i] - mean) / (std + 1e-6)
        got = batch.advantages[i][batch.action_mask[i] > 0]
        assert torch.allclose(got, torch.full_like(got, want), atol=1e-3), (i, got[:3], want)


def test_trepo_branch_values_score_every_continuation_with_its_kl(tmp_path: Path) -> None:
    t = _trainer(
        tmp_path,
        "algorithm.name=trepo",
        "rollout.groups=2",
        "rollout.group_size=1",
        "algorithm.params.branch_m=2",
        "algorithm.params.branch_t_min=1.0",
    )  # one episode per task: no prefix sharing, every point branches
    scored: list[Episode] = []
    shaped = t.returns

    def spy(eps: list[Episode]) -> list[float]:
        scored.extend(eps)
        return shaped(eps)

    t.returns = spy
    specs = t._episode_specs(0)
    episodes = t.runner.collect(specs)
    returns = t.returns(episodes)
    extra = t._extra_sampling(episodes, specs, returns)
    bv = extra["branch"]
    conts = [c for c in scored if c.parent_uid is not None]
    assert len(conts) == bv.continuations > 0
    for i, ep in enumerate(episodes):
        for pos, v, b in zip(bv.positions[i], bv.values[i], bv.baselines[i]):
            mine = [_by_hand(t, c) for c in conts if c.parent_uid == ep.uid and c.branch_pos == pos]
            assert len(mine) == 2
            want = (_by_hand(t, ep) + sum(mine)) / 3  # V̂(t) = mean shaped return over W and its M continuations
            assert v == pytest.approx(want, abs=1e-4), (i, pos)
            assert b == pytest.approx(sum(mine) / 2, abs=1e-4), (i, pos)  # B̂(t): the continuations alone
    batch = t._batch(episodes, returns, extra)
    inp = AdvantageInputs(
        rewards=torch.tensor([_by_hand(t, ep) for ep in episodes]),
        action_mask=batch.action_mask,
        group_ids=torch.tensor([ep.group_id for ep in episodes]),
        turn_starts=[ep.turn_starts for ep in episodes],
        branch_positions=bv.positions,
        branch_values=bv.values,
        branch_baselines=bv.baselines,
    )
    want = REGISTRY["trepo"].fn(inp, mode=t.cfg.algorithm.params["mode"]).advantages
    assert torch.allclose(batch.advantages, want, atol=1e-4)
