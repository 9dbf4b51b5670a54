"""Asynchronous rollouts with bounded staleness (`rollout.max_staleness: k`, issue 34 part 3).

Synchronous training alternates: collect batch t with weights version t (the weights after t updates), train
update t, send the new weights, collect batch t+1. With k >= 1 a background thread collects batch s with the weights
of version max(start, s − k) while the main thread trains earlier updates, so up to k batches are collected ahead
and the sampler is never idle waiting for the trainer (verl's one-step off-policy and fully-async modes, AReaL,
prime-rl's `async_level`, NeMo-RL's async GRPO). Which weights sample batch s depends only on s, never on thread
timing, so a run with k >= 1 is as reproducible as a synchronous one.

What staleness costs is corrected in the loss: the trainer recomputes π_old with the weights it trains and weighs
each token by π_old / π_sampler (`ppo.offpolicy_correction`, on by default when k > 0; train/offpolicy.py).

The sampler (an HF copy of the model, a vLLM engine, remote servers) is used by one thread at a time: `lock` is
held around every collection and every weight sync, and the held-out evaluation takes it too (`using`). k = 0 never
builds a pipeline: the trainer's synchronous loop runs as it always did.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

T = TypeVar("T")


@dataclass
class Collected:
    """What was sampled for one update and what is computed from it alone (the trainer's `_collect`)."""

    step: int  # the update it is for
    version: int  # the weights version that sampled it (step − staleness)
    collected: list[Any]  # every episode sampled (refills included): tokens and outcomes count them all
    episodes: list[Any]  # the batch's episodes, infrastructure failures left out
    returns: list[float]
    extra: dict[str, Any]  # branch values, greedy baselines, their tokens and metrics (`Trainer._extra_sampling`)
    refill: Any  # dynamic sampling's record, or None
    outcomes: dict[str, float]
    draws: dict[str, float]  # the task draws' metrics when the batch was drawn
    t_collect: float
    t_branch: float


@dataclass
class _Failed:
    exc: BaseException


class RolloutPipeline(Generic[T]):
    """Collects batch s (`collect(s, version)`) with weights version max(start, s − k) on a background thread.

    The main thread calls `take(s)` for the batch of update s (waiting for it), and `publish(v, state_dict)` after
    each update with the weights of version v; the producer syncs the sampler (`sync(state_dict)`) to exactly the
    version a batch needs before collecting it. `close()` stops the thread after the collection in progress.
    """

    def __init__(
        self,
        collect: Callable[[int, int], T],
        sync: Callable[[dict[str, torch.Tensor]], None],
        *,
        k: int,
        start: int,
        stop: int,
    ):
        if k < 1:
            raise ValueError(f"RolloutPipeline needs max_staleness >= 1 (0 is the synchronous loop), got {k}")
        self.k, self.start, self.stop_at = k, start, stop
        self._collect, self._sync = collect, sync
        self.lock = threading.Lock()  # the sampler: one user at a time
        self._cond = threading.Condition()
        self._weights: dict[int, dict[str, torch.Tensor]] = {}  # published versions a batch still needs
        self._published = start  # the newest version published (start: what the sampler holds already)
        self.sampler_version = start
        self._results: dict[int, T | _Failed] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="agentrl-rollouts", daemon=True)
        self._thread.start()

    def version_for(self, s: int) -> int:
        """The weights version that samples batch s."""
        return max(self.start, s - self.k)

    # -- the producer ------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        s = self.start
        while s < self.stop_at:
            v = self.version_for(s)

            def ready(v: int = v) -> bool:
                return self._stopped or self._published >= v

            with self._cond:  # the weights the batch needs are published (so it is at most k batches ahead)
                self._cond.wait_for(ready)
                if self._stopped:
                    return
                sd = self._weights.get(v)
            try:
                with self.lock:
                    if self.sampler_version != v:
                        assert sd is not None, f"weights version {v} was dropped before batch {s} used it"
                        self._sync(sd)
                        self.sampler_version = v
                    item: T | _Failed = self._collect(s, v)
            except BaseException as exc:  # handed to the main thread by take(), which raises it
                item = _Failed(exc)
            with self._cond:
                self._results[s] = item
                for old in [u for u in self._weights if u < self.version_for(s + 1)]:
                    del self._weights[old]  # no later batch samples with it
                self._cond.notify_all()
            if isinstance(item, _Failed):
                return
            s += 1

    # -- the main thread ---------------------------------------------------------------------------------------
    def take(self, s: int) -> T:
        """Batch s (waits for it); re-raises what the producer raised."""
        with self._cond:
            self._cond.wait_for(lambda: s in self._results or self._stopped)
            if s not in self._results:
                raise RuntimeError(f"the rollout pipeline stopped before batch {s}")
            item = self._results.pop(s)
            self._cond.notify_all()
        if isinstance(item, _Failed):
            raise item.exc
        return item

    def publish(self, version: int, state_dict: dict[str, torch.Tensor]) -> None:
        """The weights after `version` updates; kept (a detached copy) until no batch needs them."""
        needed = version + self.k < self.stop_at  # batch version + k samples with it (version_for)
        copy = {n: t.detach().clone() for n, t in state_dict.items()} if needed else None
        with self._cond:
            if copy is not None:
                self._weights[version] = copy
            self._published = version
            self._cond.notify_all()

    @contextmanager
    def using(
        self, state_dict: Callable[[], dict[str, torch.Tensor]] | None = None, version: int | None = None
    ) -> Iterator[None]:
        """Hold the sampler (no collection runs meanwhile), synced to the weights `state_dict()` gives (version
        `version`) if given: the held-out evaluation samples with the trainer's newest weights. A callable, so the
        weights (a LoRA merge) are only computed when the sampler does not hold that version already."""
        with self.lock:
            if state_dict is not None and version != self.sampler_version:
                self._sync(state_dict())
                self.sampler_version = -1 if version is None else version
            yield

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    def metrics(self) -> dict[str, float]:
        """rollout/batches_ahead: batches collected and waiting for the trainer (0: the trainer waited for one)."""
        with self._cond:
            return {"rollout/batches_ahead": float(len(self._results))}
