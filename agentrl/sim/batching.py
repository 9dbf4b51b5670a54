"""`BatchingChatModel`: a small queue in front of a shared chat model, so simulated users / patients of
many episodes cost one batched generate call per turn instead of one call per episode.

The rollout runner steps the envs of a round on threads (`rollout.env_workers`); each simulator calls
`complete()` as usual and blocks. Whoever serves the queue waits until `max_batch` requests are queued, or
`max_wait_s` passed since the last one arrived, then answers every queued request with one call to the
wrapped model and wakes the callers. Answers are the ones the wrapped model gives one by one: rows keep
their own temperature, max_tokens and seed (a model with `complete_rows` takes per-row settings; otherwise
rows are grouped by identical settings).

Who serves the queue: while a thread runs `map_serving(pool, fn, jobs)` (the rollout runner does, on the
thread that called it), that thread answers every batch, and the env threads only enqueue and wait.
Otherwise the first caller of a round leads it. The serving thread matters on a CPU: torch's OpenMP threads belong to the
thread that started them, and with more threads than cores a second team sleeps between parallel regions,
so a batch computed on an env thread pays a wake-up per operator (a 1-row SmolLM2 decode step took 34 ms on
the main thread and 55-60 ms on another, on a 2-core VM).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentrl.core.chat import BaseChatModel

# One lock for every BatchingChatModel and the serving thread: a caller's "is a thread serving?" check and
# its enqueue happen together, so a request never falls between a server that stops and a leader that starts.
_LOCK = threading.Lock()
_WORK = threading.Condition(_LOCK)  # notified when a request arrives or a served future finishes
_MODELS: weakref.WeakSet[BatchingChatModel] = weakref.WeakSet()
_server: int | None = None  # ident of the thread inside map_serving, if any
T = TypeVar("T")


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
    def __init__(self, model: Any, *, max_batch: int = 64, max_wait_s: float = 0.02):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.model = model
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self._arrived = threading.Condition(_LOCK)
        self._queue: list[_Request] = []
        self._leader = False  # a thread has taken the queue's next batch on
        self.calls = 0  # batched calls made to the wrapped model
        self.requests = 0  # complete() calls answered
        with _LOCK:
            _MODELS.add(self)

    def complete(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256,
                 seed: int | None = None) -> str:
        req = _Request(messages, temperature, max_tokens, seed)
        with _LOCK:
            self._queue.append(req)
            self._arrived.notify_all()
            _WORK.notify_all()
            served = _server is not None and _server != threading.get_ident()
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

    def complete_batch(self, batch: list[list[dict[str, str]]], *, temperature: float = 0.0, max_tokens: int = 256,
                       seed: int | None = None) -> list[str]:
        return self.model.complete_batch(batch, temperature=temperature, max_tokens=max_tokens, seed=seed)

    # -- the leader (the serving thread, or the round's first caller) ---------------------------------------
    def _lead(self) -> None:
        """Take the next batch (the caller has set `_leader`), answer it and wake its callers."""
        with _LOCK:
            seen = -1
            while len(self._queue) < self.max_batch and len(self._queue) != seen:
                seen = len(self._queue)  # wait for more while requests keep arriving
                self._arrived.wait(self.max_wait_s)
            taken, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._leader = False
            if self._queue and _server is None:  # the overflow gets a leader of its own (a server takes it next)
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
            replies = rows([r.messages for r in reqs], temperatures=[r.temperature for r in reqs],
                           max_tokens=[r.max_tokens for r in reqs], seeds=[r.seed for r in reqs])
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
            replies = self.model.complete_batch([r.messages for r in rs], temperature=temp, max_tokens=max_tokens, seed=seed)
            for r, text in zip(rs, replies):
                r.reply = text


def _wake(_: Future) -> None:
    with _LOCK:
        _WORK.notify_all()


def map_serving(pool: Executor, fn: Callable[..., T], *iterables: Iterable[Any]) -> list[T]:
    """`list(pool.map(fn, *iterables))`, with every `BatchingChatModel` batch their calls make answered on
    this thread instead of on a pool thread.

    Meant for the thread that owns torch's compute threads (the rollout runner's). If another thread is
    already serving, this one only waits. When the work is done, requests still queued (from threads outside
    it) get a leader thread of their own. The first error in the work is raised after all of it finished.
    """
    global _server
    me = threading.get_ident()
    with _LOCK:  # serving starts before any work does, so no pool thread makes itself a leader
        outer = _server
        if outer is None:
            _server = me
    try:
        futures = [pool.submit(fn, *args) for args in zip(*iterables)]
        if outer in (None, me):  # this thread serves (a nested call on the serving thread too)
            _serve(futures)
        wait(futures)
        return [f.result() for f in futures]
    finally:
        with _LOCK:
            if outer is None:
                _server = None
                for m in list(_MODELS):  # hand what is still queued to leader threads
                    if m._queue and not m._leader:
                        m._leader = True
                        threading.Thread(target=m._lead, daemon=True).start()


def _serve(futures: list[Future]) -> None:
    for f in futures:
        f.add_done_callback(_wake)
    while True:
        with _LOCK:
            while True:
                if all(f.done() for f in futures):
                    return
                ready = next((m for m in list(_MODELS) if m._queue and not m._leader), None)
                if ready is not None:
                    ready._leader = True
                    break
                _WORK.wait(1.0)
        ready._lead()
