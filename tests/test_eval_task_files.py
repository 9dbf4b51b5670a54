"""Held-out tasks named in a file (issue 33 part 5): `agentrl eval --tasks FILE`, `train.eval_tasks: FILE` and
`sft --eval-tasks FILE` read the task ids of a JSONL, Parquet or `datasets` file (a `task_id` column) with the real
pyarrow and datasets, and refuse what is not a task of the env, naming the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_helpers import cli

from agentrl.core.errors import UsageError
from agentrl.eval.task_files import read_task_ids
from agentrl.train.config import load_config
from agentrl.train.held_out import HeldOutEval

ENV = "agentrl/ToolUse-v0"
IDS = ["test-t1-004", "test-t1-001", "test-t2-003"]


def _write(tmp_path: Path, kind: str, ids: list) -> Path:
    rows = [{"task_id": t, "note": "x"} for t in ids]
    if kind == "jsonl":
        p = tmp_path / "tasks.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return p
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = tmp_path / "tasks.parquet"
        pq.write_table(pa.Table.from_pylist(rows), p)
        return p
    import datasets

    p = tmp_path / "tasks_ds"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(p))
    return Path(f"{p}:test")


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "datasets"])
def test_every_kind_of_file_gives_its_ids_in_order(tmp_path: Path, kind: str) -> None:
    assert read_task_ids(_write(tmp_path, kind, IDS)) == IDS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"task_id": "a"}\n{"task_id": "a"}\n', "listed twice"),
        ('{"task_id": "a"}\n{"id": "b"}\n', "jsonl:2: a row needs a 'task_id'"),
        ('{"task_id": "a"}\nnot json\n', "jsonl:2"),
        ("", "names no task"),
    ],
)
def test_bad_files_are_refused_naming_the_row(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text(content)
    with pytest.raises(UsageError, match=message):
        read_task_ids(p)


def test_a_parquet_file_without_the_column_and_a_missing_file(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"id": "a"}]), tmp_path / "x.parquet")
    with pytest.raises(UsageError, match="no 'task_id' column"):
        read_task_ids(tmp_path / "x.parquet")
    with pytest.raises(UsageError, match="does not exist"):
        read_task_ids(tmp_path / "nope.jsonl")


def test_agentrl_eval_runs_exactly_the_files_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentrl.cli import main

    path = _write(tmp_path, "parquet", IDS)
    argv = ["eval", "--env", ENV, "--model", "scripted:gold", "--split", "test", "--tasks", str(path)]
    assert main([*argv, "--json", "--per-task"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["task_id"] for o in out["outcomes"]] == IDS and out["tasks"] == 3
    rc, err = cli(["eval", "--env", ENV, "--model", "scripted:gold", "--tasks", str(path), "--episodes", "2"], capsys)
    assert rc == 2 and "give one" in err


def test_an_id_the_env_does_not_have_is_refused_before_any_episode(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "jsonl", [*IDS, "train-t1-999"])
    rc, err = cli(["eval", "--env", ENV, "--model", "scripted:gold", "--split", "test", "--tasks", str(path)], capsys)
    assert rc == 2 and "1 id(s) the env does not have" in err and "train-t1-999" in err


def test_the_held_out_evaluation_of_training_reads_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "datasets", IDS)
    cfg = load_config(
        None,
        [
            "model=tiny-random",
            f"env.id={ENV}",
            "train.eval_every=1",
            f"train.eval_tasks={path}",
            "train.eval_env_kwargs={split: test}",
            f"train.run_dir={tmp_path / 'run'}",
        ],
    )
    assert cfg.train.eval_tasks == str(path)
    from agentrl.core.chat_format import ChatFormatter
    from agentrl.inference.hf import HFPolicy
    from agentrl.inference.models import load_model

    model, tok = load_model("tiny-random")
    from agentrl.rollout.build import resolve_env

    env = resolve_env(ENV, {}).with_kwargs(cfg.train.eval_env_kwargs)
    ev = HeldOutEval.for_training(cfg, HFPolicy(model, tok), ChatFormatter(tok), env)
    assert [t for _, t in ev.tasks] == IDS
