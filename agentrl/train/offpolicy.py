"""The off-policy correction of an update's batch (`ppo.offpolicy_correction`, issue 34 part 4).

PPO's ratio is π_θ / π_old, with π_old the policy the tokens were sampled from. When the sampler is not the
trainer's own forward at the weights being trained — a vLLM engine or remote servers (other kernels, other
precision), or asynchronous rollouts (weights up to `rollout.max_staleness` updates older) — the trainer
recomputes π_old itself and weighs each token's loss by ρ = π_old / π_sampler, truncated or masked
(`losses.importance_weights`). The recompute is one extra forward pass over the batch, without gradient.

With the sampler's own weights and engine (max_staleness 0, the transformers backend) ρ = 1 up to rounding and
the correction is a no-op, so `auto` leaves it off there (and today's update stays bit for bit as it was).
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from agentrl.algo.losses import importance_weights
from agentrl.core.types import TrainBatch
from agentrl.train.config import PPOConfig
from agentrl.train.invariants import check_logprob_drift
from agentrl.train.update import recompute_logprobs


def correct_batch(
    model: nn.Module,
    batch: TrainBatch,
    cfg: PPOConfig,
    *,
    mode: str,
    temperature: float,
    same_weights: bool,
    autocast: bool = False,
) -> tuple[TrainBatch, dict[str, float]]:
    """`batch` with old_logprobs recomputed by `model` (π_old), the sampler's kept as sampler_logprobs, and
    is_weights set; plus the stats (`importance_weights`'s). `same_weights`: the sampler held the trainer's
    weights (synchronous rollouts), so π_old and π_sampler must agree up to the engines' numerics and
    `check_logprob_drift` checks it (with asynchronous rollouts they differ by design)."""
    old = recompute_logprobs(
        model,
        batch,
        temperature,
        micro_batch_size=cfg.micro_batch_size,
        autocast=autocast,
        shared_prefix=cfg.shared_prefix,
    )
    sampler = batch.old_logprobs
    weights, stats = importance_weights(old, sampler, batch.action_mask, mode=mode, cap=cfg.is_cap)
    if same_weights:
        stats.update(
            check_logprob_drift(
                old, sampler, batch.action_mask, warn_at=cfg.logprob_drift_warn_at, error_at=cfg.logprob_drift_error_at
            )
        )
    return replace(batch, old_logprobs=old, sampler_logprobs=sampler, is_weights=weights), stats
