"""P(true diagnosis | what the doctor collected).

* `BayesianDiagnoser` — naive Bayes over the knowledge table: prior weight x age and sex likelihoods x
  P(finding state | disease) for every disclosed finding. The generator samples cases from the same
  numbers (`KnowledgeTable.p_finding`), so for generated cases this is the generating model's posterior.
* `LLMDiagnoser` — a chat model rates each candidate diagnosis's likelihood (0-100) given the transcript;
  the ratings are normalized over the candidates.
* `MatchDiagnoser` — for any case: the Bayesian P(correct) where the case's disease is in the table, and
  None ("n/a") elsewhere; accuracy is by name (`names.diagnosis_matches`) whichever diagnoser is used.

`make_diagnoser("bayes" | "llm" | "match", model=...)` builds one by name (DIAGNOSER_KINDS).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from mock_patients.cases import PatientCase
from mock_patients.chat import ChatModel, require_chat_model
from mock_patients.knowledge import KnowledgeTable, default_table
from mock_patients.names import accepted_names, diagnosis_matches

_SEX_WORDS = re.compile(r"\b(sex|male|female|man|woman|boy|girl|gentleman|lady)\b", re.IGNORECASE)
_EPS = 1e-6  # floor for impossible events, so one contradictory finding lowers a disease instead of zeroing it


@dataclass
class Evidence:
    """What the doctor has learned: finding id -> present (True) / absent (False), plus demographics."""

    findings: dict[str, bool] = field(default_factory=dict)
    age: int | None = None
    sex: str | None = None

    def copy(self) -> Evidence:
        return Evidence(dict(self.findings), self.age, self.sex)

    def add_facts(self, case: PatientCase, fact_ids: Iterable[str]) -> None:
        for fid in fact_ids:
            f = case.fact(fid)
            if f.finding:
                self.findings[f.finding] = f.present
            if f.category == "demographics":
                if case.demographics.age is not None and re.search(r"\d", f.text):
                    self.age = case.demographics.age
                if case.demographics.sex is not None and _SEX_WORDS.search(f.text):
                    self.sex = case.demographics.sex

    def add_normal_test(self, table: KnowledgeTable, test_id: str) -> None:
        """A closed-world "normal" result: every finding that test shows is absent (unless already seen)."""
        for f in table.findings_of_test(test_id):
            self.findings.setdefault(f.id, False)


class Diagnoser(Protocol):
    def probability(self, case: PatientCase, evidence: Evidence, transcript: list[dict]) -> float | None: ...


DIAGNOSER_KINDS = ("bayes", "llm", "match")
OTHER_CANDIDATE = "another condition"  # the LLM diagnoser's second candidate when a case names no alternatives
_STATED = re.compile(r"^\s*diagnosis\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


class DiagnoserError(ValueError):
    """A diagnoser could not score a case (diagnosis outside its table, unparseable model reply)."""


@dataclass(frozen=True)
class _Logs:
    ids: tuple[str, ...]
    log_prior: tuple[float, ...]
    present: dict[str, tuple[float, ...]]  # finding -> log P(present | d) per disease
    absent: dict[str, tuple[float, ...]]


@lru_cache(maxsize=4)
def _logs(table: KnowledgeTable) -> _Logs:
    total = sum(d.prior for d in table.diseases)
    present, absent = {}, {}
    for f in table.findings:
        ps = [min(max(table.p_finding(d, f.id), _EPS), 1 - _EPS) for d in table.diseases]
        present[f.id] = tuple(math.log(p) for p in ps)
        absent[f.id] = tuple(math.log(1 - p) for p in ps)
    return _Logs(
        tuple(d.id for d in table.diseases), tuple(math.log(d.prior / total) for d in table.diseases), present, absent
    )


class BayesianDiagnoser:
    def __init__(self, table: KnowledgeTable | None = None):
        self.table = table or default_table()
        self._logs = _logs(self.table)

    def __deepcopy__(self, memo: dict) -> BayesianDiagnoser:
        return self

    def prior(self) -> dict[str, float]:
        return {i: math.exp(lp) for i, lp in zip(self._logs.ids, self._logs.log_prior)}

    def posterior(self, evidence: Evidence) -> dict[str, float]:
        lg = list(self._logs.log_prior)
        for k, d in enumerate(self.table.diseases):
            if evidence.age is not None:
                lo, hi = d.age
                lg[k] += -math.log(hi - lo + 1) if lo <= evidence.age <= hi else math.log(_EPS)
            if evidence.sex is not None:
                p = d.p_female if evidence.sex == "female" else 1.0 - d.p_female
                lg[k] += math.log(min(max(p, _EPS), 1.0))
        for fid, is_present in evidence.findings.items():
            row = (self._logs.present if is_present else self._logs.absent).get(fid)
            if row is None:
                continue  # a finding outside the table carries no evidence here
            for k, v in enumerate(row):
                lg[k] += v
        m = max(lg)
        w = [math.exp(x - m) for x in lg]
        z = sum(w)
        return {i: x / z for i, x in zip(self._logs.ids, w)}

    def disease_id(self, case: PatientCase) -> str:
        did = case.diagnosis_id or self.table.disease_id_for(case.diagnosis)
        if did is None:
            raise DiagnoserError(
                f"case {case.id}: diagnosis {case.diagnosis!r} is not in the knowledge table, so the Bayesian "
                "diagnoser cannot score it; use an LLM diagnoser for such cases"
            )
        return did

    def probability(self, case: PatientCase, evidence: Evidence, transcript: list[dict] | None = None) -> float:
        return self.posterior(evidence)[self.disease_id(case)]

    def prior_probability(self, case: PatientCase) -> float:
        return self.prior()[self.disease_id(case)]


SCORE_PROMPT = (
    "Below is a consultation between a doctor and a patient. Judge only from what it contains.\n\n"
    "{transcript}\n\nHow likely is it that the patient has {candidate}? "
    "Reply with one number from 0 (impossible) to 100 (certain) and nothing else."
)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?)")


def _format_transcript(transcript: list[dict]) -> str:
    who = {"assistant": "Doctor", "user": "Patient", "doctor": "Doctor", "patient": "Patient"}
    return "\n".join(
        f"{who.get(m['role'], m['role'].capitalize())}: {m['content']}" for m in transcript if m.get("role") != "system"
    )


class LLMDiagnoser:
    """Scores each candidate diagnosis with a chat model; candidates default to the case's diagnosis,
    its differential and its multiple-choice options. A reply without a number is re-asked once and
    then raises DiagnoserError (a failure is never scored as 0)."""

    def __init__(
        self, model: ChatModel, *, candidates: list[str] | None = None, seed: int | None = 0, max_tokens: int = 8
    ):
        require_chat_model(model, "LLMDiagnoser")
        self.model = model
        self.candidates = candidates
        self.seed = seed
        self.max_tokens = max_tokens

    def __deepcopy__(self, memo: dict) -> LLMDiagnoser:
        return self

    def candidate_list(self, case: PatientCase, transcript: list[dict] | None = None) -> list[str]:
        """The case's diagnosis, differential and options, plus any diagnosis the doctor stated in the
        transcript; a case that names no alternative (AgentClinic OSCE) is scored against OTHER_CANDIDATE."""
        stated = [
            m.group(1).strip()
            for t in transcript or ()
            if t.get("role") in ("assistant", "doctor")
            for m in _STATED.finditer(str(t.get("content", "")))
        ]
        names = self.candidates or [case.diagnosis, *case.differential, *case.options, *stated]
        out: list[str] = []
        for n in names:
            if n.strip() and not any(n.strip().lower() == o.lower() for o in out):
                out.append(n.strip())
        if not any(diagnosis_matches(c, case) for c in out):
            out.insert(0, case.diagnosis)
        if len(out) < 2 and self.candidates is None:
            out.append(OTHER_CANDIDATE)
        if len(out) < 2:
            raise DiagnoserError(f"case {case.id}: the LLM diagnoser needs at least 2 candidates, got {out}")
        return sorted(out, key=str.lower)  # fixed order that does not reveal which one is true

    def _scores(self, prompts: list[str]) -> list[float]:
        batch = [[{"role": "user", "content": p}] for p in prompts]
        replies = self.model.complete_batch(batch, temperature=0.0, max_tokens=self.max_tokens, seed=self.seed)
        scores: list[float | None] = [_parse_score(r) for r in replies]
        retry = [i for i, s in enumerate(scores) if s is None]
        if retry:
            again = self.model.complete_batch(
                [
                    batch[i]
                    + [
                        {"role": "assistant", "content": replies[i]},
                        {"role": "user", "content": "Reply with only a number from 0 to 100."},
                    ]
                    for i in retry
                ],
                temperature=0.0,
                max_tokens=self.max_tokens,
                seed=self.seed,
            )
            for i, r in zip(retry, again):
                s = _parse_score(r)
                if s is None:
                    raise DiagnoserError(
                        f"the diagnoser model gave no 0-100 score: {replies[i][:80]!r}, then {r[:80]!r}"
                    )
                scores[i] = s
        return [float(s) for s in scores]  # type: ignore[arg-type]

    def probabilities(self, case: PatientCase, transcript: list[dict]) -> dict[str, float]:
        cands = self.candidate_list(case, transcript)
        text = _format_transcript(transcript)
        scores = self._scores([SCORE_PROMPT.format(transcript=text, candidate=c) for c in cands])
        z = sum(scores)
        return {c: (s / z if z > 0 else 1.0 / len(cands)) for c, s in zip(cands, scores)}

    def probability(self, case: PatientCase, evidence: Evidence | None, transcript: list[dict]) -> float:
        probs = self.probabilities(case, transcript)
        return sum(p for c, p in probs.items() if c != OTHER_CANDIDATE and diagnosis_matches(c, case))

    def prior_probability(self, case: PatientCase) -> float | None:
        return None  # an LLM's rating before any question is not computed


class MatchDiagnoser:
    """Works for any case. P(correct diagnosis) is the Bayesian posterior where the case's disease is in the
    knowledge table and None ("n/a") elsewhere; correctness is judged by name (`names.diagnosis_matches`:
    normalized names, the table's synonyms, abbreviations), as for every diagnoser."""

    def __init__(self, table: KnowledgeTable | None = None):
        self.bayes = BayesianDiagnoser(table)
        self.table = self.bayes.table

    def __deepcopy__(self, memo: dict) -> MatchDiagnoser:
        return self

    def in_table(self, case: PatientCase) -> bool:
        return (case.diagnosis_id or self.table.disease_id_for(case.diagnosis)) is not None

    def probability(self, case: PatientCase, evidence: Evidence, transcript: list[dict] | None = None) -> float | None:
        return self.bayes.probability(case, evidence) if self.in_table(case) else None

    def prior_probability(self, case: PatientCase) -> float | None:
        return self.bayes.prior_probability(case) if self.in_table(case) else None


def make_diagnoser(kind: str, model: ChatModel | None = None, *, table: KnowledgeTable | None = None) -> Diagnoser:
    """A diagnoser by name: "bayes" (table diseases only), "llm" (needs `model`), "match" (any case)."""
    if kind not in DIAGNOSER_KINDS:
        raise ValueError(f"unknown diagnoser {kind!r}; allowed: {', '.join(DIAGNOSER_KINDS)}")
    if kind == "llm":
        if model is None:
            raise ValueError(
                "diagnoser 'llm' needs a chat model (--diagnoser-model MODEL: a local model path "
                "or MODEL@http(s)://HOST/v1)"
            )
        return LLMDiagnoser(model)
    if model is not None:
        raise ValueError(f"diagnoser {kind!r} uses no model; a diagnoser model is only for diagnoser 'llm'")
    return BayesianDiagnoser(table) if kind == "bayes" else MatchDiagnoser(table)


def _parse_score(reply: str) -> float | None:
    m = _NUMBER.search(reply or "")
    if not m:
        return None
    v = float(m.group(1))
    return v if 0.0 <= v <= 100.0 else None


__all__ = [
    "DIAGNOSER_KINDS",
    "BayesianDiagnoser",
    "Diagnoser",
    "DiagnoserError",
    "Evidence",
    "LLMDiagnoser",
    "MatchDiagnoser",
    "accepted_names",
    "make_diagnoser",
]
