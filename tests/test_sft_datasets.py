"""`agentrl sft --from` beyond JSONL (train/sft_data.py): Parquet files and `datasets.save_to_disk` directories with
a `messages` column, tool calls in OpenAI's structured form as well as the kit's `<tool_call>` text; each form
must tokenize to exactly the ids of the kit's own text form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.errors import UsageError
from agentrl.core.tools import format_tool_call, parse_tool_calls
from agentrl.train.sft import read_transcripts
from agentrl.train.sft_data import check_source, normalize_messages
from tests.run_helpers import cli

SYSTEM = {"role": "system", "content": "You keep notes. Call tools as <tool_call>{...}</tool_call>."}


def _text_form(k: int) -> list[dict]:
    """A dialog in the kit's own form: tool calls written in the assistant's text."""
    call = format_tool_call("put", {"key": f"k{k}", "value": "v"})
    return [
        SYSTEM,
        {"role": "user", "content": f"store note {k}"},
        {"role": "assistant", "content": f"Storing it.\n{call}"},
        {"role": "tool", "content": f"stored k{k}"},
        {"role": "assistant", "content": "Done."},
    ]


def _openai_form(k: int, args_as_string: bool = True, parts: bool = True) -> list[dict]:
    """The same dialog with OpenAI's structured tool_calls (arguments a JSON string, as the API returns them) and,
    with `parts`, the user's content as a list of text parts (Arrow cannot mix it with string contents)."""
    args = {"key": f"k{k}", "value": "v"}
    user = f"store note {k}"
    return [
        SYSTEM,
        {"role": "user", "content": [{"type": "text", "text": user}] if parts else user},
        {
            "role": "assistant",
            "content": "Storing it.",
            "tool_calls": [
                {
                    "id": f"call_{k}",
                    "type": "function",
                    "function": {"name": "put", "arguments": json.dumps(args) if args_as_string else args},
                }
            ],
        },
        {"role": "tool", "tool_call_id": f"call_{k}", "content": f"stored k{k}"},
        {"role": "assistant", "content": "Done."},
    ]


def _ids(path: str | Path, tiny) -> list[list[int]]:
    demos, stats = read_transcripts(path, ChatFormatter(tiny[1]))
    assert stats["demos/kept"] == len(demos)
    return [d.input_ids for d in demos]


def test_structured_tool_calls_become_the_kits_text(tmp_path: Path, tiny) -> None:
    msgs = normalize_messages(_openai_form(0, args_as_string=False), "here")
    assert msgs == _text_form(0)
    assert parse_tool_calls(msgs[2]["content"])[0].arguments == {"key": "k0", "value": "v"}
    text, structured = tmp_path / "text.jsonl", tmp_path / "openai.jsonl"
    text.write_text("".join(json.dumps({"messages": _text_form(k)}) + "\n" for k in range(3)))
    structured.write_text("".join(json.dumps({"messages": _openai_form(k)}) + "\n" for k in range(3)))
    assert _ids(structured, tiny) == _ids(text, tiny)


def test_parquet_and_saved_datasets_read_as_the_jsonl_does(tmp_path: Path, tiny) -> None:
    datasets = pytest.importorskip("datasets", reason="the data extra is not installed: pip install 'agentrl[data]'")
    pytest.importorskip("pyarrow", reason="the data extra is not installed: pip install 'agentrl[data]'")
    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"messages": _text_form(k)}) + "\n" for k in range(4)))
    want = _ids(text, tiny)
    rows = {"messages": [_openai_form(k, parts=False) for k in range(4)], "extra": list(range(4))}
    ds = datasets.Dataset.from_dict(rows)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dict"))
    assert _ids(tmp_path / "d.parquet", tiny) == want
    assert _ids(tmp_path / "saved", tiny) == want
    assert _ids(tmp_path / "dict", tiny) == want  # a DatasetDict's train split
    assert _ids(f"{tmp_path / 'dict'}:test", tiny) == want[:1]
    with pytest.raises(ValueError, match=r"splits train, test; pick one as .*:SPLIT"):
        _ids(f"{tmp_path / 'dict'}:validation", tiny)
    datasets.Dataset.from_dict({"text": ["a"]}).to_parquet(str(tmp_path / "nomsg.parquet"))
    with pytest.raises(ValueError, match=r"nomsg.parquet: no 'messages' column \(columns: text\)"):
        _ids(tmp_path / "nomsg.parquet", tiny)


def test_tools_column_reaches_the_chat_template(tmp_path: Path) -> None:
    """A `tools` column (TRL's convention) is rendered by the template with the system message, as an env's are."""
    from tests.test_rollout import TOOLS_TEMPLATE, tokenizer_with

    fmt = ChatFormatter(tokenizer_with(TOOLS_TEMPLATE))
    assert fmt.supports_tools
    schema = {"type": "function", "function": {"name": "put", "description": "Store a note.", "parameters": {}}}
    plain, with_tools = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    plain.write_text(json.dumps({"messages": _text_form(0)}) + "\n")
    with_tools.write_text(json.dumps({"messages": _text_form(0), "tools": json.dumps([schema])}) + "\n")
    a, b = read_transcripts(plain, fmt)[0][0], read_transcripts(with_tools, fmt)[0][0]
    assert "Tools: put" in fmt.tok.decode(b.input_ids) and "Tools:" not in fmt.tok.decode(a.input_ids)
    assert a.assistant_tokens == b.assistant_tokens


def test_bad_rows_are_named_with_what_is_allowed(tmp_path: Path, tiny, capsys: pytest.CaptureFixture[str]) -> None:
    bad = [
        {"messages": [SYSTEM, {"role": "assistant", "content": None, "tool_calls": [{"function": {}}]}]},
        {"messages": [SYSTEM, {"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
        {"messages": [SYSTEM, {"role": "assistant", "content": "", "tool_calls": [_call("{oops")]}]},
        {"messages": _text_form(1)},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bad))
    demos, stats = read_transcripts(path, ChatFormatter(tiny[1]))
    err = capsys.readouterr().err
    assert len(demos) == 1 and stats["demos/skipped"] == 3
    assert f"{path}:1: message 1 has a tool call without function.name" in err
    assert f"{path}:2: message 1 (user) has a content part of type 'image_url'; only text parts" in err
    assert f"{path}:3: message 1: tool call 'put' has arguments that are not JSON" in err


def _call(arguments: str) -> dict:
    return {"type": "function", "function": {"name": "put", "arguments": arguments}}


def test_check_source_says_what_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="the transcript file does not exist; give a JSONL file"):
        check_source(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="not one saved by datasets' save_to_disk; give a JSONL file.*parquet"):
        check_source(tmp_path)


def test_sft_cli_trains_from_a_saved_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    datasets = pytest.importorskip("datasets", reason="the data extra is not installed: pip install 'agentrl[data]'")
    datasets.Dataset.from_dict({"messages": [_openai_form(k, parts=False) for k in range(4)]}).save_to_disk(
        str(tmp_path / "ds")
    )
    out = tmp_path / "run"
    argv = ["sft", "--from", str(tmp_path / "ds"), "--model", "tiny-random", "--epochs", "1", "--batch-size", "4"]
    rc, err = cli([*argv, "--out", str(out)], capsys)
    assert rc == 0, err
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["demos/kept"] == 4 and row["step"] == 1 and row["loss/sft"] > 0
