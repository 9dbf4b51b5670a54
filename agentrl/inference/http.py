"""`HTTPChatModel`: a `ChatModel` over any OpenAI-compatible ``/v1/chat/completions`` endpoint (httpx).

For simulated users, patients and judges served elsewhere (vLLM's OpenAI server, a hosted API, or
the loopback test server `tests/chat_server.py`).

* ``base_url`` follows the OpenAI client convention: it ends with the API version, e.g.
  ``http://127.0.0.1:8000/v1``; requests go to ``{base_url}/chat/completions``.
* The API key is read from an environment variable whose *name* is configurable (default
  ``OPENAI_API_KEY``). The key lives only in a `_Secret` (its repr is ``'***'``), is sent only in the
  ``Authorization`` header, and is scrubbed from every error message; it is never logged.
* One `httpx.Client` (connection pooling, keep-alive); `complete_batch` runs requests on a thread pool,
  never more than ``max_concurrency`` in flight per model (a semaphore, so concurrent batches from
  several threads share the limit); results come back in input order.
* Retries: 408, 429, 5xx, timeouts and dropped connections are retried with capped exponential backoff
  and "equal jitter" (half the delay fixed, half uniform — AWS Architecture Blog, "Exponential Backoff
  and Jitter", 2015). A ``Retry-After`` header (seconds or an HTTP date) is honoured, capped at
  ``retry_after_max``. Other 4xx answers are the caller's fault and are not retried. After the last
  attempt `HTTPBackendError` names the URL path, the last status (or transport error) and the attempt count.
* Hostile servers: ``timeout`` is a deadline for a whole attempt, not only a per-read limit (a server
  dripping one byte at a time cannot hold a call); an answer longer than ``max_response_bytes`` is
  refused without reading the rest; server text quoted in an error is scrubbed of the key before it is
  cut short (a cut first could leave part of the key that the scrub no longer recognises).
* Seeds in `complete_batch` follow `HFChatModel`: row ``i`` of a batch is sampled with ``seed + i``
  (`row_seeds`), so the same batch gives the same texts locally and over HTTP.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agentrl.core.chat import BaseChatModel, Messages, row_seeds, validate_messages

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # plus every other 5xx, see _retryable_status


class HTTPBackendError(RuntimeError):
    """A chat completion that failed for good: after the last retry, or on an answer not worth retrying.

    Attributes: ``path`` (URL path, no host or query), ``status`` (last HTTP status, None when the last
    attempt got no HTTP answer), ``attempts`` (HTTP attempts made), ``retryable`` (whether the last
    failure was of a retryable kind, i.e. retries ran out rather than the request being refused).
    """

    def __init__(self, message: str, *, path: str, status: int | None, attempts: int, retryable: bool):
        super().__init__(message)
        self.path = path
        self.status = status
        self.attempts = attempts
        self.retryable = retryable


class _Secret:
    """Holds the API key; prints as '***' so it cannot leak through repr, str, f-strings or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value or None

    def get(self) -> str | None:
        return self._value

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "'***'" if self._value else "None"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into a checkpoint or sent to a worker process
        raise TypeError("the API key is not picklable; build the model again where it is needed")

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text


@dataclass
class HTTPStats:
    """Thread-safe counters. ``requests``: completions asked for; ``retries``: extra HTTP attempts;
    ``failures``: completions that ended in `HTTPBackendError`; token counts from the server's ``usage``.
    Anomalies in answers that were still used: ``malformed_usage`` (a ``usage`` field that is not counts,
    ignored) and ``empty_content`` (an empty or whitespace-only reply, returned as it is)."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    malformed_usage: int = 0
    empty_content: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self, k, getattr(self, k) + v)

    def snapshot(self) -> dict[str, int]:
        """The counts; an anomaly counter only once it is non-zero (a clean run shows the five basic counts)."""
        with self._lock:
            out = {
                "requests": self.requests,
                "retries": self.retries,
                "failures": self.failures,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            }
            anomalies = {"malformed_usage": self.malformed_usage, "empty_content": self.empty_content}
            out.update({k: v for k, v in anomalies.items() if v})
            return out


class HTTPChatConfig(BaseModel):
    """Settings of an `HTTPChatModel` (validated once; unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    base_url: str = Field(description="endpoint root including the version, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="model name sent in every request")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="NAME of the env var holding the key; None = no key")
    timeout: float = Field(
        60.0, gt=0, description="seconds for one attempt, from sending to the last byte of the answer"
    )
    connect_timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0, description="retries after the first attempt")
    max_response_bytes: int = Field(8 * 2**20, ge=1, description="longest answer body read; a longer one is an error")
    backoff_base: float = Field(0.5, ge=0, description="first backoff in seconds; doubles per retry")
    backoff_max: float = Field(30.0, ge=0)
    retry_after_max: float = Field(60.0, ge=0, description="cap on an honoured Retry-After header")
    max_concurrency: int = Field(8, ge=1)
    max_tokens_field: str = Field("max_tokens", description="'max_completion_tokens' for APIs that want it")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="more fields for every request")


class HTTPChatModel(BaseChatModel):
    """A `ChatModel` over an OpenAI-compatible chat-completions endpoint. Use as a context manager or call
    `close()` to release pooled connections."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 5,
        max_response_bytes: int = 8 * 2**20,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 60.0,
        max_concurrency: int = 8,
        max_tokens_field: str = "max_tokens",
        extra_body: Mapping[str, Any] | None = None,
        jitter_seed: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        cfg = HTTPChatConfig(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            max_response_bytes=max_response_bytes,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            max_concurrency=max_concurrency,
            max_tokens_field=max_tokens_field,
            extra_body=dict(extra_body or {}),
        )
        self.config = cfg
        self.base_url = cfg.base_url.rstrip("/")
        self.model = cfg.model
        self.url = self.base_url + "/chat/completions"
        self.path = httpx.URL(self.url).path
        self._key = _Secret(os.environ.get(cfg.api_key_env) if cfg.api_key_env else None)
        self.stats = HTTPStats()
        self._sem = threading.BoundedSemaphore(cfg.max_concurrency)
        self._rng = random.Random(jitter_seed)
        self._rng_lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(cfg.timeout, connect=cfg.connect_timeout),
            limits=httpx.Limits(max_connections=cfg.max_concurrency, max_keepalive_connections=cfg.max_concurrency),
            transport=transport,
            follow_redirects=False,  # a redirect would carry the Authorization header to another host
        )

    @classmethod
    def from_config(cls, cfg: HTTPChatConfig | Mapping[str, Any], **overrides: Any) -> HTTPChatModel:
        data = cfg.model_dump() if isinstance(cfg, HTTPChatConfig) else dict(cfg)
        data.update(overrides)
        data = HTTPChatConfig(**data).model_dump()  # unknown keys fail here, with the key named
        return cls(data.pop("base_url"), data.pop("model"), **data)

    # -- ChatModel --------------------------------------------------------------------------------
    def complete(
        self, messages: Messages, *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        validate_messages(messages)
        body: dict[str, Any] = dict(self.config.extra_body)
        body.update(
            {
                "model": self.model,
                "messages": messages,
                "temperature": temperature,
                self.config.max_tokens_field: max_tokens,
            }
        )
        if seed is not None:
            body["seed"] = int(seed)
        self.stats.add(requests=1)
        try:
            data = self._post(body)
            return self._content(data)
        except HTTPBackendError:
            self.stats.add(failures=1)
            raise

    def complete_batch(
        self, batch: list[Messages], *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> list[str]:
        for m in batch:
            validate_messages(m)  # fail before sending anything
        if not batch:
            return []
        seeds = row_seeds(seed, len(batch))

        def one(i: int) -> str:
            return self.complete(batch[i], temperature=temperature, max_tokens=max_tokens, seed=seeds[i])

        if len(batch) == 1:
            return [one(0)]
        pool = ThreadPoolExecutor(
            max_workers=min(self.config.max_concurrency, len(batch)), thread_name_prefix="http-chat"
        )
        try:
            futures = [pool.submit(one, i) for i in range(len(batch))]
            return [f.result() for f in futures]  # input order; the first failure propagates
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPChatModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"HTTPChatModel(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.config.api_key_env!r}, "
            f"api_key_set={bool(self._key)}, max_concurrency={self.config.max_concurrency}, "
            f"max_retries={self.config.max_retries})"
        )

    __str__ = __repr__

    def __reduce__(self):
        # pickle the settings, never the key: the copy reads the env var again where it is unpickled
        return (HTTPChatModel.from_config, (self.config.model_dump(),))

    # -- internals --------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._key.get()
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        attempts_allowed = self.config.max_retries + 1
        for attempt in range(1, attempts_allowed + 1):
            status: int | None = None
            retry_after: float | None = None
            try:
                with self._sem:
                    answer = self._send(body)
                status = answer.status
                if status == 200:
                    return self._json(answer, attempt)
                detail = self._detail(answer)
                retryable = _retryable_status(status)
                if retryable:
                    retry_after = _retry_after_seconds(answer.retry_after)
                what = f"HTTP {status}{': ' + detail if detail else ''}"
            except (httpx.TimeoutException, _DeadlineExceeded) as e:
                retryable, what = True, f"timed out ({e if isinstance(e, _DeadlineExceeded) else type(e).__name__})"
            except _ResponseTooLarge as e:
                retryable, what = False, str(e)  # the same request would get the same answer
            except httpx.TransportError as e:  # connection refused / reset / dropped mid-request
                retryable, what = True, f"connection failed ({type(e).__name__}: {self._clip(str(e))})"
            if not retryable:
                raise self._error(f"was refused: {what}", status, attempt, False)
            if attempt == attempts_allowed:
                raise self._error(f"failed after {attempt} attempts; last: {what}", status, attempt, True)
            delay = self._delay(attempt, retry_after)
            log.warning("POST %s: %s; retry %d/%d in %.2fs", self.path, what, attempt, self.config.max_retries, delay)
            self.stats.add(retries=1)
            if delay > 0:
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, body: dict[str, Any]) -> _Answer:
        """One attempt. The body is streamed so that the deadline (``timeout`` for the whole attempt: httpx's
        own timeout is per read, which a server dripping bytes never trips) and the size cap hold while
        reading. A stall inside one read is still stopped by the per-read timeout, so an attempt ends within
        about twice ``timeout``. Known gap: the deadline is checked from the first body byte on, so a server
        dripping its status line and headers is bounded only per read (httpx has no hook before them)."""
        return read_bounded(
            self._client,
            self.url,
            body,
            timeout=self.config.timeout,
            cap=self.config.max_response_bytes,
            headers=self._headers(),
        )

    def _json(self, answer: _Answer, attempt: int) -> Any:
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
            raise self._error(
                f"answered 200 with a body that is not JSON: {self._clip(answer.text)!r}", 200, attempt, False
            ) from None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.retry_after_max)
        d = min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1))
        with self._rng_lock:
            return d / 2 + self._rng.uniform(0, d / 2)

    def _detail(self, answer: _Answer) -> str:
        """The server's error message (OpenAI shape: {"error": {"message", "param"}}), short and key-free."""
        try:
            err = json.loads(answer.body).get("error")
            if isinstance(err, dict):
                msg = str(err.get("message", ""))
                if err.get("param"):
                    msg += f" (param: {err['param']})"
            else:
                msg = str(err)
        except (ValueError, AttributeError, RecursionError):
            msg = answer.text
        return self._clip(msg.strip(), 300)

    def _clip(self, text: str, limit: int = 200) -> str:
        """Server or transport text for an error message: the key is scrubbed from the WHOLE text before it
        is cut, since a cut through the key would leave a fragment the scrub no longer finds."""
        return self._key.scrub(text)[:limit]

    def _error(self, what: str, status: int | None, attempts: int, retryable: bool) -> HTTPBackendError:
        msg = self._key.scrub(f"POST {self.path} (model {self.model!r}) {what}")
        return HTTPBackendError(msg, path=self.path, status=status, attempts=attempts, retryable=retryable)

    def _content(self, data: Any) -> str:
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._error(
                f"answered without choices[0].message.content: {self._clip(str(data))}", 200, 1, False
            ) from None
        if not isinstance(content, str):
            # nothing fails silently: a null content (tool call, reasoning cut off) is not an empty reply
            raise self._error(
                f"answered with non-text content {self._clip(repr(content), 60)} (finish_reason "
                f"{self._clip(repr(choice.get('finish_reason')), 60)})",
                200,
                1,
                False,
            )
        self._count_usage(data.get("usage"))
        if not content.strip():  # returned as it is (the caller decides what an empty reply means), but counted
            self.stats.add(empty_content=1)
        return content

    def _count_usage(self, usage: Any) -> None:
        """Add the server's token counts. A malformed ``usage`` must not throw away a valid answer: its bad
        values are ignored and counted as ``malformed_usage``."""
        if not usage:
            return
        fields = ("prompt_tokens", "completion_tokens")
        counts = {k: _token_count(usage.get(k)) for k in fields} if isinstance(usage, dict) else dict.fromkeys(fields)
        good = {k: v for k, v in counts.items() if v is not None}
        self.stats.add(**good, malformed_usage=int(len(good) < len(fields)))


class _DeadlineExceeded(Exception):
    """An attempt ran past its deadline while the server was still sending (retried like a timeout)."""


class _ResponseTooLarge(Exception):
    """The answer is longer than ``max_response_bytes`` (not retried)."""


@dataclass(frozen=True)
class _Answer:
    """A fully read HTTP answer (status, Retry-After header, body bytes, the encoding for its text)."""

    status: int
    retry_after: str | None
    body: bytes
    encoding: str

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")


def read_bounded(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    *,
    timeout: float,
    cap: int,
    headers: dict[str, str] | None = None,
    request_timeout: httpx.Timeout | None = None,
) -> _Answer:
    """POST `body` as JSON and read the whole answer, streamed, so that `timeout` bounds the whole attempt (httpx's
    own timeout is per read, which a server dripping bytes never trips) and the answer is refused past `cap` bytes
    (a declared Content-Length over it before reading a byte; decoded bytes count, so a compressed bomb is capped at
    its unpacked size). Raises `_DeadlineExceeded`, `_ResponseTooLarge`, or httpx's own errors."""
    deadline = time.monotonic() + timeout
    extra: dict[str, Any] = {} if request_timeout is None else {"timeout": request_timeout}
    with client.stream("POST", url, json=body, headers=headers, **extra) as resp:
        if _declared_length(resp) > cap:  # refused before reading a byte of it
            raise _ResponseTooLarge(
                f"response larger than {cap} bytes (Content-Length {resp.headers['content-length']})"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise _ResponseTooLarge(f"response larger than {cap} bytes")
            if time.monotonic() > deadline:
                raise _DeadlineExceeded(f"no complete answer within {timeout:g} s")
            chunks.append(chunk)
        return _Answer(resp.status_code, resp.headers.get("retry-after"), b"".join(chunks), resp.encoding or "utf-8")


def _declared_length(resp: httpx.Response) -> int:
    try:
        return int(resp.headers.get("content-length", 0))
    except ValueError:  # a bad header: the streamed count still applies
        return 0


def _token_count(value: Any) -> int | None:
    """A usage count: absent is 0; None when it is not a whole number >= 0 (e.g. "lots", -3, 1.5, true)."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or 500 <= status <= 599


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date (RFC 9110 §10.2.3). None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - time.time()
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)
