"""`PatientCase`: one simulated patient, and the JSONL case bank.

A case holds the clinical story in structured fields (for people, loaders and LLM prompts) and, in
`key_facts`, the atomic facts that are the ONLY thing a patient may disclose. Facts carry a knowledge-table
finding id where one applies (what the Bayesian diagnoser and the lexicon match on) and, for findings the
patient would report, a first-person sentence.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import pydantic

from mock_patients.io import atomic_write_text, iter_jsonl

FactCategory = Literal[
    "demographics",
    "chief_complaint",
    "hpi",
    "symptom",
    "pmh",
    "social",
    "family",
    "medication",
    "allergy",
    "ros",
    "exam",
    "test",
    "other",
    "record",
]
# Facts a patient knows and may tell; exam and test facts are revealed only by examining / testing, and
# "record" facts (work-up, treatment given in the visit, clinicians' opinions, notes on missing information:
# "The pediatrician suspects ...", "is started on IV fluids") are never told.
PATIENT_CATEGORIES: frozenset[str] = frozenset(get_args(FactCategory)) - {"exam", "test", "record"}
Source = Literal["generated", "agentclinic", "mediq", "custom"]
SHIPPED = Path(__file__).parent / "data" / "cases.jsonl"
MAX_DIAGNOSIS_CHARS = 200  # a diagnosis name (or synonym); real ones are under 100

# Chat-template control strings (ChatML / Qwen <|im_start|>, <|im_end|>, <|endoftext|>; Llama 3 <|eot_id|>,
# <|start_header_id|>; Phi <|user|>; DeepSeek's full-width bars; Gemma's turn tags; Llama 2's [INST] and
# <<SYS>>). Case text reaches a patient's mouth and an LLM patient's prompt: a record holding one is refused
# (a loader skips it with the field named), never spoken or prompted verbatim.
CONTROL_MARKER = re.compile(
    r"<\|[^|<>\s]{1,40}\|>|<\uff5c[^\uff5c<>]{1,40}\uff5c>"  # <|...|>, <｜...｜>
    r"|<(?:start|end)_of_turn>|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)
CONTROL_MARKER_FORMS = "<|...|>, <start_of_turn>, <end_of_turn>, [INST], <<SYS>>"


def control_marker(value: Any) -> tuple[str, str] | None:
    """(path, marker) of the first chat control string in a JSON-like value or a Record (keys included),
    e.g. ("Patient_Actor.History", "<|im_start|>"); None when there is none. Walks without recursion."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            m = CONTROL_MARKER.search(v)
            if m:
                return path or "(record)", m.group()
        elif isinstance(v, pydantic.BaseModel):
            stack.extend((f"{path}.{k}" if path else k, getattr(v, k)) for k in reversed(type(v).model_fields))
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                key = str(k)
                m = CONTROL_MARKER.search(key)
                if m:
                    return (f"{path}.{key}" if path else key), m.group()
                stack.append((f"{path}.{key}" if path else key, x))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{path}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None


def control_marker_error(where: str, marker: str) -> str:
    return (
        f"{where} holds the chat control string {marker!r}; case text may not contain chat-template "
        f"markers ({CONTROL_MARKER_FORMS})"
    )


def diagnosis_length_error(field: str, name: str) -> str | None:
    """The error for a diagnosis name over MAX_DIAGNOSIS_CHARS, else None."""
    if len(name) <= MAX_DIAGNOSIS_CHARS:
        return None
    return f"{field} has {len(name):,} characters; a diagnosis name may have at most {MAX_DIAGNOSIS_CHARS}"


class Record(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    def __deepcopy__(self, memo: dict) -> Record:
        return self  # immutable: env snapshots share cases instead of copying them


class Demographics(Record):
    age: int | None = pydantic.Field(None, ge=0, le=120)
    sex: Literal["female", "male"] | None = None
    description: str = ""  # free text from a source record ("45-year-old woman, teacher")


class Symptom(Record):
    name: str
    present: bool = True  # False: the case explicitly records it as absent (a pertinent negative)
    onset: str | None = None  # "3 days ago"
    severity: Literal["mild", "moderate", "severe"] | None = None
    finding: str | None = None  # knowledge-table finding id


class Observation(Record):
    """One exam finding or test result."""

    test: str  # the exam or test that shows it ("chest X-ray", "Vital signs")
    result: str
    test_id: str | None = None  # knowledge-table test id
    finding: str | None = None  # knowledge-table finding id


class KeyFact(Record):
    id: str
    text: str  # the atomic fact, clinical phrasing ("Fever for 3 days, moderate.")
    category: FactCategory
    present: bool = True  # False: an explicitly absent finding ("No fever.")
    finding: str | None = None  # knowledge-table finding id, when one applies
    test: str | None = None  # exam/test facts: the exam or test that reveals it (table id or free name)
    patient_text: str | None = None  # what the patient says, first person; None for exam/test facts
    source_text: str | None = None  # the record's own (third-person) sentence, when `text` is a part of it

    @pydantic.field_validator("text")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a key fact's text must not be empty")
        return v.strip()

    @property
    def patient_facing(self) -> bool:
        return self.category in PATIENT_CATEGORIES


class PatientCase(Record):
    id: str
    source: Source = "custom"
    split: Literal["train", "test"] = "test"
    demographics: Demographics = Demographics()
    chief_complaint: str
    history_of_present_illness: str = ""
    symptoms: tuple[Symptom, ...] = ()
    past_medical_history: tuple[str, ...] = ()
    social_history: tuple[str, ...] = ()
    family_history: tuple[str, ...] = ()
    medications: tuple[str, ...] = ()
    allergies: tuple[str, ...] = ()
    exam_findings: tuple[Observation, ...] = ()
    test_results: tuple[Observation, ...] = ()
    diagnosis: str
    diagnosis_id: str | None = None  # knowledge-table disease id when the diagnosis is in the table
    diagnosis_synonyms: tuple[str, ...] = ()  # extra accepted names beyond the table's synonyms
    # ICD codes of the diagnosis that a source record carries ("J18.9"): redacted wherever they appear, like
    # its names (see `redaction`); not accepted as a stated diagnosis
    diagnosis_codes: tuple[str, ...] = ()
    differential: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # multiple-choice answers of the source (MediQ), if any
    key_facts: tuple[KeyFact, ...]
    # True when every knowledge-table finding this patient has is among key_facts (generated cases): an
    # exam or test with no recorded result is then truly normal, and "normal" is evidence.
    closed_world: bool = False

    @pydantic.model_validator(mode="after")
    def _check(self) -> PatientCase:
        if not self.id.strip():
            raise ValueError("case id must not be empty")
        if not self.diagnosis.strip():
            raise ValueError(f"case {self.id}: diagnosis must not be empty")
        for i, name in enumerate((self.diagnosis, *self.diagnosis_synonyms)):
            err = diagnosis_length_error("diagnosis" if i == 0 else f"diagnosis_synonyms[{i - 1}]", name)
            if err:
                raise ValueError(f"case {self.id[:80]}: {err}")
        bad = [c for c in self.diagnosis_codes if not 1 <= len(c.strip()) <= 20]
        if bad:
            raise ValueError(
                f"case {self.id[:80]}: diagnosis_codes must be codes of 1 to 20 characters, got {bad[0][:40]!r}"
            )
        if not self.key_facts:
            raise ValueError(f"case {self.id}: key_facts must not be empty (the patient answers only from them)")
        dup = sorted(i for i, n in Counter(f.id for f in self.key_facts).items() if n > 1)  # linear: cases can be big
        if dup:
            raise ValueError(f"case {self.id}: duplicate key fact ids {dup[:10]}")
        hit = control_marker(self)
        if hit:
            raise ValueError(f"case {self.id[:80]}: {control_marker_error(*hit)}")
        return self

    def fact(self, fid: str) -> KeyFact:
        for f in self.key_facts:
            if f.id == fid:
                return f
        raise KeyError(f"case {self.id} has no key fact {fid!r}")

    @property
    def patient_facts(self) -> tuple[KeyFact, ...]:
        return tuple(f for f in self.key_facts if f.patient_facing)


class CaseFileError(ValueError):
    """A case file that cannot be read; the message names the file and line."""


def load_cases(path: str | Path) -> list[PatientCase]:
    """Read a JSONL case bank. Every bad line is reported (file:line: reason) in one error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"case file not found: {path}")
    cases: list[PatientCase] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for lineno, obj, err in iter_jsonl(path):
        if err is None:
            try:
                case = PatientCase.model_validate(obj)
            except pydantic.ValidationError as exc:
                err = _short_validation_error(exc)
            else:
                if case.id in seen:
                    err = f"duplicate case id {case.id!r} (first on line {seen[case.id]})"
                else:
                    seen[case.id] = lineno
                    cases.append(case)
        if err is not None:
            errors.append(f"{path}:{lineno}: {err}")
    if errors:
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise CaseFileError("bad case records:\n  " + "\n  ".join(errors[:10]) + more)
    if not cases:
        raise CaseFileError(f"{path}: no cases")
    return cases


def save_cases(path: str | Path, cases: list[PatientCase]) -> None:
    atomic_write_text(path, "".join(c.model_dump_json(exclude_defaults=True) + "\n" for c in cases))


def _short_validation_error(exc: pydantic.ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"]) or "(record)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def _shipped() -> tuple[PatientCase, ...]:
    return tuple(load_cases(SHIPPED))


def shipped_cases(split: Literal["train", "test"] | None = None) -> list[PatientCase]:
    """The generated case bank in mock_patients/data/cases.jsonl, optionally one split."""
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    return [c for c in _shipped() if split is None or c.split == split]
