"""Real OpenEnv servers for the OpenEnv tests, started as processes on loopback and always stopped.

`PICK_SERVER` is an env written against openenv-core's own API (its `Environment`, `Action`, `Observation`,
`create_fastapi_app`), run by uvicorn as any OpenEnv env is: the agent picks one of CHOICES for TURNS rounds, and
the reward, paid when the episode ends, is the fraction of picks equal to "1". Reset arguments: `explode_on`
(a pick that makes the server's env raise), `nondeterministic` (each reset's prompt gets a random code).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

PICK_SERVER = '''
import os
import random
import uuid
from typing import Literal, Optional

from openenv.core.env_server.http_server import create_fastapi_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State

CHOICES = tuple(os.environ.get("PICK_CHOICES", "1,2,3").split(","))
TURNS = int(os.environ.get("PICK_TURNS", "2"))


class PickAction(Action):
    choice: Literal[CHOICES]


class PickObservation(Observation):
    prompt: str = ""
    round: int = 0


class PickEnvironment(Environment):
    """Pick a digit each round; the reward is the fraction of picks equal to 1."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self):
        super().__init__()
        self._state = State(episode_id=None, step_count=0, picks=[])
        self.explode_on = None
        self.code = ""

    def reset(self, seed: Optional[int] = None, episode_id: Optional[str] = None, explode_on: Optional[str] = None,
              nondeterministic: bool = False, **kwargs) -> PickObservation:
        self.explode_on = explode_on
        self.code = uuid.uuid4().hex[:6] if nondeterministic else str(random.Random(seed).randint(1000, 9999))
        self._state = State(episode_id=episode_id, step_count=0, picks=[])
        return PickObservation(prompt=self._prompt(), round=1, done=False, reward=None)

    def _prompt(self) -> str:
        return f"Round {len(self._state.picks) + 1} of {TURNS} (code {self.code}). Pick one of {', '.join(CHOICES)}."

    def step(self, action: PickAction, timeout_s=None, **kwargs) -> PickObservation:
        if action.choice == self.explode_on:
            raise RuntimeError(f"the server env broke on {action.choice}")
        self._state.picks.append(action.choice)
        self._state.step_count += 1
        if len(self._state.picks) >= TURNS:
            ones = sum(p == "1" for p in self._state.picks) / TURNS
            return PickObservation(prompt="Done.", round=TURNS, done=True, reward=ones)
        return PickObservation(prompt=self._prompt(), round=len(self._state.picks) + 1, done=False, reward=None)

    @property
    def state(self) -> State:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(name="PickServer", description="pick a digit each round")


app = create_fastapi_app(PickEnvironment, PickAction, PickObservation, max_concurrent_envs=64)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 600.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_bytes().decode(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"the server exited with {proc.returncode} before it was healthy:\n{err}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy after {timeout_s} s")


def stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextmanager
def server_process(
    args: list[str], port: int, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Run `python ARGS` (a server on 127.0.0.1:port), wait until /health answers, stop it afterwards."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]), "OMP_NUM_THREADS": "1",
                **(env or {})}  # fmt: skip
    # stderr to a file, not a pipe: nobody reads a pipe while the server runs, and once the server's tracebacks (the
    # tests make its env raise, and a loaded machine adds keepalive timeouts) fill the pipe's 64 KiB, its next write
    # blocks the event loop and every request times out (seen once in CI: "GET /schema: timed out")
    log = cwd / f"server_{port}.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log=log)
        yield proc
    finally:
        stop(proc)


@contextmanager
def pick_server(tmp: Path, port: int | None = None, **env: str) -> Iterator[str]:
    """The openenv-core PickServer on loopback; yields its base URL."""
    (tmp / "pick_server.py").write_text(PICK_SERVER)
    port = port or free_port()
    args = ["-m", "uvicorn", "pick_server:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with server_process(args, port, tmp, env):
        yield f"http://127.0.0.1:{port}"


class TCPRelay:
    """127.0.0.1:port -> upstream port, byte for byte (HTTP and WebSocket alike); `cut()` drops every open
    connection, as a network failure would, while new connections still go through."""

    def __init__(self, upstream_port: int):
        import threading

        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.cuts += 1

    def close(self) -> None:
        self._listener.close()
        self.cut()
