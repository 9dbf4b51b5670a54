"""Advantage estimators against hand computations (DESIGN.md: TRePO step 3, the comparison estimators)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrl.algo.advantages import REGISTRY, AdvantageInputs, masked_moments, whiten
from agentrl.algo.advantages.gae import gae
from agentrl.algo.advantages.grpo import grpo
from agentrl.algo.advantages.reinforce import reinforce
from agentrl.algo.advantages.remax import remax
from agentrl.algo.advantages.rloo import rloo
from agentrl.algo.advantages.trepo import (
    branch_temperatures,
    mc_value,
    select_branch_points,
    shared_prefix_values,
    trepo,
)

# The 3-turn episode, T = 12: prompt 2 | agent 3 | env 2 | agent 2 | env 1 | agent 2
#   index:  0 1 | 2 3 4 | 5 6 | 7 8 | 9 | 10 11
MASK3 = [0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1]
AGENT3 = [2, 3, 4, 7, 8, 10, 11]
TURNS3 = [2, 7, 10]


def approx(t: torch.Tensor, expected: list, tol: float = 1e-6) -> None:
    assert torch.allclose(t.double(), torch.tensor(expected, dtype=torch.float64), atol=tol), (t.tolist(), expected)


def inputs(rewards: list[float], masks: list[list[int]], groups: list[int] | None = None, **kw) -> AdvantageInputs:
    B = len(rewards)
    turn_starts = kw.pop("turn_starts", None) or [[] for _ in range(B)]
    return AdvantageInputs(
        rewards=torch.tensor(rewards, dtype=torch.float32),
        action_mask=torch.tensor(masks, dtype=torch.float32),
        group_ids=torch.tensor(groups if groups is not None else [0] * B, dtype=torch.long),
        turn_starts=turn_starts,
        **kw,
    )


def three_turn(reward: float = 1.0, positions=None, values=None) -> AdvantageInputs:
    return inputs([reward], [MASK3], turn_starts=[TURNS3], branch_positions=positions, branch_values=values)


# ------------------------------------------------------------------ trepo


def test_trepo_segment_three_turns_by_hand() -> None:
    # D = turn starts, V̂ = 0.5, 0.25, 0.75; V̂(end) = RM = 1.
    out = trepo(three_turn(1.0, [TURNS3], [[0.5, 0.25, 0.75]]), mode="segment")
    a = -0.25  # turn 1: 0.25 - 0.5
    b = 0.5  # turn 2: 0.75 - 0.25
    c = 0.25  # turn 3: 1 - 0.75
    approx(out.advantages[0], [0, 0, a, a, a, 0, 0, b, b, 0, c, c])
    assert out.returns is None


def test_trepo_interpolate_three_turns_by_hand() -> None:
    # Agent indices of D: 0, 3, 5; end = 7. Per-token shares: -0.25/3, 0.5/2, 0.25/2 (env tokens skipped).
    out = trepo(three_turn(1.0, [TURNS3], [[0.5, 0.25, 0.75]]), mode="interpolate")
    a, b, c = -0.25 / 3, 0.25, 0.125
    approx(out.advantages[0], [0, 0, a, a, a, 0, 0, b, b, 0, c, c])
    # Telescoping: the sum over agent tokens is RM - V̂(first point).
    assert math.isclose(float(out.advantages.sum()), 1.0 - 0.5, abs_tol=1e-6)


def test_trepo_tokens_before_first_point_get_zero() -> None:
    # D = {7} only: turn-1 tokens precede the first point -> 0; the rest share RM - V̂(7) = 0 - 0.4.
    seg = trepo(three_turn(0.0, [[7]], [[0.4]]), mode="segment").advantages[0]
    approx(seg, [0, 0, 0, 0, 0, 0, 0, -0.4, -0.4, 0, -0.4, -0.4])
    itp = trepo(three_turn(0.0, [[7]], [[0.4]]), mode="interpolate").advantages[0]
    approx(itp, [0, 0, 0, 0, 0, 0, 0, -0.1, -0.1, 0, -0.1, -0.1])


def test_trepo_intra_turn_points_and_empty_d() -> None:
    # D = {2, 3, 10}, V̂ = 0.2, 0.6, 0.5, RM = 0: segments [2,3) -> 0.4, [3,10) -> -0.1, [10,end) -> -0.5.
    out = trepo(
        inputs([0.0, 1.0], [MASK3, MASK3], branch_positions=[[2, 3, 10], []], branch_values=[[0.2, 0.6, 0.5], []])
    )
    approx(out.advantages[0], [0, 0, 0.4, -0.1, -0.1, 0, 0, -0.1, -0.1, 0, -0.5, -0.5])
    approx(out.advantages[1], [0] * 12)  # empty D: no baseline, no advantage


@pytest.mark.parametrize(
    "positions,values,match",
    [
        ([[7, 2]], [[0.1, 0.2]], "ascending"),
        ([[2, 2]], [[0.1, 0.2]], "ascending"),
        ([[5]], [[0.1]], "not an agent token"),
        ([[0]], [[0.1]], "not an agent token"),
        ([[2, 7]], [[0.1]], "branch values"),
        (None, None, "needs branch_positions"),
        ([[2], [7]], [[0.1], [0.2]], "one list per episode"),
        ([[2]], [[float("nan")]], "non-finite"),
    ],
)
def test_trepo_malformed_input_raises(positions, values, match) -> None:
    with pytest.raises(ValueError, match=match):
        trepo(three_turn(1.0, positions, values))


def test_trepo_bad_mode() -> None:
    with pytest.raises(ValueError, match="segment"):
        trepo(three_turn(1.0, [TURNS3], [[0.5, 0.25, 0.75]]), mode="linear")


# ------------------------------------------------------------------ gae


def _gae_inputs(reward: float) -> AdvantageInputs:
    # Values at agent tokens 0.1..0.7; junk (9.0) on prompt/env tokens must never be read.
    vals = [9.0] * 12
    for k, p in enumerate(AGENT3):
        vals[p] = 0.1 * (k + 1)
    return inputs([reward], [MASK3], turn_starts=[TURNS3], values=torch.tensor([vals]))


def test_gae_skips_env_tokens_lambda_half() -> None:
    # γ=1, λ=0.5: δ_k = v_{k+1} - v_k = 0.1 for k<6 (δ at token 4 uses v at token 7, not env token 5),
    # δ_6 = r - v_6 = 1 - 0.7 = 0.3. A_k = δ_k + 0.5 A_{k+1}.
    out = gae(_gae_inputs(1.0), gamma=1.0, lam=0.5)
    A = [0.2015625, 0.203125, 0.20625, 0.2125, 0.225, 0.25, 0.3]
    expected = [0.0] * 12
    for k, p in enumerate(AGENT3):
        expected[p] = A[k]
    approx(out.advantages[0], expected)
    ret = [0.0] * 12
    for k, p in enumerate(AGENT3):
        ret[p] = A[k] + 0.1 * (k + 1)
    approx(out.returns[0], ret)


def test_gae_discount_counts_agent_tokens_only() -> None:
    # γ=0.5, λ=1: δ = [0, -.05, -.1, -.15, -.2, -.25, .3]; A_k = δ_k + 0.5 A_{k+1}.
    out = gae(_gae_inputs(1.0), gamma=0.5, lam=1.0)
    A = [-0.084375, -0.16875, -0.2375, -0.275, -0.25, -0.1, 0.3]
    approx(out.advantages[0, AGENT3], A)


def test_gae_lambda_one_gamma_one_is_mc_minus_value() -> None:
    out = gae(_gae_inputs(2.0))  # γ=λ=1: A_k = r - v_k, returns = r
    approx(out.advantages[0, AGENT3], [2.0 - 0.1 * (k + 1) for k in range(7)])
    approx(out.returns[0], [2.0 * m for m in MASK3])


def test_gae_requires_values() -> None:
    with pytest.raises(ValueError, match="values"):
        gae(three_turn())


# ------------------------------------------------------------------ grpo / rloo / remax / reinforce

M2 = [[0, 1, 1]]  # prompt token + 2 agent tokens


def test_grpo_by_hand() -> None:
    # Group 0: r = 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(1/3) -> ±0.5*sqrt(3). Group 1: singleton -> 0.
    # Group 2: constant -> 0.
    r = [1, 0, 0, 1, 0.7, 0.3, 0.3]
    out = grpo(inputs(r, M2 * 7, [0, 0, 0, 0, 1, 2, 2]))
    s = 0.5 * math.sqrt(3)
    for i, a in enumerate([s, -s, -s, s, 0, 0, 0]):
        approx(out.advantages[i], [0, a, a], tol=1e-5)
    out2 = grpo(inputs(r, M2 * 7, [0, 0, 0, 0, 1, 2, 2]), scale_std=False)  # Dr. GRPO: r - mean
    approx(out2.advantages[:, 1], [0.5, -0.5, -0.5, 0.5, 0, 0, 0])


def test_rloo_by_hand() -> None:
    # Group 0: 1 - (2+6)/2 = -3, 2 - 3.5 = -1.5, 6 - 1.5 = 4.5. Group 5: singleton -> 0.
    out = rloo(inputs([1, 2, 6, 4], M2 * 4, [0, 0, 0, 5]))
    approx(out.advantages[:, 1], [-3, -1.5, 4.5, 0])
    approx(out.advantages[:, 0], [0, 0, 0, 0])


def test_remax_by_hand() -> None:
    out = remax(inputs([1.0, 0.0], M2 * 2, baseline_rewards=torch.tensor([0.25, 0.5])))
    approx(out.advantages, [[0, 0.75, 0.75], [0, -0.5, -0.5]])
    with pytest.raises(ValueError, match="baseline_rewards"):
        remax(inputs([1.0], M2))


def test_reinforce_by_hand() -> None:
    inp = inputs([1.0, 0.0, 0.5], M2 * 3)
    approx(reinforce(inp).advantages[:, 2], [1.0, 0.0, 0.5])
    approx(reinforce(inp, baseline="batch_mean").advantages[:, 2], [0.5, -0.5, 0.0])
    with pytest.raises(ValueError, match="batch_mean"):
        reinforce(inp, baseline="median")


# ------------------------------------------------------------------ every estimator, non-agent tokens


def test_no_estimator_gives_advantage_to_non_agent_tokens() -> None:
    # Batch: the 3-turn episode twice (one group), a shorter padded episode, an episode with no agent token.
    masks = [MASK3, MASK3, [0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0], [0] * 12]
    g = torch.Generator().manual_seed(0)
    inp = inputs(
        [1.0, 0.0, 0.5, 1.0],
        masks,
        [0, 0, 1, 2],
        turn_starts=[TURNS3, TURNS3, [1, 4], []],
        values=torch.randn(4, 12, generator=g) + 5.0,  # nonzero on non-agent tokens too
        baseline_rewards=torch.tensor([0.3, 0.3, 0.9, 0.1]),
        branch_positions=[TURNS3, [2, 3, 8], [1, 4], []],
        branch_values=[[0.5, 0.25, 0.75], [0.5, 0.1, 0.2], [0.3, 0.6], []],
        turn_anchors=[["s", "a", "b"], ["s", "a", "c"], ["t", "d"], []],
    )
    off = torch.tensor(masks) == 0
    assert set(REGISTRY) == {"trepo", "ppo_gae", "ppo_turn", "grpo", "rloo", "remax", "reinforce", "gigpo"}
    for name, spec in REGISTRY.items():
        out = spec.fn(inp)
        assert out.advantages.shape == (4, 12), name
        assert torch.isfinite(out.advantages).all(), name
        assert (out.advantages[off] == 0).all(), name
        assert (out.advantages[~off] != 0).any(), name
        if out.returns is not None:
            assert (out.returns[off] == 0).all(), name
        w = whiten(out.advantages, inp.action_mask)
        assert (w[off] == 0).all(), name


def test_registry_flags() -> None:
    assert REGISTRY["trepo"].needs_branches and REGISTRY["trepo"].default_whiten
    assert REGISTRY["ppo_gae"].needs_value_head
    assert REGISTRY["remax"].needs_greedy_baseline
    assert not REGISTRY["grpo"].needs_branches and not REGISTRY["grpo"].needs_value_head


# ------------------------------------------------------------------ whitening


def test_whiten_properties() -> None:
    adv = torch.tensor([[0.0, 1.0, 2.0, 99.0], [3.0, 4.0, -7.0, 0.0]])
    mask = torch.tensor([[0.0, 1, 1, 0], [1, 1, 0, 1]])
    w = whiten(adv, mask)
    on = mask > 0
    vals = torch.tensor([1.0, 2, 3, 4, 0])
    approx(w[on], ((vals - vals.mean()) / vals.std(unbiased=False)).tolist(), tol=1e-5)
    assert abs(float(w[on].mean())) < 1e-6
    assert abs(float(w[on].std(unbiased=False)) - 1.0) < 1e-5
    assert (w[~on] == 0).all()


def test_masked_moments_by_hand() -> None:
    # masked values 1, 2, 3, 4, 0: n = 5, mean = 10/5 = 2, squared deviations 1+0+1+4+4 = 10, std = sqrt(10/5)
    adv = torch.tensor([[0.0, 1.0, 2.0, 99.0], [3.0, 4.0, -7.0, 0.0]])
    mask = torch.tensor([[0.0, 1, 1, 0], [1, 1, 0, 1]])
    n, mean, std = masked_moments(adv, mask)
    assert (n, float(mean), float(std)) == (5, 2.0, math.sqrt(2.0))
    assert mean.dtype == std.dtype == torch.float64
    assert [float(v) for v in masked_moments(adv, torch.zeros_like(mask))] == [0, 0.0, 0.0]  # no entry
    assert [float(v) for v in masked_moments(torch.tensor([7.0]), torch.tensor([1.0]))] == [1, 7.0, 0.0]


def test_masked_moments_over_ranks() -> None:
    # This rank holds 1, 2 (masked); a simulated other rank holds 3, 4, 0: the moments are the whole batch's above.
    other = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
    seen: list[torch.Tensor] = []

    def sum_all(
        t: torch.Tensor,
    ) -> torch.Tensor:  # what all_reduce_sum returns: [sum, count], then [sum of squared deviations]
        seen.append(t)
        if len(seen) == 1:
            return t + torch.tensor([float(other.sum()), 3.0], dtype=torch.float64)
        mean = float(seen[0][0] + other.sum()) / 5
        return t + (other - mean).pow(2).sum().reshape(1)

    n, mean, std = masked_moments(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[1.0, 1, 0]]), sum_all=sum_all)
    assert (n, float(mean), float(std)) == (5, 2.0, math.sqrt(2.0))
    # whiten over the ranks uses these moments: (1 - 2) / sqrt 2, (2 - 2) / sqrt 2
    seen.clear()
    w = whiten(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[1.0, 1, 0]]), sum_all=sum_all)
    approx(w, [[-1 / math.sqrt(2.0), 0.0, 0.0]], tol=1e-6)


def test_whiten_one_process_sum_all_is_bit_identical() -> None:
    g = torch.Generator().manual_seed(0)
    adv, mask = torch.randn(4, 33, generator=g), (torch.rand(4, 33, generator=g) > 0.4).float()
    for center in (True, False):
        assert torch.equal(whiten(adv, mask, center=center), whiten(adv, mask, center=center, sum_all=lambda t: t))


def test_whiten_degenerate_cases_no_nan() -> None:
    mask = torch.tensor([[0.0, 1, 1]])
    approx(whiten(torch.tensor([[5.0, 2.0, 2.0]]), mask), [[0, 0, 0]])  # constant -> centred
    approx(whiten(torch.tensor([[5.0, 2.0, 7.0]]), torch.tensor([[0.0, 1, 0]])), [[0, 0, 0]])  # one token
    approx(whiten(torch.tensor([[5.0, 2.0, 7.0]]), torch.zeros(1, 3)), [[0, 0, 0]])  # no token


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=2, max_size=20), st.integers(0, 2**20))
def test_whiten_hypothesis(vals: list[float], seed: int) -> None:
    adv = torch.tensor([vals], dtype=torch.float32)
    mask = (torch.rand(1, len(vals), generator=torch.Generator().manual_seed(seed)) > 0.3).float()
    w = whiten(adv, mask)
    assert torch.isfinite(w).all()
    assert (w[mask == 0] == 0).all()
    if mask.sum() >= 1:
        assert abs(float(w[mask > 0].mean())) < 1e-4


# ------------------------------------------------------------------ branch points and MC values


def test_select_branch_points_specs() -> None:
    rng = random.Random(0)
    assert select_branch_points(TURNS3, AGENT3, "none", rng) == []
    assert select_branch_points(TURNS3, AGENT3, "turns", rng) == [2, 7, 10]
    # every:2 counted from each turn start: turn 1 agent tokens 2,3,4 -> 2,4; turn 2: 7,8 -> 7; turn 3: 10,11 -> 10
    assert select_branch_points(TURNS3, AGENT3, "turns+every:2", rng) == [2, 4, 7, 10]
    assert select_branch_points(TURNS3, AGENT3, "turns+every:1", rng) == AGENT3
    for seed in range(20):
        d = select_branch_points(TURNS3, AGENT3, "random:3", random.Random(seed))
        assert len(d) == 3 and d[0] == 2 and d == sorted(set(d)) and set(d) <= set(AGENT3)
    assert select_branch_points(TURNS3, AGENT3, "random:50", rng) == AGENT3
    assert select_branch_points([], [], "random:2", rng) == []
    # Deterministic given the rng's seed.
    assert select_branch_points(TURNS3, AGENT3, "random:4", random.Random(7)) == select_branch_points(
        TURNS3, AGENT3, "random:4", random.Random(7)
    )


@pytest.mark.parametrize("spec", ["every:2", "turns+every:0", "random:0", "random", "turn", "random:-1"])
def test_select_branch_points_bad_spec(spec: str) -> None:
    with pytest.raises(ValueError, match="turns\\+every:L"):
        select_branch_points(TURNS3, AGENT3, spec, random.Random(0))


def test_select_branch_points_turn_start_not_agent() -> None:
    with pytest.raises(ValueError, match="not agent positions"):
        select_branch_points([2, 5], AGENT3, "turns", random.Random(0))


def test_branch_temperatures() -> None:
    assert branch_temperatures(1, 0.0, 1.0) == [0.0]
    approx(torch.tensor(branch_temperatures(5, 0.0, 1.0)), [0.0, 0.25, 0.5, 0.75, 1.0])
    approx(torch.tensor(branch_temperatures(3, 0.6, 0.6)), [0.6, 0.6, 0.6])
    for bad in [(0, 0.0, 1.0), (3, 1.0, 0.5), (3, -0.1, 1.0)]:
        with pytest.raises(ValueError):
            branch_temperatures(*bad)


def test_mc_value_includes_own_reward() -> None:
    assert mc_value(1.0, [], []) == 1.0
    assert mc_value(1.0, [0.0, 0.0, 1.0], [0.0]) == pytest.approx(2 / 5)
    assert mc_value(0.0, [], [1.0, 1.0, 1.0]) == pytest.approx(3 / 4)


def test_shared_prefix_values_crafted() -> None:
    prompt = [9, 9]
    seqs = [
        prompt + [1, 2, 3, 4],  # ep 0
        prompt + [1, 2, 5, 6],  # ep 1: shares [:4] with ep 0
        prompt + [7, 2, 3, 4],  # ep 2: shares only the prompt
        [8, 9, 1, 2, 3, 4],  # ep 3: different prompt
        prompt + [1],  # ep 4: short, shares [:3] with 0 and 1
    ]
    rewards = [1.0, 0.5, 0.25, 0.125, 0.0625]
    positions = [[2, 3, 4, 5], [2, 4], [2, 3], [2, 0], [2, 3]]
    out = shared_prefix_values(seqs, rewards, positions)
    assert out[0] == [[0.5, 0.25, 0.0625], [0.5, 0.0625], [0.5], []]
    assert out[1] == [[1.0, 0.25, 0.0625], [1.0]]
    assert out[2] == [[1.0, 0.5, 0.0625], []]
    assert out[3] == [[], [1.0, 0.5, 0.25, 0.0625]]  # t=0: the empty prefix is shared by everyone
    assert out[4] == [[1.0, 0.5, 0.25], [1.0, 0.5]]
    # The group's first-turn value for free: V̂ at the first agent token of ep 0 from the group alone.
    assert mc_value(rewards[0], [], out[0][0]) == pytest.approx((1.0 + 0.5 + 0.25 + 0.0625) / 4)


def test_shared_prefix_values_bad_input() -> None:
    with pytest.raises(ValueError):
        shared_prefix_values([[1, 2]], [1.0, 2.0], [[1]])
    with pytest.raises(ValueError):
        shared_prefix_values([[1, 2]], [1.0], [[3]])
