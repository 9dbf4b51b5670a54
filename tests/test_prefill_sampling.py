"""The transformers backend's parts: the prefill plan (`inference/prefill.py`) and token picking
(`inference/sampling.py`), each checked alone; `test_kv_store`, `test_kv_cache` and `test_rollout` check the
tokens and logprobs they produce together."""

from __future__ import annotations

import torch

from agentrl.inference.base import SamplingParams
from agentrl.inference.kv_store import KVStore
from agentrl.inference.prefill import plan_prefill, shared_prefixes
from agentrl.inference.sampling import (
    constrained_pick,
    finish_reason,
    pick_tokens,
    seeded_generator,
    temperature_logprobs,
    top_p_pick,
)


def _layers(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(1, n, 2), torch.zeros(1, n, 2))]


def test_plan_names_what_each_row_encodes() -> None:
    a, b = list(range(1, 21)), list(range(1, 18)) + [99, 98]
    loner = [50, 51, 52]
    plain = plan_prefill([a, loner], 8, store=None, prefix_reuse=False, min_shared_prefix=4)
    assert plain.suffixes == [a, loner] and not plain.prefixes and plain.starts is None and plain.room == 8
    shared = plan_prefill([a, b, loner], 8, store=None, prefix_reuse=True, min_shared_prefix=4)
    assert shared.prefixes == [list(range(1, 18)), loner[:2]] or shared.prefixes == [loner[:2], list(range(1, 18))]
    for p, s, g in zip([a, b, loner], shared.suffixes, shared.group):
        assert shared.prefixes[g] + s == p and s  # every row keeps a token to encode
    assert shared_prefixes([a, loner], 4) is None  # nothing shared

    store = KVStore(4, min_tokens=4)
    store.put(a[:10], _layers(10))
    stored = plan_prefill([a, loner], 8, store=store, prefix_reuse=True, min_shared_prefix=4)
    assert stored.suffixes == [a[10:], loner] and not stored.prefixes
    assert stored.starts is not None and stored.starts[0][0][0].shape[1] == 10 and stored.starts[1] is None
    assert stored.continues == [tuple(a[:10]), None]  # a's entry is replaced when a is stored again


def test_top_p_and_constrained_picks_are_seeded_per_row() -> None:
    logp = torch.log_softmax(torch.tensor([2.0, 1.0, 0.5, -3.0]), -1)
    picks = {top_p_pick(logp, 0.5, seeded_generator(SamplingParams(seed=s))) for s in range(20)}
    assert picks == {0}  # token 0 alone reaches top-p 0.5
    p = SamplingParams(temperature=1.0, seed=3)
    assert constrained_pick([7, 9], logp[:2], 1.0, seeded_generator(p)) == constrained_pick(
        [7, 9], logp[:2], 1.0, seeded_generator(p)
    )
    tok, lp = constrained_pick([7, 9], logp[:2], 0.0, seeded_generator(p))
    assert tok == 7 and abs(lp - float(torch.log_softmax(logp[:2], -1)[0])) < 1e-6


def test_a_row_samples_the_same_token_whatever_else_is_in_the_batch() -> None:
    logits = torch.randn(3, 11, generator=torch.Generator().manual_seed(0))
    params = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.0, seed=5),
        SamplingParams(temperature=0.8, top_p=0.9, seed=6),
    ]
    temps = torch.tensor([p.temperature for p in params])
    logp = temperature_logprobs(logits, temps)
    together, lps = pick_tokens(logp, [0, 1, 2], params, [[], [], []], [seeded_generator(p) for p in params], {10})
    for j, p in enumerate(params):
        alone, lp = pick_tokens(logp, [j], [p], [[]], [seeded_generator(p)], {10})
        assert alone == [together[j]] and lp == [lps[j]] and lp[0] == float(logp[j, together[j]])
    assert together[0] == int(logits[0].argmax())


def test_finish_reasons() -> None:
    text = {1: "a", 2: "b", 3: "STOP"}.get

    def decode(ids: list[int]) -> str:
        return "".join(text(i, "") for i in ids)

    eos = {0}
    assert finish_reason([1, 0], SamplingParams(), eos, decode) == "stop"
    assert finish_reason([1, 0], SamplingParams(ignore_eos=True), eos, decode) is None
    assert finish_reason([1, 3], SamplingParams(stop=("STOP",)), eos, decode) == "stop"
    assert finish_reason([1, 2], SamplingParams(allowed=[[1, 2], [2, 0]]), eos, decode) == "stop"
    assert finish_reason([1, 2], SamplingParams(max_new_tokens=2), eos, decode) == "length"
    assert finish_reason([1], SamplingParams(max_new_tokens=2), eos, decode) is None
