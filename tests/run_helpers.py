"""Helpers the run-directory tests share: a trainer killed right after a checkpoint, and the CLI in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrl.cli import main

# a two-turn tiny-random GRPO run of 2 groups x 4 episodes, a few tokens a turn: the trainer tests' common base
TINY_GRPO = [
    "model=tiny-random",
    "env.kwargs.turns=2",
    "algorithm.name=grpo",
    "rollout.groups=2",
    "rollout.group_size=4",
    "rollout.max_new_tokens=4",
    "rollout.constrained=true",
    "train.log_episodes=0",
]


def vllm_python_or_skip(what: str) -> Path:
    """The vLLM venv's python, or a skip with its reason printed (`make test-fast`, or no `.venv-vllm` yet)."""
    import os
    import sys

    vllm_py = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"
    msg = None
    if os.environ.get("AGENTRL_SKIP_VLLM") == "1":
        msg = f"AGENTRL_SKIP_VLLM=1 (`make test-fast`): {what} are skipped; `make test` runs them"
    elif not vllm_py.exists():
        msg = f"no vLLM venv at {vllm_py.parent.parent}: run `make setup-vllm` (make test does)"
    if msg is not None:
        print(msg, file=sys.stderr)
        pytest.skip(msg)
    return vllm_py


class Killed(Exception):
    """Stands for a kill -9 right after a checkpoint: nothing else of the run survives but its files."""


def run_until_killed(t, kill_after: int | None):
    """Run trainer `t`; with kill_after, stop dead right after that step's checkpoint. Returns `t`."""
    if kill_after is not None:
        save = t.save

        def save_then_die() -> Path:
            path = save()
            if t.step == kill_after:
                raise Killed
            return path

        t.save = save_then_die
    try:
        t.run()
    except Killed:
        pass
    return t


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of `agentrl ARGV`, run in-process."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def sft_args(data: Path, run: Path, *extra: str) -> list[str]:
    """`agentrl sft` on a transcript file with tiny-random: 2 epochs of 2-dialog batches, a checkpoint every step."""
    return [
        "sft",
        "--from",
        str(data),
        "--model",
        "tiny-random",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--micro-batch-size",
        "2",
        "--lr",
        "1e-3",
        "--checkpoint-every",
        "1",
        "--out",
        str(run),
        *extra,
    ]
