"""`agentrl consult run | evaluate` through the argparse sub-parser the agentrl CLI registers."""

from __future__ import annotations

import argparse
import json

import pytest

from environments.consultation.cli import register, run_dialogs


def _parse(argv, **kw):
    ap = argparse.ArgumentParser()
    register(ap.add_subparsers(dest="command", required=True), **kw)
    return ap.parse_args(argv)


def test_run_then_evaluate(tmp_path, capsys):
    out = tmp_path / "d.jsonl"
    args = _parse(["consult", "run", "--doctor", "scripted:good", "--cases", "3", "--out", str(out)])
    assert args.fn(args) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 3 and all(r["doctor"] == "scripted:good" and r["messages"][0]["role"] == "system" for r in recs)
    assert all("reward_breakdown" in r and r["disclosed_facts"] for r in recs)
    with out.open("a") as f:
        f.write("not json\n")
    args = _parse(["consult", "evaluate", str(out), "--out-html", str(tmp_path / "r.html")])
    assert args.fn(args) == 1  # one bad line: reported, the rest scored
    err = capsys.readouterr().err
    assert f"{out}:4: invalid JSON" in err and "3 dialogs: accuracy" in err
    rep = json.loads((tmp_path / "d.eval.json").read_text())
    assert rep["summary"]["dialogs"] == 3 and rep["errors"][0]["line"] == 4
    assert (tmp_path / "r.html").exists()


def test_model_doctor_goes_through_the_factory():
    class ScriptedChatModel:
        """Test stand-in for a doctor model: asks one question, then diagnoses."""

        def __init__(self):
            self.calls = 0

        def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None):
            self.calls += 1
            return "Do you have a fever?" if self.calls % 2 else "DIAGNOSIS: influenza"

        def complete_batch(self, batch, **kw):
            return [self.complete(m, **kw) for m in batch]

    made = []
    recs = run_dialogs("my-model", 2, make_chat_model=lambda name: made.append(name) or ScriptedChatModel())
    assert made == ["my-model"] and [len(r["messages"]) for r in recs] == [5, 5]
    assert recs[0]["messages"][2] == {"role": "assistant", "content": "Do you have a fever?"}
    with pytest.raises(ValueError, match="needs a chat-model factory"):
        run_dialogs("my-model", 1)
    with pytest.raises(ValueError, match="unknown scripted doctor 'nope'"):
        run_dialogs("scripted:nope", 1)


def test_agentrl_cli_has_consult_through_the_entry_point(tmp_path):
    """The installed `agentrl.commands` entry point wires `consult` into `agentrl` itself."""
    from agentrl.cli import main

    out = tmp_path / "d.jsonl"
    assert main(["consult", "run", "--doctor", "scripted:wander", "--cases", "2", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2
    assert main(["consult", "run", "--doctor", "scripted:nobody", "--cases", "1", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert not (tmp_path / "x.jsonl").exists()  # nothing half-written on a bad doctor name
