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
from collections.abc import Iterable

from mock_patients.cases import (
    Demographics,
    FactCategory,
    KeyFact,
    Observation,
    Symptom,
)
from mock_patients.chat import ChatModel, require_chat_model
from mock_patients.fact_kinds import (
    clinical_kind,
    demographic_statement,
    light_use,
    measurement,
    no_information,
    topic_category,
)
from mock_patients.knowledge import Finding
from mock_patients.lexicon import Lexicon, default_lexicon
from mock_patients.polarity import (
    clauses,
    fact_polarity,
    split_negated_list,
    strip_subject,
)
from mock_patients.rewrite import age_sentence, sex_sentence, to_first_person
from mock_patients.text import content_stems

__all__ = [  # to_first_person lives in `rewrite`; it is re-exported here for older callers
    "EXTRACT_PROMPT",
    "FactBuilder",
    "FactExtractionError",
    "LLMFactExtractor",
    "parse_fact_list",
    "split_facts",
    "split_sentences",
    "structured_facts",
    "symptom_sentence",
    "to_first_person",
]

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


# --- rule-based sentence splitter --------------------------------------------------------------------

_NEG_PREFIX = re.compile(r"^\s*(?:no|non-?|never|denies|without|negative for)\s*", re.IGNORECASE)
_ABBREV = re.compile(r"\b(Dr|Mr|Mrs|Ms|St|vs|e\.g|i\.e|approx|etc|No)\.", re.IGNORECASE)
_SENT = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(\"'])|(?<=[.!?][\"”’])\s+(?=[A-Z0-9(\"'“])|\n+")
_FREE_CATEGORIES = frozenset({"hpi", "ros", "other"})
_TOLD = frozenset(
    {"hpi", "ros", "other", "pmh", "social", "symptom"}
)  # free text read for its kind (`FactBuilder._kind`)


def split_sentences(text: str) -> list[str]:
    """Sentences of a clinical passage; keeps decimals (38.5) and common abbreviations (Dr.) intact."""
    protected = _ABBREV.sub(lambda m: m.group(0).replace(".", "\0"), text)
    protected = re.sub(r"(\d)\.(\d)", "\\1\0\\2", protected)
    parts = [p.replace("\0", ".").strip().rstrip(";").strip() for p in _SENT.split(protected)]
    return [p for p in parts if p and re.search(r"[A-Za-z]", p)]


def split_facts(text: str) -> list[tuple[str, bool]]:
    """Atomic (statement, present) pairs: sentences cut at clause boundaries, with negated lists split per
    item ("Denies fever, chills, or cough." -> three absent facts "No fever", ...). Polarity comes from the
    text (`polarity.fact_polarity`)."""
    return [(stmt, present) for stmt, present, _ in split_facts_with_source(text)]


def split_facts_with_source(text: str) -> list[tuple[str, bool, str]]:
    """`split_facts` with each statement's source sentence: (statement, present, sentence)."""
    out: list[tuple[str, bool, str]] = []
    for sent in split_sentences(text):
        # a review-of-systems heading ("General: Denies fever or weight loss") is not part of the statement
        sent = re.sub(
            r"^(?:general|constitutional|cardiovascular|respiratory|gastrointestinal|genitourinary|neurological|"
            r"neurologic|musculoskeletal|skin|dermatologic|psychiatric|endocrine|hematologic|ent|heent|eyes|"
            r"cardiac|pulmonary|gi|gu|neuro|msk|psych|substance\s+use|social(?:\s+history)?|habits|tobacco|"
            r"alcohol|diet|exercise|occupation|medications?|allergies|family\s+history)\s*:\s+(?=[A-Z])",
            "",
            sent,
            flags=re.IGNORECASE,
        )
        for clause in clauses(sent.rstrip(".").strip()):
            s = clause.rstrip(".").strip()
            if not s:
                continue
            neg = split_negated_list(s)
            if neg is not None:
                out.extend((f"No {i}", False, sent) for i in neg[1])
                continue
            out.append((s, fact_polarity(s), sent))
    return out


# --- facts from structured fields --------------------------------------------------------------------


class FactBuilder:
    """Accumulates KeyFacts with sequential ids ("f01", ...) and lexicon links to table findings.

    `add` reads what it is not told from the text: the polarity (`polarity.fact_polarity`), a measurement
    in a free-text field becomes an exam or test fact that only a test reveals ("Patient's Pco2 is 16 mm Hg"
    -> test "Arterial blood gas / Pco2"), a free-text medication, allergy, family or social item moves to
    that category (its question topic), and exam / test facts link to the table's signs where they can."""

    def __init__(self, lexicon: Lexicon | None = None):
        self.lexicon = lexicon or default_lexicon()
        self.facts: list[KeyFact] = []

    def add(
        self,
        text: str,
        category: FactCategory,
        *,
        present: bool | None = None,
        finding: str | None = None,
        test: str | None = None,
        patient_text: str | None = None,
        link: bool = True,
        source_text: str | None = None,
    ) -> KeyFact:
        """One fact. `present=None` (the default) takes the polarity from the text (present when `finding` is
        given); `source_text` keeps the
        record's own sentence when `text` is a part of it."""
        text = text.strip()
        if not text.endswith((".", "!", "?")):
            text += "."
        if re.fullmatch(
            r"(?:(?:the\s+)?(?:patient|child|infant|baby|he|she)\s+(?:is|was)\s+|is\s+|was\s+)?afebrile\.?",
            text,
            re.IGNORECASE,
        ) and category not in ("exam", "test"):
            source_text, text, present = text, "No fever.", False  # "afebrile" is a denial of fever, not a finding
        if present is None:  # a caller that names the finding knows its polarity (the generator): present
            present = fact_polarity(text) if finding is None else True
        if category in _FREE_CATEGORIES and patient_text is None and finding is None:
            kind = measurement(text)
            if kind is not None:
                category, test = kind[0], test or kind[1]  # type: ignore[assignment]
        if patient_text is None and finding is None and category == "chief_complaint":
            kind = clinical_kind(text)  # "is found to have 93% HbA on electrophoresis": a result, not a complaint
            if kind == "test" or (kind == "exam" and re.search(r"\bfound\s+to\s+(?:have|be)\b", text, re.IGNORECASE)):
                category, test = kind, test or ("Physical examination" if kind == "exam" else "Previous tests")  # type: ignore[assignment]
        if patient_text is None and finding is None and category in _TOLD:
            category, test = self._kind(text, category, test)  # type: ignore[assignment]
            link = link and category != "demographics"
        if finding is None and category not in ("exam", "test", "demographics", "chief_complaint", "symptom"):
            category = topic_category(text, category)  # type: ignore[assignment]  (structured data keeps its own)
        if finding is None and link and category not in ("demographics", "family"):
            finding = self.link_sign(text, present, test) if category in ("exam", "test") else self.link(text)
            if finding == "heavy_alcohol" and light_use(text):
                finding = None  # "drinks socially" is not heavy use; the lexicon still finds it by its words
        if patient_text is None and category not in ("exam", "test", "record"):
            patient_text = self._speak(text, present, finding, category)
        source = source_text.strip() if source_text and source_text.strip().rstrip(".") != text.rstrip(".") else None
        fact = KeyFact(
            id=f"f{len(self.facts) + 1:02d}",
            text=text,
            category=category,
            present=present,
            finding=finding,
            test=test,
            patient_text=patient_text,
            source_text=source,
        )
        self.facts.append(fact)
        return fact

    def _kind(self, text: str, category: str, test: str | None) -> tuple[str, str | None]:
        """What a free-text statement is, by kind: a note on missing information or a clinician's action or
        opinion ("record", never told), who the patient is ("demographics"), a test result or an examination
        finding told as history ("test" / "exam", revealed only when requested), else its own category."""
        if no_information(text):
            return "record", test
        if demographic_statement(text):
            return "demographics", test
        if topic_category(text, "hpi") == "family":  # "Familial history of similar symptoms" (listed among symptoms)
            return "family", test
        kind = clinical_kind(text)
        if kind == "test":
            tid = self.lexicon.resolve_test(text)
            return "test", test or (self.lexicon.table.test_spec(tid).name if tid else "Previous tests")
        if kind == "exam":
            return "exam", test or "Physical examination"
        if kind == "record" and category in _FREE_CATEGORIES | {"symptom"}:
            return "record", test
        return category, test

    def link(self, text: str) -> str | None:
        """The table finding a statement is about (see `Lexicon.link`), ignoring a negation prefix."""
        return self.lexicon.link(_core_text(text))

    def link_sign(self, text: str, present: bool = True, test: str | None = None) -> str | None:
        """The table exam / test finding an exam or test fact shows, when the lexicon can tell (see
        `Lexicon.link_sign`)."""
        return self.lexicon.link_sign(text, present, test)

    def _speak(self, text: str, present: bool, finding: str | None, category: str = "") -> str:
        core = _core_text(text)
        if finding is not None:
            f = self.lexicon.table.finding(finding)
            # the table's sentence is exact for the finding but drops details of the source text
            # (onset, side, numbers): use it only when the source says nothing beyond the finding
            vocab = {w for p in (f.name, f.say, *f.synonyms) for w in content_stems(p)}
            if content_stems(core) <= vocab:
                return f.patient_yes() if present else f.patient_no()
        said = to_first_person(text)
        said = _by_kind(text, said, present, category)
        bare = not re.search(
            r"\b(?:has|have|had|takes?|taking|is|was|treated|managed|controlled)\b", text, re.IGNORECASE
        )
        if present and said.startswith("I have ") and not re.match(r"(?:the|a|an|my)\b", text, re.IGNORECASE) and bare:
            if category == "medication":  # a bare drug name: "Natalizumab infusions monthly."
                said = "I take " + said[len("I have ") :]
            elif category == "allergy":  # "Penicillin (rash)."
                said = "I'm allergic to " + said[len("I have ") :]
        if (
            present
            and category in ("pmh", "medication", "symptom", "chief_complaint", "hpi", "ros", "other")
            and said
            and not re.match(
                r"(?:the|this|these|those|that|a|an|when|whenever|while|after|before|if|during|upon|since|"
                r"although|as|for|in|on|at|over|recently|initially|both|each|all|some|no|yes)\b",
                said,
                re.IGNORECASE,
            )
            and not re.search(r"\b(?:I|I'm|I've|I'd|I'll|my|me|myself|it|it's|there's|there)\b", said, re.IGNORECASE)
        ):
            # "Difficulty opening the affected eye." / "Diet-controlled type 2 diabetes, hypertension treated with ...":
            # a bare phrase the rules left as it was is still the patient's
            if re.match(
                r"[A-Z][a-z]+\s+(?:started|began|worsens|worsened|improves|improved|is|was|has|gets|got|comes|came|"
                r"occurs|occurred|radiates|radiated)\b",
                said,
            ):  # "Pain started while playing football."
                said = "My " + said[0].lower() + said[1:]
            else:
                said = "I have " + (said[0].lower() + said[1:] if not said[:2].isupper() else said)
        if not present and not said.lower().startswith("no"):  # an absent fact is told as a denial
            said = "No, " + (said[0].lower() + said[1:] if said[:2] not in ("I ", "I'") else said)
        return said


_TREATED = re.compile(
    r"^(?!(?:he|she|the\s+patient|patient|they)\b)(?:(?:his|her|their)\s+)?([^,]+?),?\s+"
    r"(?:(?:is|was|are|were|currently|now|previously|being|well|poorly)\s+)*(treated|managed|controlled)\s+"
    r"(?:with|by|on)\s+(.+)$",
    re.IGNORECASE,
)
_PERSON_START = re.compile(
    r"^(?:a|an|the)?\s*(?:\d+[-\s]\w+[-\s]old\s+)?(?:former|retired|current|ex-|non-?)?\s*[a-z-]*"
    r"(?:er|or|ist|ian|ent|ant)\b",
    re.IGNORECASE,
)


def _by_kind(text: str, said: str, present: bool, category: str) -> str:
    """What only the fact's kind tells: a condition and its treatment ("Type 2 diabetes mellitus treated with
    metformin") is "I have ..., treated with ..." (never "I take type 2 diabetes"); a past condition said as a bare
    noun phrase is "I have ..." (never "I'm a polycystic ovarian syndrome")."""
    if not present:
        return said
    t = strip_subject(text.strip().rstrip("."))
    t = re.sub(
        r"^(?:has|have|had)\s+(?!been\b)", "", t, flags=re.IGNORECASE
    )  # "He has type 2 diabetes treated with ..."
    if re.match(
        r"(?:(?:past\s+)?medical\s+history\s+)?(?:is\s+)?(?:significant\s+for|diagnosed|(?:a\s+)?history\s+of)\b",
        t,
        re.IGNORECASE,
    ):
        return said  # "Significant for Lyme disease, treated with ..." -> "I have a history of Lyme disease, ..."
    m = _TREATED.match(t)
    if m and category in ("medication", "pmh") and not re.match(r"(?:takes?|taking|on)\b", t, re.IGNORECASE):
        cond = m.group(1)[0].lower() + m.group(1)[1:] if not m.group(1)[:2].isupper() else m.group(1)
        return f"I have {cond}, {m.group(2).lower()} with {m.group(3)}."
    if (
        category == "pmh"
        and re.match(r"I'm an? ", said)
        and not re.search(
            r"\b(?:student|worker|smoker|drinker|nurse|teacher|farmer|veteran|athlete|runner|driver|retiree|immigrant|"
            r"refugee|resident|employee|engineer|officer|manager|mother|father|parent|vegan|vegetarian|newborn|neonate|"
            r"infant|baby|toddler|child|teenager|adolescent)\b",
            t,
            re.IGNORECASE,
        )
    ):
        return "I have " + (t[0].lower() + t[1:] if not t[:2].isupper() else t) + "."
    return said


def _core_text(text: str) -> str:
    """The finding a statement names, without subject or negation: "The man denied having a fever" -> "fever"."""
    neg = split_negated_list(text.rstrip("."))
    if neg is not None and len(neg[1]) == 1:
        return neg[1][0]
    return _NEG_PREFIX.sub("", strip_subject(text))


def structured_facts(
    *,
    demographics: Demographics,
    chief_complaint: str,
    symptoms: Iterable[Symptom] = (),
    history_of_present_illness: str = "",
    past_medical_history: Iterable[str] = (),
    social_history: Iterable[str] = (),
    family_history: Iterable[str] = (),
    medications: Iterable[str] = (),
    allergies: Iterable[str] = (),
    exam_findings: Iterable[Observation] = (),
    test_results: Iterable[Observation] = (),
    review_of_systems: str = "",
    lexicon: Lexicon | None = None,
    split_hpi: bool = True,
    extractor: LLMFactExtractor | None = None,
) -> tuple[KeyFact, ...]:
    """Key facts taken directly from structured case fields: one per item. Free-text fields (history of
    present illness, review of systems) are split by `extractor` (an LLM) when given, else by rules."""
    b = FactBuilder(lexicon)
    free: dict[str, list[tuple[str, bool]]] = {}
    texts = [t for t in (history_of_present_illness if split_hpi else "", review_of_systems) if t]
    if extractor is not None and texts:
        free = dict(zip(texts, extractor.extract_texts(texts)))

    def add_free(text: str, category: FactCategory) -> None:
        if text in free:
            for stmt, present in free[text]:
                b.add(stmt, category, present=present)
            return
        for stmt, present, sent in split_facts_with_source(text):
            b.add(stmt, category, present=present, source_text=sent)

    d = demographics
    if d.age is not None:
        b.add(f"Age {d.age}", "demographics", patient_text=age_sentence(d.age, d.description), link=False)
    if d.sex is not None:
        b.add(f"Sex: {d.sex}", "demographics", patient_text=sex_sentence(d.age, d.sex, d.description), link=False)
    elif d.description:
        b.add(d.description, "demographics", link=False)
    b.add(chief_complaint, "chief_complaint")
    for s in symptoms:
        if s.present and not fact_polarity(s.name):  # "No fever." listed among the symptoms is a negative
            for stmt, _, sent in split_facts_with_source(s.name):
                b.add(stmt, "symptom", present=False, finding=s.finding, source_text=sent)
            continue
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
    for items, cat in (
        (past_medical_history, "pmh"),
        (social_history, "social"),
        (family_history, "family"),
        (medications, "medication"),
        (allergies, "allergy"),
    ):
        for item in items:
            for stmt, present, sent in split_facts_with_source(item):
                b.add(stmt, cat, present=present, source_text=sent)  # type: ignore[arg-type]
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

    def __init__(
        self, model: ChatModel, *, max_tokens: int = 512, seed: int | None = 0, fallback_to_rules: bool = False
    ):
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
            out.append([(i.rstrip("."), fact_polarity(i)) for i in items])
        return out

    def extract(self, text: str, category: FactCategory = "hpi", lexicon: Lexicon | None = None) -> tuple[KeyFact, ...]:
        b = FactBuilder(lexicon)
        for stmt, present in self.extract_texts([text])[0]:
            b.add(stmt, category, present=present)
        return tuple(b.facts)
