"""HTTPChatModel against hostile or broken OpenAI-compatible servers, and the simulators built on it.

Each test starts a REAL HTTP server on 127.0.0.1 (`Loopback`) whose answer the test scripts: one that echoes
the Authorization header into its bodies, drips its answer, sends megabytes, sends a malformed ``usage``,
or answers with empty content. Every server and thread is stopped by its context manager; every loop is
bounded; no test waits more than a few seconds.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentrl.inference.http import HTTPBackendError, HTTPChatModel

KEY_ENV = "AGENTRL_TEST_HOSTILE_KEY"
KEY = "sk-" + secrets.token_hex(20)  # random throughout: any 6 characters of it in a message are a leak
MODEL = "sim"

Answer = Callable[["_Handler"], None]


class Loopback(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1; `answer(handler)` writes the reply to every POST."""

    daemon_threads = True

    def __init__(self, answer: Answer):
        self.answer = answer
        self.stopping = threading.Event()  # handlers that drip or stream stop when the test ends
        self.lock = threading.Lock()
        self.bytes_written = 0
        self.requests = 0
        self.answered = threading.Event()  # set when a handler has finished writing its answer
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def write(self, handler: _Handler, data: bytes) -> bool:
        """Send body bytes; False once the client has hung up."""
        try:
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        with self.lock:
            self.bytes_written += len(data)
        return True

    def __enter__(self) -> Loopback:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.shutdown()
        self._thread.join(timeout=10)
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Loopback
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests += 1
        try:
            self.server.answer(self)
        finally:
            self.server.answered.set()

    def head(self, status: int, length: int | None, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.head(status, len(body), ctype)
        self.server.write(self, body)


def completion(content: Any, usage: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
    }
    if usage is not None:
        data["usage"] = usage
    return data


def client(url: str, **kw: Any) -> HTTPChatModel:
    kw.setdefault("api_key_env", None)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("max_retries", 0)
    kw.setdefault("backoff_base", 0.005)
    kw.setdefault("backoff_max", 0.01)
    kw.setdefault("jitter_seed", 0)
    return HTTPChatModel(url, MODEL, **kw)


ASK = [{"role": "user", "content": "hello"}]


# ---------------------------------------------------------------- 1. the key never leaks, even in part


def _straddling(auth: str, cut: int, before: int) -> str:
    """Text holding the echoed Authorization value with the key's middle at character `cut` of the text the
    client quotes (`before` characters of framing come ahead of this text there)."""
    key_at = cut - len(KEY) // 2
    return "x" * (key_at - before - len("Bearer ")) + auth + " (echoed)"


def _echo(handler: _Handler) -> None:
    auth = handler.headers.get("Authorization", "")
    kind = handler.path.split("/")[2]  # /v1/<kind>/chat/completions: which body to answer with
    if kind == "text200":  # 200, not JSON: quoted as repr(text[:200])
        handler.reply(200, _straddling(auth, 200, 0).encode(), "text/plain")
    elif kind == "error":  # an error body that is not OpenAI-shaped: its text is the detail, cut at 300
        handler.reply(500, _straddling(auth, 300, 0).encode(), "text/plain")
    elif kind == "errjson":  # OpenAI-shaped error: the message is the detail
        handler.reply(400, json.dumps({"error": {"message": _straddling(auth, 300, 0)}}).encode())
    elif kind == "nochoices":  # JSON without choices: quoted as str(data)[:200]
        handler.reply(200, json.dumps({"echo": _straddling(auth, 200, len("{'echo': '"))}).encode())
    elif kind == "nontext":  # a non-text content: quoted as repr(content), 60 characters
        handler.reply(200, json.dumps(completion([_straddling(auth, 60, len("['"))])).encode())
    else:
        raise AssertionError(kind)


def _leaks(text: str) -> list[str]:
    return [KEY[i : i + 6] for i in range(len(KEY) - 5) if KEY[i : i + 6] in text]


@pytest.mark.parametrize(
    "kind, status, retried",
    [
        ("text200", 200, False),
        ("error", 500, True),
        ("errjson", 400, False),
        ("nochoices", 200, False),
        ("nontext", 200, False),
    ],
)
def test_no_part_of_the_key_reaches_errors_or_logs_when_the_server_echoes_it(
    monkeypatch, caplog, kind, status, retried
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, KEY)
    with Loopback(_echo) as srv:
        with HTTPChatModel(
            f"{srv.url}/{kind}", MODEL, api_key_env=KEY_ENV, max_retries=1, backoff_base=0.0, backoff_max=0.0
        ) as m:
            with pytest.raises(HTTPBackendError) as ei:
                m.complete(ASK)
        assert srv.requests == (2 if retried else 1)
    e = ei.value
    assert e.status == status and e.attempts == srv.requests
    assert "***" in str(e)  # the key was quoted, and replaced
    for text in (str(e), repr(e), repr(e.args), caplog.text):
        assert not _leaks(text), (kind, _leaks(text), text)


# ---------------------------------------------------------------- 2. the timeout is a deadline per attempt


def _drip(handler: _Handler) -> None:
    """A valid answer, 4 bytes every 0.4 s (about 4.4 s in all): no single read waits longer than 0.4 s."""
    body = json.dumps(completion("slow")).encode()
    handler.head(200, len(body))
    for i in range(0, len(body), 4):
        if handler.server.stopping.wait(0.4) or not handler.server.write(handler, body[i : i + 4]):
            return


def test_a_dripping_server_cannot_hold_a_call_past_its_deadline() -> None:
    with Loopback(_drip) as srv, client(srv.url, timeout=0.5, max_retries=1) as m:
        t0 = time.monotonic()
        with pytest.raises(HTTPBackendError, match="timed out") as ei:
            m.complete(ASK)
        took = time.monotonic() - t0
        assert took < 2 * (0.5 + 0.5) + 1.0, took  # attempts x (deadline + one last read) + slack
        assert (ei.value.attempts, ei.value.status, ei.value.retryable) == (2, None, True)
        assert m.stats.snapshot()["retries"] == 1 and m.stats.failures == 1
        assert srv.requests == 2  # retries stay bounded by max_retries


# ---------------------------------------------------------------- 3. the answer size is capped


def _big(size: int, chunked: bool) -> Answer:
    body = json.dumps(completion("y" * size)).encode()

    def answer(handler: _Handler) -> None:
        if not chunked:
            handler.reply(200, body)
            return
        handler.head(200, None)
        for i in range(0, len(body), 65536):
            piece = body[i : i + 65536]
            if handler.server.stopping.is_set() or not handler.server.write(
                handler, b"%x\r\n%s\r\n" % (len(piece), piece)
            ):
                return
        handler.server.write(handler, b"0\r\n\r\n")

    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_over_max_response_bytes_is_refused(chunked: bool) -> None:
    cap = 2**20
    with Loopback(_big(3 * 2**20, chunked)) as srv, client(srv.url, max_response_bytes=cap, max_retries=2) as m:
        with pytest.raises(HTTPBackendError, match=f"response larger than {cap} bytes") as ei:
            m.complete(ASK)
        assert (ei.value.attempts, ei.value.retryable) == (1, False) and srv.requests == 1  # not retried
        assert m.stats.failures == 1
        # under the cap the same server is fine
    with Loopback(_big(1000, chunked)) as srv, client(srv.url, max_response_bytes=cap) as m:
        assert m.complete(ASK) == "y" * 1000


def test_reading_stops_near_the_cap() -> None:
    """The client hangs up soon after the cap: the server cannot push much more than the cap plus what the
    loopback socket buffers hold (a few MiB), far from the 32 MiB it tried to send."""
    size = 32 * 2**20
    with Loopback(_big(size, chunked=True)) as srv, client(srv.url, max_response_bytes=2**20) as m:
        with pytest.raises(HTTPBackendError, match="larger than"):
            m.complete(ASK)
        assert srv.answered.wait(5)  # the server's writer noticed the hang-up
    assert srv.bytes_written < size * 3 // 4, srv.bytes_written


def test_max_response_bytes_is_a_validated_setting() -> None:
    assert (
        HTTPChatModel.from_config({"base_url": "http://127.0.0.1:9/v1", "model": "m"}).config.max_response_bytes
        == 8 * 2**20
    )
    with pytest.raises(ValueError, match="max_response_bytes"):
        HTTPChatModel("http://127.0.0.1:9/v1", "m", max_response_bytes=0)


# ---------------------------------------------------------------- 4. a malformed usage keeps the answer


@pytest.mark.parametrize(
    "usage, prompt, completion_tokens",
    [
        ({"prompt_tokens": "lots", "completion_tokens": 3}, 0, 3),
        ({"prompt_tokens": 5, "completion_tokens": -2}, 5, 0),
        ({"prompt_tokens": True, "completion_tokens": 1.5}, 0, 0),
        ("lots", 0, 0),
        ([1, 2], 0, 0),
    ],
)
def test_a_malformed_usage_keeps_the_answer_and_is_counted(usage: Any, prompt: int, completion_tokens: int) -> None:
    body = json.dumps(completion("fine", usage=usage)).encode()
    with Loopback(lambda h: h.reply(200, body)) as srv, client(srv.url) as m:
        assert m.complete(ASK) == "fine"
        s = m.stats.snapshot()
    assert s["malformed_usage"] == 1 and s["failures"] == 0
    assert (s["prompt_tokens"], s["completion_tokens"]) == (prompt, completion_tokens)


def test_a_good_usage_is_counted_and_reports_no_anomaly() -> None:
    body = json.dumps(completion("fine", usage={"prompt_tokens": 7, "completion_tokens": 2.0})).encode()
    with Loopback(lambda h: h.reply(200, body)) as srv, client(srv.url) as m:
        assert m.complete(ASK) == "fine"
        assert m.stats.snapshot() == {
            "requests": 1,
            "retries": 0,
            "failures": 0,
            "prompt_tokens": 7,
            "completion_tokens": 2,
        }


# ---------------------------------------------------------------- 5. empty content is counted, up to the envs


EMPTY_REPLY_ERROR = "simulator_empty_reply"  # the error kind: episode metric errors/simulator_empty_reply
EMPTY_REPLY = "..."  # what the LLM user says instead


def _empty(handler: _Handler) -> None:
    handler.reply(200, json.dumps(completion("  \n ")).encode())


def test_empty_content_is_returned_and_counted() -> None:
    with Loopback(_empty) as srv, client(srv.url) as m:
        assert m.complete(ASK).strip() == ""
        assert m.stats.snapshot()["empty_content"] == 1 and m.stats.failures == 0


def test_llm_user_empty_replies_are_simulator_errors_in_the_flight_env() -> None:
    from environments.flight_booking.env import FlightBookingEnv

    with Loopback(_empty) as srv, client(srv.url) as m:
        env = FlightBookingEnv(split="test", user="llm", simulator=m)
        obs, _ = env.reset(seed=0)
        assert obs[1]["content"] == EMPTY_REPLY  # the dialog goes on with a stand-in
        assert env.errors == {EMPTY_REPLY_ERROR: 1}  # the opening's empty reply is counted too
        obs, _, terminated, _, info = env.step("What is your user id?")
        assert obs[0]["content"] == EMPTY_REPLY and not terminated
        assert info["error"] == EMPTY_REPLY_ERROR and info["errors"] == {
            EMPTY_REPLY_ERROR: 2
        }  # -> errors/simulator_empty_reply
        assert m.stats.empty_content == 2


def test_llm_patient_empty_reply_is_a_simulator_error() -> None:
    from mock_patients.cases import shipped_cases
    from mock_patients.patient import NOT_SURE, LLMPatient

    with Loopback(_empty) as srv, client(srv.url) as m:
        p = LLMPatient(shipped_cases()[0], m)
        p.opening()
        a = p.answer("Do you have a fever?")
        assert a.text == NOT_SURE and a.fact_ids == () and a.error == EMPTY_REPLY_ERROR
        assert p.state.empty_replies == 1 and m.stats.empty_content == 1
        assert p.state.history[-1] == {"role": "assistant", "content": NOT_SURE}


def test_llm_patient_empty_replies_are_simulator_errors_in_the_consultation_env() -> None:
    from environments.consultation.env import ConsultationEnv

    with Loopback(_empty) as srv, client(srv.url) as m:
        env = ConsultationEnv(split="test", patient="llm", simulator=m)
        env.reset(seed=0)
        obs, _, terminated, _, info = env.step("Do you have a fever?")
        assert not terminated and info["errors"].get(EMPTY_REPLY_ERROR) == 1, info[
            "errors"
        ]  # -> errors/simulator_empty_reply
