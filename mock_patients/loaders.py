"""Loaders for two public consultation-case formats -> `PatientCase`.

* AgentClinic OSCE (Schmidgall et al. 2024, agentclinic_*.jsonl): one object per line,
  {"OSCE_Examination": {"Objective_for_Doctor", "Patient_Actor": {"Demographics", "History",
  "Symptoms": {"Primary_Symptom", "Secondary_Symptoms"}, "Past_Medical_History", "Social_History",
  "Review_of_Systems"}, "Physical_Examination_Findings": {...}, "Test_Results": {...},
  "Correct_Diagnosis"}}. Exam and test sections are free-form nested objects: every leaf becomes one
  observation named by its path ("Blood work / Complete blood count / WBC").
* MediQ (Li et al. 2024): {"id", "question", "context": [sentences], "options": {"A": ...} or [...],
  "answer", "answer_idx", "facts": [numbered atomic facts], "patient": {"age", "gender"}}. The answer is
  the case's target; MediQ's atomic facts become the key facts (the context sentences when absent).

Key facts come from the structured fields (`facts.structured_facts`) with findings linked through the
lexicon; the diagnosis is linked to the knowledge table when its name (or a synonym) is there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Literal

import pydantic

from mock_patients.cases import Demographics, Observation, PatientCase, Symptom
from mock_patients.facts import (
    FactBuilder,
    LLMFactExtractor,
    split_facts,
    split_sentences,
    structured_facts,
)
from mock_patients.io import iter_jsonl
from mock_patients.knowledge import default_table
from mock_patients.lexicon import default_lexicon

Split = Literal["train", "test"]
_GENERIC_KEYS = {"findings", "finding", "result", "results", "comments", "comment", "interpretation", "impression",
                 "value", "details", "description", "optional"}


class LoaderError(ValueError):
    """A source record that cannot be converted; the message names the file, line and field."""


def _human(key: str) -> str:
    t = key.replace("_", " ").strip()
    return t[:1].upper() + t[1:].lower() if not re.search(r"[A-Z]{2}", t) else t[:1].upper() + t[1:]


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "; ".join(_text(x) for x in v if _text(x))
    if isinstance(v, dict):
        return "; ".join(f"{_human(k)}: {_text(x)}" for k, x in v.items() if _text(x))
    return str(v).strip()


_UNINFORMATIVE = re.compile(r"^(information not provided|not provided|none provided|n/?a|unknown|not available|"
                            r"no additional symptoms( provided| noted)?(\s+by the \w+)?)\.?$", re.IGNORECASE)


def _informative(s: str) -> bool:
    return bool(s.strip()) and not _UNINFORMATIVE.match(s.strip())


def _flatten(section: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Leaves of a free-form exam/test object as (key path, text)."""
    if isinstance(section, dict):
        out = []
        for k, v in section.items():
            out += _flatten(v, path + (str(k),))
        return out
    text = _text(section)
    return [(path, text)] if text else []


def _observations(section: Any, what: str) -> list[Observation]:
    if section is None:
        return []
    if not isinstance(section, (dict, str, list)):
        raise ValueError(f"{what} must be an object or text, got {type(section).__name__}")
    lex = default_lexicon()
    out = []
    for path, text in _flatten(section if isinstance(section, dict) else {what: section}):
        # the path names the test ("Blood tests / Acetylcholine receptor antibodies"), so a request for
        # either the panel or the single test finds it; "Findings"-like leaf keys add nothing
        keys = [k for k in path if k.lower() not in _GENERIC_KEYS] or list(path[:1]) or [what]
        name = " / ".join(_human(k) for k in keys)
        out.append(Observation(test=name, result=text, test_id=lex.resolve_test(name)))
    return out


def parse_demographics(text: str, *, age: Any = None, sex: Any = None) -> Demographics:
    """"35-year-old female" -> age 35, female; "8-month-old boy" -> age 0, male."""
    t = (text or "").lower()
    a = None
    if age is not None and str(age).strip():
        try:
            a = int(float(str(age).strip()))
        except ValueError:
            raise ValueError(f"age must be a number, got {age!r}") from None
    else:
        m = re.search(r"(\d+)[-\s]*(year|yr|month|week|day)", t)
        if m:
            a = int(m.group(1)) if m.group(2) in ("year", "yr") else 0
        elif "newborn" in t or "neonate" in t:
            a = 0
    s_raw = str(sex).strip().lower() if sex is not None else t
    sx = None
    if re.search(r"\b(female|woman|girl|f|lady|mother|pregnant)\b", s_raw):
        sx = "female"
    elif re.search(r"\b(male|man|boy|m|gentleman)\b", s_raw):
        sx = "male"
    if a is not None and not 0 <= a <= 120:
        raise ValueError(f"age {a} outside 0..120")
    return Demographics(age=a, sex=sx, description=(text or "").strip())  # type: ignore[arg-type]


def _link_diagnosis(name: str) -> str | None:
    return default_table().disease_id_for(name)


# --- AgentClinic ------------------------------------------------------------------------------------------


def agentclinic_case(record: dict, case_id: str, *, split: Split = "test", extractor: LLMFactExtractor | None = None) -> PatientCase:
    """One AgentClinic OSCE record; `extractor` (an LLM) splits the free-text history, else rules do."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    exam = record.get("OSCE_Examination", record)
    if not isinstance(exam, dict):
        raise ValueError("OSCE_Examination must be an object")
    actor = exam.get("Patient_Actor")
    if not isinstance(actor, dict):
        raise ValueError("OSCE_Examination.Patient_Actor is missing or not an object")
    dx = _text(exam.get("Correct_Diagnosis"))
    if not dx:
        raise ValueError("OSCE_Examination.Correct_Diagnosis is missing or empty")
    sym = actor.get("Symptoms") or {}
    if not isinstance(sym, dict):
        raise ValueError("Patient_Actor.Symptoms must be an object with Primary_Symptom and Secondary_Symptoms")
    primary = _text(sym.get("Primary_Symptom"))
    secondary = sym.get("Secondary_Symptoms") or []
    if isinstance(secondary, str):
        secondary = [secondary]
    if not isinstance(secondary, list):
        raise ValueError("Symptoms.Secondary_Symptoms must be a list of strings")
    if not primary:
        raise ValueError("Symptoms.Primary_Symptom is missing or empty")
    demo = parse_demographics(_text(actor.get("Demographics")))
    lex = default_lexicon()
    b = FactBuilder(lex)
    symptoms = [Symptom(name=s, finding=b.link(s)) for s in (_text(x) for x in secondary) if s]
    pmh = [s for s in split_sentences(_text(actor.get("Past_Medical_History"))) if _informative(s)]
    social = [s for s in split_sentences(_text(actor.get("Social_History"))) if _informative(s)]
    ros = _text(actor.get("Review_of_Systems"))
    exams = _observations(exam.get("Physical_Examination_Findings"), "Physical examination")
    tests = _observations(exam.get("Test_Results"), "Test results")
    history = _text(actor.get("History"))
    facts = structured_facts(
        demographics=demo, chief_complaint=primary, symptoms=symptoms, history_of_present_illness=history,
        past_medical_history=pmh, social_history=social, exam_findings=exams, test_results=tests,
        review_of_systems=ros if _informative(ros) else "", lexicon=lex, extractor=extractor,
    )
    return PatientCase(
        id=case_id, source="agentclinic", split=split, demographics=demo, chief_complaint=primary,
        history_of_present_illness=history, symptoms=tuple(symptoms), past_medical_history=tuple(pmh),
        social_history=tuple(social), exam_findings=tuple(exams), test_results=tuple(tests), diagnosis=dx,
        diagnosis_id=_link_diagnosis(dx), key_facts=facts,
    )


# --- MediQ ---------------------------------------------------------------------------------------------------

_DEMOGRAPHIC = re.compile(r"^(?:the\s+)?(?:patient|pt)\s+is\s+an?\s+\d+[-\s](?:year|month|week|day)s?[-\s]old\s+\w+\.?$", re.IGNORECASE)
_NUMBERED = re.compile(r"^\s*(?:\(?\d+[.)]|[-*•])\s*")
_EXAM_WORDS = re.compile(r"\b(temperature|pulse|blood pressure|respirations|respiratory rate|oxygen saturation|"
                         r"examination|exam\b|auscultation|palpation|on inspection|bmi|heart rate|tender|murmur)", re.IGNORECASE)
_TEST_WORDS = re.compile(r"\b(laboratory|lab studies|serum|level|count|x-ray|radiograph|ct\b|mri|ultrasound|"
                         r"biopsy|ecg|ekg|electrocardiogram|culture|urinalysis|smear|titer|panel|mg/dl|mmol|"
                         r"hemoglobin|leukocyte|platelet|shows|reveals|positive for|negative for)", re.IGNORECASE)


def _mediq_facts(items: list[str]) -> list[str]:
    out = []
    for it in items:
        for line in str(it).splitlines():
            line = _NUMBERED.sub("", line).strip()
            if line:
                out.append(line)
    return out


def mediq_case(record: dict, case_id: str | None = None, *, split: Split = "test") -> PatientCase:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    answer = _text(record.get("answer"))
    options = record.get("options") or {}
    if isinstance(options, dict):
        opts = [_text(v) for v in options.values() if _text(v) and _text(v).upper() != "N/A"]
        if not answer and record.get("answer_idx") in options:
            answer = _text(options[record["answer_idx"]])
    elif isinstance(options, list):
        opts = [_text(v) for v in options if _text(v)]
    else:
        raise ValueError("options must be an object {letter: text} or a list")
    if not answer:
        raise ValueError("answer (or answer_idx naming an option) is missing")
    context = record.get("context") or []
    if isinstance(context, str):
        context = split_sentences(context)
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise ValueError("context must be a list of sentences or a text")
    raw_facts = record.get("facts", record.get("atomic_facts"))
    if isinstance(raw_facts, str):
        raw_facts = [raw_facts]
    if raw_facts is not None and not isinstance(raw_facts, list):
        raise ValueError("facts must be a list of numbered atomic facts")
    facts_text = _mediq_facts(raw_facts) if raw_facts else [s for c in context for s in split_sentences(c)]
    if not facts_text:
        raise ValueError("the record has neither facts nor context to build key facts from")
    pat = record.get("patient") or {}
    if not isinstance(pat, dict):
        raise ValueError("patient must be an object {age, gender}")
    first = context[0] if context else facts_text[0]
    demo = parse_demographics(first, age=pat.get("age"), sex=pat.get("gender", pat.get("sex")))
    b = FactBuilder(default_lexicon())
    if demo.age is not None:
        b.add(f"Age {demo.age}", "demographics", patient_text=f"I'm {demo.age} years old.", link=False)
    if demo.sex is not None:
        b.add(f"Sex: {demo.sex}", "demographics", patient_text=f"I'm a {'woman' if demo.sex == 'female' else 'man'}.", link=False)
    cc = re.sub(r"^.*?\b(presents?|comes?|is brought|was brought)\b[^,]*?\b(with|for|because of)\s+", "", first, flags=re.IGNORECASE).rstrip(".")
    cc = cc[:1].upper() + cc[1:]
    b.add(cc, "chief_complaint")
    exams, tests = [], []
    for i, stmt in enumerate(facts_text):
        if i == 0 and stmt.strip() == first.strip():
            continue  # the chief complaint sentence
        for text, present in split_facts(stmt):
            if _TEST_WORDS.search(text) and not _EXAM_WORDS.search(text):
                tid = b.lexicon.resolve_test(text)
                name = b.lexicon.table.test_spec(tid).name if tid else "laboratory studies"
                b.add(text, "test", present=present, test=tid or name)
                tests.append(Observation(test=name, result=text, test_id=tid))
            elif _EXAM_WORDS.search(text):
                tid = b.lexicon.resolve_test(text) or "physical examination"
                b.add(text, "exam", present=present, test=tid)
                exams.append(Observation(test="Physical examination", result=text, test_id=tid if tid != "physical examination" else None))
            elif _DEMOGRAPHIC.match(text):
                b.add(text, "demographics", link=False)
            else:
                b.add(text, "hpi", present=present)
    rid = case_id or f"mediq-{record.get('id', record.get('realidx', 'x'))}"
    return PatientCase(
        id=str(rid), source="mediq", split=split, demographics=demo, chief_complaint=cc,
        history_of_present_illness=" ".join(context), exam_findings=tuple(exams), test_results=tuple(tests),
        diagnosis=answer, diagnosis_id=_link_diagnosis(answer), options=tuple(opts),
        differential=tuple(o for o in opts if o.strip().lower() != answer.strip().lower()), key_facts=tuple(b.facts),
    )


# --- files ------------------------------------------------------------------------------------------------


def _load(path: str | Path, convert: Callable[[dict, str], PatientCase], prefix: str) -> list[PatientCase]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    rows: list[tuple[int, Any, str | None]]
    text = path.read_text(encoding="utf-8").lstrip()
    if text.startswith("["):  # a JSON array file is accepted too
        try:
            rows = [(i + 1, obj, None) for i, obj in enumerate(json.loads(text))]
        except json.JSONDecodeError as exc:
            raise LoaderError(f"{path}: invalid JSON array ({exc.msg} at line {exc.lineno})") from None
    else:
        rows = list(iter_jsonl(path))
    cases, errors = [], []
    for lineno, obj, err in rows:
        if err is None:
            try:
                cases.append(convert(obj, f"{prefix}-{lineno:04d}"))
            except (ValueError, TypeError) as exc:
                err = str(exc) if not isinstance(exc, pydantic.ValidationError) else exc.errors()[0]["msg"]
        if err is not None:
            errors.append(f"{path}:{lineno}: {err}")
    if errors:
        raise LoaderError("cannot load these records:\n  " + "\n  ".join(errors[:10]) + (f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""))
    if not cases:
        raise LoaderError(f"{path}: no records")
    return cases


def load_agentclinic(path: str | Path, *, split: Split = "test", id_prefix: str = "agentclinic",
                     extractor: LLMFactExtractor | None = None) -> list[PatientCase]:
    """An AgentClinic OSCE JSONL file; case ids are "<id_prefix>-<line number>"."""
    return _load(path, lambda r, cid: agentclinic_case(r, cid, split=split, extractor=extractor), id_prefix)


def load_mediq(path: str | Path, *, split: Split = "test", id_prefix: str = "mediq") -> list[PatientCase]:
    """A MediQ JSONL file; case ids are "<id_prefix>-<record id>" (or the line number without one)."""
    def conv(r: dict, cid: str) -> PatientCase:
        rid = r.get("id", r.get("realidx")) if isinstance(r, dict) else None
        return mediq_case(r, f"{id_prefix}-{rid}" if rid is not None else cid, split=split)
    return _load(path, conv, id_prefix)
