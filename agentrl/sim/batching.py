"""`BatchingChatModel`: a small queue in front of a shared chat model, so simulated users / patients of
many episodes cost one batched generate call per turn instead of one call per episode.

The rollout runner steps the envs of a round on threads (`rollout.env_workers`); each simulator calls
`complete()` as usual and blocks. Whoever serves the queue waits until `max_batch` requests are queued, or
`max_wait_s` passed since the last one arrived, then answers every queued request with one call to the
wrapped model and wakes the callers. Answers are the ones the wrapped model gives one by one: rows keep
their own temperature, max_tokens and seed (a model with `complete_rows` takes per-row settings; otherwise
rows are grouped by identical settings).

`SimulatorQueue`: one run's simulator queue. It owns the lock, the batching models attached to it and the
thread serving them; whoever builds a run creates one and hands it to the run's `BatchingChatModel`s and to
its `RolloutRunner` (`agentrl/rollout/build.py`). Two runs with two queues share nothing; a
`BatchingChatModel` made without a queue gets a private one.

Who serves a queue: while a thread runs `queue.map_serving(pool, fn, jobs)` (the rollout runner does, on the
thread that called it), that thread answers every batch of the queue's models, and the env threads only
enqueue and wait. Otherwise the first caller of a round leads it. The serving thread matters on a CPU:
torch's OpenMP threads belong to the thread that started them, and with more threads than cores a second
team sleeps between parallel regions, so a batch computed on an env thread pays a wake-up per operator
(measured: BENCHMARKS.md, "Simulated patients: batched vs one-by-one turns").
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentrl.core.chat import BaseChatModel

T = TypeVar("T")


class SimulatorQueue:
    """One run's simulator queue: the lock its `BatchingChatModel`s and its serving thread share, those
    models, and which thread serves them (`map_serving`).

    One lock for the models and the server: a caller's "is a thread serving?" check and its enqueue happen
    together, so a request never falls between a server that stops and a leader that starts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # notified when a request arrives or a served future finishes
        self._models: weakref.WeakSet[BatchingChatModel] = weakref.WeakSet()
        self._server: int | None = None  # ident of the thread inside map_serving, if any

    @property
    def models(self) -> list[BatchingChatModel]:
        """The batching models attached to this queue (still alive)."""
        with self._lock:
            return list(self._models)

    def map_serving(self, pool: Executor, fn: Callable[..., T], *iterables: Iterable[Any]) -> list[T]:
        """`list(pool.map(fn, *iterables))`, with every batch their calls to this queue's models make
        answered on this thread instead of on a pool thread.

        Meant for the thread that owns torch's compute threads (the rollout runner's). If another thread is
        already serving this queue, this one only waits. When the work is done, requests still queued (from
        threads outside it) get a leader thread of their own. The first error in the work is raised after all
        of it finished.
        """
        me = threading.get_ident()
        with self._lock:  # serving starts before any work does, so no pool thread makes itself a leader
            outer = self._server
            if outer is None:
                self._server = me
        try:
            futures = [pool.submit(fn, *args) for args in zip(*iterables)]
            if outer in (None, me):  # this thread serves (a nested call on the serving thread too)
                self._serve(futures)
            wait(futures)
            return [f.result() for f in futures]
        finally:
            with self._lock:
                if outer is None:
                    self._server = None
                    for m in list(self._models):  # hand what is still queued to leader threads
                        if m._pending and not m._leader:
                            m._leader = True
                            threading.Thread(target=m._lead, daemon=True).start()

    def _serve(self, futures: list[Future]) -> None:
        for f in futures:
            f.add_done_callback(self._wake)
        while True:
            with self._lock:
                while True:
                    if all(f.done() for f in futures):
                        return
                    ready = next((m for m in list(self._models) if m._pending and not m._leader), None)
                    if ready is not None:
                        ready._leader = True
                        break
                    self._work.wait(1.0)
            ready._lead()

    def _wake(self, _: Future) -> None:
        with self._lock:
            self._work.notify_all()

    def _attach(self, model: BatchingChatModel) -> None:
        with self._lock:
            self._models.add(model)


@dataclass
class _Request:
    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int
    seed: int | None
    done: threading.Event = field(default_factory=threading.Event)
    reply: str | None = None
    error: BaseException | None = None


class BatchingChatModel(BaseChatModel):
    """queue: the run's `SimulatorQueue`, whose serving thread answers this model's batches; None: a
    private queue of its own (no thread serves it, so a round's first caller leads it)."""

    def __init__(
        self, model: Any, *, queue: SimulatorQueue | None = None, max_batch: int = 64, max_wait_s: float = 0.02
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.model = model
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.queue = queue if queue is not None else SimulatorQueue()
        self._arrived = threading.Condition(self.queue._lock)
        self._pending: list[_Request] = []
        self._leader = False  # a thread has taken the next batch of _pending on
        self.calls = 0  # batched calls made to the wrapped model
        self.requests = 0  # complete() calls answered
        self.queue._attach(self)

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> str:
        req = _Request(messages, temperature, max_tokens, seed)
        q = self.queue
        with q._lock:
            self._pending.append(req)
            self._arrived.notify_all()
            q._work.notify_all()
            served = q._server is not None and q._server != threading.get_ident()
            lead = not served and not self._leader
            if lead:
                self._leader = True
        if lead:
            self._lead()
        req.done.wait()
        if req.error is not None:
            raise req.error
        assert req.reply is not None
        return req.reply

    def complete_batch(
        self,
        batch: list[list[dict[str, str]]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> list[str]:
        return self.model.complete_batch(batch, temperature=temperature, max_tokens=max_tokens, seed=seed)

    # -- the leader (the serving thread, or the round's first caller) ---------------------------------------
    def _lead(self) -> None:
        """Take the next batch (the caller has set `_leader`), answer it and wake its callers."""
        with self.queue._lock:
            seen = -1
            while len(self._pending) < self.max_batch and len(self._pending) != seen:
                seen = len(self._pending)  # wait for more while requests keep arriving
                self._arrived.wait(self.max_wait_s)
            taken, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            self._leader = False
            if (
                self._pending and self.queue._server is None
            ):  # the overflow gets a leader of its own (a server takes it next)
                self._leader = True
                threading.Thread(target=self._lead, daemon=True).start()
        try:
            self._answer(taken)
        except BaseException as exc:  # every waiter gets the error; none hangs
            for r in taken:
                if r.reply is None:
                    r.error = exc
        finally:
            for r in taken:
                r.done.set()

    def _answer(self, reqs: list[_Request]) -> None:
        self.requests += len(reqs)
        rows = getattr(self.model, "complete_rows", None)
        if rows is not None:
            self.calls += 1
            replies = rows(
                [r.messages for r in reqs],
                temperatures=[r.temperature for r in reqs],
                max_tokens=[r.max_tokens for r in reqs],
                seeds=[r.seed for r in reqs],
            )
            for r, text in zip(reqs, replies):
                r.reply = text
            return
        groups: dict[tuple, list[_Request]] = {}
        for r in reqs:  # complete_batch seeds row i with seed + i: only greedy or seedless rows can share a call
            shareable = r.temperature == 0 or r.seed is None
            key = (r.temperature, r.max_tokens, None if shareable else r.seed, 0 if shareable else id(r))
            groups.setdefault(key, []).append(r)
        for (temp, max_tokens, seed, _), rs in groups.items():
            self.calls += 1
            replies = self.model.complete_batch(
                [r.messages for r in rs], temperature=temp, max_tokens=max_tokens, seed=seed
            )
            for r, text in zip(rs, replies):
                r.reply = text
