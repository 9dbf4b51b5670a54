"""Hostile SFT data and transcripts (issue 27): bounded reading (a line over the cap is skipped before it is parsed
or tokenized, a line nested too deep is skipped, a non-string role is skipped with its reason; the good lines
load), and SFT runs marked unfinished when killed and resumable with `agentrl sft --resume`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from run_helpers import cli, sft_args

from agentrl.cli import main
from agentrl.core.chat_format import ChatFormatter
from agentrl.train.sft import demos_from_jsonl

MiB = 1 << 20
GOOD = {
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
}


def _dialog(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"say {i}"},
            {"role": "assistant", "content": f"{i}"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": f"{i} {i}"},
        ]
    }


_cli = cli


@pytest.fixture
def small_texts_only(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every tokenizer entry point refuses (fails the test on) a text over 1 MiB: a huge line must be skipped before
    anything tokenizes it (the old code tokenized a 50 MB line whole: 6.57 GB peak). Returns the sizes it saw."""
    from transformers import PreTrainedTokenizerBase

    seen: list[int] = []

    def size(x) -> int:
        if isinstance(x, str):
            return len(x)
        if isinstance(x, dict):
            return sum(size(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(size(v) for v in x)
        return 0

    def guard(real):
        def call(self, *args, **kwargs):
            n = size(args) + size(kwargs.get("text")) + size(kwargs.get("conversation"))
            seen.append(n)
            if n > MiB:
                raise AssertionError(f"a {n:,}-character text reached the tokenizer")
            return real(self, *args, **kwargs)

        return call

    for name in ("__call__", "encode", "apply_chat_template"):
        monkeypatch.setattr(PreTrainedTokenizerBase, name, guard(getattr(PreTrainedTokenizerBase, name)))
    return seen


# -- bounded lines ---------------------------------------------------------------------------------------------------
def test_a_50_mb_line_is_skipped_without_being_tokenized_and_the_good_lines_load(
    tmp_path: Path, tiny, small_texts_only, capsys
) -> None:
    path = tmp_path / "t.jsonl"
    huge = {"messages": [{"role": "user", "content": "x" * (50 * MiB)}, {"role": "assistant", "content": "ok"}]}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(huge) + "\n" + json.dumps(_dialog(1)) + "\n")
    demos = demos_from_jsonl(path, ChatFormatter(tiny[1]))
    assert [d.source for d in demos] == [f"{path}:1", f"{path}:3"]
    err = capsys.readouterr().err
    assert f"{path}:2: 52,428,8" in err and "over the cap of 4,194,304 bytes per line; line skipped" in err
    assert small_texts_only and max(small_texts_only) < MiB


def test_sft_cli_skips_the_huge_line_and_counts_it(tmp_path: Path, small_texts_only, capsys) -> None:
    path = tmp_path / "t.jsonl"
    huge = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "y" * (50 * MiB)}]}
    path.write_text("\n".join(json.dumps(d) for d in [_dialog(1), huge, _dialog(2), _dialog(3)]) + "\n")
    run = tmp_path / "sft"
    rc, err = _cli(
        [
            "sft",
            "--from",
            str(path),
            "--model",
            "tiny-random",
            "--epochs",
            "1",
            "--batch-size",
            "3",
            "--micro-batch-size",
            "3",
            "--out",
            str(run),
        ],
        capsys,
    )
    assert rc == 0, err
    assert f"{path}:2:" in err and "line skipped" in err
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert (first["demos/run"], first["demos/kept"], first["demos/skipped"]) == (4, 3, 1)


def test_a_dialog_too_long_for_max_seq_len_however_it_tokenizes_is_refused_untokenized(
    tmp_path: Path, small_texts_only, capsys
) -> None:
    """Under the line cap but over max_seq_len x the longest token's bytes: refused as a too-long demonstration is,
    without the seconds and the gigabyte tokenizing it would take."""
    path = tmp_path / "t.jsonl"
    long = {"messages": [{"role": "user", "content": "z" * (3 * MiB)}, {"role": "assistant", "content": "ok"}]}
    path.write_text(json.dumps(_dialog(1)) + "\n" + json.dumps(long) + "\n")
    rc, err = _cli(["sft", "--from", str(path), "--model", "tiny-random", "--out", str(tmp_path / "sft")], capsys)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert (
        f"{path}:2: the dialog's text is 3,145,730 bytes" in err
        and "longer than max_seq_len=4096; raise --max-seq-len" in err
    )
    assert max(small_texts_only) < MiB and not (tmp_path / "sft").exists()


def test_a_100000_deep_line_is_skipped_and_the_good_lines_load(tmp_path: Path, tiny, capsys) -> None:
    path = tmp_path / "t.jsonl"
    deep = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(json.dumps(GOOD) + "\n" + deep + "\n" + json.dumps(_dialog(2)) + "\n")
    demos = demos_from_jsonl(path, ChatFormatter(tiny[1]))
    assert len(demos) == 2
    assert f"{path}:2: nested deeper than the cap of 64 levels; line skipped" in capsys.readouterr().err


@pytest.mark.parametrize("role,kind", [(["assistant"], "list"), ({"name": "user"}, "dict")])
def test_a_non_string_role_is_skipped_with_its_reason(tmp_path: Path, tiny, capsys, role, kind) -> None:
    path = tmp_path / "t.jsonl"
    bad = {"messages": [{"role": "user", "content": "q"}, {"role": role, "content": "a"}]}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n")
    assert len(demos_from_jsonl(path, ChatFormatter(tiny[1]))) == 1
    assert (
        f"{path}:2: message 1 has a role of type {kind}; a role is a string, one of assistant"
        in capsys.readouterr().err
    )


def test_a_file_without_a_good_line_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "t.jsonl"
    lines = [{"messages": [{"role": "user", "content": "q"}, {"role": ["x"], "content": "a"}]}, {"no": "messages"}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n" + "[" * 100_000 + "\n")
    rc, err = _cli(["sft", "--from", str(path), "--model", "tiny-random", "--out", str(tmp_path / "sft")], capsys)
    assert rc == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]  # after the three per-line warnings
    assert (
        last.startswith("agentrl sft: error: ")
        and f"{path} holds no usable dialog (3 line(s) skipped; line 1: message 1 has a role of type list" in last
    )
    assert not (tmp_path / "sft").exists()


# -- transcripts and metrics read by the report ---------------------------------------------------------------------
def test_deep_and_huge_episode_and_metrics_lines_cost_only_themselves(tmp_path: Path) -> None:
    from agentrl.core.records import read_records
    from agentrl.report import write_report

    run = tmp_path / "run"
    (run / "episodes").mkdir(parents=True)
    deep = "[" * 100_000 + "]" * 100_000
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "reward/mean": 0.5}\n' + deep + '\n{"step": 2, "reward/mean": 0.7}\n'
    )
    ep = {"step": 2, "uid": 5, "reward": 1.0, "tokens": ["a", "b"], "action_mask": [0, 1], "advantages": [0.0, 0.5]}
    (run / "episodes" / "step_000002.jsonl").write_text(
        json.dumps(ep) + "\n" + '{"uid": ' + deep + "}\n" + json.dumps({**ep, "pad": "z" * (5 * MiB)}) + "\n"
    )
    good, bad = read_records([json.dumps(ep), deep])
    assert [i for i, _ in good] == [1] and bad == [(2, "nested deeper than the cap of 64 levels")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = write_report(run).read_text()
    msgs = [str(w.message) for w in caught]
    assert any("metrics.jsonl: skipping unreadable line 2: nested deeper" in m for m in msgs), msgs
    assert any("line 2: nested deeper" in m for m in msgs) and any("line 3: 5,2" in m for m in msgs), msgs
    assert "uid 5" in page and "updates logged</td><td>2" in page


# -- SFT runs: marked, killed, resumed ------------------------------------------------------------------------------
class _Killed(Exception):
    pass


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(_dialog(i)) + "\n" for i in range(8)))
    return data


def _kill_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    import agentrl.train.sft as sft

    real, calls = sft.sft_step, [0]

    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] > steps:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(sft, "sft_step", dying)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from agentrl.core.checkpoint import latest_checkpoint

    return load_file(str(latest_checkpoint(run) / "model" / "model.safetensors"))


def test_a_killed_sft_run_is_marked_unfinished_and_resumes_to_the_uninterrupted_result(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from agentrl.train.run_dir import read_marker, unfinished_warning

    data = _data(tmp_path)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    rc, err = _cli(sft_args(data, whole), capsys)
    assert rc == 0, err
    assert read_marker(whole)["status"] == "finished" and read_marker(whole)["kind"] == "sft"
    with monkeypatch.context() as m:
        _kill_after(m, 3)
        with pytest.raises(_Killed):
            main(sft_args(data, cut))
    capsys.readouterr()
    marker = read_marker(cut)
    assert marker["status"] == "running"
    msg = unfinished_warning(cut, cut / "checkpoints" / "step_000003")
    assert msg is not None and f"run {cut} did not finish" in msg and "step 3" in msg
    # a changed option is refused, naming it; resuming with the same ones finishes the run
    args = sft_args(data, cut, "--resume")
    bad = [a if a != "1e-3" else "5e-3" for a in args]
    rc, err = _cli(bad, capsys)
    assert rc == 2 and "lr: 0.001 -> 0.005" in err and len(err.splitlines()) == 1, err
    rc, err = _cli(args, capsys)
    assert rc == 0, err
    assert "resumed after step 3" in err
    steps = [json.loads(line)["step"] for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_marker(cut)["status"] == "finished" and read_marker(cut)["resumes"] == 1


def test_sft_resume_refuses_other_data_and_other_kinds(tmp_path: Path, monkeypatch, capsys) -> None:
    data = _data(tmp_path)
    run = tmp_path / "cut"
    with monkeypatch.context() as m:
        _kill_after(m, 2)
        with pytest.raises(_Killed):
            main(sft_args(data, run))
    data.write_text("".join(json.dumps(_dialog(i + 1)) + "\n" for i in range(8)))  # same file, other dialogs
    rc, err = _cli(sft_args(data, run, "--resume"), capsys)
    assert rc == 2 and "the demonstrations differ from the ones" in err, err
    rc, err = _cli(sft_args(data, run, "--resume", "--overwrite"), capsys)
    assert rc == 2 and "contradict each other" in err
    train_run = tmp_path / "rl"
    train_run.mkdir()
    (train_run / "agentrl_run.json").write_text('{"kind": "train", "status": "running"}\n')
    (train_run / "metrics.jsonl").write_text('{"step": 1}\n')
    rc, err = _cli(sft_args(data, train_run, "--resume"), capsys)
    assert (
        rc == 2 and "holds a train run, not an sft run; resume it with agentrl train with train.resume=true" in err
    ), err
