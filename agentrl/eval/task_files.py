"""Held-out tasks named in a file: `train.eval_tasks: PATH` and `agentrl eval --tasks PATH`.

PATH is any file `core/table_rows.py` reads (JSONL, Parquet, a `datasets` save_to_disk directory, `PATH:SPLIT`)
whose rows hold a `task_id` column: the ids of the env's task list (`MultiTurnEnv.task_ids()`) to evaluate, in
the file's order. An id the env does not have, a repeated id or an empty file is refused with the file and row
named, before any episode runs.
"""

from __future__ import annotations

from pathlib import Path

from agentrl.core.errors import UsageError
from agentrl.core.table_rows import iter_rows

COLUMN = "task_id"
ALLOWED = (
    "a JSONL file ({'task_id': ...} per line), a .parquet file or a datasets save_to_disk directory (PATH or "
    "PATH:SPLIT) with a 'task_id' column"
)


def read_task_ids(path: str | Path) -> list[str]:
    """The task ids of `path`, in order (UsageError naming the row on anything else)."""
    try:
        rows = list(iter_rows(path, column=COLUMN))
    except (FileNotFoundError, ValueError) as exc:  # no such file, not Parquet, no task_id column
        raise UsageError(f"held-out tasks: {exc}; give {ALLOWED}") from None
    ids: list[str] = []
    seen: dict[str, str] = {}
    for where, row, why in rows:
        if why is not None:
            raise UsageError(f"{where}: {why}")
        value = row.get(COLUMN) if isinstance(row, dict) else None
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
            raise UsageError(f"{where}: a row needs a {COLUMN!r} (a string or an integer), got {row!r:.80}")
        tid = str(value)
        if tid in seen:
            raise UsageError(f"{where}: task {tid!r} is listed twice (first at {seen[tid]})")
        seen[tid] = where
        ids.append(tid)
    if not ids:
        raise UsageError(f"held-out tasks: {path} names no task; give {ALLOWED}")
    return ids


def check_task_ids(chosen: list[str], available: list[str], path: str | Path) -> None:
    """Every id of the file is one of the env's (`available`)."""
    if not available:
        raise UsageError(f"held-out tasks from {path}: the env has no task list (task_ids() is empty)")
    have = set(available)
    unknown = [t for t in chosen if t not in have]
    if unknown:
        raise UsageError(
            f"held-out tasks from {path}: {len(unknown)} id(s) the env does not have, e.g. {unknown[:3]}; it has "
            f"{len(available)} tasks, e.g. {available[:3]}"
        )
