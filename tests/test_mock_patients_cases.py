"""Case bank, knowledge table and generator: schema errors, determinism, coverage, no diagnosis in facts."""

from __future__ import annotations

import json

import pytest

from mock_patients.cases import (
    SHIPPED,
    CaseFileError,
    KeyFact,
    PatientCase,
    load_cases,
    save_cases,
    shipped_cases,
)
from mock_patients.generate import generate
from mock_patients.generate import main as generate_main
from mock_patients.knowledge import default_table
from mock_patients.names import LeakFilter, accepted_names, diagnosis_matches


def test_table_has_enough_diseases_and_specialties():
    t = default_table()
    assert len(t.diseases) >= 40
    assert len({d.specialty for d in t.diseases}) >= 10
    for d in t.diseases:
        assert len(d.findings) >= 5, d.id
        assert all(0.0 <= p < 1.0 for p in d.findings.values())


def test_shipped_bank_size_split_and_linkage():
    cases = shipped_cases()
    assert len(cases) >= 300
    assert {c.split for c in cases} == {"train", "test"}
    assert len(shipped_cases("test")) >= 100, "one standard error of a held-out accuracy <= 5 points"
    assert len({c.diagnosis_id for c in cases}) >= 40
    t = default_table()
    for c in cases:
        assert c.closed_world and c.source == "generated"
        assert t.disease(c.diagnosis_id).name == c.diagnosis
        assert any(f.category == "chief_complaint" for f in c.key_facts)
        assert any(not f.present for f in c.key_facts), "pertinent negatives are recorded"


def test_shipped_bank_is_exactly_what_the_generator_writes(tmp_path):
    out = tmp_path / "cases.jsonl"
    assert generate_main(["--seed", "0", "--n", "320", "--test-extra", "36", "--out", str(out)]) == 0
    assert out.read_bytes() == SHIPPED.read_bytes()


def test_generator_is_seeded_and_prefix_stable():
    a, b = generate(3, 12), generate(3, 12)
    assert [c.model_dump() for c in a] == [c.model_dump() for c in b]
    assert [c.model_dump() for c in generate(3, 5)] == [c.model_dump() for c in a[:5]]  # case i does not depend on n
    assert [c.model_dump() for c in generate(4, 5)] != [c.model_dump() for c in a[:5]]


def test_test_extra_appends_test_cases_and_changes_no_other():
    base, more = generate(3, 10), generate(3, 10, test_extra=4)
    assert [c.model_dump() for c in more[:10]] == [c.model_dump() for c in base], "the first n cases are unchanged"
    assert [c.split for c in more[10:]] == ["test"] * 4
    assert [c.id for c in more[10:]] == [f"gen-3-{i:04d}" for i in range(10, 14)]
    # the same stream as case i of a longer run: only the split label differs
    longer = {c.id: c for c in generate(3, 14)}
    assert all(c.model_dump() == longer[c.id].model_copy(update={"split": "test"}).model_dump() for c in more[10:])
    with pytest.raises(ValueError, match="test_extra must be >= 0"):
        generate(3, 10, test_extra=-1)


def test_no_fact_of_any_shipped_case_names_its_diagnosis():
    for c in shipped_cases():
        leak = LeakFilter.for_case(c)
        for f in c.key_facts:
            assert leak.find(f.text) is None, (c.id, f.text)
            assert leak.find(f.patient_text or "") is None, (c.id, f.patient_text)


def test_roundtrip_and_line_numbered_errors(tmp_path):
    cases = shipped_cases()[:3]
    p = tmp_path / "c.jsonl"
    save_cases(p, cases)
    assert load_cases(p) == cases
    lines = p.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["key_facts"] = []
    lines[1] = json.dumps(bad)
    lines.append("{not json")
    lines.append(lines[0])  # duplicate id
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(CaseFileError) as exc:
        load_cases(p)
    msg = str(exc.value)
    assert f"{p}:2:" in msg and "key_facts" in msg
    assert f"{p}:4:" in msg and "invalid JSON" in msg
    assert f"{p}:5:" in msg and "duplicate case id" in msg


def test_case_validation_names_the_problem():
    fact = KeyFact(id="f1", text="Fever.", category="symptom")
    with pytest.raises(ValueError, match="duplicate key fact ids"):
        PatientCase(id="x", chief_complaint="fever", diagnosis="flu", key_facts=(fact, fact))
    with pytest.raises(ValueError, match="diagnosis must not be empty"):
        PatientCase(id="x", chief_complaint="fever", diagnosis=" ", key_facts=(fact,))
    with pytest.raises(ValueError):
        KeyFact(id="f1", text="  ", category="symptom")


@pytest.mark.parametrize(
    "stated, truth, ok",
    [
        ("Acute appendicitis", "appendicitis", True),
        ("APPENDICITIS.", "appendicitis", True),
        ("heart attack", "stemi", True),
        ("inferior STEMI", "stemi", True),
        ("Community acquired pneumonia", "pneumonia", True),
        ("right lower lobe pneumonia", "pneumonia", True),
        ("not pneumonia", "pneumonia", False),
        ("pulmonary embolism", "pneumonia", False),
        ("Bells palsy", "bells_palsy", True),
        ("", "pneumonia", False),
    ],
)
def test_diagnosis_matching(stated, truth, ok):
    t = default_table()
    d = t.disease(truth)
    case = PatientCase(
        id="x",
        chief_complaint="c",
        diagnosis=d.name,
        diagnosis_id=d.id,
        key_facts=(KeyFact(id="f1", text="Cough.", category="symptom"),),
    )
    assert diagnosis_matches(stated, case) is ok


def test_leak_filter_abbreviations_are_case_sensitive():
    t = default_table()
    d = t.disease("stemi")
    case = PatientCase(
        id="x",
        chief_complaint="c",
        diagnosis=d.name,
        diagnosis_id=d.id,
        key_facts=(KeyFact(id="f1", text="Cough.", category="symptom"),),
    )
    leak = LeakFilter(accepted_names(case))
    assert leak.find("I think it was an MI.") == "MI"
    assert leak.find("I had a heart attack") is not None
    assert leak.find("Mi casa, and my mind is fine") is None


def test_mock_patients_imports_nothing_heavier_than_pydantic():
    import subprocess
    import sys

    code = (
        "import sys, mock_patients.evaluate, mock_patients.loaders, mock_patients.generate, mock_patients.consultation\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'agentrl', 'environments', 'torch', 'numpy', "
        "'transformers', 'gymnasium', 'matplotlib', 'httpx'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
