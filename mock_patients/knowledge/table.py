"""The disease–finding table's data: 59 diseases across 17 specialties, their findings, tests and lexicon.

Probabilities are rounded textbook frequencies (UpToDate / Harrison's style figures, simplified): they make
a plausible simulated world, not a clinical reference. Findings are flat and mutually distinct (no
"cough" vs "productive cough" pair) so a case never states two overlapping findings inconsistently.
Diagnosis names never appear in finding phrasing, so a patient reciting findings cannot name its disease.

The data lives in two modules: findings.py (findings and the tests that reveal them) and
diseases.py (diseases by specialty); this module holds the generic lexicon and assembles the table.
"""

from __future__ import annotations

from mock_patients.knowledge import KnowledgeTable
from mock_patients.knowledge.diseases import DISEASES
from mock_patients.knowledge.findings import FINDINGS, TESTS

# --- generic lexicon: concepts a question may name without naming one finding ------------------------
BODY_PARTS = {
    "chest": ("chest", "breastbone", "ribs"),
    "abdomen": ("abdomen", "abdominal", "belly", "stomach", "tummy", "gut"),
    "head": ("head", "forehead", "temple"),
    "throat": ("throat", "swallow", "swallowing", "tonsils"),
    "nose": ("nose", "nasal", "sinus", "sinuses"),
    "face": ("face", "facial", "cheek", "cheeks", "lips", "tongue", "jaw"),
    "ear": ("ear", "ears", "hearing"),
    "eye": ("eye", "eyes", "vision", "sight", "seeing"),
    "neck": ("neck", "glands", "lymph nodes"),
    "back": ("back", "spine", "flank", "loin", "side"),
    "arm": ("arm", "arms", "shoulder", "hand", "hands", "fingers", "wrist"),
    "leg": ("leg", "legs", "calf", "calves", "thigh", "ankle", "ankles", "knee", "knees"),
    "foot": ("foot", "feet", "toe", "toes"),
    "joint": ("joint", "joints", "knee", "knees", "wrist", "knuckles"),
    "skin": ("skin", "body surface"),
    "urinary": ("urine", "urinate", "urinating", "urination", "pee", "peeing", "bladder", "wee"),
    "bowel": ("bowel", "bowels", "stool", "stools", "poop", "poo", "bowel movements"),
    "heart": ("heart", "heartbeat", "pulse"),
    "lungs": ("lungs", "breathing", "breath", "breathe"),
    "pelvis": ("pelvis", "pelvic", "groin", "lower belly"),
    "mind": ("mood", "mind", "emotions", "mental health", "spirits"),
}
SYMPTOM_WORDS = {
    "pain": ("pain", "painful", "hurt", "hurts", "ache", "aching", "sore", "discomfort", "tender"),
    "swelling": ("swelling", "swollen", "swell", "puffy", "lump", "lumps"),
    "bleeding": ("blood", "bleeding", "bloody", "bleed"),
    "rash": ("rash", "spots", "blisters", "hives", "redness"),
    "weakness": ("weakness", "weak"),
    "stiffness": ("stiff", "stiffness"),
    "color": ("yellow", "pale", "dark", "black", "red"),
    "burning": ("burning", "burn"),
}
TOPICS = {
    "opening": (
        "what brings you",
        "brings you in",
        "what brought you",
        "main problem",
        "the problem",
        "what is wrong",
        "what's wrong",
        "what's going on",
        "how can i help",
        "tell me about your symptoms",
        "describe your symptoms",
        "your symptoms",
        "chief complaint",
        "why are you here",
        "what happened",
    ),
    "more": (
        "anything else",
        "any other symptoms",
        "other symptoms",
        "any other problems",
        "else going on",
        "something else",
        "other complaints",
    ),
    "onset": ("when did", "how long", "since when", "start", "started", "begin", "began", "duration", "first notice"),
    "severity": (
        "how bad",
        "how severe",
        "severity",
        "scale of",
        "out of 10",
        "out of ten",
        "rate the",
        "intensity",
        "how strong",
    ),
    "age": ("how old", "your age", "age", "years old", "date of birth"),
    "sex": ("sex", "gender", "male or female"),
    "pmh": (
        "medical history",
        "past medical",
        "medical conditions",
        "health problems",
        "chronic conditions",
        "illnesses",
        "been diagnosed with",
        "previous diagnoses",
        "past history",
    ),
    "medication": (
        "medications",
        "medication",
        "medicines",
        "medicine",
        "pills",
        "prescriptions",
        "drugs you take",
        "tablets",
    ),
    "allergy": ("allergies to medication", "drug allergies", "allergic to any medication", "allergic to medicines"),
    "family": ("family history", "family", "mother", "father", "parents", "siblings", "brother", "sister", "relatives"),
    "social": ("occupation", "job", "work", "live with", "living situation", "lifestyle", "social history"),
    "diagnosis": (
        "diagnosis",
        "what do you think you have",
        "what do i have",
        "what disease",
        "what condition",
        "what illness",
        "your condition",
        "the answer",
        "what's the name",
        "name of your illness",
    ),
}


def build_table() -> KnowledgeTable:
    return KnowledgeTable(
        findings=tuple(FINDINGS),
        tests=tuple(TESTS),
        diseases=tuple(DISEASES),
        body_parts={k: tuple(v) for k, v in BODY_PARTS.items()},
        symptom_words={k: tuple(v) for k, v in SYMPTOM_WORDS.items()},
        topics={k: tuple(v) for k, v in TOPICS.items()},
    )
