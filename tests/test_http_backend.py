"""HTTPChatModel against the real OpenAI-compatible server (tests/chat_server.py over HFChatModel/tiny-random),
with the fault-injecting proxy (tests/fault_proxy.py) in front where a test's name says "proxy".

All traffic is on 127.0.0.1; every server, proxy and thread is stopped by its fixture; every loop is bounded.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from chat_server import ChatServer
from fault_proxy import FaultProxy
from http_text_policy import HTTPTextPolicy

from agentrl.core.chat import ChatModel
from agentrl.inference.http import (
    HTTPBackendError,
    HTTPChatConfig,
    HTTPChatModel,
    HTTPStats,
    _retry_after_seconds,
)

KEY_ENV = "AGENTRL_TEST_HTTP_KEY"
SECRET = "sk-agentrl-test-" + secrets.token_hex(12)
MODEL = "tiny-random"
PATH = "/v1/chat/completions"
REPO = Path(__file__).resolve().parents[1]


def conversations(n: int) -> list[list[dict[str, str]]]:
    """n distinct multi-turn conversations (as a simulated user or judge would send them)."""
    return [
        [
            {"role": "system", "content": "You are a patient describing symptoms."},
            {"role": "user", "content": f"Episode {i}: where does it hurt?"},
            {"role": "assistant", "content": "Mostly my head."},
            {"role": "user", "content": f"Since when? (case {i * 7 % 13})"},
        ]
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def hf_model(tiny):
    """HFChatModel over the session's tiny-random model (conftest `tiny`): a real transformers model."""
    from agentrl.inference.hf import HFChatModel

    return HFChatModel(*tiny)


@pytest.fixture(scope="module")
def server(hf_model):
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = SECRET  # the server requires this key; clients read it from the same env var
    try:
        with ChatServer(hf_model, model_name=MODEL, api_key_env=KEY_ENV) as srv:
            yield srv
    finally:
        if old is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = old


def client(url: str, **kw) -> HTTPChatModel:
    kw.setdefault("api_key_env", KEY_ENV)
    kw.setdefault("timeout", 30.0)
    kw.setdefault("backoff_base", 0.005)  # tests: small backoff
    kw.setdefault("backoff_max", 0.05)
    kw.setdefault("jitter_seed", 0)
    return HTTPChatModel(url, MODEL, **kw)


# ---------------------------------------------------------------- the server


def test_server_answers_exactly_what_the_model_gives_directly(server, hf_model) -> None:
    msgs = conversations(3)
    with client(server.url) as m:
        assert isinstance(m, ChatModel)
        for i, c in enumerate(msgs):
            for temperature, seed in ((1.0, 11 + i), (0.0, None)):
                got = m.complete(c, temperature=temperature, max_tokens=10, seed=seed)
                assert got == hf_model.complete(c, temperature=temperature, max_tokens=10, seed=seed)
        # the batch form follows HFChatModel's seeding (row i -> seed + i)
        assert m.complete_batch(msgs, temperature=1.0, max_tokens=10, seed=5) == hf_model.complete_batch(
            msgs, temperature=1.0, max_tokens=10, seed=5
        )
        assert m.stats.prompt_tokens > 0 and m.stats.completion_tokens > 0


def test_server_response_json_is_openai_shaped(server) -> None:
    h = {"Authorization": f"Bearer {SECRET}"}
    with httpx.Client(base_url=server.url, headers=h, timeout=30) as c:
        r = c.post(
            "/chat/completions", json={"model": MODEL, "messages": conversations(1)[0], "max_tokens": 5, "seed": 1}
        )
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["object"] == "chat.completion" and d["model"] == MODEL and d["id"].startswith("chatcmpl-")
        ch = d["choices"][0]
        assert ch["index"] == 0 and ch["message"]["role"] == "assistant" and isinstance(ch["message"]["content"], str)
        assert ch["finish_reason"] in ("stop", "length")
        u = d["usage"]
        assert 1 <= u["completion_tokens"] <= 5 and u["prompt_tokens"] > 10
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        if u["completion_tokens"] < 5:
            assert ch["finish_reason"] == "stop"
        r = c.get("/models")
        assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == [MODEL]


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"model": MODEL}, 400, "messages"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": 5}, 400, "temperature"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**9}, 400, "max_tokens"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 2.5},
            400,
            "max_completion_tokens",
        ),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "seed": -1}, 400, "seed"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}, 400, "stream"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
        ([1, 2], 400, None),
    ],
)
def test_server_bad_requests_get_openai_errors_naming_the_field(server, body, status, param) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10) as c:
        r = c.post("/chat/completions", json=body)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["param"] == param and err["message"] and err["type"]
        if param:
            assert param in err["message"] or param == "model"


def test_server_rejects_invalid_json_missing_key_and_unknown_routes(server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/chat/completions", content=b"{not json", headers={"Authorization": f"Bearer {SECRET}"})
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
        r = c.post("/chat/completions", json={"messages": conversations(1)[0]})  # no key
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = c.get("/models", headers={"Authorization": "Bearer sk-wrong-key-123"})
        assert r.status_code == 401 and "sk-wrong-key-123" not in r.text  # the server never echoes a key
        r = c.get("/nope", headers={"Authorization": f"Bearer {SECRET}"})
        assert r.status_code == 404 and "error" in r.json()


# ---------------------------------------------------------------- through the fault proxy


def test_16_episodes_through_fault_proxy_all_complete_with_retries_and_none_lost(server) -> None:
    batch = conversations(16)
    with client(server.url) as direct:
        expected = direct.complete_batch(batch, temperature=1.0, max_tokens=12, seed=100)
    assert len(set(expected)) > 8  # sampled with seeds: distinct texts, so a mixed-up answer would show
    served_before = server.requests_served
    with (
        FaultProxy(server.url, seed=1, max_faults=3) as proxy,
        client(proxy.url, max_retries=6, max_concurrency=8) as m,
    ):
        got = m.complete_batch(batch, temperature=1.0, max_tokens=12, seed=100)
        stats = m.stats.snapshot()
    assert got == expected  # every answer, in input order, equals the server's direct answer
    faults = {k: proxy.actions[k] for k in ("429", "500", "drop")}
    assert all(v > 0 for v in faults.values()), faults  # the seeded schedule exercises each fault kind
    assert stats["retries"] == sum(faults.values()) > 0
    assert stats["requests"] == 16 and stats["failures"] == 0
    # no request lost or answered twice: each of the 16 distinct requests reached the server exactly once
    assert len(proxy.forwarded) == 16 and set(proxy.forwarded.values()) == {1}
    assert server.requests_served - served_before == 16


def test_text_policy_acts_through_fault_proxy(server, hf_model) -> None:
    convs = conversations(3)
    with FaultProxy(server.url, seed=2, max_faults=2) as proxy:
        policy = HTTPTextPolicy(client(proxy.url, max_retries=4), temperature=1.0, max_tokens=8, seed=40)
        try:
            first, second = policy.act(convs), policy.act(convs)
            assert policy.chat.stats.retries == sum(proxy.actions[k] for k in ("429", "500", "drop")) > 0
        finally:
            policy.close()
    assert first == hf_model.complete_batch(convs, temperature=1.0, max_tokens=8, seed=40)
    assert second == hf_model.complete_batch(convs, temperature=1.0, max_tokens=8, seed=43)  # seeds move on
    assert "HTTPTextPolicy(HTTPChatModel(" in repr(policy)


@pytest.mark.parametrize("fault, status", [("500", 500), ("429", 429), ("drop", None)])
def test_permanently_failing_proxy_raises_after_last_retry(server, fault, status) -> None:
    with FaultProxy(server.url, always=fault) as proxy, client(proxy.url, max_retries=3) as m:
        t0 = time.monotonic()
        with pytest.raises(HTTPBackendError) as ei:
            m.complete(conversations(1)[0], max_tokens=4)
        assert time.monotonic() - t0 < 5
        e = ei.value
        assert (e.path, e.status, e.attempts, e.retryable) == (PATH, status, 4, True)
        msg = str(e)
        assert PATH in msg and "4 attempts" in msg and (str(status) in msg if status else "connection" in msg)
        assert m.stats.snapshot() == {
            "requests": 1,
            "retries": 3,
            "failures": 1,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
        assert proxy.actions[fault] == 4 and not proxy.forwarded
        # the batch form raises the same error (and stops)
        with pytest.raises(HTTPBackendError):
            m.complete_batch(conversations(2), max_tokens=4)


def test_stalling_proxy_times_out_then_raises(server) -> None:
    with (
        FaultProxy(server.url, always="stall", stall_s=3.0) as proxy,
        client(proxy.url, timeout=0.3, max_retries=1) as m,
    ):
        with pytest.raises(HTTPBackendError, match="timed out") as ei:
            m.complete(conversations(1)[0], max_tokens=4)
        assert ei.value.attempts == 2 and ei.value.status is None and m.stats.retries == 1
        assert proxy.actions["stall"] == 2


# ---------------------------------------------------------------- the API key


def test_api_key_never_in_repr_str_errors_logs_or_pickles(server, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logging included
    wrong = "sk-wrong-" + secrets.token_hex(12)
    monkeypatch.setenv("AGENTRL_TEST_WRONG_KEY", wrong)
    with client(server.url) as good, client(server.url, api_key_env="AGENTRL_TEST_WRONG_KEY") as bad:
        good.complete(conversations(1)[0], max_tokens=3)  # the right key works
        with pytest.raises(HTTPBackendError) as ei:  # the wrong one is refused at once (401 is not retried)
            bad.complete(conversations(1)[0], max_tokens=3)
        assert ei.value.status == 401 and ei.value.attempts == 1 and not ei.value.retryable
        with FaultProxy(server.url, always="500") as proxy, client(proxy.url, max_retries=1) as failing:
            with pytest.raises(HTTPBackendError) as ej:
                failing.complete(conversations(1)[0], max_tokens=3)
            texts = [repr(failing), str(failing), repr(vars(failing)), str(ej.value), repr(ej.value)]
        texts += [repr(good), str(good), repr(vars(good)), str(good.config), repr(bad), str(ei.value), repr(ei.value)]
        texts += [caplog.text, repr([r.args for r in caplog.records])]
        for t in texts:
            assert SECRET not in t and wrong not in t
        assert "api_key_set=True" in repr(good) and KEY_ENV in repr(good)
        blob = pickle.dumps(good)  # settings travel, the key does not (read again from the env on load)
        assert SECRET.encode() not in blob
        again = pickle.loads(blob)
        try:
            assert again.complete(conversations(1)[0], max_tokens=3) == good.complete(conversations(1)[0], max_tokens=3)
        finally:
            again.close()


def test_api_key_env_name_is_configurable_and_optional(monkeypatch) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})

    monkeypatch.setenv("MY_OWN_KEY_VAR", "k-123")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for env, want in (("MY_OWN_KEY_VAR", "Bearer k-123"), ("OPENAI_API_KEY", None), (None, None)):
        with HTTPChatModel("http://127.0.0.1:9/v1", "m", api_key_env=env, transport=httpx.MockTransport(handler)) as m:
            assert m.complete([{"role": "user", "content": "x"}]) == "ok"
            assert seen[-1] == want


# ---------------------------------------------------------------- client behaviour (mock transport, no network)


def test_params_pass_through_and_batch_keeps_order_under_concurrency_limit() -> None:
    lock = threading.Lock()
    state = {"in_flight": 0, "peak": 0}
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        with lock:
            bodies.append(body)
            state["in_flight"] += 1
            state["peak"] = max(state["peak"], state["in_flight"])
        time.sleep(
            0.02 * (1 + (len(body["messages"][0]["content"]) % 3))
        )  # uneven latency: order must not depend on it
        with lock:
            state["in_flight"] -= 1
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": body["messages"][0]["content"].upper()}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            },
        )

    batch = [[{"role": "user", "content": "q" + "x" * i}] for i in range(12)]
    with HTTPChatModel(
        "http://127.0.0.1:9/v1",
        "m",
        api_key_env=None,
        max_concurrency=3,
        transport=httpx.MockTransport(handler),
        extra_body={"top_p": 0.9},
        max_tokens_field="max_completion_tokens",
    ) as m:
        out = m.complete_batch(batch, temperature=0.7, max_tokens=33, seed=1000)
        assert out == [b[0]["content"].upper() for b in batch]
        assert 2 <= state["peak"] <= 3
        assert sorted(b["seed"] for b in bodies) == list(range(1000, 1012))
        assert all(
            b["temperature"] == 0.7 and b["max_completion_tokens"] == 33 and b["model"] == "m" and b["top_p"] == 0.9
            for b in bodies
        )
        assert m.stats.snapshot()["completion_tokens"] == 12
        bodies.clear()
        m.complete(batch[0])  # seed None is left out, defaults sent
        assert "seed" not in bodies[0] and bodies[0]["temperature"] == 0.0
        assert m.complete_batch([]) == []
        with pytest.raises(ValueError, match=r"messages\[0\]"):
            m.complete_batch([[{"role": "user", "content": "ok"}], [{"role": "robot", "content": "x"}]])


def test_retry_after_is_honoured_and_capped_and_4xx_is_not_retried() -> None:
    calls: list[float] = []
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "100"}, json={"error": {"message": "slow down"}}),
            httpx.Response(503, text="busy"),
            httpx.Response(200, json={"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}]}),
            httpx.Response(400, json={"error": {"message": "bad temperature", "param": "temperature"}}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        return next(replies)

    with HTTPChatModel(
        "http://127.0.0.1:9/v1",
        "m",
        api_key_env=None,
        transport=httpx.MockTransport(handler),
        retry_after_max=0.05,
        backoff_base=0.01,
        jitter_seed=0,
    ) as m:
        t0 = time.monotonic()
        assert m.complete([{"role": "user", "content": "x"}]) == "fine"
        assert time.monotonic() - t0 < 2  # Retry-After: 100 was capped at 0.05 s
        assert m.stats.retries == 2
        with pytest.raises(HTTPBackendError, match=r"HTTP 400: bad temperature \(param: temperature\)") as ei:
            m.complete([{"role": "user", "content": "x"}])
        assert (ei.value.status, ei.value.attempts, ei.value.retryable) == (400, 1, False)
        assert m.stats.retries == 2 and m.stats.failures == 1
        # backoff: exponential, capped, jittered within [d/2, d]
        for attempt, d in ((1, 0.01), (2, 0.02), (3, 0.04)):
            assert all(d / 2 <= m._delay(attempt, None) <= d for _ in range(20))
        assert m._delay(50, None) <= m.config.backoff_max
        assert m._delay(1, 3.0) == 0.05 and m._delay(1, 0.0) == 0.0


def test_malformed_success_is_an_error_not_an_empty_reply() -> None:
    replies = iter(
        [
            httpx.Response(200, json={"choices": []}),
            httpx.Response(200, json={"choices": [{"message": {"content": None}, "finish_reason": "tool_calls"}]}),
        ]
    )
    with HTTPChatModel(
        "http://127.0.0.1:9/v1", "m", api_key_env=None, transport=httpx.MockTransport(lambda r: next(replies))
    ) as m:
        with pytest.raises(HTTPBackendError, match="choices"):
            m.complete([{"role": "user", "content": "x"}])
        with pytest.raises(HTTPBackendError, match="tool_calls"):
            m.complete([{"role": "user", "content": "x"}])


def test_retry_after_parsing() -> None:
    assert _retry_after_seconds(None) is None
    assert _retry_after_seconds("0") == 0.0 and _retry_after_seconds(" 2.5 ") == 2.5
    assert _retry_after_seconds("-3") == 0.0
    assert _retry_after_seconds("soon") is None and _retry_after_seconds("nan") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 20 < _retry_after_seconds(future) <= 31
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_stats_are_thread_safe_and_config_is_validated() -> None:
    s = HTTPStats()
    threads = [threading.Thread(target=lambda: [s.add(requests=1, retries=2) for _ in range(2000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.snapshot()["requests"] == 8000 and s.snapshot()["retries"] == 16000
    with pytest.raises(ValueError, match="max_concurency"):
        HTTPChatModel.from_config({"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_concurency": 2})
    with pytest.raises(ValueError, match="max_concurrency"):
        HTTPChatModel("http://127.0.0.1:9/v1", "m", max_concurrency=0)
    m = HTTPChatModel.from_config(HTTPChatConfig(base_url="http://127.0.0.1:9/v1/", model="m"), max_retries=2)
    try:
        assert m.url == "http://127.0.0.1:9/v1/chat/completions" and m.config.max_retries == 2 and m.path == PATH
    finally:
        m.close()


# ---------------------------------------------------------------- the CLI


def test_serve_cli_prints_bound_loopback_address_and_serves() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "chat_server.py"), "--model", MODEL, "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _readline_with_timeout(proc, 90)
        match = re.fullmatch(r"serving tiny-random at (http://127\.0\.0\.1:(\d+)/v1)\s*", line)
        assert match, f"unexpected first line {line!r}"
        with HTTPChatModel(match.group(1), MODEL, api_key_env=None, timeout=30, max_retries=0) as m:
            assert isinstance(m.complete([{"role": "user", "content": "hi"}], max_tokens=3, seed=0), str)
            assert m.stats.completion_tokens >= 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, proc.stderr.read()


def _readline_with_timeout(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not out:
        raise AssertionError(
            f"server printed nothing in {timeout} s; stderr: {proc.stderr.read() if proc.poll() is not None else '(running)'}"
        )
    return out[0]
