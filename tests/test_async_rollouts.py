"""Asynchronous rollouts (issue 34 part 3): batch s is collected with the weights of version max(start, s − k)
while earlier updates train; k = 0 is the synchronous loop; a k >= 1 run is reproducible despite its threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from run_helpers import TINY_GRPO

from agentrl.train.async_rollouts import RolloutPipeline
from agentrl.train.config import ConfigError, load_config
from agentrl.train.trainer import Trainer


def _drive(k: int, stop: int, *, slow_learner: float = 0.0) -> tuple[list[tuple[int, int]], list[float], list[int]]:
    """A pipeline whose batches are (s, version) and whose 'weights' are one tensor holding the version."""
    collected: list[tuple[int, int]] = []
    synced: list[float] = []
    ahead: list[int] = []
    lock = threading.Lock()

    def collect(s: int, v: int) -> tuple[int, int]:
        with lock:
            collected.append((s, v))
        return (s, v)

    p = RolloutPipeline(collect, lambda sd: synced.append(float(sd["w"])), k=k, start=0, stop=stop)
    try:
        for s in range(stop):
            got = p.take(s)
            assert got == (s, p.version_for(s))
            time.sleep(slow_learner)  # the update: the producer may run ahead meanwhile, never beyond k
            with lock:
                ahead.append(max(c[0] for c in collected) - s)
            p.publish(s + 1, {"w": torch.tensor(float(s + 1))})
    finally:
        p.close()
    return collected, synced, ahead


@pytest.mark.parametrize("k", [1, 2])
def test_batch_s_samples_with_version_s_minus_k(k: int) -> None:
    collected, synced, ahead = _drive(k, 6, slow_learner=0.02)
    assert collected == [(s, max(0, s - k)) for s in range(6)]
    # the sampler got exactly the versions the batches needed, in order, each once
    assert synced == [float(v) for v in range(1, 6 - k)]
    assert max(ahead) <= k and max(ahead) == k, ahead  # it did run ahead while 'updates' took time


def test_a_failed_collection_is_raised_in_the_trainer() -> None:
    def collect(s: int, v: int) -> int:
        if s == 1:
            raise OSError("the env's server is gone")
        return s

    p = RolloutPipeline(collect, lambda sd: None, k=1, start=0, stop=4)
    try:
        assert p.take(0) == 0
        p.publish(1, {"w": torch.zeros(1)})
        with pytest.raises(OSError, match="server is gone"):
            p.take(1)
    finally:
        p.close()


def test_k_zero_is_refused_by_the_pipeline_and_needs_one_process() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        RolloutPipeline(lambda s, v: s, lambda sd: None, k=0, start=0, stop=2)
    with pytest.raises(ConfigError, match="one process"):
        load_config(None, ["rollout.max_staleness=1", "train.parallel=ddp"])


BASE = [
    *TINY_GRPO,
    "ppo.minibatch_size=8",
    "ppo.micro_batch_size=8",
    "optim.lr=1e-3",
    "train.updates=3",
    "train.checkpoint_every=2",
]


def _run(tmp_path: Path, name: str, extra: list[str]) -> tuple[Trainer, list[dict]]:
    import json

    cfg = load_config(None, [*BASE, *extra, f"train.run_dir={tmp_path / name}"])
    t = Trainer(cfg, console=False)
    t.run()
    rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return t, [r for r in rows if r["step"] > 0]


def _same(a: Trainer, b: Trainer) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))


def test_k_zero_is_the_synchronous_loop(tmp_path: Path) -> None:
    """max_staleness=0 builds no pipeline and no sampler copy: run() is train_step after train_step, bit for bit."""
    t, rows = _run(tmp_path, "k0", ["rollout.max_staleness=0"])
    assert t.sampler_model is t.model and t.pipeline is None and t.offpolicy == "none"
    assert not any("policy/staleness" in r for r in rows)
    manual = Trainer(load_config(None, [*BASE, f"train.run_dir={tmp_path / 'manual'}"]), console=False)
    for _ in range(3):
        manual.train_step()
        manual.step += 1
    assert _same(t, manual)


def test_k_one_trains_on_batches_one_version_old_and_is_reproducible(tmp_path: Path) -> None:
    a, rows = _run(tmp_path, "k1a", ["rollout.max_staleness=1", "train.eval_every=2", "train.eval_tasks=2"])
    assert a.sampler_model is not a.model, "the transformers sampler samples from a copy of its own"
    assert [r["policy/staleness"] for r in rows if "policy/staleness" in r] == [0.0, 1.0, 1.0]
    updates = [r for r in rows if "is/ratio_p50" in r]
    assert len(updates) == 3, "auto turns the correction on (tis) with max_staleness > 0"
    # batch 1 was sampled by the weights before update 0: the sampler and π_old now differ
    assert updates[1]["logprob/mismatch_kl"] > 1e-6, updates[1]
    assert any("eval/reward" in r for r in rows)
    b, _ = _run(tmp_path, "k1b", ["rollout.max_staleness=1", "train.eval_every=2", "train.eval_tasks=2"])
    assert _same(a, b), "which weights sample which batch does not depend on the threads' timing"
    sync, _ = _run(tmp_path, "k0", [])
    assert not _same(a, sync), "stale batches are not the synchronous run's"
