"""What one update's batch logs: episode outcomes, per-family rows, advantage moments, and which episodes are
written out. Each function is over every rank's episodes (gathered in rank order: one process's order), so a
multi-process run logs what one process would."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch

from agentrl.algo.advantages import masked_moments
from agentrl.core.types import Episode, TrainBatch
from agentrl.train import distributed


def episode_metrics(episodes: list[Episode]) -> dict[str, float]:
    """reward/mean|std|max|min, success_rate (over the episodes with a success), episode/turns|env_errors|truncated,
    and breakdown/<k>: each numeric reward component (e.g. FlightBooking's policy_violations), averaged over the
    episodes that have it."""
    rows = [
        (
            ep.reward,
            ep.success,
            len(ep.turns),
            ep.truncated,
            sum(v for k, v in ep.metrics.items() if k.startswith("errors/")),
            dict(ep.reward_breakdown),
        )
        for ep in episodes
    ]
    rows = distributed.all_gather_lists(rows, "the metrics all-gather")
    r = np.array([row[0] for row in rows], dtype=np.float64)
    succ = [row[1] for row in rows if row[1] is not None]
    parts: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row[5].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                parts.setdefault(f"breakdown/{k}", []).append(float(v))
    return {
        **{k: float(np.mean(v)) for k, v in sorted(parts.items())},
        "reward/mean": float(r.mean()),
        "reward/std": float(r.std()),
        "reward/max": float(r.max()),
        "reward/min": float(r.min()),
        "success_rate": float(np.mean(succ)) if succ else float("nan"),
        "episode/turns": float(np.mean([row[2] for row in rows])),
        "episode/env_errors": float(sum(row[4] for row in rows)),
        "episode/truncated": float(np.mean([row[3] for row in rows])),
    }


def family_rows(
    episodes: list[Episode], families: dict[str, str | None], flat: set[int]
) -> list[tuple[str | None, float, bool]]:
    """(family, reward, group has a spread) per episode of every rank, the rows `metrics.family_metrics` reads;
    `families` maps task ids to families, `flat` holds the groups whose rewards are all equal."""
    rows = [(families.get(ep.task_id), float(ep.reward), ep.group_id not in flat) for ep in episodes]
    return distributed.all_gather_lists(rows, "the family all-gather")


def advantage_metrics(batch: TrainBatch) -> dict[str, float]:
    """adv/mean, adv/std and adv/abs_max over the agent tokens of every rank's rows ({} without agent tokens)."""
    n, mean, std = masked_moments(
        batch.advantages,
        batch.action_mask,
        sum_all=partial(distributed.all_reduce_sum, what="the metrics all-reduce"),
    )
    if n == 0:
        return {}
    a = batch.advantages[batch.action_mask > 0].to(torch.float64)
    top = distributed.all_reduce_max(
        a.abs().max().reshape(1) if a.numel() else torch.zeros(1, dtype=torch.float64), "the metrics all-reduce"
    ).item()
    return {"adv/mean": float(mean), "adv/std": float(std), "adv/abs_max": top}


def best_and_worst(rewards: Sequence[float | None], n: int) -> list[int]:
    """Indices of the n // 2 lowest and the n − n // 2 highest rewards (the episodes `train.log_episodes` writes),
    in their original order; fewer when there are fewer than n."""
    known = [float(r) for r in rewards if r is not None]
    if len(known) < len(rewards):
        raise ValueError("best_and_worst: every episode written out has a reward (these are the run's own episodes)")
    order = sorted(range(len(known)), key=known.__getitem__)
    return sorted(set(order[-(n - n // 2) :] + order[: n // 2]))
