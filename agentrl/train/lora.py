"""LoRA (peft) building blocks: train low-rank adapters instead of every weight.

* `apply_lora(model, cfg)` wraps a causal LM in a peft LoRA model; only the adapters train
  (`trainable_parameters`). The wrapped model still serves the transformers backend as is: `HFPolicy` samples
  through the adapters, and it shares the trainer's module, so `update_weights(model.state_dict())` is a no-op.
* `reference(model)`: the base model without a second copy in memory (the adapters switched off), for the KL
  reference; `ReferenceView(model)` is the same as a model object that `forward.forward` accepts.
* A checkpoint's `model/` holds the adapter (peft's `adapter_model.safetensors` + `adapter_config.json`) and
  `agentrl_base.json` (the agentrl base model and its seed: `tiny-random`'s weights depend on it);
  `agentrl.inference.models.load_model` rebuilds the base and merges.
* `merged_state_dict(model)` (`inference/merged_weights.py`, re-exported here): the base weights with the adapters
  merged in, named like the plain model's (what a vLLM engine or server loads through `update_weights`);
  `merge_and_save` / `export_merged` write a plain HF model.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from agentrl.core.checkpoint import CheckpointError, latest_checkpoint
from agentrl.core.errors import UsageError
from agentrl.inference.merged_weights import is_lora, merged_state_dict

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRAConfig(BaseModel):
    """LoRA settings (peft's `LoraConfig`): rank, scale alpha / r, dropout, and the linear layers adapted."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, allow_inf_nan=False
    )  # as the main Config's sections

    # at most the smallest targeted layer's min(in, out) (checked in apply_lora: a larger rank is no longer
    # low-rank, only bigger); 8192 is the widest hidden size of the models agentrl trains
    r: int = Field(16, ge=1, le=8192)
    alpha: float = Field(32.0, gt=0)  # the adapter's output is scaled by alpha / r
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # Llama-like models' attention and MLP projections
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_PROJECTIONS), min_length=1)


def apply_lora(model: Any, cfg: LoRAConfig, *, base: str | None = None, seed: int = 0) -> Any:
    """Wrap `model` in peft LoRA adapters; every other weight is frozen. `base` / `seed`: the agentrl model name
    (and seed) `model` was loaded with, written beside the adapter in checkpoints so that `load_model` can rebuild
    the base (`tiny-random` and `smollm2-135m` are not paths); without it the base must be a local directory."""
    from peft import LoraConfig, get_peft_model

    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    names = {n.rsplit(".", 1)[-1] for n, _ in linears}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        raise UsageError(f"lora.target_modules: the model has no linear layer named {missing}; it has {sorted(names)}")
    targeted = [
        (min(m.in_features, m.out_features), n, m) for n, m in linears if n.rsplit(".", 1)[-1] in cfg.target_modules
    ]
    rank, name, layer = min(targeted, key=lambda t: t[0])
    if cfg.r > rank:  # before peft allocates anything: r=100000 on a 64-wide model is gigabytes of adapters
        raise UsageError(
            f"lora.r={cfg.r} is larger than the layer {name} ({layer.in_features} -> {layer.out_features}) "
            f"allows: use lora.r <= {rank} (the smallest min(in, out) of the targeted layers)"
        )
    peft_cfg = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,  # type: ignore[arg-type]  # peft types it int; a float works (scaling = alpha / r)
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )  # peft records the model's own path as the base
    with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(model, peft_cfg)
    if base is not None:
        # `save_checkpoint` writes it as agentrl_base.json
        wrapped.agentrl_base = {"model": base, "seed": int(seed)}  # type: ignore[assignment]  # torch stubs: Module.__setattr__ takes Tensor | Module
    return wrapped


def trainable_parameters(model: Any) -> list[torch.nn.Parameter]:
    """The parameters the optimizer should get: the adapters only, for a LoRA model."""
    return [p for p in model.parameters() if p.requires_grad]


@contextmanager
def reference(model: Any) -> Iterator[Any]:
    """Forward passes inside run the base model (the adapters off): the reference policy, no copy in memory."""
    if not is_lora(model):
        raise TypeError("reference(model) needs a LoRA model (apply_lora); a plain model has no base to fall back to")
    with model.disable_adapter():
        yield model


class _Off:
    """A callable part of a LoRA model (its decoder, LM head) that runs with the adapters off."""

    def __init__(self, model: Any, part: Any):
        self._model, self._part = model, part

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with reference(self._model):
            return self._part(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._part, name)


class ReferenceView(_Off):
    """The base model of a LoRA model as a model object (`forward.forward`, `KLShapedReturns`): calls to it, its
    decoder and its LM head run with the adapters off. Replaces the trainer's frozen deep copy."""

    def __init__(self, model: Any):
        if not is_lora(model):
            raise TypeError("ReferenceView needs a LoRA model (apply_lora)")
        super().__init__(model, model)

    def get_decoder(self) -> Any:
        dec = self._model.get_decoder()
        return None if dec is None else _Off(self._model, dec)

    def get_output_embeddings(self) -> Any:
        head = self._model.get_output_embeddings()
        return None if head is None else _Off(self._model, head)


def merge_and_save(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Write a plain HF model (adapters merged; loadable with `from_pretrained`, vLLM, llama.cpp converters) and
    the tokenizer into `out_dir`. The model is not changed: training can go on."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_lora(model):
        plain = model.get_base_model()  # its config is the plain model's; the weights come from state_dict=
        plain.save_pretrained(str(out), state_dict=merged_state_dict(model), safe_serialization=True)
    else:
        model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def export_merged(run_dir: str | Path, out_dir: str | Path, *, dtype: torch.dtype = torch.float32) -> Path:
    """`agentrl export --merge`: the run's latest intact checkpoint (LoRA or full) as a plain HF model in `out_dir`
    (new, or an empty directory). All or nothing: the model is written into a temporary sibling of `out_dir` (same
    parent, so the same filesystem) and renamed to it only when complete, so a failure (a full disk, a read-only
    parent) leaves no `out_dir`, and exporting again works."""

    from agentrl.core.io import atomic_dir
    from agentrl.inference.models import load_model

    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise CheckpointError(
            f"export: {run_dir} has no intact checkpoint (none yet, or every one failed its manifest check)"
        )
    model, tok = load_model(str(ckpt / "model"), dtype=dtype)  # a LoRA checkpoint comes back merged
    out = Path(out_dir)
    # an existing empty directory is replaced; a non-empty one raises OSError: nothing is overwritten
    with atomic_dir(out.absolute(), prefix=f".{out.name}.", suffix=".partial", exists="empty") as tmp:
        merge_and_save(model, tok, tmp)
    return out
