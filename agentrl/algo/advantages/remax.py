"""ReMax: REINFORCE with the greedy rollout's reward as baseline (Li et al. 2023, Algorithm 1)."""

from __future__ import annotations

from .base import AdvantageInputs, AdvantageOutput, broadcast, check_inputs


def remax(inp: AdvantageInputs) -> AdvantageOutput:
    """A_t = r_i − r_greedy(task of i) on every agent token."""
    B, _ = check_inputs(inp)
    if inp.baseline_rewards is None:
        raise ValueError("remax needs baseline_rewards [B]: the reward of each task's greedy rollout")
    if inp.baseline_rewards.shape != (B,):
        raise ValueError(f"remax: baseline_rewards must be [B]=[{B}], got {tuple(inp.baseline_rewards.shape)}")
    return AdvantageOutput(advantages=broadcast(inp.rewards - inp.baseline_rewards, inp.action_mask))
