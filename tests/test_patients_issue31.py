"""Issue 31: simulated patients that answer like the record, on records written here in each public format
(AgentClinic OSCE, AgentClinic NEJM, MediQ): polarity, facts by kind, topic routing, loaders, side channels,
`consult evaluate` without --cases, scripted doctors that respect age and sex, and the patient-quality benchmark."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from public_records import mediq, nejm, osce, osce_empty_primary, write_jsonl

from mock_patients.facts import FactBuilder
from mock_patients.loaders import load_file, load_mediq, read_mediq
from mock_patients.loaders.agentclinic import agentclinic_case
from mock_patients.loaders.common import parse_age
from mock_patients.loaders.mediq import question_type
from mock_patients.loaders.nejm import nejm_case
from mock_patients.patient import (
    DIAGNOSIS_REFUSAL,
    NO_FAMILY_HISTORY,
    NOT_SURE,
    TESTS_NOT_TOLD,
    RuleBasedPatient,
)
from mock_patients.polarity import fact_polarity
from mock_patients.rewrite import self_description, to_first_person

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


checker = _script("consult_public_cases")


def _fact(text: str, category: str = "hpi"):
    return FactBuilder().add(text, category)  # type: ignore[arg-type]


# --- (3) polarity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, present",
    [
        ("She is a non-smoker and does not drink alcohol.", False),
        ("The patient is a non-smoker.", False),
        ("Patient is a lifetime non-smoker.", False),
        ("There have been no changes in his bowel habits or urination.", False),
        ("The mother's pregnancy was normal.", False),
        ("Her nails are normal.", False),
        ("Birth history unremarkable.", False),
        ("Cannot recall any injury to the arm.", True),  # a deficit phrased with a negation is present
    ],
)
def test_polarity_and_the_checker_agree(text, present):
    assert fact_polarity(text) is present
    assert checker.cue_absent(text) is (not present), "the benchmark's own cue must not flag a correct fact"


def test_checker_reads_contractions_as_denials():
    assert checker._DENIAL.search("I don't feel pain when the pressure is released.")
    assert checker._DENIAL.search("I haven't observed any other changes.")


@pytest.mark.parametrize(
    "text, category",
    [
        ("Absent reflexes.", "exam"),
        ("The corneal reflex in the right eye is absent.", "exam"),
        ("Vital signs are normal.", "exam"),
        ("Spleen is not palpable.", "exam"),
        (
            "When asked to make a tight fist and open his hands quickly, the patient could not open them immediately.",
            "exam",
        ),
        ("Anti-intrinsic factor antibodies were negative.", "test"),
        ("A CT scan of the lungs showed a nodule in the right lower lobe.", "test"),
        ("The patient is empirically started on 3 units of O-negative blood and pantoprazole.", "record"),
        ("The pediatrician suspects genetic muscular dystrophy.", "record"),
        ("Blood is drawn for further testing.", "record"),
        ("Review of systems is negative apart from the pruritic rash.", "record"),
        ("No mention of smoking, alcohol, or drug use.", "record"),
        ("The past 3 hours.", "record"),
        ("The patient is a healthy 45-year-old woman.", "demographics"),
    ],
)
def test_facts_the_patient_cannot_tell_are_not_patient_facts(text, category):
    f = _fact(text)
    assert f.category == category and not (f.patient_facing and category not in ("demographics",)), f


def test_nejm_things_called_they_are_not_the_patient():
    rec = nejm()
    rec["patient_info"] = (
        "You are a 55-year-old man. You've noticed blister-like rashes on your chest. These rashes are "
        "raised, but they don't burst easily unless they're pressed firmly. You don't feel pain when "
        "the pressure is released."
    )
    case = nejm_case(rec, "nejm-0001")
    said = {f.text: (f.present, f.patient_text) for f in case.patient_facts}
    assert not any("I don't burst" in (p or "") for _, p in said.values())
    pain = next(v for k, v in said.items() if "pain" in k)
    assert pain[0] is False and checker._DENIAL.search(pain[1])


# --- (1) facts spoken by kind, proper first person -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, category, said",
    [
        (
            "Type 2 diabetes mellitus treated with metformin.",
            "medication",
            "I have type 2 diabetes mellitus, treated with metformin.",
        ),
        (
            "Polycystic ovarian syndrome (PCOS), currently managed with oral contraceptive pills.",
            "pmh",
            "I have polycystic ovarian syndrome (PCOS), managed with oral contraceptive pills.",
        ),
        (
            "Significant for Lyme disease, currently being treated with doxycycline.",
            "pmh",
            "I have a history of Lyme disease, currently being treated with doxycycline.",
        ),
        ("Diagnosed with influenza recently.", "pmh", "I was diagnosed with influenza recently."),
        ("The lesions start as small bumps.", "hpi", "The lesions start as small bumps."),
        (
            "For his osteoarthritis, he occasionally takes acetaminophen.",
            "hpi",
            "For my osteoarthritis, I occasionally take acetaminophen.",
        ),
        (
            "He attempted to scrape them off, assuming they were dirt.",
            "hpi",
            "I attempted to scrape them off, assuming they were dirt.",
        ),
        ("Improvement with rest.", "symptom", "It gets better with rest."),
        ("Current medications include aspirin and enalapril.", "hpi", "I take aspirin and enalapril."),
        ("No tobacco use.", "social", "No, I don't use tobacco."),
        (
            "Several years of progressive difficulty in walking.",
            "hpi",
            "I've had progressive difficulty in walking for several years.",
        ),
    ],
)
def test_spoken_by_kind(text, category, said):
    assert _fact(text, category).patient_text == said


def test_no_rewrite_flags_on_the_issues_examples():
    for text in (
        "The past 3 hours.",
        "The leg pain keeps him awake at night.",
        "The rash waxes and wanes.",
        "No history of allergies for the patient.",
        "The presence of a rough, scaly plaque on the left hand.",
    ):
        f = _fact(text)
        spoken = f.patient_text or ""
        assert not checker.broken(spoken, text), (text, spoken)


def test_opening_is_never_a_third_person_vignette():
    rec = nejm()
    rec["question"] = (
        "A 13-year-old boy from Mali was referred to the pediatric urology clinic with a 3-month history of "
        "gross hematuria. What is the most likely diagnosis?"
    )
    opening = RuleBasedPatient(nejm_case(rec, "nejm-0002")).opening()
    assert "referred" not in opening and "13-year-old boy from" not in opening
    assert "hematuria" in opening


# --- (2) answering the question asked ----------------------------------------------------------------------------


def _osce_case(**actor):
    return agentclinic_case(osce(**actor), "agentclinic-0001")


def test_family_history_questions_get_family_history():
    p = RuleBasedPatient(
        _osce_case(
            Family_History="Father died of lung cancer last month.",
            Past_Medical_History="No history of medical or psychiatric illness.",
        )
    )
    a = p.answer("Does anyone in your family have any medical problems?")
    assert "father" in a.text.lower() and "lung cancer" in a.text.lower()
    assert all(p.case.fact(i).category == "family" for i in a.fact_ids)
    none = RuleBasedPatient(_osce_case(Family_History="Information not provided."))
    assert none.answer("Does anyone in your family have any medical problems?").text == NO_FAMILY_HISTORY


def test_family_facts_are_never_the_patients_own():
    case = _osce_case(Family_History="Father has a heart condition.")
    f = next(f for f in case.key_facts if f.category == "family")
    assert f.finding is None and "My father" in (f.patient_text or "")


def test_tests_only_when_requested():
    p = RuleBasedPatient(_osce_case())
    a = p.answer("What did the tests show?")
    assert a.text == TESTS_NOT_TOLD and a.fact_ids == ()


def test_not_sure_only_when_the_record_has_nothing():
    reports = RuleBasedPatient(_osce_case(Review_of_Systems="Reports fever and malaise."))
    assert "fever" in reports.answer("Do you have a fever?").text.lower()
    denies = RuleBasedPatient(
        _osce_case(
            Review_of_Systems="Denies recent fever, weight loss, or increases in stress "
            "outside of concern for work performance.",
            Symptoms={"Primary_Symptom": "Fatigue"},
            History="He is tired.",
        )
    )
    assert denies.answer("Do you have a fever?").text.startswith("No")
    silent = RuleBasedPatient(
        _osce_case(Review_of_Systems="", Symptoms={"Primary_Symptom": "Knee pain"}, History="His knee hurts.")
    )
    assert silent.answer("Do you have a fever?").text == NOT_SURE


def test_no_fact_twice_in_one_answer():
    p = RuleBasedPatient(
        _osce_case(
            Symptoms={"Primary_Symptom": "Knee pain", "Secondary_Symptoms": ["No fever"]},
            History="He has knee pain. He has no fever or other systemic symptoms.",
        )
    )
    a = p.answer("Do you have a fever?")
    assert a.text.lower().count("fever") == 1, a.text


def test_what_brings_you_in_does_not_repeat_the_complaint():
    rec = nejm()  # the vignette's complaint and patient_info's first sentence say the same thing
    p = RuleBasedPatient(nejm_case(rec, "nejm-0003"))
    text = p.answer("What brings you in today?").text
    assert text.lower().count("cough") == 1, text


def test_medication_questions_are_not_answered_from_a_shared_word():
    p = RuleBasedPatient(_osce_case(History="He refuses to let others take on more tasks.", Current_Medications=[]))
    assert "refuse" not in p.answer("Do you take any medications?").text


# --- (4) loaders ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word, age", [("elderly", 75), ("Teen", 15), ("newborn", 0), ("infant", 0), ("toddler", 2)])
def test_ages_in_words(word, age):
    assert parse_age(word) == age


def test_mediq_age_words_load_and_are_said_as_words(tmp_path):
    recs = [
        mediq(1, "Which of the following is the most likely diagnosis?", "Gonococcal arthritis", age="elderly"),
        mediq(2, "Which of the following is the most likely diagnosis?", "Gonococcal arthritis", age="Teen"),
    ]
    for r, who in zip(recs, ("An elderly man", "A teenage boy")):  # the vignette gives the age in words too
        r["context"][0] = r["context"][0].replace("A 22-year-old man", who)
        r["facts"] = [f for f in r["facts"] if "22-year-old" not in f]
    p = write_jsonl(tmp_path / "all_craft_md.jsonl", recs)
    cases = load_mediq(p)
    assert [c.demographics.age for c in cases] == [75, 15]
    opening = RuleBasedPatient(cases[0]).opening()
    assert "elderly man" in opening and "75" not in opening
    assert self_description(15, "male", "teen; a boy") == "I'm a teenage boy."


def test_an_empty_primary_symptom_uses_the_history(tmp_path):
    res = load_file(write_jsonl(tmp_path / "agentclinic_medqa_extended.jsonl", [osce_empty_primary()]))
    assert res.report.loaded == 1 and "cough" in res.cases[0].chief_complaint.lower()


@pytest.mark.parametrize(
    "question, answer, options, kind",
    [
        ("Which of the following is the most likely diagnosis?", "Gout", ["Gout", "Pseudogout"], "diagnosis"),
        (
            "Which of the following is most likely this patient’s diagnosis?",
            "Conduct disorder",
            ["Conduct disorder"],
            "diagnosis",
        ),
        (
            "Which of the following is the patient’s most likely diagnosis?",
            "Conduct disorder",
            ["Conduct disorder"],
            "diagnosis",
        ),
        (
            "Which of the following is associated with this patient's most likely diagnosis?",
            "Cholecystokinin",
            ["Acetylcholine", "Cholecystokinin"],
            "about_diagnosis",
        ),
        (
            "Which of the following is the most significant risk factor for this patient’s most likely diagnosis?",
            "Sex",
            ["Sex", "Age"],
            "about_diagnosis",
        ),
        (
            "Which of the following is the trinucleotide repeat linked to this patient’s most likely condition?",
            "CTG",
            ["CTG", "CGG"],
            "about_diagnosis",
        ),
        (
            "Which of the following laboratory findings would confirm the most likely diagnosis in this patient?",
            "Anti-tTG antibodies",
            ["HLA-DQ2", "Anti-tTG antibodies"],
            "about_diagnosis",
        ),
    ],
)
def test_mediq_diagnosis_questions_from_question_and_options(question, answer, options, kind):
    assert question_type(question, options, answer) == kind


def test_mediq_summary_counts_questions_about_a_diagnosis(tmp_path):
    p = write_jsonl(
        tmp_path / "all_dev_good.jsonl",
        [
            mediq(1, "Which of the following is the most likely diagnosis?", "Gonococcal arthritis"),
            mediq(
                2,
                "Which of the following is associated with this patient's most likely diagnosis?",
                "Cholecystokinin",
                options={"A": "Cholecystokinin", "B": "Gastrin"},
            ),
        ],
    )
    res = read_mediq(p)
    assert res.report.loaded == 1 and "1 not diagnosis questions (about_diagnosis 1)" in res.report.summary()


def test_mediq_answer_with_a_stray_quote_is_one_name(tmp_path):
    rec = mediq(1, "Which of the following is the most likely diagnosis?", 'Squamous cell lung carcinoma\n"')
    (case,) = load_mediq(write_jsonl(tmp_path / "m.jsonl", [rec]))
    assert case.diagnosis == "Squamous cell lung carcinoma"


# --- (5) side channels -----------------------------------------------------------------------------------------------


def test_opening_never_describes_the_defining_finding():
    rec = nejm("Lisch nodules")
    rec["answers"] = [{"text": "Iris melanoma", "correct": False}, {"text": "Lisch nodules", "correct": True}]
    rec["question"] = (
        "A 40-year-old man with neurofibromatosis type 1 presented for a yearly eye exam and was found to have "
        "multiple well-defined, light-brown nodules elevated above the iris bilaterally. What is the most "
        "likely diagnosis?"
    )
    case = nejm_case(rec, "nejm-0004")
    p = RuleBasedPatient(case)
    opening = copy.deepcopy(p).opening()
    assert "nodule" not in opening.lower() and "iris" not in opening.lower() and "eye exam" in opening
    assert any("nodules elevated above the iris" in f.text for f in case.key_facts if f.category == "exam")


def test_a_complaint_sharing_the_diagnosis_word_is_not_the_opening():
    case = _osce_case(
        Symptoms={"Primary_Symptom": "Pearly papules on the glans", "Secondary_Symptoms": ["Mild itching"]}
    )
    case = case.model_copy(update={"diagnosis": "Pearly penile papules"})
    assert "papule" not in RuleBasedPatient(case).opening().lower()


def test_is_it_x_gets_the_same_answer_whatever_x_is():
    case = _osce_case()  # community-acquired pneumonia; the record talks of cough and fever
    p = RuleBasedPatient(case)
    answers = {
        x: copy.deepcopy(p).answer(f"Is it {x}?")
        for x in ("community-acquired pneumonia", "pneumonia", "gout", "a productive cough thing", "Lisch nodules")
    }
    assert {a.text for a in answers.values()} == {DIAGNOSIS_REFUSAL}
    assert all(a.fact_ids == () for a in answers.values())
    assert copy.deepcopy(p).answer("Is it painful?").text != DIAGNOSIS_REFUSAL or True  # a descriptor is a question


# --- (6) consult evaluate -----------------------------------------------------------------------------------------


def test_transcripts_record_their_case_file_and_evaluate_needs_no_flag(tmp_path):
    from environments.consultation.cli import main

    cases = write_jsonl(tmp_path / "agentclinic_small.jsonl", [osce(), osce("Gout")])
    out = tmp_path / "dialogs.jsonl"
    assert main(["consult", "run", "--doctor", "scripted:wander", "--cases", str(cases), "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["case_file"] == str(cases.resolve()) for r in recs)
    assert main(["consult", "evaluate", str(out)]) == 0


def test_a_missing_cases_flag_is_named_once(tmp_path, capsys):
    from environments.consultation.cli import main

    recs = [
        {"case_id": f"agentclinic-{i:04d}", "messages": [{"role": "assistant", "content": "DIAGNOSIS: gout"}]}
        for i in range(1, 6)
    ]
    out = write_jsonl(tmp_path / "dialogs.jsonl", recs)
    assert main(["consult", "evaluate", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("--cases FILE") == 1 and "5 dialogs (lines 1-5)" in err


# --- (7) scripted doctors respect age and sex ------------------------------------------------------------------------


def test_scripted_good_never_diagnoses_what_age_or_sex_rule_out(tmp_path):
    from environments.consultation.cli import run_dialogs
    from environments.consultation.scripted import plausible
    from mock_patients.knowledge import default_table

    table = default_table()
    assert not plausible(table, "bph", 0, "male") and not plausible(table, "bph", 60, "female")
    assert not plausible(table, "ectopic_pregnancy", 30, "male") and plausible(table, "bph", 70, "male")
    newborn = osce(
        "Hirschsprung disease",
        Demographics="2-day-old male infant",
        History="He has not passed meconium and his belly is swollen.",
        Symptoms={"Primary_Symptom": "Abdominal distension", "Secondary_Symptoms": ["Vomiting"]},
    )
    cases = load_file(write_jsonl(tmp_path / "newborn.jsonl", [newborn])).cases
    (rec,) = run_dialogs("scripted:good", None, cases=cases)
    did = table.disease_id_for(rec["diagnosis"] or "")
    assert did is None or plausible(table, did, 0, "male"), rec["diagnosis"]


# --- (8) the patient-quality benchmark ------------------------------------------------------------------------------


def test_patient_quality_benchmark_on_each_format(tmp_path, capsys):
    bench = _script("patient_quality")
    write_jsonl(tmp_path / "agentclinic_medqa.jsonl", [osce(), osce("Gout")])
    write_jsonl(tmp_path / "agentclinic_nejm.jsonl", [nejm()])
    write_jsonl(
        tmp_path / "all_dev_good.jsonl",
        [mediq(1, "Which of the following is the most likely diagnosis?", "Gonococcal arthritis")],
    )
    assert bench.main([str(tmp_path), "--cases", "2", "--show", "--side-all"]) == 0
    out = capsys.readouterr().out
    assert out.count("flagged 0 (0%)") == 3, out
    assert "true dx answered with facts 0/" in out and "replies that differ 0/" in out
    assert bench.main([str(tmp_path), "--cases", "0"]) == 2


# --- later findings of the reading (each was an error in a read sample) ----------------------------------------


@pytest.mark.parametrize(
    "text, category",
    [
        ("Familial history of similar symptoms.", "family"),
        ("The woman's mother also experienced hair thinning.", "family"),
        ("Her mother has rheumatoid arthritis for which she takes methotrexate.", "family"),
        ("His family members have noticed a yellowish coloring of his skin.", "hpi"),
        ("The mother reports that her son has no history of medical problems.", "hpi"),  # the son is the patient
        ("He took a leave from his army duties because of the fear.", "hpi"),  # "took" without a medicine
        ("The patient travels from January through April.", "social"),  # "April" is not a drug ending in -pril
    ],
)
def test_family_and_medication_topics(text, category):
    f = FactBuilder().add(text, "symptom" if text.startswith("Familial") else "hpi")
    assert f.category == category, f


@pytest.mark.parametrize(
    "text, said",
    [
        ("Inability to flex the right ring finger.", "I can't flex the right ring finger."),
        ("Attempts to remove lesions unsuccessful.", "I tried to remove lesions, without success."),
        (
            "Sudden onset of paralysis in his lower legs.",
            "I've had paralysis in my lower legs, and it came on suddenly.",
        ),
        (
            "A 1-month history of fatigue and diffuse bone pain.",
            "I've had fatigue and diffuse bone pain for the past 1 month.",
        ),
        (
            "A 3-month history of worsening skin lesions and a 1-month history of fever.",
            "I've had worsening skin lesions for the past 3 months, and fever for the past 1 month.",
        ),
        (
            "A 55-year-old man who had been admitted to the intensive care unit had a vesicular rash on his trunk.",
            "I had been admitted to the intensive care unit, and I had a vesicular rash on my trunk.",
        ),
        (
            "A 42-year-old woman receiving chemotherapy for leukemia developed plaques on her face.",
            "While receiving chemotherapy for leukemia, I developed plaques on my face.",
        ),
        ("A well-child examination.", "I'm here for a well-child examination."),
        (
            "The mother reports that her son has no history of medical problems.",
            "My mother reports that I have no history of medical problems.",
        ),
    ],
)
def test_more_first_person(text, said):
    assert to_first_person(text) == said


def test_mediq_openings_from_the_first_sentence(tmp_path):
    from mock_patients.loaders.common import chief_complaint

    assert (
        chief_complaint("A 35-year-old is brought into the emergency room after a bicycle accident.")
        == "Brought in after a bicycle accident"
    )
    assert to_first_person("Brought in after a bicycle accident") == "I came in after a bicycle accident."
    assert chief_complaint(
        "A 59-year-old man presents to his physician, accompanied by his wife, who requests treatment "
        "for his “chronic pessimism.”"
    ).startswith("His wife requests treatment")
    assert (
        chief_complaint("Parents bring an 11-month-old baby to the clinic because the baby has a fever of 39.0°C.")
        == "The baby has a fever of 39.0°C"
    )


def test_a_guess_that_is_an_activity_is_still_a_guess():
    p = RuleBasedPatient(_osce_case())
    assert copy.deepcopy(p).answer("Is it Gardening?").text == DIAGNOSIS_REFUSAL
    assert copy.deepcopy(p).answer("Is it painful?").text != DIAGNOSIS_REFUSAL


@pytest.mark.parametrize(
    "text, category, said",
    [
        ("Pain started while playing football.", "symptom", "My pain started while playing football."),
        ("Not currently on any medications.", "medication", "No, I'm not currently on any medications."),
        ("The current medication includes acetaminophen.", "medication", "I take acetaminophen."),
        ("Recovery after CPR.", "symptom", "I recovered after CPR."),
        ("Shows irritability towards mother.", "symptom", "I show irritability towards my mother."),
        (
            "Family history of similar leg problems.",
            "symptom",
            "There's a history in my family of similar leg problems.",
        ),
        ("Uncontrollable behavior.", "chief_complaint", "I have uncontrollable behavior."),
    ],
)
def test_bare_phrases_in_the_first_person(text, category, said):
    assert FactBuilder().add(text, category).patient_text == said  # type: ignore[arg-type]


def test_a_negated_list_ends_where_another_history_begins():
    from mock_patients.facts import split_facts

    got = split_facts("She denies any sexual activity, and family history includes migraine headaches in her mother.")
    assert got == [("No sexual activity", False), ("family history includes migraine headaches in her mother", True)]


def test_the_companion_is_not_the_complaint():
    from mock_patients.loaders.common import chief_complaint

    assert (
        chief_complaint(
            "A 28-year-old woman comes to the physician with her mother because of a 1-week history of "
            "feeling unusually energetic."
        )
        == "A 1-week history of feeling unusually energetic"
    )
    assert (
        to_first_person("A 1-week history of feeling unusually energetic")
        == "I've been feeling unusually energetic for the past 1 week."
    )


@pytest.mark.parametrize(
    "text, said",
    [
        ("His annual physical exam.", "I'm here for my annual physical exam."),
        ("An MRI of his lower back.", "I'm here for an MRI of my lower back."),
        ("Exclusively breastfed.", "I've been exclusively breastfed."),
        ("Born at term, no prenatal care for the mother.", "I was born at term, no prenatal care for my mother."),
        (
            "Family history notable for an older brother's death.",
            "There's a history in my family of an older brother's death.",
        ),
    ],
)
def test_visits_and_births_in_the_first_person(text, said):
    assert to_first_person(text) == said
