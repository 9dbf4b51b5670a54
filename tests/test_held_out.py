"""Held-out evaluation while training (`train.eval_every`) and the sampled-token budget (`train.max_tokens`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrl.report import write_report
from agentrl.train.config import ConfigError, load_config
from agentrl.train.trainer import Trainer

BASE = [
    "model=tiny-random",
    "env.id=agentrl/CreditChain-v0",
    "env.kwargs={turns: 2}",
    "algorithm.name=grpo",
    "rollout.groups=1",
    "rollout.group_size=2",
    "rollout.max_new_tokens=2",
    "rollout.constrained=true",
    "ppo.minibatch_size=2",
    "ppo.micro_batch_size=2",
    "train.log_episodes=0",
]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train(run: Path, *overrides: str) -> tuple[Trainer, list[dict]]:
    trainer = Trainer(load_config(None, BASE + [*overrides, f"train.run_dir={run}"]), console=False)
    trainer.run()
    return trainer, _rows(run)


def _first_batch(run: Path, *overrides: str) -> tuple[Trainer, list[list[int]]]:
    """Train, and return the trainer and the tokens of the first batch it collected."""
    trainer = Trainer(load_config(None, BASE + [*overrides, f"train.run_dir={run}"]), console=False)
    batches: list[list[list[int]]] = []
    collect = trainer.runner.collect

    def spy(specs: list) -> list:
        eps = collect(specs)
        batches.append([e.input_ids for e in eps])
        return eps

    trainer.runner.collect = spy  # type: ignore[method-assign]
    trainer.run()
    return trainer, batches[0]


def test_eval_every_logs_held_out_rows_from_update_zero(tmp_path: Path) -> None:
    run = tmp_path / "r"
    _, first = _first_batch(run, "train.updates=5", "train.eval_every=2", "train.eval_tasks=3")
    rows = _rows(run)
    evals = [r["step"] for r in rows if "eval/success_rate" in r]
    assert evals == [0, 2, 4, 5]  # before training, every 2 updates, and the last
    assert all(r["eval/tasks"] == 3.0 and 0.0 <= r["eval/success_rate"] <= 1.0 for r in rows if "eval/tasks" in r)
    # held-out episodes (own runner, keys of their own) ran before the first batch: it is what it is without them
    assert first == _first_batch(tmp_path / "plain", "train.updates=1")[1]
    html = write_report(run).read_text()
    assert (run / "report" / "held_out.png").exists() and html.index("plot-held_out") < html.index("plot-reward")


def test_eval_before_train_off_skips_update_zero(tmp_path: Path) -> None:
    _, rows = _train(
        tmp_path / "r", "train.updates=3", "train.eval_every=2", "train.eval_tasks=2", "train.eval_before_train=false"
    )
    assert [r["step"] for r in rows if "eval/success_rate" in r] == [2, 3]


def test_max_tokens_stops_early_and_checkpoints(tmp_path: Path) -> None:
    run = tmp_path / "r"
    _, rows = _train(run, "train.updates=50", "train.max_tokens=10", "train.checkpoint_every=100")
    assert rows[-1]["tokens/cumulative"] >= 10 and all(r["tokens/cumulative"] < 10 for r in rows[:-1])
    assert len(rows) < 50 and (run / "checkpoints" / f"step_{len(rows):06d}").exists()


def test_bad_eval_env_kwargs_fail_before_training(tmp_path: Path) -> None:
    cfg = load_config(
        None, BASE + ["train.eval_every=1", "train.eval_env_kwargs={split: test}", f"train.run_dir={tmp_path}"]
    )
    with pytest.raises(TypeError, match="split"):
        Trainer(cfg, console=False)
    with pytest.raises(ConfigError, match="eval_every"):
        load_config(None, BASE + ["train.eval_every=-1"])
