"""Data-parallel training under torchrun (gloo, 2 CPU ranks): the same update as one process, a killed rank ends
the run with an error naming it, and the run resumes from rank 0's checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentrl.core.checkpoint import latest_checkpoint
from agentrl.core.records import read_records_file
from agentrl.train.config import ConfigError, load_config
from agentrl.train.trainer import Trainer

SMALL = [
    "model=tiny-random",
    "env.kwargs.turns=3",
    "rollout.groups=2",
    "rollout.group_size=3",
    "rollout.constrained=true",
    "rollout.max_new_tokens=4",
    "train.updates=1",
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=2",
    "train.log_episodes=2",
    "optim.lr=1e-6",
    "train.threads=1",
    "train.collective_timeout_s=20",
]


def _torchrun(args: list[str], nproc: int = 2, parallel: str = "ddp") -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "agentrl",
        "train",
        *args,
        f"train.parallel={parallel}",
    ]
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)  # test envs
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("parallel", ["ddp", "fsdp2"])
@pytest.mark.parametrize("algorithm", ["grpo", "trepo"])
def test_two_ranks_make_the_one_process_update(algorithm: str, parallel: str, tmp_path: Path) -> None:
    overrides = SMALL + [f"algorithm.name={algorithm}"]  # zero-advantage rows skipped alike (fsdp2: padding passes)
    proc = _torchrun(overrides + [f"train.run_dir={tmp_path / 'ddp'}"], parallel=parallel)
    one = Trainer(load_config(None, overrides + [f"train.run_dir={tmp_path / 'one'}"]), console=False)
    before = {k: v.clone() for k, v in one.model.state_dict().items()}
    one.run()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    if parallel == "fsdp2":  # the decoder layers really were sharded: each rank held half of their parameters
        line = next(x for x in out.splitlines() if x.startswith("fsdp2:"))
        held, total = (int(v) for v in re.search(r"holds (\d+) of (\d+)", line).groups())
        assert held * 2 == total, line
    a, b = _metrics(tmp_path / "one")[0], _metrics(tmp_path / "ddp")[0]
    for key in (
        "reward/mean",
        "reward/std",
        "success_rate",
        "tokens/sampled",
        "tokens/branch",
        "adv/mean",
        "adv/std",
        "adv/abs_max",
        "loss/policy",
        "entropy",
        "clip_fraction",
        "grad_norm",
        "optimizer_steps",
    ):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (key, a[key], b[key])
    if algorithm == "trepo":
        assert a["tokens/branch"] > 0 and b["branch/continuations"] == a["branch/continuations"]
    w1 = load_file(str(tmp_path / "one" / "checkpoints" / "step_000001" / "model" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_000001" / "model" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5
    assert any(not torch.equal(before[k], w1[k]) for k in w1 if k in before), "the update changed no weight"
    # train.log_episodes=2: rank 0 writes the batch's worst and best episode over both ranks, the ones one process
    # writes (each rank picks its own best and worst, rank 0 picks over those)
    picked = [
        [
            (r.group_id, r.uid, r.reward, r.tokens)
            for _, r in read_records_file(tmp_path / d / "episodes" / "step_000001.jsonl")[0]
        ]
        for d in ("one", "ddp")
    ]
    assert len(picked[0]) == 2 and picked[1] == picked[0]


def test_two_ranks_leave_out_the_failed_episodes_one_process_leaves_out(tmp_path: Path) -> None:
    """rollout.failed_episodes=exclude_infra under torchrun: an env that fails on purpose (a second "2" raises) drops
    the same episodes and groups as one process, the update is the same, and the held-out tasks (3, split 1 + 2)
    give the one-process numbers."""
    overrides = [
        "model=tiny-random",
        "env.id=test_failed_episodes_wiring:FailingPick-v0",
        "env.kwargs={turns: 2, fail: reply2}",
        "algorithm.name=grpo",
        "rollout.groups=4",
        "rollout.group_size=3",
        "rollout.constrained=true",
        "rollout.max_new_tokens=2",
        "train.updates=1",
        "ppo.minibatch_size=4",
        "ppo.micro_batch_size=2",
        "train.log_episodes=0",
        "optim.lr=1e-4",
        "train.threads=1",
        "train.collective_timeout_s=20",
        "train.eval_every=1",
        "train.eval_tasks=3",
        "train.eval_before_train=false",
        "train.seed=5",  # group 2 fails whole at this seed, each rank keeps a group (at 0, one episode fails)
    ]
    proc = _torchrun(overrides + [f"train.run_dir={tmp_path / 'ddp'}"])
    Trainer(load_config(None, overrides + [f"train.run_dir={tmp_path / 'one'}"]), console=False).run()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    a, b = _metrics(tmp_path / "one")[0], _metrics(tmp_path / "ddp")[0]
    assert a["episode/outcome/env_error"] > 0 and a["episode/dropped_groups"] > 0, (
        a
    )  # the env failed; whole groups left
    for key in (
        "episode/outcome/env_error",
        "episode/outcome/terminated",
        "episode/dropped",
        "episode/dropped_groups",
        "reward/mean",
        "tokens/sampled",
        "adv/mean",
        "adv/std",
        "loss/policy",
        "grad_norm",
        "optimizer_steps",
        "eval/reward",
        "eval/success_rate",
        "eval/failed",
        "eval/tasks",
    ):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (key, a[key], b[key])
    w1 = load_file(str(tmp_path / "one" / "checkpoints" / "step_000001" / "model" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_000001" / "model" / "model.safetensors"))
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker with RANK=rank (a child of the launcher)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (d / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher and f"RANK={rank}".encode() in env:
            return int(d.name)
    return None


def test_a_killed_rank_ends_the_run_and_it_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = SMALL + ["algorithm.name=grpo", "train.updates=40", "train.checkpoint_every=1", f"train.run_dir={run}"]
    proc = _torchrun(args)
    deadline = time.time() + 90
    while latest_checkpoint(run) is None if run.exists() else True:
        assert proc.poll() is None and time.time() < deadline, (
            proc.communicate()[0] if proc.poll() is not None else "slow"
        )
        time.sleep(0.2)
    pid = _rank_pid(proc.pid, 1)
    assert pid is not None
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert time.time() - t0 < 20 + 10, "the run must end within the collective timeout"
    assert proc.returncode != 0
    assert "rank" in out.lower() and ("exitcode: -9" in out or "rank 0 of 2" in out), out[-3000:]

    step = int(latest_checkpoint(run).name.split("_")[1])  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="saved by 2 process"):  # one process cannot continue a 2-rank run
        Trainer(load_config(run / "config.yaml", ["train.resume=true"]), console=False)
    proc = _torchrun(
        args[:-2]
        + [f"train.updates={step + 1}", "train.checkpoint_every=1", f"train.run_dir={run}", "train.resume=true"]
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert [m["step"] for m in _metrics(run)] == list(range(1, step + 2))


def test_fsdp2_resume_continues_as_if_never_stopped(tmp_path: Path) -> None:
    """Two updates in one go equal one update, a stop, and a resume: each rank's optimizer shard came back."""
    args = SMALL + ["algorithm.name=grpo", "optim.lr=1e-3", "train.checkpoint_every=1"]
    straight = _torchrun(args + ["train.updates=2", f"train.run_dir={tmp_path / 'straight'}"], parallel="fsdp2")
    out, _ = straight.communicate(timeout=180)
    assert straight.returncode == 0, out
    for extra in (["train.updates=1"], ["train.updates=2", "train.resume=true"]):
        proc = _torchrun(args + extra + [f"train.run_dir={tmp_path / 'resumed'}"], parallel="fsdp2")
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out
    a, b = _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")
    assert [m["step"] for m in b] == [1, 2]
    for key in ("reward/mean", "loss/policy", "grad_norm"):
        assert b[1][key] == pytest.approx(a[1][key], rel=1e-4, abs=1e-6), (key, a[1][key], b[1][key])
    w1 = load_file(str(tmp_path / "straight" / "checkpoints" / "step_000002" / "model" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "resumed" / "checkpoints" / "step_000002" / "model" / "model.safetensors"))
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5
    ckpts = tmp_path / "resumed" / "checkpoints"  # each rank wrote its own shard; no staging directory is left
    assert sorted(p.name for p in (ckpts / "step_000002" / "optimizer_shards").iterdir()) == [
        "rank_000.pt",
        "rank_001.pt",
    ]
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_000001", "step_000002"]


def test_config_guards(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fsdp2 does not shard LoRA"):
        load_config(None, SMALL + ["train.parallel=fsdp2", "lora.r=4"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="set train.parallel=ddp or train.parallel=fsdp2"):
        Trainer(load_config(None, SMALL + [f"train.run_dir={tmp_path}"]), console=False)
    for var, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match="train.device=cuda:1 names one GPU for 2 processes"):
        Trainer(
            load_config(None, SMALL + ["train.parallel=ddp", "train.device=cuda:1", f"train.run_dir={tmp_path / 'b'}"]),
            console=False,
        )


def test_groups_must_divide_among_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentrl.train import distributed

    monkeypatch.setattr(distributed, "world", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.my_groups(4) == range(2, 4)
    with pytest.raises(ConfigError, match="multiple of the number of processes"):
        distributed.my_groups(3)


class _EngineLikePolicy:
    """Stands in for the vLLM policy (its engine holds its own weights, not the trainer's rollout copy), because
    a vLLM engine per torchrun rank is more than this machine runs in the suite: records what it was sent."""

    def __init__(self) -> None:
        self.received: dict[str, torch.Tensor] = {}

    def update_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.received = {k: v.clone() for k, v in state_dict.items()}

    def weights_digest(self):  # noqa: ANN201
        from agentrl.inference.base import weights_digest

        return weights_digest(self.received.items())


def test_fsdp2_sync_to_a_mocked_vllm_engine_also_updates_the_copy_checkpoints_are_written_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import copy

    from agentrl.train import fsdp

    tr = Trainer(load_config(None, SMALL + [f"train.run_dir={tmp_path}"]), console=False)
    tr.rollout_model = copy.deepcopy(tr.model)  # fsdp2's layout: a full copy beside the (here unsharded) trainer model
    assert tr.sharded
    tr.policy = _EngineLikePolicy()
    with torch.no_grad():
        for p in tr.model.parameters():
            p.add_(0.01)  # what an update did to the trainer's weights
    monkeypatch.setattr(
        fsdp, "full_state_dict", lambda model: {k: v.detach().clone() for k, v in model.state_dict().items()}
    )
    tr._sync_weights()
    trained = tr.model.state_dict()
    for name, value in tr.rollout_model.state_dict().items():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=0)
        torch.testing.assert_close(tr.policy.received[name], trained[name], rtol=0, atol=0)
