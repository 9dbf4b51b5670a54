"""Experiment trackers (train/trackers.py): each with its real library writing to a temporary directory, read back
with that library's own reader (TensorBoard's event loader, MLflow's client, trackio's storage) or, for W&B, the
offline run file decoded record by record with wandb's own protobuf classes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentrl.core.errors import UsageError
from agentrl.train import trackers
from agentrl.train.metrics import MetricsLogger
from tests.run_helpers import cli

CONFIG = {"model": "tiny-random", "ppo": {"epochs": 2, "clip_low": 0.2}, "train": {"report_to": ["mlflow"]}}
ROWS = [(0, {"eval/success_rate": 0.25}), (1, {"reward/mean": 0.5, "loss/policy": -0.1}), (2, {"reward/mean": 0.75})]


def _log_rows(run: Path, names: list[str]) -> Path:
    """MetricsLogger with trackers: three rows, then the 'report' written and attached at close."""
    logger = MetricsLogger(run, report_to=names, config=CONFIG, console=False)

    def report(run_dir: Path) -> Path:
        path = run_dir / "report" / "report.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<html>the report</html>")
        return path

    logger.report = report
    for step, row in ROWS:
        logger.log(step, {**row, "note": "a string is left out"})
    logger.close()
    return run


# --- W&B's offline file: LevelDB-style blocks of protobuf Records (wandb/sdk/internal's writer, 0.2x-0.3x) ---
def _wandb_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    records, pos, block, chunks = [], 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(chunks)
            records.append(rec)
            chunks = b""
        elif kind == 0:
            break
    return records


def test_wandb_offline_run_holds_every_metric_the_config_and_the_report(tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="the wandb extra is not installed: pip install 'agentrl[wandb]'")
    run = _log_rows(tmp_path / "run", ["wandb"])
    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"one offline run under run_dir/wandb, found {files}"
    # finish() can return before wandb-core's writer has flushed the last records (seen under heavy CPU load):
    # wait for the exit record, which it writes last
    deadline = time.monotonic() + 60
    recs = _wandb_records(files[0])
    while not any(r.WhichOneof("record_type") == "exit" for r in recs):
        assert time.monotonic() < deadline, "the offline run file never got its exit record"
        time.sleep(0.5)
        recs = _wandb_records(files[0])
    history = {}
    for r in recs:
        if r.WhichOneof("record_type") == "history":
            items = {i.nested_key[0] if i.nested_key else i.key: json.loads(i.value_json) for i in r.history.item}
            history[int(items["_step"])] = items
    assert history[1]["reward/mean"] == 0.5 and history[2]["reward/mean"] == 0.75
    assert history[0]["eval/success_rate"] == 0.25 and "note" not in history[1]
    config = {
        u.key: json.loads(u.value_json)
        for r in recs
        if r.WhichOneof("record_type") in ("run", "config")
        for u in (r.run.config.update if r.WhichOneof("record_type") == "run" else r.config.update)
    }
    assert config["ppo"] == {"epochs": 2, "clip_low": 0.2}, config
    arts = [r.artifact for r in recs if r.WhichOneof("record_type") == "artifact"]
    assert arts and any(e.path == "report.html" for a in arts for e in a.manifest.contents), arts
    state = json.loads((run / "trackers.json").read_text())
    assert files[0].name == f"run-{state['wandb']}.wandb"


def test_mlflow_file_store_under_the_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'agentrl[mlflow]'")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = _log_rows(tmp_path / "run", ["mlflow"])
    from mlflow import MlflowClient

    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    with trackers._file_store_allowed():
        client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "reward/mean")] == [(1, 0.5), (2, 0.75)]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "eval/success_rate")] == [(0, 0.25)]
    assert got.data.params["ppo.epochs"] == "2" and got.data.params["train.report_to"] == '["mlflow"]'
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.html"]
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ, "the opt-in is scoped to making the client"


def test_tensorboard_event_file_holds_scalars_and_hparams(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _log_rows(tmp_path / "run", ["tensorboard"])
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(1, 0.5), (2, 0.75)]
    assert [(e.step, e.value) for e in acc.Scalars("eval/success_rate")] == [(0, 0.25)]
    assert "_hparams_/session_start_info" in acc.summary_metadata, sorted(acc.summary_metadata)
    assert acc.PluginTagToContent("hparams"), "the config as TensorBoard hyperparameters"
    assert "clip_low" in acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()


TRACKIO_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_trackers import _log_rows
run = _log_rows(Path({run!r}), ["trackio"])
from trackio.sqlite_storage import SQLiteStorage
name = json.loads((run / "trackers.json").read_text())["trackio"]
logs = SQLiteStorage.get_logs("agentrl", name)
arts = SQLiteStorage.list_artifacts("agentrl")
got = {{"logs": logs, "config": SQLiteStorage.get_run_config("agentrl", name), "artifacts": arts}}
(run / "got.json").write_text(json.dumps(got, default=str))
"""


def test_trackio_local_store(tmp_path: Path) -> None:
    """In a subprocess: trackio fixes its store (TRACKIO_DIR) when first imported."""
    pytest.importorskip("trackio", reason="the trackio extra is not installed: pip install 'agentrl[trackio]'")
    root = str(Path(__file__).resolve().parents[1])
    script = textwrap.dedent(TRACKIO_SCRIPT.format(root=root, run=str(tmp_path / "run")))
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads((tmp_path / "run" / "got.json").read_text())
    by_step = {r["step"]: r for r in got["logs"]}
    assert by_step[1]["reward/mean"] == 0.5 and by_step[2]["reward/mean"] == 0.75
    assert by_step[0]["eval/success_rate"] == 0.25
    assert got["config"]["ppo.epochs"] == 2
    assert any("report" in json.dumps(a) for a in got["artifacts"]), got["artifacts"]
    assert (tmp_path / "trackio" / "agentrl.db").is_file()


def test_unknown_or_missing_tracker_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="unknown tracker 'neptune'"):
        trackers.check_trackers(["neptune"])
    monkeypatch.setitem(trackers._MODULE, "wandb", "agentrl_no_such_package_xyz")  # as if wandb were not installed
    with pytest.raises(UsageError, match=r"pip install 'agentrl\[wandb\]'"):
        trackers.check_trackers(["wandb"])


def test_old_tensorboard_key_names_its_replacement() -> None:
    from agentrl.train.config import ConfigError, load_config

    with pytest.warns(FutureWarning, match=r"train.report_to: \[tensorboard\]"):  # a run saved with it resumes
        assert load_config(None, ["train.tensorboard=true"]).train.report_to == ["tensorboard"]
    assert load_config(None, ["train.tensorboard=false"]).train.report_to == []
    with pytest.raises(ConfigError, match=r"train.report_to: \[tensorboard\]"):
        load_config(None, ["train.tensorboard=[wandb]"])
    assert load_config(None, ["train.report_to=[mlflow, mlflow, wandb]"]).train.report_to == ["mlflow", "wandb"]


def test_train_and_sft_cli_log_to_trackers_with_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`agentrl train` and `agentrl sft` end to end: held-out rows and the report reach the trackers."""
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'agentrl[mlflow]'")
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "rl"
    argv = [
        "train",
        "model=tiny-random",
        "env.kwargs.turns=2",
        "algorithm.name=grpo",
        "rollout.groups=1",
        "rollout.group_size=2",
        "rollout.max_new_tokens=4",
        "rollout.constrained=true",
        "ppo.minibatch_size=2",
        "ppo.micro_batch_size=2",
        "ppo.skip_zero_advantage=false",  # the one group may tie: its rows still run, so the mismatch is measured
        "train.updates=2",
        "train.eval_every=1",
        "train.eval_tasks=2",
        "train.log_episodes=1",
        "train.report_to=[mlflow, tensorboard]",
        f"train.run_dir={run}",
    ]
    rc, err = cli(argv, capsys)
    assert rc == 0, err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows[1:]:  # every update logs the group spread, errored rollouts and the sampler/trainer mismatch
        assert 0.0 <= row["groups/frac_reward_zero_std"] <= 1.0 and row["logprob/mismatch_kl"] >= 0.0, row
        assert row["episode/outcome/env_error"] == 0.0 and "episode/outcome/timed_out" in row
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    with trackers._file_store_allowed():
        client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    held_out = [(m.step, m.value) for m in client.get_metric_history(run_id, "eval/success_rate")]
    assert held_out == [(r["step"], r["eval/success_rate"]) for r in rows if "eval/success_rate" in r]
    assert [m.step for m in client.get_metric_history(run_id, "reward/mean")] == [1, 2]
    assert client.get_run(run_id).data.params["algorithm.name"] == "grpo"
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.html"]
    assert (run / "report" / "report.html").is_file() and "report:" in err
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("reward/mean")] == [1, 2]

    sft = tmp_path / "sft"
    argv = ["sft", "--from", "scripted:gold", "--env", "agentrl/CreditChain-v0", "--env-kwargs", '{"turns": 2}']
    argv += ["--episodes", "4", "--model", "tiny-random", "--epochs", "1", "--batch-size", "4"]
    rc, err = cli([*argv, "--out", str(sft), "--report-to", "mlflow"], capsys)
    assert rc == 0, err
    run_id = json.loads((sft / "trackers.json").read_text())["mlflow"]
    with trackers._file_store_allowed():
        client = MlflowClient(tracking_uri=(sft / "mlruns").resolve().as_uri())
    assert [m.step for m in client.get_metric_history(run_id, "loss/sft")] == [1]
    assert client.get_run(run_id).data.params["data.source"] == "scripted:gold"
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.html"]
    rc, err = cli([*argv, "--out", str(tmp_path / "x"), "--report-to", "mlflow,neptune"], capsys)
    assert rc == 2 and "unknown tracker 'neptune'" in err, err


def test_resume_continues_the_same_tracker_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'agentrl[mlflow]'")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    (first,) = trackers.open_trackers(["mlflow"], run, CONFIG)
    first.log(1, {"reward/mean": 0.5})
    first.close()
    (again,) = trackers.open_trackers(["mlflow"], run, CONFIG, resume=True)
    again.log(2, {"reward/mean": 0.75})
    again.close()
    assert again.run_id == first.run_id
    hist = again.client.get_metric_history(first.run_id, "reward/mean")
    assert [(m.step, m.value) for m in hist] == [(1, 0.5), (2, 0.75)]
    (fresh,) = trackers.open_trackers(["mlflow"], run, CONFIG)  # not resuming: a new tracker run
    fresh.close()
    assert fresh.run_id != first.run_id


def test_a_failing_tracker_stand_in_is_dropped_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tracker whose library fails mid-run (a stand-in raising OSError: a full disk, a dead server) is dropped
    with one warning; the run's other trackers and metrics.jsonl get every row, and closing does not raise."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class BrokenTracker:
        calls = 0

        def log(self, step: int, metrics: dict[str, float]) -> None:
            BrokenTracker.calls += 1
            raise OSError("No space left on device")

        def artifact(self, path: Path) -> None:
            raise AssertionError("a dropped tracker gets nothing more")

        def close(self) -> None:
            raise AssertionError("a dropped tracker gets nothing more")

    run = tmp_path / "run"
    logger = MetricsLogger(run, report_to=["tensorboard"], config={"a": 1}, console=False)
    logger.trackers.append(BrokenTracker())
    for step in (1, 2, 3):
        logger.log(step, {"reward/mean": step / 4})
    logger.close()
    assert BrokenTracker.calls == 1 and logger.failed_trackers == ["BrokenTracker"]
    assert capsys.readouterr().err.count("BrokenTracker failed to log (OSError: No space left on device)") == 1
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("reward/mean")] == [1, 2, 3]
