"""Public case formats -> PatientCase, on records written for these tests: AgentClinic OSCE (every field, and
medqa_extended's `Symptoms: {}` shape), AgentClinic NEJM, MediQ (string ages, non-diagnosis questions);
per-record skipping with a summary, `strict`, ages, and format detection."""

from __future__ import annotations

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

from mock_patients.cases import save_cases
from mock_patients.consultation import Consultation
from mock_patients.loaders import (
    NOT_A_DIAGNOSIS,
    LoaderError,
    QuestionCase,
    detect_format,
    load_agentclinic,
    load_file,
    load_mediq,
    load_nejm,
    parse_age,
    parse_demographics,
    question_type,
    read_mediq,
)
from mock_patients.patient import RuleBasedPatient

# --- AgentClinic OSCE ----------------------------------------------------------------------------------


def test_agentclinic_every_field(tmp_path):
    (case,) = load_agentclinic(write_jsonl(tmp_path / "ac.jsonl", [osce()]))
    assert case.id == "agentclinic-0001" and case.source == "agentclinic" and case.split == "test"
    assert (case.demographics.age, case.demographics.sex) == (61, "male")
    assert case.chief_complaint == "Productive cough" and case.diagnosis_id == "pneumonia"
    assert [s.name for s in case.symptoms] == ["Fever", "Chills", "Shortness of breath"]
    assert case.symptoms[0].finding == "fever"
    assert case.past_medical_history == ("Hypertension.",)  # "Information not provided." dropped
    assert case.social_history[0].startswith("Smokes 10 cigarettes")
    assert case.medications == ("Amlodipine 5 mg daily",)
    assert case.family_history == ("Father had a myocardial infarction at 70.",)
    assert case.allergies == ("Penicillin causes a rash.",)
    assert "four days" in case.history_of_present_illness
    assert [o.test for o in case.exam_findings] == [
        "Vital signs / Temperature",
        "Vital signs / Respiratory rate",
        "Chest examination / Auscultation",
    ]
    assert [o.test for o in case.test_results] == [
        "Blood tests / WBC",
        "Imaging / Chest x-ray",
    ]  # uninformative leaf dropped
    cats = {f.category for f in case.key_facts}
    assert {"demographics", "chief_complaint", "symptom", "hpi", "pmh", "social", "ros", "exam", "test"} <= cats
    assert any(f.category == "medication" for f in case.key_facts) and any(
        f.category == "allergy" for f in case.key_facts
    )
    assert any(f.category == "family" for f in case.key_facts)
    k = Consultation(case)
    k.opening()
    assert "consolidation" in k.doctor_turn("REQUEST TEST: chest X-ray").reply
    assert RuleBasedPatient(case).answer("Do you have any chills?").text.startswith("Yes")


def test_agentclinic_bad_records_are_skipped_with_a_reason(tmp_path):
    no_dx = osce()
    del no_dx["OSCE_Examination"]["Correct_Diagnosis"]
    bad_secondary = osce(Symptoms={"Primary_Symptom": "Cough", "Secondary_Symptoms": {"a": 1}})
    text_symptoms = osce(Symptoms="Cough and fever")  # a text is taken as the primary symptom
    p = write_jsonl(
        tmp_path / "ac.jsonl",
        [osce(), osce_empty_symptoms(), no_dx, "{broken", "[1]", bad_secondary, text_symptoms, osce_outside_table()],
    )
    res = load_file(p)
    assert res.report.format == "agentclinic"
    assert [c.id for c in res.cases] == ["agentclinic-0001", "agentclinic-0007", "agentclinic-0008"]
    assert res.cases[1].chief_complaint == "Cough and fever"
    assert res.cases[2].diagnosis == "Myasthenia gravis" and res.cases[2].diagnosis_id is None
    assert res.report.errors[0][0] == 2 and res.report.errors[0][1].startswith(
        "Symptoms.Primary_Symptom is missing or empty"
    )
    reasons = dict(res.report.errors)
    assert "Correct_Diagnosis is missing" in reasons[3] and "invalid JSON" in reasons[4]
    assert "expected a JSON object" in reasons[5] and "Secondary_Symptoms must be a list" in reasons[6]
    summary = res.report.summary()
    assert summary.startswith(
        "loaded 3/8; line 2: Symptoms.Primary_Symptom is missing or empty, and the record has no other symptom"
    )
    assert "... and" not in summary and res.report.summary(limit=2).endswith("... and 3 more bad records")
    with pytest.raises(LoaderError) as exc:
        load_agentclinic(p, strict=True)
    assert f"{p}:2: Symptoms.Primary_Symptom is missing" in str(exc.value) and f"{p}:6: " in str(exc.value)


def test_a_file_with_no_good_record_is_an_error(tmp_path):
    p = write_jsonl(tmp_path / "ac.jsonl", [osce_empty_symptoms()])
    with pytest.raises(LoaderError, match=r"no case could be loaded .*\n  .*ac.jsonl:1: Symptoms.Primary_Symptom"):
        load_agentclinic(p)
    with pytest.raises(LoaderError, match="no records"):
        load_agentclinic(write_jsonl(tmp_path / "empty.jsonl", []))
    with pytest.raises(FileNotFoundError, match="file not found"):
        load_agentclinic(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_agentclinic(p, split="dev")


def test_json_array_files_and_duplicate_ids(tmp_path):
    p = tmp_path / "ac.json"
    p.write_text(json.dumps([osce(), osce_outside_table()]))
    assert [c.diagnosis for c in load_agentclinic(p)] == ["Community-acquired pneumonia", "Myasthenia gravis"]
    q = write_jsonl(tmp_path / "mq.jsonl", [mediq(7, "What is the most likely diagnosis?", "Septic arthritis")] * 2)
    res = read_mediq(q)
    assert res.report.loaded == 1 and "duplicate case id 'mediq-7' (first on line 1)" in res.report.errors[0][1]


# --- ages --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, years",
    [
        (22, 22),
        (22.0, 22),
        ("22", 22),
        ("22 years", 22),
        ("21 years old", 21),
        ("6 months", 0),
        ("18 months", 1),
        ("8-month-old", 0),
        ("Newborn", 0),
        ("3 weeks", 0),
        ("45 y", 45),
        ("  ", None),
        (None, None),
    ],
)
def test_ages(value, years):
    assert parse_age(value) == years


def test_bad_ages_name_the_allowed_forms():
    with pytest.raises(ValueError, match="age must be a number or a text age .*'21 years old'.*got 'old'"):
        parse_age("old")
    with pytest.raises(ValueError, match="outside 0..120"):
        parse_age("130 years")
    d = parse_demographics("An 8-year-old male child is brought by his mother")
    assert (d.age, d.sex) == (8, "male")  # the first sex word wins
    assert (
        parse_demographics("Newborn, female").age == 0
        and parse_demographics("", age="21 years old", sex="F").sex == "female"
    )


# --- NEJM --------------------------------------------------------------------------------------------------


def test_nejm_every_field(tmp_path):
    res = load_file(write_jsonl(tmp_path / "nejm.jsonl", [nejm()]))
    assert res.report.format == "nejm"
    (case,) = res.cases
    assert res.references == {"nejm-0001": ["https://images.example.org/challenge?id=42"]}
    assert case.diagnosis == "Pulmonary sarcoidosis" and case.options[1] == "Pulmonary sarcoidosis"
    assert case.differential == ("Hypersensitivity pneumonitis", "Lymphoma")
    assert (case.demographics.age, case.demographics.sex) == (31, "female")
    assert case.chief_complaint == "A 5-month history of dry cough"
    assert "not aware" not in case.history_of_present_illness and "31-year-old" not in case.history_of_present_illness
    hpi = [(f.text, f.present) for f in case.key_facts if f.category == "hpi"]
    assert ("Reports a dry cough for the past 5 months.", True) in hpi
    assert {t for t, present in hpi if not present} >= {"No fevers.", "No night sweats.", "No rashes."}
    assert [o.result for o in case.exam_findings] == [
        "On physical examination, fine crackles were heard at both bases."
    ]
    assert [(o.test, o.result) for o in case.test_results] == [
        ("Serum ACE", "Elevated"),
        ("Calcium", "Normal"),
        ("CT of the chest", "Bilateral hilar lymphadenopathy"),
        ("Transbronchial biopsy", "Noncaseating granulomas"),
    ]
    p = RuleBasedPatient(case)
    assert p.answer("Have you had a fever?").text.startswith("No")


def test_nejm_bad_records(tmp_path):
    no_info = nejm()
    del no_info["patient_info"]
    recs = [
        nejm(marks=(False, False, False)),
        nejm(marks=(True, True, False)),
        no_info,
        {**nejm(), "answers": "Sarcoidosis"},
        {**nejm(), "answers": [{"correct": True}]},
        nejm(),
    ]
    res = load_file(write_jsonl(tmp_path / "nejm.jsonl", recs))
    reasons = dict(res.report.errors)
    assert res.report.loaded == 1 and res.cases[0].id == "nejm-0006"
    assert "exactly one option correct" in reasons[1] and "2 are marked" in reasons[2]
    assert "patient_info is missing" in reasons[3] and "answers must be a non-empty list" in reasons[4]
    assert "answers[0] must be an object with a non-empty 'text'" in reasons[5]
    with pytest.raises(LoaderError, match="strict"):
        load_nejm(tmp_path / "nejm.jsonl", strict=True)


# --- MediQ -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, kind",
    [
        ("Which of the following is the most likely diagnosis for the patient?", "diagnosis"),
        ("What is the most likely diagnosis?", "diagnosis"),
        ("Which of the following is the next best step in management?", "next_step"),
        ("Which of the following is the best test to confirm the diagnosis?", "next_step"),
        ("Which of the following is the best course of treatment in this patient?", "treatment"),
        (
            "The mechanism of action of the medication given blocks cell wall synthesis, which of the following was given?",
            "treatment",
        ),
        ("Which of the following drugs has a mechanism of action that explains this?", "treatment"),
        (
            "Which of the following is the most likely primary mechanism underlying this woman's muscle atrophy?",
            "mechanism",
        ),
        ("Which of the following represents the most likely etiology of her anemia.", "other"),
    ],
)
def test_question_types(question, kind):
    assert question_type(question) == kind


def test_mediq_string_ages_and_question_types(tmp_path):
    recs = [
        mediq(1, "Which of the following is the most likely diagnosis?", "Septic arthritis", age="22 years"),
        mediq(
            2,
            "What is the most likely diagnosis?",
            "Gonococcal arthritis",
            age="21 years old",
            gender="male",
            options=["Gonococcal arthritis", "Reactive arthritis"],
        ),
        mediq(3, "Which of the following is the next best step in management?", "Arthrocentesis"),
        mediq(4, "Which of the following is the most appropriate pharmacotherapy?", "Ceftriaxone"),
        mediq(5, "What is the most likely diagnosis?", "Septic arthritis", age="ancient"),
        mediq(6, "Which of the following is the most likely diagnosis?", "Septic arthritis", age=19),
    ]
    p = write_jsonl(tmp_path / "mq.jsonl", recs)
    res = read_mediq(p)
    assert [c.id for c in res.cases] == ["mediq-1", "mediq-2", "mediq-6"]
    a, b, c = res.cases
    assert (a.demographics.age, a.demographics.sex, b.demographics.age, c.demographics.age) == (22, "male", 21, 19)
    assert a.options == ("Septic arthritis", "Cellulitis", "Gout") and a.differential == ("Cellulitis", "Gout")
    assert a.diagnosis == "Septic arthritis" and a.chief_complaint.startswith("A painful, swollen right knee")
    assert any(f.category == "exam" for f in a.key_facts) and any(f.category == "test" for f in a.key_facts)
    assert b.options == ("Gonococcal arthritis", "Reactive arthritis")
    assert res.report.excluded == {"next_step": 1, "treatment": 1}
    assert res.report.errors[0][0] == 5 and "patient.age: age must be a number or a text age" in res.report.errors[0][1]
    assert res.report.summary().startswith("loaded 3/6; 2 not diagnosis questions (next_step 1, treatment 1); line 5: ")
    others = load_mediq(p, include_types=("next_step", "treatment"))
    assert [type(x) for x in others] == [QuestionCase, QuestionCase]
    assert [(x.question_type, x.target) for x in others] == [
        ("next_step", "Arthrocentesis"),
        ("treatment", "Ceftriaxone"),
    ]
    assert all(x.diagnosis == NOT_A_DIAGNOSIS and x.diagnosis_id is None and not x.differential for x in others)
    with pytest.raises(ValueError, match="include_types must name some of diagnosis, next_step"):
        load_mediq(p, include_types=("drug",))


def test_mediq_missing_answer_and_fields(tmp_path):
    recs = [
        {"id": 1, "question": "What is the most likely diagnosis?", "options": {"A": "x"}, "context": ["A man."]},
        {**mediq(2, "What is the most likely diagnosis?", "Gout"), "facts": None, "context": 5},
        {**mediq(3, "What is the most likely diagnosis?", "Gout"), "patient": "old man"},
        {**mediq(4, "What is the most likely diagnosis?", "Gout"), "options": 3},
    ]
    res = read_mediq(
        write_jsonl(
            tmp_path / "mq.jsonl", recs[:3] + [mediq(5, "What is the most likely diagnosis?", "Gout")] + recs[3:]
        )
    )
    reasons = dict(res.report.errors)
    assert "answer (or answer_idx naming an option) is missing" in reasons[1]
    assert "context must be a list" in reasons[2] and "patient must be an object" in reasons[3]
    assert "options must be an object" in reasons[5] and [c.id for c in res.cases] == ["mediq-5"]


# --- format detection --------------------------------------------------------------------------------------


def test_detect_format_and_patientcase_files(tmp_path):
    assert detect_format(write_jsonl(tmp_path / "a.jsonl", ["{bad", osce()])) == "agentclinic"
    assert detect_format(write_jsonl(tmp_path / "n.jsonl", [nejm()])) == "nejm"
    assert (
        detect_format(write_jsonl(tmp_path / "m.jsonl", [mediq(1, "What is the most likely diagnosis?", "Gout")]))
        == "mediq"
    )
    cases = load_agentclinic(tmp_path / "a.jsonl")
    pc = tmp_path / "cases.jsonl"
    save_cases(pc, cases)
    with pc.open("a") as f:
        f.write('{"id": "x", "diagnosis": "y", "key_facts": []}\n')
    res = load_file(pc)
    assert res.report.format == "patientcase" and res.cases == cases
    assert res.report.errors[0][0] == 2 and "chief_complaint" in res.report.errors[0][1]
    with pytest.raises(
        LoaderError, match=r"cannot tell the case format \(first record's keys: a, b\); allowed: agentclinic = "
    ):
        detect_format(write_jsonl(tmp_path / "x.jsonl", [{"a": 1, "b": 2}]))
    with pytest.raises(ValueError, match="unknown case format 'csv'; allowed: agentclinic, nejm, mediq, patientcase"):
        load_file(pc, "csv")


def test_nejm_second_person_becomes_first_person(tmp_path):
    rec = nejm()
    rec["patient_info"] = (
        "You are a 40-year-old man. - **Symptoms**: - You began using a new soap two weeks ago. "
        "- For the past year, you have had sores on your penis. - Swallowing has become hard for you. "
        "- Mention noticing a dent in your lower eyelids."
    )
    (case,) = load_nejm(write_jsonl(tmp_path / "nejm.jsonl", [rec]))
    said = [f.patient_text for f in case.key_facts if f.category == "hpi"]
    assert "I began using a new soap two weeks ago." in said
    assert "For the past year, I have had sores on my penis." in said
    assert "Swallowing has become hard for me." in said
    assert not any(w in s.split() for s in said for w in ("they", "their", "Begans", "Mention"))


def test_uninformative_fields_are_dropped(tmp_path):
    """ "Information not specified." says nothing: no fact, no "I have information not specified." reply."""
    rec = osce(Social_History="Information not specified.", Past_Medical_History="Not documented. Asthma.")
    (case,) = load_agentclinic(write_jsonl(tmp_path / "ac.jsonl", [rec]))
    assert case.social_history == () and case.past_medical_history == ("Asthma.",)
    texts = [f.text.lower() for f in case.key_facts]
    assert not any("not specified" in t or "not documented" in t for t in texts)
    for keep in ("None reported.", "No known allergies."):  # a negative answer is information
        (c,) = load_agentclinic(write_jsonl(tmp_path / "ac2.jsonl", [osce(Allergies=keep)]))
        assert c.allergies == (keep,)


def test_mediq_lab_readout_is_a_test_result_not_history(tmp_path):
    """A urinalysis read-out ("nitrites are negative") is revealed by the test, never told by the patient."""
    rec = mediq(1, "What is the most likely diagnosis?", "Septic arthritis")
    rec["facts"] = rec["facts"] + [
        "6. Urine color is amber, nitrites are negative, and ketones are absent.",
        "7. Protein is negative and glucose is negative.",
        "8. He has noticed dark urine for 2 days.",
    ]
    (case,) = load_mediq(write_jsonl(tmp_path / "mq.jsonl", [rec]))
    by_text = {f.text: f for f in case.key_facts}
    for t in (
        "Urine color is amber, nitrites are negative, and ketones are absent.",
        "Protein is negative and glucose is negative.",
    ):
        assert by_text[t].category == "test" and not by_text[t].patient_facing
        assert any(o.result.rstrip(".") == t.rstrip(".") for o in case.test_results)
    assert by_text["He has noticed dark urine for 2 days."].category == "hpi"  # a symptom stays history
    p = RuleBasedPatient(case)
    assert "nitrites" not in p.answer("Have you noticed anything about your urine?").text.lower()


def test_mediq_repeat_visit_is_not_the_chief_complaint(tmp_path):
    rec = mediq(1, "What is the most likely diagnosis?", "Psoriasis")
    rec["context"][0] = (
        "A 9-year-old girl is brought to the clinic for the second time in 3 months presenting with "
        "scaly plaques on her elbows."
    )
    rec["facts"] = None
    (case,) = load_mediq(write_jsonl(tmp_path / "mq.jsonl", [rec]))
    assert case.chief_complaint == "Scaly plaques on her elbows"
    cc = next(f for f in case.key_facts if f.category == "chief_complaint")
    assert cc.patient_text == "I have scaly plaques on my elbows."
