"""Turn-level GAE: PPO's critic read only at turn boundaries (Turn-PPO, Li et al. 2025, arXiv:2512.17008).

Turn-PPO recasts the episode as a turn-level MDP: state s_k is the history up to agent turn k (its prompt and
every earlier turn and observation), action a_k is the whole turn the agent samples. The critic is read once per
turn, GAE runs over turns, and every token of a turn shares the turn's advantage. The paper reports γ ≈ 0.99,
λ ≈ 0.9 best in its ablation.
"""

from __future__ import annotations

import torch

from .base import AdvantageInputs, AdvantageOutput, check_inputs


def turn_gae(inp: AdvantageInputs, *, gamma: float = 0.99, lam: float = 0.9) -> AdvantageOutput:
    """GAE over the agent turns k = 0..n-1 of each episode (turn k starts at `turn_starts[k]`):

        V_k = values[b, turn_starts[k]]   (V before the turn's first token: the state s_k the turn acts in)
        δ_k = r_k + γ V_{k+1} − V_k,   A_k = Σ_j (γλ)^j δ_{k+j},   returns_k = A_k + V_k

    with r_k = 0 except r_{n-1} = R (the episode's return, after its last turn) and V_n = 0 (nothing after
    the end). Discounting counts turns, not tokens. Every agent token of turn k (positions turn_starts[k] up
    to the next start) gets A_k; agent tokens before the first start (none in a collated Episode) get 0.
    returns holds returns_k at each turn's first token only, and value_mask is 1 exactly there: the value
    loss trains V_k and nothing between turn boundaries, so the head learns one value per state s_k.

    Episode length (tests/test_length_bias.py): with an exact critic E[A_k | s_k, a] = Q_γ(s_k, a) − V_γ(s_k) for
    any λ, the values of E[γ^(turns left) · R]; so γ = 1 is unbiased for E[R] whatever the number of turns, and
    γ < 1 (the default 0.99) is an explicit penalty of 1 − γ per extra turn on a positive return. Discounting
    counts turns, never tokens, so a long turn costs nothing.

    Raises ValueError without values, or when a turn start is out of order or not an agent token.
    """
    B, T = check_inputs(inp)
    if inp.values is None:
        raise ValueError("turn_gae needs values [B, T] from a value head")
    if inp.values.shape != (B, T):
        raise ValueError(f"turn_gae: values must be [B, T]=[{B}, {T}], got {tuple(inp.values.shape)}")
    mask = inp.action_mask > 0
    values = inp.values.detach().to(torch.float64)
    rewards = inp.rewards.to(torch.float64).tolist()
    adv = torch.zeros((B, T), dtype=torch.float64)
    ret = torch.zeros((B, T), dtype=torch.float64)
    value_mask = torch.zeros((B, T), dtype=torch.float32)
    c = gamma * lam
    for b, starts in enumerate(inp.turn_starts):
        if any(not 0 <= s < T for s in starts) or any(a >= s for a, s in zip(starts, starts[1:])):
            raise ValueError(
                f"turn_gae: episode {b}: turn_starts must be ascending positions in [0, {T}), got {starts}"
            )
        if starts and not bool(mask[b, starts].all()):
            raise ValueError(f"turn_gae: episode {b}: every turn start must be an agent token, got {starts}")
        v = values[b, starts].tolist() + [0.0]  # V_0..V_{n-1}, then V_n = 0
        n = len(starts)
        acc = 0.0
        for k in range(n - 1, -1, -1):  # A_k = δ_k + γλ A_{k+1}
            r = rewards[b] if k == n - 1 else 0.0
            acc = r + gamma * v[k + 1] - v[k] + c * acc
            end = starts[k + 1] if k + 1 < n else T
            adv[b, starts[k] : end] = acc
            ret[b, starts[k]] = acc + v[k]
            value_mask[b, starts[k]] = 1.0
    zero = torch.zeros((), dtype=torch.float64)
    return AdvantageOutput(
        advantages=torch.where(mask, adv, zero).to(torch.float32), returns=ret.to(torch.float32), value_mask=value_mask
    )
