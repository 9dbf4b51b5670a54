"""Doctor-turn parsing and the consultation ledger shared by the env and the evaluator."""

from __future__ import annotations

import copy

import pytest

from mock_patients.cases import shipped_cases
from mock_patients.consultation import Consultation, parse_turn


@pytest.mark.parametrize(
    "text, want",
    [
        ("DIAGNOSIS: Acute appendicitis.", ("diagnosis", "Acute appendicitis", None)),
        ("I have enough.\n**Diagnosis:** migraine", ("diagnosis", "migraine", None)),
        ("final diagnosis - gout", ("diagnosis", "gout", None)),
        ("REQUEST TEST: chest X-ray\nDIAGNOSIS: pneumonia", ("diagnosis", "pneumonia", None)),
        ("request exam: abdominal examination", ("test", "abdominal examination", None)),
        ("What is the diagnosis: do you know?", ("question", "What is the diagnosis: do you know?", None)),
        ("  Any fever?  ", ("question", "Any fever?", None)),
        ("Diagnosis-related question: any fever?", ("question", "Diagnosis-related question: any fever?", None)),
    ],
)
def test_parse_turn(text, want):
    assert parse_turn(text) == want


def test_parse_turn_errors_name_the_fix():
    kind, _, err = parse_turn("DIAGNOSIS:")
    assert kind == "invalid" and "DIAGNOSIS needs a name" in err
    kind, _, err = parse_turn("REQUEST TEST: " + "x" * 300)
    assert kind == "invalid" and "at most 200" in err


def test_ledger_counts_tests_evidence_and_copies_independently():
    case = next(c for c in shipped_cases("test") if any(f.test == "chest_xray" and f.present for f in c.key_facts))
    k = Consultation(case)
    k.opening()
    r = k.doctor_turn("REQUEST TEST: CXR")
    assert r.kind == "test" and r.test_id == "chest_xray" and r.reply.startswith("Chest X-ray: ")
    assert all(k.evidence.findings[f.finding] == f.present for f in case.key_facts if f.test == "chest_xray")
    again = k.doctor_turn("REQUEST TEST: chest radiograph")
    assert again.repeated and not again.irrelevant
    normal_test = next(
        t for t in ("d_dimer", "lipase", "monospot", "troponin") if not any(f.test == t for f in case.key_facts)
    )
    r = k.doctor_turn(f"REQUEST TEST: {normal_test.replace('_', '-')}")
    assert r.reply.endswith(": normal") and not r.irrelevant  # closed world: normal is evidence
    assert all(not k.evidence.findings[f.id] for f in k.table.findings_of_test(normal_test))
    branch = copy.deepcopy(k)
    branch.doctor_turn("Any fever?")
    assert len(branch.records) == len(k.records) + 1 and branch.case is k.case
    k.doctor_turn(f"DIAGNOSIS: {case.diagnosis}")
    assert k.finished and k.inquiries == 3
    with pytest.raises(RuntimeError, match="already ended"):
        k.doctor_turn("Any fever?")
