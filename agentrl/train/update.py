"""The update step: K epochs of minibatch PPO-style updates with gradient accumulation.

Multi-process (torchrun, `train.parallel=ddp`): each rank holds its groups' rows of the update's batch
(`distributed.my_groups`), draws the same minibatches as one process would, weights its micro-batches by
their share of the GLOBAL minibatch and sums gradients over ranks before clipping (`distributed.reduce_grads`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from agentrl.algo.losses import aggregate, importance_weights, kl_estimate, policy_loss, value_loss
from agentrl.core.finite import NonFiniteError
from agentrl.core.types import TrainBatch
from agentrl.train import distributed, fsdp
from agentrl.train.config import PPOConfig
from agentrl.train.forward import ForwardOut, ValueHead, bf16_autocast, device_of, forward
from agentrl.train.invariants import check_logprob_drift
from agentrl.train.policy_shift import ShiftProbe, dropout_active, probe_rows, score_rows
from agentrl.train.shared_prefix import shared_prefix_forward
from agentrl.train.update_stats import StatSums


def _weight(counts: torch.Tensor, local_rows: list[int], global_rows: list[int], agg: str) -> float:
    """Share of a micro-batch (`local_rows`) in its GLOBAL minibatch (`global_rows`, over every rank), so the
    gradients accumulated and summed over ranks equal the one-process full-minibatch loss's.
    counts[i]: agent tokens of global row i (token-mean), or 1 for a row with any (the seq-mean modes)."""
    c = counts if agg == "token-mean" else (counts > 0).to(counts.dtype)
    return float(c[local_rows].sum() / c[global_rows].sum().clamp(min=1))


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
    offset: int = 0,
    total: int | None = None,
    autocast: bool = False,
    offpolicy: str | None = None,
    check_drift: bool = True,
    fold_shift: bool = True,
) -> dict[str, float]:
    """`batch` holds rows offset .. offset+len(batch) of the update's `total` rows (all of them with one process).

    Every rank draws the same permutation of the global rows, so minibatches are the one-process ones; each rank
    back-propagates its rows of a minibatch, weighted by their share of the global minibatch, and the gradients
    are summed over ranks before clipping and the step (`distributed.reduce_grads`).

    `autocast`: the forward runs under bfloat16 autocast; weights, gradients, the loss and AdamW stay float32.

    `offpolicy` (an `importance_weights` mode): `batch.old_logprobs` are the sampler's, and the update is one
    optimizer step (`one_step`), so π_old is the weights this forward runs with: each micro-batch takes π_old from
    its own forward (detached) and weighs its tokens by π_old / π_sampler, which is what `offpolicy.correct_batch`
    computes with a pass of its own (that pass is saved). `check_drift`: compare the first minibatch's log-probs
    with the batch's old ones (off for a sampler that differs by design: a bfloat16 copy).

    `policy_shift` compares the shift rows before and after the update; with one optimizer step and every shift row
    trained (`fold_shift`), "before" is read off the update's own forward instead of a no-grad pass of its own."""
    if offpolicy is not None and not one_step(cfg, len(batch) if total is None else total):
        raise ValueError(
            f"ppo_update: offpolicy={offpolicy!r} takes π_old from the update's own forward, which is π_old only for "
            f"one optimizer step (ppo.epochs=1, ppo.minibatch_size >= the batch's rows; got epochs={cfg.epochs}, "
            f"minibatch_size={cfg.minibatch_size}): correct the batch with offpolicy.correct_batch instead"
        )
    model.train()
    dev = device_of(model)
    lockstep = fsdp.is_sharded(model)
    total = len(batch) if total is None else total
    params = [p for p in model.parameters() if p.requires_grad] + (list(value_head.parameters()) if value_head else [])
    counts = torch.zeros(total, dtype=torch.float64)
    counts[offset : offset + len(batch)] = batch.action_mask.sum(-1).to(torch.float64)
    counts = distributed.all_reduce_sum(counts, "the token-count all-reduce")
    stats_sum = StatSums()
    attempts = skipped = steps = 0
    grad_norms = []
    micro = max(1, cfg.micro_batch_size)
    drift_rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # first minibatch, before any step
    # idle rows are left out of the forward under fsdp2 too (their gradient is 0): their passes become zero-weight
    # padding passes, so every rank still runs as many as the busiest and the stats match one process's
    idle = _idle_rows(batch, value_head, cfg) if cfg.skip_zero_advantage else set()
    shift_rows = probe_rows(batch, idle, cfg.shift_rows) if not lockstep else []  # fsdp2: no extra collectives
    # the policy before the step: with one optimizer step, the trained shift rows' own forward (before any step, and
    # the eval-mode forward's equal where no dropout is active) gives it; otherwise a no-grad pass of its own
    fold = fold_shift and one_step(cfg, total) and not idle & set(shift_rows) and not dropout_active(model)
    probe = ShiftProbe(
        model,
        batch,
        shift_rows,
        fold=fold,
        temperature=temperature,
        dev=dev,
        autocast=autocast,
        shared_prefix=cfg.shared_prefix,
    )
    for epoch in range(cfg.epochs):
        perm = torch.randperm(total, generator=generator).tolist()
        for s in range(0, total, cfg.minibatch_size):
            g_rows = perm[s : s + cfg.minibatch_size]
            # idle rows (zero advantage everywhere, nothing else reads them) are left out; the others keep their
            # weight in the whole minibatch (`_weight` over g_rows), so the gradient is the same sum
            mb_rows = [i - offset for i in g_rows if offset <= i < offset + len(batch) and i - offset not in idle]
            if cfg.shared_prefix and micro < len(mb_rows):
                mb_rows = prefix_order(batch.input_ids, batch.attention_mask, mb_rows)
            optimizer.zero_grad(set_to_none=True)
            finite = True
            attempts += 1
            chunks = [mb_rows[m0 : m0 + micro] for m0 in range(0, len(mb_rows), micro)]
            if lockstep:  # every rank the same number of forward/backward passes: each one is a collective
                chunks += [[]] * (_most_micro_batches(g_rows, len(batch), micro) - len(chunks))
            for rows in chunks:
                mb = batch.select(rows or [0]).to(dev)  # [] -> a zero-weight pass over one of this rank's rows
                take = probe.wanted(rows)
                loss, stats, new_lp, top = _micro_loss(
                    model,
                    value_head,
                    mb,
                    cfg,
                    temperature,
                    shared_prefix=cfg.shared_prefix and not lockstep,
                    autocast=autocast,
                    offpolicy=offpolicy,
                    argmax=bool(take),
                )
                probe.record(take, new_lp, top)
                if check_drift and epoch == 0 and s == 0 and rows and mb.sampler_logprobs is None:
                    # the same weights that sampled: new and old log-probs must agree (with an off-policy correction
                    # π_old is the trainer's own recompute, and the sampler was checked against it already)
                    drift_rows.append((new_lp, mb.old_logprobs, mb.action_mask))
                if not torch.isfinite(loss):
                    finite = False
                    if not lockstep:
                        break
                w = _weight(counts, [r + offset for r in rows], g_rows, cfg.loss_agg) if rows else 0.0
                (loss * w).backward()
                if rows:  # a zero-weight padding pass reports nothing
                    stats_sum.add(stats, w)
            finite = distributed.reduce_grads(params, finite)
            gnorm = (fsdp.clip_grad_norm_ if lockstep else torch.nn.utils.clip_grad_norm_)(
                params, grad_clip if grad_clip else float("inf")
            )
            if not finite or not math.isfinite(float(gnorm)):
                optimizer.zero_grad(set_to_none=True)  # skip the step, count it; never apply a NaN update
                skipped += 1
                continue
            grad_norms.append(float(gnorm))
            optimizer.step()
            steps += 1
    if scheduler is not None:  # one scheduler step per update (the schedule is counted in updates)
        scheduler.step()
    out = stats_sum.reduce(attempts)
    out["grad_norm"] = sum(grad_norms) / len(grad_norms) if grad_norms else float("nan")
    out["skipped_steps"] = float(skipped)
    out["optimizer_steps"] = float(steps)
    out["lr"] = float(optimizer.param_groups[0]["lr"])
    out["rows/skipped_zero_advantage"] = float(
        distributed.all_reduce_sum(torch.tensor([float(len(idle))], dtype=torch.float64), "the stats all-reduce").item()
    )
    out.update(_drift(drift_rows, cfg))
    out.update(probe.finish(model))
    return out


def one_step(cfg: PPOConfig, rows: int) -> bool:
    """Whether an update of `rows` rows takes one optimizer step (one epoch, one minibatch), so that π_old, the
    policy before the update, is the one every micro-batch's forward runs with."""
    return cfg.epochs == 1 and cfg.minibatch_size >= rows


def _idle_rows(batch: TrainBatch, value_head: ValueHead | None, cfg: PPOConfig) -> set[int]:
    """Rows whose loss is exactly 0 whatever the weights: every agent token's advantage is 0 (the policy term
    −A·ρ vanishes) and no other term reads the row (entropy bonus, KL loss, value loss)."""
    if (
        value_head is not None
        or cfg.entropy_coef > 0
        or (batch.ref_logprobs is not None and cfg.kl_coef > 0 and not cfg.kl_in_reward)
    ):
        return set()
    nonzero = ((batch.advantages != 0) & (batch.action_mask > 0)).any(-1)
    return {i for i, busy in enumerate(nonzero.tolist()) if not busy}


def recompute_logprobs(
    model: nn.Module,
    batch: TrainBatch,
    temperature: float,
    *,
    micro_batch_size: int,
    autocast: bool = False,
    shared_prefix: bool = False,
) -> torch.Tensor:
    """π_old: the trainer's log-probs [B, T] of the batch's tokens with the weights the update starts from, in
    micro-batches, by the same forward (and autocast) the update's loss uses, so the PPO ratio of the first step is
    1 up to rounding. The off-policy correction weighs tokens by π_old / π_sampler (`losses.importance_weights`)."""
    out = torch.zeros(batch.old_logprobs.shape, dtype=torch.float32)
    step, dev = max(1, micro_batch_size), device_of(model)
    for s in range(0, len(batch), step):
        rows = list(range(s, min(s + step, len(batch))))
        lp, _ = score_rows(model, batch, rows, temperature, dev, autocast, shared_prefix, argmax=False)
        out[rows] = torch.where(batch.action_mask[rows] > 0, lp, torch.zeros(()))
    return out


def _most_micro_batches(g_rows: list[int], per_rank: int, micro: int) -> int:
    """The largest number of micro-batches any rank runs for the minibatch `g_rows` (rank r holds the global
    rows r*per_rank .. (r+1)*per_rank - 1: `distributed.my_groups`)."""
    n = [0] * distributed.world()
    for i in g_rows:
        n[min(i // per_rank, len(n) - 1)] += 1
    return max(-(-k // micro) for k in n)


def _drift(rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], cfg: PPOConfig) -> dict[str, float]:
    """`logprob/max_abs_diff` over this rank's rows of the update's first minibatch (checked, see invariants), and
    `logprob/mismatch_kl`: the sampler/trainer mismatch KL(π_sampler ‖ π_trainer) per agent token, Schulman's k3
    estimator (ρ − 1) − log ρ with ρ = π_trainer / π_sampler of each sampled token (unbiased, ≥ 0; the tokens were
    drawn from the sampler). Both compare the same weights before any step, so what they see is the engines'
    difference (kernels, precision, a stale sync), the mismatch that truncated importance sampling corrects."""
    if not rows:
        return {}
    new = torch.cat([r[0].flatten() for r in rows])
    old = torch.cat([r[1].flatten() for r in rows])
    mask = torch.cat([r[2].flatten() for r in rows])
    out = check_logprob_drift(new, old, mask, warn_at=cfg.logprob_drift_warn_at, error_at=cfg.logprob_drift_error_at)
    log_rho = (new.detach() - old).double()[mask > 0]
    if log_rho.numel():
        out["logprob/mismatch_kl"] = float((torch.expm1(log_rho) - log_rho).mean())
    return out


def _micro_loss(
    model: nn.Module,
    value_head: ValueHead | None,
    mb: TrainBatch,
    cfg: PPOConfig,
    temperature: float,
    *,
    shared_prefix: bool,
    autocast: bool = False,
    offpolicy: str | None = None,
    argmax: bool = False,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor | None]:
    """The micro-batch's loss, its stats, its recomputed log-probs (detached) and, with `argmax`, the greedy token at
    each agent position (`ForwardOut.argmax`). `offpolicy`: see `ppo_update`."""
    with bf16_autocast(mb.input_ids.device, autocast):
        out = (shared_prefix_forward if shared_prefix else forward)(
            model,
            value_head,
            mb.input_ids,
            mb.attention_mask,
            temperature,
            entropy=True,
            mask=mb.action_mask,
            allowed=mb.allowed,
            argmax=argmax,
        )
    top = out.argmax
    if autocast:  # the loss in float32
        out = ForwardOut(out.logprobs.float(), *(None if t is None else t.float() for t in (out.entropy, out.values)))
    mask = mb.action_mask
    old, is_weights = mb.old_logprobs, mb.is_weights
    is_stats: dict[str, float] = {}
    if offpolicy is not None:  # one step: π_old is this forward's; the batch's old log-probs are the sampler's
        old = torch.where(mask > 0, out.logprobs.detach(), torch.zeros(()))
        is_weights, is_stats = importance_weights(old, mb.old_logprobs, mask, mode=offpolicy, cap=cfg.is_cap)
    loss, stats = policy_loss(
        out.logprobs,
        old,
        mb.advantages,
        mask,
        clip_low=cfg.clip_low,
        clip_high=cfg.clip_high,
        dual_clip=cfg.dual_clip,
        agg=cfg.loss_agg,
        is_weights=is_weights,
    )
    stats = {"loss/policy": float(loss.detach()), **stats, **is_stats}
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
        # a turn-level critic (turn_gae) is trained only at turn starts; every other estimator on every agent token
        vmask = mask if mb.value_mask is None else mb.value_mask
        assert out.values is not None, "the forward returns values whenever it is given a value head"
        vl, vstats = value_loss(out.values, mb.old_values, mb.returns, vmask, clip=cfg.vf_clip, agg=cfg.loss_agg)
        stats.update({"loss/value": float(vl.detach()), **vstats})
        loss = loss + cfg.vf_coef * vl
    return loss, stats, out.logprobs.detach(), top


class NonFiniteTrainingError(NonFiniteError):
    """Updates in a row in which every optimizer step was skipped for a NaN/inf loss or gradient: the run learns
    nothing, so it stops (the CLI exits 2 with the message)."""


class SkipGuard:
    """Stops a run whose updates all skip their steps. `ppo_update` skips (and counts, `skipped_steps`) every
    optimizer step whose loss or gradient is not finite, so one bad minibatch costs one step; but when every step
    of `limit` updates in a row was skipped, the settings themselves make the loss non-finite (a huge
    ppo.kl_coef or ppo.entropy_coef, or weights a too-large optim.lr already broke) and sampling on is waste.

    Call `observe(metrics, step)` with each update's `ppo_update` metrics; an update that took a step resets it.
    """

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"SkipGuard limit must be >= 1, got {limit}")
        self.limit = limit
        self.in_a_row = 0

    def observe(self, metrics: dict[str, float], step: int) -> None:
        skipped, taken = metrics.get("skipped_steps", 0.0), metrics.get("optimizer_steps", 0.0)
        self.in_a_row = self.in_a_row + 1 if skipped > 0 and taken == 0 else 0
        if self.in_a_row >= self.limit:
            raise NonFiniteTrainingError(
                f"update {step}: every optimizer step of the last {self.in_a_row} updates was skipped for a NaN or inf "
                f"loss or gradient ({int(skipped)} skipped in this one); the run learns nothing, so it stops "
                "(train.max_skipped_updates): lower optim.lr, ppo.kl_coef, ppo.entropy_coef or ppo.vf_coef"
            )
