"""Advantage estimators: one pure function each, looked up by name in REGISTRY (the trainer never
branches on the algorithm's name)."""

from __future__ import annotations

from .base import WHITEN_MODES, AdvantageInputs, AdvantageOutput, EstimatorSpec, masked_moments, whiten
from .gae import gae
from .gigpo import gigpo
from .grpo import grpo
from .params import (
    EstimatorParams,
    GAEParams,
    GiGPOParams,
    GRPOParams,
    NoParams,
    ReinforceParams,
    TRePOParams,
    TurnGAEParams,
    estimator_kwargs,
)
from .reinforce import reinforce
from .remax import remax
from .rloo import rloo
from .trepo import (
    branch_temperatures,
    continuation_rows,
    divergence_points,
    mc_baseline,
    mc_value,
    select_branch_points,
    shared_prefix_values,
    trepo,
)
from .turn_gae import turn_gae

# default_whiten: TRePO's advantages scaled, not centred (DESIGN.md step 4: its per-turn differences are ~1/K of
# GRPO's scale; centring would give every token of an all-equal group −mean/std); PPO-GAE's centred and scaled
# (standard PPO practice), Turn-PPO's too (the same GAE, over turns). None for the comparison points whose papers
# define their own scale: GRPO is already group-normalised (GiGPO's two levels too), and RLOO / ReMax / REINFORCE
# are compared as published.
# `algorithm.whiten` overrides it, e.g. `scale` for every estimator of a comparison, so all of them get the same
# treatment.
REGISTRY: dict[str, EstimatorSpec] = {
    "trepo": EstimatorSpec(fn=trepo, params=TRePOParams, needs_branches=True, default_whiten="scale"),
    "ppo_gae": EstimatorSpec(fn=gae, params=GAEParams, needs_value_head=True, default_whiten="center_scale"),
    "ppo_turn": EstimatorSpec(fn=turn_gae, params=TurnGAEParams, needs_value_head=True, default_whiten="center_scale"),
    "grpo": EstimatorSpec(
        fn=grpo,
        params=GRPOParams,
        default_whiten="none",
        min_group_size=2,
        group_reason="its baseline is the mean of the task's group, so with one episode every advantage is 0",
    ),
    "rloo": EstimatorSpec(
        fn=rloo,
        params=NoParams,
        default_whiten="none",
        min_group_size=2,
        group_reason="its leave-one-out baseline needs another episode of the same task (with one, "
        "every advantage is 0)",
    ),
    "gigpo": EstimatorSpec(
        fn=gigpo,
        params=GiGPOParams,
        needs_anchor_states=True,
        default_whiten="none",
        min_group_size=2,
        group_reason="both its baselines compare episodes of the same task (the group mean, and the "
        "steps from one anchor state across the group's episodes), so with one episode "
        "every advantage is 0",
    ),
    "remax": EstimatorSpec(fn=remax, params=NoParams, needs_greedy_baseline=True, default_whiten="none"),
    "reinforce": EstimatorSpec(fn=reinforce, params=ReinforceParams, default_whiten="none"),
}

__all__ = [
    "REGISTRY",
    "AdvantageInputs",
    "AdvantageOutput",
    "EstimatorSpec",
    "EstimatorParams",
    "estimator_kwargs",
    "whiten",
    "masked_moments",
    "WHITEN_MODES",
    "trepo",
    "gae",
    "turn_gae",
    "grpo",
    "gigpo",
    "rloo",
    "remax",
    "reinforce",
    "select_branch_points",
    "branch_temperatures",
    "continuation_rows",
    "divergence_points",
    "mc_baseline",
    "mc_value",
    "shared_prefix_values",
]
