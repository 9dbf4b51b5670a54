"""The update step: K epochs of minibatch PPO-style updates with gradient accumulation.

Written for a later multi-process launch (torchrun + DDP/FSDP2) without a rewrite: no global state,
every input is an argument, and the batch is split by rank in exactly one place (`shard`). Gradient
all-reduce is whatever the wrapped model does in backward().
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agentrl.algo.losses import (
    aggregate,
    entropy_from_logits,
    kl_estimate,
    policy_loss,
    token_logprobs,
    value_loss,
)
from agentrl.core.types import TrainBatch
from agentrl.train.config import PPOConfig


class ValueHead(nn.Module):
    """V(s_t) from the policy's last hidden state before token t (PPO-GAE's critic shares the backbone)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden.float()).squeeze(-1)


@dataclass
class ForwardOut:
    logprobs: torch.Tensor  # [B, T]: log pi(token t | tokens < t) at the sampling temperature; 0 at t=0
    entropy: torch.Tensor | None  # [B, T]
    values: torch.Tensor | None  # [B, T]: V before token t; 0 at t=0


def forward(
    model: Any, value_head: ValueHead | None, ids: torch.Tensor, attn: torch.Tensor, temperature: float,
    *, entropy: bool, mask: torch.Tensor | None = None, allowed: torch.Tensor | None = None,
    shared_prefix: bool = False,
) -> ForwardOut:
    """Token logprobs (and entropy, values) of `ids` under `model` at `temperature`.

    With `allowed` ([B, T, A], `types.allowed_tensor`) constrained positions are scored by the constrained
    policy that sampled them: renormalised over their allowed ids (`losses.token_logprobs`).

    With `mask` ([B, T], 1 where a logprob is needed) the LM head runs only on those positions: with a
    49k vocabulary the full [B, T, V] logits dominate the cost and memory of a CPU update, and env or
    prompt tokens never need them. (Models whose head does more than a linear map, e.g. logit
    soft-capping, should be called without a mask.)

    With `shared_prefix` (right-padded rows) tokens that rows share -- a common prompt, a group's prompt, TRePO
    siblings' shared agent tokens -- are encoded once, with gradients (`shared_prefix.shared_prefix_forward`);
    same result to float rounding, except positions past a row's last real token, which then read 0.
    """
    if shared_prefix:
        from agentrl.train.shared_prefix import (
            shared_prefix_forward,  # it imports this module
        )

        return shared_prefix_forward(model, value_head, ids, attn, temperature, entropy=entropy, mask=mask, allowed=allowed)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    if mask is None or decoder is None or head is None:
        out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False, output_hidden_states=value_head is not None)
        hidden = out.hidden_states[-1] if value_head is not None else None
        sel = torch.ones_like(ids[:, 1:], dtype=torch.bool)
        logits = out.logits[:, :-1][sel]
    else:
        hidden = decoder(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).last_hidden_state
        sel = mask[:, 1:] > 0
        logits = head(hidden[:, :-1][sel])
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
        values = torch.zeros_like(lp)
        values[:, 1:] = value_head(hidden[:, :-1])
    return ForwardOut(lp, ent, values)


def shard(n: int, rank: int, world: int) -> list[int]:
    """The one place the batch is split across ranks: rank r takes rows r, r+world, ..."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} out of range for world size {world}")
    return list(range(rank, n, world))


def _weight(mask: torch.Tensor, mb_mask: torch.Tensor, agg: str) -> float:
    """Share of a micro-batch in its minibatch, so accumulated gradients equal the full-minibatch loss's."""
    if agg == "token-mean":
        return float(mask.sum() / mb_mask.sum().clamp(min=1))
    return float((mask.sum(-1) > 0).sum() / (mb_mask.sum(-1) > 0).sum().clamp(min=1))


def prefix_order(ids: torch.Tensor, attn: torch.Tensor, rows: list[int]) -> list[int]:
    """`rows` sorted by their tokens, so micro-batches cut from them hold rows sharing prefixes together (a
    minibatch's gradient does not depend on the order of its rows: `_weight` makes it the same sum)."""
    lens = attn.sum(-1).tolist()
    return sorted(rows, key=lambda i: ids[i, : lens[i]].tolist())


def ppo_update(
    model: nn.Module,
    value_head: ValueHead | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: TrainBatch,
    cfg: PPOConfig,
    *,
    temperature: float,
    grad_clip: float | None,
    generator: torch.Generator,
    rank: int = 0,
    world: int = 1,
) -> dict[str, float]:
    model.train()
    rows = shard(len(batch), rank, world)
    local = batch.select(rows)
    params = [p for p in model.parameters() if p.requires_grad] + (list(value_head.parameters()) if value_head else [])
    sums: dict[str, float] = {}
    count = 0
    skipped = 0
    steps = 0
    grad_norms = []
    mb_size = max(1, cfg.minibatch_size // world)
    micro = max(1, cfg.micro_batch_size)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(local), generator=generator).tolist()
        for s in range(0, len(perm), mb_size):
            mb_rows = perm[s : s + mb_size]
            if cfg.shared_prefix and micro < len(mb_rows):
                mb_rows = prefix_order(local.input_ids, local.attention_mask, mb_rows)
            mb = local.select(mb_rows)
            optimizer.zero_grad(set_to_none=True)
            finite = True
            for m0 in range(0, len(mb), micro):
                mi = mb.select(list(range(m0, min(m0 + micro, len(mb)))))
                loss, stats = _micro_loss(model, value_head, mi, cfg, temperature)
                if not torch.isfinite(loss):
                    finite = False
                    break
                (loss * _weight(mi.action_mask, mb.action_mask, cfg.loss_agg)).backward()
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            gnorm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else float("inf"))
            if not finite or not math.isfinite(float(gnorm)):
                optimizer.zero_grad(set_to_none=True)  # skip the step, count it; never apply a NaN update
                skipped += 1
                continue
            grad_norms.append(float(gnorm))
            optimizer.step()
            steps += 1
    if scheduler is not None:  # one scheduler step per update (the schedule is counted in updates)
        scheduler.step()
    out = {k: v / max(count, 1) for k, v in sums.items()}
    out["grad_norm"] = sum(grad_norms) / len(grad_norms) if grad_norms else float("nan")
    out["skipped_steps"] = float(skipped)
    out["optimizer_steps"] = float(steps)
    out["lr"] = float(optimizer.param_groups[0]["lr"])
    return out


def _micro_loss(model: nn.Module, value_head: ValueHead | None, mb: TrainBatch, cfg: PPOConfig, temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    out = forward(model, value_head, mb.input_ids, mb.attention_mask, temperature, entropy=True, mask=mb.action_mask,
                  allowed=mb.allowed, shared_prefix=cfg.shared_prefix)
    mask = mb.action_mask
    loss, stats = policy_loss(
        out.logprobs, mb.old_logprobs, mb.advantages, mask,
        clip_low=cfg.clip_low, clip_high=cfg.clip_high, dual_clip=cfg.dual_clip, agg=cfg.loss_agg,
    )
    stats = {"loss/policy": float(loss.detach()), **stats}
    if out.entropy is not None:
        ent = aggregate(out.entropy, mask, cfg.loss_agg)
        stats["entropy"] = float(ent.detach())
        if cfg.entropy_coef > 0:
            loss = loss - cfg.entropy_coef * ent
    if mb.ref_logprobs is not None and cfg.kl_coef > 0 and not cfg.kl_in_reward:
        kl = aggregate(kl_estimate(out.logprobs, mb.ref_logprobs, cfg.kl_kind), mask, cfg.loss_agg)
        stats["kl"] = float(kl.detach())
        loss = loss + cfg.kl_coef * kl
    if value_head is not None and mb.returns is not None and mb.old_values is not None:
        vl, vstats = value_loss(out.values, mb.old_values, mb.returns, mask, clip=cfg.vf_clip, agg=cfg.loss_agg)
        stats.update({"loss/value": float(vl.detach()), **vstats})
        loss = loss + cfg.vf_coef * vl
    return loss, stats
