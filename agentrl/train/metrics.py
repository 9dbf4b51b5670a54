"""Per-update metrics: one JSON line per update in `metrics.jsonl`, a console line, and the same row to each
experiment tracker of `train.report_to` (train/trackers.py)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentrl.core.bounded import BoundedInputError, loads_bounded
from agentrl.core.io import atomic_write_text
from agentrl.core.outcomes import error_text
from agentrl.train.trackers import numeric, open_trackers

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
    """`report_to`: tracker names (train/trackers.py); `config`: the run's config, logged as their hyperparameters;
    `resume`: continue the tracker runs recorded in the run directory. `report`, when set (the CLI sets
    agentrl.report.write_report), writes the HTML report at close, and each tracker with artifacts gets it."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        report_to: Sequence[str] = (),
        config: dict[str, Any] | None = None,
        resume: bool = False,
        console: bool = True,
    ):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.console = console
        self.report: Callable[[Path], str | Path] | None = None
        self.report_path: Path | None = None
        self.trackers = open_trackers(report_to, run_dir, config, resume=resume)
        self.failed_trackers: list[str] = []  # trackers dropped after an error (`_guarded`)

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
        values = numeric(metrics)  # the raw numbers: NaN stays a float for the trackers
        for tracker in list(self.trackers):
            self._guarded(tracker, "log", lambda t=tracker: t.log(step, values))
        if self.console:
            parts = [f"update {step}" + (f"/{total_steps}" if total_steps else "")]
            for key, label, fmt in CONSOLE_KEYS:
                if isinstance(row.get(key), (int, float)):
                    parts.append(f"{label}={row[key]:{fmt}}")
            print("  ".join(parts), file=sys.stderr, flush=True)

    def _guarded(self, tracker: Any, what: str, call: Any) -> None:
        """A tracker that fails (a full disk, a dead server, a bug in its library) is dropped with one warning, and
        the run goes on: metrics.jsonl keeps every row, and a tracker is a copy of it."""
        try:
            call()
        except Exception as exc:
            if tracker in self.trackers:
                self.trackers.remove(tracker)
            self.failed_trackers.append(type(tracker).__name__)
            print(
                f"warning: {type(tracker).__name__} failed to {what} ({error_text(exc)}); it gets no more rows this "
                f"run, metrics.jsonl has them all",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        try:
            if self.report is not None:
                path = self.report_path = Path(self.report(self.path.parent))
                for tracker in list(self.trackers):
                    self._guarded(tracker, "store the report", lambda t=tracker: t.artifact(path))
        finally:
            for tracker in list(self.trackers):
                self._guarded(tracker, "close", tracker.close)
            self.trackers = []


def frac_zero_spread(episodes: list[Any], flat: set[int] | None = None) -> float:
    """`groups/frac_reward_zero_std` without dynamic sampling (with it, `Refill.metrics` logs the first draw's):
    the fraction of the batch's groups whose rewards are all equal, which carry no signal for a group baseline.
    `flat`: those groups' ids, where the caller has them already (`dynamic_sampling.zero_spread_groups`)."""
    if flat is None:
        from agentrl.train.dynamic_sampling import zero_spread_groups

        flat = set(zero_spread_groups(episodes))
    groups = {ep.group_id for ep in episodes}
    return len(flat) / max(len(groups), 1)


def family_metrics(rows: Sequence[tuple[str | None, float, bool]]) -> dict[str, float]:
    """What each task family (`MultiTurnEnv.task_family`) contributed to the update's batch, from one
    (family, reward, group has spread) row per episode: `family/<name>/episodes`, `family/<name>/reward` (mean) and
    `family/<name>/spread` (the share of its episodes in a group with a reward spread, the ones a group baseline
    trains on). A family that is learned while another is lost (a one-call shortcut) shows here, update by update;
    tasks without a family are left out, and an env without families logs nothing."""
    by: dict[str, list[tuple[float, bool]]] = {}
    for fam, reward, spread in rows:
        if fam is not None:
            by.setdefault(fam, []).append((float(reward), bool(spread)))
    out: dict[str, float] = {}
    for fam in sorted(by):
        eps = by[fam]
        out[f"family/{fam}/episodes"] = float(len(eps))
        out[f"family/{fam}/reward"] = sum(r for r, _ in eps) / len(eps)
        out[f"family/{fam}/spread"] = sum(1.0 for _, s in eps if s) / len(eps)
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN; keep it visible rather than dropping it
    return v


class NullLogger:
    """What ranks other than 0 log with: nothing (rank 0 writes metrics.jsonl and the console line)."""

    report: Any = None
    report_path: Path | None = None

    def truncate_after(self, step: int) -> None:
        pass

    def log(self, step: int, metrics: dict[str, Any], total_steps: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass
