"""The decode loop's oneDNN-packed linear copies (inference/packed_linear.DecodePacks): same tokens as nn.Linear,
rebuilt when the weights change in place, the trained layers put back."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.inference.packed_linear import DecodePacks, PackedLinear, bf16_packs_supported, can_pack_decode

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN: nothing is packed"
)

PROMPTS = [list(range(5, 40)), list(range(7, 19)), list(range(3, 60))]
GREEDY = [SamplingParams(temperature=0.0, max_new_tokens=10, ignore_eos=True)] * 3


def _gen(model, tok, pack: bool):
    return HFPolicy(model, tok, prefix_reuse=False, pack_decode=pack).generate(PROMPTS, GREEDY)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_tokens_as_plain_linears(tiny, dtype: torch.dtype) -> None:
    model = copy.deepcopy(tiny[0]).to(dtype)
    packed, plain = _gen(model, tiny[1], True), _gen(model, tiny[1], False)
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    for a, b in zip(packed, plain):
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=tol, atol=tol)


def test_layers_swapped_only_inside_and_put_back(tiny) -> None:
    model = copy.deepcopy(tiny[0])
    before = {n: m for n, m in model.named_modules() if type(m) is nn.Linear}
    packs = DecodePacks()
    with packs.use(model) as on:
        assert on
        inside = dict(model.named_modules())
        assert all(isinstance(inside[n], PackedLinear) for n in before)
    after = dict(model.named_modules())
    assert all(after[n] is m for n, m in before.items())
    with pytest.raises(RuntimeError), packs.use(model):
        raise RuntimeError("boom")
    after = dict(model.named_modules())
    assert all(after[n] is m for n, m in before.items())  # put back after an error too


def test_rebuilt_after_an_in_place_update(tiny) -> None:
    """An optimizer step writes the weights in place (same tensors): the next decode uses the new weights."""
    model = copy.deepcopy(tiny[0])
    tok = tiny[1]
    policy = HFPolicy(model, tok, prefix_reuse=False, pack_decode=True)
    first = policy.generate(PROMPTS, GREEDY)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 0.5
    opt.step()
    again = policy.generate(PROMPTS, GREEDY)
    fresh = _gen(model, tok, False)
    assert [c.token_ids for c in again] == [c.token_ids for c in fresh]
    for a, b in zip(again, fresh):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-4, atol=1e-4)
    assert [c.logprobs for c in again] != [c.logprobs for c in first]  # the step changed what is sampled


def test_not_applied_off_the_cpu_or_to_other_dtypes(tiny) -> None:
    assert can_pack_decode(tiny[0])
    assert not can_pack_decode(copy.deepcopy(tiny[0]).to(torch.float16))
    with DecodePacks().use(copy.deepcopy(tiny[0]).to(torch.float16)) as on:
        assert not on


def test_bfloat16_packs_only_where_the_cpu_runs_onednn_bfloat16(tiny) -> None:
    """An AVX2-only CPU has no oneDNN bfloat16 linear (its weight reorder raises): a bfloat16 model decodes with plain
    linears there, and packed where the CPU has the path."""
    model = copy.deepcopy(tiny[0]).to(torch.bfloat16)
    supported = bf16_packs_supported()
    print(f"oneDNN bfloat16 on this CPU: {supported} ({torch.backends.cpu.get_cpu_capability()})")
    assert can_pack_decode(model) == supported
    with DecodePacks().use(model) as on:
        assert on == supported
        assert any(isinstance(m, PackedLinear) for m in model.modules()) == supported
    assert len(_gen(model, tiny[1], True)) == 3
