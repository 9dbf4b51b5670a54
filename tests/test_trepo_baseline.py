"""TRePO without needless noise (issue 28, part 2): the baseline side of each advantage leaves out the episode's
own return, and branch continuations sample at the policy's temperature by default. Hand computations."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from agentrl.algo.advantages import REGISTRY, AdvantageInputs, mc_baseline, mc_value, trepo
from agentrl.algo.advantages.params import TRePOParams
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.registry import load_env_plugins
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.branch_values import estimate_branch_values

load_env_plugins()


def _inputs(baselines: list[list[float]] | None) -> AdvantageInputs:
    # one episode: 6 agent tokens (positions 1..6), turns start at 1 and 4; RM = 1
    mask = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 0]], dtype=torch.float32)
    return AdvantageInputs(
        rewards=torch.tensor([1.0]),
        action_mask=mask,
        group_ids=torch.tensor([0]),
        turn_starts=[[1, 4]],
        branch_positions=[[1, 4]],
        branch_values=[[0.5, 0.75]],
        branch_baselines=baselines,
    )


def test_leave_own_out_baseline_by_hand() -> None:
    # V̂ = [0.5, 0.75] with the own return, B̂ = [0.25, 0.5] without; end: RM = 1
    adv = trepo(_inputs([[0.25, 0.5]]), mode="segment", baseline="leave_own_out").advantages[0]
    assert adv.tolist() == pytest.approx([0, 0.75 - 0.25, 0.5, 0.5, 1 - 0.5, 0.5, 0.5, 0])
    adv = trepo(_inputs([[0.25, 0.5]]), mode="interpolate", baseline="leave_own_out").advantages[0]
    assert adv.tolist() == pytest.approx([0, 0.5 / 3, 0.5 / 3, 0.5 / 3, 0.5 / 3, 0.5 / 3, 0.5 / 3, 0])
    # with_own (the default), or no baselines given: B̂ = V̂
    for adv in (
        trepo(_inputs([[0.25, 0.5]])).advantages[0],
        trepo(_inputs(None), baseline="leave_own_out").advantages[0],
    ):
        assert adv.tolist() == pytest.approx([0, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0])


def test_m1_middle_turn_with_and_without_the_episode_outcome() -> None:
    """M = 1, no sharing: with the own return in V̂ a middle turn's advantage is (c_b − c_a)/2 whatever RM is (RM
    cancels: half the unbiased difference of the two points' samples); leaving it out of the baseline side gives
    V̂(b) − c_a, which moves with RM (RM/2 of extra noise)."""

    def middle(rm: float, baseline: str) -> float:
        c_a, c_b = 0.0, 1.0  # one continuation's return at each of the two points
        vals = [mc_value(rm, [c_a], []), mc_value(rm, [c_b], [])]
        base = [mc_baseline([c_a], []), mc_baseline([c_b], [])]
        inp = AdvantageInputs(
            rewards=torch.tensor([rm]),
            action_mask=torch.tensor([[1.0, 1.0, 1.0]]),
            group_ids=torch.tensor([0]),
            turn_starts=[[0, 1]],
            branch_positions=[[0, 1]],
            branch_values=[vals],
            branch_baselines=[base],
        )
        return float(trepo(inp, baseline=baseline).advantages[0, 0])

    assert middle(0.0, "with_own") == middle(1.0, "with_own") == pytest.approx(0.5)
    assert middle(1.0, "leave_own_out") - middle(0.0, "leave_own_out") == pytest.approx(0.5)


def test_mc_baseline() -> None:
    assert mc_baseline([0.0, 1.0], [1.0]) == pytest.approx(2 / 3)
    assert mc_baseline([], []) is None


def test_defaults() -> None:
    p = TRePOParams()
    assert p.branch_t_min == 0.0 and p.baseline == "with_own"
    with pytest.raises(ValueError, match="baseline"):
        trepo(_inputs(None), baseline="nope")
    assert REGISTRY["trepo"].fn is trepo


class _Recording(RolloutRunner):
    def branch_many(self, requests, **kw):
        self.temps = [t for _, _, ts in requests for t in ts]
        self.conts = super().branch_many(requests, **kw)
        return self.conts


@pytest.mark.parametrize("t_min, want", [(None, 0.7), (0.0, 0.0)])
def test_continuations_sample_at_the_policy_temperature_by_default(tiny, t_min, want) -> None:
    model, tok = tiny
    r = _Recording(
        lambda: gym.make("agentrl/CreditChain-v0", turns=3),
        HFPolicy(model, tok),
        ChatFormatter(tok),
        SamplingParams(temperature=0.7, max_new_tokens=6),
        constrained=True,
        seed=0,
        snapshot_turns=True,
    )
    eps = r.collect([EpisodeSpec(seed=i, group_id=i) for i in range(2)])  # one episode per task: every point branches
    bv = estimate_branch_values(r, eps, spec="turns", m=1, t_min=t_min, t_max=0.7, point_seed=0)
    assert r.temps and set(r.temps) == {want}
    for i, ep in enumerate(eps):  # one continuation per point, no sharing: B̂ is that continuation's return
        for j, pos in enumerate(bv.positions[i]):
            (c,) = [c for c in r.conts if c.parent_uid == ep.uid and c.branch_pos == pos]
            assert bv.baselines[i][j] == pytest.approx(c.reward)
            assert bv.values[i][j] == pytest.approx((c.reward + ep.reward) / 2)


def test_scale_only_whitening_keeps_signs_and_zeros() -> None:
    from agentrl.algo.advantages import whiten

    adv = torch.tensor([[0.0, 2.0, -1.0, 0.0, 3.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    vals = [0.0, 2.0, -1.0, 0.0]
    mean = sum(vals) / 4
    std = (sum((v - mean) ** 2 for v in vals) / 4) ** 0.5
    out = whiten(adv, mask, center=False)[0].tolist()
    assert out == pytest.approx([0.0, 2.0 / std, -1.0 / std, 0.0, 0.0], abs=1e-6)
    centred = whiten(adv, mask)[0].tolist()
    assert centred[0] == pytest.approx(-mean / std, abs=1e-6), "centring moves a zero advantage"


def test_whiten_setting() -> None:
    from agentrl.train.config import load_config

    assert load_config(None, ["algorithm.whiten=true"]).algorithm.whiten == "center_scale"
    assert load_config(None, ["algorithm.whiten=false"]).algorithm.whiten == "none"
    assert load_config(None, ["algorithm.whiten=scale"]).algorithm.whiten == "scale"
    assert REGISTRY["trepo"].default_whiten == "scale" and REGISTRY["grpo"].default_whiten == "none"
