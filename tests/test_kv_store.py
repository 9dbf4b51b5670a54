"""The KV store (`agentrl/inference/kv_store.py`): a conversation's next turn starts from the KV cache of its
last one and encodes only the new tokens, with the same tokens and logprobs as encoding everything."""

from __future__ import annotations

import pytest
import torch

from agentrl.inference import prefill
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFChatModel, HFPolicy
from agentrl.inference.kv_store import KVStore


def _conversations(tok, n: int) -> list[list[int]]:
    return [
        tok(f"System: you are patient number {i}. " * (3 + i) + "Doctor: how are you?")["input_ids"] for i in range(n)
    ]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_next_turn_from_the_store_matches_full_encoding(tiny, temperature: float) -> None:
    model, tok = tiny
    stored, plain = HFPolicy(model, tok, store=KVStore(8)), HFPolicy(model, tok)
    turn1 = _conversations(tok, 4)
    params = [SamplingParams(temperature=temperature, max_new_tokens=3 + 2 * i, seed=10 + i) for i in range(4)]
    first = stored.generate(turn1, params)
    assert len(stored.store) == 4 and stored.store.hits == 0
    # turn 2: each conversation grows by its reply and a new question; one newcomer shares nothing stored
    follow = tok(" Doctor: any fever?")["input_ids"]
    turn2 = [p + c.token_ids + follow for p, c in zip(turn1, first)] + [
        tok("an unrelated new conversation")["input_ids"]
    ]
    params2 = [SamplingParams(temperature=temperature, max_new_tokens=6, seed=50 + i) for i in range(5)]
    before = stored.prefill_tokens
    a, b = stored.generate(turn2, params2), plain.generate(turn2, params2)
    for x, y in zip(a, b):
        assert x.token_ids == y.token_ids
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4)
    assert stored.store.hits == 4
    encoded = stored.prefill_tokens - before
    assert encoded < sum(len(p) for p in turn2) - sum(len(p) for p in turn1), "the stored turns were encoded again"
    # each grown conversation replaced its old entry; the newcomer added one
    assert len(stored.store) == 5


def test_store_evicts_least_recent_and_clears_on_new_weights(tiny) -> None:
    model, tok = tiny
    pol = HFPolicy(model, tok, store=KVStore(2))
    convs = _conversations(tok, 3)
    for c in convs:
        pol.generate([c], SamplingParams(temperature=0.0, max_new_tokens=2))
    assert len(pol.store) == 2
    assert pol.store.lookup([convs[0] + [5, 6]])[0][0] is None  # the oldest was evicted
    assert pol.store.lookup([convs[2] + [5, 6]])[0][1] == len(convs[2])
    new = {k: v.clone() for k, v in model.state_dict().items()}
    pol.update_weights(new)
    assert len(pol.store) == 0


def test_a_shared_system_prompt_hit_keeps_the_other_conversation(tiny) -> None:
    """Conversation B starts from A's entry (they share a long system prompt) but must not evict it."""
    model, tok = tiny
    pol = HFPolicy(model, tok, store=KVStore(8))
    system = tok("System: you are a patient. Answer briefly. " * 3)["input_ids"]
    a, b = system + tok(" Doctor: hello A")["input_ids"], system + tok(" Doctor: hi there B")["input_ids"]
    (ca,) = pol.generate([a], SamplingParams(temperature=0.0, max_new_tokens=3))
    pol.generate([b], SamplingParams(temperature=0.0, max_new_tokens=3))
    assert pol.store.hits == 1 and len(pol.store) == 2
    assert pol.store.lookup([a + ca.token_ids + [7]])[0][1] == len(a) + len(ca.token_ids) - 1


def test_kv_store_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="max_entries must be >= 1"):
        KVStore(0)


def test_chat_model_keeps_conversations(tiny) -> None:
    """HFChatModel stores conversations by default (in its own store, which its sampler fills): a simulator's
    second turn reuses its first."""
    model, tok = tiny
    chat = HFChatModel(model, tok)
    msgs = [{"role": "system", "content": "You are a patient with a cough. " * 4}, {"role": "user", "content": "Hi?"}]
    reply = chat.complete(msgs, max_tokens=4)
    chat.complete(
        msgs + [{"role": "assistant", "content": reply}, {"role": "user", "content": "Any fever?"}], max_tokens=4
    )
    assert chat.store is not None and chat.store.hits == 1 and chat.policy.store is chat.store
    assert HFChatModel(model, tok, kv_store=0).store is None


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_row_by_row_prefill_matches_the_padded_batch(tiny, temperature: float, monkeypatch) -> None:
    """Prompts encoded one row at a time (the CPU default for long prompts; here for all) and as one left-padded
    batch (the GPU default) give the same tokens and logprobs on all three prefill paths: plain, shared prefix,
    and from the KV store."""
    monkeypatch.setattr(prefill, "ROW_PREFILL_MIN", 1)
    model, tok = tiny
    system = tok("System: you are a patient. Answer briefly. " * 3)["input_ids"]
    turn1 = [system + tok(f" Doctor: question {i}" * (i + 1))["input_ids"] for i in range(3)] + [
        tok("a loner")["input_ids"]
    ]
    runs = {}
    for rows in (True, False):
        pols = [
            HFPolicy(model, tok, row_prefill=rows, prefix_reuse=False),
            HFPolicy(model, tok, row_prefill=rows, store=KVStore(8)),
        ]
        params = [SamplingParams(temperature=temperature, max_new_tokens=4 + i, seed=7 + i) for i in range(4)]
        outs = [pol.generate(turn1, params) for pol in pols]  # plain; shared prefix (the store is empty)
        turn2 = [p + c.token_ids + tok(" Doctor: any fever?")["input_ids"] for p, c in zip(turn1, outs[1])]
        outs.append(pols[1].generate(turn2, params))  # from the store
        assert pols[1].store.hits >= 3 and pols[0].encoder().by_rows([[1]]) is rows
        runs[rows] = (outs, [p.prefill_tokens for p in pols])
    for x_run, y_run in zip(runs[True][0], runs[False][0]):
        for x, y in zip(x_run, y_run):
            assert x.token_ids == y.token_ids
            assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4)
    assert runs[True][1] == runs[False][1]  # the same tokens encoded either way


def test_short_prompts_are_batched_even_on_a_cpu(tiny) -> None:
    model, tok = tiny
    pol = HFPolicy(model, tok)
    assert pol.row_prefill  # tests run on a CPU
    assert not pol.encoder().by_rows([[1] * 20] * 16) and pol.encoder().by_rows([[1] * 400] * 16)
    assert not HFPolicy(model, tok, row_prefill=False).encoder().by_rows([[1] * 400] * 16)
