"""Diagnosis names: the accepted names of a case's diagnosis, matching a stated diagnosis against them,
and the leak filter that keeps patients from saying any of them.

Abbreviations ("MI", "PE", "GAD") are matched case-sensitively as whole words, so the filter does not fire
on "mi" inside ordinary text or on "pe" in "type"; full names are matched case-insensitively, with accents,
hyphens and apostrophes optional ("Legg-Calve-Perthes", "Bells palsy"). A name with a parenthesis counts
without it and by its abbreviation: "Benign Paroxysmal Positional Vertigo (BPPV)" is also "Benign paroxysmal
positional vertigo" and "BPPV". The patients' wider filter (names, initials, distinctive parts) is in
`redaction`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mock_patients.cases import PatientCase
from mock_patients.knowledge import KnowledgeTable, default_table
from mock_patients.text import STOPWORDS, fold, normalize, stem, words

_NEGATION = frozenset({"not", "no", "without", "unlikely", "exclude", "excluded", "ruled"})
_QUALIFIERS = frozenset({"acute", "chronic", "likely", "probable", "possible", "suspected", "disease", "syndrome"})


def accepted_names(case: PatientCase, table: KnowledgeTable | None = None) -> tuple[str, ...]:
    """Every name that counts as the case's diagnosis: its own, its synonyms, and the table's for its id."""
    table = table or default_table()
    names = [case.diagnosis, *case.diagnosis_synonyms]
    did = (
        case.diagnosis_id
        or table.disease_id_for(case.diagnosis)
        or table.disease_id_for(_without_parenthesis(case.diagnosis))
    )
    if did is not None:
        names.extend(table.disease(did).all_names)
    names = [v for n in names for v in (n, *name_variants(n))]
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


def _without_parenthesis(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\([^)]*\)", " ", name)).strip()


def name_variants(name: str) -> tuple[str, ...]:
    """Other spellings of one name: without its parenthesis, and the parenthesis itself when it is an
    abbreviation or a synonym ("Progressive multifocal encephalopathy (PML)" -> the name, "PML")."""
    out = []
    bare = _without_parenthesis(name)
    if bare and bare != name.strip():
        out.append(bare)
    for inner in re.findall(r"\(([^)]+)\)", name):
        inner = inner.strip()
        if inner and not re.match(r"(?:e\.g|i\.e|see|also|formerly|type)\b", inner, re.IGNORECASE):
            out.append(inner)
    return tuple(out)


def is_abbreviation(name: str) -> bool:
    letters = re.sub(r"[^A-Za-z]", "", name)
    return 0 < len(name) <= 6 and letters.isupper()


_is_abbreviation = is_abbreviation


def _flexible(name: str) -> str:
    """A regex for a full name: hyphens, spaces and apostrophes optional or interchangeable."""
    parts = []
    for ch in fold(name.strip()):
        if ch in "-‐‑– " or ch.isspace():
            parts.append(r"[\s\-‐‑–]*")
        elif ch in "'’":
            parts.append("['’]?")
        else:
            parts.append(re.escape(ch))
    out = "".join(parts)
    return re.sub(r"(?:\[\\s\\-‐‑–\]\*)+", lambda m: r"[\s\-‐‑–]*", out)


@lru_cache(maxsize=4096)
def _leak_regex(names: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    abbr = sorted({re.escape(n) for n in names if is_abbreviation(n)}, key=len, reverse=True)
    # "Bell's palsy" written "Bells palsy", "Legg-Calvé-Perthes" as "Legg Calve Perthes": see _flexible
    full = sorted({_flexible(n) for n in names if not is_abbreviation(n) and n.strip()}, key=len, reverse=True)
    wrap = r"(?<![A-Za-z0-9])(?:{})(?![A-Za-z0-9])"
    return (
        re.compile(wrap.format("|".join(full)), re.IGNORECASE) if full else None,
        re.compile(wrap.format("|".join(abbr))) if abbr else None,
    )


_LETTERS = re.compile(r"[^\W\d_]+")
# disease-noun endings: two words with different ones name different diseases ("nephritis" / "nephrosis")
_DISEASE_END = re.compile(
    r"(?:itis|osis|oses|omas?|emia|aemia|pathy|iasis|ism|plasia|trophy|algia|penia|megaly|"
    r"plegia|paresis)$"
)


def _osa_distance(a: str, b: str, k: int) -> int:
    """Optimal-string-alignment (Damerau-Levenshtein with adjacent transpositions) distance of a and b, or
    k + 1 as soon as it must exceed k."""
    if abs(len(a) - len(b)) > k:
        return k + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > k:
            return k + 1
        prev2, prev = prev, cur
    return prev[-1]


def fuzzy_budget(word: str) -> int:
    """Edits allowed between a diagnosis word and a misspelling of it: none under 7 letters, 1 for 7-11, 2 from
    12. Looser budgets hit ordinary words (measured on English text: 2 edits at 8 letters take "migraine" to
    "migrant", "shingles" to "single", "dissection" to "direction"; 1 edit at 6 takes "graves" to "gravis")."""
    return 0 if len(word) < 7 else 1 if len(word) < 12 else 2


class LeakFilter:
    """Finds any accepted name of one diagnosis in a text.

    With `fuzzy` (a set of lowercase name words that are distinctive enough), a name is also found misspelled:
    each of its words either equal to the text's word or, for a fuzzy word, within `fuzzy_budget` edits of it
    ("pnuemonia", "community-aquired pneumonia"), where the text's word starts with the same letter, is not a
    word in `known` (other diseases, findings, body parts, tests, common words: stems) and does not end in
    another disease ending ("nephrosis" is not "nephritis")."""

    def __init__(
        self, names: tuple[str, ...], fuzzy: frozenset[str] = frozenset(), known: frozenset[str] = frozenset()
    ):
        self.names = names
        self._full, self._abbr = _leak_regex(tuple(sorted(set(names))))
        self._known = known
        windows = {tuple(_LETTERS.findall(fold(n).lower())) for n in names if not is_abbreviation(n)}
        self._fuzzy = fuzzy
        self._windows = tuple(sorted((w for w in windows if w and any(x in fuzzy for x in w)), key=len, reverse=True))

    @classmethod
    def for_case(cls, case: PatientCase, table: KnowledgeTable | None = None) -> LeakFilter:
        return cls(accepted_names(case, table))

    def _near(self, tok: str, word: str) -> bool:
        if tok == word:
            return True
        if word not in self._fuzzy:
            return False
        k = fuzzy_budget(word)
        if not k or tok[0] != word[0] or abs(len(tok) - len(word)) > k:
            return False
        st = stem(tok)
        if st in self._known and st != stem(word):
            return False
        a, b = _DISEASE_END.search(tok), _DISEASE_END.search(word)
        if a and b and a.group() != b.group():
            return False
        return _osa_distance(tok, word, k) <= k

    def _fuzzy_spans(self, text: str) -> list[tuple[int, int]]:
        if not self._windows:
            return []
        toks = [(m.start(), m.end(), m.group().lower()) for m in _LETTERS.finditer(fold(text))]
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(toks):
            for w in self._windows:
                n = len(w)
                if i + n <= len(toks) and all(self._near(toks[i + j][2], w[j]) for j in range(n)):
                    spans.append((toks[i][0], toks[i + n - 1][1]))
                    i += n - 1
                    break
            i += 1
        return spans

    def find(self, text: str) -> str | None:
        folded = fold(text)
        for rx in (self._full, self._abbr):
            if rx is not None:
                m = rx.search(folded)
                if m:
                    return text[m.start() : m.end()]
        spans = self._fuzzy_spans(text)
        return text[spans[0][0] : spans[0][1]] if spans else None

    def find_all(self, text: str) -> list[str]:
        folded = fold(text)
        found = [(m.start(), m.end()) for rx in (self._full, self._abbr) if rx is not None for m in rx.finditer(folded)]
        found += [s for s in self._fuzzy_spans(text) if not any(a < s[1] and s[0] < b for a, b in found)]
        return [text[a:b] for a, b in found]

    def redact(self, text: str, replacement: str = "[withheld]") -> str:
        for rx in (self._full, self._abbr):
            if rx is not None:
                folded = fold(text)
                spans = [(m.start(), m.end()) for m in rx.finditer(folded)]
                for a, b in reversed(spans):
                    text = text[:a] + replacement + text[b:]
        for a, b in reversed(self._fuzzy_spans(text)):
            text = text[:a] + replacement + text[b:]
        return text

    def __deepcopy__(self, memo: dict) -> LeakFilter:
        return self


def _core(name: str) -> str:
    qualifiers = _qualifier_stems()
    return " ".join(w for w in normalize(name).split() if w not in qualifiers)


@lru_cache(maxsize=1)
def _qualifier_stems() -> frozenset[str]:
    return frozenset(_QUALIFIERS | {stem(q) for q in _QUALIFIERS})


def diagnosis_matches(stated: str, case: PatientCase, table: KnowledgeTable | None = None) -> bool:
    """True when `stated` names the case's diagnosis: equal after normalization (case, punctuation, plurals,
    qualifiers like "acute"), the same knowledge-table disease by any synonym, or a more specific statement
    containing every content word of an accepted name ("right lower lobe pneumonia") with no negation."""
    table = table or default_table()
    if not stated or not stated.strip():
        return False
    stated_words = set(words(stated))
    if stated_words & _NEGATION:
        return False
    truth_id = case.diagnosis_id or table.disease_id_for(case.diagnosis)
    stated_id = table.disease_id_for(stated) or table.disease_id_for(_core(stated))
    if truth_id is not None and stated_id is not None:
        return truth_id == stated_id
    s_core = _core(stated)
    s_tokens = set(s_core.split())
    for name in accepted_names(case, table):
        n_core = _core(name)
        if not n_core:
            continue
        if n_core == s_core:
            return True
        n_tokens = {t for t in n_core.split() if t not in STOPWORDS}
        # single short words ("stroke", "ulcer") are too generic to accept inside a longer statement
        specific = len(n_tokens) >= 2 or (len(n_tokens) == 1 and len(next(iter(n_tokens))) >= 7)
        if specific and n_tokens <= s_tokens:
            return True
    return False
