"""NaN and ±inf never pass silently: weights checked before a checkpoint is written or after one is read, and
a bounded description of a user value for error messages.

A non-finite weight poisons every later forward pass, so a checkpoint holding one must never be written
(it would verify against its manifest and be resumed, evaluated or exported as if it were intact) nor loaded.
The check is one sum per floating tensor (NaN and inf propagate through it): a read of each weight, much cheaper
than writing or reading the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from agentrl.core.errors import UsageError


class NonFiniteError(UsageError):
    """Weights, a loss or a gradient that is NaN or ±inf (mostly from a learning rate or a loss coefficient set
    too high): the message names the first bad tensor and how many values are bad."""


def non_finite(tensors: Iterable[tuple[str, Any]]) -> tuple[str, int, int] | None:
    """(name of the first floating tensor holding NaN or ±inf, non-finite values in all of them, tensors with any),
    or None when every floating tensor is finite. Non-tensors and integer tensors are skipped."""
    first, values, bad = None, 0, 0
    seen: set[tuple[Any, ...]] = set()
    for name, t in tensors:
        if not isinstance(t, torch.Tensor) or not (t.is_floating_point() or t.is_complex()) or t.is_meta:
            continue
        t = t.detach()
        try:  # a tied weight (embeddings and LM head) is one tensor under two names: checked and counted once
            key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
        except RuntimeError:  # no plain storage (a DTensor shard): checked as it comes
            key = None
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        # a NaN or inf element makes the sum NaN or inf, so a finite sum clears the tensor in one fast reduction
        # (isfinite(t).all() is ~40x slower on CPU); an infinite sum of finite values is told apart by counting
        if bool(torch.isfinite(t.sum())):
            continue
        n = int((~torch.isfinite(t)).sum())
        if n:
            first = name if first is None else first
            values += n
            bad += 1
    return None if first is None else (first, values, bad)


def check_finite(
    tensors: Iterable[tuple[str, Any]] | Mapping[str, Any],
    what: str,
    *,
    hint: str = "",
    error: type[Exception] = NonFiniteError,
) -> None:
    """Raise `error` ("{what}: tensor NAME holds non-finite values (N NaN/inf values in K tensors){hint}") if any
    floating tensor is not finite."""
    found = non_finite(tensors.items() if isinstance(tensors, Mapping) else tensors)
    if found is not None:
        raise error(f"{what}: {describe_non_finite(found)}{hint}")


def describe_non_finite(found: tuple[str, int, int]) -> str:
    name, values, bad = found
    return f"tensor {name} holds NaN or inf ({values:,} non-finite values in {bad} tensor{'s' if bad != 1 else ''})"


def short_repr(value: Any, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters (with "..." when cut), built lazily: a value that is huge, or whose
    full repr would be (a YAML alias bomb: shared lists nested 9 deep, 9^9 leaves), costs O(limit) to describe."""
    out: list[str] = []
    size = 0
    for piece in _repr_pieces(value, limit + 1, depth=0):
        out.append(piece)
        size += len(piece)
        if size > limit:
            break
    text = "".join(out)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _repr_pieces(value: Any, budget: int, depth: int) -> Iterable[str]:
    if depth > 20:  # deeper than any message shows anyway
        yield "..."
        return
    if isinstance(value, str):
        yield repr(value[:budget])  # cut first: never the repr of a megabyte string
        return
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        yield f"<int of {value.bit_length()} bits>"  # repr of a huge int is quadratic (and may be refused)
        return
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        is_dict = isinstance(value, dict)
        open_, close = (
            ("{", "}")
            if is_dict or isinstance(value, (set, frozenset))
            else (("(", ")") if isinstance(value, tuple) else ("[", "]"))
        )
        yield open_
        for i, item in enumerate(value.items() if isinstance(value, dict) else value):
            if i:
                yield ", "
            if is_dict:
                yield from _repr_pieces(item[0], budget, depth + 1)
                yield ": "
                yield from _repr_pieces(item[1], budget, depth + 1)
            else:
                yield from _repr_pieces(item, budget, depth + 1)
        yield close
        return
    text = repr(value)
    yield text[:budget]
