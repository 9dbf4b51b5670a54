"""TRePO advantages from Monte-Carlo values at branch points, plus the pure helpers the trainer uses
to pick branch points and estimate V̂ (DESIGN.md, "TRePO, as this kit implements it").

Theorem 2 of the paper: ∇J = E_W Σ_t (E[RM(W^(t+1))] − E[RM(W^(t))]) ∇log π(w_t | W_<t), where
E[RM(W^(t))] = V(s_t) is the value before agent token t. V is only estimated at the branch points D;
between them we either hand the whole difference to each token (`segment`) or split it evenly
(`interpolate`, i.e. V̂ linear in the agent-token index).
"""

from __future__ import annotations

import random
import re

import torch

from .base import AdvantageInputs, AdvantageOutput, check_inputs

TREPO_MODES = ("segment", "interpolate")
TREPO_BASELINES = ("leave_own_out", "with_own")


def _episode_points(
    i: int, agent_pos: list[int], positions: list[int], values: list[float], T: int
) -> tuple[list[int], list[float]]:
    """Map episode i's branch positions (token indices) to agent-token indices; validate them."""
    if len(positions) != len(values):
        raise ValueError(f"trepo: episode {i} has {len(positions)} branch positions but {len(values)} branch values")
    index_of = {p: k for k, p in enumerate(agent_pos)}  # token position -> agent-token index
    ks: list[int] = []
    for j, p in enumerate(positions):
        if j > 0 and p <= positions[j - 1]:
            raise ValueError(f"trepo: episode {i} branch positions must be strictly ascending, got {positions}")
        if p not in index_of:
            raise ValueError(
                f"trepo: episode {i} branch position {p} is not an agent token (T={T}; agent tokens are "
                f"where action_mask == 1)"
            )
        ks.append(index_of[p])
    vals = [float(v) for v in values]
    if any(v != v or v in (float("inf"), float("-inf")) for v in vals):
        raise ValueError(f"trepo: episode {i} has non-finite branch values {vals}")
    return ks, vals


def trepo(inp: AdvantageInputs, *, mode: str = "segment", baseline: str = "with_own") -> AdvantageOutput:
    """TRePO advantages (DESIGN.md step 3).

    Per episode, let k index its agent tokens only (env/prompt tokens are not actions), n = #agent tokens,
    D = branch points with values V̂, and "end" = agent index n with V̂(end) = RM(W). For consecutive
    points a < b of D ∪ {end}:
      segment:      A_k = V̂(b) − B̂(a)            for every agent token k in [a, b)
      interpolate:  A_k = (V̂(b) − B̂(a)) / (b − a) for k in [a, b)  (= V̂(k+1) − V̂(k) with V̂ linear in k)
    B̂(a) is the baseline side: with "with_own" (the default, or no baselines given) B̂ = V̂; with
    "leave_own_out" and `inp.branch_baselines` given, V̂(a) without the episode's own return R. With own, R enters
    V̂(a) and V̂(b) with the same weight w = 1/(1 + M) when both points drew M other samples, so it cancels and a
    middle segment gets (1 − w)·(mean of b's samples − mean of a's): unbiased for V(b) − V(a) up to that scale,
    which whitening removes. Leaving R out of B̂(a) only adds w·R of noise to middle segments (measured slower on
    CreditChain: BENCHMARKS.md, "Credit assignment").
    Agent tokens before the first point of D belong to a segment that starts at the first agent token
    with value V̂(first point of D), so their advantage is 0 (we have no value estimate there). If D is
    empty the episode gets 0 everywhere: with no V̂ there is no baseline, and "end" alone spans nothing.
    With B̂ = V̂, in interpolate mode the advantages telescope: Σ_k A_k = RM(W) − V̂(first point).
    Episode length (tests/test_length_bias.py): `segment` is unbiased however many turns or tokens follow a
    decision -- for agent token t in [a, b), E[V(b) | W_<=t] = V(s_{t+1}) when whether a position is a point is
    decided by the tokens before it, and V̂(a) depends on the past only, so E[A_t | s_t, w_t] = Q(s_t, w_t) − V(s_a).
    `interpolate` divides by b − a, the segment's realised agent tokens, which the tokens at and after t decide: an
    action-dependent scale, E[A_t | s_t, w_t] = (Q − V)/L, that spreads credit thin over long segments (long turns,
    or several turns when the points are sparse) -- a length penalty on positive advantages and a length bonus on
    negative ones, as GRPO's per-sequence 1/|o| (Dr. GRPO, Liu et al. 2025). Use it only where turns are all short.
    Raises ValueError on malformed branch input (missing, length mismatch, not ascending, not an agent token).
    """
    if mode not in TREPO_MODES:
        raise ValueError(f"trepo: mode must be one of {TREPO_MODES}, got {mode!r}")
    if baseline not in TREPO_BASELINES:
        raise ValueError(f"trepo: baseline must be one of {TREPO_BASELINES}, got {baseline!r}")
    own_out = inp.branch_baselines if baseline == "leave_own_out" else None  # per episode B̂ without its own R
    if own_out is not None and len(own_out) != len(inp.branch_values or []):
        raise ValueError("trepo: branch_baselines need one list per episode, as branch_values")
    B, T = check_inputs(inp)
    if inp.branch_positions is None or inp.branch_values is None:
        raise ValueError("trepo needs branch_positions and branch_values (one list per episode)")
    if len(inp.branch_positions) != B or len(inp.branch_values) != B:
        raise ValueError(
            f"trepo: branch_positions/branch_values need one list per episode ({B}), got "
            f"{len(inp.branch_positions)}/{len(inp.branch_values)}"
        )
    mask = inp.action_mask > 0  # [B, T]
    n_agent = mask.sum(dim=1).tolist()  # [B] agent tokens per episode
    agent_cols = mask.nonzero(as_tuple=True)[1].split(n_agent)  # per episode: [n] token positions of agent tokens
    per_episode: list[torch.Tensor] = []  # per episode: [n] advantage per agent token, in mask order
    for i in range(B):
        n = n_agent[i]
        ks, vals = _episode_points(
            i, agent_cols[i].tolist(), list(inp.branch_positions[i]), list(inp.branch_values[i]), T
        )
        a = torch.zeros(n, dtype=torch.float64)
        base = list(vals)
        if own_out is not None:
            _, base = _episode_points(i, agent_cols[i].tolist(), list(inp.branch_positions[i]), list(own_out[i]), T)
        if ks:
            ks.append(n)  # "end": one past the last agent token
            vals.append(float(inp.rewards[i]))  # V̂(end) = RM(W)
            k_t = torch.tensor(ks, dtype=torch.long)
            v_t = torch.tensor(vals, dtype=torch.float64)
            diffs = v_t[1:] - torch.tensor(base, dtype=torch.float64)  # [|D|] V̂(b) − B̂(a)
            lengths = k_t[1:] - k_t[:-1]  # [|D|] agent tokens in [a, b); >= 1 since ascending and a < n
            per_tok = diffs if mode == "segment" else diffs / lengths.to(torch.float64)
            # Segment of agent token k = last point a <= k; tokens before the first point keep 0.
            seg = torch.searchsorted(k_t[:-1], torch.arange(ks[0], n), right=True) - 1  # [n - ks[0]]
            a[ks[0] :] = per_tok[seg]
        per_episode.append(a)
    adv = torch.zeros((B, T), dtype=torch.float32)
    if per_episode:
        adv[mask] = torch.cat(per_episode).to(torch.float32)  # boolean-mask order is row-major, as built
    return AdvantageOutput(advantages=adv)


def continuation_rows(
    action_mask: torch.Tensor,
    branch_pos: list[int],
    own: list[float],
    others: list[list[float]],
    *,
    mode: str = "segment",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss mask and advantages of branch continuations trained as rows (`params.train_continuations`).

    Row c ([C, T] `action_mask`, as collated: 1 on every sampled token, the parent's included) is a continuation C
    that branched from its parent W at token position p_c = `branch_pos[c]`: its tokens before p_c are W's prefix,
    not C's actions, so they get mask 0 and no loss. With R(C) = `own[c]` and `others[c]` the returns of the other
    samples from the same prefix W_<p_c (W itself, the other continuations from p_c, the episodes sharing W_<p_c;
    never C, so the baseline does not depend on C's actions and the estimate stays unbiased):

        B̂₋C(p_c) = mean(others[c])
        segment:      A_k = R(C) − B̂₋C(p_c)              on every agent token k of C at or after p_c
        interpolate:  A_k = (R(C) − B̂₋C(p_c)) / n_c      n_c = C's agent tokens at or after p_c

    i.e. the one segment [p_c, end) of C, scored as `trepo` scores an episode's last segment (V̂(end) = R(C)).
    Returns (mask [C, T] float, advantages [C, T] float, exactly 0 where the mask is 0). Raises ValueError when a
    continuation has no other sample (its parent always is one) or the lengths disagree.
    """
    if mode not in TREPO_MODES:
        raise ValueError(f"continuation_rows: mode must be one of {TREPO_MODES}, got {mode!r}")
    C, T = action_mask.shape
    if not len(branch_pos) == len(own) == len(others) == C:
        raise ValueError(
            f"continuation_rows: need one branch position, return and list of others per row ({C}), got "
            f"{len(branch_pos)}, {len(own)}, {len(others)}"
        )
    mask = action_mask.to(torch.float32).clone()
    adv = torch.zeros((C, T), dtype=torch.float32)
    for c in range(C):
        if not others[c]:
            raise ValueError(f"continuation_rows: row {c} has no other sample from its prefix (its parent is one)")
        vals = [float(own[c]), *map(float, others[c])]
        if any(v != v or v in (float("inf"), float("-inf")) for v in vals):
            raise ValueError(f"continuation_rows: row {c} has non-finite returns {vals}")
        mask[c, : branch_pos[c]] = 0.0
        n = int((mask[c] > 0).sum().item())
        if n == 0:
            continue
        a = vals[0] - sum(vals[1:]) / len(others[c])
        adv[c] = torch.where(
            mask[c] > 0,
            torch.tensor(a if mode == "segment" else a / n, dtype=torch.float32),
            torch.zeros((), dtype=torch.float32),
        )
    return mask, adv


# ---------------------------------------------------------------- branch points and MC values

_SPEC_FORMS = '"none", "turns", "turns+every:L" (L >= 1), "random:k" (k >= 1), "sample:q" (0 < q <= 1), "divergence"'


def select_branch_points(
    turn_starts: list[int], agent_positions: list[int], spec: str, rng: random.Random
) -> list[int]:
    """Branch points D (token positions, ascending, each an agent token) for one episode (DESIGN.md step 1).

    spec:
      "none"            -> []
      "turns"           -> the first token of every agent turn (the paper's turn-aware setting)
      "turns+every:L"   -> also every L-th agent token inside a turn, counted from the turn start (0, L, 2L, ...)
      "random:k"        -> k distinct agent positions drawn with `rng`, always including the first agent token
                           (so the first turn's value, free from the group, is always used); all if k >= n
      "sample:q"        -> the first turn's start, and each later turn start independently with probability q
                           (one `rng.random()` per turn start, in order)
      "divergence"      -> every turn start here; `divergence_points` then keeps those the batch's other episodes
                           share, and the first one at which this episode is alone (it needs the other sequences)
    Which of these are unbiased with `segment` advantages: a point set is safe when whether position p is a point
    is decided by the tokens before p (and by things independent of the episode: the rng, the other episodes), so
    that the next point after any token is a stopping time and E[V(next point) | W_<=t] = V(s_{t+1}) (optional
    stopping). "turns", "turns+every:L", "sample:q" and "divergence" are; "random:k" is not: it draws among all n
    agent positions, so each position's chance of being a point is (k − 1)/(n − 1), set by how long the episode
    turns out to be (tests/test_length_bias.py measures the bias; use "sample:q" for random subsets).
    Raises ValueError for an unknown spec or a turn start that is not an agent position.
    """
    spec = spec.strip()
    agent = sorted(agent_positions)
    agent_set = set(agent)
    if spec == "none":
        return []
    m_every = re.fullmatch(r"turns\+every:(\d+)", spec)
    m_rand = re.fullmatch(r"random:(\d+)", spec)
    m_sample = re.fullmatch(r"sample:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)", spec)
    if spec in ("turns", "divergence") or m_every or m_sample:
        starts = sorted(turn_starts)
        bad = [s for s in starts if s not in agent_set]
        if bad:
            raise ValueError(f"select_branch_points: turn starts {bad} are not agent positions")
        if spec in ("turns", "divergence"):
            return starts
        if m_sample:
            q = float(m_sample.group(1))
            if not 0.0 < q <= 1.0:
                raise ValueError(f"select_branch_points: q must be in (0, 1] in {spec!r}; allowed: {_SPEC_FORMS}")
            # one draw per turn start, in order: whether turn j is a point never depends on the turns after it
            return [s for j, s in enumerate(starts) if j == 0 or rng.random() < q]
        L = int(m_every.group(1))  # type: ignore[union-attr]
        if L < 1:
            raise ValueError(f"select_branch_points: L must be >= 1 in {spec!r}; allowed: {_SPEC_FORMS}")
        out: list[int] = []
        bounds = starts + [float("inf")]
        # Agent tokens of turn j are those in [start_j, start_{j+1}); count them from the turn start.
        for j, s in enumerate(starts):
            in_turn = [p for p in agent if s <= p < bounds[j + 1]]
            out += in_turn[::L]
        return sorted(set(out))
    if m_rand:
        k = int(m_rand.group(1))
        if k < 1:
            raise ValueError(f"select_branch_points: k must be >= 1 in {spec!r}; allowed: {_SPEC_FORMS}")
        if not agent:
            return []
        rest = rng.sample(agent[1:], min(k - 1, len(agent) - 1))
        return sorted([agent[0], *rest])
    raise ValueError(f"select_branch_points: unknown spec {spec!r}; allowed: {_SPEC_FORMS}")


def divergence_points(sequences: list[list[int]], positions: list[list[int]]) -> list[list[int]]:
    """Branch points only where the batch's episodes diverge (`branch_points=divergence`), from candidate positions
    (each episode's turn starts, ascending).

    Episode i keeps, in order, each candidate t whose prefix W_i[:t] another episode of the batch shares (its value
    has sharing samples, free when there are at least M of them), and the first candidate at which no other episode
    shares W_i's prefix -- the turn at which W_i has left every sibling -- and then stops: after it W_i is alone,
    and its one last segment [that point, end) gets R − V̂(point) from M continuations there, instead of M at every
    later turn. Whether t is kept depends only on W_i[:t] and the other episodes, so every point is a stopping time
    and `segment` advantages stay unbiased (the docstring of `select_branch_points`).
    Returns out[i] ⊆ positions[i], ascending.
    """
    shared = shared_prefix_values(sequences, [0.0] * len(sequences), positions)
    out: list[list[int]] = []
    for ps, sh in zip(positions, shared):
        keep: list[int] = []
        for t, others in zip(ps, sh):
            keep.append(t)
            if not others:
                break
        out.append(keep)
    return out


def branch_temperatures(m: int, t_min: float, t_max: float) -> list[float]:
    """M continuation temperatures rising linearly from t_min (0 = greedy) to t_max (DESIGN.md step 2).

    m = 1 -> [t_min]. Raises ValueError for m < 1, a negative temperature, or t_min > t_max.
    """
    if m < 1:
        raise ValueError(f"branch_temperatures: m must be >= 1, got {m}")
    if t_min < 0 or t_max < 0 or t_min > t_max:
        raise ValueError(f"branch_temperatures: need 0 <= t_min <= t_max, got t_min={t_min}, t_max={t_max}")
    if m == 1:
        return [float(t_min)]
    return [t_min + (t_max - t_min) * j / (m - 1) for j in range(m)]


def mc_baseline(continuation_rewards: list[float], sharing_rewards: list[float]) -> float | None:
    """B̂(t): V̂(t) without the episode's own return -- the mean RM over the continuations from W_<t and the other
    sampled episodes sharing W_<t; None when there is none (the caller then falls back to `mc_value`)."""
    rs = [*map(float, continuation_rewards), *map(float, sharing_rewards)]
    return sum(rs) / len(rs) if rs else None


def mc_value(own_reward: float, continuation_rewards: list[float], sharing_rewards: list[float]) -> float:
    """V̂(t) = mean RM over the M continuations from W_<t, every OTHER sampled episode sharing the prefix
    W_<t, and W itself (DESIGN.md step 2). W always shares its own prefix, so its reward is always included:
    V̂ is never an empty mean, and with no continuations it is the group's (leave-none-out) mean.
    """
    rs = [float(own_reward), *map(float, continuation_rewards), *map(float, sharing_rewards)]
    return sum(rs) / len(rs)


_HASH_MOD = (1 << 61) - 1  # Mersenne prime: polynomial rolling hash of token prefixes
_HASH_BASE = 1_000_003


def _prefix_hashes(seq: list[int]) -> list[int]:
    """h[t] = hash of seq[:t], t = 0..len(seq)."""
    h = [0] * (len(seq) + 1)
    acc = 0
    for t, tok in enumerate(seq):
        acc = (acc * _HASH_BASE + tok + 1) % _HASH_MOD
        h[t + 1] = acc
    return h


def shared_prefix_values(
    sequences: list[list[int]], rewards: list[float], positions: list[list[int]]
) -> list[list[list[float]]]:
    """For episode i and each t in positions[i]: rewards of the OTHER episodes j with
    sequences[j][:t] == sequences[i][:t] (j must have at least t tokens).

    This is how the group's episodes give V̂ at the first turn for free (they share the prompt), and how
    episodes that happen to agree on a longer prefix share evidence. Prefixes are bucketed by a rolling
    hash, so the cost is O(total tokens + Σ|positions|·B_bucket); every hash match is confirmed by an
    exact comparison, so a collision can never merge different prefixes.
    Returns out[i][d] = list of rewards (order: ascending j).
    """
    B = len(sequences)
    if len(rewards) != B or len(positions) != B:
        raise ValueError(
            f"shared_prefix_values: need one reward and one position list per sequence ({B}), got "
            f"{len(rewards)} rewards, {len(positions)} position lists"
        )
    for i, ps in enumerate(positions):
        for t in ps:
            if not 0 <= t <= len(sequences[i]):
                raise ValueError(f"shared_prefix_values: position {t} outside episode {i} (len {len(sequences[i])})")
    needed = sorted({t for ps in positions for t in ps})
    hashes = [_prefix_hashes(s) for s in sequences]
    buckets: dict[tuple[int, int], list[int]] = {}  # (t, hash of prefix[:t]) -> episodes j
    for j, s in enumerate(sequences):
        for t in needed:
            if t > len(s):
                break
            buckets.setdefault((t, hashes[j][t]), []).append(j)
    out: list[list[list[float]]] = []
    for i, ps in enumerate(positions):
        per_pos: list[list[float]] = []
        for t in ps:
            cand = buckets.get((t, hashes[i][t]), [])
            prefix = sequences[i][:t]
            per_pos.append([float(rewards[j]) for j in cand if j != i and sequences[j][:t] == prefix])
        out.append(per_pos)
    return out
