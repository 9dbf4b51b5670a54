"""Key facts: the atomic statements a patient may disclose.

Three ways to get them:
* `structured_facts(...)`   — taken directly from a case's structured fields (one fact per symptom,
  history item, exam finding, test result), with findings linked through the lexicon;
* `LLMFactExtractor`        — a chat model asked to list atomic facts in a free-text passage;
* `split_facts(text)`       — a rule-based sentence splitter, the offline fallback for free text.
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from mock_patients.cases import (
    Demographics,
    FactCategory,
    KeyFact,
    Observation,
    Symptom,
)
from mock_patients.chat import ChatModel, require_chat_model
from mock_patients.knowledge import Finding
from mock_patients.lexicon import Lexicon, default_lexicon
from mock_patients.text import content_stems

# --- first-person sentences -------------------------------------------------------------------------


def symptom_sentence(f: Finding, onset: str | None = None, severity: str | None = None) -> str:
    """The patient's "yes" for a present symptom, with onset and severity when the template allows."""
    if f.yes or (not onset and not severity):
        return f.patient_yes()
    s = f"Yes, I've had {f.say or f.name}"
    if onset:
        s += f" for {onset}"
    if severity:
        s += f", and it's {severity}"
    return s + "."


_SUBJECT = re.compile(r"^(?:the\s+)?(?:patient|pt|he|she|they)\s+", re.IGNORECASE)
_VERBS = [  # third person -> first person, applied after the subject is dropped
    (r"^(?:reports|describes|notes|complains of|endorses|presents with|experiences|has had)\s+", "I've had "),
    (r"^(?:denies|does not have|doesn't have|has no)\s+", "I haven't had "),
    (r"^has\s+", "I have "), (r"^is\s+", "I'm "), (r"^was\s+", "I was "), (r"^had\s+", "I had "),
    (r"^does not\s+", "I don't "), (r"^doesn't\s+", "I don't "), (r"^can't\s+", "I can't "), (r"^cannot\s+", "I can't "),
    (r"^(\w+)s\s+", r"I \1 "),  # "smokes", "drinks", "works", "lives"
]
_PRONOUNS = [(r"\bhis\b|\bher\b|\btheir\b", "my"), (r"\bhim\b|\bthem\b", "me"), (r"\bhimself\b|\bherself\b", "myself")]


def to_first_person(text: str) -> str:
    """Best-effort rewrite of a clinical statement into the patient's voice ("Denies fever" -> "I haven't had fever")."""
    t = text.strip().rstrip(".")
    if not t:
        return t
    had_subject = bool(_SUBJECT.match(t))
    t = _SUBJECT.sub("", t)
    low = t[0].lower() + t[1:] if not (t[:2].isalpha() and t[:2].isupper()) else t
    for pat, rep in _VERBS:
        new = re.sub(pat, rep, low, count=1, flags=re.IGNORECASE)
        if new != low:
            low = new
            break
    else:
        if low.lower().startswith("no "):
            low = "No, I haven't had " + low[3:]
        elif low.lower().startswith(("not ", "never ")):
            low = low[0].upper() + low[1:]
        elif had_subject:
            low = "I " + low
        elif _is_person_noun_phrase(low):
            low = ("I'm an " if low[:1] in "aeiou" else "I'm a ") + low
        elif low.split()[0].endswith("ly"):  # "sexually active ..." -> "I'm sexually active ..."
            low = "I'm " + low
        elif _THIRD_PERSON_VERB.search(" ".join(low.split()[1:])):  # "the pain radiates to ..." -> "I've noticed the pain radiates ..."
            low = "I've noticed " + low
        elif not low.lower().startswith(("i ", "i'", "my ")):
            low = "I've had " + low
    for pat, rep in _PRONOUNS:
        low = re.sub(pat, rep, low, flags=re.IGNORECASE)
    low = low[0].upper() + low[1:]
    return low + "."


_PERSON_SUFFIX = re.compile(r"^(?:(?:former|ex|non|retired|current|heavy|light|social|occasional|daily)[-\s]+)*(?:[a-z]+\s+)?[a-z]+(?:er|or|ist|ian)\b", re.IGNORECASE)


def _is_person_noun_phrase(text: str) -> bool:
    """ "Non-smoker", "Former smoker, quit 10 years ago", "Retired teacher" describe the person."""
    first = re.split(r"[,;(]", text, maxsplit=1)[0].strip()
    words_ = first.split()
    return bool(words_) and len(words_) <= 4 and bool(_PERSON_NOUN.search(words_[-1])) and bool(_PERSON_SUFFIX.match(first)) \
        and not re.search(r"\b(pain|cancer|fever|disorder|discomfort|ulcer|murmur|tumor|tremor)\b", first, re.IGNORECASE)


_PERSON_NOUN = re.compile(r"(?:er|or|ist|ian)$", re.IGNORECASE)
_THIRD_PERSON_VERB = re.compile(r"\b(is|are|was|were|becomes?|gets?|radiates?|worsens?|improves?|occurs?|comes|goes|"
                                r"feels|spreads?|started|began|lasts?|happens?|wakes?)\b", re.IGNORECASE)


# --- rule-based sentence splitter --------------------------------------------------------------------

_NEG_PREFIX = re.compile(r"^\s*(?:no|non-?|never|denies|without|negative for)\s*", re.IGNORECASE)
_ABBREV = re.compile(r"\b(Dr|Mr|Mrs|Ms|St|vs|e\.g|i\.e|approx|etc|No)\.", re.IGNORECASE)
_SENT = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(\"'])|\n+")
_NEG_LIST = re.compile(r"^(denies|no|negative for|without)\s+(.+)$", re.IGNORECASE)
_NEG_WORDS = re.compile(r"^(denies|no|negative for|without|never|not|does not|doesn't|did not|non-?\w+)\b", re.IGNORECASE)
_LEAD_SUBJECT = re.compile(r"^(?:the\s+)?(?:patient|pt|he|she|they)\s+(?=denies|has no|does not|doesn't|did not|never|is not|has never)", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences of a clinical passage; keeps decimals (38.5) and common abbreviations (Dr.) intact."""
    protected = _ABBREV.sub(lambda m: m.group(0).replace(".", "\0"), text)
    protected = re.sub(r"(\d)\.(\d)", "\\1\0\\2", protected)
    parts = [p.replace("\0", ".").strip().rstrip(";").strip() for p in _SENT.split(protected)]
    return [p for p in parts if p and re.search(r"[A-Za-z]", p)]


def split_facts(text: str) -> list[tuple[str, bool]]:
    """Atomic (statement, present) pairs: sentences, with negated lists split per item
    ("Denies fever, chills, or cough." -> three absent facts)."""
    out: list[tuple[str, bool]] = []
    for sent in split_sentences(text):
        s = _LEAD_SUBJECT.sub("", sent.rstrip(".").strip())  # "She denies X" -> "denies X"
        s = re.sub(r"^(has no|does not have|doesn't have)\s+", "no ", s, flags=re.IGNORECASE)
        m = _NEG_LIST.match(s)
        if m:
            items = [i.strip() for i in re.split(r",\s*(?:or\s+|and\s+)?|\s+or\s+|\s+and\s+", m.group(2)) if i.strip()]
            if len(items) > 1:
                out.extend((f"No {i}", False) for i in items)
                continue
            out.append((f"No {m.group(2)}" if m.group(1).lower() != "no" else s, False))
            continue
        out.append((s, not _NEG_WORDS.match(s)))
    return out


# --- facts from structured fields --------------------------------------------------------------------


class FactBuilder:
    """Accumulates KeyFacts with sequential ids ("f01", ...) and lexicon links to table findings."""

    def __init__(self, lexicon: Lexicon | None = None):
        self.lexicon = lexicon or default_lexicon()
        self.facts: list[KeyFact] = []

    def add(self, text: str, category: FactCategory, *, present: bool = True, finding: str | None = None,
            test: str | None = None, patient_text: str | None = None, link: bool = True) -> KeyFact:
        text = text.strip()
        if not text.endswith((".", "!", "?")):
            text += "."
        if finding is None and link and category not in ("exam", "test", "demographics"):
            finding = self.link(text)
        if patient_text is None and category not in ("exam", "test"):
            patient_text = self._speak(text, present, finding)
        fact = KeyFact(id=f"f{len(self.facts) + 1:02d}", text=text, category=category, present=present,
                       finding=finding, test=test, patient_text=patient_text)
        self.facts.append(fact)
        return fact

    def link(self, text: str) -> str | None:
        """The table finding a statement is about (see `Lexicon.link`), ignoring a negation prefix."""
        return self.lexicon.link(_NEG_PREFIX.sub("", text))

    def _speak(self, text: str, present: bool, finding: str | None) -> str:
        if finding is not None:
            f = self.lexicon.table.finding(finding)
            # the table's sentence is exact for the finding but drops details of the source text
            # (onset, side, numbers): use it only when the source says nothing beyond the finding
            vocab = {w for p in (f.name, f.say, *f.synonyms) for w in content_stems(p)}
            if content_stems(_NEG_PREFIX.sub("", text)) <= vocab:
                return f.patient_yes() if present else f.patient_no()
        return to_first_person(text)


def structured_facts(
    *, demographics: Demographics, chief_complaint: str, symptoms: Iterable[Symptom] = (),
    history_of_present_illness: str = "", past_medical_history: Iterable[str] = (),
    social_history: Iterable[str] = (), family_history: Iterable[str] = (), medications: Iterable[str] = (),
    allergies: Iterable[str] = (), exam_findings: Iterable[Observation] = (), test_results: Iterable[Observation] = (),
    review_of_systems: str = "", lexicon: Lexicon | None = None, split_hpi: bool = True,
    extractor: "LLMFactExtractor | None" = None,
) -> tuple[KeyFact, ...]:
    """Key facts taken directly from structured case fields: one per item. Free-text fields (history of
    present illness, review of systems) are split by `extractor` (an LLM) when given, else by rules."""
    b = FactBuilder(lexicon)
    free: dict[str, list[tuple[str, bool]]] = {}
    texts = [t for t in (history_of_present_illness if split_hpi else "", review_of_systems) if t]
    if extractor is not None and texts:
        free = dict(zip(texts, extractor.extract_texts(texts)))

    def add_free(text: str, category: FactCategory) -> None:
        for stmt, present in free.get(text) or split_facts(text):
            b.add(stmt, category, present=present)

    if demographics.age is not None:
        b.add(f"Age {demographics.age}", "demographics", patient_text=f"I'm {demographics.age} years old.", link=False)
    if demographics.sex is not None:
        b.add(f"Sex: {demographics.sex}", "demographics", patient_text=f"I'm a {'woman' if demographics.sex == 'female' else 'man'}.", link=False)
    elif demographics.description:
        b.add(demographics.description, "demographics", link=False)
    b.add(chief_complaint, "chief_complaint")
    for s in symptoms:
        detail = ", ".join(x for x in (f"onset {s.onset}" if s.onset else "", s.severity or "") if x)
        text = (s.name if s.present else f"No {s.name}") + (f" ({detail})" if detail and s.present else "")
        finding = s.finding or b.link(s.name)
        pt = None
        if finding is not None:
            f = b.lexicon.table.finding(finding)
            pt = symptom_sentence(f, s.onset, s.severity) if s.present else f.patient_no()
        b.add(text, "symptom", present=s.present, finding=finding, patient_text=pt)
    if history_of_present_illness and split_hpi:
        add_free(history_of_present_illness, "hpi")
    for items, cat in ((past_medical_history, "pmh"), (social_history, "social"), (family_history, "family"),
                       (medications, "medication"), (allergies, "allergy")):
        for item in items:
            for stmt, present in split_facts(item):
                b.add(stmt, cat, present=present)  # type: ignore[arg-type]
    if review_of_systems:
        add_free(review_of_systems, "ros")
    # the fact keeps the source's own test name (a path like "Vital signs / Heart rate"): requests match
    # it by words, or through the lexicon when it names a table test (Consultation._test)
    for obs in exam_findings:
        b.add(f"{obs.test}: {obs.result}", "exam", finding=obs.finding, test=obs.test)
    for obs in test_results:
        b.add(f"{obs.test}: {obs.result}", "test", finding=obs.finding, test=obs.test)
    return tuple(b.facts)


# --- LLM extraction ------------------------------------------------------------------------------------

EXTRACT_PROMPT = (
    "Split the clinical passage below into atomic facts: each fact states exactly one finding, symptom, "
    "history item or result, keeps its numbers and timing, and makes sense on its own. Write negative "
    "findings as 'No <finding>'. Do not add facts or diagnoses that are not in the passage.\n"
    "Answer with a JSON array of strings and nothing else.\n\nPassage:\n{text}"
)


class FactExtractionError(ValueError):
    """The model's reply held no list of facts."""


def parse_fact_list(reply: str) -> list[str]:
    """A JSON array of strings, else bullet / numbered lines; raises FactExtractionError otherwise."""
    m = re.search(r"\[.*\]", reply, re.DOTALL)
    if m:
        try:
            arr = json.loads(m.group(0))
        except json.JSONDecodeError:
            arr = None
        if isinstance(arr, list) and arr and all(isinstance(x, str) for x in arr):
            return [x.strip() for x in arr if x.strip()]
    lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", ln).strip() for ln in reply.splitlines()]
    items = [ln for ln, raw in zip(lines, reply.splitlines()) if ln and re.match(r"^\s*(?:[-*•]|\d+[.)])", raw)]
    if items:
        return items
    raise FactExtractionError(f"expected a JSON array of fact strings, got: {reply[:200]!r}")


class LLMFactExtractor:
    """Atomic facts from free text by a chat model; `fallback_to_rules` uses `split_facts` when the
    reply cannot be parsed (and counts it in `fallbacks`), otherwise the parse error is raised."""

    def __init__(self, model: ChatModel, *, max_tokens: int = 512, seed: int | None = 0, fallback_to_rules: bool = False):
        require_chat_model(model, "LLMFactExtractor")
        self.model = model
        self.max_tokens = max_tokens
        self.seed = seed
        self.fallback_to_rules = fallback_to_rules
        self.fallbacks = 0

    def extract_texts(self, passages: list[str]) -> list[list[tuple[str, bool]]]:
        batch = [[{"role": "user", "content": EXTRACT_PROMPT.format(text=p)}] for p in passages]
        replies = self.model.complete_batch(batch, temperature=0.0, max_tokens=self.max_tokens, seed=self.seed)
        if len(replies) != len(passages):
            raise FactExtractionError(f"the model returned {len(replies)} replies for {len(passages)} passages")
        out = []
        for passage, reply in zip(passages, replies):
            try:
                items = parse_fact_list(reply)
            except FactExtractionError:
                if not self.fallback_to_rules:
                    raise
                self.fallbacks += 1
                out.append(split_facts(passage))
                continue
            out.append([(i.rstrip("."), not _NEG_WORDS.match(i)) for i in items])
        return out

    def extract(self, text: str, category: FactCategory = "hpi", lexicon: Lexicon | None = None) -> tuple[KeyFact, ...]:
        b = FactBuilder(lexicon)
        for stmt, present in self.extract_texts([text])[0]:
            b.add(stmt, category, present=present)
        return tuple(b.facts)
