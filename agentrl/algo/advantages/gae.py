"""PPO's Generalized Advantage Estimation over agent tokens only (Schulman et al. 2016, eq. 16)."""

from __future__ import annotations

import torch

from .base import AdvantageInputs, AdvantageOutput, check_inputs


def gae(inp: AdvantageInputs, *, gamma: float = 1.0, lam: float = 1.0) -> AdvantageOutput:
    """GAE on the sequence of agent tokens k = 0..n-1 of each episode (env/prompt tokens are not actions):

        δ_k = r_k + γ V(s_{k+1}) − V(s_k),   A_k = Σ_l (γλ)^l δ_{k+l},   returns_k = A_k + V(s_k)

    with r_k = 0 except r_{n-1} = RM(W) (terminal reward) and V(s_n) = 0 (nothing after the end).
    On multi-turn episodes the next value of a turn's last token is the value at the first agent token of
    the next turn: env tokens are skipped, since they are not decisions and their values are never trained
    (DESIGN.md: "on multi-turn episodes the next value skips env tokens"). Discounting likewise counts agent
    tokens only. values[b, t] is V before token t, read only at agent tokens.
    """
    B, T = check_inputs(inp)
    if inp.values is None:
        raise ValueError("gae needs values [B, T] from a value head")
    if inp.values.shape != (B, T):
        raise ValueError(f"gae: values must be [B, T]=[{B}, {T}], got {tuple(inp.values.shape)}")
    mask = inp.action_mask > 0  # [B, T]
    n = mask.sum(dim=1)  # [B] agent tokens per episode
    N = int(n.max().item()) if B else 0
    # Pack each episode's agent tokens to the left: packed[b, k] = values at its k-th agent token.
    k_idx = (torch.cumsum(mask.long(), dim=1) - 1)[mask]  # [#agent] agent index of each agent token
    b_idx = mask.nonzero(as_tuple=True)[0]  # [#agent] episode of each agent token
    v = torch.zeros((B, N + 1), dtype=torch.float64)  # [B, N+1]; column N and beyond-n stay 0 = V after the end
    v[b_idx, k_idx] = inp.values.detach().to(torch.float64)[mask]
    r = torch.zeros((B, N), dtype=torch.float64)  # [B, N] reward only on the last agent token
    has = n > 0
    r[has.nonzero(as_tuple=True)[0], n[has] - 1] = inp.rewards.to(torch.float64)[has]
    valid = torch.arange(N)[None, :] < n[:, None]  # [B, N]
    delta = torch.where(valid, r + gamma * v[:, 1:] - v[:, :-1], torch.zeros((), dtype=torch.float64))
    # Backward recursion A_k = δ_k + γλ A_{k+1}, in plain Python floats: one tensor op per step would cost
    # ~N·(op overhead), far more than the arithmetic (δ = 0 past an episode's end keeps A = 0 there).
    c = gamma * lam
    rows = delta.tolist()
    for row in rows:
        acc = 0.0
        for k in range(N - 1, -1, -1):
            acc = row[k] + c * acc
            row[k] = acc
    a = torch.zeros((B, N + 1), dtype=torch.float64)
    a[:, :N] = torch.tensor(rows, dtype=torch.float64).reshape(B, N)
    adv = torch.zeros((B, T), dtype=torch.float32)
    adv[mask] = a[b_idx, k_idx].to(torch.float32)
    ret = torch.zeros((B, T), dtype=torch.float32)
    ret[mask] = (a[b_idx, k_idx] + v[b_idx, k_idx]).to(torch.float32)
    return AdvantageOutput(advantages=adv, returns=ret)
