"""Helpers shared by the public-format loaders: text of nested fields, exam/test observations, ages and
demographics, the chief complaint of a vignette's first sentence, and the diagnosis's table link."""

from __future__ import annotations

import re
from typing import Any, Literal

from mock_patients.cases import Demographics, Observation, diagnosis_length_error
from mock_patients.knowledge import default_table
from mock_patients.lexicon import default_lexicon
from mock_patients.redaction import ICD10_CODE

Split = Literal["train", "test"]
_GENERIC_KEYS = {
    "findings",
    "finding",
    "result",
    "results",
    "comments",
    "comment",
    "interpretation",
    "impression",
    "value",
    "details",
    "description",
    "optional",
}
EXAM_WORDS = re.compile(
    r"\b(temperature|pulse|blood pressure|respirations|respiratory rate|oxygen saturation|"
    r"examination|exam\b|auscultation|palpation|on inspection|bmi|heart rate|tender|murmur)",
    re.IGNORECASE,
)
TEST_WORDS = re.compile(
    r"\b(laboratory|lab studies|serum|level|count|x-ray|radiograph|ct\b|mri|ultrasound|"
    r"biopsy|ecg|ekg|electrocardiogram|culture|urinalysis|smear|titer|panel|mg/dl|mmol|"
    r"hemoglobin|leukocyte|platelet|shows|reveals|positive for|negative for|"
    r"urine\s+(?:colou?r|ph|specific gravity|osmolality|sodium|protein|glucose|ketones|dipstick|"
    r"studies|analysis|microscopy|sediment|toxicology|drug screen)|nitrites?|ketones|"
    r"specific gravity|dipstick|casts\b)",
    re.IGNORECASE,
)
# a list of read-out results: "bacteria are absent, nitrites are negative, and red blood cells are negative"
_RESULT_ITEM = re.compile(
    r"\b(?:is|are|was|were)\s+(?:negative|positive|trace|detected|undetectable|"
    r"within normal limits)\b",
    re.IGNORECASE,
)
_UNINFORMATIVE = re.compile(
    r"^(information not provided|not provided|none provided|n/?a|unknown|not available|"
    r"not applicable|unspecified|(?:(?:further\s+)?(?:information|data|details)\s+)?"
    r"not\s+(?:specified|provided|available|given|documented|recorded|mentioned|stated|reported)|"
    r"no\s+(?:further\s+|additional\s+)?(?:information|data|details)(?:\s+(?:provided|available|given|"
    r"specified|documented))?|"
    r"no additional symptoms( provided| noted)?(\s+by the \w+)?)\.?$",
    re.IGNORECASE,
)


def is_test_result(text: str) -> bool:
    """A laboratory / imaging read-out a test reveals, not something the patient tells: it names a test or
    an analyte (TEST_WORDS), or it lists two or more results ("X is negative, Y are positive")."""
    return bool(TEST_WORDS.search(text)) or len(_RESULT_ITEM.findall(text)) >= 2


def human(key: str) -> str:
    """ "Chest_X-Ray" -> "Chest X-Ray"; "blood_work" -> "Blood work"."""
    t = key.replace("_", " ").strip()
    return t[:1].upper() + t[1:].lower() if not re.search(r"[A-Z]{2}", t) else t[:1].upper() + t[1:]


def text_of(v: Any) -> str:
    """Any JSON value as one line of text (lists joined by "; ", objects as "Key: value")."""
    if v is None:
        return ""
    if isinstance(v, list):
        return "; ".join(text_of(x) for x in v if text_of(x))
    if isinstance(v, dict):
        return "; ".join(f"{human(k)}: {text_of(x)}" for k, x in v.items() if text_of(x))
    return str(v).strip()


_ICD_KEY = re.compile(r"(?<![a-z])icd(?![a-z])", re.IGNORECASE)  # "ICD10_Code", "Diagnosis_ICD"
# ICD-10 codes only: a bare ICD-9 code ("486") is a number that would be withheld everywhere it appears
_CODE = re.compile(rf"(?<![A-Za-z0-9]){ICD10_CODE}(?![A-Za-z0-9])")


def icd_codes(record: dict) -> tuple[str, ...]:
    """The ICD-10 codes a record carries for its diagnosis: in the values of its keys naming ICD ("ICD10_Code",
    "icd_codes"), at the top level or one object down (OSCE_Examination); () when it has none."""
    found: list[str] = []
    for obj in (record, *(v for v in record.values() if isinstance(v, dict))):
        for k, v in obj.items():
            if _ICD_KEY.search(str(k)) and isinstance(v, (str, list)):
                for x in v if isinstance(v, list) else [v]:
                    if isinstance(x, str) and len(x) <= 200:
                        found += _CODE.findall(x)
    return tuple(dict.fromkeys(found))


def diagnosis_text(value: Any, field: str) -> str:
    """A record's diagnosis field as a name: a non-empty text of at most MAX_DIAGNOSIS_CHARS characters. A
    list or an object is an error naming the field (never joined into "Gout; Pneumonia" or "Name: Gout")."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{field} is missing or empty")
    if not isinstance(value, str):
        kind = {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
        raise ValueError(f"{field} must be a text (one diagnosis name), got {kind}")
    name = value.strip()
    err = diagnosis_length_error(field, name)
    if err:
        raise ValueError(err)
    return name


def informative(s: str) -> bool:
    return bool(s.strip()) and not _UNINFORMATIVE.match(s.strip())


def _flatten(section: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Leaves of a free-form exam/test object as (key path, text)."""
    if isinstance(section, dict):
        out = []
        for k, v in section.items():
            out += _flatten(v, path + (str(k),))
        return out
    text = text_of(section)
    return [(path, text)] if text else []


def observations(section: Any, what: str) -> list[Observation]:
    """Every leaf of a free-form exam/test section as one observation named by its key path
    ("Blood tests / Acetylcholine receptor antibodies"), so a request for the panel or the test finds it."""
    if section is None:
        return []
    if not isinstance(section, (dict, str, list)):
        raise ValueError(f"{what} must be an object or text, got {type(section).__name__}")
    lex = default_lexicon()
    out = []
    for path, text in _flatten(section if isinstance(section, dict) else {what: section}):
        if not informative(text) or any(_ICD_KEY.search(k) for k in path):
            continue  # an ICD code is the diagnosis's label, not something an exam or a test shows
        keys = [k for k in path if k.lower() not in _GENERIC_KEYS] or list(path[:1]) or [what]
        name = " / ".join(human(k) for k in keys)
        out.append(Observation(test=name, result=text, test_id=lex.resolve_test(name)))
    return out


# --- ages and demographics ------------------------------------------------------------------------------

_AGE_UNIT = re.compile(
    r"^(\d+(?:\.\d+)?)\s*-?\s*(years?|yrs?|y|yo|months?|mos?|weeks?|wks?|days?|d)?(?:[-\s]*old)?$", re.IGNORECASE
)
_AGE_IN_TEXT = re.compile(
    r"(\d+(?:\.\d+)?)[-\s]*(year|yr|month|week|day)s?[-\s]*old|(\d+)[-\s]*(year|yr|month|week|day)s?\b", re.IGNORECASE
)
_NEWBORN = re.compile(
    r"\b(newborn|neonate|neonatal|new-born)\b|\b(?:delivered|born)\s+(?:at\s+(?:term|\d+\s+weeks)|"
    r"preterm|prematurely|vaginally|by\s+(?:cesarean|c-section))",
    re.IGNORECASE,
)
AGE_FORMS = (
    "a number of years, or text like '22 years', '21 years old', '6 months', '8-month-old', 'newborn', or a word: "
    "newborn, infant, baby, toddler, child, teen, teenager, adolescent, young adult, middle-aged, elderly"
)
# ages in words, as representative whole years; the word itself is kept in the description, and the patient
# says it ("I'm an elderly man."), never the number (`rewrite.age_phrase`)
AGE_WORDS = {
    "newborn": 0,
    "neonate": 0,
    "infant": 0,
    "baby": 0,
    "toddler": 2,
    "child": 8,
    "teen": 15,
    "teenager": 15,
    "teenage": 15,
    "adolescent": 15,
    "young adult": 25,
    "adult": 40,
    "middle-aged": 50,
    "middle aged": 50,
    "elderly": 75,
    "older adult": 75,
    "geriatric": 75,
}
_AGE_WORD = re.compile(
    r"^(?:an?\s+)?("
    + "|".join(sorted(map(re.escape, AGE_WORDS), key=len, reverse=True))
    + r")(?:\s+(?:patient|person|man|woman|male|female))?$",
    re.IGNORECASE,
)


def _years(number: str, unit: str | None) -> int:
    n = float(number)
    u = (unit or "y").lower()
    if u.startswith("m"):
        return int(n // 12)
    if u.startswith("w"):
        return int(n // 52)
    if u.startswith("d"):
        return int(n // 365)
    return int(n)


def parse_age(value: Any) -> int | None:
    """Age in whole years from a number or a string ("22 years", "21 years old", "6 months", "8-month-old",
    "Newborn"); None for an empty value. Anything else is a ValueError naming the accepted forms."""
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise ValueError(f"age must be a number or a text age ({AGE_FORMS}), got {value!r}")
    if isinstance(value, (int, float)):
        age = int(value)
    else:
        s = str(value).strip()
        if not s:
            return None
        m = _AGE_UNIT.match(s)
        w = _AGE_WORD.match(s)
        if m:
            age = _years(m.group(1), m.group(2))
        elif w:
            age = AGE_WORDS[w.group(1).lower()]
        elif _NEWBORN.search(s):
            age = 0
        else:
            m2 = _AGE_IN_TEXT.search(s)
            if not m2:
                raise ValueError(f"age must be a number or a text age ({AGE_FORMS}), got {value!r}")
            age = _years(m2.group(1) or m2.group(3), m2.group(2) or m2.group(4))
    if not 0 <= age <= 120:
        raise ValueError(f"age {age} outside 0..120")
    return age


_FEMALE = re.compile(r"\b(female|woman|girl|f|lady|mother|pregnant|primigravida)\b", re.IGNORECASE)
_MALE = re.compile(r"\b(male|man|boy|m|gentleman)\b", re.IGNORECASE)


def parse_demographics(text: str, *, age: Any = None, sex: Any = None) -> Demographics:
    """ "35-year-old female" -> age 35, female; "8-month-old boy" -> age 0, male; "Newborn, female" -> 0.
    `age` / `sex`, when given, override what the text says (ages as in `parse_age`)."""
    t = (text or "").strip()
    a = parse_age(age) if age is not None and str(age).strip() else None
    if a is None:
        m = _AGE_IN_TEXT.search(t)
        if m:
            a = _years(m.group(1) or m.group(3), m.group(2) or m.group(4))
        elif _NEWBORN.search(t):
            a = 0
    if a is not None and not 0 <= a <= 120:
        raise ValueError(f"age {a} outside 0..120")
    s_raw = str(sex).strip() if sex is not None and str(sex).strip() else t
    f, m_ = _FEMALE.search(s_raw), _MALE.search(s_raw)  # the first word wins: "a boy ... his mother" is male
    sx = None if not (f or m_) else "female" if f and (not m_ or f.start() < m_.start()) else "male"
    return Demographics(age=a, sex=sx, description=t)  # type: ignore[arg-type]


_PRESENTS = re.compile(
    r"^.*?\b(presents?|presented|comes?|came|is brought|was brought|brings?|brought|complains?|complained|"
    r"is seen|was seen|visits?|visited|(?:is|was)\s+(?:referred|admitted|evaluated|transferred))\b[^,]*?"
    r"\b(with|for|because\s+of|because|due to|of)\s+",
    re.IGNORECASE,
)


# "(for) the third time in 4 months presenting with": the visit, not the complaint
_REPEAT_VISIT = re.compile(
    r"^(?:for\s+)?(?:the|a|her|his|their)\s+(?:first|second|third|fourth|fifth|sixth|\d+(?:st|nd|rd|th)|"
    r"same|next|last|latest|another|\w+\s+consecutive)\s+(?:time|visit|occasion|episode)\b"
    r"[^,]*?\b(?:presenting\s+|complaining\s+)?(?:with|because of|for)\s+(?=\S)",
    re.IGNORECASE,
)


_BROUGHT_AFTER = re.compile(
    r"^.*?\b(?:is|was)\s+brought\s+(?:in|into|to)\b[^,]*?\s+(after|following)\s+", re.IGNORECASE
)


def chief_complaint(first_sentence: str) -> str:
    """ "A 55-year-old woman presented to the clinic with a 1-year history of skin darkening." ->
    "A 1-year history of skin darkening"; the sentence itself when it has no "presents with". A repeat
    visit's words ("... for the third time in 4 months presenting with X") are not the complaint: X is."""
    m = re.search(
        r",\s*accompanied\s+by\s+(his|her|their)\s+(\w+),\s*who\s+(.+?)\.?[”\"]?$",
        first_sentence.strip(),
        re.IGNORECASE,
    )
    if (
        m
    ):  # "... presents, accompanied by his wife, who requests treatment for his pessimism": her words are the complaint
        return f"{m.group(1).capitalize()} {m.group(2)} {m.group(3)}".rstrip(".")
    m = _BROUGHT_AFTER.match(first_sentence.strip())
    if m and not _PRESENTS.search(first_sentence.strip()[: m.start(1)]):
        # "A 35-year-old is brought into the emergency room after a bicycle accident": the event is the complaint
        return f"Brought in {m.group(1).lower()} " + first_sentence.strip()[m.end() :].rstrip(".").strip()
    cc = _PRESENTS.sub("", first_sentence.strip()).strip().rstrip(".").strip()
    cc = _REPEAT_VISIT.sub("", cc) if _PRESENTS.search(first_sentence.strip()) else cc
    # "comes to the physician with her mother because of X": the companion is not the complaint
    cc = (
        re.sub(
            r"^(?:his|her|their)\s+(?:step-?)?(?:mother|father|parents?|wife|husband|partner|family|friend|daughter|son|"
            r"caregiver|guardian)\s+(?:because\s+of|because|for|with|due\s+to)\s+",
            "",
            cc,
            flags=re.IGNORECASE,
        )
        or cc
    )
    # "for evaluation of fine wrinkles", "evaluation and management of a rash": the complaint is what follows
    cc = (
        re.sub(
            r"^(?:an?\s+|the\s+)?(?:(?:further\s+)?(?:evaluation|assessment|management|treatment|work-?up|investigation)"
            r"(?:\s+and\s+(?:evaluation|assessment|management|treatment))?)\s+of\s+(?:(?:his|her|their|a|an)\s+)?(?=\S)",
            lambda m: "a " if re.match(r"an?\b", cc, re.IGNORECASE) else "",
            cc,
            flags=re.IGNORECASE,
        )
        or cc
    )
    cc = re.sub(r"^(?:for\s+)?the\s+first\s+time\s+since\s+", "a visit, the first since ", cc, flags=re.IGNORECASE)
    # "brought by his parents because they are concerned about his behavior": the parents' concern is the complaint
    cc = re.sub(r"^they\s+(?:are|were)\s+(concerned|worried)\b", r"His parents are \1", cc, flags=re.IGNORECASE)
    cc = re.sub(
        r",?\s*\(?\b(?:as\s+shown|shown|as\s+seen)(?:\s+(?:here|below|above|in\s+the\s+(?:image|photograph|photo|"
        r"figure|picture)))?\)?\s*$",
        "",
        cc,
        flags=re.IGNORECASE,
    )  # the image is not the patient's to describe
    cc = cc or first_sentence.strip().rstrip(".")
    return cc[:1].upper() + cc[1:]


def link_diagnosis(name: str) -> str | None:
    return default_table().disease_id_for(name)


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
