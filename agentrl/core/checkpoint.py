"""Checkpoints: model (safetensors, loadable with `AutoModelForCausalLM.from_pretrained`), optimizer,
scheduler, value head, RNG states and step.

A LoRA model's (`agentrl.train.lora`) `model/` holds its adapter instead (peft's `adapter_model.safetensors` and
`adapter_config.json`) and `agentrl_base.json`, the agentrl base model it was trained on (`base_of`).

Written to a temp dir and renamed into place, so a kill at any moment leaves either the previous checkpoint
or the new one, never half of one. The last file written is `manifest.json` (size and sha256 of every other
file); a checkpoint is used only if its manifest matches, so a file cut or changed afterwards (a full disk, a
bad copy) is caught at load and the newest intact checkpoint is used instead, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrl.core.errors import UsageError
from agentrl.core.finite import NonFiniteError, check_finite
from agentrl.core.io import atomic_dir

_STEP_RE = re.compile(r"^step_(\d{6,})$")
_TMP_RE = re.compile(r"^\.step_\d{6,}\..+$")  # mkdtemp's names for a checkpoint being written
MANIFEST = "manifest.json"
ADAPTER_FILE = "adapter_model.safetensors"  # peft's names
ADAPTER_CONFIG = "adapter_config.json"
BASE_FILE = "agentrl_base.json"  # a LoRA checkpoint's base: {"model": agentrl model name, "seed": int}


RUN_MARKER = "agentrl_run.json"  # what makes a directory an agentrl run (`train/run_dir.py` writes and checks it)


def unfinished_run_warning(run_dir: str | Path, ckpt: Path) -> str | None:
    """Why loading `ckpt` of `run_dir` deserves a warning: its run marker says it did not finish (killed, or
    still running); None for a finished run, or a directory without a readable marker."""
    f = Path(run_dir) / RUN_MARKER
    try:
        if not f.is_file() or f.stat().st_size > 1 << 20:
            return None
        marker = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(marker, dict) or marker.get("status") == "finished":
        return None
    step = _STEP_RE.match(ckpt.name)
    at = f"step {int(step.group(1))}" if step else ckpt.name
    return (
        f"run {run_dir} did not finish (killed, or still running): using its latest checkpoint, {at}; "
        f"resume it to finish it"
    )


class CheckpointError(UsageError):
    """No usable checkpoint where one was expected (the run directory's, not the code's, fault)."""


class NonFiniteCheckpointError(CheckpointError, NonFiniteError):
    """A checkpoint or model file whose weights hold NaN or inf (written before agentrl refused to write such)."""


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Every step_N dir with a trainer state, oldest first, intact or not (`latest_checkpoint` picks the newest intact one)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_RE.match(p.name) and (p / "trainer_state.pt").exists()]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(ckpt: Path) -> int:
    return int(_STEP_RE.match(ckpt.name).group(1))  # type: ignore[union-attr]


def verify_checkpoint(ckpt: Path) -> str | None:
    """None if every file matches the manifest, else why not (one line)."""
    try:
        manifest = json.loads((ckpt / MANIFEST).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        return "no manifest.json (written by an older agentrl, or not by agentrl)"
    except (ValueError, KeyError, TypeError):
        return "manifest.json is unreadable"
    for rel, want in files.items():
        f = ckpt / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != want["size"]:
            return f"{rel} has {f.stat().st_size} bytes, the manifest says {want['size']}"
        if _sha256(f) != want["sha256"]:
            return f"{rel} does not match its sha256 in the manifest"
    return None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest intact checkpoint; newer ones that fail verification are skipped with a warning."""
    for ckpt in reversed(checkpoint_dirs(run_dir)):
        problem = verify_checkpoint(ckpt)
        if problem is None:
            return ckpt
        warnings.warn(
            f"checkpoint {ckpt} is damaged ({problem}); falling back to an older one", RuntimeWarning, stacklevel=2
        )
    return None


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
        _write_manifest(tmp, step)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


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


def is_adapter_dir(model_dir: Path) -> bool:
    """A LoRA checkpoint's model dir (an adapter, no full model)."""
    return (model_dir / ADAPTER_CONFIG).is_file() and not (model_dir / "config.json").is_file()


def base_of(model_dir: Path) -> dict[str, Any] | None:
    """A LoRA model dir's agentrl base ({"model": name, "seed": int}), or None when it records none; a hand-edited
    file that is not that is a CheckpointError naming it."""
    f = model_dir / BASE_FILE
    if not f.is_file():
        return None
    base = _json_file(f)
    if not isinstance(base, dict) or not isinstance(base.get("model"), str) or not base["model"]:
        raise CheckpointError(
            f'{f} must be an object with the base model\'s name, e.g. {{"model": "smollm2-135m", '
            f'"seed": 0}}; it holds {_short(base)}'
        )
    seed = base.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CheckpointError(f"{f}: seed must be a non-negative int, got {_short(seed)}")
    return {"model": base["model"], "seed": seed}


def adapter_config(model_dir: Path) -> dict[str, Any]:
    """A LoRA adapter dir's `adapter_config.json`, checked for what a merge needs (a hand-edited file is a
    CheckpointError naming the field, not an error from deep inside peft)."""
    f = model_dir / ADAPTER_CONFIG
    cfg = _json_file(f)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{f} must be a JSON object (peft's LoRA config); it holds {_short(cfg)}")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise CheckpointError(
            f'{f}: peft_type must be "LORA" (the adapters agentrl writes), got {_short(cfg.get("peft_type"))}'
        )
    r = cfg.get("r")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise CheckpointError(f"{f}: r must be a positive int, got {_short(r)}")
    alpha = cfg.get("lora_alpha", 8)
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not alpha == alpha
        or abs(alpha) == float("inf")
    ):
        raise CheckpointError(f"{f}: lora_alpha must be a finite number, got {_short(alpha)}")
    targets = cfg.get("target_modules")
    if not (
        isinstance(targets, str) or (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets))
    ):
        raise CheckpointError(
            f"{f}: target_modules must be a module name or a non-empty list of them, got {_short(targets)}"
        )
    return cfg


def adapter_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """A LoRA adapter dir's tensors (`adapter_model.safetensors`): present, readable, LoRA weights only."""
    from safetensors.torch import load_file

    f = model_dir / ADAPTER_FILE
    if not f.is_file():
        raise CheckpointError(f"LoRA adapter {model_dir} has no {ADAPTER_FILE}")
    try:
        state = load_file(str(f))
    except Exception as exc:  # safetensors' own error type: a cut, empty or foreign file
        raise CheckpointError(f"{f} is not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    if not state:
        raise CheckpointError(f"{f} holds no LoRA weights")
    odd = next((k for k in state if ".lora_" not in k), None)
    if odd is not None:
        raise CheckpointError(f"{f} holds a tensor that is not a LoRA weight: {odd[:120]}")
    return state


def _json_file(f: Path) -> Any:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{f} is not valid JSON ({str(exc)[:120]})") from None


def _short(v: Any, limit: int = 60) -> str:
    text = repr(v) if not isinstance(v, (dict, list)) else type(v).__name__ + f" of {len(v)}"
    return text if len(text) <= limit else text[:limit] + "..."


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


def _write_manifest(ckpt: Path, step: int) -> None:
    files = {}
    for f in sorted(p for p in ckpt.rglob("*") if p.is_file()):
        files[f.relative_to(ckpt).as_posix()] = {"size": f.stat().st_size, "sha256": _sha256(f)}
    (ckpt / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=1) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
