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
    # query heads h*G .. h*G+G-1 share KV head h (transformers' repeat_kv order), so they are G rows of one product
    scores = torch.matmul(query.reshape(b, kv, h // kv, d), key.transpose(-1, -2)).float()  # [B, KV, G, L]
    scores.mul_(d**-0.5 if scaling is None else scaling)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores.masked_fill_(~attention_mask, float("-inf"))  # [B, 1, 1, L] broadcasts over KV heads and G
        else:
            scores.add_(attention_mask.float())
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [B, KV, G, d]
    return out.reshape(b, h, 1, d).transpose(1, 2).contiguous(), None


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
