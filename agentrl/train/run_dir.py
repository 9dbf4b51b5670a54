"""One run per run directory, and only a run is ever cleared or resumed.

Two runs in one directory would interleave their metrics, overwrite each other's config and prune each
other's checkpoints (the newest by step number survives, not the newest written). And a directory that is not
a run must never be touched: `train.overwrite=true` once emptied whatever path it was given (a project with
`.git/`, `/etc`, the working directory), and `train.resume=true` rewrote another program's `metrics.jsonl`
(issue 27).

A run directory is recognised by the marker the kit writes into it when a run starts, `agentrl_run.json`:
{"kind": "train" | "sft", "agentrl_version", "created", "status": "running" | "finished", ...}, written
atomically and set to "finished" when the run ends, so a run that was killed (or is still going) reads as
unfinished (`run_status`). Runs written before the marker existed are recognised by what only agentrl
writes: a `config.yaml` holding an agentrl config (train sections, or `sft:`) and at least one
`checkpoints/step_N/manifest.json`; they get a marker when resumed (status "running" until they finish).

Rules (`check_run_dir`, before any model loads):
- an empty path is refused (it would mean the working directory);
- a fresh run needs a new or empty directory;
- resume and overwrite act only on a run directory (or a new / empty one), never on the filesystem root,
  the home directory, the working directory, the agentrl project itself or a parent of any of them;
- overwrite refuses a symbolic link (it would clear the link's target);
- resume refuses a run of the other kind (an `agentrl sft` run is resumed by `agentrl sft --resume`).

Clearing (`clear_run_dir`) removes only the entries the kit writes (`KIT_ENTRIES`: the marker, config.yaml,
metrics.jsonl, checkpoints/, snapshots/, episodes/, report/, and the trackers' tb/, wandb/, mlruns/ and trackers.json); anything
else a user put in the directory stays, and is named on stderr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentrl.core.checkpoint import RUN_MARKER, unfinished_run_warning
from agentrl.train.config import ConfigError

MARKER = RUN_MARKER
KINDS = ("train", "sft")
# every top-level entry a run writes; clearing a run removes these and nothing else
KIT_ENTRIES = (
    MARKER,
    "config.yaml",
    "metrics.jsonl",
    "checkpoints",
    "snapshots",
    "episodes",
    "report",
    "tb",
    "wandb",
    "mlruns",
    "trackers.json",
)
_TRAIN_SECTIONS = {"model", "env", "algorithm", "rollout", "optim", "ppo", "train", "lora"}
_STEP_DIR = re.compile(r"^step_(\d{6,})$")
_MAX_SMALL_FILE = 1 << 20  # the marker and config.yaml are read only up to this size


@dataclass(frozen=True)
class RunStatus:
    """What a run directory says about itself."""

    kind: str  # "train" or "sft"
    finished: bool | None  # None: a run from before the marker (unknown)
    latest_step: int | None  # the newest checkpoint directory's step (intact or not), None without one
    marked: bool  # False: recognised by its config.yaml and checkpoints (written before the marker existed)


def run_status(run_dir: str | Path) -> RunStatus | None:
    """The run in `run_dir`, or None when it holds none (no marker, and not a run from before the marker).
    Raises ConfigError when the marker is there but unreadable."""
    p = Path(run_dir)
    marker = read_marker(p)
    if marker is not None:
        return RunStatus(marker["kind"], marker["status"] == "finished", _latest_step(p), True)
    kind = _legacy_kind(p)
    return None if kind is None else RunStatus(kind, None, _latest_step(p), False)


def unfinished_warning(run_dir: str | Path, ckpt: Path) -> str | None:
    """The warning for loading `ckpt` of a run that did not finish (killed, or still running); None otherwise
    (`core.checkpoint.unfinished_run_warning`: model loading, a layer below, says it too)."""
    return unfinished_run_warning(run_dir, ckpt)


def warn_if_unfinished(run_dir: str | Path, ckpt: Path) -> None:
    """`unfinished_warning` as a RuntimeWarning (for code that loads a run directory as a model)."""
    import warnings

    msg = unfinished_warning(run_dir, ckpt)
    if msg:
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def read_marker(run_dir: str | Path) -> dict[str, Any] | None:
    """The marker's contents, None when there is none; ConfigError when it is unreadable or not agentrl's."""
    from agentrl.core.bounded import BoundedInputError, loads_bounded

    path = Path(run_dir) / MARKER
    if not path.exists() and not path.is_symlink():
        return None
    why = None
    if path.is_symlink() or not path.is_file():
        why = "not a plain file"
    else:
        try:
            with open(path, "rb") as f:
                data = loads_bounded(f.read(_MAX_SMALL_FILE + 1), max_bytes=_MAX_SMALL_FILE, max_depth=8)
            if (
                not isinstance(data, dict)
                or data.get("kind") not in KINDS
                or data.get("status") not in ("running", "finished")
            ):
                why = "not an agentrl run marker (needs kind train|sft and status running|finished)"
        except (OSError, BoundedInputError) as exc:
            why = str(exc)
    if why is not None:
        raise ConfigError(f"{path} is unreadable ({why}); remove the directory yourself if it is not a run you need")
    return data


def start_run(run_dir: str | Path, kind: str) -> None:
    """Mark `run_dir` as a `kind` run that is running (a resumed run keeps its `created` time, counts resumes)."""
    from agentrl import __version__
    from agentrl.core.io import atomic_write_text

    p = Path(run_dir)
    try:
        old = read_marker(p)
    except ConfigError:
        old = None
    now = _now()
    marker: dict[str, Any] = {
        "kind": kind,
        "agentrl_version": __version__,
        "created": now,
        "status": "running",
        "started": now,
    }
    if old is not None:
        marker["created"] = old.get("created", now)
        marker["resumes"] = int(old.get("resumes", 0)) + 1 if isinstance(old.get("resumes", 0), int) else 1
    elif (p / "config.yaml").exists():  # a run from before the marker, resumed: adopted
        marker["adopted"] = True
    atomic_write_text(p / MARKER, json.dumps(marker, indent=1) + "\n")


def finish_run(run_dir: str | Path, *, step: int) -> None:
    """Mark the run in `run_dir` finished after `step` steps (what `run_status` and loading it as a model read)."""
    from agentrl.core.io import atomic_write_text

    p = Path(run_dir)
    marker = read_marker(p) or {}
    marker.update({"status": "finished", "finished": _now(), "step": int(step)})
    atomic_write_text(p / MARKER, json.dumps(marker, indent=1) + "\n")


def check_run_dir(
    run_dir: str | Path,
    *,
    resume: bool,
    overwrite: bool,
    option: str,
    kind: str = "train",
    resume_hint: str = "",
    overwrite_hint: str = "",
) -> None:
    """Raise ConfigError unless `run_dir` may be used; changes nothing (clear it later with `clear_run_dir`).

    option names the setting that chose the directory (train.run_dir, --out); the hints name the flags. Pass the
    path as the user gave it (a str): an empty one is refused, where Path("") would be the working directory.
    """
    if str(run_dir).strip() == "":
        raise ConfigError(f"{option} is empty; give the run's own directory, e.g. runs/NAME")
    p = Path(run_dir)
    if resume and overwrite:
        raise ConfigError(f"{resume_hint} and {overwrite_hint} contradict each other: resume {p} or clear it, not both")
    if p.is_symlink() and not p.exists():
        raise ConfigError(
            f"{option} {p} is a symbolic link to {os.readlink(p)}, which does not exist; give a directory"
        )
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p} is a file, not a directory")
    flag = resume_hint if resume else overwrite_hint if overwrite else ""
    if flag:
        what = _protected(p)
        if what:
            raise ConfigError(
                f"{option} {p} is {what}; {flag} acts only on a run's own directory: choose one, e.g. runs/NAME"
            )
    if overwrite and p.is_symlink():
        raise ConfigError(
            f"{option} {p} is a symbolic link (to {os.readlink(p)}); {overwrite_hint} clears only a "
            "real directory: give the directory itself"
        )
    _check_writable(p, option)
    if not p.exists() or not any(p.iterdir()):
        return  # new or empty: a fresh run, a resume that starts from scratch, nothing to clear
    held = _held(p)
    status = run_status(p)
    if status is None:
        if resume:
            raise ConfigError(
                f"{option} {p} is not an agentrl run (no {MARKER}; it holds {held}); {resume_hint} "
                f"continues only a run agentrl started: choose the run's directory"
            )
        if overwrite:
            raise ConfigError(
                f"{option} {p} is not an agentrl run (no {MARKER}; it holds {held}); {overwrite_hint} "
                f"clears only a run agentrl made: choose another {option}, or empty it yourself"
            )
        raise ConfigError(
            f"{option} {p} is not empty ({held}) and is not an agentrl run; choose a new or empty {option}"
        )
    if resume and status.kind != kind:
        how = "agentrl sft --resume" if status.kind == "sft" else "agentrl train with train.resume=true"
        article = {"sft": "an sft", "train": "a train"}
        raise ConfigError(
            f"{option} {p} holds {article[status.kind]} run, not {article[kind]} run; resume it with {how}"
        )
    if resume or overwrite:
        return
    how = " or ".join(
        h
        for h in (
            f"resume it with {resume_hint}" if resume_hint else "",
            f"clear it with {overwrite_hint}" if overwrite_hint else "",
        )
        if h
    )
    raise ConfigError(f"{option} {p} already holds a run ({held}); {how}, or choose another {option}")


def clear_run_dir(run_dir: str | Path) -> list[str]:
    """Remove what the kit wrote in `run_dir` (`KIT_ENTRIES`), keeping the directory and anything else in it
    (named on stderr, and returned). Call only after `check_run_dir` accepted it for overwrite and every other
    input was validated. A symbolic link among the entries is removed, never followed."""
    p = Path(run_dir)
    if not p.is_dir():
        p.mkdir(parents=True, exist_ok=True)
        return []
    for name in KIT_ENTRIES:
        entry = p / name
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
    kept = sorted(c.name for c in p.iterdir())
    if kept:
        print(
            f"{p}: cleared the previous run; kept {', '.join(kept[:6])}{' ...' if len(kept) > 6 else ''} "
            "(not written by agentrl)",
            file=sys.stderr,
        )
    return kept


# -- helpers -------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _held(p: Path) -> str:
    names = sorted(c.name + ("/" if c.is_dir() else "") for c in p.iterdir() if c.name != MARKER) or [MARKER]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _latest_step(p: Path) -> int | None:
    root = p / "checkpoints"
    if not root.is_dir():
        return None
    steps = [int(m.group(1)) for c in root.iterdir() if (m := _STEP_DIR.match(c.name))]
    return max(steps, default=None)


def _legacy_kind(p: Path) -> str | None:
    """ "train" / "sft" for a run written before the marker existed: an agentrl config.yaml and a checkpoint
    with its manifest (what no other program writes together); None otherwise."""
    import yaml

    cfg_path, root = p / "config.yaml", p / "checkpoints"
    if not cfg_path.is_file() or cfg_path.is_symlink() or not root.is_dir():
        return None
    if not any(_STEP_DIR.match(c.name) and (c / "manifest.json").is_file() for c in root.iterdir()):
        return None
    try:
        with open(cfg_path, "rb") as f:
            text = f.read(_MAX_SMALL_FILE + 1)
        if len(text) > _MAX_SMALL_FILE:
            return None
        cfg = yaml.safe_load(text)
    except (OSError, yaml.YAMLError, RecursionError):
        return None
    if not isinstance(cfg, dict):
        return None
    if set(cfg) == {"sft"} and isinstance(cfg["sft"], dict):
        return "sft"
    if set(cfg) <= _TRAIN_SECTIONS and isinstance(cfg.get("train"), dict) and isinstance(cfg.get("algorithm"), dict):
        return "train"
    return None


def _protected(p: Path) -> str | None:
    """What `p` is when it is a directory no run may be cleared or resumed in, else None."""
    r = p.resolve()
    if r == Path(r.anchor):
        return "the filesystem root"
    places = [("the working directory", Path.cwd())]
    try:
        places.append(("the home directory", Path.home()))
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        pass
    import agentrl

    places.append(("the agentrl project", Path(agentrl.__file__).resolve().parents[1]))
    for name, place in places:
        place = place.resolve()
        if r == place:
            return name
        if r in place.parents:
            return f"a parent of {name} ({place})"
    return None


def _check_writable(p: Path, option: str) -> None:
    """The directory, or the nearest existing one above it, must be writable (access(2) also says no on a
    read-only filesystem, even to root), so a run fails here and not after its model loaded."""
    above = next((a for a in [p, *p.absolute().parents] if a.exists()), None)
    if above is None:
        return
    if not above.is_dir():
        raise ConfigError(f"{option} {p}: {above} is a file, not a directory")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{option} {p}: {above} is not writable (read-only filesystem or no permission); choose another {option}"
        )
