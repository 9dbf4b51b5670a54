"""Negation and polarity: every fact is present or absent from its own text, in each public record format
(AgentClinic OSCE fields, NEJM patient info, MediQ context sentences and numbered atomic facts), negated
lists split per item, and an absent fact told as a denial. A property test generates negations from
templates x findings x cues."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_patients.cases import Demographics, Symptom
from mock_patients.facts import split_facts, structured_facts
from mock_patients.polarity import (
    clauses,
    fact_polarity,
    negation_cue,
    split_negated_list,
)

# (statement, present): shapes taken from each public format; our own wording, short quotes as inputs
EXAMPLES = [
    # AgentClinic OSCE: Secondary_Symptoms, Past_Medical_History, Social_History, Review_of_Systems, results
    ("No fever.", False),
    ("No urinary incontinence", False),
    ("No bite marks or injuries", False),
    ("Non-smoker.", False),
    ("Not on any regular medications.", False),
    ("No significant past medical history.", False),
    ("Regained consciousness quickly without confusion", True),
    ("Weakness in upper limbs", True),
    ("Non-healing, crusty, red lesions on the penile shaft", True),
    ("Lesions are painless", True),
    ("Drinks alcohol socially.", True),
    ("Smokes 1 pack of cigarettes per day", True),
    ("Bluish macules on the skin that do not blanch with pressure", True),
    ("The patient does not report any fever, abdominal pain, or changes in bowel habits.", False),
    ("Urinalysis / Bacterial culture: Negative", False),
    ("TORCH screen / Rubella IgM: Positive", True),
    ("Skin: No current rash or lesions", False),
    ("Chest CT: Normal, no thymoma or other masses detected.", True),
    ("Abdomen: Mild flank tenderness, no rebound or guarding", True),
    # NEJM patient_info
    ("You have never smoked in your life.", False),
    ("She was a lifetime nonsmoker", False),
    # MediQ context sentences and atomic facts
    ("The man denied having a fever.", False),
    ("The patient has never smoked.", False),
    ("She is not jaundiced.", False),
    ("He takes no medications", False),
    ("Patient is not on any medications.", False),
    ("The patient's sister was diagnosed with melanoma.", True),
    ("The child's medical history is unremarkable.", False),
    ("The antifungal cream has not relieved the symptoms.", True),
    ("Patient is unable to fall asleep.", True),
    ("The KOH test result is negative.", False),
    ("Patient denies thoughts of suicide or death.", False),
    ("The baby has not had any known illnesses since birth.", False),
    ("Patient complains of fever.", True),
]


@pytest.mark.parametrize("text, present", EXAMPLES)
def test_polarity_of_public_format_shapes(text, present):
    assert fact_polarity(text) is present, (text, negation_cue(text))


@pytest.mark.parametrize(
    "text, items",
    [
        ("Denies fever, cough, or recent travel.", ["fever", "cough", "recent travel"]),
        (
            "Patient denies experiencing any chest pain, palpitations, shortness of breath, or recent infections.",
            ["chest pain", "palpitations", "shortness of breath", "recent infections"],
        ),
        (
            "He denied fever, chills, night sweats, rashes, dysuria, discharge, testicular pain, or proctitis",
            ["fever", "chills", "night sweats", "rashes", "dysuria", "discharge", "testicular pain", "proctitis"],
        ),
        ("No episodes of fever, vomiting, or diarrhea.", ["fever", "vomiting", "diarrhea"]),
        (
            "He has no history of skin cancer or suspicious moles",
            ["history of skin cancer", "history of suspicious moles"],
        ),
        (
            "The patient denies any personal or family history of skin cancer.",
            ["personal or family history of skin cancer"],
        ),
        ("Roommates did not report any fever, vomiting, or flank pain.", ["fever", "vomiting", "flank pain"]),
    ],
)
def test_negated_lists_split_per_item(text, items):
    assert split_negated_list(text)[1] == items
    facts = split_facts(text)
    assert [t for t, _ in facts] == [f"No {i}" for i in items] and not any(p for _, p in facts)


def test_clauses_keep_both_statements():
    assert split_facts("Non-smoker, drinks wine occasionally.") == [
        ("Non-smoker", False),
        ("drinks wine occasionally", True),
    ]
    got = split_facts("She was a lifetime nonsmoker and reported no fevers, joint aches, or rashes.")
    assert got == [
        ("She was a lifetime nonsmoker", False),
        ("No fevers", False),
        ("No joint aches", False),
        ("No rashes", False),
    ]
    assert clauses("He takes no medications, and he has no history of skin cancer.") == [
        "He takes no medications",
        "he has no history of skin cancer.",
    ]


def test_absent_facts_are_told_as_denials():
    facts = structured_facts(
        demographics=Demographics(age=40, sex="male"),
        chief_complaint="Episode of loss of consciousness",
        symptoms=[Symptom(name="No fever."), Symptom(name="No bite marks or injuries")],
        history_of_present_illness="The man denied having a fever. He has never smoked.",
        social_history=["Non-smoker."],
        review_of_systems="Denies headache, cough, or recent travel.",
    )
    absent = [f for f in facts if not f.present]
    assert {f.text for f in absent} >= {
        "No fever.",
        "No bite marks.",
        "No injuries.",
        "No headache.",
        "No cough.",
        "No recent travel.",
        "Non-smoker.",
    }
    for f in absent:
        assert f.patient_text.startswith("No"), f
    smoke = next(f for f in facts if f.text == "Non-smoker.")
    assert smoke.finding == "smoker" and smoke.patient_text == "No, I don't smoke."
    assert not any("Yes" in (f.patient_text or "") for f in absent)
    fever = [f for f in facts if f.finding == "fever"]
    assert fever and all(not f.present for f in fever)
    assert (
        next(f for f in facts if f.text == "No fever." and f.category == "hpi").source_text
        == "The man denied having a fever."
    )


# --- property: generated negations -------------------------------------------------------------------

FINDINGS = [
    "fever",
    "chest pain",
    "a cough",
    "night sweats",
    "shortness of breath",
    "weight loss",
    "rashes",
    "abdominal pain",
    "headaches",
    "joint swelling",
    "blood in the urine",
    "double vision",
]
SUBJECTS = ["", "The patient ", "She ", "He ", "Patient ", "The man ", "A 45-year-old woman ", "The child "]
NEGATED = [
    "{s}denies {f}",
    "{s}denied having {f}",
    "{s}has no {f}",
    "{s}does not have {f}",
    "{s}did not report {f}",
    "No {f}",
    "{s}reports no {f}",
    "Negative for {f}",
    "Without {f}",
    "{s}has not had {f}",
    "{s}never had {f}",
]
AFFIRMED = [
    "{s}reports {f}",
    "{s}has {f}",
    "{s}complains of {f}",
    "{s}has had {f} for 3 days",
    "{f} for 2 weeks",
    "{s}presents with {f}",
    "{s}developed {f} without fever",
    "{f}, not relieved by rest",
]


def _sentence(template: str, subject: str, finding: str) -> str:
    s = template.format(s=subject, f=finding)
    if not template.startswith("{s}"):
        s = s[0].upper() + s[1:]
    return s[0].upper() + s[1:] + "."


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(NEGATED + AFFIRMED), st.sampled_from(SUBJECTS), st.sampled_from(FINDINGS))
def test_generated_negations_have_the_right_polarity(template, subject, finding):
    text = _sentence(template, subject if template.startswith("{s}") else "", finding)
    assert fact_polarity(text) is (template in AFFIRMED), text


def test_generated_negated_lists_split_into_absent_items():
    rng = random.Random(20)
    for _ in range(200):
        items = rng.sample(FINDINGS, rng.randint(2, 5))
        items = [i.removeprefix("a ") for i in items]
        joined = ", ".join(items[:-1]) + rng.choice([", or ", " or ", ", and ", ", nor "]) + items[-1]
        text = _sentence(
            rng.choice(["{s}denies {f}", "{s}has no {f}", "No {f}", "{s}did not report any {f}"]),
            rng.choice(SUBJECTS),
            joined,
        )
        got = split_facts(text)
        assert [t for t, _ in got] == [f"No {i}" for i in items], text
        assert not any(p for _, p in got)


@pytest.mark.parametrize(
    "text", ["No family history of breast cancer.", "No known family history of genetic or congenital diseases."]
)
def test_no_family_history_is_absent(text):
    # "No family" is not a subject ("family" is a person word): the statement opens with its negation
    assert fact_polarity(text) is False
