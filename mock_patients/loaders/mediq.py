"""MediQ records (Li et al. 2024; data/all_craft_md.jsonl, all_dev_good.jsonl, ...) -> `PatientCase`.

    {"id": 0, "question": "Which of the following is the most likely diagnosis?",
     "context": ["A 22-year-old man presented with ...", ...],        # sentences (or one text)
     "options": {"A": "...", "B": "..."} (or a list), "answer": "...", "answer_idx": "A",
     "facts": ["1. ...", "2. ..."] (or one numbered text),              # MediQ's atomic facts
     "patient": {"age": 22 | "22 years" | "21 years old", "gender": "male" | "Male" | "M", ...}}

MediQ is multiple-choice QA over MedQA vignettes: many questions ask for a next step, a drug or a mechanism,
not a diagnosis. Each record is tagged by rules on the question text (`question_type`): diagnosis,
next_step, treatment (a treatment or a drug), mechanism, or other. Only diagnosis questions become
consultation cases by default; `include_types` adds others as `QuestionCase`s, whose answer is the `target`
(with its `question_type`) and never the diagnosis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from mock_patients.cases import Observation, PatientCase, diagnosis_length_error
from mock_patients.facts import FactBuilder, split_facts, split_sentences
from mock_patients.lexicon import default_lexicon
from mock_patients.loaders.common import (
    EXAM_WORDS,
    Split,
    check_split,
    chief_complaint,
    is_test_result,
    link_diagnosis,
    parse_demographics,
    text_of,
)
from mock_patients.loaders.report import LoadResult, SkipRecord, load_records
from mock_patients.rewrite import age_sentence, sex_sentence

QuestionType = Literal["diagnosis", "about_diagnosis", "next_step", "treatment", "mechanism", "other"]
QUESTION_TYPES: tuple[str, ...] = ("diagnosis", "next_step", "treatment", "mechanism", "other", "about_diagnosis")
# what a non-diagnosis QuestionCase holds in PatientCase's required `diagnosis` field (see QuestionCase)
NOT_A_DIAGNOSIS = "n/a (not a diagnosis question)"

# Keywords of each type; the one that appears first in the question's asking clause wins
# ("Which of the following drugs has this mechanism?" asks for a drug).
_TYPE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "next_step",
        re.compile(
            r"\bnext (?:best )?step|\b(?:best|most appropriate|initial|first|next)\s+(?:\w+\s+)?"
            r"(?:step|test|investigation|evaluation|imaging|diagnostic|workup|work-up|study)|"
            r"confirm (?:the|this|a) diagnosis|establish (?:the|this|a) diagnosis|management\b",
            re.I,
        ),
    ),
    (
        "treatment",
        re.compile(
            r"\btreat|therap|pharmacotherap|medication|\bdrugs?\b|prescri|\bwas given\b|"
            r"\badminister|antibiotic|regimen|\bshould be given\b|intervention|vaccin|surgery",
            re.I,
        ),
    ),
    (
        "mechanism",
        re.compile(
            r"mechanism|pathophysiolog|pathogenesis|mode of action|mediated by|"
            r"\benzyme\b|\breceptor\b",
            re.I,
        ),
    ),
    (
        "diagnosis",
        re.compile(
            r"\bdiagnos[ie]s\b|\bmost likely (?:condition|disease|disorder)\b|"
            r"\bpatient (?:most likely )?(?:has|suffers from)\b|is (?:most likely )?suffering from",
            re.I,
        ),
    ),
)
_ASK = re.compile(r"\b(?:which|what)\b", re.IGNORECASE)


# The asking clause names the diagnosis as what it asks for: "Which of the following is the most likely diagnosis
# (in this patient)?", "What is the diagnosis?", "Which is most likely this patient's diagnosis?"
_ASKS_DIAGNOSIS = re.compile(
    r"^(?:which|what)(?:\s+of\s+the\s+following)?\s+(?:is|was)\s+(?:the\s+|(?:this|the)\s+patient['’]s\s+)?"
    r"(?:(?:most|more)\s+likely\s+|likely\s+|probable\s+|most\s+probable\s+)?(?:the\s+|(?:this|the)\s+patient['’]s\s+)?"
    r"(?:underlying\s+|final\s+|correct\s+|working\s+)?(?:diagnosis|condition|disease|disorder)\b",
    re.IGNORECASE,
)
# ... but not when it asks for something about the diagnosis: a finding, a test, a cause, an association
_ABOUT = re.compile(
    r"\b(?:confirm|establish|characteristic|associated|etiology|cause|risk|mechanism|tests?|laborator\w*|"
    r"findings?|consistent|linked|repeat|rule|represent|yield|lesions?|histopatholog\w*|drug|treat\w*|"
    r"management|except|shown|seen|marked|complication|prognosis|pathway|gene)\b",
    re.IGNORECASE,
)
# an answer that is not a diagnosis name: a value read-out, a sentence, a test, a molecule
_NOT_A_NAME = re.compile(
    r"[:↑↓=]|\b(?:is|are|was|were|may|can|localize|pathway|gene|overexpression|expression|antibod\w*|"
    r"receptor|enzyme|level|repeat|cytometry|mri|ct|radiograph|x-ray|biopsy|test|sex|age)\b",
    re.IGNORECASE,
)


def question_type(question: str, options: Iterable[str] = (), answer: str = "") -> QuestionType:
    """Tag a MediQ question by what it asks for. A diagnosis question asks for the diagnosis itself in its asking
    clause (from the last "which"/"what" on) and its answer reads as a name (not a value, a sentence, a test or
    a molecule); a question that only mentions the diagnosis ("Which of the following is associated with this
    patient's most likely diagnosis?") is "about_diagnosis". Otherwise the earliest keyword of the other types in
    the asking clause decides; "other" when none is there."""
    q = (question or "").strip()
    starts = [m.start() for m in _ASK.finditer(q)]
    ask = q[starts[-1] :] if starts else q
    names = [o for o in (answer, *options) if o]
    name_like = not (answer and _NOT_A_NAME.search(answer)) and all(len(o.split()) <= 10 for o in names)
    if re.search(r"\bdiagnos[ie]s\b|\bmost likely (?:condition|disease|disorder)\b", ask, re.IGNORECASE):
        if _ASKS_DIAGNOSIS.match(ask) and not _ABOUT.search(ask) and all(len(o.split()) <= 12 for o in names):
            return "diagnosis"
        kind = _keyword_type(ask)
        return "about_diagnosis" if kind in ("diagnosis", "other") else kind
    kind = _keyword_type(ask)
    return "about_diagnosis" if kind == "diagnosis" and not name_like else kind


def _keyword_type(ask: str) -> QuestionType:
    best: tuple[int, int, str] | None = None
    for rank, (kind, rx) in enumerate(_TYPE_RULES):
        m = rx.search(ask)
        if m and (best is None or (m.start(), rank) < best[:2]):
            best = (m.start(), rank, kind)
    return best[2] if best else "other"  # type: ignore[return-value]


class QuestionCase(PatientCase):
    """A MediQ record whose question is not a diagnosis: its answer is `target` (of `question_type`), and
    `diagnosis` holds NOT_A_DIAGNOSIS because PatientCase requires one. Not a consultation case: the
    environment and `agentrl consult run` use diagnosis questions only."""

    question: str
    question_type: QuestionType
    target: str


_DEMOGRAPHIC = re.compile(
    r"^(?:the\s+)?(?:patient|pt)\s+is\s+(?:an?\s+)?\d+[-\s](?:year|month|week|day)s?[-\s]old(?:\s+\w+){0,3}\.?$",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"^\s*(?:\(?\d+[.)]|[-*•])\s*")


def _numbered_facts(items: list[str]) -> list[str]:
    out = []
    for it in items:
        for line in str(it).splitlines():
            line = _NUMBERED.sub("", line).strip()
            if line:
                out.append(line)
    return out


def _answer(record: dict) -> tuple[str, list[str]]:
    """(answer text, option texts); ValueError naming the field when there is no answer."""
    raw = record.get("answer")
    if raw is not None and not isinstance(raw, str):  # never joined into "Gout; Pneumonia"
        raise ValueError(f"answer must be a text (the correct option), got {_kind(raw)}")
    answer = (raw or "").strip().strip('"“”').strip()  # 'Squamous cell lung carcinoma\n"' is one name
    options = record.get("options") or {}
    if isinstance(options, dict):
        opts = [text_of(v) for v in options.values() if text_of(v) and text_of(v).upper() != "N/A"]
        idx = record.get("answer_idx")
        if not answer and isinstance(idx, str) and idx in options:
            if not isinstance(options[idx], str):
                raise ValueError(f"options.{idx} (the answer_idx option) must be a text, got {_kind(options[idx])}")
            answer = options[idx].strip()
    elif isinstance(options, list):
        opts = [text_of(v) for v in options if text_of(v)]
    else:
        raise ValueError("options must be an object {letter: text} or a list")
    if not answer:
        raise ValueError("answer (or answer_idx naming an option) is missing")
    return answer, opts


def _kind(v: object) -> str:
    return {list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


def _fact_texts(record: dict) -> tuple[list[str], list[str]]:
    """(context sentences, atomic fact statements)."""
    context = record.get("context") or []
    if isinstance(context, str):
        context = split_sentences(context)
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise ValueError("context must be a list of sentences or a text")
    raw = record.get("facts", record.get("atomic_facts"))
    if isinstance(raw, str):
        raw = [raw]
    if raw is not None and not isinstance(raw, list):
        raise ValueError("facts must be a list of numbered atomic facts or a text")
    facts = _numbered_facts(raw) if raw else [s for c in context for s in split_sentences(c)]
    if not facts:
        raise ValueError("the record has neither facts nor context to build key facts from")
    return context, facts


def _add_statement(
    b: FactBuilder, text: str, present: bool, exams: list[Observation], tests: list[Observation]
) -> None:
    if is_test_result(text) and not EXAM_WORDS.search(text):
        tid = b.lexicon.resolve_test(text)
        name = b.lexicon.table.test_spec(tid).name if tid else "laboratory studies"
        b.add(text, "test", present=present, test=tid or name)
        tests.append(Observation(test=name, result=text, test_id=tid))
    elif EXAM_WORDS.search(text):
        tid = b.lexicon.resolve_test(text) or "physical examination"
        b.add(text, "exam", present=present, test=tid)
        exams.append(
            Observation(
                test="Physical examination", result=text, test_id=tid if tid != "physical examination" else None
            )
        )
    elif _DEMOGRAPHIC.match(text):
        b.add(text, "demographics", link=False)
    else:
        b.add(text, "hpi", present=present)


def mediq_case(
    record: dict, case_id: str | None = None, *, split: Split = "test", include_types: Iterable[str] = ("diagnosis",)
) -> PatientCase:
    """One MediQ record; a question type outside `include_types` raises SkipRecord(type)."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    answer, opts = _answer(record)
    qtype = question_type(text_of(record.get("question")), opts, answer)
    if qtype not in set(include_types):
        raise SkipRecord(qtype)
    context, facts_text = _fact_texts(record)
    pat = record.get("patient") or {}
    if not isinstance(pat, dict):
        raise ValueError("patient must be an object {age, gender}")
    first = context[0] if context else facts_text[0]
    first = (split_sentences(first) or [first])[0]  # a context item may hold several sentences
    try:
        demo = parse_demographics(first, age=pat.get("age"), sex=pat.get("gender", pat.get("sex")))
    except ValueError as exc:
        raise ValueError(f"patient.age: {exc}") from None
    word = str(pat.get("age") or "").strip()
    if word and not re.search(r"\d", word) and word.lower() not in demo.description.lower():
        # "elderly", "Teen": kept beside the vignette so the patient says the word, not an invented number
        demo = demo.model_copy(update={"description": f"{word.lower()}; {demo.description}"})
    b = FactBuilder(default_lexicon())
    if demo.age is not None:
        b.add(f"Age {demo.age}", "demographics", patient_text=age_sentence(demo.age, first), link=False)
    if demo.sex is not None:
        b.add(f"Sex: {demo.sex}", "demographics", patient_text=sex_sentence(demo.age, demo.sex, first), link=False)
    cc = chief_complaint(first)
    b.add(cc, "chief_complaint")
    exams: list[Observation] = []
    tests: list[Observation] = []
    for i, stmt in enumerate(facts_text):
        if i == 0 and stmt.strip() == first.strip():
            continue  # the chief complaint sentence
        for text, present in split_facts(stmt):
            _add_statement(b, text, present, exams, tests)
    rid = case_id or f"mediq-{record.get('id', record.get('realidx', 'x'))}"
    common = dict(
        id=str(rid),
        source="mediq",
        split=split,
        demographics=demo,
        chief_complaint=cc,
        history_of_present_illness=" ".join(context),
        exam_findings=tuple(exams),
        test_results=tuple(tests),
        options=tuple(opts),
        key_facts=tuple(b.facts),
    )
    if qtype != "diagnosis":
        return QuestionCase(
            **common,
            diagnosis=NOT_A_DIAGNOSIS,
            question=text_of(record.get("question")),  # type: ignore[arg-type]
            question_type=qtype,
            target=answer,
        )
    err = diagnosis_length_error("answer", answer)
    if err:
        raise ValueError(err)
    return PatientCase(
        **common,
        diagnosis=answer,
        diagnosis_id=link_diagnosis(answer),  # type: ignore[arg-type]
        differential=tuple(o for o in opts if o.strip().lower() != answer.strip().lower()),
    )


def read_mediq(
    path: str | Path,
    *,
    split: Split = "test",
    id_prefix: str = "mediq",
    include_types: Iterable[str] = ("diagnosis",),
    strict: bool = False,
) -> LoadResult:
    """A MediQ file with its load report; case ids are "<id_prefix>-<record id>" (the line number without
    one). Questions of a type outside `include_types` are counted in the report, not loaded."""
    check_split(split)
    kinds = tuple(include_types)
    bad = [k for k in kinds if k not in QUESTION_TYPES]
    if bad or not kinds:
        raise ValueError(f"include_types must name some of {', '.join(QUESTION_TYPES)}; got {list(kinds)}")

    def convert(r: dict, line: int) -> PatientCase:
        rid = r.get("id", r.get("realidx"))
        cid = f"{id_prefix}-{rid}" if rid is not None and str(rid).strip() else f"{id_prefix}-{line:04d}"
        return mediq_case(r, cid, split=split, include_types=kinds)

    return load_records(path, "mediq", convert, strict=strict)


def load_mediq(
    path: str | Path,
    *,
    split: Split = "test",
    id_prefix: str = "mediq",
    include_types: Iterable[str] = ("diagnosis",),
    strict: bool = False,
) -> list[PatientCase]:
    """The cases of a MediQ file: diagnosis questions only unless `include_types` says otherwise."""
    return read_mediq(path, split=split, id_prefix=id_prefix, include_types=include_types, strict=strict).cases
