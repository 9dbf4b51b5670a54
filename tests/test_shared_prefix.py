"""Shared-prefix forward (`agentrl/train/shared_prefix.py`): the same log-probs, entropies, values, losses and parameter
gradients as the naive batch (float32, to 1e-5), on GRPO-, TRePO-, micro-batched and constrained batches, and the
fallbacks to the naive path."""

from __future__ import annotations

import copy

import pytest
import torch

from agentrl.core.types import TrainBatch
from agentrl.inference.models import load_model
from agentrl.train.config import PPOConfig
from agentrl.train.forward import ValueHead, forward
from agentrl.train.shared_prefix import MIN_SHARED, plan, shared_prefix_forward
from agentrl.train.update import ppo_update


def close(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Equal to 1e-5 of the tensor's largest entry (at least 1e-5): float32 sums taken in another order (one
    copy of the prefix instead of B, micro-batches) round differently; naive micro-batching differs as much."""
    atol = 1e-5 * max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1e-5
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0, msg=lambda s: f"{what}: {s}")


PAD = 2


@pytest.fixture(scope="module")
def model():
    m, _ = load_model("tiny-random")
    m.train()  # no dropout in this model: train mode is what ppo_update runs in
    return m


def _rand(n: int, g: torch.Generator) -> list[int]:
    return torch.randint(3, 49152, (n,), generator=g).tolist()


def _batch(rows: list[list[tuple[list[int], int]]], g: torch.Generator, *, adv_per_token: bool = False) -> TrainBatch:
    """Right-padded batch from rows given as segments (tokens, on_mask): 1 = sampled agent tokens, 0 = prompt/env."""
    B, T = len(rows), max(sum(len(s) for s, _ in r) for r in rows)
    ids = torch.full((B, T), PAD)
    attn = torch.zeros(B, T, dtype=torch.long)
    amask = torch.zeros(B, T)
    for b, r in enumerate(rows):
        c = 0
        for toks, on in r:
            ids[b, c : c + len(toks)] = torch.tensor(toks)
            amask[b, c : c + len(toks)] = float(on)
            c += len(toks)
        attn[b, :c] = 1
    old = -torch.rand(B, T, generator=g) * 3 * amask
    adv = torch.randn(B, T, generator=g) if adv_per_token else torch.randn(B, 1, generator=g).expand(B, T).clone()
    ref = old + 0.1 * torch.randn(B, T, generator=g) * amask
    return TrainBatch(ids, attn, amask, old, adv * amask, ref_logprobs=ref)


def grpo_batch(g: torch.Generator, prompts: int = 1, per_prompt: int = 4) -> TrainBatch:
    """Rows sharing a prompt; two agent turns of different lengths with env tokens between them."""
    system = _rand(24, g)
    rows = []
    for _ in range(prompts):
        prompt = system + _rand(20, g)
        for i in range(per_prompt):
            n1, n2 = 5 + 3 * i, 9 - 2 * i
            rows.append([(prompt, 0), (_rand(n1, g), 1), (_rand(6, g), 0), (_rand(n2, g), 1)])
    return _batch(rows, g)


def trepo_batch(g: torch.Generator) -> TrainBatch:
    """A parent episode and branch continuations sharing its sampled tokens up to their branch points (inside
    the agent turns), each row with its own per-token advantages on the shared tokens."""
    prompt, a1, env, a2 = _rand(20, g), _rand(20, g), _rand(8, g), _rand(24, g)
    parent = [(prompt, 0), (a1, 1), (env, 0), (a2, 1)]
    late1 = [(prompt, 0), (a1, 1), (env, 0), (a2[:6], 1), (_rand(15, g), 1)]
    late2 = [(prompt, 0), (a1, 1), (env, 0), (a2[:11], 1), (_rand(7, g), 1), (_rand(5, g), 0), (_rand(4, g), 1)]
    early = [(prompt, 0), (a1[:3], 1), (_rand(30, g), 1)]
    return _batch([parent, late1, early, late2], g, adv_per_token=True)


def _grads(m) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def _loss_and_grads(m, b: TrainBatch, *, sp: bool, temperature: float = 0.8, value_head=None):
    m.zero_grad(set_to_none=True)
    if value_head is not None:
        value_head.zero_grad(set_to_none=True)
    out = (shared_prefix_forward if sp else forward)(
        m, value_head, b.input_ids, b.attention_mask, temperature, entropy=True, mask=b.action_mask, allowed=b.allowed
    )
    w = b.action_mask
    loss = -(out.logprobs * b.advantages * w).sum() / w.sum() - 0.01 * (out.entropy * w).sum() / w.sum()
    if value_head is not None:
        loss = loss + ((out.values - 1.0) ** 2 * w).sum() / w.sum()
    loss.backward()
    grads = _grads(m)
    if value_head is not None:
        grads.update({"vh." + n: p.grad.clone() for n, p in value_head.named_parameters()})
    return out, loss.detach(), grads


def _assert_same(m, b: TrainBatch, **kw):
    o1, l1, g1 = _loss_and_grads(m, b, sp=False, **kw)
    o2, l2, g2 = _loss_and_grads(m, b, sp=True, **kw)
    w = b.action_mask > 0
    close(o2.logprobs[w], o1.logprobs[w])
    close(o2.entropy[w], o1.entropy[w])
    assert (o2.logprobs[~w] == 0).all()  # off the mask nothing is scored, as on the naive path
    close(l2, l1)
    assert g1.keys() == g2.keys() and len(g1) == len(list(m.parameters())) + (2 if kw.get("value_head") else 0)
    for n in g1:
        close(g2[n], g1[n], n)
    return o1, o2


def test_grpo_batch_same_loss_and_every_gradient(model):
    b = grpo_batch(torch.Generator().manual_seed(0))
    tree = plan(b.input_ids, b.attention_mask)
    assert tree is not None and len(tree.levels) == 2 and tree.tokens < b.input_ids.numel()
    assert int(tree.levels[0].end[0]) == 44  # the whole prompt, shared by every row
    _assert_same(model, b)


def test_trepo_siblings_shared_agent_tokens_two_levels(model):
    b = trepo_batch(torch.Generator().manual_seed(1))
    tree = plan(b.input_ids, b.attention_mask)
    # root: prompt + 3 shared agent tokens; one group: parent and the two late branches (a1, env, a2[:6])
    assert tree is not None and len(tree.levels) == 3
    assert int(tree.levels[0].end[0]) == 23 and int(tree.levels[1].end.max()) == 20 + 20 + 8 + 6
    assert (b.action_mask[:, 1:23] > 0).any()  # shared positions carry loss, with different advantages per row
    _assert_same(model, b)
    one = plan(b.input_ids, b.attention_mask, two_level=False)
    assert one is not None and len(one.levels) == 2 and one.tokens > tree.tokens
    o1 = forward(model, None, b.input_ids, b.attention_mask, 1.0, entropy=True, mask=b.action_mask)
    o2 = shared_prefix_forward(
        model, None, b.input_ids, b.attention_mask, 1.0, entropy=True, mask=b.action_mask, two_level=False
    )
    close(o2.logprobs, o1.logprobs)


def test_groups_without_a_common_root(model):
    """Two prompts with nothing in common: no root, but each prompt's rows form a group."""
    g = torch.Generator().manual_seed(2)
    rows = []
    for _ in range(2):
        prompt = _rand(30, g)
        rows += [[(prompt, 0), (_rand(4 + 5 * i, g), 1)] for i in range(3)]
    b = _batch(rows, g)
    tree = plan(b.input_ids, b.attention_mask)
    assert tree is not None and len(tree.levels) == 2 and tree.levels[0].parent is None and len(tree.levels[0].rep) == 2
    _assert_same(model, b)


def test_constrained_decoding(model):
    """allowed ids on sampled positions, in the shared prefix (the same for siblings) and in the suffixes; a
    position whose allowed ids differ between rows ends the shared prefix."""
    g = torch.Generator().manual_seed(3)
    b = trepo_batch(g)
    B, T = b.input_ids.shape
    allowed = torch.full((B, T, 3), -1)
    for t in (22, 25, 33, 50, 58):  # agent columns (shared by some rows, own tokens of others)
        for r in range(B):
            if b.action_mask[r, t] > 0:
                allowed[r, t] = torch.tensor([int(b.input_ids[r, t]), 7 + t, 11])
    b.allowed = allowed
    _assert_same(model, b)
    b.allowed = allowed.clone()
    b.allowed[2, 21, :2] = torch.tensor([int(b.input_ids[2, 21]), 5])  # only row 2: the root stops at 21
    tree = plan(b.input_ids, b.attention_mask, b.allowed)
    assert int(tree.levels[0].end[0]) == 21
    _assert_same(model, b)


def test_value_head(model):
    b = grpo_batch(torch.Generator().manual_seed(4))
    torch.manual_seed(0)
    vh = ValueHead(model.config.hidden_size)
    torch.nn.init.normal_(vh.proj.weight, std=0.1)
    o1, o2 = _assert_same(model, b, value_head=vh)
    real = b.attention_mask > 0
    close(o2.values[real], o1.values[real])


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_ppo_update_micro_batches_match_one_naive_update(model, agg):
    """ppo_update with shared prefixes and micro-batches (rows reordered so groups stay together) gives the
    gradients and updated parameters of one naive full-minibatch update."""
    g = torch.Generator().manual_seed(5)
    b = grpo_batch(g, prompts=3, per_prompt=3)  # 9 rows: 3 prompts sharing a system prompt
    base = dict(epochs=1, minibatch_size=9, loss_agg=agg, kl_coef=0.05, entropy_coef=0.01)
    runs = {}
    for sp, micro in ((False, 9), (True, 3), (True, 9)):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        cfg = PPOConfig(**base, micro_batch_size=micro, shared_prefix=sp)
        stats = ppo_update(
            m, None, opt, None, b, cfg, temperature=0.9, grad_clip=None, generator=torch.Generator().manual_seed(0)
        )
        assert stats["optimizer_steps"] == 1.0
        runs[sp, micro] = (_grads(m), dict(m.named_parameters()))
    g0, p0 = runs[False, 9]
    for key in ((True, 3), (True, 9)):
        g1, p1 = runs[key]
        assert g1.keys() == g0.keys() and len(g0) == len(list(model.parameters()))
        for n in g0:
            close(g1[n], g0[n], f"{key} grad {n}")
            close(p1[n], p0[n], f"{key} param {n}")


def test_sft_call_and_no_mask(model):
    """`agentrl sft`'s call (no entropy, labels mask, temperature 1); and without a mask every real position."""
    b = grpo_batch(torch.Generator().manual_seed(6))
    args = (model, None, b.input_ids, b.attention_mask, 1.0)
    o1 = forward(*args, entropy=False, mask=b.action_mask)
    o2 = shared_prefix_forward(*args, entropy=False, mask=b.action_mask)
    assert o2.entropy is None and o2.values is None
    close(o2.logprobs, o1.logprobs)
    o1 = forward(*args, entropy=True)
    o2 = shared_prefix_forward(*args, entropy=True)
    real = b.attention_mask.clone()
    real[:, 0] = 0  # column 0 has no logprob
    real = real > 0
    close(o2.logprobs[real], o1.logprobs[real])
    close(o2.entropy[real], o1.entropy[real])


def test_fallbacks_to_the_naive_path(model):
    g = torch.Generator().manual_seed(7)
    unrelated = _batch([[(_rand(20 + 3 * i, g), 0), (_rand(6, g), 1)] for i in range(3)], g)
    few = _rand(MIN_SHARED - 1, g)  # a common prefix too short to pay
    short = _batch([[(few, 0), (_rand(5 + i, g), 1)] for i in range(3)], g)
    one = grpo_batch(g).select([0])
    left = grpo_batch(g)
    left.input_ids, left.attention_mask = left.input_ids.flip(-1), left.attention_mask.flip(-1)  # left-padded
    left.action_mask = left.action_mask.flip(-1)
    for b in (unrelated, short, one, left):
        assert plan(b.input_ids, b.attention_mask) is None
        o1 = forward(model, None, b.input_ids, b.attention_mask, 1.0, entropy=True, mask=b.action_mask)
        o2 = shared_prefix_forward(model, None, b.input_ids, b.attention_mask, 1.0, entropy=True, mask=b.action_mask)
        assert torch.equal(o1.logprobs, o2.logprobs) and torch.equal(o1.entropy, o2.entropy)  # the very same path
    # a value head without a mask, and gradient checkpointing, keep the naive path even with a shared prefix
    b = grpo_batch(g)
    assert plan(b.input_ids, b.attention_mask) is not None
    vh = ValueHead(model.config.hidden_size)
    o1 = forward(model, vh, b.input_ids, b.attention_mask, 1.0, entropy=False)
    o2 = shared_prefix_forward(model, vh, b.input_ids, b.attention_mask, 1.0, entropy=False)
    assert torch.equal(o1.logprobs, o2.logprobs) and torch.equal(o1.values, o2.values)
    m = copy.deepcopy(model)
    getattr(m, "activation_checkpointing_enable", m.gradient_checkpointing_enable)()
    o1 = forward(m, None, b.input_ids, b.attention_mask, 1.0, entropy=False, mask=b.action_mask)
    o2 = shared_prefix_forward(m, None, b.input_ids, b.attention_mask, 1.0, entropy=False, mask=b.action_mask)
    assert torch.equal(o1.logprobs, o2.logprobs)


@pytest.mark.parametrize("which", ["grpo", "trepo", "constrained"])
def test_argmax_same_as_naive(model, which):
    """The greedy tokens (`policy/greedy_flips` measures them before and after a step) from the shared-prefix
    forward equal the naive forward's at every scored position, constrained positions included; -1 elsewhere."""
    g = torch.Generator().manual_seed(7)
    b = grpo_batch(g) if which == "grpo" else trepo_batch(g)
    if which == "constrained":
        B, T = b.input_ids.shape
        b.allowed = torch.full((B, T, 2), -1)
        for r, t in ((0, 22), (1, 25), (3, 33)):
            if b.action_mask[r, t] > 0:
                b.allowed[r, t] = torch.tensor([int(b.input_ids[r, t]), 9])
    with torch.no_grad():
        o1 = forward(
            model,
            None,
            b.input_ids,
            b.attention_mask,
            1.0,
            entropy=False,
            mask=b.action_mask,
            allowed=b.allowed,
            argmax=True,
        )
        o2 = shared_prefix_forward(
            model,
            None,
            b.input_ids,
            b.attention_mask,
            1.0,
            entropy=False,
            mask=b.action_mask,
            allowed=b.allowed,
            argmax=True,
        )
    assert plan(b.input_ids, b.attention_mask, b.allowed) is not None  # the shared path really ran
    on = b.action_mask > 0
    on[:, 0] = False
    assert (o2.argmax[on] >= 0).all() and (o2.argmax[~on] == -1).all()
    assert torch.equal(o2.argmax, o1.argmax)
    close(o2.logprobs[on], o1.logprobs[on])
