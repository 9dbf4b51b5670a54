"""Key facts from structured fields, from an LLM (stand-in model), and from the rule-based splitter;
the AgentClinic and MediQ loaders on the shipped fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mock_patients.cases import Demographics, Observation, Symptom
from mock_patients.consultation import Consultation
from mock_patients.facts import (
    FactExtractionError,
    LLMFactExtractor,
    parse_fact_list,
    split_facts,
    split_sentences,
    structured_facts,
    to_first_person,
)
from mock_patients.loaders import (
    LoaderError,
    load_agentclinic,
    load_mediq,
    parse_demographics,
)
from mock_patients.patient import RuleBasedPatient

FIXTURES = Path(__file__).resolve().parent.parent / "mock_patients" / "data" / "fixtures"


class ScriptedChatModel:
    """Test stand-in for a chat model: canned replies in order, calls recorded."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None):
        self.calls.append(messages)
        return self.replies.pop(0)

    def complete_batch(self, batch, *, temperature=0.0, max_tokens=256, seed=None):
        return [self.complete(m) for m in batch]


def test_splitter_keeps_decimals_and_splits_negated_lists():
    text = "Temperature 38.5 C for 2 days. Dr. Lee saw her. Denies chest pain, cough, or shortness of breath. No rash."
    assert split_sentences(text)[:2] == ["Temperature 38.5 C for 2 days.", "Dr. Lee saw her."]
    facts = split_facts(text)
    assert (
        ("No chest pain", False) in facts
        and ("No cough", False) in facts
        and ("No shortness of breath", False) in facts
    )
    assert ("No rash", False) in facts
    assert facts[0] == ("Temperature 38.5 C for 2 days", True)
    assert split_facts("She denies fever or chills.") == [("No fever", False), ("No chills", False)]
    assert split_facts("Non-smoker.") == [("Non-smoker", False)]


@pytest.mark.parametrize(
    "src, want",
    [
        ("The patient reports double vision", "I've had double vision."),
        ("Denies fever", "No, I haven't had fever."),
        ("Smokes 1 pack per day", "I smoke 1 pack per day."),
        ("She is a teacher", "I'm a teacher."),
        ("Former smoker, quit 10 years ago", "I'm a former smoker, quit 10 years ago."),
        ("No weight loss", "No, I haven't had weight loss."),
        ("The pain radiates to his left arm", "The pain radiates to my left arm."),
    ],
)
def test_first_person(src, want):
    assert to_first_person(src) == want


def test_structured_facts_one_per_item_with_links():
    facts = structured_facts(
        demographics=Demographics(age=40, sex="female"),
        chief_complaint="Cough",
        symptoms=[
            Symptom(name="Fever", onset="3 days ago", severity="moderate"),
            Symptom(name="chest pain", present=False),
        ],
        past_medical_history=["High blood pressure"],
        social_history=["Non-smoker"],
        exam_findings=[Observation(test="Lung examination", result="crackles at the right base", test_id="lung_exam")],
        test_results=[Observation(test="Chest X-ray", result="right lower lobe consolidation", test_id="chest_xray")],
    )
    by = {f.text: f for f in facts}
    assert [f.category for f in facts][:3] == ["demographics", "demographics", "chief_complaint"]
    assert by["Cough."].finding == "cough"
    fever = next(f for f in facts if f.finding == "fever")
    assert fever.present and "3 days ago" in fever.patient_text and "moderate" in fever.patient_text
    cp = next(f for f in facts if f.finding == "chest_pain")
    assert not cp.present and cp.patient_text.startswith("No")
    assert next(f for f in facts if f.finding == "hypertension_hx").category == "pmh"
    smoke = next(f for f in facts if f.finding == "smoker")
    assert not smoke.present and smoke.patient_text == "No, I don't smoke."
    xr = next(f for f in facts if f.category == "test")
    assert xr.test == "Chest X-ray" and xr.patient_text is None
    assert len({f.id for f in facts}) == len(facts)


def test_llm_extractor_parses_json_and_bullets_and_reports_garbage():
    m = ScriptedChatModel(['Here you go: ["Fever for 3 days", "No cough", "Smokes 10 cigarettes a day"]'])
    facts = LLMFactExtractor(m).extract("A long passage.", category="hpi")
    assert [f.text for f in facts] == ["Fever for 3 days.", "No cough.", "Smokes 10 cigarettes a day."]
    assert [f.present for f in facts] == [True, False, True]
    assert facts[0].finding == "fever" and facts[1].finding == "cough"
    assert "A long passage." in m.calls[0][0]["content"]
    assert parse_fact_list("- fever\n- no cough\n2) chills") == ["fever", "no cough", "chills"]
    with pytest.raises(FactExtractionError, match="expected a JSON array"):
        LLMFactExtractor(ScriptedChatModel(["I cannot help with that."])).extract("text")
    ext = LLMFactExtractor(ScriptedChatModel(["nonsense"]), fallback_to_rules=True)
    assert [t for t, _ in ext.extract_texts(["Fever. Denies cough."])[0]] == ["Fever", "No cough"]
    assert ext.fallbacks == 1


def test_agentclinic_loader_on_fixture():
    cases = load_agentclinic(FIXTURES / "agentclinic_sample.jsonl")
    assert [c.id for c in cases] == ["agentclinic-0001", "agentclinic-0002", "agentclinic-0003"]
    pneu, mg, uti = cases
    assert pneu.diagnosis_id == "pneumonia" and mg.diagnosis_id is None and uti.diagnosis_id == "uti"
    assert pneu.demographics.age == 67 and pneu.demographics.sex == "male"
    assert pneu.chief_complaint == "Cough with yellow phlegm"
    assert {f.finding for f in pneu.key_facts if f.finding} >= {"fever", "shortness_of_breath", "chills", "chest_pain"}
    assert not next(f for f in pneu.key_facts if f.finding == "chest_pain").present  # from the review of systems
    assert [f.test for f in pneu.key_facts if f.category == "test"] == [
        "Blood tests / WBC",
        "Blood tests / CRP",
        "Imaging / Chest x-ray",
    ]
    smoke = next(f for f in mg.key_facts if f.finding == "smoker")
    assert not smoke.present  # "Non-smoker."
    k = Consultation(pneu)
    k.opening()
    assert (
        k.doctor_turn("REQUEST TEST: CXR").reply == "Imaging / Chest x-ray: Right lower lobe consolidation"
    )  # via the lexicon
    assert k.doctor_turn("REQUEST TEST: blood tests").fact_ids == ("f20", "f21")  # via the source's own words
    mri = k.doctor_turn("REQUEST TEST: MRI brain")
    assert mri.reply == "MRI brain: normal" and mri.irrelevant  # not a closed-world case: "normal" teaches nothing
    k = Consultation(mg)
    assert "Elevated" in k.doctor_turn("REQUEST TEST: acetylcholine receptor antibodies").reply
    assert "Decremental" in k.doctor_turn("REQUEST TEST: EMG").reply
    p = RuleBasedPatient(pneu)
    assert "67" in p.opening()
    assert p.answer("Have you had chills?").text.startswith("Yes")
    assert p.answer("Any chest pain?").text.startswith("No")


def test_mediq_loader_on_fixture():
    cases = load_mediq(FIXTURES / "mediq_sample.jsonl")
    dvt, mi = cases
    assert dvt.id == "mediq-101" and dvt.diagnosis == "Deep vein thrombosis" and dvt.diagnosis_id == "dvt"
    assert dvt.options == ("Cellulitis", "Deep vein thrombosis", "Ruptured Baker cyst", "Muscle strain")
    assert "Deep vein thrombosis" not in dvt.differential and "Cellulitis" in dvt.differential
    assert dvt.demographics.age == 34 and dvt.demographics.sex == "female"
    texts = [f.text for f in dvt.key_facts]
    assert "No chest pain." in texts and "No shortness of breath." in texts
    assert any(f.category == "test" and f.test == "leg_doppler" for f in dvt.key_facts)
    assert mi.demographics.age == 58 and mi.demographics.sex == "male"  # "58", "M"
    assert mi.options[1] == "Acute myocardial infarction" and mi.diagnosis_id == "stemi"
    assert any(f.category == "test" and f.test == "ecg" for f in mi.key_facts)
    assert any(f.category == "exam" for f in mi.key_facts)


def test_loaders_report_bad_records_with_line_numbers(tmp_path):
    good = (FIXTURES / "agentclinic_sample.jsonl").read_text().splitlines()[0]
    rec = json.loads(good)
    del rec["OSCE_Examination"]["Correct_Diagnosis"]
    p = tmp_path / "ac.jsonl"
    p.write_text(good + "\n" + json.dumps(rec) + "\n[1, 2]\n")
    with pytest.raises(LoaderError) as exc:
        load_agentclinic(p, strict=True)
    assert f"{p}:2: OSCE_Examination.Correct_Diagnosis is missing" in str(exc.value)
    assert f"{p}:3: expected a JSON object" in str(exc.value)
    q = tmp_path / "mq.jsonl"
    q.write_text(json.dumps({"id": 1, "question": "?", "options": {"A": "x"}, "context": ["A man."]}) + "\n")
    with pytest.raises(LoaderError, match=r"mq.jsonl:1: answer .* is missing"):
        load_mediq(q, strict=True)


def test_parse_demographics():
    assert (parse_demographics("35-year-old female").age, parse_demographics("35-year-old female").sex) == (
        35,
        "female",
    )
    assert parse_demographics("8-month-old boy").age == 0 and parse_demographics("8-month-old boy").sex == "male"
    assert parse_demographics("Newborn, female").age == 0
    with pytest.raises(ValueError, match="age must be a number"):
        parse_demographics("", age="old")


def test_agentclinic_history_through_an_llm_extractor():
    rec = json.loads((FIXTURES / "agentclinic_sample.jsonl").read_text().splitlines()[0])
    m = ScriptedChatModel(
        ['["Cough for three days", "Yellow sputum"]', '["No chest pain", "No leg swelling", "No recent travel"]']
    )
    from mock_patients.loaders import agentclinic_case

    case = agentclinic_case(rec, "ac-1", extractor=LLMFactExtractor(m))
    hpi = [f.text for f in case.key_facts if f.category == "hpi"]
    assert hpi == ["Cough for three days.", "Yellow sputum."]
    negatives = [f for f in case.key_facts if f.text in ("No chest pain.", "No leg swelling.", "No recent travel.")]
    assert [f.present for f in negatives] == [False, False, False]
    assert [f.category for f in negatives] == ["ros", "ros", "social"]  # travel is asked about as social history
    assert len(m.calls) == 2 and "three days of productive cough" in m.calls[0][0]["content"]
