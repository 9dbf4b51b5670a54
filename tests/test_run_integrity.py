"""Runs never mix or lose work: one run per directory, exact resume, verified checkpoints with fallback."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from run_helpers import run_until_killed

from agentrl.core.checkpoint import (
    CheckpointError,
    checkpoint_dirs,
    latest_checkpoint,
    verify_checkpoint,
)
from agentrl.train.config import ConfigError, load_config
from agentrl.train.trainer import Trainer

BASE = [
    "model=tiny-random",
    "env.kwargs.turns=2",
    "algorithm.name=grpo",
    "rollout.groups=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=4",
    "rollout.constrained=true",
    "train.checkpoint_every=1",
    "train.keep_checkpoints=4",
    "train.log_episodes=1",
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=4",
    "optim.lr=1e-3",
]


def _cfg(run_dir: Path, *extra: str):
    return load_config(None, [*BASE, f"train.run_dir={run_dir}", *extra])


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _run(run_dir: Path, *extra: str, kill_after: int | None = None) -> Trainer:
    """Train; with kill_after, stop dead right after that step's checkpoint (nothing else survives but the files)."""
    return run_until_killed(Trainer(_cfg(run_dir, *extra), console=False), kill_after)


# -- one run per directory ---------------------------------------------------------------------------------------
def test_a_fresh_run_in_a_non_empty_run_dir_is_refused_before_anything_changes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(run, "train.updates=2")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"already holds a run .*train\.resume=true.*train\.overwrite=true"):
        Trainer(_cfg(run, "train.updates=1"), console=False)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_overwrite_clears_the_old_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(run, "train.updates=3")
    _run(run, "train.updates=1", "train.overwrite=true")
    assert [r["step"] for r in _rows(run)] == [1]
    assert [p.name for p in checkpoint_dirs(run)] == ["step_000001"]
    assert sorted(p.name for p in (run / "episodes").iterdir()) == ["step_000001.jsonl"]


def test_resume_and_overwrite_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="contradict"):
        Trainer(_cfg(tmp_path / "run", "train.resume=true", "train.overwrite=true"), console=False)


def test_resume_with_another_setting_names_the_difference(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(run, "train.updates=1")
    with pytest.raises(ConfigError, match=r"optim\.lr: 0\.001 -> 0\.005"):
        Trainer(_cfg(run, "train.updates=2", "train.resume=true", "optim.lr=5e-3"), console=False)


def test_resume_in_a_moved_directory_with_other_threads(tmp_path: Path) -> None:
    """Where and how a run computes may change on resume (its directory moved, another CPU thread count); what it
    computes may not."""
    import torch

    threads = torch.get_num_threads()  # train.threads sets torch's process-wide count: put it back
    try:
        _run(tmp_path / "first", "train.updates=1", "train.threads=1")
        (tmp_path / "first").rename(tmp_path / "moved")
        _run(tmp_path / "moved", "train.updates=2", "train.threads=2", "train.resume=true")
    finally:
        torch.set_num_threads(threads)
    assert [r["step"] for r in _rows(tmp_path / "moved")] == [1, 2]


# -- exact resume ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["grpo", "trepo"])
def test_a_killed_and_resumed_run_equals_the_uninterrupted_one_step_for_step(tmp_path: Path, algo: str) -> None:
    whole = _run(tmp_path / "whole", "train.updates=4", f"algorithm.name={algo}")
    _run(tmp_path / "cut", "train.updates=4", f"algorithm.name={algo}", kill_after=2)
    assert [r["step"] for r in _rows(tmp_path / "cut")] == [1, 2]
    resumed = _run(tmp_path / "cut", "train.updates=4", f"algorithm.name={algo}", "train.resume=true")
    a, b = _rows(tmp_path / "whole"), _rows(tmp_path / "cut")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    keys = ["reward/mean", "reward/std", "tokens/sampled", "tokens/cumulative", "adv/mean", "loss/policy"]
    for ra, rb in zip(a, b):
        assert {k: ra.get(k) for k in keys} == {k: rb.get(k) for k in keys}, f"step {ra['step']} differs"
    assert len({r["reward/mean"] for r in a}) > 1, "rewards never changed: the comparison proves little"
    for (name, p), q in zip(whole.model.named_parameters(), resumed.model.parameters()):
        assert p.detach().equal(q.detach()), name


def test_resuming_before_the_first_checkpoint_starts_over_cleanly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(run, "train.updates=3", "train.checkpoint_every=5")
    shutil.rmtree(run / "checkpoints")  # as if killed before its first checkpoint: metrics and episodes, no checkpoint
    assert [r["step"] for r in _rows(run)] == [1, 2, 3]
    _run(run, "train.updates=3", "train.checkpoint_every=5", "train.resume=true")
    assert [r["step"] for r in _rows(run)] == [1, 2, 3]


# -- verified checkpoints ----------------------------------------------------------------------------------------------
def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("victim", ["model/model.safetensors", "trainer_state.pt"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_intact_previous_one(tmp_path: Path, victim: str) -> None:
    run = tmp_path / "run"
    _run(run, "train.updates=4", kill_after=3)
    newest = latest_checkpoint(run)
    assert newest is not None and newest.name == "step_000003"
    _cut_in_half(newest / victim)
    assert "manifest" in (verify_checkpoint(newest) or "")
    with pytest.warns(RuntimeWarning, match="step_000003 is damaged"):
        t = _run(run, "train.updates=4", "train.resume=true")
    assert t.step == 4
    assert [r["step"] for r in _rows(run)] == [1, 2, 3, 4]  # step 3 logged again, from step 2's checkpoint
    assert verify_checkpoint(run / "checkpoints" / "step_000003") is None  # rewritten whole


def test_every_checkpoint_damaged_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(run, "train.updates=1")
    _cut_in_half(run / "checkpoints" / "step_000001" / "trainer_state.pt")
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(CheckpointError, match="no intact checkpoint.*train.overwrite=true"),
    ):
        Trainer(_cfg(run, "train.updates=2", "train.resume=true"), console=False)


def test_a_checkpoint_missing_weights_is_refused_not_loaded_over_random_ones(tmp_path: Path) -> None:
    import hashlib

    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    _run(run, "train.updates=1")
    ck = run / "checkpoints" / "step_000001"
    st = ck / "model" / "model.safetensors"
    one = {k: v for k, v in load_file(str(st)).items() if k == "model.embed_tokens.weight"}
    save_file(one, str(st))  # a valid file holding one tensor
    manifest = json.loads((ck / "manifest.json").read_text())  # ... and a manifest that agrees with it
    manifest["files"]["model/model.safetensors"] = {
        "size": st.stat().st_size,
        "sha256": hashlib.sha256(st.read_bytes()).hexdigest(),
    }
    (ck / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="missing keys"):
        Trainer(_cfg(run, "train.updates=2", "train.resume=true"), console=False)


def test_interrupted_writes_are_cleaned_and_checkpoints_have_ordinary_permissions(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(run, "train.updates=1")
    leftover = run / "checkpoints" / ".step_000002.abc123"
    (leftover / "model").mkdir(parents=True)
    (leftover / "model" / "model.safetensors").write_bytes(b"half")
    shards = run / "checkpoints" / ".step_000002.optimizer_shards"  # fsdp2's staging directory
    shards.mkdir()
    (shards / "rank_000.pt").write_bytes(b"half")
    _run(run, "train.updates=2", "train.resume=true")
    assert not leftover.exists() and not shards.exists()
    umask = os.umask(0)
    os.umask(umask)
    for ck in checkpoint_dirs(run):
        for p in [ck, *ck.rglob("*")]:
            assert stat.S_IMODE(p.stat().st_mode) == (0o777 if p.is_dir() else 0o666) & ~umask, p


def test_a_run_dir_as_model_uses_its_newest_intact_checkpoint(tmp_path: Path) -> None:
    from agentrl.inference.models import resolve_path

    run = tmp_path / "run"
    _run(run, "train.updates=2")
    _cut_in_half(run / "checkpoints" / "step_000002" / "model" / "model.safetensors")
    with pytest.warns(RuntimeWarning, match="damaged"):
        assert resolve_path(str(run)) == run / "checkpoints" / "step_000001" / "model"
