"""Reading a public case file record by record, with a per-record report.

A bad record (invalid JSON, a missing field, an age that cannot be read) is skipped and named with its line
number; the others still load. `strict=True` turns any bad record into one `LoaderError` that lists them
all. The summary reads like

    loaded 213/214; line 132: Symptoms.Primary_Symptom is missing or empty

Records are bounded before they are parsed (`MAX_RECORD_BYTES` per public record, `io.MAX_JSON_DEPTH` levels
of nesting) and a record holding a chat-template control string is refused: each is one skipped record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from mock_patients.cases import PatientCase, control_marker, control_marker_error
from mock_patients.io import MAX_LINE_BYTES, JSONArrayError, iter_json_array, iter_jsonl

MAX_LISTED = 5  # skipped records named in a summary line; the rest are counted
# One public record (AgentClinic OSCE / NEJM, MediQ line or array element): real ones are 1-10 KB. Checked
# before parsing. Converting a record this size costs about a second of CPU at worst (thousands of facts).
MAX_RECORD_BYTES = 256 * 1024


class LoaderError(ValueError):
    """A source file or record that cannot be converted; the message names the file, line and field."""


class SkipRecord(Exception):
    """Raised by a converter for a valid record that is deliberately not a case (e.g. a MediQ question that
    asks for a drug, not a diagnosis). `kind` groups them in the report."""

    def __init__(self, kind: str, message: str = ""):
        super().__init__(message or kind)
        self.kind = kind


@dataclass
class LoadReport:
    """What happened to each record of one file."""

    path: str
    format: str  # "agentclinic", "nejm", "mediq" or "patientcase"
    total: int = 0  # records read (bad JSON lines included)
    loaded: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason): bad records
    excluded: dict[str, int] = field(default_factory=dict)  # kind -> count: valid records that are not cases

    def summary(self, limit: int = MAX_LISTED) -> str:
        """`loaded 213/214; line 132: Symptoms.Primary_Symptom is missing or empty`."""
        parts = [f"loaded {self.loaded}/{self.total}"]
        if self.excluded:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.excluded.items()))
            parts.append(f"{sum(self.excluded.values())} not diagnosis questions ({kinds})")
        parts += [f"line {line}: {reason}" for line, reason in self.errors[:limit]]
        if len(self.errors) > limit:
            parts.append(f"... and {len(self.errors) - limit} more bad records")
        return "; ".join(parts)


@dataclass
class LoadResult:
    cases: list[PatientCase]
    report: LoadReport
    references: dict[str, list[str]] = field(default_factory=dict)  # case id -> media URLs (NEJM images)


def error_text(exc: BaseException) -> str:
    """A short reason for a failed record: pydantic errors as `field: message`, others as their text."""
    if isinstance(exc, pydantic.ValidationError):
        parts = []
        for e in exc.errors()[:3]:
            loc = ".".join(str(x) for x in e["loc"]) or "(record)"
            parts.append(f"{loc}: {e['msg']}")
        return "; ".join(parts)
    return str(exc)


def read_records(path: str | Path, *, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any, str | None]]:
    """(line or index, object, error) for a JSONL file, or for each element of a JSON array file (1-based).
    A record over `max_bytes` or nested deeper than MAX_JSON_DEPTH is an error for that record, found before
    it is parsed (see `io`); the others still load."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if head.startswith("["):  # a JSON array file is accepted too
        try:
            yield from iter_json_array(path, max_item_bytes=max_bytes)
        except JSONArrayError as exc:
            raise LoaderError(str(exc)) from None
        return
    yield from iter_jsonl(path, max_line_bytes=max_bytes)


Convert = Callable[[dict, int], PatientCase]


def load_records(
    path: str | Path, fmt: str, convert: Convert, *, strict: bool = False, max_bytes: int | None = None
) -> LoadResult:
    """Convert every record of `path` with `convert(record, line)`. Bad records are skipped and reported
    (`strict`: raise one LoaderError naming all of them); duplicate case ids are bad records too, and so is a
    record over `max_bytes` (default: MAX_RECORD_BYTES for public formats, io.MAX_LINE_BYTES for PatientCase
    JSONL), nested deeper than io.MAX_JSON_DEPTH, or holding a chat control string (`cases.CONTROL_MARKER`)."""
    report = LoadReport(path=str(path), format=fmt)
    cases: list[PatientCase] = []
    seen: dict[str, int] = {}
    cap = max_bytes or (MAX_LINE_BYTES if fmt == "patientcase" else MAX_RECORD_BYTES)
    for lineno, obj, err in read_records(path, max_bytes=cap):
        report.total += 1
        if err is None:
            try:
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                hit = control_marker(obj)
                if hit:
                    raise ValueError(control_marker_error(*hit))
                case = convert(obj, lineno)
            except SkipRecord as skip:
                report.excluded[skip.kind] = report.excluded.get(skip.kind, 0) + 1
                continue
            except (ValueError, TypeError, KeyError) as exc:  # pydantic.ValidationError is a ValueError
                err = error_text(exc)
            except RecursionError:  # below the depth cap this cannot happen; one record must never end the file
                err = "record nested too deeply to convert"
            else:
                if case.id in seen:
                    err = f"duplicate case id {case.id!r} (first on line {seen[case.id]})"
                else:
                    seen[case.id] = lineno
                    cases.append(case)
        if err is not None:
            report.errors.append((lineno, err))
    report.loaded = len(cases)
    if strict and report.errors:
        raise LoaderError(f"cannot load these records (strict):{_listing(path, report.errors)}")
    if not cases:
        if not report.total:
            raise LoaderError(f"{path}: no records")
        why = f"; {report.summary()}" if report.excluded else ""
        raise LoaderError(f"no case could be loaded from {path}{why}{_listing(path, report.errors)}")
    return LoadResult(cases, report)


def _listing(path: str | Path, errors: list[tuple[int, str]], limit: int = 10) -> str:
    shown = "".join(f"\n  {path}:{line}: {reason}" for line, reason in errors[:limit])
    return shown + (f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else "")
