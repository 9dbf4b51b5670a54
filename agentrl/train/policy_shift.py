"""How far one update moved the policy: the log-probs and greedy tokens of a few rows before and after the step.

`ShiftProbe` holds the "before" side for `ppo_update`. With one optimizer step and every probed row trained, the
update's own forward runs with the weights before the step, so "before" is read off it (`fold`) instead of a
no-grad pass of its own; otherwise, and for any row a skipped minibatch never reached, `score_rows` runs that pass.
`policy_shift` is the metric, a pure function over the two sides.
"""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import nn

from agentrl.core.types import TrainBatch
from agentrl.train.forward import bf16_autocast, forward
from agentrl.train.shared_prefix import shared_prefix_forward


@overload
def score_rows(
    model: nn.Module,
    batch: TrainBatch,
    rows: list[int],
    temperature: float,
    dev: torch.device,
    autocast: bool,
    shared_prefix: bool = ...,
    argmax: Literal[True] = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
def score_rows(
    model: nn.Module,
    batch: TrainBatch,
    rows: list[int],
    temperature: float,
    dev: torch.device,
    autocast: bool,
    shared_prefix: bool = ...,
    *,
    argmax: Literal[False],
) -> tuple[torch.Tensor, None]: ...


@torch.no_grad()
def score_rows(
    model: nn.Module,
    batch: TrainBatch,
    rows: list[int],
    temperature: float,
    dev: torch.device,
    autocast: bool,
    shared_prefix: bool = False,
    argmax: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log-probs of the sampled tokens [R, T], greedy token ids [R, T] or None without `argmax`) of `rows` under
    `model` now, in eval mode; with `shared_prefix` the rows' common tokens (the system prompt, a group's prompt)
    are encoded once."""
    was_training = model.training
    model.eval()
    mb = batch.select(rows).to(dev)
    with bf16_autocast(dev, autocast):
        out = (shared_prefix_forward if shared_prefix else forward)(
            model,
            None,
            mb.input_ids,
            mb.attention_mask,
            temperature,
            entropy=False,
            mask=mb.action_mask,
            allowed=mb.allowed,
            argmax=argmax,
        )
    model.train(was_training)
    return out.logprobs.float().cpu(), None if out.argmax is None else out.argmax.cpu()


def policy_shift(
    before: tuple[torch.Tensor, torch.Tensor],
    after: tuple[torch.Tensor, torch.Tensor],
    batch: TrainBatch,
    rows: list[int],
) -> dict[str, float]:
    """How far one update moved the policy, on the agent tokens of `rows` (all [R, T]):

    policy/kl_step      mean of k3 = (ρ − 1) − log ρ, ρ = π_new/π_before, over the sampled tokens: an unbiased
                        estimate of KL(π_before ‖ π_new) per agent token (Schulman's k3), ≥ 0
    policy/logprob_step mean of log π_new − log π_before of the sampled tokens (> 0: the batch got likelier)
    policy/greedy_flips fraction of agent positions whose greedy (argmax) token changed
    Before the first step `approx_kl` is ~0 by construction; these are measured after the last one.
    """
    lp0, g0 = before
    lp1, g1 = after
    mask = batch.action_mask[rows] > 0
    if not mask.any():
        return {}
    d = (lp1 - lp0)[mask].double()
    return {
        "policy/kl_step": float((torch.expm1(d) - d).mean()),
        "policy/logprob_step": float(d.mean()),
        "policy/greedy_flips": float((g0 != g1)[mask].double().mean()),
    }


def dropout_active(model: nn.Module) -> bool:
    """Whether the training forward is random (a dropout module with p > 0, or a config's attention/hidden dropout),
    so that it is not the eval-mode forward the policy-shift metrics compare."""
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return True
    conf = getattr(model, "config", None)
    return any(
        isinstance(v, float) and v > 0 and (k.endswith("dropout") or k.endswith("_pdrop"))
        for k, v in (vars(conf).items() if conf is not None else ())
    )


def probe_rows(batch: TrainBatch, idle: set[int], n: int) -> list[int]:
    """Up to n rows to measure the policy's move on: trained rows first (idle ones move only through the others)."""
    rows = [i for i in range(len(batch)) if i not in idle] + sorted(idle)
    return rows[:n] if n else []


class ShiftProbe:
    """The "before" side of `policy_shift` on `rows` of `batch`, filled by a no-grad pass now or, with `fold`, by
    the update's own forward as its micro-batches reach the rows (`record`); `finish` scores the rows after the
    update and returns the metrics ({} without rows)."""

    def __init__(
        self,
        model: nn.Module,
        batch: TrainBatch,
        rows: list[int],
        *,
        fold: bool,
        temperature: float,
        dev: torch.device,
        autocast: bool,
        shared_prefix: bool,
    ):
        self.batch, self.rows, self.fold = batch, rows, fold and bool(rows)
        self.temperature, self.dev, self.autocast, self.shared_prefix = temperature, dev, autocast, shared_prefix
        self.want = {r: k for k, r in enumerate(rows)} if self.fold else {}
        self.filled: set[int] = set()  # probed rows whose "before" the update's forward gave
        self.before: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.fold:
            shape = (len(rows), batch.input_ids.shape[1])
            self.before = (torch.zeros(shape), torch.full(shape, -1, dtype=torch.long))
        elif rows:
            self.before = self._scored(model, rows)

    def _scored(self, model: nn.Module, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return score_rows(model, self.batch, rows, self.temperature, self.dev, self.autocast, self.shared_prefix)

    def wanted(self, rows: list[int]) -> list[tuple[int, int]]:
        """(position in the micro-batch, probe index) of the micro-batch `rows` whose forward gives a "before"."""
        return [(i, self.want[r]) for i, r in enumerate(rows) if r in self.want]

    def record(self, take: list[tuple[int, int]], logprobs: torch.Tensor, argmax: torch.Tensor | None) -> None:
        """Keep a micro-batch forward's log-probs and greedy tokens of the probed rows `take` (from `wanted`)."""
        if not take or self.before is None or argmax is None:
            return
        src, dst = [i for i, _ in take], [k for _, k in take]
        self.before[0][dst] = logprobs[src].float().cpu()
        self.before[1][dst] = argmax[src].cpu()
        self.filled.update(dst)

    def finish(self, model: nn.Module) -> dict[str, float]:
        if self.before is None:
            return {}
        if self.fold and len(self.filled) < len(self.rows):
            # a non-finite micro-batch ended the minibatch before these rows' forward; its step was skipped, so the
            # weights are still the ones before the update
            dst = [k for k in range(len(self.rows)) if k not in self.filled]
            lp, top = self._scored(model, [self.rows[k] for k in dst])
            self.before[0][dst], self.before[1][dst] = lp, top
        return policy_shift(self.before, self._scored(model, self.rows), self.batch, self.rows)
