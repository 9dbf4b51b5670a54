"""Rows of the files people keep data in: JSONL (read bounded, `core.bounded`), Parquet (pyarrow) and directories
written by Hugging Face `datasets`' `save_to_disk` (a Dataset, or a DatasetDict: its `train` split, or its only
split; `PATH:SPLIT` picks another). `agentrl sft --from` reads dialogs with them (`train/sft_data.py`), the
held-out evaluation task ids (`eval/task_files.py`). pyarrow and datasets are the `data` extra, imported only
when such a file is read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentrl.core.bounded import MAX_JSON_DEPTH, MAX_LINE_BYTES, iter_jsonl
from agentrl.core.errors import UsageError


def need_module(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"reading {module} files needs the data extra: pip install 'agentrl[data]'") from None


def dataset_dir(path: str | Path) -> tuple[Path, str | None] | None:
    """(directory, split) when `path` (or `path` without its `:SPLIT` suffix) is a `save_to_disk` directory."""
    text = str(path)
    candidates: list[tuple[Path, str | None]] = [(Path(text), None)]
    if ":" in text:
        candidates.append((Path(text.rsplit(":", 1)[0]), text.rsplit(":", 1)[1]))
    for p, split in candidates:
        if p.is_dir() and any((p / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return p, split
    return None


def iter_rows(
    path: str | Path,
    *,
    column: str = "messages",
    max_line_bytes: int = MAX_LINE_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Iterator[tuple[str, Any, str | None]]:
    """(where, row, why) per row of any accepted source: `where` names the file and line or row; `why` is set
    (and row None) when a JSONL line could not be read (too long, too deep, not JSON). A Parquet file or a dataset
    without the `column` every row needs is refused whole (a JSONL row without it is the caller's to report)."""
    found = dataset_dir(path)
    if found is not None:
        yield from _dataset_rows(*found, column)
        return
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    if p.suffix == ".parquet":
        pq = need_module("pyarrow.parquet")
        try:
            table = pq.ParquetFile(p)
        except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError) on a file that is not Parquet
            raise ValueError(f"{p}: not a readable Parquet file ({exc})") from None
        if column not in table.schema_arrow.names:
            raise ValueError(f"{p}: no {column!r} column (columns: {', '.join(table.schema_arrow.names)})")
        i = 0
        for batch in table.iter_batches(batch_size=256):
            for row in batch.to_pylist():
                i += 1
                yield f"{p}:row {i}", row, None
        return
    for n, rec, why in iter_jsonl(p, max_line_bytes=max_line_bytes, max_depth=max_depth):
        yield f"{p}:{n}", rec, why


def _dataset_rows(p: Path, split: str | None, column: str) -> Iterator[tuple[str, Any, str | None]]:
    datasets = need_module("datasets")
    ds = datasets.load_from_disk(str(p))
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds)
        if split is None:
            split = "train" if "train" in ds else names[0] if len(names) == 1 else None
        if split not in ds:
            raise ValueError(f"{p}: a DatasetDict with splits {', '.join(names)}; pick one as {p}:SPLIT")
        ds, where = ds[split], f"{p}:{split}"
    elif split is not None:
        raise ValueError(f"{p}: a single Dataset has no split {split!r}; give the directory alone")
    else:
        where = str(p)
    if column not in ds.column_names:
        raise ValueError(f"{where}: no {column!r} column (columns: {', '.join(ds.column_names)})")
    for i, row in enumerate(ds):
        yield f"{where}:row {i + 1}", row, None
