"""Data-parallel training on torch.distributed, launched by torchrun (`train.parallel=ddp` or `fsdp2`).

Every rank runs the whole loop on its share of the update's groups (`my_groups`: the one place the batch is
split), so a group never spans ranks and the per-group estimators (GRPO, RLOO, TRePO, ...) stay exact. What
crosses ranks goes through the few collectives here: gradients (summed, the loss normalised by the GLOBAL
minibatch's token count, `update.ppo_update`), whitening statistics, metrics and token counts. Sampling needs
no collective: every episode's and continuation's seeds derive from what it is (its step, global group index and
index in the group; a continuation's parent, point and j: DESIGN.md, "Seeds are data"), so rank r samples for its
groups exactly what one process samples for them, without knowing what the other ranks sample. With one process
(no torchrun) every function is a no-op.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from agentrl.inference.devices import pick_device
from agentrl.train.config import ConfigError

T = TypeVar("T")
_timeout_s = 300.0


class DistributedError(RuntimeError):
    """A collective failed: another rank died, or did not reach it within train.collective_timeout_s."""


def init_from_env(parallel: str, timeout_s: float = 300.0, device: str = "auto") -> None:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); a no-op
    for a single process. gloo on CPU, nccl on CUDA (each rank on cuda:LOCAL_RANK); `device` is train.device."""
    global _timeout_s
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n <= 1 or dist.is_initialized():
        return
    if parallel not in ("ddp", "fsdp2"):
        raise ConfigError(
            f"launched with {n} processes (WORLD_SIZE={n}) but train.parallel={parallel!r}: "
            "set train.parallel=ddp or train.parallel=fsdp2"
        )
    missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={n} but {', '.join(missing)} unset: launch with torchrun (or `agentrl train --nproc N`)"
        )
    if re.fullmatch(r"cuda:\d+", device):
        raise ConfigError(
            f"train.device={device} names one GPU for {n} processes: use train.device=cuda (or auto), "
            "which puts each process on cuda:LOCAL_RANK, or train.device=cpu"
        )
    _timeout_s = float(timeout_s)
    backend = "gloo"
    if torch.cuda.is_available() and device != "cpu":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "nccl"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def my_groups(n_groups: int) -> range:
    """The one place the batch is split by rank: rank r takes a contiguous block of n_groups / world groups.

    Contiguous (not strided) so that gathering in rank order gives one process's order: metrics, records and the
    update's rows (`row_span`) line up as one process's. Group indices stay global (`Trainer._episode_specs`), so
    a group samples the same on whichever rank holds it."""
    w, r = world(), rank()
    if n_groups % w:
        raise ConfigError(
            f"rollout.groups={n_groups} must be a multiple of the number of processes ({w}): a group never spans ranks"
        )
    k = n_groups // w
    return range(r * k, (r + 1) * k)


def my_share(n: int) -> range:
    """Rank r's contiguous block of n items that need not divide evenly (held-out tasks): ranks take
    n // world or one more, lower ranks' items first, so gathering in rank order restores the list's order."""
    w, r = world(), rank()
    return range(n * r // w, n * (r + 1) // w)


def row_span(n: int, what: str = "the row-count all-gather") -> tuple[int, int]:
    """(offset, total): where this rank's `n` rows start in the update's global batch (lower ranks' rows first,
    as one process orders them) and how many rows every rank holds together; (0, n) with one process."""
    counts = all_gather(n, what)
    return sum(counts[: rank()]), sum(counts)


def sum_metrics(metrics: dict[str, float], what: str = "the metrics all-gather") -> dict[str, float]:
    """Each key's sum over ranks (a key a rank lacks counts 0): counts such as episodes per outcome."""
    if world() == 1:
        return metrics
    parts = all_gather(metrics, what)
    return {k: float(sum(p.get(k, 0.0) for p in parts)) for k in sorted({k for p in parts for k in p})}


def _collective(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except RuntimeError as exc:  # gloo/nccl errors (DistBackendError is one), timeouts included
        raise DistributedError(
            f"rank {rank()} of {world()}: {what} failed -- another rank stopped, or did not reach it within "
            f"train.collective_timeout_s={_timeout_s:g}s ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from exc


def train_device(choice: str) -> torch.device:
    """`train.device` (`inference.devices.pick_device`): auto is this process's GPU (cuda:LOCAL_RANK under torchrun)
    where CUDA exists, else the CPU."""
    return pick_device(choice, "train.device")


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_reduce(t: torch.Tensor, op: Any, what: str) -> torch.Tensor:
    if world() == 1:
        return t
    buf = t.detach().to(_device()).clone()
    _collective(what, lambda: dist.all_reduce(buf, op=op))
    return buf.to(t.device)


def all_reduce_sum(t: torch.Tensor, what: str = "all_reduce") -> torch.Tensor:
    """The sum over ranks (a new tensor; `t` itself with one process)."""
    return _all_reduce(t, dist.ReduceOp.SUM if world() > 1 else None, what)


def all_reduce_max(t: torch.Tensor, what: str = "all_reduce") -> torch.Tensor:
    return _all_reduce(t, dist.ReduceOp.MAX if world() > 1 else None, what)


def all_gather(obj: Any, what: str = "all_gather") -> list[Any]:
    """Every rank's `obj` (picklable), in rank order."""
    if world() == 1:
        return [obj]
    out: list[Any] = [None] * world()
    _collective(what, lambda: dist.all_gather_object(out, obj))
    return out


def all_gather_lists(items: list[Any], what: str = "all_gather") -> list[Any]:
    """Every rank's `items` (picklable) concatenated in rank order: one process's list with one process."""
    return [x for part in all_gather(items, what) for x in part]


def barrier(what: str = "barrier") -> None:
    if world() > 1:
        _collective(what, lambda: dist.barrier())


def broadcast_params(module: torch.nn.Module) -> None:
    """Rank 0's weights on every rank (the ranks' copies must start equal; the summed gradients keep them so)."""
    if world() == 1:
        return
    for t in module.state_dict().values():
        buf = t.detach().to(_device())
        _collective("broadcast of the initial weights", lambda: dist.broadcast(buf, 0))  # noqa: B023 (called at once)
        t.copy_(buf.to(t.device))


def reduce_grads(params: list[torch.nn.Parameter], finite: bool) -> bool:
    """Sum every gradient over ranks (None counts as 0); True when every rank's loss was finite. FSDP2-sharded
    parameters (DTensors) are skipped: their backward already reduce-scattered the sum (`fsdp.py`)."""
    if world() == 1:
        return finite
    from torch.distributed.tensor import DTensor

    for p in params:
        if isinstance(p, DTensor):
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad.copy_(all_reduce_sum(p.grad, "the gradient all-reduce"))
    return bool(all_reduce_sum(torch.tensor([0.0 if finite else 1.0]), "the gradient all-reduce").item() == 0)
