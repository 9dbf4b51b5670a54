"""Experiment trackers (`train.report_to`, `agentrl sft --report-to`): every metric row that `MetricsLogger` writes
to `metrics.jsonl` also goes to TensorBoard, Weights & Biases, MLflow and/or trackio, with the run's config as
hyperparameters and the HTML report as an artifact where the tracker keeps artifacts.

Offline by default, nothing leaves the machine unless the user asks:
- tensorboard: event files in `run_dir/tb` (`tensorboard --logdir run_dir/tb`);
- wandb: `mode=offline` (unless `WANDB_MODE` says otherwise), files under `run_dir/wandb`; upload later with
  `wandb sync run_dir/wandb/offline-run-*`. Project: `WANDB_PROJECT`, default `agentrl`;
- mlflow: a file store in `run_dir/mlruns` (`mlflow ui --backend-store-uri run_dir/mlruns`), unless
  `MLFLOW_TRACKING_URI` names another store or server. Experiment: `MLFLOW_EXPERIMENT_NAME`, default `agentrl`;
- trackio: its local store (`TRACKIO_DIR`, default `~/.cache/huggingface/trackio`; trackio keeps every project in
  one place for its dashboard, `trackio show --project agentrl`).

Each tracker's run id is kept in `run_dir/trackers.json`, so `train.resume=true` continues the same tracker run.
One class per tracker behind the small `Tracker` protocol; a missing library is a `UsageError` naming the extra.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from agentrl.core.errors import UsageError
from agentrl.core.io import atomic_write_text

TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
STATE_FILE = "trackers.json"
_MODULE = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


class Tracker(Protocol):
    """What `MetricsLogger` drives: one metric row per step, files as artifacts, and a close at the end."""

    name: str

    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def artifact(self, path: Path) -> None:
        """Attach a file (the HTML report); a tracker without artifacts does nothing."""

    def close(self) -> None: ...


def check_trackers(names: Iterable[str], option: str = "train.report_to") -> None:
    """Before any model loads: every named tracker is known and its library is installed."""
    for name in names:
        if name not in _MODULE:
            raise UsageError(f"{option}: unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(_MODULE[name]) is None:
            raise UsageError(
                f"{option} names {name}, but the {_MODULE[name]} package is not installed: "
                f"pip install 'agentrl[{name}]'"
            )


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys ({'ppo': {'epochs': 2}} -> {'ppo.epochs': 2}): hyperparameters."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def open_trackers(
    names: Iterable[str], run_dir: str | Path, config: dict[str, Any] | None = None, *, resume: bool = False
) -> list[Tracker]:
    """One open tracker per name, in order. `resume`: continue the tracker runs recorded in trackers.json."""
    names = list(dict.fromkeys(names))
    check_trackers(names)
    run_dir = Path(run_dir)
    state_path = run_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if resume and state_path.exists() else {}
    config = config or {}
    opened: list[Tracker] = []
    try:
        for name in names:
            tracker = _CLASSES[name](run_dir, config, state.get(name))
            state[name] = tracker.run_id
            opened.append(tracker)
    except BaseException:
        for t in opened:
            t.close()
        raise
    if opened:
        atomic_write_text(state_path, json.dumps(state, indent=2) + "\n")
    return opened


def _run_name(run_dir: Path) -> str:
    """A tracker run's name: the run directory's, with the start time (many runs are called runs/default)."""
    return f"{run_dir.resolve().name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"


class TensorBoardTracker:
    """Scalars and the config (the HParams plugin, and as text) in `run_dir/tb`; TensorBoard has no artifacts."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, config: dict[str, Any], run_id: str | None):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.run_id = run_id or _run_name(run_dir)
        self.writer = SummaryWriter(str(run_dir / "tb"))
        flat = {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v) for k, v in flatten(config).items()}
        if flat and run_id is None:  # a resumed run already wrote them
            file_writer = self.writer.file_writer
            assert file_writer is not None, "SummaryWriter opens its file writer in __init__"
            for summary in hparams(flat, {}):  # in this run's own event file, not a subdirectory as add_hparams does
                file_writer.add_summary(summary)
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def artifact(self, path: Path) -> None:
        pass

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A W&B run, offline unless WANDB_MODE says otherwise, its files under `run_dir/wandb`."""

    name = "wandb"

    def __init__(self, run_dir: Path, config: dict[str, Any], run_id: str | None):
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "agentrl"),
            name=_run_name(run_dir) if run_id is None else None,
            id=run_id,
            resume="allow" if run_id else None,
            dir=str(run_dir),
            # wandb.init checks the value
            mode=cast(Literal["online", "offline", "disabled", "shared"], os.environ.get("WANDB_MODE", "offline")),
            config=config,
            reinit="create_new",  # several runs in one process (SFT then RL, tests) stay apart
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True),
        )
        self.run_id = self.run.id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def artifact(self, path: Path) -> None:
        import wandb

        art = wandb.Artifact(f"{self.run.id}-{path.stem}", type=path.stem)
        art.add_file(str(path))
        self.run.log_artifact(art)

    def close(self) -> None:
        self.run.finish()


_MLFLOW_NAME = re.compile(r"[^\w\-. /]")  # what MLflow allows in metric and param names


@contextmanager
def _file_store_allowed():
    """MLflow 3 refuses its file store (in maintenance, not removed) unless MLFLOW_ALLOW_FILE_STORE is set; the
    store is checked once, when the client is made."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def mlflow_uri(run_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()


class MlflowTracker:
    """An MLflow run through `MlflowClient` (no global active run): a file store in `run_dir/mlruns` by default."""

    name = "mlflow"

    def __init__(self, run_dir: Path, config: dict[str, Any], run_id: str | None):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        with _file_store_allowed():
            self.client = MlflowClient(tracking_uri=mlflow_uri(run_dir))
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return
        exp_name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "agentrl")
        exp = self.client.get_experiment_by_name(exp_name)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(exp_name)
        self.run_id = self.client.create_run(exp_id, run_name=_run_name(run_dir)).info.run_id
        params = [
            Param(_MLFLOW_NAME.sub("_", k)[:250], (v if isinstance(v, str) else json.dumps(v))[:6000])
            for k, v in flatten(config).items()
        ]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(datetime.datetime.now().timestamp() * 1000)
        batch = [Metric(_MLFLOW_NAME.sub("_", k), v, ts, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):  # at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class TrackioTracker:
    """A trackio run in its local store (TRACKIO_DIR); no Space, no server."""

    name = "trackio"

    def __init__(self, run_dir: Path, config: dict[str, Any], run_id: str | None):
        import trackio

        self.run_id = run_id or _run_name(run_dir)
        self.run = trackio.init(
            project=os.environ.get("TRACKIO_PROJECT", "agentrl"),
            name=self.run_id,
            config=flatten(config),
            resume="allow" if run_id else "never",
            embed=False,
            auto_log_gpu=False,
            auto_log_cpu=False,
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def artifact(self, path: Path) -> None:
        self.run.log_artifact(str(path), name=f"{self.run_id}-{path.stem}", type=path.stem)

    def close(self) -> None:
        self.run.finish()


_CLASSES: dict[str, Any] = {
    "tensorboard": TensorBoardTracker,
    "wandb": WandbTracker,
    "mlflow": MlflowTracker,
    "trackio": TrackioTracker,
}


def numeric(row: dict[str, Any]) -> dict[str, float]:
    """The values trackers plot: numbers (bools as 0/1; NaN and inf kept, each tracker shows them as it does);
    strings and lists left out."""
    out = {}
    for k, v in row.items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)) and k != "step":
            out[k] = float(v)
    return out
