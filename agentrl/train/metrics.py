"""Per-update metrics: one JSON line per update in `metrics.jsonl`, a console line, optional TensorBoard."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from agentrl.core.bounded import BoundedInputError, loads_bounded
from agentrl.core.io import atomic_write_text

CONSOLE_KEYS = (
    ("reward/mean", "reward", ".3f"),
    ("success_rate", "success", ".2f"),
    ("eval/success_rate", "held-out", ".2f"),
    ("kl", "kl", ".4f"),
    ("clip_fraction", "clip", ".3f"),
    ("grad_norm", "gnorm", ".3f"),
    ("tokens/sampled", "tok", ".0f"),
    ("tokens/branch", "branch_tok", ".0f"),
    ("time/total", "s", ".1f"),
)


class MetricsLogger:
    def __init__(self, run_dir: str | Path, *, tensorboard: bool = False, console: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.console = console
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # the optional extra is missing: say so, do not silently drop
                raise RuntimeError(
                    "train.tensorboard=true needs the tensorboard package: pip install 'agentrl[tensorboard]'"
                ) from exc
            self.tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines logged after the checkpoint's step (they will be logged again)."""
        if not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                row = loads_bounded(line)
            except BoundedInputError:
                continue  # a line cut by a kill mid-write (or not ours)
            if isinstance(row, dict) and row.get("step", 0) <= step:
                keep.append(line)
        atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def log(self, step: int, metrics: dict[str, Any], total_steps: int | None = None) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, step)
        if self.console:
            parts = [f"update {step}" + (f"/{total_steps}" if total_steps else "")]
            for key, label, fmt in CONSOLE_KEYS:
                if isinstance(row.get(key), (int, float)):
                    parts.append(f"{label}={row[key]:{fmt}}")
            print("  ".join(parts), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN; keep it visible rather than dropping it
    return v


class NullLogger:
    """What ranks other than 0 log with: nothing (rank 0 writes metrics.jsonl and the console line)."""

    def truncate_after(self, step: int) -> None:
        pass

    def log(self, step: int, metrics: dict[str, Any], total_steps: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass
