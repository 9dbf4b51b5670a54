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
from pathlib import Path
from typing import Any

from agentrl.core.errors import UsageError
from agentrl.core.table_rows import dataset_dir, need_module
from agentrl.core.tools import format_tool_call

ALLOWED = (
    "a JSONL file (one {'messages': [...]} per line), a .parquet file, or a directory saved by "
    "Hugging Face datasets' save_to_disk (PATH or PATH:SPLIT)"
)


def check_source(path: str | Path) -> None:
    """Before a model loads: PATH is a file or a dataset directory the readers take (a UsageError says what is)."""
    p = Path(path)
    if dataset_dir(path) is not None:
        need_module("datasets")
        return
    if p.is_dir():
        raise UsageError(
            f"--from {p}: the transcript file is a directory, not one saved by datasets' save_to_disk; give {ALLOWED}"
        )
    if not p.is_file():
        raise UsageError(f"--from {p}: the transcript file does not exist; give {ALLOWED}, or scripted:NAME")
    if p.suffix == ".parquet":
        need_module("pyarrow.parquet")


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
