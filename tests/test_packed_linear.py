"""oneDNN-packed linear layers for frozen float32 CPU models (`agentrl/inference/packed_linear.py`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFChatModel, HFPolicy
from agentrl.inference.models import load_model
from agentrl.inference.packed_linear import PackedLinear, can_pack, pack_linears

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")


def test_packed_linear_computes_the_linear_layer() -> None:
    torch.manual_seed(0)
    for bias in (True, False):
        lin = nn.Linear(24, 40, bias=bias)
        packed = PackedLinear(lin)
        for shape in ((1, 24), (7, 24), (3, 5, 24)):
            x = torch.randn(*shape)
            with torch.no_grad():
                assert torch.allclose(packed(x), lin(x), atol=1e-5)
        assert "oneDNN-packed" in repr(packed)
    with pytest.raises(RuntimeError, match="frozen"):
        packed(torch.randn(2, 24, requires_grad=True))


def test_packed_model_generates_what_the_plain_model_generates(tiny) -> None:
    plain, tok = tiny
    model, _ = load_model("tiny-random")  # a copy of the same seeded weights: the session fixture stays unpacked
    n_linear = sum(type(m) is nn.Linear for m in model.modules())
    assert pack_linears(model.eval()) == n_linear > 0
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    ids = tok("The patient says: I have had a cough for", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-4)
    prompts = [tok(f"Doctor: question number {i}?")["input_ids"] for i in range(4)]
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    a, b = HFPolicy(model, tok).generate(prompts, params), HFPolicy(plain, tok).generate(prompts, params)
    assert [x.token_ids for x in a] == [y.token_ids for y in b]


def test_only_float32_cpu_models_are_packed() -> None:
    model, _ = load_model("tiny-random", dtype=torch.bfloat16)
    assert not can_pack(model) and pack_linears(model) == 0
    assert any(type(m) is nn.Linear for m in model.modules())


def test_chat_model_load_packs_unless_told_not_to() -> None:
    packed = HFChatModel.load("tiny-random")
    plain = HFChatModel.load("tiny-random", pack=False)
    assert any(isinstance(m, PackedLinear) for m in packed.policy.model.modules())
    assert not any(isinstance(m, PackedLinear) for m in plain.policy.model.modules())
    msgs = [[{"role": "user", "content": "How are you feeling today?"}]]
    assert packed.complete_batch(msgs, max_tokens=8) == plain.complete_batch(msgs, max_tokens=8)
