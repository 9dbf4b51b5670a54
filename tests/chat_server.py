"""A small OpenAI-compatible HTTP server around any `ChatModel`, on loopback only (tests and benchmarks).

    .venv/bin/python tests/chat_server.py --model tiny-random --port 0
    # prints: serving tiny-random at http://127.0.0.1:PORT/v1

Endpoints: ``POST /v1/chat/completions`` (non-streaming, n=1) and ``GET /v1/models``. Bad requests get
400 with an OpenAI-style error body ``{"error": {"message", "type", "param", "code"}}`` whose ``param``
names the bad field. Requests are handled on threads; the model runs one request at a time (a lock),
so answers are exactly what ``model.complete(messages, temperature=, max_tokens=, seed=)`` returns.

For an `HFChatModel` the answer also carries the true ``finish_reason`` and token ``usage`` (the tokens are
generated through its policy directly, the same way `HFChatModel.complete` does); for other chat models
``finish_reason`` is ``"stop"`` and usage counts are 0 (unknown).

Binding is fixed to 127.0.0.1: this serves tests and benchmarks (`tests/test_http_backend.py`,
`benchmarks/http_backend.py`), not the network. With
``--api-key-env NAME`` requests must carry ``Authorization: Bearer $NAME``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentrl.core.chat import ChatModel, validate_messages

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 8 * 1024 * 1024


class RequestError(Exception):
    """A client error, turned into an OpenAI-style error response."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        type_: str = "invalid_request_error",
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type_, code


def _error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def parse_request(body: Any, *, max_tokens_limit: int) -> dict[str, Any]:
    """Validate a chat-completions request; return {messages, temperature, max_tokens, seed}.

    Raises RequestError(400) naming the bad field. Unknown fields are ignored (as OpenAI-compatible servers
    do); known fields this server cannot honour (stream, n > 1, tools) are refused rather than ignored.
    """
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    if "messages" not in body:
        raise RequestError(400, "'messages' is required", "messages")
    try:
        messages = validate_messages(body["messages"])
    except ValueError as e:
        raise RequestError(400, str(e), "messages") from None
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(400, f"'model' must be a string, got {type(model).__name__}", "model")

    temperature = body.get("temperature", 1.0)
    if temperature is None:
        temperature = 1.0
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise RequestError(400, f"'temperature' must be a number in [0, 2], got {temperature!r:.40}", "temperature")

    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(field)
    if max_tokens is None:
        max_tokens = min(256, max_tokens_limit)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= max_tokens_limit:
        raise RequestError(
            400, f"'{field}' must be an integer in [1, {max_tokens_limit}], got {max_tokens!r:.40}", field
        )

    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise RequestError(400, f"'seed' must be a non-negative integer or null, got {seed!r:.40}", "seed")

    if body.get("stream"):
        raise RequestError(400, "streaming is not supported by this server; send 'stream': false", "stream")
    n = body.get("n", 1)
    if n not in (1, None):
        raise RequestError(400, f"only 'n': 1 is supported, got {n!r:.40}", "n")
    if body.get("tools"):
        raise RequestError(400, "'tools' is not supported: put tool schemas in the system prompt", "tools")
    return {"messages": messages, "temperature": float(temperature), "max_tokens": max_tokens, "seed": seed}


class ChatServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` serving one chat model. `start()` runs it on a daemon thread; `close()` stops it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        model: ChatModel,
        *,
        model_name: str = "agentrl",
        port: int = 0,
        api_key_env: str | None = None,
        max_tokens_limit: int = 4096,
    ):
        self.model = model
        self.model_name = model_name
        self.max_tokens_limit = max_tokens_limit
        self.created = int(time.time())
        self.lock = threading.Lock()  # one generation at a time: deterministic and no thread oversubscription
        self.requests_served = 0
        self._key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not self._key:
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
        self._thread: threading.Thread | None = None
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients (ends with /v1)."""
        return f"http://{HOST}:{self.server_address[1]}/v1"

    def start(self) -> ChatServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="chat-server"
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def authorized(self, header: str | None) -> bool:
        if self._key is None:
            return True
        expected = f"Bearer {self._key}"
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    def generate(self, req: dict[str, Any]) -> tuple[str, str, int, int]:
        """(text, finish_reason, prompt_tokens, completion_tokens) for a parsed request."""
        with self.lock:
            self.requests_served += 1
            return _generate(self.model, req)


def _generate(model: ChatModel, req: dict[str, Any]) -> tuple[str, str, int, int]:
    from agentrl.inference.hf import HFChatModel

    msgs, temp, max_tokens, seed = req["messages"], req["temperature"], req["max_tokens"], req["seed"]
    if isinstance(model, HFChatModel) and type(model).complete_batch is HFChatModel.complete_batch:
        # HFChatModel.complete's one row, keeping the Completion for usage
        ((ids, out),) = model.generate_rows([msgs], temperatures=[temp], max_tokens=[max_tokens], seeds=[seed])
        return model.text(out), out.finish_reason, len(ids), len(out.token_ids)
    text = model.complete(msgs, temperature=temp, max_tokens=max_tokens, seed=seed)
    return text, "stop", 0, 0


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    server_version = "agentrl-serve/0.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)  # request line only; headers never logged

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, e: RequestError) -> None:
        self._send(e.status, _error_body(e.message, e.type, e.param, e.code))

    def _check_auth(self) -> None:
        if not self.server.authorized(self.headers.get("Authorization")):
            # never echo what was sent
            raise RequestError(
                401,
                "missing or wrong API key in the Authorization header",
                None,
                "invalid_request_error",
                "invalid_api_key",
            )

    def do_GET(self) -> None:  # noqa: N802
        try:
            self._check_auth()
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/v1/models":
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": self.server.model_name,
                                "object": "model",
                                "created": self.server.created,
                                "owned_by": "agentrl",
                            }
                        ],
                    },
                )
            elif path == "/health":
                self._send(200, {"status": "ok"})
            else:
                raise RequestError(
                    404,
                    f"no route GET {path}; try GET /v1/models or POST /v1/chat/completions",
                    None,
                    "not_found_error",
                )
        except RequestError as e:
            self._send_error(e)

    def do_POST(self) -> None:  # noqa: N802
        try:
            body = self._read_body()  # read first so a keep-alive connection stays in sync on errors
            self._check_auth()
            path = self.path.split("?", 1)[0].rstrip("/")
            if path != "/v1/chat/completions":
                raise RequestError(404, f"no route POST {path}; try POST /v1/chat/completions", None, "not_found_error")
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError) as e:
                raise RequestError(400, f"request body is not valid JSON: {e}") from None
            req = parse_request(parsed, max_tokens_limit=self.server.max_tokens_limit)
            model = parsed.get("model")
            if model is not None and model != self.server.model_name:
                raise RequestError(
                    404,
                    f"model {model!r:.80} is not served here; this server serves {self.server.model_name!r}",
                    "model",
                    "invalid_request_error",
                    "model_not_found",
                )
        except RequestError as e:
            self._send_error(e)
            return
        try:
            text, finish, n_prompt, n_completion = self.server.generate(req)
        except Exception as e:  # the model failed: tell the client (5xx is retryable), keep serving
            log.exception("chat completion failed")
            self._send(500, _error_body(f"the model failed: {type(e).__name__}: {e}"[:500], "server_error", None, None))
            return
        self._send(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.server.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": n_prompt,
                    "completion_tokens": n_completion,
                    "total_tokens": n_prompt + n_completion,
                },
            },
        )

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise RequestError(411, "chunked request bodies are not supported; send Content-Length")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise RequestError(400, "bad Content-Length header") from None
        if n > MAX_BODY:
            self.close_connection = True
            raise RequestError(413, f"request body is {n} bytes; the limit is {MAX_BODY}")
        return self.rfile.read(n) if n else b""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/chat_server.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny-random", help="tiny-random, smollm2-135m, an HF model dir, or a run dir")
    ap.add_argument("--name", default=None, help="model id clients send and /v1/models lists (default: --model)")
    ap.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1; 0 picks a free one (printed)")
    ap.add_argument("--api-key-env", default=None, help="NAME of an env var; when given, requests must carry that key")
    ap.add_argument("--max-tokens-limit", type=int, default=4096)
    ap.add_argument("--max-batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from agentrl.inference.hf import HFChatModel

    model = HFChatModel.load(args.model, max_batch_size=args.max_batch_size)
    name = args.name or args.model
    server = ChatServer(
        model, model_name=name, port=args.port, api_key_env=args.api_key_env, max_tokens_limit=args.max_tokens_limit
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"serving {name} at {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
