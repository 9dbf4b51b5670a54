"""Frozen float32 linear layers on a CPU through oneDNN with weights packed once.

A float32 `nn.Linear` on a CPU runs the BLAS library's sgemm on the dense weight at every call. For the shapes of
decoding (a few rows against a large weight) that is far from the memory bandwidth on some CPUs, while oneDNN on a
weight reordered once into its blocked layout comes much closer (see BENCHMARKS.md, simulated patients).
bfloat16 linears already run on oneDNN and gain nothing, so only float32 ones are packed.

For models that never train: simulated users, patients and judges (`HFChatModel.load`). The numbers are float32
sums in another order (|difference| ~1e-4 on logits), not bit-identical to `nn.Linear`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def can_pack(model: nn.Module) -> bool:
    """Whether `pack_linears` applies: oneDNN is built in, and the model's weights are float32 on the CPU."""
    p = next(model.parameters(), None)
    return bool(
        torch.backends.mkldnn.is_available() and p is not None and p.device.type == "cpu" and p.dtype == torch.float32
    )


class PackedLinear(nn.Module):
    """`nn.Linear`'s forward over a oneDNN-packed copy of its weight (inference only: no gradient flows)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # a plain attribute, not a buffer: a packed tensor has no storage to save, and the model is frozen
        w = linear.weight.detach()
        # bfloat16: oneDNN's reorder for a batch of about 16 rows (a decode step's), measured fastest for 1-16
        self.packed = torch.ops.mkldnn._reorder_linear_weight(w, 16) if w.dtype == torch.bfloat16 else w.to_mkldnn()
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("PackedLinear is for frozen models; it has no backward")
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, oneDNN-packed"


def pack_linears(model: nn.Module) -> int:
    """Replace every `nn.Linear` of a frozen float32 CPU model by a `PackedLinear`, in place; returns how many.
    Does nothing (returns 0) where `can_pack` is false. The model's parameters stop requiring gradients."""
    if not can_pack(model):
        return 0
    model.requires_grad_(False)
    targets = [(name, mod) for name, mod in model.named_modules() if type(mod) is nn.Linear]
    for name, mod in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, PackedLinear(mod))
    return len(targets)


def can_pack_decode(model: nn.Module) -> bool:
    """Whether `DecodePacks` applies: oneDNN is built in, the weights are float32 or bfloat16 on the CPU, and for
    bfloat16 the CPU has oneDNN's bfloat16 path (AVX512-BW/VL/DQ or AVX-NE-CONVERT; an AVX2-only CPU has not, and
    its reorder raises)."""
    p = next(model.parameters(), None)
    return bool(
        torch.backends.mkldnn.is_available()
        and p is not None
        and p.device.type == "cpu"
        and (p.dtype == torch.float32 or (p.dtype == torch.bfloat16 and bf16_packs_supported()))
    )


def bf16_packs_supported() -> bool:
    """Whether this CPU runs oneDNN's bfloat16 linear (its weight reorder raises where not)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class DecodePacks:
    """oneDNN-packed copies of a model's linear layers for its decode loop, kept between calls and rebuilt for a
    layer whose weight changed (another tensor, or the same one written in place: an optimizer step or a
    `load_state_dict` bumps its version counter).

    A decode step multiplies a few rows by every weight, and the BLAS call under `nn.Linear` reads a weight far
    below the memory bandwidth at that shape; the packed layout does not (BENCHMARKS.md, "RL step": the 49k x 576
    output head at 7 rows took 34.5 ms in float32 and 7.3 ms packed; 5.4 and 2.0 ms in bfloat16). The trainer's
    model trains, so it cannot be packed in place (`pack_linears`); `use(model)` swaps the packed copies in for
    the duration of a `with` block (the decode loop, under no_grad) and puts the trained layers back on exit. The
    copies cost the weights' size once more in memory; numbers differ from `nn.Linear`'s by float rounding."""

    def __init__(self) -> None:
        self._packed: dict[str, PackedLinear] = {}
        self._keys: dict[str, tuple[int, int, int, torch.dtype]] = {}

    @contextmanager
    def use(self, model: nn.Module) -> Iterator[bool]:
        """Within the block `model`'s `nn.Linear` layers are packed copies; yields whether it packed any."""
        if not can_pack_decode(model):
            yield False
            return
        swapped: list[tuple[nn.Module, str, nn.Module]] = []
        try:
            for name, mod in list(model.named_modules()):
                if type(mod) is not nn.Linear:
                    continue
                w = mod.weight
                key = (id(mod), w.data_ptr(), w._version, w.dtype)
                if self._keys.get(name) != key:
                    packed = PackedLinear(mod)
                    # code around a layer reads its weight's dtype and device (peft's LoRA layers do): a plain
                    # attribute for reads, not a registered parameter
                    packed.__dict__["weight"] = w
                    self._packed[name], self._keys[name] = packed, key
                parent_name, _, attr = name.rpartition(".")
                parent = model.get_submodule(parent_name) if parent_name else model
                setattr(parent, attr, self._packed[name])
                swapped.append((parent, attr, mod))
            yield bool(swapped)
        finally:
            for parent, attr, mod in reversed(swapped):
                setattr(parent, attr, mod)
