"""Checkpoint and resume: a real training process is killed part-way, then resumed from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agentrl.core.checkpoint import checkpoint_dirs, latest_checkpoint

OVERRIDES = [
    "model=tiny-random",
    "env.kwargs.turns=2",
    "algorithm.name=grpo",
    "rollout.groups=2",
    "rollout.group_size=2",
    "rollout.constrained=true",
    "rollout.max_new_tokens=4",
    "train.updates=8",
    "train.checkpoint_every=1",
    "train.keep_checkpoints=2",
    "train.log_episodes=1",
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=4",
    "optim.lr=1e-3",
]


def _train(run_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "agentrl.cli", "train", *OVERRIDES, f"train.run_dir={run_dir}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _train(run_dir)
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until at least 3 checkpoints exist, then kill it hard
        ck = latest_checkpoint(run_dir)
        if ck is not None and int(ck.name.split("_")[1]) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"training exited early:\n{proc.stdout.read()}")
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("no checkpoint at step 3 within 240 s")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = int(latest_checkpoint(run_dir).name.split("_")[1])
    assert killed_at < 8, "the run finished before it could be killed; the test proves nothing"
    assert len(checkpoint_dirs(run_dir)) <= 2  # keep_checkpoints honoured
    saved_cfg = yaml.safe_load((run_dir / "config.yaml").read_text())

    proc = _train(run_dir, "train.resume=true")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    steps = _steps(run_dir)
    # metrics continue from the checkpoint's step: no step missing, none logged twice
    assert steps == list(range(1, 9)), steps
    assert f"update {killed_at + 1}/8" in out and f"update {killed_at}/8" not in out
    assert latest_checkpoint(run_dir).name == "step_000008"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["algorithm"] == saved_cfg["algorithm"]
    # the final model loads with plain transformers
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(latest_checkpoint(run_dir) / "model"))
    assert model.config.num_hidden_layers == 2


def test_resume_with_a_different_config_is_refused(tmp_path: Path) -> None:
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    run_dir = tmp_path / "run"
    base = [o for o in OVERRIDES if not o.startswith("train.updates")] + ["train.updates=1", f"train.run_dir={run_dir}"]
    Trainer(load_config(None, base), console=False).run()
    with pytest.raises(ValueError, match="differs"):
        Trainer(load_config(None, base + ["train.resume=true", "optim.lr=5e-3"]), console=False)
