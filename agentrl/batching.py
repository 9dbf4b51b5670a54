"""`BatchingChatModel`: a small queue in front of a shared chat model, so simulated users / patients of
many episodes cost one batched generate call per turn instead of one call per episode.

The rollout runner steps the envs of a round on threads (`rollout.env_workers`); each simulator calls
`complete()` as usual and blocks. The first caller of a round becomes the leader: it waits until
`max_batch` requests are queued, or `max_wait_s` passed since the last one arrived, then answers every
queued request with one call to the wrapped model and wakes the others. Answers are the ones the wrapped
model gives one by one: rows keep their own temperature, max_tokens and seed (a model with `complete_rows`
takes per-row settings; otherwise rows are grouped by identical settings).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from agentrl.chat import BaseChatModel


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
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[_Request] = []
        self._leader = False
        self.calls = 0  # batched calls made to the wrapped model
        self.requests = 0  # complete() calls answered

    def complete(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256,
                 seed: int | None = None) -> str:
        req = _Request(messages, temperature, max_tokens, seed)
        with self._lock:
            self._queue.append(req)
            self._arrived.notify_all()
            lead = not self._leader
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

    # -- the leader ------------------------------------------------------------------------------------
    def _lead(self) -> None:
        with self._lock:
            seen = -1
            while len(self._queue) < self.max_batch and len(self._queue) != seen:
                seen = len(self._queue)  # wait for more while requests keep arriving
                self._arrived.wait(self.max_wait_s)
            taken, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._leader = False
            if self._queue:  # the overflow gets a leader of its own
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

