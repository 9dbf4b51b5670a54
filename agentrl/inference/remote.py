"""Remote policy backend (`rollout.backend=remote`): N OpenAI-compatible vLLM servers (`rollout.servers`), token in,
token out.

* Each prompt is one POST `{server}/v1/completions` whose `prompt` is the list of token ids (never re-tokenized),
  with `return_token_ids` (vLLM answers the sampled ids as ints), `logprobs: 0` (the sampled token's logprob,
  `return_tokens_as_token_ids` so vLLM does not detokenize for it), `include_stop_str_in_output` (the in-process
  backend's convention) and temperature / top_p / max_tokens / seed / stop / ignore_eos from `SamplingParams`.
  The servers must run with `--logprobs-mode processed_logprobs` (logprobs at the sampling temperature, like the
  other backends) and `--worker-extension-cls agentrl.inference.vllm_worker.WeightLoader` with env
  `VLLM_SERVER_DEV_MODE=1` (weight sync, below); `agentrl serve-policy` / `launch.launch_servers` start them so.
* Requests run on a thread pool and each goes to the server with the fewest requests in flight (vLLM batches
  what is in flight). A connection error, a timeout (`rollout.server_timeout_s` per attempt), a 5xx / 408 / 429,
  or a malformed answer cools that server down (skipped while another is ready) and the request is sent again,
  to another server when there is one, up to `rollout.server_attempts` attempts. When they run out the request
  comes back as `Completion(finish_reason="error", error=...)` and the rollout ends that episode as
  sampler_error (`core/outcomes.py`: counted, left out of the advantages), never as a silent empty turn. Any
  other 4xx is a bad request (e.g. a prompt longer than the server's `--max-model-len`): `RemoteRequestError`.
* Constrained decoding (`SamplingParams.allowed`) is refused (ValueError): the in-process backends pick among
  the allowed tokens with agentrl's own seeded code after every token step (`sampling.constrained_pick`); over
  HTTP that would be one request per token.
* TRePO's branch continuations go through the same `generate`, so each server's prefix cache
  (`--enable-prefix-caching`) serves their shared prefixes; requests are spread by load, not by prefix, so a
  prefix is cached once per server that got one of its continuations.
* `update_weights(state_dict)` writes the state dict as one safetensors file (temp name, then rename: a server
  never reads half a file) into `rollout.remote_weights_dir` (a directory every server can read; default a fresh
  directory in /dev/shm, else a temp directory, for servers on this machine; removed on `close`), then on every
  server POSTs `/collective_rpc` `agentrl_load_weights(path)` (the worker extension reloads the file in place,
  `vllm_worker.py`) and `/reset_prefix_cache` (cached prefixes were computed with the old weights). A server
  that cannot be reached for the sync is taken out of the rotation with a warning (it would sample with old
  weights); when none is left the sync raises.
  Why a file: vLLM 0.32's `/init_weight_transfer_engine` + `/update_weights` engines (vllm/distributed/
  weight_transfer/: nccl, sparse_nccl, nccl_m2n and sharded_rdt move tensors with NCCL / CUDA streams, ipc with
  CUDA IPC handles, modelexpress needs an outside package) all need CUDA: none runs on the CPU build, and the
  file reload is the same path the in-process backend uses (`vllm.py`). On GPUs with the trainer in the same
  NCCL world, the nccl engine would skip the file (not wired here).
* `weights_digest()` asks every server for its workers' digest (`agentrl_weights_digest`); servers that disagree
  with each other raise `RemoteServerError` naming the server, else the common digest is returned, so
  `train.invariants.verify_weights` checks every server against the trainer.
* LoRA: the trainer sends merged weights (the factory merges for the first push too). Adapters would need
  `--enable-lora` and an adapter name per request; merged weights keep the digest check and the servers'
  kernels unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch

from agentrl.core.outcomes import scrubbed_line
from agentrl.inference.base import (
    Completion,
    SamplingParams,
    WeightsDigest,
    digest_mismatch,
    merge_shard_digests,
    per_prompt,
)
from agentrl.inference.http import (
    _Answer,
    _DeadlineExceeded,
    _ResponseTooLarge,
    _retryable_status,
    read_bounded,
)

log = logging.getLogger(__name__)

WEIGHTS_FILE = "policy.safetensors"


class RemoteRequestError(RuntimeError):
    """A server refused a request as malformed (a 4xx other than 408 / 429): sending it elsewhere would not help."""


class RemoteServerError(RuntimeError):
    """The servers as a whole are unusable: none left to sync weights to, or they hold different weights."""


class _Retryable(Exception):
    """One attempt on one server failed in a way another server (or a later attempt) may not."""


@dataclass
class _Server:
    url: str
    in_flight: int = 0
    sent: int = 0  # attempts sent to it
    failed: int = 0  # attempts that failed on it
    cool_until: float = 0.0  # time.monotonic() before which it is passed over while another server is ready


def server_base(url: str) -> str:
    """`http://host:port` from a server URL given with or without a trailing `/` or `/v1`."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class RemotePolicy:
    """Policy backend over N vLLM OpenAI servers (see the module docstring)."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        pad_id: int,
        weights_dir: str | Path | None = None,
        attempts: int = 3,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        cooldown_s: float = 5.0,
        max_in_flight_per_server: int = 32,
        sync_timeout_s: float = 600.0,
        max_response_bytes: int = 64 * 2**20,
    ):
        if not servers:
            raise ValueError("RemotePolicy needs at least one server URL (rollout.servers)")
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        urls = [server_base(u) for u in servers]
        if len(set(urls)) != len(urls):
            raise ValueError(f"a server is listed twice: {list(servers)}")
        self._servers = [_Server(u) for u in urls]
        self.dropped: list[str] = []  # servers taken out of the rotation (a weight sync could not reach them)
        self.pad_id = pad_id
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.cooldown_s = cooldown_s
        self.sync_timeout_s = sync_timeout_s
        self.max_response_bytes = max_response_bytes
        self.tokens_generated = 0
        self.weight_updates = 0
        self.requests = 0
        self.retries = 0
        self.errors = 0  # requests that came back as finish_reason "error"
        self._cv = threading.Condition()
        workers = max_in_flight_per_server * len(urls)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agentrl-remote")
        self._client = httpx.Client(
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            follow_redirects=False,
        )
        self._own_dir = weights_dir is None
        if weights_dir is None:
            shm = Path("/dev/shm")
            weights_dir = tempfile.mkdtemp(prefix="agentrl-remote-weights-", dir=str(shm) if shm.is_dir() else None)
        self.weights_dir = Path(weights_dir).resolve()
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self._closed = False

    @property
    def servers(self) -> list[str]:
        """The servers in the rotation."""
        return [s.url for s in self._servers]

    def stats(self) -> dict[str, Any]:
        with self._cv:
            per = {s.url: {"sent": s.sent, "failed": s.failed, "in_flight": s.in_flight} for s in self._servers}
        return {
            "requests": self.requests,
            "retries": self.retries,
            "errors": self.errors,
            "servers": per,
            "dropped": list(self.dropped),
        }

    # -- sampling ---------------------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        plist = per_prompt(params, len(prompts))
        if any(p.allowed is not None for p in plist):
            raise ValueError(
                "rollout.backend=remote does not support constrained decoding (SamplingParams.allowed, "
                "rollout.constrained=true): the pick among allowed tokens is agentrl's own seeded code after every "
                "token step, one request per token over HTTP; use rollout.backend=vllm or hf for it"
            )
        bodies = [self._body(ids, p) for ids, p in zip(prompts, plist)]
        out = self._map(self._complete, bodies)
        self.tokens_generated += sum(len(c.token_ids) for c in out)
        return out

    @staticmethod
    def _body(ids: list[int], p: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": [int(t) for t in ids],
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "logprobs": 0,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
            "include_stop_str_in_output": True,
            "ignore_eos": p.ignore_eos,
            "add_special_tokens": False,
        }
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = int(p.seed)
        return body

    def _complete(self, body: dict[str, Any]) -> Completion:
        """One request, tried on up to `attempts` servers; a Completion with finish_reason "error" when all fail."""
        with self._cv:
            self.requests += 1
        tried: list[_Server] = []
        failures: list[str] = []
        for attempt in range(1, self.attempts + 1):
            srv = self._acquire(tried)
            try:
                return _completion(self._post(srv.url, "/v1/completions", body, self.timeout_s))
            except _Retryable as exc:
                failures.append(f"{srv.url}: {exc}")
                self._cool(srv)
                tried.append(srv)
                if attempt < self.attempts:
                    with self._cv:
                        self.retries += 1
                    log.warning("policy server %s failed (%s); attempt %d/%d", srv.url, exc, attempt, self.attempts)
            finally:
                self._release(srv)
        with self._cv:
            self.errors += 1
        text = f"no policy server answered in {self.attempts} attempt(s): " + "; ".join(failures)
        return Completion([], [], "error", error=scrubbed_line(text, 600))

    def _acquire(self, tried: list[_Server]) -> _Server:
        """The ready server (not cooling down) with the fewest requests in flight, preferring servers this request
        has not failed on; when every server is cooling down, wait for the first to come back."""
        with self._cv:
            while True:
                if not self._servers:
                    raise RemoteServerError(f"no policy server left (dropped: {', '.join(self.dropped)})")
                now = time.monotonic()
                ready = [s for s in self._servers if s.cool_until <= now]
                if ready:
                    srv = min(ready, key=lambda s: (s in tried, s.in_flight, s.sent))
                    srv.in_flight += 1
                    srv.sent += 1
                    return srv
                self._cv.wait(max(0.0, min(s.cool_until for s in self._servers) - now))

    def _release(self, srv: _Server) -> None:
        with self._cv:
            srv.in_flight -= 1
            self._cv.notify_all()

    def _cool(self, srv: _Server) -> None:
        with self._cv:
            srv.failed += 1
            srv.cool_until = time.monotonic() + self.cooldown_s

    # -- weights ----------------------------------------------------------------------------------------------
    def update_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        path = self.weights_dir / WEIGHTS_FILE
        tmp = self.weights_dir / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
        # tied weights share storage: safetensors refuses shared tensors, so each gets its own copy
        save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}, str(tmp))
        os.replace(tmp, path)
        body = {"method": "agentrl_load_weights", "args": [str(path)]}
        replies = self._on_every_server("/collective_rpc", body, what="weight sync")
        for url, reply in replies.items():
            loaded = [int(r) for r in reply.get("results") or []]
            if not loaded or min(loaded) == 0:
                raise RemoteServerError(f"server {url} loaded no weights from {path} (replies: {loaded})")
        for url, reply in self._on_every_server("/reset_prefix_cache", None, what="prefix cache reset").items():
            if reply.get("success") is False:  # refused while requests run: none should, generate has returned
                raise RemoteServerError(f"server {url} did not reset its prefix cache (requests still running?)")
        self.weight_updates += 1

    def weights_digest(self) -> WeightsDigest:
        """The digest of the weights every server's workers hold (merged over tensor-parallel shards); raises
        `RemoteServerError` naming a server whose weights differ from the first server's."""
        replies = self._on_every_server("/collective_rpc", {"method": "agentrl_weights_digest"}, what="weights digest")
        digests = {
            url: merge_shard_digests([{k: (float(v[0]), float(v[1])) for k, v in r.items()} for r in reply["results"]])
            for url, reply in replies.items()
        }
        (first, ref), *rest = digests.items()
        for url, d in rest:
            bad = digest_mismatch(d, ref)
            if bad is not None:
                raise RemoteServerError(f"policy server {url} holds other weights than {first}: {bad}")
        return ref

    def _on_every_server(self, path: str, body: dict[str, Any] | None, *, what: str) -> dict[str, Any]:
        """POST to every server in the rotation at once (a sync or a digest). A server that cannot be reached
        after `attempts` tries is dropped from the rotation (it keeps old weights); a refusal raises."""
        live = list(self._servers)

        def one(srv: _Server) -> Any:
            last: Exception | None = None
            for attempt in range(self.attempts):
                try:
                    return self._post(srv.url, path, body or {}, self.sync_timeout_s)
                except _Retryable as exc:
                    last = exc
                    time.sleep(min(self.cooldown_s, 0.5 * 2**attempt))
            return _Retryable(str(last))

        results = dict(zip([s.url for s in live], self._map(one, live)))
        gone = [s for s in live if isinstance(results[s.url], _Retryable)]
        for s in gone:
            log.warning("policy server %s left the rotation: its %s failed (%s)", s.url, what, results[s.url])
            with self._cv:
                self._servers.remove(s)
                self.dropped.append(s.url)
        if not self._servers:
            raise RemoteServerError(
                f"no policy server answered the {what}: "
                + "; ".join(f"{s.url}: {results[s.url]}" for s in gone)
                + " (are they running, with VLLM_SERVER_DEV_MODE=1?)"
            )
        return {url: r for url, r in results.items() if not isinstance(r, _Retryable)}

    # -- HTTP -------------------------------------------------------------------------------------------------
    def _post(self, base: str, path: str, body: dict[str, Any], timeout: float) -> Any:
        """One attempt: the JSON answer; `_Retryable` for what another attempt may not hit, `RemoteRequestError`
        for a refusal. `timeout` bounds the whole attempt (`http.py`'s streamed read: a server dripping bytes
        cannot hold it), and the answer is capped at `max_response_bytes`."""
        url = base + path
        try:
            answer = read_bounded(
                self._client,
                url,
                body,
                timeout=timeout,
                cap=self.max_response_bytes,
                request_timeout=httpx.Timeout(timeout, connect=self.connect_timeout_s),
            )
        except (httpx.TimeoutException, _DeadlineExceeded) as exc:
            raise _Retryable(f"timed out ({type(exc).__name__}, {timeout:g} s per attempt)") from None
        except _ResponseTooLarge as exc:  # a sane answer is far smaller: a broken server
            raise _Retryable(str(exc)) from None
        except httpx.TransportError as exc:  # refused, reset, dropped mid-answer (a server that died)
            raise _Retryable(f"connection failed ({type(exc).__name__}: {str(exc)[:120]})") from None
        if answer.status == 200:
            try:
                return json.loads(answer.body) if answer.body else {}
            except (ValueError, RecursionError):
                raise _Retryable(f"answered 200 with a body that is not JSON: {answer.text[:120]!r}") from None
        detail = _detail(answer)
        if _retryable_status(answer.status):
            raise _Retryable(f"HTTP {answer.status}: {detail}")
        hint = " (is the server started with VLLM_SERVER_DEV_MODE=1?)" if answer.status == 404 else ""
        raise RemoteRequestError(f"POST {url} was refused: HTTP {answer.status}: {detail}{hint}")

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """fn over items on the pool, in order; the first exception is raised once every call has ended."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        futures = [self._pool.submit(fn, x) for x in items]
        errors = [f.exception() for f in futures]
        for e in errors:
            if e is not None:
                raise e
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stop the threads and connections and remove the weights file (its directory too when it made it)."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
        if self._own_dir:
            shutil.rmtree(self.weights_dir, ignore_errors=True)
        else:
            (self.weights_dir / WEIGHTS_FILE).unlink(missing_ok=True)

    def __enter__(self) -> RemotePolicy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _completion(data: Any) -> Completion:
    """A Completion from a /v1/completions answer; a malformed one (or one vLLM aborted) is `_Retryable`."""
    try:
        choice = data["choices"][0]
        ids = choice["token_ids"]
        lps = choice["logprobs"]["token_logprobs"]
        reason = choice["finish_reason"]
    except (KeyError, IndexError, TypeError):
        raise _Retryable(
            "answer without choices[0].token_ids / logprobs.token_logprobs / finish_reason "
            "(a vLLM server that predates return_token_ids?)"
        ) from None
    ok = (
        isinstance(ids, list)
        and isinstance(lps, list)
        and len(ids) == len(lps)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in ids)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lps)
    )
    if not ok:
        raise _Retryable(f"answer with malformed token_ids / token_logprobs ({len(ids)} ids)")
    if reason not in ("stop", "length"):  # "abort": the server dropped the request (shutting down)
        raise _Retryable(f"finish_reason {reason!r}")
    return Completion(list(ids), [float(x) for x in lps], reason)


def _detail(answer: _Answer) -> str:
    """The error message of a vLLM answer: OpenAI's {"error": {"message"}} or FastAPI's {"detail"}."""
    try:
        data = json.loads(answer.body)
        err = data.get("error") or data.get("detail") or data
        msg = str(err.get("message", err)) if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError, RecursionError):
        msg = answer.text
    return " ".join(msg.split())[:300]
