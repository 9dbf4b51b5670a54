"""The checkpoint format, read side: what a run directory's checkpoints are, which one is intact, what a LoRA
checkpoint's adapter dir holds. Writing and loading weights (torch, peft) is `agentrl.train.checkpoint`'s; this
module imports neither torch, safetensors nor peft itself (safetensors only inside `adapter_weights`), so model
loading (`inference/models.py`, a layer below `train`) can find and check a run's checkpoint.

A checkpoint `checkpoints/step_NNNNNN/` holds `model/` (safetensors, loadable with
`AutoModelForCausalLM.from_pretrained`), `trainer_state.pt` (optimizer, scheduler, value head, RNG states and
step) and `manifest.json`. A LoRA model's (`agentrl.train.lora`) `model/` holds its adapter instead (peft's
`adapter_model.safetensors` and `adapter_config.json`) and `agentrl_base.json`, the agentrl base model it was
trained on (`base_of`).

The last file written is `manifest.json` (`write_manifest`: size and sha256 of every other file); a checkpoint
is used only if its manifest matches (`verify_checkpoint`), so a file cut or changed afterwards (a full disk, a
bad copy) is caught at load and the newest intact checkpoint is used instead, with a warning (`latest_checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrl.core.errors import UsageError
from agentrl.core.finite import NonFiniteError

if TYPE_CHECKING:
    import torch

_STEP_RE = re.compile(r"^step_(\d{6,})$")
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


def write_manifest(ckpt: Path, step: int) -> None:
    """Write `ckpt`/manifest.json: the size and sha256 of every file in `ckpt` (the last file a checkpoint gets)."""
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
