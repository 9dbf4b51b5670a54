"""Keeping the diagnosis out of what the patient says and what a test result shows.

* `leak_terms(case)` — every string that gives the diagnosis away: its accepted names (`names.accepted_names`:
  the name, synonyms, the name without its parenthesis, the parenthesised abbreviation), the initials of a
  name of three words or more ("BPPV", "DLBCL"), and the name's distinctive parts (disease nouns such as
  "lymphoma" or "nephritis", eponyms such as "Hirschsprung" or "Perthes"; never "disease", "syndrome" or a
  word the knowledge table uses for a symptom or body part);
* `find_leaks(text, case)` — the terms found in a text (matching ignores case, accents, hyphens and
  apostrophes; abbreviations match case-sensitively);
* `rewrite_result(text, case)` — a test or exam result with the conclusion that names the diagnosis dropped and
  the finding kept ("Lesions consistent with PML." -> "Lesions."; "..., indicative of PML" -> "..."), and any
  other mention withheld;
* `result_leaks(reply, case)` — leaks in a test reply's results (the "Test name:" labels are the doctor's own
  request, not a leak: "Rubella IgM: Positive").

Misspellings are leaks too: a word of a name that is distinctive (seven letters or more, not a symptom, body
part, test or generic word) also matches the text's words within a bounded edit distance (Damerau-Levenshtein
1 for 7-11 letters, 2 from 12; same first letter; never a word the knowledge table knows, and never another
disease ending): "pnuemonia" is withheld for pneumonia, while "pneumothorax", "pneumonitis" and "pneumococcal"
stay. Shorter words ("gout", "croup", "graves") match exactly only: one edit from them is too often another
word. Over ~61,000 distinct words of English text (the Python standard library's and transformers' sources),
the only word taken for a misspelling was "singles" (of "shingles").

Diagnosis codes never reach a patient or a test result: an ICD code written after "ICD" ("ICD-10 J18.9",
"ICD10: I10") is dropped from any text (`strip_codes`), and the case's own codes (`diagnosis_codes`, and a
code inside a diagnosis name) are leak terms wherever they appear.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mock_patients.cases import PatientCase
from mock_patients.knowledge import KnowledgeTable, default_table
from mock_patients.names import LeakFilter, accepted_names, fuzzy_budget, is_abbreviation
from mock_patients.text import STOPWORDS, fold, stem, words

WITHHELD = "[withheld]"
_GENERIC = frozenset(
    """disease diseases syndrome syndromes disorder disorders infection infections acute chronic benign
malignant primary secondary progressive idiopathic congenital acquired type stage severe mild moderate related induced
associated positive negative deficiency failure injury cell cells large small diffuse multiple local localized focal
multifocal generalized systemic left right bilateral unilateral recurrent persistent transient essential interstitial
paroxysmal positional situational reactive viral bacterial fungal atypical typical simple complex complicated
uncomplicated early late adult juvenile infantile neonatal childhood familial hereditary toxic allergic inflammatory
functional organic major minor total partial complete incomplete central peripheral upper lower anterior posterior
medial lateral internal external deep superficial pulmonary cardiac renal hepatic gastric intestinal cerebral spinal
vascular venous arterial nervous muscular skeletal dermal cutaneous oral nasal ocular personality defect defects
abnormality condition lesion lesions tumor tumour mass cyst stones stone ulcer bleeding hemorrhage fracture rupture
obstruction insufficiency dysfunction exacerbation episode attack intoxication poisoning overdose reaction response
pressure blood heart lung liver kidney bowel colon brain skin bone joint muscle nerve""".split()
)
_DISEASE_SUFFIX = re.compile(
    r"(?:itis|osis|oses|omas?|emia|aemia|pathy|iasis|ism|plasia|trophy|ectasis|ocele|"
    r"asthenia|algia|philia|penia|megaly|rrhea|rrhoea|ucoma|plegia|paresis)$",
    re.IGNORECASE,
)
_CONCLUSION = re.compile(
    r"(?P<lead>,?\s*(?:(?:which|that)\s+(?:is|are|was|were)\s+|(?:is|are|was|were)\s+|findings?\s+(?:are\s+|were\s+)?)?"
    r"(?:(?:highly|most|strongly|likely|possibly|probably|very|also)\s+)*"
    r"(?:consistent\s+with|indicative\s+of|indicating|suggestive\s+of|suggesting|suggests?|compatible\s+with|"
    r"diagnostic\s+(?:of|for)|characteristic\s+of|typical\s+of|pathognomonic\s+(?:of|for)|in\s+keeping\s+with|"
    r"confirming|confirms?|concerning\s+for|representing|consistent\s+w/|c/w|due\s+to|caused\s+by|secondary\s+to|"
    r"supporting|supports?|favou?ring|in\s+favou?r\s+of|raising\s+suspicion\s+(?:of|for)|worrisome\s+for)\s+)"
    r"(?P<rest>[^.;]*)",
    re.IGNORECASE,
)
_DIAGNOSED = re.compile(
    r"[^.;]*\b(?:diagnosed\s+with|diagnosis\s+(?:of|is)|has\s+been\s+diagnosed)\b[^.;]*[.;]?", re.IGNORECASE
)
_FILLER_ONLY = re.compile(
    r"^[\s,.:;-]*(?:(?:findings?|results?|appearance|images?|features?|these|this|that|are|is|"
    r"were|was|all|overall|which|pattern)\b[\s,.:;-]*)*$",
    re.IGNORECASE,
)


# ICD-10 (J18.9, S72.001A, U07.1) and ICD-9 (486, 250.00, V22.1, E880.9) code shapes
ICD10_CODE = r"[A-TV-Z][0-9][0-9AB](?:\.?[0-9A-Z]{1,4})?"
_CODE = rf"(?:{ICD10_CODE}|[VE]?[0-9]{{3}}(?:\.[0-9]{{1,2}})?)"
# "ICD-10 J18.9", "(ICD10-CM code: J18.9, J96.00)", "ICD-9 486": the label and its codes
_ICD_CODES = re.compile(
    rf"\s*\(?\bICD\s*-?\s*(?:9|10|11)?(?:\s*-?\s*CM)?(?:\s+codes?)?\s*[:#=-]?\s*"
    rf"\b{_CODE}\b(?:\s*(?:,|;|/|\bor\b|\band\b)\s*\b{_CODE}\b)*\s*\)?",
    re.IGNORECASE,
)
_CODE_IN_NAME = re.compile(rf"(?<![A-Za-z0-9]){ICD10_CODE}(?![A-Za-z0-9])")


def strip_codes(text: str) -> str:
    """`text` without its ICD codes: "Pneumonia (ICD-10 J18.9) treated." -> "Pneumonia treated."; a code a
    patient would never say and a result must not show. Text without "ICD" is returned as it is."""
    if "icd" not in text.lower():
        return text
    out = _ICD_CODES.sub(" ", text)
    out = re.sub(r"\(\s*\)", "", out)
    out = re.sub(r"\s+([.,;:)])", r"\1", out)
    out = re.sub(r"[,;:]+(?=[.)]|\s*$)", "", out)  # "Hypertension, ." -> "Hypertension."
    return re.sub(r"\s{2,}", " ", out).strip()


def case_codes(case: PatientCase) -> tuple[str, ...]:
    """The case's ICD codes: `diagnosis_codes`, and ICD-10 codes written inside a diagnosis name or synonym
    (with a dot, or after "ICD")."""
    found = [c.strip() for c in case.diagnosis_codes]
    for n in (case.diagnosis, *case.diagnosis_synonyms):  # "Pneumonia (J18.9)", "Pneumonia, ICD-10 J189"
        found += [c for c in _CODE_IN_NAME.findall(n) if "." in c or "icd" in n.lower()]  # not "(B12)"
    return tuple(dict.fromkeys(c for c in found if c))


@lru_cache(maxsize=1)
def _table_vocab(table: KnowledgeTable) -> frozenset[str]:
    """Stems of every word the table uses for symptoms, history items, body parts and tests."""
    out: set[str] = set()
    for f in table.findings:
        if f.kind in ("symptom", "history"):
            for p in (f.name, f.say, *f.synonyms):
                out.update(stem(w) for w in words(p))
    for ps in (*table.body_parts.values(), *table.symptom_words.values()):
        for p in ps:
            out.update(stem(w) for w in words(p))
    for t in table.tests:
        for p in (t.name, *t.synonyms):
            out.update(stem(w) for w in words(p))
    return frozenset(out)


@lru_cache(maxsize=1)
def _known_words(table: KnowledgeTable) -> frozenset[str]:
    """Stems of every word the table knows (findings of any kind, body parts, tests, every disease name and
    synonym) and of common and generic words: a misspelling match never fires on one of them."""
    out: set[str] = set(_table_vocab(table)) | {stem(w) for w in STOPWORDS | _GENERIC}
    for f in table.findings:
        for p in (f.name, f.say or "", *f.synonyms):
            out.update(stem(w) for w in words(p))
    for d in table.diseases:
        for p in d.all_names:
            out.update(stem(w) for w in words(p))
    return frozenset(out)


def fuzzy_words(names: tuple[str, ...], table: KnowledgeTable | None = None) -> frozenset[str]:
    """The lowercase words of `names` that may match misspelled: seven letters or more (`names.fuzzy_budget`),
    not generic, not a common word, not a symptom, body part or test word of the table ("pneumonia",
    "myasthenia", "respiratory")."""
    vocab = _table_vocab(table or default_table())
    out = set()
    for n in names:
        if is_abbreviation(n):
            continue
        for w in re.findall(r"[^\W\d_]+", fold(n)):
            w = w.lower()
            if fuzzy_budget(w) and w not in _GENERIC and w not in STOPWORDS and stem(w) not in vocab:
                out.add(w)
    return frozenset(out)


def distinctive_parts(name: str, table: KnowledgeTable | None = None) -> tuple[str, ...]:
    """The words of a diagnosis name that name it on their own: disease nouns ("lymphoma", "nephritis",
    "myasthenia") and eponyms ("Hirschsprung", "Legg-Calvé-Perthes", "Perthes", "Bowen")."""
    table = table or default_table()
    vocab = _table_vocab(table)
    base = re.sub(r"\([^)]*\)", " ", name)
    tokens = re.findall(r"[^\W\d_][\w'’-]*", base)
    title_case = all(t[:1].isupper() for t in tokens)
    out: list[str] = []
    for i, tok in enumerate(tokens):
        bare = re.sub(r"['’]s$", "", tok)
        pieces = [bare] + ([p for p in bare.split("-") if len(p) >= 5] if "-" in bare else [])
        nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
        eponym = (
            tok.endswith(("'s", "’s"))
            or ("-" in bare and all(x[:1].isupper() and x[1:2].islower() for x in bare.split("-")))
            or (
                bare[:1].isupper()
                and (
                    i > 0
                    and not title_case
                    or nxt in ("disease", "syndrome", "palsy", "disorder", "infection", "phenomenon", "sign", "ulcer")
                )
            )
        )
        if re.match(r"^[A-Za-z]-", bare):  # "B-cell", "T-cell"
            continue
        for p in pieces:
            low = p.lower()
            if len(low) < 5 or low in _GENERIC or low in STOPWORDS or stem(low) in vocab:
                continue
            if eponym or _DISEASE_SUFFIX.search(low):
                out.append(p)
    return tuple(dict.fromkeys(out))


def initials(name: str) -> str | None:
    """ "Benign Paroxysmal Positional Vertigo" -> "BPPV"; None for names under three words."""
    base = re.sub(r"\([^)]*\)", " ", name)
    toks = [
        t for t in re.split(r"[\s-]+", base) if t and t[0].isalpha() and t.lower() not in ("of", "the", "and", "with")
    ]
    return "".join(t[0].upper() for t in toks) if len(toks) >= 3 else None


def leak_terms(case: PatientCase, table: KnowledgeTable | None = None) -> tuple[str, ...]:
    """Every string that gives the case's diagnosis away (see module docstring)."""
    table = table or default_table()
    names = list(accepted_names(case, table))
    out = list(names)
    for n in names:
        if not is_abbreviation(n):
            ini = initials(n)
            if ini:
                out.append(ini)
            out.extend(distinctive_parts(n, table))
    out.extend(case_codes(case))
    return tuple(dict.fromkeys(t for t in out if t.strip()))


@lru_cache(maxsize=4096)
def _filter(terms: tuple[str, ...], table: KnowledgeTable) -> LeakFilter:
    return LeakFilter(terms, fuzzy=fuzzy_words(terms, table), known=_known_words(table))


def leak_filter(case: PatientCase, table: KnowledgeTable | None = None) -> LeakFilter:
    """A `LeakFilter` over `leak_terms(case)` that also finds misspellings of them (module docstring): the
    patient's and the test results' output filter."""
    table = table or default_table()
    return _filter(leak_terms(case, table), table)


def find_leaks(text: str, case: PatientCase, table: KnowledgeTable | None = None) -> list[str]:
    """The diagnosis terms (names, abbreviations, distinctive parts) that occur in `text`, as written there."""
    return leak_filter(case, table).find_all(text)


def rewrite_result(
    text: str, case: PatientCase, table: KnowledgeTable | None = None, flt: LeakFilter | None = None
) -> str:
    """A result with the diagnosis taken out: a conclusion clause naming it is dropped ("Lesions consistent
    with PML." -> "Lesions."), a sentence saying it was diagnosed is dropped, other mentions are withheld."""
    flt = flt or leak_filter(case, table)
    stripped = strip_codes(text)
    if stripped != text and not _FILLER_ONLY.match(stripped.rstrip(":")):
        text = stripped
    elif stripped != text:  # nothing but the code: "Discharge code: ICD-10 J18.9"
        return WITHHELD
    if not flt.find(text):
        return text

    def drop(m: re.Match) -> str:
        return "" if flt.find(m.group("rest")) else m.group(0)

    out = _CONCLUSION.sub(drop, text)
    out = _DIAGNOSED.sub(lambda m: "" if flt.find(m.group(0)) else m.group(0), out)
    out = re.sub(r"\s+([.,;])", r"\1", out)
    out = re.sub(r"([.;])\s*[.;]+", r"\1", out).strip()
    out = re.sub(r"^[,;\s]+|[,;\s]+$", "", out)
    if _FILLER_ONLY.match(out):
        out = "abnormal"
    return flt.redact(out, WITHHELD)


def rewrite_reply(reply: str, case: PatientCase, table: KnowledgeTable | None = None) -> str:
    """A test reply ("Label: result; Label: result") with each result rewritten; labels are kept."""
    flt = leak_filter(case, table)
    if not flt.find(reply) and "icd" not in reply.lower():
        return reply
    parts = []
    for seg in reply.split("; "):
        label, sep, result = seg.rpartition(": ")
        parts.append(
            f"{label}{sep}{rewrite_result(result, case, table, flt)}" if sep else rewrite_result(seg, case, table, flt)
        )
    return "; ".join(parts)


def result_leaks(reply: str, case: PatientCase, table: KnowledgeTable | None = None) -> list[str]:
    """Diagnosis terms in a test reply's results, its "Label:" parts left out."""
    out: list[str] = []
    for seg in reply.split("; "):
        out += find_leaks(seg.rpartition(": ")[2], case, table)
    return out
