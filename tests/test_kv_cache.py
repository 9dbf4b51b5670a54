"""`GrowingCache` (`agentrl/inference/kv_cache.py`): decode steps write into preallocated room, and every
operation the backend uses gives the same keys/values as transformers' `DynamicCache`."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, MistralConfig, MistralForCausalLM
from transformers.cache_utils import DynamicLayer

from agentrl.inference import prefill
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.inference.kv_cache import GrowingCache, GrowingLayer, supports
from agentrl.inference.kv_store import KVStore


def _kv(b: int, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, 2, n, 4, generator=g), torch.randn(b, 2, n, 4, generator=g)


def test_growing_layer_matches_dynamic_layer_through_every_operation() -> None:
    g = torch.Generator().manual_seed(0)
    grow, ref = GrowingLayer(room=3), DynamicLayer()

    def check(step: str) -> None:
        assert grow.get_seq_length() == ref.get_seq_length(), step
        assert torch.equal(grow.keys, ref.keys) and torch.equal(grow.values, ref.values), step

    for layer in (grow, ref):
        assert layer.get_seq_length() == 0
    k, v = _kv(3, 5, g)
    out = grow.update(k, v)
    assert torch.equal(out[0], ref.update(k, v)[0])
    check("prefill")
    room = grow._k.data_ptr()
    for i in range(3):  # within the room allocated with the first update: written in place, no copy
        k, v = _kv(3, 1, g)
        grow.update(k, v), ref.update(k, v)
        check(f"step {i}")
    assert grow._k.data_ptr() == room, "a step inside the reserved room copied the cache"
    k, v = _kv(3, 1, g)
    grow.update(k, v), ref.update(k, v)  # past the room: grows (doubling)
    check("growth")
    assert grow._k.shape[-2] >= 2 * 8
    room = grow._k.data_ptr()
    idx = torch.tensor([0, 2])  # finished row 1 dropped: the kept rows move down inside the same buffer
    grow.batch_select_indices(idx), ref.batch_select_indices(idx)
    check("row compaction")
    assert grow._k.data_ptr() == room
    k, v = _kv(2, 1, g)
    grow.update(k, v), ref.update(k, v)
    check("after compaction")
    idx = torch.tensor([1, 0])  # a new order: gathered into a new buffer
    grow.batch_select_indices(idx), ref.batch_select_indices(idx)
    check("row selection")
    k, v = _kv(2, 2, g)
    grow.update(k, v), ref.update(k, v)
    check("after selection")
    grow.crop(-3), ref.crop(-3)
    check("crop")
    grow.batch_repeat_interleave(2), ref.batch_repeat_interleave(2)
    check("repeat")
    with pytest.raises(ValueError, match="negative"):
        grow.crop(2)
    with pytest.raises(ValueError, match="rows"):
        grow.update(*_kv(3, 1, g))


def test_left_padded_cache_right_aligns_each_row() -> None:
    g = torch.Generator().manual_seed(2)
    rows = [[(torch.randn(2, n, 4, generator=g), torch.randn(2, n, 4, generator=g))] for n in (3, 5)] + [None]
    cache = GrowingCache.left_padded(rows, 5, room=4)
    lay = cache.layers[0]
    assert lay.keys.shape == (3, 2, 5, 4) and lay._k.shape[-2] == 9
    assert torch.equal(lay.keys[0, :, 2:], rows[0][0][0]) and torch.equal(lay.values[1], rows[1][0][1])
    assert not lay.keys[0, :, :2].any() and not lay.keys[2].any()  # pads are zeros, never garbage
    cache.update(*_kv(3, 4, g), 0)
    assert lay._k.shape[-2] == 9 and cache.get_seq_length() == 9  # the suffix went into the room


def test_cache_appends_one_layer_per_model_layer_with_its_room() -> None:
    g = torch.Generator().manual_seed(1)
    cache = GrowingCache(room=10)
    for layer in range(3):
        cache.update(*_kv(2, 4, g), layer)
    assert len(cache.layers) == 3 and cache.get_seq_length() == 4
    assert all(lay._k.shape[-2] == 14 for lay in cache.layers)


def _prompts(tok) -> list[list[int]]:
    shared = tok("System: you are a patient with a cough. " * 3)["input_ids"]
    return [shared + tok(f" Doctor: question {i}?")["input_ids"] for i in range(4)] + [tok("unrelated")["input_ids"]]


@pytest.mark.parametrize("reserve_cap", [256, 2])
def test_generation_is_the_same_with_the_growing_cache(tiny, monkeypatch, reserve_cap: int) -> None:
    """Rows finish at different lengths (compaction), some share a prefix, and with a reserve of 2 the cache
    grows by doubling mid-generation: tokens and logprobs equal those of transformers' own cache."""
    model, tok = tiny
    used = _count_updates(monkeypatch)
    monkeypatch.setattr(prefill, "RESERVE_CAP", reserve_cap)
    prompts = _prompts(tok)
    params = [SamplingParams(temperature=[0.0, 1.0][i % 2], max_new_tokens=2 + 5 * i, seed=7 + i) for i in range(5)]
    growing, plain = HFPolicy(model, tok), HFPolicy(model, tok)
    plain.growing_cache = False
    a = growing.generate(prompts, params)
    assert used[0] > 0, "the growing cache was not used"
    before = used[0]
    b = plain.generate(prompts, params)
    assert used[0] == before
    assert [x.token_ids for x in a] == [y.token_ids for y in b]
    for x, y in zip(a, b):
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-6)
    assert max(len(x.token_ids) for x in a) > reserve_cap or reserve_cap > 20


def test_next_turn_from_the_store_is_the_same_with_the_growing_cache(tiny, monkeypatch) -> None:
    model, tok = tiny
    used = _count_updates(monkeypatch)
    growing, plain = HFPolicy(model, tok, store=KVStore(8)), HFPolicy(model, tok, store=KVStore(8))
    plain.growing_cache = False
    turn1 = _prompts(tok)
    params = [SamplingParams(temperature=0.0, max_new_tokens=3 + 3 * i) for i in range(5)]
    first = growing.generate(turn1, params)
    assert [c.token_ids for c in first] == [c.token_ids for c in plain.generate(turn1, params)]
    turn2 = [p + c.token_ids + tok(" Doctor: and now?")["input_ids"] for p, c in zip(turn1, first)]
    before = growing.store.hits
    a, b = growing.generate(turn2, params), plain.generate(turn2, params)
    assert growing.store.hits - before == 5 and used[0] > 0
    assert [x.token_ids for x in a] == [y.token_ids for y in b]
    for x, y in zip(a, b):
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-6)


def _count_updates(monkeypatch) -> list[int]:
    used = [0]
    real = GrowingLayer.update

    def counting(self, *a, **kw):
        used[0] += 1
        return real(self, *a, **kw)

    monkeypatch.setattr(GrowingLayer, "update", counting)
    return used


def test_sliding_window_models_keep_the_default_cache(tiny) -> None:
    assert supports(tiny[0].config)
    assert supports(LlamaConfig())
    assert not supports(MistralConfig(sliding_window=8))
    mixed = LlamaConfig()
    mixed.layer_types = ["full_attention", "sliding_attention"]
    assert not supports(mixed)
    tok = tiny[1]
    cfg = MistralConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=8,
    )
    model = MistralForCausalLM(cfg).eval()
    pol = HFPolicy(model, tok)
    assert not pol.growing_cache
    out = pol.generate(
        [tok("hello there, a prompt longer than the window")["input_ids"]],
        SamplingParams(temperature=0.0, max_new_tokens=4),
    )
    assert len(out[0].token_ids) == 4
