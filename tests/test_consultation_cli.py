"""`agentrl consult run | evaluate` through the argparse sub-parser the agentrl CLI registers."""

from __future__ import annotations

import argparse
import json

import pytest
from public_records import (
    mediq,
    nejm,
    osce,
    osce_empty_symptoms,
    osce_outside_table,
    write_jsonl,
)

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
    assert (
        main(["consult", "run", "--doctor", "scripted:nobody", "--cases", "1", "--out", str(tmp_path / "x.jsonl")]) == 2
    )
    assert not (tmp_path / "x.jsonl").exists()  # nothing half-written on a bad doctor name


def test_run_and_evaluate_an_agentclinic_file(tmp_path, capsys):
    """`consult run --cases FILE` takes a public AgentClinic file directly (bad record skipped and reported,
    a diagnosis outside the knowledge table scored by name), and `consult evaluate` reports accuracy on it."""
    cases = write_jsonl(tmp_path / "agentclinic_small.jsonl", [osce(), osce_empty_symptoms(), osce_outside_table()])
    out = tmp_path / "d.jsonl"
    args = _parse(["consult", "run", "--doctor", "scripted:good", "--cases", str(cases), "--out", str(out)])
    assert args.fn(args) == 0
    err = capsys.readouterr().err
    assert f"cases: {cases} (agentclinic): loaded 2/3; line 2: Symptoms.Primary_Symptom is missing" in err
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["case_id"] for r in recs] == ["agentclinic-0001", "agentclinic-0003"]
    assert all(r["terminated"] or r["truncated"] for r in recs) and all(r["diagnosis"] for r in recs)
    assert "diagnosis_probability" not in recs[1]["reward_breakdown"]  # myasthenia gravis: n/a, not 0
    args = _parse(["consult", "evaluate", str(out), "--cases", str(cases)])
    assert args.fn(args) == 0
    err = capsys.readouterr().err
    assert "2 dialogs: accuracy " in err and "(1/2 dialogs)" in err
    rep = json.loads((tmp_path / "d.eval.json").read_text())
    assert rep["summary"]["dialogs"] == 2 and 0.0 <= rep["summary"]["accuracy"] <= 1.0 and rep["diagnoser"] == "match"
    assert rep["dialogs"][1]["final_probability"] is None and "n/a" in (tmp_path / "d.eval.html").read_text()
    args = _parse(
        [
            "consult",
            "run",
            "--doctor",
            "scripted:good",
            "--cases",
            str(cases),
            "--strict",
            "--out",
            str(tmp_path / "x.jsonl"),
        ]
    )
    with pytest.raises(ValueError, match="strict"):
        args.fn(args)
    assert not (tmp_path / "x.jsonl").exists()
    args = _parse(
        [
            "consult",
            "run",
            "--doctor",
            "scripted:good",
            "--cases",
            str(cases),
            "--diagnoser",
            "bayes",
            "--out",
            str(out),
        ]
    )
    with pytest.raises(ValueError, match="outside the knowledge table"):
        args.fn(args)


def test_run_takes_nejm_and_mediq_files(tmp_path, capsys):
    n = write_jsonl(tmp_path / "nejm.jsonl", [nejm(), nejm("Hodgkin lymphoma")])
    recs = run_dialogs("scripted:wander", None, cases=str(n))
    assert [r["case_id"] for r in recs] == ["nejm-0001", "nejm-0002"]
    m = write_jsonl(
        tmp_path / "mq.jsonl",
        [
            mediq(1, "What is the most likely diagnosis?", "Septic arthritis"),
            mediq(2, "Which of the following is the next best step?", "Arthrocentesis"),
        ],
    )
    out = tmp_path / "d.jsonl"
    args = _parse(["consult", "run", "--doctor", "scripted:wander", "--cases", str(m), "--n", "5", "--out", str(out)])
    assert args.fn(args) == 0
    assert "loaded 1/2; 1 not diagnosis questions (next_step 1)" in capsys.readouterr().err
    assert [json.loads(x)["case_id"] for x in out.read_text().splitlines()] == ["mediq-1"]
    args = _parse(["consult", "run", "--doctor", "scripted:good", "--cases", "3", "--n", "2", "--out", str(out)])
    with pytest.raises(ValueError, match="give the number of cases once"):
        args.fn(args)


def test_diagnoser_options(tmp_path, capsys):
    class Judge:
        """Test stand-in for a diagnoser model: every candidate gets 50."""

        def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None):
            return "50"

        def complete_batch(self, batch, **kw):
            return [self.complete(m, **kw) for m in batch]

    made = []
    factory = lambda name: made.append(name) or Judge()  # noqa: E731
    cases = write_jsonl(tmp_path / "ac.jsonl", [osce_outside_table()])
    out = tmp_path / "d.jsonl"
    argv = ["consult", "run", "--doctor", "scripted:wander", "--cases", str(cases), "--out", str(out)]
    args = _parse(
        argv + ["--diagnoser", "llm", "--diagnoser-model", "judge@http://localhost:1/v1"], make_chat_model=factory
    )
    assert args.fn(args) == 0 and made == ["judge@http://localhost:1/v1"]
    rec = json.loads(out.read_text())
    assert rec["reward_breakdown"]["diagnosis_probability"] == pytest.approx(0.5)
    args = _parse(
        ["consult", "evaluate", str(out), "--cases", str(cases), "--diagnoser", "llm", "--diagnoser-model", "j2"],
        make_chat_model=factory,
    )
    assert args.fn(args) == 0 and made[-1] == "j2"
    assert json.loads((tmp_path / "d.eval.json").read_text())["dialogs"][0]["final_probability"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="--diagnoser llm needs --diagnoser-model MODEL"):
        args = _parse(argv + ["--diagnoser", "llm"])
        args.fn(args)
    with pytest.raises(ValueError, match="--diagnoser-model is only for --diagnoser llm"):
        args = _parse(["consult", "evaluate", str(out), "--diagnoser-model", "x"])
        args.fn(args)
    with pytest.raises(SystemExit):
        _parse(argv + ["--diagnoser", "oracle"])
    assert "invalid choice: 'oracle'" in capsys.readouterr().err


# ---- `consult run` is `agentrl eval` (issue 32, item 6): same episodes, same table ------------------------------


def _eval_and_consult(capsys, eval_argv: list[str], consult_argv: list[str]) -> tuple[str, str, list[dict]]:
    """stdout of `agentrl eval` and of `agentrl consult run` (each run through agentrl's own CLI), and the dialogs."""
    from agentrl.cli import main

    assert main(eval_argv) == 0
    eval_out = capsys.readouterr().out
    assert main(consult_argv) == 0
    consult_out = capsys.readouterr().out
    out = consult_argv[consult_argv.index("--out") + 1]
    return eval_out, consult_out, [json.loads(x) for x in open(out).read().splitlines()]


def test_consult_run_prints_what_agentrl_eval_prints_on_a_public_case_file(tmp_path, capsys):
    cases = write_jsonl(tmp_path / "ac.jsonl", [osce(), osce_outside_table(), osce("Acute bronchitis")])
    out = tmp_path / "d.jsonl"
    kwargs = {"cases": str(cases), "split": "test", "patient": "rule", "diagnoser": "match"}
    for doctor in ("scripted:good", "scripted:wander"):
        eval_out, consult_out, recs = _eval_and_consult(
            capsys,
            ["eval", "--env", "agentrl/Consultation-v0", "--model", doctor, "--temperature", "0"]
            + ["--env-kwargs", json.dumps(kwargs)],
            ["consult", "run", "--doctor", doctor, "--cases", str(cases), "--out", str(out)],
        )
        assert consult_out == eval_out and "tasks x trials   3 x 1" in eval_out
        per_task = json.loads(_eval_json(capsys, doctor, kwargs))["outcomes"]
        assert [r["case_id"] for r in recs] == [o["task_id"] for o in per_task]
        assert [r["reward"] for r in recs] == [o["rewards"][0] for o in per_task]
        assert [r["success"] for r in recs] == [o["successes"][0] for o in per_task]


def _eval_json(capsys, model: str, kwargs: dict, *extra: str) -> str:
    from agentrl.cli import main

    argv = ["eval", "--env", "agentrl/Consultation-v0", "--model", model, "--temperature", "0", "--json"]
    assert main([*argv, "--per-task", "--env-kwargs", json.dumps(kwargs), *extra]) == 0
    return capsys.readouterr().out


def test_an_endpoint_doctor_and_an_llm_patient_run_the_same_through_both(tmp_path, capsys, monkeypatch):
    """A chat-endpoint doctor (`agentrl eval --model M@http://...`, a text agent) and an LLM patient (tiny-random:
    `--simulator` / `--patient-model`): the same dialogs and the same table."""
    import agentrl.sim.models as sim_models

    real = sim_models.make_chat_model

    class Doctor:
        """Test stand-in for an endpoint: asks about fever, then diagnoses; says which seed it was asked with."""

        def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None):
            asked = sum(m["role"] == "assistant" for m in messages)
            return f"Do you have a fever? ({seed})" if asked == 0 else "DIAGNOSIS: community-acquired pneumonia"

    made: list[str] = []
    monkeypatch.setattr(
        sim_models,
        "make_chat_model",
        lambda name, **kw: made.append(name) or (Doctor() if "@http" in name else real(name, **kw)),
    )
    doctor = "doc@http://127.0.0.1:9/v1"
    out = tmp_path / "d.jsonl"
    eval_out, consult_out, recs = _eval_and_consult(
        capsys,
        ["eval", "--env", "agentrl/Consultation-v0", "--model", doctor, "--temperature", "0", "--episodes", "2"]
        + ["--env-kwargs", json.dumps({"split": "test", "patient": "llm", "diagnoser": "match", "max_turns": 3})]
        + ["--simulator", "tiny-random", "--max-new-tokens", "16"],
        ["consult", "run", "--doctor", doctor, "--cases", "2", "--patient", "llm", "--patient-model", "tiny-random"]
        + ["--max-turns", "3", "--max-new-tokens", "16", "--out", str(out)],
    )
    assert consult_out == eval_out and "simulator        tiny-random" in eval_out
    assert sorted(made) == sorted(["tiny-random", doctor] * 2)  # each model made once per run
    assert [r["messages"][2]["content"] for r in recs] == ["Do you have a fever? (0)", "Do you have a fever? (1)"]
    assert all(r["messages"][3]["role"] == "user" and r["messages"][3]["content"] for r in recs)  # the LLM patient
