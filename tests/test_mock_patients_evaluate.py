"""Transcript evaluation: metrics, per-line errors with line numbers, JSON and HTML reports."""

from __future__ import annotations

import json

import pytest

from mock_patients.cases import shipped_cases
from mock_patients.evaluate import evaluate_file
from mock_patients.patient import RuleBasedPatient


def _dialog(case, doctor_turns, doctor="human", **extra):
    p = RuleBasedPatient(case)
    msgs = [{"role": "system", "content": "You are a doctor."}, {"role": "user", "content": p.opening()}]
    for t in doctor_turns:
        msgs.append({"role": "assistant", "content": t})
        if not t.startswith("DIAGNOSIS"):
            msgs.append(
                {"role": "user", "content": p.answer(t).text if not t.startswith("REQUEST") else "Result — ..."}
            )
    return {"case_id": case.id, "doctor": doctor, "messages": msgs, **extra}


def test_metrics_and_reports(tmp_path):
    case = (
        next(c for c in shipped_cases("test") if c.diagnosis_id == "uti")
        if any(c.diagnosis_id == "uti" for c in shipped_cases("test"))
        else shipped_cases("test")[0]
    )
    good = _dialog(
        case,
        ["Does it burn when you urinate?", "REQUEST TEST: urinalysis", f"DIAGNOSIS: {case.diagnosis.upper()}"],
        doctor="a",
    )
    wander = _dialog(
        case,
        ["Did you have a nice weekend?", "What brings you in?", "What brings you in?", "DIAGNOSIS: migraine"],
        doctor="b",
    )
    path = tmp_path / "d.jsonl"
    lines = [
        json.dumps(good),
        "{broken",
        json.dumps({"case_id": "no-such-case", "messages": [{"role": "user", "content": "x"}]}),
        json.dumps({"messages": [{"role": "user", "content": "x"}]}),
        json.dumps(wander),
        json.dumps({"case_id": case.id, "messages": [{"role": "surgeon", "content": "x"}]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    rep = evaluate_file(path, out_json=tmp_path / "r.json", out_html=tmp_path / "r.html")
    assert [e.line for e in rep.errors] == [2, 3, 4, 6]
    assert "invalid JSON" in rep.errors[0].error
    assert "unknown case_id 'no-such-case'" in rep.errors[1].error
    assert "case_id" in rep.errors[2].error and "role" in rep.errors[3].error
    a, b = rep.dialogs
    assert (a.line, b.line) == (1, 5)
    assert a.correct and a.stated_diagnosis == case.diagnosis.upper() and a.turns_to_diagnosis == 3
    assert a.questions == 1 and a.tests == 1
    assert not b.correct and b.repeated == 1 and b.irrelevant == 1 and b.repeated_rate == pytest.approx(1 / 3)
    assert a.probability_by_turn[0] == pytest.approx(b.probability_by_turn[0])  # same opening
    assert len(a.probability_by_turn) == 4 and a.final_probability > a.prior_probability
    assert 0 < b.key_fact_recall < 1
    assert rep.summary.accuracy == 0.5 and set(rep.by_doctor) == {"a", "b"}
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["summary"]["dialogs"] == 2 and len(saved["errors"]) == 4
    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "line" in html and "unknown case_id" in html


def test_inline_case_and_a_diagnosis_field_the_doctor_never_said(tmp_path):
    # issue 27: a record's own `diagnosis` key is not scored; only the doctor's DIAGNOSIS turn is
    case = shipped_cases()[7]
    d = _dialog(case, ["Any fever?"])
    del d["case_id"]
    d["case"] = case.model_dump()
    d["diagnosis"] = case.diagnosis
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(d) + "\n")
    rep = evaluate_file(path, cases=[])
    assert not rep.errors and not rep.dialogs[0].correct and rep.dialogs[0].stated_diagnosis is None
    assert rep.dialogs[0].turns_to_diagnosis is None


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="transcript file not found"):
        evaluate_file(tmp_path / "nope.jsonl")
