"""`GrowingCache`: a transformers KV cache that writes each decode step into room allocated up front.

transformers' `DynamicCache` concatenates every new token onto its keys and values, so each decode step
allocates and copies the whole cache of every row in every layer. With one row that is small; with many rows
of a long conversation it is a large share of a batched decode step (`aten::cat`; see BENCHMARKS.md, simulated
patients), and on a CPU much of that is the page faults of touching freshly allocated memory. This cache
allocates each layer's buffer once per generate call, with the room the caller asks for (the suffix still to
encode and the reply), and exposes views of its filled part: a step writes one column. Dropping finished rows
(`batch_select_indices` with ascending indices) moves the live rows down inside the same buffer.

Each layer returns the same numbers `DynamicLayer` would, so generation is token-for-token the same; only
where they live differs. Full-attention decoders only (`supports`): sliding-window models keep
transformers' own cache classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

try:  # transformers >= 4.56 has per-layer cache objects
    from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
except ImportError:  # pragma: no cover - older transformers: the backend keeps the default cache
    Cache = DynamicCache = DynamicLayer = None  # type: ignore[assignment,misc]

# per layer: keys, values, each [kv_heads, tokens, head_dim] (the KV store's format)
RowKV = list[tuple[torch.Tensor, torch.Tensor]]


def left_pad_rows(rows: Sequence[RowKV | None], length: int, room: int = 0) -> RowKV:
    """Per layer, keys and values [rows, heads, length + room, dim] whose first `length` positions hold each row's
    KV right-aligned (zeros before it, and in rows that are None); the `room` after them is left unwritten."""
    ref = next(r for r in rows if r is not None)
    out = []
    for layer, (k0, v0) in enumerate(ref):
        K = k0.new_empty((len(rows), k0.shape[0], length + room, k0.shape[2]))
        V = v0.new_empty((len(rows), v0.shape[0], length + room, v0.shape[2]))
        for i, r in enumerate(rows):
            n = 0 if r is None else r[layer][0].shape[1]
            K[i, :, : length - n] = 0  # pads: masked, but must be finite (0 x NaN is NaN)
            V[i, :, : length - n] = 0
            if r is not None and n:
                K[i, :, length - n : length], V[i, :, length - n : length] = r[layer]
        out.append((K, V))
    return out


def supports(config: Any) -> bool:
    """Whether `GrowingCache` can stand in for the model's default cache: every layer is full attention."""
    if DynamicLayer is None:
        return False
    cfg = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(cfg, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return not getattr(cfg, "sliding_window", None) and not getattr(cfg, "attention_chunk_size", None)


if DynamicLayer is not None:

    class GrowingLayer(DynamicLayer):
        """A full-attention layer whose keys/values are views [:rows, :, :length] of buffers with spare room."""

        def __init__(self, room: int = 0, **kw: Any) -> None:
            super().__init__(**kw)
            self.room = max(0, int(room))  # positions to allocate beyond the first update's
            self._k: torch.Tensor | None = None  # buffers [rows, heads, capacity, dim], allocated on first update
            self._v: torch.Tensor | None = None
            self._b = self._n = 0  # rows and positions in use

        @classmethod
        def adopt(cls, keys: torch.Tensor, values: torch.Tensor, length: int) -> GrowingLayer:
            """A layer over existing buffers [rows, heads, capacity, dim] whose first `length` positions are filled."""
            layer = cls()
            layer.device = keys.device
            layer._k, layer._v = keys, values
            layer._b, layer._n = keys.shape[0], int(length)
            layer.is_initialized = True
            layer._views()
            return layer

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.device = key_states.device
            self._b = key_states.shape[0]
            self.is_initialized = True

        def _capacity(self) -> int:
            return 0 if self._k is None else self._k.shape[-2]

        def _resize(self, capacity: int, like_k: torch.Tensor, like_v: torch.Tensor) -> None:
            B = self._b
            k = like_k.new_empty((B, like_k.shape[1], capacity, like_k.shape[-1]))
            v = like_v.new_empty((B, like_v.shape[1], capacity, like_v.shape[-1]))
            if self._n:
                old_k, old_v = self._buffers()
                k[:, :, : self._n] = old_k[:B, :, : self._n]
                v[:, :, : self._n] = old_v[:B, :, : self._n]
            self._k, self._v = k, v

        def _buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
            assert self._k is not None and self._v is not None, "GrowingLayer: buffers read before the first update"
            return self._k, self._v

        def _views(self) -> tuple[torch.Tensor, torch.Tensor]:
            k, v = self._buffers()
            self.keys = k[: self._b, :, : self._n]
            self.values = v[: self._b, :, : self._n]
            return self.keys, self.values

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if key_states.shape[0] != self._b:
                raise ValueError(f"cache holds {self._b} rows, the update has {key_states.shape[0]}")
            need = self._n + key_states.shape[-2]
            if need > self._capacity():
                first = self._k is None
                self._resize(need + self.room if first else max(need, 2 * self._capacity()), key_states, value_states)
            k, v = self._buffers()
            k[: self._b, :, self._n : need] = key_states
            v[: self._b, :, self._n : need] = value_states
            self._n = need
            return self._views()

        def get_seq_length(self) -> int:
            return self._n if self.is_initialized else 0

        def reset(self) -> None:
            self._k = self._v = None
            self._b = self._n = 0
            super().reset()

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError(f"crop takes a negative count of tokens to remove, got {tokens_to_remove}")
            if tokens_to_remove and self.is_initialized:
                self._n = max(0, self._n + tokens_to_remove)
                self._views()

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._gather(torch.arange(self._b, device=self.device).repeat_interleave(repeats))

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self._k is None:
                return
            idx = indices.tolist()
            if idx and all(a < b for a, b in zip(idx, idx[1:])) and 0 <= idx[0] and idx[-1] < self._b:
                # a subset in order (finished rows dropped): move each kept row down, in the same buffer
                k, v = self._buffers()
                for new, old in enumerate(idx):
                    if new != old:
                        k[new, :, : self._n] = k[old, :, : self._n]
                        v[new, :, : self._n] = v[old, :, : self._n]
                self._b = len(idx)
                self._views()
            else:  # repeats or a new order (a shared prefix copied to its rows): a new buffer
                self._gather(indices)

        def _gather(self, indices: torch.Tensor) -> None:
            if self._k is None:
                return
            k, v = self._buffers()
            self._k, self._v = k[: self._b][indices], v[: self._b][indices]
            self._b = self._k.shape[0]
            self._views()

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            self._gather(beam_idx.to(self.device))

    class GrowingCache(DynamicCache):
        """A `DynamicCache` whose layers are `GrowingLayer`s, each added on the model's first update of it and
        allocated with `room` positions beyond that update."""

        def __init__(self, room: int = 0) -> None:
            Cache.__init__(self, layer_class_to_replicate=GrowingLayer)
            self.room = max(0, int(room))

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kw: Any):
            while len(self.layers) <= layer_idx:
                self.layers.append(GrowingLayer(self.room))
            return super().update(key_states, value_states, layer_idx, *args, **kw)

        @classmethod
        def left_padded(cls, rows: Sequence[RowKV | None], length: int, room: int) -> GrowingCache:
            """A cache of `length` positions whose row i holds rows[i]'s KV right-aligned (zeros before it, and
            in rows that are None), with `room` positions to spare."""
            cache = cls(room)
            cache.layers.extend(GrowingLayer.adopt(K, V, length) for K, V in left_pad_rows(rows, length, room))
            return cache
