"""A stand-in for a vLLM OpenAI server, on loopback, for the remote backend's fast tests (no vLLM in the main venv).

It speaks the subset `agentrl.inference.remote.RemotePolicy` uses, with vLLM 0.32's shapes:

* `POST /v1/completions` (prompt = token ids): deterministic "samples" — token k of the answer is
  `(sum(prompt) + seed + k) % 997`, logprob `-0.25 * (k + 1)`, finish_reason "length"; the request bodies are kept
  (`.requests`) and the most requests in flight at once (`.max_in_flight`);
* `POST /collective_rpc` with `agentrl_load_weights(path)` (reads the safetensors file, answers the tensor count
  per "worker") and `agentrl_weights_digest` (`inference.base.weights_digest` of what it loaded);
* `POST /reset_prefix_cache` (`{"success": true}`), `GET /health`.

Faults, set on `.mode` at any time: "ok"; "500" (every request answers 500); "drop" (the connection is closed
without an answer, as a server that dies mid-request); "slow" (sleeps `.delay` first, like "ok" otherwise);
"400" (a refusal in vLLM's error shape). `.delay` also applies to "ok" (requests overlap, to see load spreading).
`.fail_after = N`: completions after the first N answer 500 (a server that breaks mid-rollout).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch


class FakeVLLMServer:
    def __init__(self, *, mode: str = "ok", delay: float = 0.0, workers: int = 1):
        self.mode = mode
        self.fail_after: int | None = None
        self.delay = delay
        self.workers = workers  # collective_rpc answers one result per worker, as vLLM does
        self.requests: list[dict[str, Any]] = []
        self.rpc: list[dict[str, Any]] = []
        self.resets = 0
        self.weights: dict[str, Any] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeVLLMServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- answers ---------------------------------------------------------------------------------------------
    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt, n, seed = body["prompt"], int(body.get("max_tokens", 16)), int(body.get("seed") or 0)
        ids = [(sum(prompt) + seed + k) % 997 for k in range(n)]
        lps = [-0.25 * (k + 1) for k in range(n)]
        choice = {
            "index": 0,
            "text": "",
            "logprobs": {"token_logprobs": lps, "tokens": [f"token_id:{t}" for t in ids]},
            "finish_reason": "length",
            "token_ids": ids,
        }
        return {"id": "cmpl-fake", "object": "text_completion", "model": "fake", "choices": [choice]}

    def collective_rpc(self, body: dict[str, Any]) -> dict[str, Any]:
        from agentrl.inference.base import weights_digest

        self.rpc.append(body)
        if body["method"] == "agentrl_load_weights":
            from safetensors.torch import load_file

            w = load_file(body["args"][0])
            # tie_word_embeddings, as vLLM does: one tensor under two names (the digest counts it once)
            if "lm_head.weight" in w and torch.equal(
                w["lm_head.weight"], w.get("model.embed_tokens.weight", torch.empty(0))
            ):
                w["lm_head.weight"] = w["model.embed_tokens.weight"]
            self.weights = dict(sorted(w.items(), key=lambda kv: kv[0] == "lm_head.weight"))  # vLLM's order
            return {"results": [str(len(self.weights))] * self.workers}  # vLLM answers non-dict results as str
        if body["method"] == "agentrl_weights_digest":
            d = weights_digest(self.weights.items())
            return {"results": [{k: list(v) for k, v in d.items()}] * self.workers}
        raise KeyError(body["method"])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {}) if self.path == "/health" else self._send(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with srv._lock:
                    srv.in_flight += 1
                    srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
                try:
                    self._answer(body)
                finally:
                    with srv._lock:
                        srv.in_flight -= 1

            def _answer(self, body: dict[str, Any]) -> None:
                path = self.path.split("?")[0]
                mode = srv.mode
                if path == "/v1/completions":
                    with srv._lock:
                        srv.requests.append(body)
                        if srv.fail_after is not None and len(srv.requests) > srv.fail_after:
                            mode = "500"
                if srv.delay and mode in ("ok", "slow"):
                    time.sleep(srv.delay)
                if mode == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if mode == "500":
                    return self._send(500, {"error": {"message": "engine dead", "type": "InternalServerError"}})
                if mode == "400":
                    return self._send(400, {"error": {"message": "prompt too long", "param": "prompt"}})
                if path == "/v1/completions":
                    return self._send(200, srv.completion(body))
                if path == "/collective_rpc":
                    return self._send(200, srv.collective_rpc(body))
                if path == "/reset_prefix_cache":
                    srv.resets += 1
                    return self._send(200, {"success": True})
                self._send(404, {"detail": "Not Found"})

        return Handler


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
