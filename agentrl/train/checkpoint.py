"""Checkpoints written and loaded: model (safetensors, loadable with `AutoModelForCausalLM.from_pretrained`),
optimizer, scheduler, value head, RNG states and step; the format itself (layout, manifest, which checkpoint is
intact, LoRA adapter dirs) is `agentrl.core.checkpoint`'s.

Written to a temp dir and renamed into place, so a kill at any moment leaves either the previous checkpoint
or the new one, never half of one; `manifest.json` is written last.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrl.core.checkpoint import (
    ADAPTER_FILE,
    BASE_FILE,
    CheckpointError,
    NonFiniteCheckpointError,
    adapter_weights,
    checkpoint_dirs,
    checkpoint_step,
    is_adapter_dir,
    write_manifest,
)
from agentrl.core.finite import check_finite
from agentrl.core.io import atomic_dir

SNAPSHOTS = "snapshots"  # run_dir/snapshots/step_N: model weights kept for a curve (`keep_snapshot`)
_TMP_RE = re.compile(r"^\.step_\d{6,}\..+$")  # mkdtemp's names for a checkpoint being written


def clean_interrupted_writes(run_dir: str | Path) -> list[Path]:
    """Remove temp dirs left by checkpoint writes that a kill interrupted; return what was removed."""
    root = Path(run_dir) / "checkpoints"
    gone = [p for p in root.iterdir() if p.is_dir() and _TMP_RE.match(p.name)] if root.is_dir() else []
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def rng_state() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    keep: int = 2,
    extra: dict[str, Path] | None = None,
    checked: bool = False,
) -> Path:
    """Save after `step` updates are done; keep the newest `keep` checkpoints. `extra`: name -> a file or
    directory already written (e.g. every rank's optimizer shard), moved into the checkpoint under that name.
    checked: the caller ran `check_saveable` on these very weights already (the trainer does, on every rank).

    Weights holding NaN or inf are never written (NonFiniteError, nothing on disk changes): such a checkpoint
    would pass its manifest check and be resumed, evaluated or exported as if it were intact."""
    if not checked:
        check_saveable(model, trainer_state, step)
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    with atomic_dir(final, prefix=f".step_{step:06d}.") as tmp:
        model.save_pretrained(str(tmp / "model"), safe_serialization=True)  # a LoRA model: its adapter only
        if getattr(model, "agentrl_base", None) is not None:
            (tmp / "model" / BASE_FILE).write_text(json.dumps(model.agentrl_base) + "\n")
        tokenizer.save_pretrained(str(tmp / "model"))
        torch.save({**trainer_state, "step": step, "rng": rng_state()}, tmp / "trainer_state.pt")
        for name, src in (extra or {}).items():
            shutil.move(str(src), str(tmp / name))
        write_manifest(tmp, step)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def keep_snapshot(ckpt: Path, run_dir: str | Path) -> Path:
    """The checkpoint's model directory (weights, tokenizer; no optimizer state) kept as
    `run_dir/snapshots/step_N` (`train.snapshot_every`), where `keep_checkpoints` never deletes it: the weights of a
    run's held-out curve. Files are hard links where the filesystem allows (no copy), written whole or not at all."""
    target = Path(run_dir) / SNAPSHOTS / ckpt.name
    with atomic_dir(target, prefix=f".{ckpt.name}.") as tmp:
        try:
            shutil.copytree(ckpt / "model", tmp / "model", copy_function=_link_or_copy)
        except shutil.Error as e:  # pragma: no cover - copytree gathers per-file errors
            raise OSError(f"snapshot {target}: {e}") from e
        (tmp / "snapshot.json").write_text(json.dumps({"step": checkpoint_step(ckpt)}) + "\n")
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def check_saveable(model: Any, trainer_state: dict[str, Any], step: int) -> None:
    """Raise NonFiniteError naming the first weight (model, LoRA adapter or value head) that is NaN or inf; every
    rank of a several-process run can call it (rank 0 alone saves), so all of them stop, not only rank 0."""
    check_finite(
        _saved_weights(model, trainer_state),
        f"checkpoint step {step} not written",
        hint="; the previous checkpoints are kept (a learning rate or a loss coefficient too large?)",
    )


def _saved_weights(model: Any, trainer_state: dict[str, Any]) -> list[tuple[str, Any]]:
    """The floating tensors a checkpoint holds as weights: the model's (a LoRA model's adapters only: peft saves
    those) and the value head's."""
    lora = hasattr(model, "peft_config")
    out = [(k, v) for k, v in model.state_dict().items() if not lora or ".lora_" in k]
    head = trainer_state.get("value_head")
    if isinstance(head, dict):
        out += [(f"value_head.{k}", v) for k, v in head.items()]
    return out


def load_trainer_state(ckpt: Path) -> dict[str, Any]:
    # weights_only=False: the file holds RNG states (numpy tuples) that the safe loader rejects; it is our own
    # file, verified against its manifest by whoever chose this checkpoint
    return torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=False)


def load_model_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Load the checkpoint's weights into `model`, refusing missing or unexpected keys (tied weights aside).
    A LoRA checkpoint loads into a LoRA model (its adapter weights), a full one into a plain model."""
    from safetensors.torch import load_file

    lora_model, lora_ckpt = hasattr(model, "peft_config"), is_adapter_dir(ckpt / "model")
    if lora_model != lora_ckpt:
        raise CheckpointError(
            f"checkpoint {ckpt} holds {'a LoRA adapter' if lora_ckpt else 'a full model'}, but the model "
            f"{'is' if lora_model else 'is not'} a LoRA model: resume with the run's own lora settings"
        )
    if lora_ckpt:
        _load_adapter(model, ckpt)
        return
    state = load_file(str(ckpt / "model" / "model.safetensors"))
    check_finite(
        state, f"checkpoint {ckpt / 'model' / 'model.safetensors'} is unusable", error=NonFiniteCheckpointError
    )
    own = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if wrong:
        raise CheckpointError(
            f"checkpoint {ckpt} does not fit the model: {len(wrong)} tensors of another shape, e.g. {wrong[0]}"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    loaded_ptrs = {own[k].data_ptr() for k in state if k in own}
    missing = [k for k in missing if own[k].data_ptr() not in loaded_ptrs]  # tied to a loaded weight (lm_head)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {ckpt} does not fit the model: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {list(unexpected)[:3]}"
        )


def _load_adapter(model: Any, ckpt: Path) -> None:
    from peft import set_peft_model_state_dict

    state = adapter_weights(ckpt / "model")
    check_finite(state, f"checkpoint {ckpt / 'model' / ADAPTER_FILE} is unusable", error=NonFiniteCheckpointError)
    want = {k for k in model.state_dict() if ".lora_" in k}
    try:
        # peft annotates the result as `namedtuple`: it is torch's _IncompatibleKeys (missing_keys, unexpected_keys)
        result: Any = set_peft_model_state_dict(model, state)
    except RuntimeError as exc:  # a tensor of another shape (another rank)
        raise CheckpointError(f"checkpoint {ckpt} does not fit the LoRA model: {str(exc).splitlines()[0]}") from None
    missing = sorted(want & set(result.missing_keys))
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {ckpt} does not fit the LoRA model: {len(missing)} missing adapter keys {missing[:3]}, "
            f"{len(result.unexpected_keys)} unexpected keys {list(result.unexpected_keys)[:3]}"
        )
