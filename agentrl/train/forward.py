"""The training forward: token log-probs (and entropy, values, greedy tokens) of a batch under a model.

`forward` is the plain batch forward; `shared_prefix.shared_prefix_forward` is the same forward with the rows'
shared prefixes encoded once, and falls back to this one. Both `update` (the PPO step) and `shared_prefix` import
this module, which imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agentrl.algo.losses import entropy_from_logits, token_logprobs


class ValueHead(nn.Module):
    """V(s_t) from the policy's last hidden state before token t (PPO-GAE's critic shares the backbone)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):  # float32 values, also under train.autocast
            return self.proj(hidden.float()).squeeze(-1)


@dataclass
class ForwardOut:
    logprobs: torch.Tensor  # [B, T]: log pi(token t | tokens < t) at the sampling temperature; 0 at t=0
    entropy: torch.Tensor | None  # [B, T]
    values: torch.Tensor | None  # [B, T]: V before token t; 0 at t=0
    argmax: torch.Tensor | None = None  # [B, T] long: the greedy token at t (argmax=True; -1 where not computed)


def forward(
    model: Any,
    value_head: ValueHead | None,
    ids: torch.Tensor,
    attn: torch.Tensor,
    temperature: float,
    *,
    entropy: bool,
    mask: torch.Tensor | None = None,
    allowed: torch.Tensor | None = None,
    argmax: bool = False,
) -> ForwardOut:
    """Token logprobs (and entropy, values) of `ids` under `model` at `temperature`.

    With `allowed` ([B, T, A], `types.allowed_tensor`) constrained positions are scored by the constrained
    policy that sampled them: renormalised over their allowed ids (`losses.token_logprobs`).

    With `mask` ([B, T], 1 where a logprob is needed) the LM head runs only on those positions: with a
    49k vocabulary the full [B, T, V] logits dominate the cost and memory of a CPU update, and env or
    prompt tokens never need them. (Models whose head does more than a linear map, e.g. logit
    soft-capping, should be called without a mask.)

    `shared_prefix.shared_prefix_forward` takes the same arguments and returns the same result (to float
    rounding) with the tokens that rows share -- a common prompt, a group's prompt, TRePO siblings' shared agent
    tokens -- encoded once, with gradients; positions past a row's last real token then read 0.
    """
    moved = on_model_device(
        forward, model, value_head, ids, attn, temperature, entropy=entropy, mask=mask, allowed=allowed, argmax=argmax
    )
    if moved is not None:
        return moved
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    if mask is None or decoder is None or head is None:
        out = model(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            use_cache=False,
            output_hidden_states=value_head is not None,
        )
        hidden = out.hidden_states[-1] if value_head is not None else None
        sel = torch.ones_like(ids[:, 1:], dtype=torch.bool)
        logits = out.logits[:, :-1][sel]
    else:
        hidden = decoder(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).last_hidden_state
        sel = mask[:, 1:] > 0
        logits = head_logits(head, hidden[:, :-1][sel])
    logits = logits.float() / temperature  # [N, V]: N = selected positions
    sel_allowed = None if allowed is None else allowed[:, 1:][sel]  # [N, A]
    lp = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    lp[:, 1:] = lp[:, 1:].masked_scatter(sel, token_logprobs(logits, ids[:, 1:][sel], allowed=sel_allowed))
    ent = None
    if entropy:
        ent = torch.zeros_like(lp)
        ent[:, 1:] = ent[:, 1:].masked_scatter(sel, entropy_from_logits(logits, sel_allowed))
    values = None
    if value_head is not None:
        assert hidden is not None, "the hidden states are kept (output_hidden_states) whenever there is a value head"
        values = torch.zeros_like(lp)
        values[:, 1:] = value_head(hidden[:, :-1])
    top = None
    if argmax:  # the greedy token (constrained positions: the likeliest allowed id)
        top = torch.full(ids.shape, -1, dtype=torch.long, device=ids.device)
        if sel_allowed is not None and sel_allowed.shape[-1] > 0:
            best = allowed_argmax(logits, sel_allowed)
        else:
            best = logits.argmax(-1)
        top[:, 1:] = top[:, 1:].masked_scatter(sel, best)
    return ForwardOut(lp, ent, values, top)


def allowed_argmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Per row of logits [N, V]: the argmax over its allowed ids ([N, A], -1 padded), or over V where none."""
    on = allowed >= 0
    sub = logits.gather(-1, allowed.clamp(min=0)).masked_fill(~on, float("-inf"))
    pick = allowed.gather(-1, sub.argmax(-1, keepdim=True)).squeeze(-1)
    return torch.where(on.any(-1), pick, logits.argmax(-1))


def head_logits(head: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on `hidden`; under train.autocast in float32 (the weights are float32 then), so the
    trainer's log-probs are computed at the precision the rollout sampled with."""
    if torch.is_autocast_enabled(hidden.device.type):
        with torch.autocast(hidden.device.type, enabled=False):
            return head(hidden.float())
    return head(hidden)


def device_of(model: Any) -> torch.device:
    """Where `model`'s weights are (a ReferenceView has no parameters() of its own: its decoder's)."""
    try:
        return next(iter(model.parameters())).device
    except (AttributeError, StopIteration, TypeError):
        return next(iter(model.get_decoder().parameters())).device


def bf16_autocast(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    """`train.autocast=bfloat16` (RL's update and SFT's step): the forward in bfloat16 on `device`'s type; the
    weights, gradients and AdamW state stay float32, and the heads run in float32 (`ValueHead`, `head_logits`)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def on_model_device(
    fn: Callable[..., ForwardOut],
    model: Any,
    value_head: ValueHead | None,
    ids: torch.Tensor,
    attn: torch.Tensor,
    temperature: float,
    *,
    mask: torch.Tensor | None,
    allowed: torch.Tensor | None,
    **kwargs: Any,
) -> ForwardOut | None:
    """`fn` (a forward) run where `model`'s weights are, its outputs moved back to `ids`' device -- a model on a
    GPU, a batch collated on the CPU: run there, answer here; None when `ids` are there already."""
    dev = device_of(model)
    if ids.device == dev:
        return None
    out = fn(
        model,
        value_head,
        ids.to(dev),
        attn.to(dev),
        temperature,
        mask=None if mask is None else mask.to(dev),
        allowed=None if allowed is None else allowed.to(dev),
        **kwargs,
    )
    return ForwardOut(
        out.logprobs.to(ids.device),
        *(None if t is None else t.to(ids.device) for t in (out.entropy, out.values, out.argmax)),
    )
