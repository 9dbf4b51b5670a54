"""Public consultation-case files -> `PatientCase`: the one import point for the loaders.

| format | files | module |
|---|---|---|
| `agentclinic` | AgentClinic OSCE (agentclinic_medqa.jsonl, _medqa_extended, _mimiciv) | `agentclinic` |
| `nejm` | AgentClinic NEJM image challenge (agentclinic_nejm.jsonl, _nejm_extended) | `nejm` |
| `mediq` | MediQ (all_craft_md.jsonl, all_dev_good.jsonl, ...) | `mediq` |
| `patientcase` | this package's own case JSONL (`PatientCase` per line) | here |

`load_file(path)` detects the format from the first records, converts record by record and returns the cases
with a `LoadReport`: bad records are skipped and named (`loaded 213/214; line 132: Symptoms.Primary_Symptom
is missing or empty`); `strict=True` raises one `LoaderError` listing them instead. The per-format
`load_agentclinic`, `load_nejm`, `load_mediq` return just the cases.

Key facts come from the structured fields (`facts.structured_facts`) with findings linked through the
lexicon; the diagnosis is linked to the knowledge table when its name (or a synonym) is there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mock_patients.cases import PatientCase
from mock_patients.facts import LLMFactExtractor
from mock_patients.loaders.agentclinic import (
    agentclinic_case,
    load_agentclinic,
    read_agentclinic,
)
from mock_patients.loaders.common import (
    Split,
    check_split,
    parse_age,
    parse_demographics,
)
from mock_patients.loaders.mediq import (
    NOT_A_DIAGNOSIS,
    QUESTION_TYPES,
    QuestionCase,
    load_mediq,
    mediq_case,
    question_type,
    read_mediq,
)
from mock_patients.loaders.nejm import load_nejm, nejm_case, read_nejm
from mock_patients.loaders.report import (
    LoaderError,
    LoadReport,
    LoadResult,
    SkipRecord,
    load_records,
    read_records,
)

FORMATS: dict[str, str] = {
    "agentclinic": "AgentClinic OSCE (OSCE_Examination: Patient_Actor, Physical_Examination_Findings, Test_Results, Correct_Diagnosis)",
    "nejm": "AgentClinic NEJM (question, patient_info, physical_exams, answers)",
    "mediq": "MediQ (question, options, answer, context / facts, patient)",
    "patientcase": "PatientCase JSONL (id, chief_complaint, diagnosis, key_facts)",
}
_SNIFF = 20  # records looked at to detect a format


def record_format(obj: object) -> str | None:
    """The format one record is in, or None."""
    if not isinstance(obj, dict):
        return None
    if "OSCE_Examination" in obj or "Patient_Actor" in obj:
        return "agentclinic"
    if "answers" in obj and ("patient_info" in obj or "physical_exams" in obj):
        return "nejm"
    if "key_facts" in obj and "diagnosis" in obj:
        return "patientcase"
    if "question" in obj and "options" in obj:
        return "mediq"
    return None


def detect_format(path: str | Path) -> str:
    """The format of a case file, from its first readable records; a LoaderError naming the allowed
    formats when none fits."""
    keys: list[str] = []
    for n, (_, obj, err) in enumerate(read_records(path)):
        if n >= _SNIFF:
            break
        if err is None:
            fmt = record_format(obj)
            if fmt is not None:
                return fmt
            if isinstance(obj, dict) and not keys:
                keys = sorted(obj)[:12]
    seen = f" (first record's keys: {', '.join(keys)})" if keys else " (no JSON object in the first records)"
    raise LoaderError(
        f"{path}: cannot tell the case format{seen}; allowed: " + "; ".join(f"{k} = {v}" for k, v in FORMATS.items())
    )


def read_patient_cases(path: str | Path, *, strict: bool = False) -> LoadResult:
    """This package's own case JSONL, record by record (like `cases.load_cases`, but a bad line is skipped)."""
    return load_records(path, "patientcase", lambda r, line: PatientCase.model_validate(r), strict=strict)


def load_file(
    path: str | Path,
    format: str | None = None,
    *,
    strict: bool = False,
    split: Split = "test",
    include_types: Iterable[str] = ("diagnosis",),
    extractor: LLMFactExtractor | None = None,
) -> LoadResult:
    """Load any supported case file (`format`: one of FORMATS, default: detected). `split` is given to
    converted public records; PatientCase files keep their own. `include_types`: MediQ question types to
    load (default: diagnosis questions only)."""
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown case format {fmt!r}; allowed: {', '.join(FORMATS)}")
    check_split(split)
    if fmt == "agentclinic":
        return read_agentclinic(path, split=split, extractor=extractor, strict=strict)
    if fmt == "nejm":
        return read_nejm(path, split=split, strict=strict)
    if fmt == "mediq":
        return read_mediq(path, split=split, include_types=include_types, strict=strict)
    return read_patient_cases(path, strict=strict)


__all__ = [
    "FORMATS",
    "NOT_A_DIAGNOSIS",
    "QUESTION_TYPES",
    "LoadReport",
    "LoadResult",
    "LoaderError",
    "QuestionCase",
    "SkipRecord",
    "agentclinic_case",
    "detect_format",
    "load_agentclinic",
    "load_file",
    "load_mediq",
    "load_nejm",
    "mediq_case",
    "nejm_case",
    "parse_age",
    "parse_demographics",
    "question_type",
    "read_agentclinic",
    "read_mediq",
    "read_nejm",
    "read_patient_cases",
    "record_format",
]
