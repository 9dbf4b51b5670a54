"""The learning-rate schedule both trainers use (RL updates, SFT optimizer steps): a multiplier for LambdaLR."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(step: int, total: int, *, schedule: str = "constant", warmup_steps: int = 0) -> float:
    """Linear warm-up over `warmup_steps`, then constant, linear decay to 0, or cosine decay to 0 at `total`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    frac = (step - warmup_steps) / max(1, total - warmup_steps)
    if schedule == "linear":
        return max(0.0, 1.0 - frac)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return 1.0
