"""Text normalization shared by the lexicon, the patients and the evaluator.

Matching runs on stemmed word tokens so "coughing", "coughs" and "cough" meet; the stemmer is a few
suffix rules, not Porter — it only has to map a word and its lexicon form to the same key, and the
same function is applied to both sides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_IRREGULAR = {
    "swollen": "swell",
    "hurts": "hurt",
    "hurting": "hurt",
    "bled": "bleed",
    "felt": "feel",
    "lost": "lose",
    "ate": "eat",
    "drank": "drink",
    "fell": "fall",
    "fainted": "faint",
    "threw": "throw",
    "thrown": "throw",
    "kids": "child",
    "children": "child",
    "feet": "foot",
    "teeth": "tooth",
    "women": "woman",
    "men": "man",
    "xray": "x-ray",
    "ekg": "ecg",
}
STOPWORDS = frozenset(
    """a an the and or but if of to in on at for with by from about as is are was were be been being am do does
    did have has had having you your yours i me my mine we our us he she his her they them their it its this that
    these those there here what when where which who whom why how any anything some something ever never not no
    yes can could would should will shall may might must just also very much many more most other such than then
    so too up down out over under again once all each few both own same only into through during before after
    above below off further let get got tell please doctor today now like feel feeling been lately recently
    experience experienced experiencing notice noticed noticing""".split()
)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    w = _IRREGULAR.get(word, word)
    if w != word:
        return w
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    # doubled final consonant left by -ing/-ed ("swelling" -> "swell" is fine, "stopped" -> "stopp")
    if len(w) > 4 and w[-1] == w[-2] and w[-1] not in "lsaeiou":
        w = w[:-1]
    return w


def fold(text: str) -> str:
    """Accents dropped, one character for one ("Calvé" -> "Calve"), so match positions stay valid."""
    if text.isascii():
        return text
    return "".join(unicodedata.normalize("NFKD", c)[:1] or c for c in text)


def words(text: str) -> list[str]:
    """Lowercased word tokens (accents dropped); "x-ray" and "X ray" both become "xray"."""
    t = fold(text).lower().replace("x-ray", "xray").replace("x ray", "xray").replace("’", "'")
    return [m.group(0).removesuffix("'s") for m in _WORD.finditer(t)]


def stems(text: str) -> list[str]:
    return [stem(w) for w in words(text)]


def normalize(text: str) -> str:
    """Canonical form for comparing whole strings (questions, diagnosis names)."""
    return " ".join(stems(text))


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 2}


class PhraseIndex:
    """Longest-match phrase lookup over stemmed tokens: phrase -> set of concept keys.

    A question is scanned left to right; at each position the longest known phrase wins, so "chest pain"
    is read as one finding, not as the body part "chest" plus the word "pain".
    """

    def __init__(self) -> None:
        self._trie: dict = {}
        self.max_len = 0

    def add(self, phrase: str, concept: str) -> None:
        toks = stems(phrase)
        if not toks:
            raise ValueError(f"empty lexicon phrase for concept {concept!r}")
        node = self._trie
        for t in toks:
            node = node.setdefault(t, {})
        node.setdefault("", set()).add(concept)
        self.max_len = max(self.max_len, len(toks))

    def add_all(self, phrases: Iterable[str], concept: str) -> None:
        for p in phrases:
            self.add(p, concept)

    def scan(self, tokens: list[str]) -> list[set[str]]:
        """Concept sets found in the stemmed token list, longest match first."""
        return [c for c, _, _ in self.scan_spans(tokens)]

    def scan_spans(self, tokens: list[str]) -> list[tuple[set[str], int, int]]:
        """(concepts, start, end) for each longest match, left to right."""
        found: list[tuple[set[str], int, int]] = []
        i, n = 0, len(tokens)
        while i < n:
            node = self._trie
            best: set[str] | None = None
            best_end = i
            j = i
            while j < n and tokens[j] in node:
                node = node[tokens[j]]
                j += 1
                if "" in node:
                    best, best_end = node[""], j
            if best is not None:
                found.append((best, i, best_end))
                i = best_end
            else:
                i += 1
        return found
