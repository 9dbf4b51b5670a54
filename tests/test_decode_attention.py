"""The decode-step attention (inference/decode_attention.py) against transformers' sdpa, and the sampler with it."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from agentrl.inference import hf as hf_mod
from agentrl.inference.base import SamplingParams
from agentrl.inference.decode_attention import NAME, decode_attention, grouped_decode_attention
from agentrl.inference.hf import HFPolicy


class _Layer(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def _qkv(b: int, h: int, kv: int, q: int, L: int, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(b, n, t, 16, generator=g).to(dtype) for n, t in ((h, q), (kv, L), (kv, L)))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
@pytest.mark.parametrize("heads", [(6, 2), (4, 4), (3, 1)])
def test_one_query_matches_sdpa(mask_kind: str, heads: tuple[int, int]) -> None:
    h, kv = heads
    q, k, v = _qkv(3, h, kv, 1, 11)
    layer = _Layer(h // kv).eval()
    mask = None
    if mask_kind != "none":
        keep = torch.ones(3, 1, 1, 11, dtype=torch.bool)
        keep[0, ..., :4] = False  # left padding of row 0
        keep[2, ..., :1] = False
        mask = (
            keep if mask_kind == "bool" else torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)
        )
    ours, _ = grouped_decode_attention(layer, q, k, v, mask, scaling=0.3)
    ref, _ = sdpa_attention_forward(layer, q, k, v, mask, scaling=0.3)
    assert ours.shape == ref.shape == (3, 1, h, 16)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_padding_is_not_attended() -> None:
    """A masked position's value changes nothing (an unmasked one does)."""
    q, k, v = _qkv(1, 2, 1, 1, 5)
    keep = torch.tensor([False, True, True, True, True]).view(1, 1, 1, 5)
    layer = _Layer(2).eval()
    base, _ = grouped_decode_attention(layer, q, k, v, keep)
    v2 = v.clone()
    v2[..., 0, :] += 100.0
    same, _ = grouped_decode_attention(layer, q, k, v2, keep)
    torch.testing.assert_close(base, same)
    v2[..., 1, :] += 100.0
    other, _ = grouped_decode_attention(layer, q, k, v2, keep)
    assert not torch.allclose(base, other)


def test_bfloat16_close_to_float32() -> None:
    q, k, v = _qkv(2, 6, 2, 1, 40)
    layer = _Layer(3).eval()
    ours, _ = grouped_decode_attention(layer, q.bfloat16(), k.bfloat16(), v.bfloat16(), None)
    ref, _ = sdpa_attention_forward(layer, q, k, v, None)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), ref, rtol=0.05, atol=0.05)


def test_several_queries_and_training_go_to_sdpa() -> None:
    """Prefill (a query of several tokens) and a training forward are transformers' sdpa, bit for bit."""
    q, k, v = _qkv(2, 4, 2, 7, 7)
    layer = _Layer(2).eval()
    ours, _ = grouped_decode_attention(layer, q, k, v, None, is_causal=True)
    ref, _ = sdpa_attention_forward(layer, q, k, v, None, is_causal=True)
    assert torch.equal(ours, ref)
    layer.train()
    q1, k1, v1 = _qkv(2, 4, 2, 1, 7)
    assert torch.equal(
        grouped_decode_attention(layer, q1, k1, v1, None)[0], sdpa_attention_forward(layer, q1, k1, v1, None)[0]
    )


def test_switch_is_scoped_and_restored(tiny) -> None:
    model, _ = tiny
    before = model.config._attn_implementation
    assert before == "sdpa"
    with decode_attention(model) as on:
        assert on and model.config._attn_implementation == NAME
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), decode_attention(model):
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"  # restored after an error too


def test_other_attention_left_alone(tiny) -> None:
    model, _ = tiny
    model.config._attn_implementation = "eager"
    try:
        with decode_attention(model) as on:
            assert not on and model.config._attn_implementation == "eager"
    finally:
        model.config._attn_implementation = "sdpa"


def test_sampler_same_tokens_with_and_without(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generation through HFPolicy: the same greedy tokens and (to rounding) log-probs as with transformers' sdpa
    at every decode step, with left-padded rows of different lengths."""
    model, tok = tiny
    prompts = [list(range(5, 40)), list(range(7, 19)), list(range(3, 60))]
    params = [SamplingParams(temperature=0.0, max_new_tokens=12, ignore_eos=True)] * 2 + [
        SamplingParams(temperature=1.0, max_new_tokens=12, ignore_eos=True, seed=3)
    ]
    ours = HFPolicy(model, tok, prefix_reuse=False).generate(prompts, params)
    monkeypatch.setattr(hf_mod, "decode_attention", lambda m: contextlib.nullcontext(False))
    ref = HFPolicy(model, tok, prefix_reuse=False).generate(prompts, params)
    for a, b in zip(ours, ref):
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_views_of_a_cache_buffer_read_in_place(dtype: torch.dtype) -> None:
    """Keys and values as a growing cache holds them: views [:rows, :, :filled] of a buffer with room whose unwritten
    positions hold anything (NaN here). The result equals sdpa's on contiguous copies; the room changes nothing."""
    q, k, v = _qkv(3, 6, 2, 1, 11, dtype)
    buf_k = torch.full((4, 2, 16, 16), float("nan"), dtype=dtype)
    buf_v = torch.full((4, 2, 16, 16), float("nan"), dtype=dtype)
    buf_k[:3, :, :11], buf_v[:3, :, :11] = k, v
    kv_k, kv_v = buf_k[:3, :, :11], buf_v[:3, :, :11]
    assert not kv_k.is_contiguous()
    keep = torch.ones(3, 1, 1, 11, dtype=torch.bool)
    keep[1, ..., :5] = False
    layer = _Layer(3).eval()
    ours, _ = grouped_decode_attention(layer, q, kv_k, kv_v, keep)
    ref, _ = sdpa_attention_forward(layer, q.float(), k.float(), v.float(), keep)
    assert torch.isfinite(ours).all()
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(ours.float(), ref, rtol=tol, atol=tol)
    assert torch.equal(buf_k[:3, :, :11], k) and torch.equal(buf_v[:3, :, :11], v)  # the filled part untouched
