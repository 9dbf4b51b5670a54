"""REINFORCE (Williams 1992): the episode's reward, optionally minus the batch mean, on every agent token."""

from __future__ import annotations

from .base import AdvantageInputs, AdvantageOutput, broadcast, check_inputs

REINFORCE_BASELINES = ("none", "batch_mean")


def reinforce(inp: AdvantageInputs, *, baseline: str = "none") -> AdvantageOutput:
    """A_t = r_i (baseline="none") or r_i − mean_j r_j over the batch (baseline="batch_mean").

    The batch mean includes r_i itself, which biases the gradient by a factor (1 − 1/B); it is the
    textbook variance-reduction baseline, kept for comparison (RLOO is the unbiased variant).
    """
    check_inputs(inp)
    if baseline not in REINFORCE_BASELINES:
        raise ValueError(f"reinforce: baseline must be one of {REINFORCE_BASELINES}, got {baseline!r}")
    r = inp.rewards.float()
    a = r - r.mean() if baseline == "batch_mean" and r.numel() else r
    return AdvantageOutput(advantages=broadcast(a, inp.action_mask))
