"""What kind of fact a free-text statement is: a measurement (a lab value or a vital sign, which only a test
or an exam reveals) or a history item with its own question topic (medications, allergies, family history,
social history).

* `measurement(text)` -> ("test" | "exam", test name) for "Patient's Pco2 is 16 mm Hg" (-> test "Arterial blood
  gas / Pco2") or "Her temperature is 36.8°C, pulse is 99/min" (-> exam "Vital signs"); None otherwise. A weight
  loss in kg or a lesion in cm is not a measurement: the patient knows it.
* `topic_category(text, category)` -> the category a free-text fact belongs under ("He takes no medications"
  -> "medication", "Her sister was diagnosed with melanoma" -> "family", "Drinks alcohol socially" -> "social").
"""

from __future__ import annotations

import re

_LAB_UNIT = re.compile(
    r"\d\s*(?:mm\s*hg|mmhg|mg/dl|mg/l|g/dl|g/l|meq/l|mmol/l|µmol/l|umol/l|μmol/l|u/l|iu/l|iu/ml|miu/ml|ng/ml|ng/l|ng/dl|"
    r"pg/ml|µg/dl|ug/dl|μg/dl|mcg/dl|µg/l|mosm/kg|/mm3|/mm\^3|/µl|/ul|/μl|×\s*10|x\s*10\^|cells/|fl\b|"
    r"mm/h|sec\b|seconds\b|bpm|beats/min|breaths/min|/min\b|°\s*[cf]\b|deg\s*[cf]\b|kg/m2|kg/m\^2|kg/m²)",
    re.IGNORECASE,
)
_VITAL = re.compile(r"\b(temperature|pulse|heart\s+rate|blood\s+pressure|respirations|respiratory\s+rate|"
                    r"oxygen\s+saturation|o2\s+sat|spo2|bmi|body\s+mass\s+index|weight\s+is|height\s+is)\b", re.IGNORECASE)
# analyte -> panel, so "REQUEST TEST: arterial blood gas" and "REQUEST TEST: Pco2" both find the value
_PANELS = (
    ("Arterial blood gas", r"pco2|po2|ph\b|hco3|bicarbonate|base\s+excess|lactate|arterial\s+blood\s+gas|abg"),
    ("Complete blood count", r"hemoglobin|haemoglobin|hematocrit|haematocrit|hb\b|hgb|wbc|white\s+(?:blood\s+)?cell|"
                             r"leukocyte|platelet|mcv|mch|rdw|reticulocyte|neutrophil|lymphocyte|eosinophil"),
    ("Serum chemistry", r"sodium|potassium|chloride|bun\b|urea|creatinine|glucose|calcium|magnesium|phosph|na\+|k\+|"
                        r"cl-|ca2\+|osmolality"),
    ("Liver function tests", r"ast\b|alt\b|bilirubin|alkaline\s+phosphatase|albumin|ggt|inr\b|prothrombin"),
    ("Urinalysis", r"urin|specific\s+gravity|nitrite|ketones?\b"),
    ("Thyroid function tests", r"tsh|thyroxine|free\s+t4|t3\b"),
    ("Inflammatory markers", r"esr|erythrocyte\s+sedimentation|crp|c-reactive"),
    ("Cardiac markers", r"troponin|ck-mb|bnp"),
    ("Lipid panel", r"cholesterol|ldl|hdl|triglyceride"),
)
_ANALYTE_NAME = re.compile(r"(?:^|[\s'’(])([A-Za-z][A-Za-z0-9+\-]*(?:\s+[a-z][a-z0-9+\-]*){0,2})\s*(?:level\s+)?(?:is|was|of|:)\s*[\d<>]",
                           re.IGNORECASE)


def measurement(text: str) -> tuple[str, str] | None:
    """("exam" | "test", test name) when the statement is a measured value, else None."""
    t = text.strip()
    vital = _VITAL.search(t)
    lab_unit = _LAB_UNIT.search(t)
    panel = next((name for name, pat in _PANELS if re.search(r"\b(?:" + pat + ")", t, re.IGNORECASE)), None)
    if vital and (lab_unit or re.search(r"\d", t)) and not (panel and lab_unit and not re.search(r"°|/min|mm\s*hg|kg/m", t, re.IGNORECASE)):
        return "exam", "Vital signs"
    if panel and re.search(r"\d", t) and (lab_unit or re.search(r"\d\s*%|\b(?:is|of|was)\s+[\d.,]+\b", t)):
        t2 = re.sub(r"^(?:the\s+)?(?:patient|pt|his|her|their)(?:['’]s)?\s+(?:serum\s+)?", "", t, flags=re.IGNORECASE)
        m = _ANALYTE_NAME.search(" " + t2)
        analyte = re.sub(r"\s+level$", "", m.group(1).strip(), flags=re.IGNORECASE) if m else ""
        return "test", f"{panel} / {analyte}" if analyte and analyte.lower() != panel.lower() else panel
    if lab_unit and not re.search(r"°|/min|bpm|breaths", t, re.IGNORECASE):
        return "test", "Laboratory studies"
    return None


_MEDICATION = re.compile(
    r"\b(medications?|medicines?|meds|prescriptions?|prescribed|taking|takes|took|regimen|inhaler|tablets?|pills?|"
    r"supplements?|dose|doses|mg\s+(?:daily|twice|once)|"
    r"\w+(?:pril|sartan|olol|statin|prazole|azole|cillin|mycin|cycline|floxacin|dipine|formin|gliptin|mab|nib|"
    r"tidine|semide|thiazide|oxetine|aline|triptan|profen|codone|pam|lam|parin|xaban|gatran|olone|sone|asone))\b",
    re.IGNORECASE)
_MEDICATION_ITEM = re.compile(r"^(?:(?:the\s+)?patient\s+|he\s+|she\s+)?(?:is\s+)?(?:not\s+on|no\s+(?:regular\s+|current\s+)?"
                              r"medications?|takes|taking|on\s+\w+|currently\s+(?:on|taking)|medications?\b|current\s+medications?)",
                              re.IGNORECASE)
_NOT_MEDICATION = re.compile(r"\b(diagnosed|history of|allerg|family|mother|father|sister|brother)\b", re.IGNORECASE)
_ALLERGY = re.compile(r"\b(allerg\w*|nkda|anaphyla\w*|hypersensitivity)\b", re.IGNORECASE)
_FAMILY = re.compile(
    r"\b(family\s+history|in\s+the\s+family|runs?\s+in\s+(?:the|his|her|my)\s+family|hereditary|"
    r"(?:mother|father|sister|brother|sibling|parent|grandmother|grandfather|aunt|uncle|cousin|son|daughter)s?['’]?s?\s+"
    r"(?:\w+\s+){0,3}?(?:was|were|is|has|had|died|diagnosed|treated|suffers?|developed)\b[^.]*"
    r"(?:diagnos|cancer|disease|died|history|treated|syndrome|diabetes|hypertension|stroke|attack|disorder|tumou?r|"
    r"infection|condition|illness))", re.IGNORECASE)
_SOCIAL = re.compile(
    r"\b(smok\w*|cigarettes?|tobacco|vap(?:e|es|ing)|alcohol\w*|drinks?\b|drinking|beers?|wine|spirits|illicit|"
    r"recreational|cocaine|heroin|marijuana|cannabis|drug\s+use|intravenous\s+drug|works?\s+as|employed|occupation|"
    r"retired|student|unemployed|lives?\s+(?:with|alone|in)|married|divorced|sexually\s+active|sexual\s+partners?|"
    r"travel\w*|diet|exercise\w*)", re.IGNORECASE)
_FREE = frozenset({"hpi", "ros", "other", "pmh", "social"})


def topic_category(text: str, category: str) -> str:
    """The category a free-text fact belongs under, for the question topics (see `lexicon.TOPIC_CATEGORIES`).
    Only free-text categories move (hpi, ros, other, and pmh / social items that are really another topic);
    structured symptoms, exams and tests keep theirs."""
    if category not in _FREE:
        return category
    if _FAMILY.search(text):
        return "family"
    if _ALLERGY.search(text):
        return "allergy"
    if category in ("hpi", "ros", "other") and _MEDICATION.search(text) and not _NOT_MEDICATION.search(text):
        return "medication"
    if category == "pmh" and _MEDICATION_ITEM.match(text):  # "Not on any regular medications."
        return "medication"
    if category in ("hpi", "ros", "other") and _SOCIAL.search(text) and not re.search(r"\b(pain|ache)\b", text, re.IGNORECASE):
        return "social"
    return category


_LIGHT_USE = re.compile(r"\b(socially|social|occasional(?:ly)?|rarely|light|moderate(?:ly)?|a\s+glass|one\s+glass|"
                        r"1\s+glass|a\s+beer|one\s+drink|abstain\w*|stopped|quit|no\s+longer|weekends?)\b", re.IGNORECASE)


def light_use(text: str) -> bool:
    """ "Drinks alcohol socially", "a glass of wine per day": not the table's heavy alcohol use."""
    return bool(_LIGHT_USE.search(text))
