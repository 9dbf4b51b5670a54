"""A fault-injecting HTTP proxy for tests: sits on 127.0.0.1 in front of a server and, on a seeded
schedule, answers 429 (with ``Retry-After: 0``), answers 500, drops the connection mid-request, or stalls.

The schedule is keyed on the request itself (method, path, body), not on arrival order: the k-th time a
given request arrives it gets the k-th action of its own seeded list, and the list ends with forwarding.
So the faults each request meets do not depend on thread timing, every request is forwarded after at
most ``max_faults`` faults (a client with more retries than that always gets through), and the proxy can
tell how many times each distinct request reached the server. ``always="500"`` (or "429", "drop",
"stall") makes a permanently failing endpoint instead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("429", "500", "drop")


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        max_faults: int = 3,
        kinds: tuple[str, ...] = KINDS,
        always: str | None = None,
        stall_s: float = 2.0,
        upstream_timeout: float = 30.0,
    ):
        u = urlsplit(upstream)
        if u.hostname != "127.0.0.1":
            raise ValueError("the fault proxy forwards to 127.0.0.1 only")
        self.upstream_host, self.upstream_port = u.hostname, u.port
        self.path_prefix = u.path.rstrip("/")
        self.seed, self.max_faults, self.kinds, self.always = seed, max_faults, tuple(kinds), always
        self.stall_s, self.upstream_timeout = stall_s, upstream_timeout
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()  # request key -> times arrived
        self.forwarded: Counter[str] = Counter()  # request key -> times forwarded and answered by upstream
        self.actions: Counter[str] = Counter()  # action -> count
        self.log: list[tuple[str, int, str]] = []  # (request key, arrival index for that key, action)
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.path_prefix}"

    def plan(self, key: str) -> list[str]:
        """The faults this request meets, in order, before it is forwarded."""
        rng = random.Random(f"{self.seed}:{key}")
        return [rng.choice(self.kinds) for _ in range(rng.randint(0, self.max_faults))]

    def decide(self, key: str) -> str:
        with self.lock:
            k = self.seen[key]
            self.seen[key] += 1
            if self.always is not None:
                action = self.always
            else:
                plan = self.plan(key)
                action = plan[k] if k < len(plan) else "ok"
            self.actions[action] += 1
            self.log.append((key, k, action))
            return action

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fault-proxy"
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_key(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()[:16]


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive like a real server, so drops hit pooled connections too

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _handle(self, body: bytes) -> None:
        key = request_key(self.command, self.path, body)
        action = self.server.decide(key)
        if action == "429":
            self._reply(429, _err("rate limited (fault proxy)", "rate_limit_error"), {"Retry-After": "0"})
        elif action == "500":
            self._reply(500, _err("internal error (fault proxy)", "server_error"))
        elif action == "drop":  # the request is in flight, the client waits for an answer: cut it off
            self._drop()
        elif action == "stall":  # answer nothing for stall_s (the client should time out), then cut off
            self.server.stopping.wait(self.server.stall_s)
            self._drop()
        elif action == "ok":
            self._forward(key, body)
        else:
            raise ValueError(f"unknown fault action {action!r}")

    def _drop(self) -> None:
        # abort with RST (SO_LINGER 0): the client's connection is reset with no response
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _reply(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers or {})

    def _send_raw(self, status: int, data: bytes, ctype: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, key: str, body: bytes) -> None:
        srv = self.server
        conn = http.client.HTTPConnection(srv.upstream_host, srv.upstream_port, timeout=srv.upstream_timeout)
        try:
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization", "accept")
            }
            conn.request(self.command, self.path, body=body if self.command == "POST" else None, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            status, ctype, retry_after = (
                resp.status,
                resp.getheader("Content-Type", "application/json"),
                resp.getheader("Retry-After"),
            )
        finally:
            conn.close()
        with srv.lock:
            srv.forwarded[key] += 1
        self._send_raw(status, payload, ctype, {"Retry-After": retry_after} if retry_after is not None else {})


def _err(message: str, type_: str) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}
