"""Negation and polarity of clinical statements: is the fact a present finding or an explicitly absent one?

`fact_polarity(text)` reads the text itself: a statement is absent when its predicate opens with a negation
cue (no, not, never, denies / denied, without, negative for, non-smoker, has no, did not report, ...) after
an optional subject ("The man", "Patient's mother", "She"), or when an exam / test result reads negative
("Syphilis: Negative", "Rash absent"). A negation deeper in the sentence does not flip it ("Regained
consciousness without confusion" is present), nor do deficits phrased with a negation ("unable to walk",
"does not blanch", "did not improve").

`split_negated_list(text)` splits a negated list into its items ("Denies fever, cough, or recent travel" ->
["fever", "cough", "recent travel"]); `clauses(text)` splits a sentence at clause boundaries that start a new
statement ("He takes no medications, and he has no history of ...").
"""

from __future__ import annotations

import re

# A person as the subject of a statement: "The patient", "A 22-year-old man", "The man's", "Her", "Roommates".
_AGE = r"(?:\d+[-\s](?:year|month|week|day)s?[-\s]old\s+)"
_PERSON_HEAD = (
    r"(?:patient|pt|man|woman|boy|girl|child|baby|infant|newborn|neonate|toddler|adolescent|teenager|daughter|son|"
    r"male|female|gentleman|lady|individual|person|he|she|they|you|i|mother|father|parents?|roommates?|wife|"
    r"husband|partner|family)"
)
_FILLER = r"(?:(?!(?:is|was|are|were|has|had|to|of|with|in|on|no|not|never|none|without)\b)[A-Za-z-]+\s+)"
_PERSON_TAIL = r"(?:\s+(?:child|patient|infant|baby|newborn|student|athlete))?"
SUBJECT = re.compile(
    r"^(?:(?:a|an|the|our|his|her|their)\s+)?"
    + _AGE
    + r"?"
    + _FILLER
    + r"{0,3}?"
    + _PERSON_HEAD
    + _PERSON_TAIL
    + r"\b(?!['’]s)\s*",
    re.IGNORECASE,
)
POSSESSIVE_SUBJECT = re.compile(
    r"^(?:(?:(?:a|an|the)\s+)?" + _AGE + r"?" + _FILLER + r"{0,2}?" + _PERSON_HEAD + r"['’]s|his|her|their)\s+",
    re.IGNORECASE,
)

# Negation cues that open a predicate (after the subject is removed).
_LEAD_NEGATION = re.compile(
    r"^(?:(?:also|otherwise|currently|now|still|reportedly)\s+)?(?:"
    r"no(?!\s+longer\b)\b|none\b|never\b|not\b|without\b|negative\s+for\b|non-?(?:smoker|drinker|user|alcoholic)s?\b|"
    r"nonsmoker\b|lifetime\s+non-?smoker\b|free\s+of\b|absence\s+of\b|absent\b|nkda\b|"
    r"den(?:y|ies|ied)\b|"
    r"(?:is|are|was|were|has|have|had|does|do|did|could|would|will)\s+(?:not|never|no)\b|"
    r"(?:isn't|aren't|wasn't|weren't|hasn't|haven't|hadn't|doesn't|don't|didn't)\b|"
    r"(?:has|have|had|takes|took|reports|reported|endorses|endorsed|shows|showed|with|uses|used|drinks|smokes|gets)\s+no\b|"
    r"no\s+longer\b|there\s+(?:is|are|was|were|has\s+been|have\s+been)\s+no\b|"
    r"(?:is|was|are|were)\s+(?:a\s+)?(?:lifetime\s+|life-long\s+|lifelong\s+)?non-?(?:smoker|drinker)s?\b"
    r")",
    re.IGNORECASE,
)
# Negated verbs that still describe a present finding: a deficit or a failure.
_DEFICIT = re.compile(
    r"^(?:(?:is|are|was|were)\s+(?:not\s+able|unable)|(?:can|could)\s*(?:not|n't)|cannot|"
    r"(?:does|do|did|has|have|had|is|are|was|were)\s*(?:not|n't)\s+(?:been\s+)?"
    r"(?:improv|resolv|respond|relie|help|go\s+away|subside|blanch|remember|recall|recogni|sleep|eat|feed|"
    r"gain|grow|tolerat|pass|walk|speak|talk|move|lift|straighten|stop|settle|know|cooperat|abate|disappear|get\s+better))",
    re.IGNORECASE,
)
# A result that reads negative: "Syphilis: Negative", "Bite marks absent", "No abnormalities".
_TRAILING_NEGATIVE = re.compile(
    r"(?:\b(?:is|are|was|were)\s+(?:absent|negative|not\s+(?:present|seen|detected|noted|observed|found|palpable))|"
    r"\b(?:not\s+(?:present|seen|detected|noted|observed|found|palpable))|"
    r"\bwere\s+negative|\bwas\s+negative|\bnegative|\babsent|\bnone|\bnot\s+detected|\bunremarkable|"
    # "The mother's pregnancy was normal.", "Her nails are normal.": nothing abnormal, a pertinent negative
    r"\b(?:is|are|was|were|looks?|appears?|seems?)\s+(?:(?:completely|entirely|essentially|otherwise|all|within)\s+)?"
    r"normal(?:\s+limits)?)\.?$",
    re.IGNORECASE,
)
_RESULT_NEGATIVE = re.compile(
    r"^(?:negative|absent|none|not\s+(?:detected|present|seen|found)|nil|undetectable)\b", re.IGNORECASE
)
_NEUTRAL_LEAD = re.compile(
    r"^(?:on\s+(?:examination|exam|further\s+questioning)|additionally|also|however|currently|"
    r"at\s+present|today|otherwise)\s*,?\s*",
    re.IGNORECASE,
)

NEGATION_CUES = (
    "no",
    "not",
    "never",
    "none",
    "denies",
    "denied",
    "without",
    "negative for",
    "non-",
    "absent",
    "free of",
    "has no",
    "did not",
    "does not",
)


def strip_subject(text: str) -> str:
    """The predicate of a statement: "The man denied having a fever" -> "denied having a fever"."""
    t = _NEUTRAL_LEAD.sub("", text.strip())
    m = SUBJECT.match(t)
    if m and m.end() < len(t):
        rest = t[m.end() :]
        # "Patient is ..." / "She has no ..." keep their verb; a bare person noun phrase
        # ("Non-smoker", "Female") is not a subject
        if re.match(r"[a-z]", rest) or rest[:2].lower() in ("no", "de", "ne"):
            return rest
    return t


def negation_cue(text: str) -> str | None:
    """The negation cue that makes a statement absent, or None when it is present."""
    t = text.strip().rstrip(".").strip()
    if not t:
        return None
    if ":" in t:  # "Syphilis: Negative", "Skin: No current rash or lesions"
        result = t.rsplit(":", 1)[1].strip()
        m = _RESULT_NEGATIVE.match(result) or _LEAD_NEGATION.match(result)
        if m and not _DEFICIT.match(result):
            return m.group(0).lower()
        if result:
            return None
    pred = strip_subject(t)
    pred = re.sub(r"^(?:(?:also|otherwise|currently|still)\s+)", "", pred, flags=re.IGNORECASE)
    if _DEFICIT.match(pred):
        return None
    m = _LEAD_NEGATION.match(pred)
    if m:
        return m.group(0).lower()
    if re.search(r"[,;]\s*(?:but\s+|and\s+)?otherwise\s+(?:unremarkable|normal|negative|clear)\.?$", t, re.IGNORECASE):
        return None  # "Surgical site below the right ribcage, otherwise unremarkable": the finding is present
    m = _TRAILING_NEGATIVE.search(t)
    if m and len(t.split()) <= 8:  # "Rash absent", "Bite marks were not seen"; not a long sentence ending in "none"
        return m.group(0).strip(". ").lower()
    return None


def fact_polarity(text: str) -> bool:
    """True when the statement asserts a finding (present), False when it records its absence."""
    return negation_cue(text) is None


# --- negated lists ---------------------------------------------------------------------------------

_LIST_HEAD = re.compile(
    r"^(?:den(?:y|ies|ied)|no|negative\s+for|without|"
    r"(?:has|have|had|reports|reported|takes|took)\s+no|"
    r"(?:does|do|did)\s*(?:not|n't)\s+(?:have|report|complain\s+of|endorse|experience|mention|note|describe)|"
    r"(?:has|have|had)\s*(?:not|n't)\s+(?:had|noticed|experienced|reported)|"
    r"(?:is|was|are|were)\s+not\s+(?:on|taking|experiencing))\s+",
    re.IGNORECASE,
)
_ITEM_LEAD = re.compile(
    r"^(?:(?:having|experiencing|any|a|an|the|other|known|recent\s+episodes\s+of|"
    r"episodes?\s+of|signs?\s+of|symptoms?\s+of|evidence\s+of|complaints?\s+of)\s+)+",
    re.IGNORECASE,
)
_PROTECT = re.compile(r"\b(personal|medical|surgical)\s+or\s+(family|surgical|psychiatric|medical)\b", re.IGNORECASE)


def split_negated_list(text: str) -> tuple[str, list[str]] | None:
    """(cue, items) of a negated list, or None when the text is not one. The items are noun phrases with
    fillers dropped: "Patient denies experiencing any chest pain, palpitations, or recent infections" ->
    ("denies", ["chest pain", "palpitations", "recent infections"])."""
    pred = strip_subject(text.strip().rstrip("."))
    m = _LIST_HEAD.match(pred)
    if not m:
        return None
    body = _PROTECT.sub(lambda x: f"{x.group(1)}\0{x.group(2)}", pred[m.end() :])
    raw = re.split(r",\s*(?:or\s+|and\s+|nor\s+)?|\s+or\s+|\s+nor\s+|\s+and\s+(?=any\b|other\b|no\b)", body)
    items = [_ITEM_LEAD.sub("", i.replace("\0", " or ")).strip(" ,") for i in raw]
    items = [i for i in items if i and re.search(r"[A-Za-z]", i)]
    merged: list[str] = []
    for i in items:  # "genetic or metabolic disorders": an adjective shares the next item's noun
        if merged and re.fullmatch(r"(?:[\w-]+\s+)*[\w-]+(?:ic|al|ous|ive|ary|ar)", merged[-1]) and len(i.split()) >= 2:
            merged[-1] = f"{merged[-1]} or {i}"
        else:
            merged.append(i)
    items = merged
    if not items or (len(items) > 1 and re.match(r"(?:anything|something|eaten|drunk)\b", items[0], re.IGNORECASE)):
        return None  # "has not had anything to eat or drink for 24 hours" is one statement, not a list

    head = re.match(r"^((?:personal or family |family |personal |medical )?history\s+of)\s+", items[0], re.IGNORECASE)
    if head and len(items) > 1:  # "no history of skin cancer or suspicious moles": the head is shared
        items = [items[0]] + [
            i if i.lower().startswith(head.group(1).lower()) else f"{head.group(1)} {i}" for i in items[1:]
        ]
    return m.group(0).strip().lower(), items


_CLAUSE = re.compile(
    r"(?:,\s*|\s+)(?:and|but)\s+(?=(?:he|she|they|the\s+patient|patient|his|her)\s+\w+)|"
    r"(?:,\s*|\s+)and\s+(?=(?:reported|reports|denied|denies|has\s+no|had\s+no|is\s+not|was\s+not|takes\s+no)\b)|"
    r",\s*(?=(?:drinks|smokes|works|lives|uses|takes|consumes|denies|reports|occasional|social|retired|employed|"
    r"unemployed|former)\b)|"
    r",\s*(?=(?:moderate|heavy|light|occasional|social)\s+(?:alcohol|drinking|ethanol)\b)|"
    r"(?:,\s*|\s+)and\s+(?=(?:(?:her|his|the)\s+)?(?:family|social|past\s+medical|medical|surgical)\s+history\s+"
    r"(?:includes?|is|was|of|shows|reveals)\b)|"
    r";\s*|(?:,\s*|\s+)but\s+(?=(?:\w+ed|had|has|was|is|now|then|later|also|she|he|they|the\s+patient|denies|reports|complains|notes|endorses)\b)",
    re.IGNORECASE,
)


def clauses(text: str) -> list[str]:
    """A sentence cut where a new statement starts: ", and he has no ...", " and reported no ...", "; ".
    A clause without its own subject keeps the sentence's subject ("She was a lifetime nonsmoker and
    reported no fevers" -> ["She was a lifetime nonsmoker", "She reported no fevers"])."""
    parts = [p.strip(" ,") for p in _CLAUSE.split(text) if p and p.strip(" ,")]
    if len(parts) <= 1:
        return [text.strip()]
    m = SUBJECT.match(parts[0])
    subj = parts[0][: m.end()].strip() if m and m.end() < len(parts[0]) else ""
    out = [parts[0]]
    for p in parts[1:]:
        if subj and not SUBJECT.match(p) and not POSSESSIVE_SUBJECT.match(p):
            p = f"{subj} {p}"
        out.append(p)
    return out
