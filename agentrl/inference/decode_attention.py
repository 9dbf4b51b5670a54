"""Attention for one decode step by two plain matrix products, for the transformers backend's token-by-token loop.

At a decode step each row has one query token against a KV cache of hundreds to thousands of tokens. transformers'
`sdpa` path packs a grouped-query model's heads (`pack_gqa`: the query heads that share a KV head become rows of
one product, no `repeat_kv` copy) and calls `scaled_dot_product_attention`, which on a CPU dispatches to the
flash-attention kernel. That kernel tiles over query blocks; with one query per row it does that work for nothing:
measured here (SmolLM2-135M, 16 rows x 1,000 cached tokens, 2 threads) it took 56% of a bfloat16 generate call and
made bfloat16 decoding slower than float32 (BENCHMARKS.md, "RL step"). A decode step's attention is memory-bound:
it must read every cached key and value once, which two batched products over the KV heads do,

    scores[b, h, g, :] = q[b, h*G + g] · K[b, h]ᵀ · scale,   out[b, h*G + g] = softmax(scores + mask) · V[b, h]

with the softmax in float32. Everything that is not a decode step (prefill, training, a query of several tokens)
goes to transformers' own sdpa function unchanged, so only the sampler's decode loop sees this function, and the
numbers it returns equal sdpa's up to rounding (tests/test_decode_attention.py).

`decode_attention(model)` switches a model that uses `sdpa` to this function for the duration of a `with` block (the
model's config names the attention function that every layer looks up at each forward); any other attention
implementation (eager, flash-attention, a user's own) is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

NAME = "agentrl_decode_sdpa"
_REGISTERED = False


def grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: query [B, H, q, d], key/value [B, KV, L, d], an sdpa-style mask
    ([B or 1, 1, q, L], bool = may attend, or float added to the scores) -> ([B, q, H, d], None).

    One query token, no dropout, no extra bias: the two products below. Anything else: transformers' sdpa."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    b, h, q, d = query.shape
    kv = key.shape[1]
    if q != 1 or module.training or dropout or kwargs.get("position_bias") is not None or h % kv:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    if kwargs.get("softcap") is not None:
        raise ValueError("decode attention does not support softcap; use attn_implementation='eager'")
    n = key.shape[2]
    full_k, full_v = _whole_buffer(key), _whole_buffer(value)
    if full_k is not None and full_v is not None and full_k.shape == full_v.shape:
        key, value = full_k, full_v
        value[:, :, n:].zero_()  # not written yet: whatever is there must not reach the sum (0 x NaN is NaN)
    # query heads h*G .. h*G+G-1 share KV head h (transformers' repeat_kv order), so they are G rows of one product
    scores = torch.matmul(query.reshape(b, kv, h // kv, d), key.transpose(-1, -2)).float()  # [B, KV, G, L or cap]
    scores.mul_(d**-0.5 if scaling is None else scaling)
    if attention_mask is not None:
        head = scores[..., :n]
        if attention_mask.dtype == torch.bool:
            head.masked_fill_(~attention_mask, float("-inf"))  # [B, 1, 1, L] broadcasts over KV heads and G
        else:
            head.add_(attention_mask.float())
    scores[..., n:] = float("-inf")  # the buffer's room past the filled positions
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [B, KV, G, d]
    return out.reshape(b, h, 1, d).transpose(1, 2).contiguous(), None


def _whole_buffer(t: torch.Tensor) -> torch.Tensor | None:
    """For `t` [B, KV, L, d], the filled part of a buffer [B', KV, cap, d] (`kv_cache.GrowingLayer`'s views): the
    same rows over the whole capacity, a contiguous view (no copy); None when `t` is not such a view.

    A product over a strided view copies it first: in bfloat16 that copy took 70% of the attention's time
    (measured, 7 rows x 1,000 cached positions). Over the whole capacity the rows are contiguous; the extra
    positions (the reply's room, a few dozen) are masked out by the caller."""
    if t.is_contiguous() or t.dim() != 4:
        return None
    b, kv, n, d = t.shape
    s0, s1, s2, s3 = t.stride()
    if s3 != 1 or s2 != d or s1 % d or s0 != kv * s1 or s1 // d < n:
        return None
    cap = s1 // d
    if t.storage_offset() + b * s0 > t.untyped_storage().nbytes() // t.element_size():
        return None
    return t.as_strided((b, kv, cap, d), (s0, s1, s2, s3))


def _register() -> bool:
    """Register the function (and sdpa's mask builder under the same name) with transformers, once."""
    global _REGISTERED
    if not _REGISTERED:
        try:
            from transformers import AttentionInterface
            from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
        except ImportError:  # pragma: no cover - transformers before the attention interfaces: keep sdpa
            return False
        AttentionInterface.register(NAME, grouped_decode_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
        _REGISTERED = True
    return True


def _configs(model: Any) -> list[Any]:
    """The config objects whose `_attn_implementation` a forward reads (the model's and its text config's)."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return []
    out = [cfg]
    text = cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg
    if text is not cfg:
        out.append(text)
    return out


@contextmanager
def decode_attention(model: Any) -> Iterator[bool]:
    """Within the block, a model whose attention is `sdpa` computes decode steps with `grouped_decode_attention`;
    yields whether it switched. The setting is restored on exit, even when the block raises."""
    configs = [c for c in _configs(model) if getattr(c, "_attn_implementation", None) == "sdpa"]
    if not configs or not _register():
        yield False
        return
    for c in configs:
        c._attn_implementation = NAME
    try:
        yield True
    finally:
        for c in configs:
            c._attn_implementation = "sdpa"
