"""Frozen float32 linear layers on a CPU through oneDNN with weights packed once.

A float32 `nn.Linear` on a CPU runs the BLAS library's sgemm on the dense weight at every call. For the shapes of
decoding (a few rows against a large weight) that is far from the memory bandwidth on some CPUs, while oneDNN on a
weight reordered once into its blocked layout comes much closer (see BENCHMARKS.md, simulated patients).
bfloat16 linears already run on oneDNN and gain nothing, so only float32 ones are packed.

For models that never train: simulated users, patients and judges (`HFChatModel.load`). The numbers are float32
sums in another order (|difference| ~1e-4 on logits), not bit-identical to `nn.Linear`.
"""

from __future__ import annotations

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
        self.packed = linear.weight.detach().to_mkldnn()
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
