"""The patient's voice: grammatical first-person rewrites of record sentences (shapes from each public
format), the words a patient uses for themself by age, lab values kept for tests, and history facts found
by their own question topics."""

from __future__ import annotations

import pytest

from mock_patients.cases import Demographics, PatientCase, Symptom
from mock_patients.consultation import Consultation
from mock_patients.fact_kinds import measurement, topic_category
from mock_patients.facts import FactBuilder, structured_facts
from mock_patients.patient import RuleBasedPatient
from mock_patients.rewrite import (
    age_sentence,
    person_noun,
    self_description,
    to_first_person,
)


@pytest.mark.parametrize(
    "src, want",
    [
        ("The man denied having a fever.", "I haven't had a fever."),
        ("A 22-year-old man presented with complaints.", "I'm a 22-year-old man."),
        (
            "A 22-year-old man presented with complaints of painful lesions on his penis that started 10 days ago",
            "I've had painful lesions on my penis that started 10 days ago.",
        ),
        (
            "The patient presents with complaints of fatigue, flank pain, and a persistent fever.",
            "I have fatigue, flank pain, and a persistent fever.",
        ),
        ("Weakness in upper limbs", "I have weakness in my upper limbs."),
        ("Difficulty climbing stairs", "I have difficulty climbing stairs."),
        ("Improvement of symptoms after rest", "My symptoms get better after rest."),
        ("Distended abdomen", "My abdomen is distended."),
        ("Yellow discoloration of the skin", "I have yellow discoloration of my skin."),
        ("Episode of loss of consciousness", "I've had an episode of loss of consciousness."),
        ("History of rash during antibiotic treatment", "I have a history of rash during antibiotic treatment."),
        ("Regained consciousness quickly without confusion", "I regained consciousness quickly without confusion."),
        ("Drinks alcohol socially.", "I drink alcohol socially."),
        ("Works as a graphic designer.", "I work as a graphic designer."),
        ("Retired school teacher.", "I'm a retired school teacher."),
        ("No significant past medical history.", "No, I don't have any significant past medical history."),
        ("Not on any regular medications.", "No, I'm not on any regular medications."),
        ("Crohn disease diagnosed 2 years ago.", "I was diagnosed with Crohn disease 2 years ago."),
        (
            "The man's female partner was diagnosed with chlamydia one year earlier.",
            "My female partner was diagnosed with chlamydia one year earlier.",
        ),
        (
            "Patient's concentration and interest at work have diminished.",
            "My concentration and interest at work have diminished.",
        ),
        ("Her immunizations are up-to-date.", "My immunizations are up-to-date."),
        (
            "Patient goes to bed early at night but is unable to fall asleep.",
            "I go to bed early at night but I'm unable to fall asleep.",
        ),
        ("Patient smokes 1 pack of cigarettes per day.", "I smoke 1 pack of cigarettes per day."),
        ("He has never smoked.", "I've never smoked."),
        ("She is not jaundiced.", "I'm not jaundiced."),
        ("The patient reports a 1-month history of double vision.", "I've had double vision for the past 1 month."),
        (
            "She notes that these symptoms tend to worsen after physical activity.",
            "I've noticed that these symptoms tend to worsen after physical activity.",
        ),
        (
            "This is the child's third visit to the clinic in 4 months.",
            "This is my third visit to the clinic in 4 months.",
        ),
        ("The patient denies any family history of skin cancer.", "I don't have any family history of skin cancer."),
        ("Mother is a primigravida.", "My mother is a primigravida."),
        (
            "She has a medical history of hypertension and has been on lisinopril.",
            "I have a medical history of hypertension and I've been on lisinopril.",
        ),
        (
            "You have been experiencing a dry cough for the past 6 months.",
            "I've had a dry cough for the past 6 months.",
        ),
    ],
)
def test_first_person_rewrites_stay_grammatical(src, want):
    assert to_first_person(src) == want


def test_no_third_person_left_in_spoken_facts():
    sentences = [
        "The man had painful lesions on his penis.",
        "The child presents with red-brown papules.",
        "The patient initially noticed redness around his nails.",
        "She feels well between these episodes.",
        "His mother reports that he has been gaining weight.",
        "He takes no medications, and he has no allergies.",
    ]
    for s in sentences:
        out = to_first_person(s)
        assert not any(w in out.split() for w in ("he", "she", "his", "her", "patient", "man")), (s, out)


@pytest.mark.parametrize(
    "age, sex, desc, noun, me",
    [
        (35, "female", "35-year-old woman", "woman", "I'm a 35-year-old woman."),
        (5, "female", "5-year-old girl", "girl", "I'm a 5-year-old girl."),
        (9, "male", "9-year-old male", "boy", "I'm a 9-year-old boy."),
        (0, "male", "8-month-old boy", "baby boy", "I'm an 8-month-old baby boy."),
        (0, "female", "Newborn, female", "newborn girl", "I'm a newborn girl."),
        (16, None, "16-year-old", "child", "I'm a 16-year-old child."),
        (70, "male", "", "man", "I'm a 70-year-old man."),
    ],
)
def test_sex_words_by_age(age, sex, desc, noun, me):
    assert person_noun(age, sex, desc) == noun
    assert self_description(age, sex, desc) == me


def test_child_cases_open_with_child_words():
    demo = Demographics(age=5, sex="female", description="5-year-old girl")
    facts = structured_facts(demographics=demo, chief_complaint="Vomiting")
    case = PatientCase(
        id="c", demographics=demo, chief_complaint="Vomiting", diagnosis="Cyclic vomiting syndrome", key_facts=facts
    )
    opening = RuleBasedPatient(case).opening()
    assert "5-year-old girl" in opening and "woman" not in opening
    assert age_sentence(0, "8-month-old boy") == "I'm 8 months old."
    assert [f.patient_text for f in facts if f.category == "demographics"] == ["I'm 5 years old.", "I'm a girl."]


@pytest.mark.parametrize(
    "text, want",
    [
        ("Patient's Pco2 is 16 mm Hg.", ("test", "Arterial blood gas / Pco2")),
        ("Patient's glucose level is 450 mg/dL.", ("test", "Serum chemistry / glucose")),
        (
            "Her temperature is 36.8°C (98.8°F), pulse is 99/min, and blood pressure is 82/52 mm Hg.",
            ("exam", "Vital signs"),
        ),
        ("Patient's hematocrit is 27.1%.", ("test", "Complete blood count / hematocrit")),
        ("Weight loss of 5.4 kg (12 lb)", None),
        ("She has lost 4 kg (8.8 lb) in the last few weeks.", None),
        ("A 1-cm long horn-like projection on the scalp.", None),
    ],
)
def test_measurements(text, want):
    assert measurement(text) == want


def test_lab_values_are_test_results_not_patient_speech():
    b = FactBuilder()
    b.add("Chief complaint", "chief_complaint")
    pco2 = b.add("Patient's Pco2 is 16 mm Hg", "hpi")
    bp = b.add("His blood pressure is 80/55 mm Hg", "hpi")
    assert (pco2.category, pco2.test, pco2.patient_text) == ("test", "Arterial blood gas / Pco2", None)
    assert bp.category == "exam" and bp.patient_text is None
    case = PatientCase(id="m", chief_complaint="c", diagnosis="Diabetic ketoacidosis", key_facts=tuple(b.facts))
    p = RuleBasedPatient(case)
    assert "16" not in p.answer("What is your Pco2?").text
    r = Consultation(case).doctor_turn("REQUEST TEST: arterial blood gas")
    assert r.reply == "Pco2 is 16 mm Hg" and r.fact_ids == (pco2.id,)


@pytest.mark.parametrize(
    "text, cat, want",
    [
        ("He takes no medications", "hpi", "medication"),
        ("Not on any regular medications.", "pmh", "medication"),
        ("Her sister was diagnosed with melanoma.", "hpi", "family"),
        ("No known drug allergies", "hpi", "allergy"),
        ("No history of similar illness in the family.", "social", "family"),
        ("Drinks alcohol socially", "hpi", "social"),
        ("She has a history of hypertension", "hpi", "hpi"),
        ("Fever", "symptom", "symptom"),
    ],
)
def test_topic_categories(text, cat, want):
    assert topic_category(text, cat) == want


def test_history_topics_find_their_facts():
    demo = Demographics(age=62, sex="female")
    facts = structured_facts(
        demographics=demo,
        chief_complaint="Fatigue",
        symptoms=[Symptom(name="Flank pain")],
        history_of_present_illness="She has been on a stable regimen of lisinopril and omeprazole. Her mother had a stroke.",
        social_history=["Non-smoker, drinks alcohol socially.", "Retired school teacher."],
        family_history=["Father had colon cancer."],
        medications=["Simvastatin 20 mg daily."],
        allergies=["Penicillin."],
    )
    case = PatientCase(
        id="h", demographics=demo, chief_complaint="Fatigue", diagnosis="Acute interstitial nephritis", key_facts=facts
    )
    p = RuleBasedPatient(case)
    meds = p.answer("What medications do you take?").text
    assert "simvastatin" in meds.lower() and "lisinopril" in meds.lower()
    assert "colon cancer" in p.answer("Any family history?").text
    assert p.answer("Any allergies?").text == "I'm allergic to penicillin."
    assert p.answer("Do you smoke?").text == "No, I don't smoke."
    assert p.answer("Do you drink?").text == "I drink alcohol socially."
    assert "teacher" in p.answer("What do you do for work?").text


@pytest.mark.parametrize(
    "src, want",
    [  # shapes found by benchmarks/consult_public_cases.py
        (
            "The patient was involved in a collision where she was the restrained driver.",
            "I was involved in a collision where I was the restrained driver.",
        ),
        ("A 5-year-old girl is brought to the emergency department by her mother.", "I'm a 5-year-old girl."),
        (
            "The patient was brought to the emergency department after an episode of fainting.",
            "I came in after an episode of fainting.",
        ),
        ("A 1-year history of skin darkening on her face.", "I've had skin darkening on my face for the past 1 year."),
        ("The rash eventually destroyed the patient's nails.", "The rash eventually destroyed my nails."),
        ("Presence of a left breast mass.", "I have a left breast mass."),
        ("Elementary school teacher.", "I'm an elementary school teacher."),
        ("Alert and active.", "I'm alert and active."),
    ],
)
def test_public_sentence_shapes(src, want):
    assert to_first_person(src) == want


@pytest.mark.parametrize(
    "src, want",
    [  # what/how the patient is, a repeat visit, a sentence led by "the"
        ("Newborn, no past medical history available.", "I'm a newborn, and I have no past medical history."),
        ("Term infant, no prior illnesses.", "I'm a term infant, and I have no prior illnesses."),
        (
            "Student and active in sports, particularly tennis.",
            "I'm a student and active in sports, particularly tennis.",
        ),
        ("Nurse, works night shifts.", "I'm a nurse, and I work night shifts."),
        ("Non-smoker and drinks wine on weekends.", "I'm a non-smoker, and I drink wine on weekends."),
        (
            "Overall healthy appearance, no other complaints noted.",
            "Overall, I look healthy, and I have no other complaints.",
        ),
        ("Tired appearance", "I look tired."),
        (
            "The second time in 2 weeks presenting with a swollen knee.",
            "This is the second time in 2 weeks I've come in with a swollen knee.",
        ),
        (
            "The area where the blisters were typically appears darker afterwards.",
            "The area where the blisters were typically appears darker afterwards.",
        ),
        ("Scaling on the back of his hands.", "I have scaling on the back of my hands."),
        (
            "The father says that the child has had a cough and does not sleep.",
            "My father says that I have had a cough and does not sleep.",
        ),
    ],
)
def test_self_descriptions_and_led_sentences(src, want):
    assert to_first_person(src) == want


@pytest.mark.parametrize(
    "src", ["Fever, chills.", "Stridor and wheezing.", "Blister, painful.", "Tremor and stiffness."]
)
def test_symptoms_with_person_like_endings_are_not_roles(src):
    assert not to_first_person(src).startswith("I'm a")


def test_an_adjective_ending_in_ly_is_not_an_adverb():
    assert to_first_person("Sexually active with one partner.") == "I'm sexually active with one partner."
    assert to_first_person("Scaly plaques on her elbows.") == "I have scaly plaques on my elbows."


@pytest.mark.parametrize(
    "src, want",
    [
        (
            "Intermittent, sharp pain in the right lower quadrant.",
            "I have intermittent, sharp pain in the right lower quadrant.",
        ),
        ("Persistent cough.", "I have a persistent cough."),
        ("Pregnant.", "I'm pregnant."),
        ("Medical resident.", "I'm a medical resident."),
    ],
)
def test_adjectives_ending_in_ent_or_ant_are_not_roles(src, want):
    assert to_first_person(src) == want
