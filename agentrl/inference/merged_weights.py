"""A LoRA model's weights as a plain model's: what an inference engine without adapters loads (a vLLM engine in
process, vLLM servers through `update_weights`, `train.lora.merge_and_save`). One function, used by the
training side (`train/lora.py`, the trainer's weight sync) and the inference side (`inference.remote`'s first sync).
"""

from __future__ import annotations

from typing import Any

import torch


def is_lora(model: Any) -> bool:
    """A peft model with adapters (`train.lora.apply_lora`'s, or one loaded with them)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The base weights with the active adapters merged in, keyed like the plain model's state_dict (the model is
    not changed). Tensors of layers without adapters are the model's own (not copies)."""
    if not is_lora(model):
        return dict(model.state_dict())
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, mod in base.named_modules():
            if isinstance(mod, LoraLayer):
                active = [a for a in mod.active_adapters if a in mod.lora_A]
                if active and not mod.disable_adapters:
                    # peft: LoraLayer does not declare get_delta_weight (its Linear etc. define it): the sum reads as int
                    deltas[name] = sum(mod.get_delta_weight(a) for a in active)  # type: ignore[attr-defined,assignment]
        out: dict[str, torch.Tensor] = {}
        for key, value in base.state_dict().items():
            if ".lora_" in key:
                continue
            owner, sep, param = key.partition(".base_layer.")
            if not sep:
                out[key] = value.detach()
                continue
            merged = value + deltas[owner].to(value.dtype) if param == "weight" and owner in deltas else value
            out[f"{owner}.{param}"] = merged.detach()
    return out
