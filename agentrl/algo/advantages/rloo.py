"""RLOO: REINFORCE with a leave-one-out baseline (Kool et al. 2019; Ahmadian et al. 2024)."""

from __future__ import annotations

import torch

from .base import AdvantageInputs, AdvantageOutput, broadcast, check_inputs, group_stats


def rloo(inp: AdvantageInputs) -> AdvantageOutput:
    """A_t = r_i − (1/(n_g−1)) Σ_{j≠i in g} r_j on every agent token; groups of size 1 get 0.

    Leaving the episode out keeps the baseline independent of its own action, so the estimate is unbiased.
    """
    check_inputs(inp)
    s, n, _ = group_stats(inp.rewards, inp.group_ids)  # [B]
    r = inp.rewards.to(torch.float64)
    a = torch.where(n > 1, r - (s - r) / (n - 1).clamp(min=1), torch.zeros_like(r))
    return AdvantageOutput(advantages=broadcast(a, inp.action_mask))
