"""No hidden length bias (issue 29, part 4): each turn-level estimator, on an episode whose length the agent chooses.

verl RFC #7244: an advantage whose scale or baseline depends on how many turns (or tokens) the episode goes on to
have is an action-dependent baseline, so the gradient is biased whenever the policy decides when the episode ends: a
hidden length penalty (or bonus). The invariant an unbiased estimator keeps, stated per decision:

    E[ A_t | s_t, a ] = c(s_t) · Q(s_t, a) + b(s_t),   c(s_t) ≥ 0 and b(s_t) the same for every action a at s_t

i.e. the advantage of a decision depends on what follows it only through the return. In particular two actions with
equal Q -- stop now or go on for more turns, a short or a long turn -- get equal expected advantage however many
turns or tokens follow. (A state weight c(s) is allowed: it reweights states, never actions; the paper's gradient has
c = 1.) Discounting (γ < 1) breaks it on purpose -- the objective becomes E[γ^(turns left) R], an explicit length
penalty -- and so does dividing a segment's value difference by its realised length (TRePO's `interpolate`).

The test computes E[A | s_k, a] EXACTLY: a small MDP whose policy picks, at each of its first two turns, S (stop; a
1-token turn), H (stop; a 3-token turn, the same reward as S) or G (go on; a 3-token turn); the third turn is a forced
1-token stop F. The reward is Bernoulli(p_n) for an episode of n turns. Every outcome (and, for group estimators, every
group of G outcomes) is enumerated with its probability, all groups in one batch, and the estimator's advantage at each
decision token (the first token of a turn, the only token a tabular policy decides) is averaged by probability.
Values handed to TRePO and the turn-level critic are the exact ones, so what is measured is the estimator's formula.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import pytest
import torch

from agentrl.algo.advantages import (
    AdvantageInputs,
    divergence_points,
    gigpo,
    grpo,
    mc_baseline,
    mc_value,
    shared_prefix_values,
    trepo,
    turn_gae,
)

N_TURNS = 3
PI = [{"S": 0.3, "H": 0.2, "G": 0.5}, {"S": 0.4, "H": 0.1, "G": 0.5}]  # policy at turns 0 and 1; turn 2 is forced
TOKENS = {"S": [1], "H": [2, 3, 3], "G": [4, 5, 5], "F": [6]}  # the decision is each turn's first token
ENV = [7, 7]  # the env's reply after a turn that goes on
PATHS = [("S",), ("H",), ("G", "S"), ("G", "H"), ("G", "G", "F")]
EQUAL = (0.5, 0.5, 0.5)  # p_n equal: stopping and going on have the same Q everywhere
UNEQUAL = (0.2, 0.7, 0.4)  # Q(stop) ≠ Q(go); S and H still share their Q
# at s_0 stopping and going on have the same Q (0.5 = V(s_1) = 0.5·0.8 + 0.5·0.2), but going on ends in a 2-turn
# episode that mostly wins or a 3-turn one that mostly loses: the return depends on the length that follows
BALANCED = (0.5, 0.8, 0.2)
MDPS = [EQUAL, UNEQUAL, BALANCED]
T = 1 + sum(len(TOKENS[a]) for a in PATHS[-1]) + len(ENV) * (N_TURNS - 1)


def path_prob(path: tuple[str, ...]) -> float:
    return math.prod(PI[k][a] for k, a in enumerate(path) if a != "F")


def outcomes(p: tuple[float, ...]) -> list[tuple[tuple[str, ...], float, float]]:
    """(actions, return, probability) of every episode."""
    return [
        (path, r, path_prob(path) * (p[len(path) - 1] if r else 1 - p[len(path) - 1]))
        for path in PATHS
        for r in (1.0, 0.0)
    ]


def exact_values(p: tuple[float, ...], gamma: float = 1.0) -> tuple[list[float], list[dict[str, float]]]:
    """V(s_k) and Q(s_k, a) of E[γ^(turns after k) · R], s_k = the state after k G's (the only way to reach turn k)."""
    V = [0.0] * N_TURNS
    V[-1] = p[-1]
    Q: list[dict[str, float]] = [{} for _ in range(N_TURNS - 1)]
    for k in range(N_TURNS - 2, -1, -1):
        Q[k] = {"S": p[k], "H": p[k], "G": gamma * V[k + 1]}
        V[k] = sum(PI[k][a] * Q[k][a] for a in PI[k])
    return V, Q


def layout(path: tuple[str, ...]) -> tuple[list[int], list[int], list[int]]:
    """(token ids, action mask, turn starts) of one episode: prompt | turn | env | turn | ... (unpadded)."""
    ids, mask, starts = [0], [0], []
    for k, a in enumerate(path):
        starts.append(len(ids))
        ids += TOKENS[a]
        mask += [1] * len(TOKENS[a])
        if k < len(path) - 1:
            ids += ENV
            mask += [0] * len(ENV)
    return ids, mask, starts


def batch(
    p: tuple[float, ...], G: int, *, gamma: float = 1.0
) -> tuple[AdvantageInputs, list[float], list[tuple[str, ...]]]:
    """Every group of G outcomes as one group of the batch; exact TRePO values (γ = 1) and critic values (γ)."""
    outs = outcomes(p)
    V1, _ = exact_values(p)
    Vg, _ = exact_values(p, gamma)
    rewards, masks, groups, starts, anchors, paths, probs, bpos, bval = [], [], [], [], [], [], [], [], []
    values = []
    for g, combo in enumerate(itertools.product(outs, repeat=G)):
        prob = math.prod(o[2] for o in combo)
        for path, r, _ in combo:
            ids, mask, st = layout(path)
            rewards.append(r)
            masks.append(mask + [0] * (T - len(mask)))
            groups.append(g)
            starts.append(st)
            anchors.append([f"s{k}" for k in range(len(path))])  # turn k starts from the state reached by k G's
            paths.append(path)
            probs.append(prob)
            bpos.append(st)
            bval.append([V1[k] for k in range(len(path))])
            v = [0.0] * T
            for k, s in enumerate(st):
                v[s] = Vg[k]
            values.append(v)
    inp = AdvantageInputs(
        rewards=torch.tensor(rewards),
        action_mask=torch.tensor(masks, dtype=torch.float32),
        group_ids=torch.tensor(groups),
        turn_starts=starts,
        values=torch.tensor(values),
        branch_positions=bpos,
        branch_values=bval,
        turn_anchors=anchors,
    )
    return inp, probs, paths


def expected_advantage(
    fn: Callable[..., torch.Tensor], p: tuple[float, ...], G: int = 1, *, gamma: float = 1.0, needs_paths: bool = False
) -> dict[tuple[int, str], float]:
    """E[A at the decision token of turn k | the agent took a at turn k], for every non-forced (k, a).
    needs_paths: fn(inp, paths) also gets each episode's actions."""
    inp, probs, paths = batch(p, G, gamma=gamma)
    adv = (fn(inp, paths) if needs_paths else fn(inp)).to(torch.float64)
    num: dict[tuple[int, str], float] = {}
    den: dict[tuple[int, str], float] = {}
    for i, path in enumerate(paths):
        for k, a in enumerate(path):
            if a == "F":
                continue
            num[(k, a)] = num.get((k, a), 0.0) + probs[i] * float(adv[i, inp.turn_starts[i][k]])
            den[(k, a)] = den.get((k, a), 0.0) + probs[i]
    return {key: num[key] / den[key] for key in num}


def unbiased(E: dict[tuple[int, str], float], p: tuple[float, ...]) -> bool:
    """The invariant: at each decision state, E[A | s, a] = c(s)·Q(s, a) + b(s) with c(s) ≥ 0."""
    _, Q = exact_values(p)
    for k in range(N_TURNS - 1):
        if not math.isclose(E[(k, "S")], E[(k, "H")], abs_tol=1e-6):  # equal Q, a longer turn
            return False
        dq, de = Q[k]["G"] - Q[k]["S"], E[(k, "G")] - E[(k, "S")]
        if math.isclose(dq, 0.0, abs_tol=1e-12):
            if not math.isclose(de, 0.0, abs_tol=1e-6):  # equal Q, more turns to follow
                return False
        elif de / dq < -1e-12:
            return False
    return True


def adv_of(fn, **kw) -> Callable[[AdvantageInputs], torch.Tensor]:
    return lambda inp: fn(inp, **kw).advantages


# -- the references: the biased forms the RFC warns about, so the test is seen to catch them -----------------------
def per_turn_index_grpo(inp: AdvantageInputs) -> torch.Tensor:
    """MT-GRPO-style per-turn rewards normalised per turn INDEX and summed to the end (verl RFC #7244's biased form):
    r_ij = R_i at the episode's last turn, else 0; A_ik = Σ_{j=k}^{n_i−1} (r_ij − mean over the group's episodes
    that reached turn j of r_·j). The number of subtracted means is the episode's own stopping turn."""
    B = len(inp.turn_starts)
    n = [len(s) for s in inp.turn_starts]
    R = inp.rewards.tolist()
    gid = inp.group_ids.tolist()
    adv = torch.zeros_like(inp.action_mask)
    for i in range(B):
        members = [j for j in range(B) if gid[j] == gid[i]]
        means = [
            sum(R[j] if n[j] == idx + 1 else 0.0 for j in members if n[j] > idx) / sum(1 for j in members if n[j] > idx)
            for idx in range(n[i])
        ]
        for k, s in enumerate(inp.turn_starts[i]):
            a = sum((R[i] if idx == n[i] - 1 else 0.0) - means[idx] for idx in range(k, n[i]))
            adv[i, s] = a
    return adv


def test_the_references_are_caught() -> None:
    E = expected_advantage(per_turn_index_grpo, EQUAL, G=2)
    assert not unbiased(E, EQUAL)
    # the hidden term: every turn that goes on subtracts one more group mean, a penalty on "take another turn"
    assert E[(0, "G")] < E[(0, "S")]
    # the Monte-Carlo advantage R − V(s_k) divided by the episode's number of turns: at s_0 going on has the same Q
    # as stopping, but its wins come in 2-turn episodes (÷2) and its losses in 3-turn ones (÷3): a net credit of 0.025
    E = expected_advantage(
        lambda inp: (
            turn_gae(inp, gamma=1.0, lam=1.0).advantages
            / torch.tensor([float(len(s)) for s in inp.turn_starts])[:, None]
        ),
        BALANCED,
    )
    assert not unbiased(E, BALANCED) and E[(0, "G")] == pytest.approx(0.5 * 0.3 / 2 - 0.5 * 0.3 / 3)


# -- GRPO and Dr. GRPO: the return alone, so no length enters ----------------------------------------------------
@pytest.mark.parametrize("p", MDPS)
def test_grpo(p) -> None:
    G = 2
    _, Q = exact_values(p)
    J = sum(o[1] * o[2] for o in outcomes(p))
    E = expected_advantage(adv_of(grpo, scale_std=False), p, G)
    for (k, a), e in E.items():  # E[R_i − mean_g | s, a] = (1 − 1/G)(Q(s, a) − J)
        assert e == pytest.approx((1 - 1 / G) * (Q[k][a] - J), abs=1e-6)
    assert unbiased(E, p)
    assert unbiased(expected_advantage(adv_of(grpo), p, G), p)  # std-scaled: still a function of the returns only


# -- TRePO ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", MDPS)
def test_trepo_segment_is_unbiased(p) -> None:
    # with exact V at the turn starts: A = V(s_{k+1}) − V(s_k) (R at the end), so E[A | s_k, a] = Q(s_k, a) − V(s_k)
    V, Q = exact_values(p)
    E = expected_advantage(adv_of(trepo, mode="segment"), p)
    for (k, a), e in E.items():
        assert e == pytest.approx(Q[k][a] - V[k], abs=1e-6)
    assert unbiased(E, p)


def _monte_carlo_trepo(baseline: str) -> Callable[..., torch.Tensor]:
    """TRePO as the trainer runs it when no continuation is needed: V̂ and B̂ at each turn start from W and the
    group's episodes that share W's tokens before it (`shared_prefix_values`, `mc_value`, `mc_baseline`)."""

    def fn(inp: AdvantageInputs, paths: list[tuple[str, ...]]) -> torch.Tensor:
        gid = inp.group_ids.tolist()
        seqs = [[1000 + gid[i], *layout(path)[0]] for i, path in enumerate(paths)]  # a task's own prompt token
        pos = [[s + 1 for s in st] for st in inp.turn_starts]
        R = inp.rewards.tolist()
        sharing = shared_prefix_values(seqs, R, pos)
        vals = [[mc_value(R[i], [], sh) for sh in sharing[i]] for i in range(len(seqs))]
        bases = [
            [b if (b := mc_baseline([], sh)) is not None else v for sh, v in zip(sharing[i], vals[i])]
            for i in range(len(seqs))
        ]
        out = trepo(dataclasses.replace(inp, branch_values=vals, branch_baselines=bases), baseline=baseline)
        return out.advantages

    return fn


@pytest.mark.parametrize("baseline", ["with_own", "leave_own_out"])
def test_trepo_monte_carlo_values_from_the_group_keep_the_invariant(baseline) -> None:
    # V̂(s_k) = the mean return of the group's episodes that reached s_k (W's own included with with_own): the count
    # of them depends on the other episodes and on W's past, never on W's future, so each state gets its own
    # positive slope and no action is favoured for the turns or tokens that follow it
    for p in MDPS:
        E = expected_advantage(_monte_carlo_trepo(baseline), p, G=3, needs_paths=True)
        assert unbiased(E, p)
    E = expected_advantage(_monte_carlo_trepo("with_own"), UNEQUAL, G=3, needs_paths=True)
    V, Q = exact_values(UNEQUAL)
    assert E[(0, "G")] == pytest.approx((1 - 1 / 3) * (Q[0]["G"] - V[0]), abs=1e-6)  # at s_0: shrunk by 1 − 1/G


def _exact_value_at(path: tuple[str, ...], p: tuple[float, ...]) -> dict[int, float]:
    """V before each agent token: V(s_k) at turn k's start, Q(s_k, a_k) after its decision token."""
    V, Q = exact_values(p)
    _, mask, starts = layout(path)
    out: dict[int, float] = {}
    for k, (s, a) in enumerate(zip(starts, path)):
        out[s] = V[k]
        for t in range(s + 1, s + len(TOKENS[a])):
            out[t] = Q[k][a]
    return out


def _over_point_sets(spec: str, p: tuple[float, ...]) -> Callable[..., torch.Tensor]:
    """Segment advantages with exact values at the points, averaged EXACTLY over the point sets `spec` draws."""

    def fn(inp: AdvantageInputs, paths: list[tuple[str, ...]]) -> torch.Tensor:
        out = torch.zeros_like(inp.action_mask, dtype=torch.float64)
        for i, path in enumerate(paths):
            agent = [t for t, m in enumerate(inp.action_mask[i].tolist()) if m]
            starts = inp.turn_starts[i]
            if spec == "random:2":  # the first agent token and one of the others, uniformly
                sets = (
                    [([agent[0]], 1.0)]
                    if len(agent) == 1
                    else [([agent[0], t], 1 / (len(agent) - 1)) for t in agent[1:]]
                )
            else:  # sample:0.5 -- the first turn start and each later one with probability 1/2
                sets = [
                    ([starts[0], *[s for s, keep in zip(starts[1:], bits) if keep]], 0.5 ** (len(starts) - 1))
                    for bits in itertools.product([0, 1], repeat=len(starts) - 1)
                ]
            v = _exact_value_at(path, p)
            for D, w in sets:
                one = AdvantageInputs(
                    rewards=inp.rewards[i : i + 1],
                    action_mask=inp.action_mask[i : i + 1],
                    group_ids=inp.group_ids[i : i + 1],
                    turn_starts=[starts],
                    branch_positions=[D],
                    branch_values=[[v[t] for t in D]],
                )
                out[i] += w * trepo(one).advantages[0].to(torch.float64)
        return out

    return fn


def test_branch_points_must_not_look_ahead() -> None:
    # `segment` is unbiased for any point set in which "is p a point" is decided by the tokens before p (optional
    # stopping). random:k draws among all n agent positions, so on a long episode each position is less likely a
    # point: the next point after a decision lands where the episode's own length put it, and E[A | s, a] moves
    E = expected_advantage(_over_point_sets("random:2", UNEQUAL), UNEQUAL, needs_paths=True)
    V, Q = exact_values(UNEQUAL)
    assert abs(E[(0, "G")] - (Q[0]["G"] - V[0])) > 1e-3
    # the hand value: after G the point is uniform over n − 1 = 3, 5 or 6 positions of G·S, G·H, G·G·F
    want = (0.4 * Q[0]["G"] + 0.1 * (3 * Q[0]["G"] + 2 * Q[1]["H"]) / 5 + 0.5 * (3 * Q[0]["G"] + 3 * V[2]) / 6) - V[0]
    assert E[(0, "G")] == pytest.approx(want, abs=1e-6)
    assert not unbiased(E, UNEQUAL)
    # sample:q (turn starts kept by independent draws) and divergence (group-dependent, never ahead) keep it: the
    # slope is 1 everywhere, and where turn k is not a point its baseline is the last point's value, V(s_j), j < k --
    # a function of the past, the same for every action at s_k
    for p in MDPS:
        V, Q = exact_values(p)
        for E in (
            expected_advantage(_over_point_sets("sample:0.5", p), p, needs_paths=True),
            expected_advantage(_divergence(p), p, G=2, needs_paths=True),
        ):
            assert unbiased(E, p)
            for k in range(N_TURNS - 1):
                shift = [E[(k, a)] - (Q[k][a] - V[k]) for a in "SHG"]
                assert max(shift) - min(shift) < 1e-6


def _divergence(p: tuple[float, ...]) -> Callable[..., torch.Tensor]:
    def fn(inp: AdvantageInputs, paths: list[tuple[str, ...]]) -> torch.Tensor:
        gid = inp.group_ids.tolist()
        seqs = [[1000 + gid[i], *layout(path)[0]] for i, path in enumerate(paths)]  # each group its own task
        D = divergence_points(seqs, [[s + 1 for s in st] for st in inp.turn_starts])
        D = [[t - 1 for t in d] for d in D]
        vals = [[_exact_value_at(path, p)[t] for t in d] for path, d in zip(paths, D)]
        return trepo(dataclasses.replace(inp, branch_positions=D, branch_values=vals)).advantages

    return fn


def test_trepo_interpolate_divides_by_the_turn_length() -> None:
    # interpolate gives the decision token (V(s_{k+1}) − V(s_k)) / L, L the segment's realised agent tokens: the
    # same Q, a 3-token turn, a third of the credit -- positive credit favours short turns, blame favours long ones
    V, Q = exact_values(UNEQUAL)
    E = expected_advantage(adv_of(trepo, mode="interpolate"), UNEQUAL)
    for (k, a), e in E.items():
        assert e == pytest.approx((Q[k][a] - V[k]) / len(TOKENS[a]), abs=1e-6)
    assert not unbiased(E, UNEQUAL)
    assert unbiased(expected_advantage(adv_of(trepo, mode="interpolate"), EQUAL), EQUAL)  # only where Q ≠ V


# -- the turn-level critic (ppo_turn) ------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [1.0, 0.9, 0.0])
def test_turn_gae_undiscounted_is_unbiased_for_any_lambda(lam) -> None:
    # exact critic: E[δ_{k+j} | s_k, a] = 0 for j ≥ 1, so E[A_k | s_k, a] = Q(s_k, a) − V(s_k) whatever λ
    for p in MDPS:
        V, Q = exact_values(p)
        E = expected_advantage(adv_of(turn_gae, gamma=1.0, lam=lam), p)
        for (k, a), e in E.items():
            assert e == pytest.approx(Q[k][a] - V[k], abs=1e-6)
        assert unbiased(E, p)


def test_turn_gae_discount_is_an_explicit_length_penalty() -> None:
    # γ < 1 (the default 0.99): E[A_k | s_k, a] = Q_γ(s_k, a) − V_γ(s_k) of E[γ^(turns after k) · R]; with equal
    # returns, stopping now beats going on by (1 − γ^j)·R -- the discounted objective, not a hidden term
    g = 0.9
    Vg, Qg = exact_values(EQUAL, g)
    E = expected_advantage(adv_of(turn_gae, gamma=g, lam=0.9), EQUAL, gamma=g)
    for (k, a), e in E.items():
        assert e == pytest.approx(Qg[k][a] - Vg[k], abs=1e-6)
    assert E[(0, "S")] > E[(0, "G")] and not unbiased(E, EQUAL)


# -- GiGPO ---------------------------------------------------------------------------------------------------------
def _reach(k: int) -> float:
    return math.prod(PI[j]["G"] for j in range(k))


def _shrink(k: int, G: int) -> float:
    """E[1 − 1/m] for the anchor group at s_k: m = 1 + the other G − 1 episodes that reached s_k (0 when m = 1)."""
    q = _reach(k)
    return sum(math.comb(G - 1, x) * q**x * (1 - q) ** (G - 1 - x) * (1 - 1 / (1 + x)) for x in range(G))


@pytest.mark.parametrize("p", MDPS)
def test_gigpo_undiscounted_is_unbiased(p) -> None:
    # γ = 1, centred only: A = (1 − 1/G)(R − mean of the others) + ω (1 − 1/m)(R − mean of the anchor's others), so
    # E[A | s_k, a] = (1 − 1/G)(Q − J) + ω E[1 − 1/m](Q − V(s_k)): one slope per state, none per action
    G, w = 3, 0.7
    V, Q = exact_values(p)
    J = sum(o[1] * o[2] for o in outcomes(p))
    E = expected_advantage(adv_of(gigpo, gamma=1.0, step_weight=w, scale_std=False), p, G)
    for (k, a), e in E.items():
        assert e == pytest.approx((1 - 1 / G) * (Q[k][a] - J) + w * _shrink(k, G) * (Q[k][a] - V[k]), abs=1e-6)
    assert unbiased(E, p)
    # std-scaled (the default form): still no length term where the returns do not depend on the length
    assert unbiased(expected_advantage(adv_of(gigpo, gamma=1.0, step_weight=w), EQUAL, G), EQUAL)
    assert unbiased(expected_advantage(adv_of(gigpo, gamma=1.0, step_weight=w), BALANCED, G), BALANCED)


def test_gigpo_discount_is_an_explicit_length_penalty() -> None:
    # the default γ = 0.95: step returns γ^(turns after k)·R, so E[A_step | s_k, a] ∝ Q_γ(s_k, a) − V_γ(s_k): with
    # equal returns, stopping now is preferred to going on (and with R < 0, going on is preferred)
    G, w, g = 3, 1.0, 0.95
    Vg, Qg = exact_values(EQUAL, g)
    E = expected_advantage(adv_of(gigpo, gamma=g, step_weight=w, scale_std=False), EQUAL, G)
    for (k, a), e in E.items():  # the episode level is 0 here: Q(s_k, a) = J for every decision
        assert e == pytest.approx(w * _shrink(k, G) * (Qg[k][a] - Vg[k]), abs=1e-6)
    assert E[(0, "S")] > E[(0, "G")] and not unbiased(E, EQUAL)


# -- a readable hand batch: two episodes with the same return and first turn, one stops, one goes on two turns -----
def test_hand_batch_equal_returns_different_lengths() -> None:
    # group of 3: E0 = [turn a] R=1; E1 = [turn a, b, c] R=1; E2 = [turn a] R=0. Turn 0 is the same tokens in all three.
    # Per decision: the turn-0 advantage of E0 and E1 must be equal (same return, only the number of turns after
    # turn 0 differs) for GRPO, GiGPO with γ = 1, the undiscounted critic and TRePO's segment mode.
    masks = [[0, 1, 1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 1, 1, 0, 1, 1, 0], [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]]
    starts = [[1], [1, 4, 7], [1]]
    rewards = [1.0, 1.0, 0.0]
    values = torch.zeros(3, 10)
    values[:, 1] = 2 / 3  # V(s_0): the same state for all three
    values[1, 4], values[1, 7] = 0.8, 0.9  # the critic's later values of E1
    inp = AdvantageInputs(
        rewards=torch.tensor(rewards),
        action_mask=torch.tensor(masks, dtype=torch.float32),
        group_ids=torch.zeros(3, dtype=torch.long),
        turn_starts=starts,
        values=values,
        turn_anchors=[["s0"], ["s0", "x1", "x2"], ["s0"]],
        branch_positions=starts,
        branch_values=[[2 / 3], [2 / 3, 1.0, 1.0], [2 / 3]],
    )
    first = lambda a: (float(a[0, 1]), float(a[1, 1]))  # noqa: E731
    # GRPO: (1 − 2/3) / std of (1, 1, 0) on both
    e0, e1 = first(grpo(inp).advantages)
    assert e0 == e1 == pytest.approx((1 - 2 / 3) / (1 / 3) ** 0.5, rel=1e-5)
    # GiGPO, γ = 1: step returns 1, 1, 0 at anchor s0, equal for E0 and E1; γ = 0.95: E1's is 0.95² = 0.9025 < 1
    e0, e1 = first(gigpo(inp, gamma=1.0).advantages)
    assert e0 == pytest.approx(e1)
    e0, e1 = first(gigpo(inp, gamma=0.95, scale_std=False).advantages)
    step = [1.0, 0.95**2, 0.0]
    m = sum(step) / 3
    assert e0 - e1 == pytest.approx((step[0] - m) - (step[1] - m), rel=1e-5) and e0 > e1
    # Turn-level critic, γ = λ = 1: A_0 = R − V_0 for both; γ = 0.99: E1's A_0 = 0.99² · R − V_0 (λ = 1)
    e0, e1 = first(turn_gae(inp, gamma=1.0, lam=1.0).advantages)
    assert e0 == pytest.approx(1 - 2 / 3) and e1 == pytest.approx(e0)
    e0, e1 = first(turn_gae(inp, gamma=0.99, lam=1.0).advantages)
    assert e0 == pytest.approx(1 - 2 / 3) and e1 == pytest.approx(0.99**2 - 2 / 3, rel=1e-5)
    # TRePO segment: turn 0 gets V̂(next point) − V̂(s_0); E1's next point has V̂ = 1 = E0's R: equal
    e0, e1 = first(trepo(inp).advantages)
    assert e0 == pytest.approx(1 / 3) and e1 == pytest.approx(e0)
    # interpolate: E0's turn 0 is one 2-token segment [1, end), E1's the same 2 tokens: equal here, since the
    # segments are turns (the number of turns never enters); only the turn's own length does (the test above)
    e0, e1 = first(trepo(inp, mode="interpolate").advantages)
    assert e0 == pytest.approx(1 / 6) and e1 == pytest.approx(e0)
