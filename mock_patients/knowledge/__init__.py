"""The disease–finding knowledge table: typed records, validation, and lookups.

The table (data in `table.py`) is a naive-Bayes world: each disease has a prior weight, an age
range, a sex ratio, and P(finding present | disease) for its characteristic findings; every other finding
is present at the finding's own base rate. The generator samples cases from exactly this model and the
Bayesian diagnoser inverts it, so for generated cases the diagnoser's posterior is the model's own.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import pydantic

from mock_patients.text import normalize

FindingKind = Literal["symptom", "history", "exam", "test"]
Section = Literal["symptom", "pmh", "social", "family", "medication", "exam", "test"]
Sex = Literal["female", "male"]
Tempo = Literal["hours", "days", "weeks", "months"]


class _Frozen(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    def __deepcopy__(self, memo: dict) -> _Frozen:
        return self  # immutable: env snapshots share it instead of copying


class Finding(_Frozen):
    id: str
    kind: FindingKind
    section: Section
    name: str  # short clinical name: "fever", "ST elevation"
    say: str = ""  # patient's noun phrase: "a fever" (symptoms/history)
    synonyms: tuple[str, ...] = ()  # patient-lexicon phrases a doctor may use (symptoms/history)
    body: tuple[str, ...] = ()  # body-part concepts ("chest", "abdomen")
    base: float = pydantic.Field(0.03, ge=0.0, lt=1.0)  # P(present) for diseases that do not list it
    yes: str = ""  # first-person sentence when present (default built from `say`)
    no: str = ""  # first-person sentence when absent
    test: str = ""  # exam/test findings: id of the exam or test that shows it
    result: str = ""  # exam/test findings: the result text when present
    sex: Sex | None = None  # only possible in this sex

    @pydantic.model_validator(mode="after")
    def _check(self) -> Finding:
        if self.kind in ("exam", "test") and not (self.test and self.result):
            raise ValueError(f"finding {self.id}: exam/test findings need `test` and `result`")
        if self.kind in ("symptom", "history") and not self.synonyms:
            raise ValueError(f"finding {self.id}: symptom/history findings need lexicon synonyms")
        return self

    def patient_yes(self) -> str:
        return self.yes or f"Yes, I've had {self.say or self.name}."

    def patient_no(self) -> str:
        say = self.say if self.say and not self.say.startswith(("a lot", "my ")) else self.name
        return self.no or f"No, I haven't had {_no_phrase(say)}."


def _no_phrase(say: str) -> str:
    """ "a cough" -> "any cough", "some confusion" -> "any confusion"; other phrases unchanged."""
    for art in ("a ", "an ", "some "):
        if say.startswith(art) and not say.startswith("a lot"):
            return "any " + say[len(art) :]
    return say


class TestSpec(_Frozen):
    id: str
    name: str
    kind: Literal["exam", "test"]
    synonyms: tuple[str, ...]


class Disease(_Frozen):
    id: str
    name: str
    synonyms: tuple[str, ...]  # other names a doctor might state; all count as correct
    specialty: str
    prior: float = pydantic.Field(gt=0)  # relative prevalence weight
    age: tuple[int, int]
    p_female: float = pydantic.Field(ge=0.0, le=1.0)
    tempo: Tempo
    findings: dict[str, float]  # finding id -> P(present | disease); 0 = impossible
    differential: tuple[str, ...]  # disease ids a clinician would weigh against it

    @pydantic.model_validator(mode="after")
    def _check(self) -> Disease:
        lo, hi = self.age
        if not 0 <= lo <= hi <= 110:
            raise ValueError(f"disease {self.id}: age range {self.age} must satisfy 0 <= lo <= hi <= 110")
        for f, p in self.findings.items():
            if not 0.0 <= p < 1.0:
                raise ValueError(f"disease {self.id}: P({f}) = {p} must be in [0, 1)")
        return self

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms)


class KnowledgeTable(_Frozen):
    findings: tuple[Finding, ...]
    tests: tuple[TestSpec, ...]
    diseases: tuple[Disease, ...]
    body_parts: dict[str, tuple[str, ...]]  # concept -> lexicon phrases
    symptom_words: dict[str, tuple[str, ...]]
    topics: dict[str, tuple[str, ...]]

    @pydantic.model_validator(mode="after")
    def _check(self) -> KnowledgeTable:
        fids = [f.id for f in self.findings]
        tids = {t.id for t in self.tests}
        dids = [d.id for d in self.diseases]
        for what, ids in (("finding", fids), ("disease", dids), ("test", [t.id for t in self.tests])):
            dup = {i for i in ids if ids.count(i) > 1}
            if dup:
                raise ValueError(f"duplicate {what} ids: {sorted(dup)}")
        known = set(fids)
        for f in self.findings:
            if f.test and f.test not in tids:
                raise ValueError(f"finding {f.id}: unknown test {f.test!r}")
            for b in f.body:
                if b not in self.body_parts:
                    raise ValueError(f"finding {f.id}: unknown body part {b!r} (known: {sorted(self.body_parts)})")
        for d in self.diseases:
            bad = set(d.findings) - known
            if bad:
                raise ValueError(f"disease {d.id}: unknown findings {sorted(bad)}")
            bad = set(d.differential) - set(dids)
            if bad:
                raise ValueError(f"disease {d.id}: unknown differential ids {sorted(bad)}")
        return self

    # --- lookups (cached; the table is immutable) ----------------------------------------------
    def finding(self, fid: str) -> Finding:
        try:
            return _finding_map(self)[fid]
        except KeyError:
            raise KeyError(f"unknown finding {fid!r}") from None

    def disease(self, did: str) -> Disease:
        try:
            return _disease_map(self)[did]
        except KeyError:
            raise KeyError(f"unknown disease {did!r}") from None

    def test_spec(self, tid: str) -> TestSpec:
        return _test_map(self)[tid]

    def findings_of_test(self, tid: str) -> tuple[Finding, ...]:
        return _by_test(self).get(tid, ())

    def disease_id_for(self, name: str) -> str | None:
        """Table id of a stated diagnosis name (any synonym, normalized), or None."""
        return _name_map(self).get(normalize(name))

    def p_finding(self, disease: Disease, fid: str, sex: Sex | None = None) -> float:
        """P(finding present | disease, sex) — the one formula the generator and the diagnoser share."""
        f = self.finding(fid)
        if f.sex is not None and sex is not None and f.sex != sex:
            return 0.0
        return disease.findings.get(fid, f.base)


@lru_cache(maxsize=4)
def _finding_map(t: KnowledgeTable) -> dict[str, Finding]:
    return {f.id: f for f in t.findings}


@lru_cache(maxsize=4)
def _disease_map(t: KnowledgeTable) -> dict[str, Disease]:
    return {d.id: d for d in t.diseases}


@lru_cache(maxsize=4)
def _test_map(t: KnowledgeTable) -> dict[str, TestSpec]:
    return {x.id: x for x in t.tests}


@lru_cache(maxsize=4)
def _by_test(t: KnowledgeTable) -> dict[str, tuple[Finding, ...]]:
    out: dict[str, list[Finding]] = {}
    for f in t.findings:
        if f.test:
            out.setdefault(f.test, []).append(f)
    return {k: tuple(v) for k, v in out.items()}


@lru_cache(maxsize=4)
def _name_map(t: KnowledgeTable) -> dict[str, str]:
    out: dict[str, str] = {}
    for d in t.diseases:
        for n in d.all_names:
            out.setdefault(normalize(n), d.id)
    return out


# pydantic models are hashable when frozen, but dict fields are not: hash the table by identity.
KnowledgeTable.__hash__ = object.__hash__  # type: ignore[method-assign]
KnowledgeTable.__eq__ = object.__eq__  # type: ignore[method-assign]


@lru_cache(maxsize=1)
def default_table() -> KnowledgeTable:
    from mock_patients.knowledge.table import build_table

    return build_table()
