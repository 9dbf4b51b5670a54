"""One run per run directory: a fresh run refuses a non-empty directory unless told to resume it or clear it.

Two runs in one directory would interleave their metrics, overwrite each other's config and prune each
other's checkpoints (the newest by step number survives, not the newest written).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agentrl.train.config import ConfigError


def check_run_dir(run_dir: str | Path, *, resume: bool, overwrite: bool, option: str, resume_hint: str = "",
                  overwrite_hint: str = "") -> None:
    """Raise ConfigError unless `run_dir` may be used; changes nothing (clear it later with `clear_run_dir`).

    option names the setting that chose the directory (train.run_dir, --out); the hints name the flags.
    """
    p = Path(run_dir)
    if resume and overwrite:
        raise ConfigError(f"{resume_hint} and {overwrite_hint} contradict each other: resume {p} or clear it, not both")
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p} is a file, not a directory")
    if resume or overwrite or not p.exists() or not any(p.iterdir()):
        return
    held = ", ".join(sorted(c.name + ("/" if c.is_dir() else "") for c in p.iterdir())[:4])
    how = " or ".join(h for h in (f"resume it with {resume_hint}" if resume_hint else "",
                                  f"clear it with {overwrite_hint}" if overwrite_hint else "") if h)
    raise ConfigError(f"{option} {p} already holds a run ({held}); {how}, or choose another {option}")


def clear_run_dir(run_dir: str | Path) -> None:
    """Empty `run_dir` (kept as a directory); call only after every input was validated."""
    p = Path(run_dir)
    if p.is_dir():
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
