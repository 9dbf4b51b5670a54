"""OpenEnv out: `serve-env` serves agentrl envs as OpenEnv servers that openenv-core's own client
(`GenericEnvClient`) drives: several sessions at once, each isolated and equal to a local env with the same seed
and actions; bad actions answered as errors with the session kept; a bounded number of sessions; SIGTERM exits 0."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("openenv", reason="openenv-core is not installed (pip install 'agentrl[openenv]')")

from openenv import GenericEnvClient  # noqa: E402
from openenv_servers import ROOT, free_port, server_process, stop  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from agentrl.core.registry import make_env  # noqa: E402

CREDIT = "agentrl/CreditChain-v0"
MAX_SESSIONS = 3

USER_ENV = '''
import gymnasium as gym

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult


class EchoOnce(MultiTurnEnv):
    """Say anything; the reward is 1 when it was "yes"."""

    def setup(self, options):
        self.state = {"said": ""}
        return "Answer yes or no.", "Well?"

    def respond(self, text):
        self.state["said"] = text
        return EnvReply(terminated=True)

    def compute_reward(self):
        return RewardResult(float(self.state["said"] == "yes"))


if "EchoOnce-v0" not in gym.registry:
    gym.register(id="EchoOnce-v0", entry_point=EchoOnce)
'''


def _serve(tmp: Path, env_id: str, port: int, *extra: str):
    args = ["-m", "environments.openenv.cli", "serve-env", env_id, "--port", str(port), *extra]
    return server_process(args, port, tmp)


@pytest.fixture(scope="module")
def credit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    port = free_port()
    with _serve(tmp_path_factory.mktemp("serve"), CREDIT, port, "--max-sessions", str(MAX_SESSIONS)) as proc:
        yield f"http://127.0.0.1:{port}", proc


def _client(url: str):
    return GenericEnvClient(base_url=url, message_timeout_s=60.0).sync()


def _session(url: str, seed: int = 0, wait_s: float = 60.0):
    """A connected, reset client; waits while the server is full (sessions of an earlier test may still be
    closing on a loaded machine)."""
    deadline = time.monotonic() + wait_s
    while True:
        c = _client(url)
        try:
            c.connect()
            c.reset(seed=seed)
            return c
        except (RuntimeError, ConnectionClosed) as exc:  # refused: an error reply, or the socket closed first
            c.close()
            full = isinstance(exc, ConnectionClosed) or "CAPACITY_REACHED" in str(exc)
            if not full or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_sessions_at_once_are_isolated_and_match_a_local_env(credit_server) -> None:
    url, _ = credit_server
    seeds = list(range(MAX_SESSIONS))
    actions = {s: [str((s + k) % 4) for k in range(6)] for s in seeds}

    def play(seed: int) -> tuple[list[str], float, dict]:
        with _client(url) as env:
            r = env.reset(seed=seed)
            texts = [r.observation["text"]]
            for a in actions[seed]:
                r = env.step({"message": a})
                texts.append(r.observation["text"])
                if r.done:
                    break
            return texts, r.reward, env.state()

    with ThreadPoolExecutor(MAX_SESSIONS) as pool:
        results = dict(zip(seeds, pool.map(play, seeds)))
    for seed in seeds:
        local = make_env(CREDIT).unwrapped
        obs, _ = local.reset(seed=seed)
        texts = ["\n\n".join(m["content"] for m in obs)]
        for a in actions[seed]:
            obs, reward, term, trunc, _ = local.step(a)
            texts.append("\n\n".join(m["content"] for m in obs))
            if term or trunc:
                break
        got_texts, got_reward, state = results[seed]
        assert got_texts == texts and got_reward == reward
        assert state["step_count"] == len(texts) - 1 and state["done"] is True
        assert [m["content"] for m in state["transcript"] if m["role"] == "assistant"] == actions[seed][
            : len(texts) - 1
        ]


def test_bad_actions_are_answered_and_the_session_stays(credit_server) -> None:
    url, _ = credit_server
    with _client(url) as env:
        with pytest.raises(RuntimeError, match="EXECUTION_ERROR"):
            env.step({"message": "1"})  # step before reset
        r = env.reset(seed=0)
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            env.step({"msg": "1"})  # not the Action's schema
        r = env.step({"message": ""})  # the env's own answer to an empty message
        assert r.observation["text"].startswith("Error:") and r.observation["info"]["error"] == "empty_action"
        with pytest.raises(RuntimeError, match="unknown reset arguments"):
            env.reset(seed=0, level=3)
        r = env.reset(seed=1)
        while not r.done:
            r = env.step({"message": "0"})
        with pytest.raises(RuntimeError, match="the episode has ended"):
            env.step({"message": "0"})
        assert env.reset(seed=2).observation["messages"][0]["role"] == "system"  # still usable


def test_sessions_are_bounded(credit_server) -> None:
    url, _ = credit_server
    clients = []
    try:
        for _ in range(MAX_SESSIONS):
            clients.append(_session(url))
        # one more: the server answers CAPACITY_REACHED before any request and closes the socket
        with connect(url.replace("http://", "ws://") + "/ws", open_timeout=60) as raw:
            reply = json.loads(raw.recv(timeout=60))
        assert reply["type"] == "error" and reply["data"]["code"] == "CAPACITY_REACHED"
        assert reply["data"]["max_sessions"] == MAX_SESSIONS
        extra = _client(url)  # openenv-core's client sees the refusal too
        with pytest.raises((RuntimeError, ConnectionClosed)):
            extra.connect()
            extra.reset(seed=0)
        extra.close()
    finally:
        for c in clients:
            c.close()
    again = _session(url)  # closed sessions free their places
    assert again.state()["step_count"] == 0
    again.close()


def test_serves_a_module_env_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "my_user_envs.py").write_text(USER_ENV)
    port = free_port()
    with _serve(tmp_path, "my_user_envs:EchoOnce-v0", port) as proc:
        with _client(f"http://127.0.0.1:{port}") as env:
            assert env.reset().observation["text"] == "Answer yes or no.\n\nWell?"
            r = env.step({"message": "yes"})
            assert r.done and r.reward == 1.0
        assert stop(proc, timeout_s=120) == 0  # generous: a loaded machine shuts down slowly, SIGKILL only on a hang
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections may linger in TIME_WAIT
        s.bind(("127.0.0.1", port))  # nothing listens there any more
        s.listen()


def test_bad_env_id_exits_2_before_serving(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "environments.openenv.cli", "serve-env", "agentrl/Nope-v0", "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 2 and "unknown environment 'agentrl/Nope-v0'" in out.stderr


def test_serve_env_is_an_agentrl_command_when_installed() -> None:
    from importlib.metadata import entry_points

    if not any(ep.name == "serve-env" for ep in entry_points(group="agentrl.commands")):
        pytest.skip("the agentrl.commands entry point serve-env is not installed (pip install -e . after pyproject)")
    from agentrl.cli import build_parser

    args = build_parser().parse_args(["serve-env", CREDIT, "--port", "9", "--max-sessions", "2"])
    assert (args.env_id, args.port, args.max_sessions) == (CREDIT, 9, 2)
