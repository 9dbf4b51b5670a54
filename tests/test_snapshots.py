"""train.snapshot_every: model weights kept beside the pruned checkpoints, for a run's held-out curve."""

from __future__ import annotations

import json

import pytest
from run_helpers import TINY_GRPO
from safetensors.torch import load_file

from agentrl.inference.models import load_model
from agentrl.train.config import ConfigError, load_config
from agentrl.train.run_dir import clear_run_dir
from agentrl.train.trainer import Trainer

SMALL = [
    *TINY_GRPO,
    "train.random_reward=0.5",  # tiny-random's own rewards can all be 0: every step then moves nothing
    "optim.lr=1e-3",
    "train.threads=1",
]


def _weights(d):
    return load_file(str(d / "model.safetensors"))


def test_snapshots_outlive_the_pruned_checkpoints_and_load_as_models(tmp_path) -> None:
    run = tmp_path / "run"
    cfg = load_config(
        None,
        [
            *SMALL,
            "train.updates=4",
            "train.checkpoint_every=1",
            "train.keep_checkpoints=1",
            "train.snapshot_every=2",
            f"train.run_dir={run}",
        ],
    )
    t = Trainer(cfg, console=False)
    try:
        t.run()
    finally:
        t.close()
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_000004"]
    snaps = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snaps == ["step_000002", "step_000004"], "every 2nd update kept; nothing half-written left"
    s2, s4 = run / "snapshots" / "step_000002", run / "snapshots" / "step_000004"
    assert json.loads((s2 / "snapshot.json").read_text()) == {"step": 2}
    assert not (s2 / "trainer_state.pt").exists(), "weights only, no optimizer state"
    last = _weights(run / "checkpoints" / "step_000004" / "model")
    assert all((_weights(s4 / "model")[k] == v).all() for k, v in last.items()), "the checkpoint's own weights"
    assert any(not (_weights(s2 / "model")[k] == v).all() for k, v in last.items()), "update 2's, not update 4's"
    model, tok = load_model(str(s2 / "model"))
    assert model is not None and tok is not None
    assert clear_run_dir(run) == [], "snapshots/ is the kit's own: overwrite clears it and keeps nothing else"
    assert not (run / "snapshots").exists()


def test_snapshot_every_must_fall_on_checkpoints() -> None:
    with pytest.raises(ConfigError, match=r"snapshot_every=3 .*checkpoint_every=2 .* multiple"):
        load_config(None, ["train.checkpoint_every=2", "train.snapshot_every=3"])
    assert load_config(None, ["train.checkpoint_every=2", "train.snapshot_every=4"]).train.snapshot_every == 4
