"""Checkpoints: model (safetensors, loadable with `AutoModelForCausalLM.from_pretrained`), optimizer,
scheduler, value head, RNG states and step. Written to a temp dir and renamed into place, so a kill at
any moment leaves either the previous checkpoint or the new one, never half of one."""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

_STEP_RE = re.compile(r"^step_(\d{6,})$")


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_RE.match(p.name) and (p / "trainer_state.pt").exists()]
    return sorted(found, key=lambda p: int(_STEP_RE.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    run_dir: str | Path, step: int, *, model: Any, tokenizer: Any, trainer_state: dict[str, Any], keep: int = 2
) -> Path:
    """Save after `step` updates are done; keep the newest `keep` checkpoints."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step_{step:06d}.", dir=root))
    try:
        model.save_pretrained(str(tmp / "model"), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp / "model"))
        torch.save({**trainer_state, "step": step, "rng": rng_state()}, tmp / "trainer_state.pt")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(ckpt: Path) -> dict[str, Any]:
    # weights_only=False: the file holds RNG states (numpy tuples) that the safe loader rejects; it is our own file
    return torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=False)
