"""GRPO: group-normalised response reward on every agent token (Shao et al. 2024, DeepSeekMath §4.1.2)."""

from __future__ import annotations

import torch

from .base import AdvantageInputs, AdvantageOutput, broadcast, check_inputs, group_stats


def grpo(inp: AdvantageInputs, *, eps: float = 1e-6, scale_std: bool = True) -> AdvantageOutput:
    """A_t = (r_i − mean_g) / (std_g + eps) on every agent token of episode i in group g.

    std_g is the unbiased (Bessel-corrected, n−1) sample std, as torch.std and the TRL / verl GRPO
    implementations use, so results compare with theirs. scale_std=False drops the division
    (Dr. GRPO, Liu et al. 2025: the std term over-weights near-constant groups). Groups of size 1 get 0:
    with no other episode there is no baseline (and no sample std).
    """
    check_inputs(inp)
    s, n, sq = group_stats(inp.rewards, inp.group_ids)  # [B] each, float64
    r = inp.rewards.to(torch.float64)
    mean = s / n
    var = ((sq - n * mean * mean) / (n - 1).clamp(min=1)).clamp(min=0)  # unbiased; clamp rounding below 0
    a = r - mean
    if scale_std:
        a = a / (var.sqrt() + eps)
    a = torch.where(n > 1, a, torch.zeros_like(a))
    return AdvantageOutput(advantages=broadcast(a, inp.action_mask))
