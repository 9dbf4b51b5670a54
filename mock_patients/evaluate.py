"""Score consultation transcripts from any doctor (a person, an API model, a trained policy).

    agentrl consult evaluate DIALOGS.jsonl [--cases FILE] [--out-json report.json] [--out-html report.html]

Each JSONL line is one dialog (format in mock_patients/README.md). The doctor's turns are replayed
through a `Consultation` with the rule-based patient's matcher, so questions are classified (repeated,
irrelevant), facts counted as disclosed and evidence gathered exactly as the environment does — with the
same anti-list-dumping rule: at most 3 facts disclosed per question, and a question charged one inquiry
per distinct finding it names (see mock_patients.consultation). A line that cannot be scored (invalid
JSON or UTF-8, an unknown case, a doctor message over `MAX_MESSAGE_CHARS`, ...) is reported with its
line number; every other line is still scored.

Metrics per dialog: diagnosis accuracy (normalized names and synonyms) of what the doctor said in its
`DIAGNOSIS:` turn (a record's own `diagnosis` key is not scored), key-fact recall, questions
and tests asked, inquiries charged (what the environment's question budget counts), repeated and
irrelevant question rates, turns to diagnosis, and the probability of the correct diagnosis after each
doctor turn. The diagnoser (`diagnoser=`: "match" by default, "bayes", "llm" or a diagnoser object) gives
that probability: "match" and "bayes" the Bayesian posterior where the case's disease is in the knowledge
table and none ("n/a" in the reports) elsewhere; "llm" a chat model's rating for any case. Accuracy is by
name for all of them (normalized names, synonyms, abbreviations: `names.diagnosis_matches`).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Literal

import pydantic

from mock_patients.cases import PatientCase, shipped_cases
from mock_patients.consultation import MAX_MESSAGE_CHARS, Consultation
from mock_patients.diagnoser import (
    BayesianDiagnoser,
    Diagnoser,
    DiagnoserError,
    LLMDiagnoser,
    MatchDiagnoser,
    make_diagnoser,
)
from mock_patients.io import atomic_write_text, iter_jsonl
from mock_patients.loaders.report import error_text
from mock_patients.names import diagnosis_matches

DOCTOR_ROLES = ("assistant", "doctor")
PATIENT_ROLES = ("user", "patient", "tool", "environment")


class DialogMessage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "doctor", "patient", "tool", "environment"]
    content: str


class DialogRecord(pydantic.BaseModel):
    """One transcript line. Extra keys (reward, model settings, ...) are kept but not used."""

    model_config = pydantic.ConfigDict(extra="allow")

    id: str | None = None
    case_id: str | None = None
    case: PatientCase | None = None
    doctor: str = "unknown"
    messages: list[DialogMessage] = pydantic.Field(min_length=1)
    # Not scored: a transcript's own claim of the diagnosis (agentrl consult run writes the env's). Accuracy is
    # from the doctor's "DIAGNOSIS: ..." turn alone, so a record cannot claim a diagnosis its doctor never said.
    diagnosis: str | None = None
    # the case file the dialog was run on (`agentrl consult run --cases FILE` writes it): evaluate loads it when
    # no --cases is given, so a transcript of a public case file needs no flag
    case_file: str | None = None

    @pydantic.model_validator(mode="after")
    def _has_case(self) -> DialogRecord:
        if self.case is None and not self.case_id:
            raise ValueError("each dialog needs 'case_id' (a case in the case file) or an inline 'case'")
        return self

    @pydantic.model_validator(mode="after")
    def _short_doctor_turns(self) -> DialogRecord:
        # the environment rejects longer actions; replaying one here would score what no episode could say
        for i, m in enumerate(self.messages):
            if m.role in DOCTOR_ROLES and len(m.content) > MAX_MESSAGE_CHARS:
                raise ValueError(
                    f"messages.{i}: the doctor message has {len(m.content):,} characters; "
                    f"at most {MAX_MESSAGE_CHARS:,} (the environment's limit)"
                )
        return self


class DialogMetrics(pydantic.BaseModel):
    id: str
    line: int
    case_id: str
    doctor: str
    true_diagnosis: str
    stated_diagnosis: str | None
    correct: bool
    key_fact_recall: float
    patient_fact_recall: float
    questions: int
    tests: int
    inquiries: int  # charged by the question budget: tests, and questions once per finding they name
    repeated: int
    irrelevant: int
    repeated_rate: float  # over questions + tests
    irrelevant_rate: float
    turns: int  # doctor turns
    turns_to_diagnosis: int | None  # doctor turn that stated the diagnosis
    prior_probability: float | None
    final_probability: float | None
    probability_by_turn: list[float] | None  # index 0 = after the opening, k = after doctor turn k


class LineError(pydantic.BaseModel):
    line: int
    error: str


class Summary(pydantic.BaseModel):
    dialogs: int
    accuracy: float
    diagnosed: float  # share of dialogs that stated a diagnosis
    key_fact_recall: float
    patient_fact_recall: float
    questions: float  # mean per dialog
    tests: float
    inquiries: float
    repeated_rate: float  # repeated / (questions + tests), pooled
    irrelevant_rate: float
    turns_to_diagnosis: float | None  # mean over diagnosed dialogs
    final_probability: float | None  # mean over the dialogs that have one; None ("n/a") when none has
    probability_dialogs: int = 0  # dialogs with a P(correct): the diagnoser could score their case
    probability_by_turn: list[float]  # mean over dialogs, each carried forward after it ends


class EvalReport(pydantic.BaseModel):
    source: str
    diagnoser: str = "match"
    cases: str | None = None  # the case file's load summary ("loaded 213/214; line 132: ...")
    summary: Summary | None
    by_doctor: dict[str, Summary]
    dialogs: list[DialogMetrics]
    errors: list[LineError]


def _judge(diagnoser: Diagnoser | str | None, table) -> Diagnoser:
    """The diagnoser that gives P(correct): "match" (default) and "bayes" give the Bayesian posterior for
    cases in the table and None elsewhere; an LLM diagnoser scores any case."""
    if diagnoser is None or isinstance(diagnoser, str):
        diagnoser = make_diagnoser(diagnoser or "match", table=table)  # "llm" by name alone: an error naming the model
    if isinstance(diagnoser, BayesianDiagnoser):  # in a report, outside the table is "n/a", not an error
        return MatchDiagnoser(diagnoser.table)
    return diagnoser


def _replay(rec: DialogRecord, k: Consultation, flush) -> tuple[str | None, int, int | None]:
    """Replay the doctor's turns through `k`; `flush(transcript)` after the opening and after each doctor
    turn's reply. Returns (stated diagnosis, doctor turns, turn of the diagnosis)."""
    transcript: list[dict] = []  # what the doctor actually saw, for an LLM diagnoser
    msgs = [m for m in rec.messages if m.role != "system"]
    i = 0
    while i < len(msgs) and msgs[i].role in PATIENT_ROLES:  # the opening
        transcript.append({"role": "user", "content": msgs[i].content})
        i += 1
    flush(transcript)
    stated, turns, to_dx, pending = None, 0, None, False
    for m in msgs[i:]:
        if m.role in PATIENT_ROLES:
            transcript.append({"role": "user", "content": m.content})
            continue
        if pending:
            flush(transcript)  # the previous doctor turn's reply is in: score it
        turns += 1
        r = k.doctor_turn(m.content)
        transcript.append({"role": "assistant", "content": m.content})
        pending = True
        if r.kind == "diagnosis":
            stated, to_dx = r.target, turns
            break
    if pending:
        flush(transcript)
    return stated, turns, to_dx


def score_dialog(
    rec: DialogRecord,
    case: PatientCase,
    line: int,
    *,
    diagnoser: Diagnoser | str | None = None,
    bayes: BayesianDiagnoser | None = None,
) -> DialogMetrics:
    bayes = bayes or BayesianDiagnoser()
    judge = _judge(diagnoser, bayes.table)
    k = Consultation(case)
    k.opening()
    in_table = (case.diagnosis_id or bayes.table.disease_id_for(case.diagnosis)) is not None
    probs: list[float] = []
    scored = [True]  # False once the diagnoser says n/a for this case

    def flush(transcript: list[dict]) -> None:
        if scored[0]:
            p = judge.probability(case, k.evidence, list(transcript))
            if p is None:
                scored[0] = False
            else:
                probs.append(float(p))

    stated, turns, to_dx = _replay(rec, k, flush)  # only what the doctor said is scored, never rec.diagnosis
    by_turn = probs if scored[0] and probs else None
    asked = k.count("question") + k.count("test")
    return DialogMetrics(
        id=rec.id or f"line-{line}",
        line=line,
        case_id=case.id,
        doctor=rec.doctor,
        true_diagnosis=case.diagnosis,
        stated_diagnosis=stated,
        correct=bool(stated) and diagnosis_matches(stated, case, bayes.table),
        key_fact_recall=k.recall(),
        patient_fact_recall=k.recall(patient_only=True),
        questions=k.count("question"),
        tests=k.count("test"),
        inquiries=k.inquiries,
        repeated=k.repeated,
        irrelevant=k.irrelevant,
        repeated_rate=k.repeated / asked if asked else 0.0,
        irrelevant_rate=k.irrelevant / asked if asked else 0.0,
        turns=turns,
        turns_to_diagnosis=to_dx,
        prior_probability=bayes.prior_probability(case) if in_table else None,
        final_probability=by_turn[-1] if by_turn else None,
        probability_by_turn=by_turn,
    )


def summarize(ms: list[DialogMetrics]) -> Summary:
    n = len(ms)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    asked = sum(m.questions + m.tests for m in ms)
    dx = [m.turns_to_diagnosis for m in ms if m.turns_to_diagnosis is not None]
    curves = [m.probability_by_turn for m in ms if m.probability_by_turn]
    width = max((len(c) for c in curves), default=0)
    by_turn = [mean([c[min(t, len(c) - 1)] for c in curves]) for t in range(width)]
    finals = [m.final_probability for m in ms if m.final_probability is not None]
    return Summary(
        dialogs=n,
        accuracy=mean([float(m.correct) for m in ms]),
        diagnosed=mean([float(m.stated_diagnosis is not None) for m in ms]),
        key_fact_recall=mean([m.key_fact_recall for m in ms]),
        patient_fact_recall=mean([m.patient_fact_recall for m in ms]),
        questions=mean([m.questions for m in ms]),
        tests=mean([m.tests for m in ms]),
        inquiries=mean([m.inquiries for m in ms]),
        repeated_rate=sum(m.repeated for m in ms) / asked if asked else 0.0,
        irrelevant_rate=sum(m.irrelevant for m in ms) / asked if asked else 0.0,
        turns_to_diagnosis=mean(dx) if dx else None,
        final_probability=mean(finals) if finals else None,
        probability_by_turn=by_turn,
        probability_dialogs=len(finals),
    )


def _bank(cases: str | Path | list[PatientCase] | None) -> tuple[list[PatientCase], str | None]:
    """(cases, load summary) from a list, a case file in any supported format, or the shipped bank."""
    if isinstance(cases, list):
        return cases, None
    if cases is None:
        return shipped_cases(), None
    # the loaders pull in the lexicon: imported only when a file is given
    from mock_patients.loaders import load_file

    loaded = load_file(cases)
    return loaded.cases, f"{cases} ({loaded.report.format}): {loaded.report.summary()}"


def _recorded_case_file(path: Path) -> str | None:
    """The case file the first dialog of a transcript names (`case_file`, written by `consult run --cases FILE`),
    when it exists; relative paths are read from the transcript's folder, then the working directory."""
    for _, obj, err in iter_jsonl(path):
        if err is None and isinstance(obj, dict) and isinstance(obj.get("case_file"), str) and obj["case_file"].strip():
            name = Path(obj["case_file"])
            for p in (name,) if name.is_absolute() else (path.parent / name, name):
                if p.is_file():
                    return str(p)
            return None
    return None


def _unknown_cases_error(unknown: list[tuple[int, str]], n_bank: int, cases: object) -> str:
    """One error for every dialog whose case id is not in the bank: how many, which lines, and what to pass."""
    ids = list(dict.fromkeys(cid for _, cid in unknown))
    lines = f"line {unknown[0][0]}" if len(unknown) == 1 else f"lines {unknown[0][0]}-{unknown[-1][0]}"
    where = (
        f"the case file {cases}"
        if isinstance(cases, (str, Path))
        else "the given cases"
        if isinstance(cases, list)
        else "the shipped case bank"
    )
    shown = ", ".join(repr(i) for i in ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    fix = (
        ""
        if isinstance(cases, (str, Path, list))
        else "; pass --cases FILE, the case file the dialogs were run on (any format `consult run --cases` reads)"
    )
    if len(unknown) == 1:
        return f"unknown case_id {ids[0]!r}: not in {where} ({n_bank} cases){fix}"
    return f"unknown case_id in {len(unknown)} dialogs ({lines}): {shown} are not in {where} ({n_bank} cases){fix}"


def _diagnoser_name(diagnoser: Diagnoser | str | None) -> str:
    if diagnoser is None or isinstance(diagnoser, str):
        return diagnoser or "match"
    return {LLMDiagnoser: "llm", MatchDiagnoser: "match", BayesianDiagnoser: "bayes"}.get(
        type(diagnoser), type(diagnoser).__name__
    )


def evaluate_file(
    path: str | Path,
    *,
    cases: str | Path | list[PatientCase] | None = None,
    out_json: str | Path | None = None,
    out_html: str | Path | None = None,
    diagnoser: Diagnoser | str | None = None,
) -> EvalReport:
    """Score every line of a transcript file; bad lines become `errors` (with line numbers), never aborts.
    `cases`: a case list, or a case file in any format `loaders.load_file` reads (this package's JSONL,
    AgentClinic OSCE or NEJM, MediQ; default: the shipped case bank). `diagnoser`: "match" (default),
    "bayes", or a diagnoser object (e.g. an `LLMDiagnoser`). Writes JSON / HTML if asked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transcript file not found: {path}")
    if cases is None:
        cases = _recorded_case_file(path)
    bank, loaded = _bank(cases)
    by_id = {c.id: c for c in bank}
    unknown: list[tuple[int, str]] = []  # (line, case id) of dialogs whose case is not in the bank
    bayes = BayesianDiagnoser()
    judge = _judge(diagnoser, bayes.table)
    metrics: list[DialogMetrics] = []
    errors: list[LineError] = []
    for lineno, obj, err in iter_jsonl(path):
        if err is None:
            try:
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                rec = DialogRecord.model_validate(obj)
                case = rec.case or by_id.get(rec.case_id or "")
                if case is None:
                    unknown.append((lineno, str(rec.case_id)))  # reported once, below
                    continue
                metrics.append(score_dialog(rec, case, lineno, diagnoser=judge, bayes=bayes))
            except (ValueError, DiagnoserError) as exc:  # pydantic.ValidationError is a ValueError
                err = error_text(exc)
            except RecursionError:  # io's depth cap makes this unreachable; one line never ends the file
                err = "dialog nested too deeply to score"
        if err is not None:
            errors.append(LineError(line=lineno, error=err))
    if unknown:
        errors.append(LineError(line=unknown[0][0], error=_unknown_cases_error(unknown, len(by_id), cases)))
        errors.sort(key=lambda e: e.line)
    doctors = sorted({m.doctor for m in metrics})
    report = EvalReport(
        source=str(path),
        diagnoser=_diagnoser_name(diagnoser),
        cases=loaded,
        summary=summarize(metrics) if metrics else None,
        by_doctor={d: summarize([m for m in metrics if m.doctor == d]) for d in doctors} if len(doctors) > 1 else {},
        dialogs=metrics,
        errors=errors,
    )
    if out_json is not None:
        atomic_write_text(out_json, report.model_dump_json(indent=2) + "\n")
    if out_html is not None:
        write_html(report, out_html)
    return report


# --- HTML report ---------------------------------------------------------------------------------------


def _label(name: str) -> str:
    """A doctor's name as a plot label, shown as written: "$" escaped so matplotlib never parses it as mathtext
    ("$\\frac{1}{$" would abort the report), a leading "_" kept (matplotlib hides such labels), 60 characters."""
    name = name if len(name) <= 60 else name[:59] + "…"
    name = name.replace("$", r"\$")
    return " " + name if name.startswith("_") else name


def _plots(report: EvalReport) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs; empty when matplotlib is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    groups = report.by_doctor or ({"all": report.summary} if report.summary else {})
    out = []

    def emit(fig, title):
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        out.append((title, base64.b64encode(buf.getvalue()).decode()))

    if any(s.probability_by_turn for s in groups.values()):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, s in groups.items():
            if s.probability_by_turn:
                ax.plot(range(len(s.probability_by_turn)), s.probability_by_turn, marker="o", ms=3, label=_label(name))
        ax.set_xlabel("doctor turn (0 = opening)")
        ax.set_ylabel("P(correct diagnosis)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        emit(fig, "Probability of the correct diagnosis, turn by turn (mean)")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(groups)
    metrics = ["accuracy", "key_fact_recall", "repeated_rate", "irrelevant_rate"]
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        s = groups[name]
        ax.bar(
            [j + i * width for j in range(len(metrics))], [getattr(s, m) for m in metrics], width, label=_label(name)
        )
    ax.set_xticks(
        [j + width * (len(names) - 1) / 2 for j in range(len(metrics))],
        [m.replace("_", " ") for m in metrics],
        fontsize=8,
    )
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    emit(fig, "Accuracy, recall and question quality")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    qs = [m.questions + m.tests for m in report.dialogs]
    if qs:
        ax.hist(qs, bins=range(0, max(qs) + 2), color="#4c72b0", edgecolor="white")
    ax.set_xlabel("questions + tests per dialog")
    ax.set_ylabel("dialogs")
    emit(fig, "Questions asked")
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.3f}"
    return html.escape(str(v))


def write_html(report: EvalReport, path: str | Path) -> None:
    e = html.escape
    rows = [
        ("source", report.source),
        ("cases", report.cases or "shipped case bank"),
        ("diagnoser", report.diagnoser),
        ("dialogs scored", len(report.dialogs)),
        ("lines with errors", len(report.errors)),
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Consultation evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}"
        "th{background:#f0f0f0}.err{color:#a00}img{max-width:100%}</style></head><body>",
        "<h1>Consultation evaluation</h1><table>",
    ]
    parts += [f"<tr><th>{e(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in rows]
    parts.append("</table>")
    summaries = dict(report.by_doctor) or ({"all dialogs": report.summary} if report.summary else {})
    if summaries:
        fields = [f for f in Summary.model_fields if f != "probability_by_turn"]
        parts.append(
            "<h2>Summary</h2><table><tr><th>doctor</th>"
            + "".join(f"<th>{e(f.replace('_', ' '))}</th>" for f in fields)
            + "</tr>"
        )
        for name, s in summaries.items():
            parts.append(
                f"<tr><td>{e(name)}</td>" + "".join(f"<td>{_fmt(getattr(s, f))}</td>" for f in fields) + "</tr>"
            )
        parts.append("</table>")
    plots = _plots(report)
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<h3>{e(t)}</h3><img alt='{e(t)}' src='data:image/png;base64,{b}'>" for t, b in plots]
    else:
        parts.append("<p><i>matplotlib is not installed: no plots.</i></p>")
    if report.errors:
        parts.append("<h2>Lines that could not be scored</h2><table><tr><th>line</th><th>error</th></tr>")
        parts += [f"<tr class='err'><td>{x.line}</td><td>{e(x.error)}</td></tr>" for x in report.errors]
        parts.append("</table>")
    cols = [
        "id",
        "line",
        "doctor",
        "case_id",
        "true_diagnosis",
        "stated_diagnosis",
        "correct",
        "key_fact_recall",
        "questions",
        "tests",
        "inquiries",
        "repeated",
        "irrelevant",
        "turns_to_diagnosis",
        "prior_probability",
        "final_probability",
    ]
    parts.append("<h2>Dialogs</h2><table><tr>" + "".join(f"<th>{e(c.replace('_', ' '))}</th>" for c in cols) + "</tr>")
    for m in report.dialogs:
        parts.append("<tr>" + "".join(f"<td>{_fmt(getattr(m, c))}</td>" for c in cols) + "</tr>")
    parts.append("</table></body></html>\n")
    atomic_write_text(path, "".join(parts))


def main_summary_line(report: EvalReport) -> str:
    s = report.summary
    if s is None:
        return f"no dialog could be scored ({len(report.errors)} lines with errors)"
    return (
        f"{s.dialogs} dialogs: accuracy {s.accuracy:.3f}, key-fact recall {s.key_fact_recall:.3f}, "
        f"questions {s.questions:.1f}, repeated {s.repeated_rate:.3f}, irrelevant {s.irrelevant_rate:.3f}"
        + (
            f", P(correct) final {s.final_probability:.3f} ({s.probability_dialogs}/{s.dialogs} dialogs)"
            if s.final_probability is not None
            else ", P(correct) n/a (no case in the knowledge table)"
        )
        + (f"; {len(report.errors)} lines with errors" if report.errors else "")
    )
