"""Shared records and helpers for the advantage estimators.

Every estimator is one pure function `fn(inputs: AdvantageInputs, **params) -> AdvantageOutput`;
the trainer looks it up by name in `REGISTRY` (filled in `agentrl/algo/advantages/__init__.py`) and never
branches on the algorithm's name (DESIGN.md, Conventions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from agentrl.algo.advantages.params import EstimatorParams, NoParams


@dataclass
class AdvantageInputs:
    rewards: Tensor  # [B] float: terminal response-level reward RM(W) per episode
    action_mask: Tensor  # [B, T] float: 1.0 on sampled agent tokens, 0 on prompt / env / padding tokens
    group_ids: Tensor  # [B] long: episodes sampled for the same task share an id
    turn_starts: list[list[int]]  # per episode: token index of the first token of each agent turn, ascending
    values: Tensor | None = None  # [B, T] value-head predictions V(s_t) before token t (gae only)
    baseline_rewards: Tensor | None = None  # [B] reward of the greedy rollout of the episode's task (remax only)
    branch_positions: list[list[int]] | None = None  # trepo: per episode, ascending agent-token positions of D
    branch_values: list[list[float]] | None = None  # trepo: per episode, V̂(t) at each branch position
    # trepo: per episode, V̂(t) at each branch position without the episode's own return (the baseline side)
    branch_baselines: list[list[float]] | None = None
    # gigpo: per episode, the anchor-state key of each turn in turn_starts (equal keys: the same env state after the
    # same messages, `rollout/anchors.py`)
    turn_anchors: list[list[str | None]] | None = None  # a None key (anchors not collected): gigpo refuses it


@dataclass
class AdvantageOutput:
    advantages: Tensor  # [B, T] float, exactly 0 where action_mask == 0
    returns: Tensor | None = None  # [B, T] value targets (gae), 0 where action_mask == 0
    # [B, T] float: where the value loss is taken (turn_gae: each turn's first agent token); None: the action mask
    value_mask: Tensor | None = None


@dataclass(frozen=True)
class EstimatorSpec:
    fn: Callable[..., AdvantageOutput]  # fn(inputs: AdvantageInputs, **params) -> AdvantageOutput
    # its `algorithm.params` model (advantages/params.py); keyword fields go to fn
    params: type[EstimatorParams] = NoParams
    needs_value_head: bool = False
    needs_branches: bool = False
    needs_greedy_baseline: bool = False
    needs_anchor_states: bool = False  # the runner keys each turn's start state (`Turn.anchor`): GiGPO's step groups
    default_whiten: str = "center_scale"  # one of WHITEN_MODES (`whiten`)
    # the smallest rollout.group_size the estimator learns from, and why (checked when the config loads):
    # group-relative baselines need another episode of the same task
    min_group_size: int = 1
    group_reason: str = ""


def check_inputs(inp: AdvantageInputs) -> tuple[int, int]:
    """Validate the shapes every estimator relies on; return (B, T). Raises ValueError on a mismatch."""
    if inp.action_mask.dim() != 2:
        raise ValueError(f"action_mask must be [B, T], got shape {tuple(inp.action_mask.shape)}")
    B, T = inp.action_mask.shape
    if inp.rewards.shape != (B,):
        raise ValueError(f"rewards must be [B]=[{B}], got shape {tuple(inp.rewards.shape)}")
    if inp.group_ids.shape != (B,):
        raise ValueError(f"group_ids must be [B]=[{B}], got shape {tuple(inp.group_ids.shape)}")
    if len(inp.turn_starts) != B:
        raise ValueError(f"turn_starts must have one list per episode ({B}), got {len(inp.turn_starts)}")
    if not torch.isfinite(inp.rewards).all():
        # Conventions: nothing fails silently -- a NaN reward must not become a NaN (or 0) gradient.
        raise ValueError(f"rewards must be finite, got {inp.rewards.tolist()}")
    return B, T


def broadcast(per_episode: Tensor, mask: Tensor) -> Tensor:
    """[B] -> [B, T]: the episode's scalar on every agent token, exactly 0 elsewhere."""
    per_episode = per_episode.to(torch.float32)
    return torch.where(mask > 0, per_episode[:, None].expand_as(mask), torch.zeros((), dtype=torch.float32))


def group_stats(x: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-episode (group sum, group count, group sum of squares) of x [B] over episodes sharing a group id."""
    _, inv = torch.unique(group_ids, return_inverse=True)  # inv: [B] dense group index
    G = int(inv.max().item()) + 1 if inv.numel() else 0
    x64 = x.to(torch.float64)  # float64: sums of squares of rewards should not lose the variance
    s = torch.zeros(G, dtype=torch.float64).index_add_(0, inv, x64)
    n = torch.zeros(G, dtype=torch.float64).index_add_(0, inv, torch.ones_like(x64))
    sq = torch.zeros(G, dtype=torch.float64).index_add_(0, inv, x64 * x64)
    return s[inv], n[inv], sq[inv]


WHITEN_MODES = ("center_scale", "scale", "none")


def masked_moments(
    x: Tensor, mask: Tensor, *, sum_all: Callable[[Tensor], Tensor] | None = None
) -> tuple[int, Tensor, Tensor]:
    """(n, mean, std) of x over the entries with mask > 0: the count and float64 scalars, population std.

    x, mask: any equal shape. sum_all: sums a float64 tensor over processes (`distributed.all_reduce_sum`), so
    the moments are over every rank's masked entries; None: this process only. The order of the arithmetic is
    fixed (sum, then / n; squared deviations from that mean, sum, / n, sqrt), so one process and any number of
    processes holding the same entries agree up to the order of the cross-rank sums. n == 0: mean = std = 0.
    """
    vals = x[mask > 0].to(torch.float64)  # float64: the variance of small advantages should not lose bits
    stats = torch.stack([vals.sum(), torch.tensor(float(vals.numel()), dtype=torch.float64)])
    s, n = sum_all(stats) if sum_all is not None else stats
    count = int(n.item())
    if count == 0:
        zero = torch.zeros((), dtype=torch.float64)
        return 0, zero, zero
    mean = s / n
    ss = (vals - mean).pow(2).sum()
    if sum_all is not None:
        ss = sum_all(ss.reshape(1))[0]
    return count, mean, (ss / n).sqrt()


def whiten(
    adv: Tensor,
    mask: Tensor,
    eps: float = 1e-8,
    *,
    center: bool = True,
    sum_all: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Batch whitening over the masked tokens: (A - mean) / (std + eps), 0 off-mask; center=False: A / (std + eps).

    Scaling without centring keeps each advantage's sign and its zeros: a group whose rewards are all equal (no
    signal) stays at 0 instead of becoming −mean/std on every token, and TRePO's advantages can be put on GRPO's
    scale without moving what they say (issue 28).

    mean and std are over all tokens with mask > 0 in the whole batch (population std, so the masked
    values come out with mean 0 and variance ~1), or over every rank's batch with sum_all (`masked_moments`).
    DESIGN.md step 4: TRePO's per-turn differences are ~1/K the size of GRPO's, so without whitening the same
    learning rate learns several times slower.
    Degenerate cases never produce NaN: no masked token -> zeros; one masked token or std == 0 -> only
    centred (a constant batch carries no ranking information, so dividing would only blow up noise).
    """
    m = mask > 0
    n, mean, std = masked_moments(adv, mask, sum_all=sum_all)
    if n == 0:
        return torch.zeros_like(adv)
    vals = adv[m].to(torch.float64)
    kept = vals - mean if center else vals
    out_vals = kept / (std + eps) if std > 0 else kept
    out = torch.zeros_like(adv)
    out[m] = out_vals.to(adv.dtype)
    return out
