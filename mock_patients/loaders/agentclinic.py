"""AgentClinic OSCE records (Schmidgall et al. 2024; agentclinic_medqa*.jsonl, agentclinic_mimiciv.jsonl) ->
`PatientCase`.

One object per line:

    {"OSCE_Examination": {
        "Objective_for_Doctor": "...",
        "Patient_Actor": {"Demographics": "35-year-old female", "History": "...",
                          "Symptoms": {"Primary_Symptom": "...", "Secondary_Symptoms": ["...", ...]},
                          "Past_Medical_History": "...", "Social_History": "...", "Review_of_Systems": "...",
                          optional: "Medications" / "Current_Medications", "Family_History", "Allergies"},
        "Physical_Examination_Findings": {free-form nested object},
        "Test_Results": {free-form nested object},
        "Correct_Diagnosis": "..."}}

Exam and test sections become one observation per leaf, named by its key path ("Blood work / Complete blood
count / WBC"); a leaf under a key naming ICD is the diagnosis's code, kept as `diagnosis_codes` (redacted
wherever it appears), never shown. A record without a primary symptom (medqa_extended has one with
`"Symptoms": {}`), or without a diagnosis that is one text of at most 200 characters, is a bad record:
skipped and reported, or an error with `strict=True`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mock_patients.cases import PatientCase, Symptom
from mock_patients.facts import (
    FactBuilder,
    LLMFactExtractor,
    split_sentences,
    structured_facts,
)
from mock_patients.lexicon import default_lexicon
from mock_patients.loaders.common import (
    Split,
    check_split,
    diagnosis_text,
    icd_codes,
    informative,
    link_diagnosis,
    observations,
    parse_demographics,
    text_of,
)
from mock_patients.loaders.report import LoadResult, load_records

_MEDICATION_KEYS = ("Medications", "Current_Medications", "Medication_History", "Medication")
_FAMILY_KEYS = ("Family_History",)
_ALLERGY_KEYS = ("Allergies", "Allergy")


def _items(actor: dict, keys: tuple[str, ...]) -> list[str]:
    """The informative sentences of the first of `keys` the actor has (a text or a list of texts)."""
    for k in keys:
        if k in actor:
            v = actor[k]
            texts = [text_of(x) for x in v] if isinstance(v, list) else [text_of(v)]
            return [s for t in texts for s in split_sentences(t) if informative(s)]
    return []


def _symptoms(actor: dict) -> tuple[str, list[str]]:
    """(primary symptom, secondary symptoms) of a Patient_Actor; ValueError naming the field when unusable."""
    sym = actor.get("Symptoms")
    if isinstance(sym, str):
        sym = {"Primary_Symptom": sym}
    if sym is None:
        sym = {}
    if not isinstance(sym, dict):
        raise ValueError(
            "Patient_Actor.Symptoms must be an object {Primary_Symptom, Secondary_Symptoms} or a text, "
            f"got {type(sym).__name__}"
        )
    primary = text_of(sym.get("Primary_Symptom"))
    secondary: Any = sym.get("Secondary_Symptoms") or []
    if isinstance(secondary, str):
        secondary = [secondary]
    if not isinstance(secondary, list) or not all(isinstance(x, (str, int, float)) for x in secondary):
        raise ValueError("Symptoms.Secondary_Symptoms must be a list of strings or a text")
    rest = [s for s in (text_of(x) for x in secondary) if informative(s)]
    if not informative(primary):
        # an empty primary symptom: the first other symptom, else the history's first sentence, is the complaint
        history = [s for s in split_sentences(text_of(actor.get("History"))) if informative(s)]
        if rest:
            return rest[0], rest[1:]
        if history:
            return history[0], []
        raise ValueError(
            "Symptoms.Primary_Symptom is missing or empty, and the record has no other symptom or "
            "History to take the complaint from"
        )
    return primary, rest


def agentclinic_case(
    record: dict, case_id: str, *, split: Split = "test", extractor: LLMFactExtractor | None = None
) -> PatientCase:
    """One AgentClinic OSCE record; `extractor` (an LLM) splits the free-text history, else rules do."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    exam = record.get("OSCE_Examination", record)
    if not isinstance(exam, dict):
        raise ValueError("OSCE_Examination must be an object")
    actor = exam.get("Patient_Actor")
    if not isinstance(actor, dict):
        raise ValueError("OSCE_Examination.Patient_Actor is missing or not an object")
    dx = diagnosis_text(exam.get("Correct_Diagnosis"), "OSCE_Examination.Correct_Diagnosis")
    primary, secondary = _symptoms(actor)
    demo = parse_demographics(text_of(actor.get("Demographics")))
    lex = default_lexicon()
    b = FactBuilder(lex)
    symptoms = [Symptom(name=s, finding=b.link(s)) for s in secondary]
    pmh = [s for s in split_sentences(text_of(actor.get("Past_Medical_History"))) if informative(s)]
    social = [s for s in split_sentences(text_of(actor.get("Social_History"))) if informative(s)]
    family, meds, allergies = _items(actor, _FAMILY_KEYS), _items(actor, _MEDICATION_KEYS), _items(actor, _ALLERGY_KEYS)
    ros = text_of(actor.get("Review_of_Systems"))
    exams = observations(exam.get("Physical_Examination_Findings"), "Physical examination")
    tests = observations(exam.get("Test_Results"), "Test results")
    history = text_of(actor.get("History"))
    facts = structured_facts(
        demographics=demo,
        chief_complaint=primary,
        symptoms=symptoms,
        history_of_present_illness=history,
        past_medical_history=pmh,
        social_history=social,
        family_history=family,
        medications=meds,
        allergies=allergies,
        exam_findings=exams,
        test_results=tests,
        review_of_systems=ros if informative(ros) else "",
        lexicon=lex,
        extractor=extractor,
    )
    return PatientCase(
        id=case_id,
        source="agentclinic",
        split=split,
        demographics=demo,
        chief_complaint=primary,  # type: ignore[arg-type]
        history_of_present_illness=history,
        symptoms=tuple(symptoms),
        past_medical_history=tuple(pmh),
        social_history=tuple(social),
        family_history=tuple(family),
        medications=tuple(meds),
        allergies=tuple(allergies),
        exam_findings=tuple(exams),
        test_results=tuple(tests),
        diagnosis=dx,
        diagnosis_id=link_diagnosis(dx),
        diagnosis_codes=icd_codes(record),
        key_facts=facts,
    )


def read_agentclinic(
    path: str | Path,
    *,
    split: Split = "test",
    id_prefix: str = "agentclinic",
    extractor: LLMFactExtractor | None = None,
    strict: bool = False,
) -> LoadResult:
    """An AgentClinic OSCE file with its load report; case ids are "<id_prefix>-<line number>"."""
    check_split(split)
    return load_records(
        path,
        "agentclinic",
        lambda r, line: agentclinic_case(r, f"{id_prefix}-{line:04d}", split=split, extractor=extractor),
        strict=strict,
    )


def load_agentclinic(
    path: str | Path,
    *,
    split: Split = "test",
    id_prefix: str = "agentclinic",
    extractor: LLMFactExtractor | None = None,
    strict: bool = False,
) -> list[PatientCase]:
    """The cases of an AgentClinic OSCE file (bad records skipped; `strict`: a LoaderError instead)."""
    return read_agentclinic(path, split=split, id_prefix=id_prefix, extractor=extractor, strict=strict).cases
