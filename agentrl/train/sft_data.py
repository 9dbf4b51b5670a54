"""Reading SFT dialogs from the files people keep them in: `agentrl sft --from PATH`.

PATH is one of
- a JSONL file, one dialog per line (read bounded: `agentrl.core.bounded`);
- a Parquet file (`*.parquet`, read with pyarrow: `pip install 'agentrl[data]'`);
- a directory written by Hugging Face `datasets`' `save_to_disk` (a Dataset, or a DatasetDict: its `train` split,
  or its only split; `PATH:SPLIT` picks another), read with `datasets.load_from_disk`.

Every row holds a `messages` column (the TRL / NeMo-RL convention): a list of `{role, content}` messages. An
assistant's tool calls may be written in its text as `<tool_call>{...}</tool_call>` (the kit's format) or in
OpenAI's structured form, `tool_calls: [{"type": "function", "function": {"name", "arguments"}}]` with
`arguments` a JSON string or an object; structured calls become the kit's text (`format_tool_call`), after the
message's text, so the model learns exactly what a rollout parses. Content given as a list of parts
(`[{"type": "text", "text": ...}]`) is joined; other parts (images) are refused. A `tools` column (JSON schemas,
or a JSON string of them) goes to the chat template with the system message, as an env's tools do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentrl.core.bounded import MAX_JSON_DEPTH, MAX_LINE_BYTES, iter_jsonl
from agentrl.core.errors import UsageError
from agentrl.core.tools import format_tool_call

ALLOWED = (
    "a JSONL file (one {'messages': [...]} per line), a .parquet file, or a directory saved by "
    "Hugging Face datasets' save_to_disk (PATH or PATH:SPLIT)"
)


def _need(module: str) -> Any:
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


def check_source(path: str | Path) -> None:
    """Before a model loads: PATH is a file or a dataset directory the readers take (a UsageError says what is)."""
    p = Path(path)
    if dataset_dir(path) is not None:
        _need("datasets")
        return
    if p.is_dir():
        raise UsageError(
            f"--from {p}: the transcript file is a directory, not one saved by datasets' save_to_disk; give {ALLOWED}"
        )
    if not p.is_file():
        raise UsageError(f"--from {p}: the transcript file does not exist; give {ALLOWED}, or scripted:NAME")
    if p.suffix == ".parquet":
        _need("pyarrow.parquet")


def iter_rows(
    path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[tuple[str, Any, str | None]]:
    """(where, row, why) per row of any accepted source: `where` names the file and line or row; `why` is set
    (and row None) when a JSONL line could not be read (too long, too deep, not JSON)."""
    found = dataset_dir(path)
    if found is not None:
        yield from _dataset_rows(*found)
        return
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"transcript file {p} does not exist")
    if p.suffix == ".parquet":
        pq = _need("pyarrow.parquet")
        try:
            table = pq.ParquetFile(p)
        except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError) on a file that is not Parquet
            raise ValueError(f"{p}: not a readable Parquet file ({exc})") from None
        if "messages" not in table.schema_arrow.names:
            raise ValueError(f"{p}: no 'messages' column (columns: {', '.join(table.schema_arrow.names)})")
        i = 0
        for batch in table.iter_batches(batch_size=256):
            for row in batch.to_pylist():
                i += 1
                yield f"{p}:row {i}", row, None
        return
    for n, rec, why in iter_jsonl(p, max_line_bytes=max_line_bytes, max_depth=max_depth):
        yield f"{p}:{n}", rec, why


def _dataset_rows(p: Path, split: str | None) -> Iterator[tuple[str, Any, str | None]]:
    datasets = _need("datasets")
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
    if "messages" not in ds.column_names:
        raise ValueError(f"{where}: no 'messages' column (columns: {', '.join(ds.column_names)})")
    for i, row in enumerate(ds):
        yield f"{where}:row {i + 1}", row, None


def _text(content: Any, where: str, i: int, role: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"{where}: message {i} ({role}) has a content part of type {kind!r}; only text parts")
            texts.append(part["text"])
        return "".join(texts)
    raise ValueError(
        f"{where}: message {i} ({role}) has no text content (a string, or a list of text parts; tool calls as "
        "<tool_call>{...}</tool_call> in the text or OpenAI's tool_calls list)"
    )


def _call_text(call: Any, where: str, i: int) -> str:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ValueError(
            f"{where}: message {i} has a tool call without function.name; OpenAI's form is "
            '{"type": "function", "function": {"name": ..., "arguments": ...}}'
        )
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise ValueError(
                f"{where}: message {i}: tool call {fn['name']!r} has arguments that are not JSON"
            ) from None
    if not isinstance(args, dict):
        raise ValueError(f"{where}: message {i}: tool call {fn['name']!r} has arguments that are not an object")
    return format_tool_call(fn["name"], args)


def normalize_messages(messages: Any, where: str) -> list[dict[str, Any]]:
    """`messages` with every content a string and structured tool calls written as the kit's text. Messages
    that are not objects are passed on for `split_messages` to name."""
    if not isinstance(messages, list):
        return messages
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            out.append(m)
            continue
        calls = m.get("tool_calls") or []
        if not isinstance(calls, list):
            raise ValueError(f"{where}: message {i}: tool_calls must be a list")
        content = m.get("content")
        text = "" if content is None and calls else _text(content, where, i, m["role"])
        if calls:
            if m["role"] not in ("assistant", "doctor"):
                raise ValueError(f"{where}: message {i} ({m['role']}) has tool_calls; only the assistant calls tools")
            text = "\n".join([t for t in (text.strip(),) if t] + [_call_text(c, where, i) for c in calls])
        out.append({"role": m["role"], "content": text})
    return out


def row_tools(row: dict[str, Any], where: str) -> list[dict[str, Any]] | None:
    """The row's `tools` column (JSON schemas; a JSON string of them too), or None."""
    tools = row.get("tools")
    if tools is None or tools == "" or tools == []:
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError:
            raise ValueError(f"{where}: 'tools' is a string that is not JSON") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ValueError(f"{where}: 'tools' must be a list of JSON schemas (objects)")
    return tools
