"""The symptom / body-part / synonym lexicon, and matching a doctor's question to a case's key facts.

A text is read into `Concepts`: knowledge-table findings named by a synonym ("short of breath" ->
shortness_of_breath), generic concepts (body parts "bp:chest", symptom words "sym:pain"), topics
("topic:onset", "topic:family") and content-word stems. `FactIndex.match` then picks the facts a
question asks about, in three tiers:

1. the question names findings -> the facts linked to exactly those findings (plus unlinked free-text
   facts compatible with them). Naming a finding the case does not record matches nothing, so the
   patient says "not sure" rather than volunteering a neighbouring finding;
2. otherwise generic concepts -> facts sharing a body part or symptom word without contradicting one
   ("Does your belly hurt?" matches right-lower-abdominal pain, not chest pain);
3. otherwise topics (age, family history, medications, ...) -> facts of that kind; and, for free-text
   facts only, shared content words.

A patient answers at most `MAX_FACTS_PER_ANSWER` of the matched facts per question (`answerable`): a
real patient answers a couple of things, not a 45-symptom checklist, so a list-dump discloses no more
than a focused question does.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from functools import lru_cache

from mock_patients.cases import KeyFact, PatientCase
from mock_patients.knowledge import KnowledgeTable, default_table
from mock_patients.text import STOPWORDS, PhraseIndex, stem, stems, words

# Topics that select facts by category.
TOPIC_CATEGORIES = {
    "topic:pmh": frozenset({"pmh"}),
    "topic:medication": frozenset({"medication"}),
    "topic:allergy": frozenset({"allergy"}),
    "topic:family": frozenset({"family"}),
    "topic:social": frozenset({"social"}),
}
FOLLOW_UP_TOPICS = frozenset({"topic:onset", "topic:severity"})
MAX_FACTS_PER_ANSWER = 3  # facts one answer may state, however many the question lists
_EXTRA_TOPIC_PHRASES = {
    "topic:sex": ("woman", "man", "female", "male", "girl", "boy", "lady", "gentleman"),
    "topic:allergy": ("allergies", "allergy", "allergic", "allergic reaction", "allergic reactions"),
    "topic:medication": (
        "take any",
        "taking any",
        "on any",
        "regular medicines",
        "prescribed",
        "over the counter",
        "supplements",
        "treatment",
        "treatments",
        "remedies",
    ),
    "topic:family": ("family history", "runs in the family", "relatives", "anyone in your family"),
    "topic:social": (
        "social history",
        "smoke or drink",
        "recreational drugs",
        "illicit drugs",
        "drug use",
        "for a living",
        "sexually active",
        "sexual history",
        "alcohol or drugs",
    ),
}
_GENERIC_STOP = STOPWORDS | {"year", "old", "day", "week", "month", "hour", "time", "patient", "report", "state"}


@dataclass(frozen=True)
class Concepts:
    findings: frozenset[str] = frozenset()
    generic: frozenset[str] = frozenset()  # "bp:*" and "sym:*"
    topics: frozenset[str] = frozenset()
    content: frozenset[str] = frozenset()  # content-word stems

    @property
    def body(self) -> frozenset[str]:
        return frozenset(c for c in self.generic if c.startswith("bp:"))

    @property
    def sym(self) -> frozenset[str]:
        return frozenset(c for c in self.generic if c.startswith("sym:"))


def compatible(q_generic: frozenset[str], f_generic: frozenset[str]) -> bool:
    """Share a body part or symptom word, and contradict neither (chest pain vs belly pain)."""
    if not (q_generic & f_generic):
        return False
    qb = {c for c in q_generic if c.startswith("bp:")}
    fb = {c for c in f_generic if c.startswith("bp:")}
    if qb and fb and not qb & fb:
        return False
    qs = q_generic - qb
    fs = f_generic - fb
    if qs and fs and not qs & fs:
        return False
    return True


def answerable(facts: list[KeyFact], disclosed: Container[str], limit: int = MAX_FACTS_PER_ANSWER) -> list[KeyFact]:
    """The facts an answer may state: at most `limit`, those not yet disclosed first (so "anything else
    about that?" moves on), kept in their original order."""
    if len(facts) <= limit:
        return list(facts)
    keep = {f.id for f in sorted(facts, key=lambda f: f.id in disclosed)[:limit]}  # stable sort
    return [f for f in facts if f.id in keep]


class Lexicon:
    """Phrase indexes built once from a knowledge table (immutable; shared, never copied)."""

    def __init__(self, table: KnowledgeTable):
        self.table = table
        self.phrases = PhraseIndex()
        self.generic_only = PhraseIndex()
        self.tests = PhraseIndex()
        for k, ps in table.body_parts.items():
            self.phrases.add_all(ps, f"bp:{k}")
            self.generic_only.add_all(ps, f"bp:{k}")
        for k, ps in table.symptom_words.items():
            self.phrases.add_all(ps, f"sym:{k}")
            self.generic_only.add_all(ps, f"sym:{k}")
        for k, ps in table.topics.items():
            self.phrases.add_all(ps, f"topic:{k}")
        for k, ps in _EXTRA_TOPIC_PHRASES.items():
            self.phrases.add_all(ps, k)
        for d in table.diseases:  # "Is it pneumonia?" asks for a diagnosis, whatever the disease
            self.phrases.add_all(d.all_names, "topic:diagnosis")
        self.finding_generic: dict[str, frozenset[str]] = {}
        for f in table.findings:
            if f.kind in ("symptom", "history"):
                self.phrases.add_all((*f.synonyms, f.name), f"f:{f.id}")
                gen = {c for s in self.generic_only.scan(stems(f"{f.name} {f.say}")) for c in s}
                gen |= {f"bp:{b}" for b in f.body}
                self.finding_generic[f.id] = frozenset(gen)
        for t in table.tests:
            self.tests.add_all((*t.synonyms, t.name), t.id)
        self.signs = tuple(f for f in table.findings if f.kind in ("exam", "test"))
        self.sign_stems = {
            f.id: frozenset(s for s in stems(f.name) if s not in _GENERIC_STOP and len(s) > 2) for f in self.signs
        }
        self.sign_first = {f.id: next((s for s in stems(f.name) if s in self.sign_stems[f.id]), "") for f in self.signs}

    def __deepcopy__(self, memo: dict) -> Lexicon:
        return self

    def analyze(self, text: str) -> Concepts:
        toks = stems(text)
        findings, generic, topics = set(), set(), set()
        for group in self.phrases.scan(toks):
            for c in group:
                if c.startswith("f:"):
                    fid = c[2:]
                    findings.add(fid)
                    generic |= self.finding_generic.get(fid, frozenset())
                elif c.startswith("topic:"):
                    topics.add(c)
                else:
                    generic.add(c)
        content = frozenset(stem(w) for w in words(text) if w not in _GENERIC_STOP and len(w) > 2)
        return Concepts(frozenset(findings), frozenset(generic), frozenset(topics), content)

    def link(self, statement: str) -> str | None:
        """The table finding a free-text statement is about, or None. Strict on purpose: a multi-word
        finding phrase, or a one-word phrase covering most of the statement ("Fever." yes; "Drooping
        eyelids" is not "facial droop")."""
        toks = stems(statement)
        content = [t for t in toks if t not in _GENERIC_STOP and not t.isdigit() and len(t) > 2]
        best: tuple[int, str] | None = None
        for group, a, b in self.phrases.scan_spans(toks):
            fids = sorted(c[2:] for c in group if c.startswith("f:"))
            if not fids:
                continue
            covered = sum(1 for t in content if t in toks[a:b])
            if (b - a) >= 2 or (content and covered / len(content) > 0.5):
                if best is None or (b - a) > best[0]:
                    best = (b - a, fids[0])
        return best[1] if best else None

    def link_sign(self, text: str, present: bool = True, test: str | None = None) -> str | None:
        """The table exam / test finding an exam or test fact shows, or None (best effort). Every content
        word of the finding's name must be in the text, and a sign named inside a negated phrase ("Clear,
        no wheezes") links only to an absent fact. Findings of the requested test win ties."""
        result = text.rsplit(":", 1)[-1]
        toks = set(stems(result))
        tid = self.resolve_test(test or text.rsplit(":", 1)[0]) if (test or ":" in text) else None
        best: tuple[int, int, str] | None = None
        for f in self.signs:
            need = self.sign_stems[f.id]
            if not need or not need <= toks:
                continue
            negated = _negated_mention(result, need, self.sign_first[f.id])
            if negated == present:
                continue
            score = (len(need), int(f.test == tid))
            if best is None or score > best[:2]:
                best = (*score, f.id)
        return best[2] if best else None

    def resolve_test(self, name: str) -> str | None:
        """Knowledge-table test id for a requested exam/test name (longest phrase wins), or None."""
        hits = self.tests.scan(stems(name))
        if not hits:
            return None
        return sorted(hits[0])[0]


_NEGATION_WORDS = frozenset({"no", "not", "without", "negative", "absent", "denies", "denied", "never", "none", "free"})


def _negated_mention(text: str, need: frozenset[str], first: str) -> bool:
    """True when the mention (from its name's first word on) comes after a negation word in its phrase."""
    for clause in re.split(r"[.;,]", text):
        toks = stems(clause)
        if not need <= set(toks) and first not in toks:
            continue
        at = toks.index(first) if first in toks else 0
        return any(t in _NEGATION_WORDS for t in toks[:at]) or bool(
            re.search(r"\b(?:absent|negative)\b", clause, re.IGNORECASE)
        )
    return False


_DRUG = re.compile(
    r"\b\w{3,}(?:pril|sartan|olol|statin|prazole|cillin|mycin|cycline|floxacin|dipine|formin|gliptin|mab|"
    r"tidine|semide|thiazide|oxetine|triptan|profen|codone|parin|xaban|gatran)\b",
    re.IGNORECASE,
)


# a free-text fact answers a medication question only when it names a medicine, not just "treatment"
_MEDICINE = re.compile(
    r"\b(?:medications?|medicines?|meds|pills?|tablets?|capsules?|inhalers?|insulin|injections?|"
    r"contraceptives?|prescri\w+|dose|doses|mg)\b(?!\s+resistance)",
    re.IGNORECASE,
)


@lru_cache(maxsize=4)
def lexicon_for(table: KnowledgeTable) -> Lexicon:
    return Lexicon(table)


def default_lexicon() -> Lexicon:
    return lexicon_for(default_table())


@dataclass
class _FactEntry:
    fact: KeyFact
    concepts: Concepts
    generic: frozenset[str]


@dataclass
class Match:
    """What a question asked about: the facts, and how they were found."""

    facts: list[KeyFact] = field(default_factory=list)
    tier: str = "none"  # "finding" | "generic" | "topic" | "content" | "none"
    concepts: Concepts = field(default_factory=Concepts)


class FactIndex:
    """A case's patient-facing facts, pre-analyzed for fast matching (immutable; shared by snapshots)."""

    def __init__(self, case: PatientCase, lexicon: Lexicon | None = None):
        self.case = case
        self.lexicon = lexicon or default_lexicon()
        self.entries: list[_FactEntry] = []
        for f in case.patient_facts:
            c = self.lexicon.analyze(f.text + " " + (f.patient_text or ""))
            if _DRUG.search(f.text) or _MEDICINE.search(f.text):
                c = Concepts(c.findings, c.generic, c.topics | {"topic:medication"}, c.content)
            gen = set(c.generic)
            if f.finding:
                gen |= self.lexicon.finding_generic.get(f.finding, frozenset())
            self.entries.append(_FactEntry(f, c, frozenset(gen)))
        self.by_finding: dict[str, list[KeyFact]] = {}
        for e in self.entries:
            if e.fact.finding:
                self.by_finding.setdefault(e.fact.finding, []).append(e.fact)

    def __deepcopy__(self, memo: dict) -> FactIndex:
        return self

    def match(self, question: str | Concepts) -> Match:
        q = self.lexicon.analyze(question) if isinstance(question, str) else question
        out: list[KeyFact] = []
        if q.findings:
            for fid in sorted(q.findings):
                out.extend(self.by_finding.get(fid, ()))
            q_gen = q.generic
            if q_gen:
                out.extend(e.fact for e in self.entries if e.fact.finding is None and compatible(q_gen, e.generic))
            # free-text facts that mention an asked history finding ("Do you smoke?" -> "History of smoking,
            # 1 pack per day"; "Do you drink?" -> "Drinks wine occasionally")
            # and any free-text fact that names an asked finding ("Denies recent fever" for "Do you have a fever?")
            # (a family finding only from family facts: "family members noticed his jaundice" is not family history)
            fam = {fid for fid in q.findings if self.lexicon.table.finding(fid).section == "family"}
            # (facts linked to another finding too, in a source record; a generated case's template sentences name
            # neighbouring findings, so there only unlinked facts)
            free = (lambda e: e.fact.finding is None) if self.case.closed_world else (lambda e: True)  # noqa: E731
            out.extend(
                e.fact
                for e in self.entries
                if free(e)
                and e.concepts.findings & (q.findings - fam)
                or (e.fact.finding is None and e.fact.category == "family" and e.concepts.findings & fam)
            )
            tier = "finding"
        elif q.generic:
            out = [e.fact for e in self.entries if compatible(q.generic, e.generic)]
            tier = "generic"
        else:
            tier = "none"
        cats = frozenset().union(*(TOPIC_CATEGORIES.get(t, frozenset()) for t in q.topics)) if q.topics else frozenset()
        topic_hits = [
            e.fact
            for e in self.entries
            if e.fact.category in cats
            or (
                e.fact.category in ("hpi", "ros", "other", "pmh", "social")
                and q.topics
                & e.concepts.topics
                & (
                    {"topic:medication", "topic:allergy"}
                    if _MEDICINE.search(e.fact.text) or _DRUG.search(e.fact.text)
                    else {"topic:allergy"}
                )
            )
        ]
        topic_hits += [
            e.fact
            for e in self.entries
            if e.fact.category == "demographics" and q.topics & e.concepts.topics & {"topic:age", "topic:sex"}
        ]
        if topic_hits:
            out.extend(topic_hits)
            tier = tier if out[: len(out) - len(topic_hits)] else "topic"
        # a topic question ("Do you take any medications?") is answered from its topic, never from a shared word
        # ("take" in "refuses to let others take on more tasks")
        if not out and q.content and not q.generic and not q.findings and not q.topics & set(TOPIC_CATEGORIES):
            out = [
                e.fact
                for e in self.entries
                if e.fact.finding is None
                and e.fact.category != "demographics"
                and len(q.content & e.concepts.content) >= 1
            ]
            tier = "content" if out else "none"
        return Match(list(dict.fromkeys(out)), tier if out else "none", q)


_INDEX_CACHE: dict[int, tuple[PatientCase, Lexicon, FactIndex]] = {}


def fact_index(case: PatientCase, lexicon: Lexicon | None = None) -> FactIndex:
    """Cached FactIndex per (case, lexicon) object; building one analyzes every fact once."""
    lexicon = lexicon or default_lexicon()
    key = id(case)
    hit = _INDEX_CACHE.get(key)
    if hit is not None and hit[0] is case and hit[1] is lexicon:
        return hit[2]
    if len(_INDEX_CACHE) > 4096:
        _INDEX_CACHE.clear()
    idx = FactIndex(case, lexicon)
    _INDEX_CACHE[key] = (case, lexicon, idx)
    return idx
