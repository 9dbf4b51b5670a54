"""Each estimator's parameters as a strict pydantic model (`algorithm.params`), validated when the config
loads, so `algorithm.params.bogus=1` or `branch_points=turnz` fail before a model loads or a rollout runs.

The fields an estimator function takes as keywords are passed to it (`estimator_kwargs`); TRePO's
`branch_*` fields configure the sampling of branch continuations (`train/branch_values.py`), not its pure math.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EstimatorParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN / inf: never a setting


class NoParams(EstimatorParams):
    """RLOO and ReMax take no parameters."""


class TRePOParams(EstimatorParams):
    mode: Literal["segment", "interpolate"] = "segment"
    # turns | turns+every:L | random:k | sample:q | divergence | none (`trepo.select_branch_points`; random:k picks
    # points by the episode's final length, so its segment advantages are biased: tests/test_length_bias.py)
    branch_points: str = "turns"
    branch_m: int = Field(2, ge=1)  # continuations per branch point (M)
    # lowest continuation temperature (0 = greedy); None: the policy's own (rollout.temperature), so V̂ estimates the
    # value of the policy being trained. 0 (greedy first continuation, rising to the policy's temperature) measured
    # faster on CreditChain with M = 2 (BENCHMARKS.md); with M = 1 it makes every V̂ the greedy policy's value, so
    # use None there (benchmarks/agent_learning.py does)
    branch_t_min: float | None = Field(0.0, ge=0.0)
    branch_crn: bool = False  # common random numbers across a trajectory's branch points (train/branch_values.py)
    # the baseline side of each advantage, V̂(a): with the episode's own return (with_own: it enters V̂(a) and V̂(b)
    # alike and cancels, so a middle segment gets an unbiased, scaled estimate of V(b) − V(a) with less noise) or
    # without it (leave_own_out: R/(1+M) more noise on every middle segment; slower on CreditChain, BENCHMARKS.md)
    baseline: Literal["leave_own_out", "with_own"] = "with_own"
    # add each branch continuation sampled at the policy's temperature as a training row: its tokens after the branch
    # point get R(C) − (mean return of the other samples from the same prefix), tokens before it no loss
    # (`trepo.continuation_rows`); continuations that an infrastructure failure ended, or sampled at another
    # temperature (branch_t_min), are not trained
    train_continuations: bool = False

    @field_validator("branch_points")
    @classmethod
    def _known_spec(cls, v: str) -> str:
        from .trepo import select_branch_points

        select_branch_points([0], [0, 1], v, random.Random(0))  # raises ValueError naming the allowed forms
        return v.strip()


class GAEParams(EstimatorParams):
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    lam: float = Field(1.0, ge=0.0, le=1.0)


class TurnGAEParams(EstimatorParams):
    # Turn-PPO's best in its ablation (arXiv:2512.17008): discount and GAE λ per turn, not per token
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    lam: float = Field(0.9, ge=0.0, le=1.0)


class GRPOParams(EstimatorParams):
    eps: float = Field(1e-6, gt=0.0)
    scale_std: bool = True  # False: Dr. GRPO (no division by the group's std)


class GiGPOParams(EstimatorParams):
    step_weight: float = Field(1.0, ge=0.0)  # ω: A = A_episode + ω · A_step (0: GRPO)
    gamma: float = Field(0.95, ge=0.0, le=1.0)  # discount of the step returns γ^(turns to the end) · R
    scale_std: bool = True  # False: both levels only centred (verl-agent's mean_norm)
    eps: float = Field(1e-6, gt=0.0)


class ReinforceParams(EstimatorParams):
    baseline: Literal["none", "batch_mean"] = "none"


def estimator_kwargs(fn: Callable[..., Any], params: EstimatorParams) -> dict[str, Any]:
    """The fields of `params` that `fn` takes as keyword arguments."""
    names = {n for n, p in inspect.signature(fn).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return {k: v for k, v in params.model_dump().items() if k in names}
