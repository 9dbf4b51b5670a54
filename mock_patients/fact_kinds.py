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
_VITAL = re.compile(
    r"\b(temperature|pulse|heart\s+rate|blood\s+pressure|respirations|respiratory\s+rate|"
    r"oxygen\s+saturation|o2\s+sat|spo2|bmi|body\s+mass\s+index|weight\s+is|height\s+is)\b",
    re.IGNORECASE,
)
# analyte -> panel, so "REQUEST TEST: arterial blood gas" and "REQUEST TEST: Pco2" both find the value
_PANELS = (
    ("Arterial blood gas", r"pco2|po2|ph\b|hco3|bicarbonate|base\s+excess|lactate|arterial\s+blood\s+gas|abg"),
    (
        "Complete blood count",
        r"hemoglobin|haemoglobin|hematocrit|haematocrit|hb\b|hgb|wbc|white\s+(?:blood\s+)?cell|"
        r"leukocyte|platelet|mcv|mch|rdw|reticulocyte|neutrophil|lymphocyte|eosinophil",
    ),
    (
        "Serum chemistry",
        r"sodium|potassium|chloride|bun\b|urea|creatinine|glucose|calcium|magnesium|phosph|na\+|k\+|"
        r"cl-|ca2\+|osmolality",
    ),
    ("Liver function tests", r"ast\b|alt\b|bilirubin|alkaline\s+phosphatase|albumin|ggt|inr\b|prothrombin"),
    ("Urinalysis", r"urin|specific\s+gravity|nitrite|ketones?\b"),
    ("Thyroid function tests", r"tsh|thyroxine|free\s+t4|t3\b"),
    ("Inflammatory markers", r"esr|erythrocyte\s+sedimentation|crp|c-reactive"),
    ("Cardiac markers", r"troponin|ck-mb|bnp"),
    ("Lipid panel", r"cholesterol|ldl|hdl|triglyceride"),
)
_ANALYTE_NAME = re.compile(
    r"(?:^|[\s'’(])([A-Za-z][A-Za-z0-9+\-]*(?:\s+[a-z][a-z0-9+\-]*){0,2})\s*(?:level\s+)?(?:is|was|of|:)\s*[\d<>]",
    re.IGNORECASE,
)


def measurement(text: str) -> tuple[str, str] | None:
    """("exam" | "test", test name) when the statement is a measured value, else None."""
    t = text.strip()
    vital = _VITAL.search(t)
    lab_unit = _LAB_UNIT.search(t)
    panel = next((name for name, pat in _PANELS if re.search(r"\b(?:" + pat + ")", t, re.IGNORECASE)), None)
    if (
        vital
        and (lab_unit or re.search(r"\d", t))
        and not (panel and lab_unit and not re.search(r"°|/min|mm\s*hg|kg/m", t, re.IGNORECASE))
    ):
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
    r"\b(medications?|medicines?|meds|prescriptions?|prescribed|(?:taking|takes|took)(?!\s+(?:a\s+leave|leave|time|care|place|part|"
    r"a\s+break|over|off|a\s+trip|a\s+walk|a\s+shower|a\s+bath))|regimen|inhaler|tablets?|pills?|"
    r"supplements?|dose|doses|mg\s+(?:daily|twice|once)|"
    r"\w{3,}(?:pril|sartan|olol|statin|prazole|azole|cillin|mycin|cycline|floxacin|dipine|formin|gliptin|mab|nib|"
    r"tidine|semide|thiazide|oxetine|aline|triptan|profen|codone|pam|lam|parin|xaban|gatran|olone|sone|asone))\b",
    re.IGNORECASE,
)
_MEDICATION_ITEM = re.compile(
    r"^(?:(?:the\s+)?patient\s+|he\s+|she\s+)?(?:is\s+)?(?:not\s+on|no\s+(?:regular\s+|current\s+)?"
    r"medications?|takes|taking|on\s+\w+|currently\s+(?:on|taking)|medications?\b|current\s+medications?)",
    re.IGNORECASE,
)
_NOT_MEDICATION = re.compile(r"\b(diagnosed|history of|allerg|family|mother|father|sister|brother)\b", re.IGNORECASE)
_ALLERGY = re.compile(r"\b(allerg\w*|nkda|anaphyla\w*|hypersensitivity)\b", re.IGNORECASE)
_FAMILY = re.compile(
    r"\b((?:familial|family)\s+history|in\s+the\s+family|runs?\s+in\s+(?:the|his|her|my)\s+family|hereditary|"
    # (not "son" / "daughter": in a child's record "her son" is the patient)
    r"(?:mother|father|sister|brother|sibling|parent|grandmother|grandfather|aunt|uncle|cousin)s?['’]?s?\s+"
    r"(?:\w+\s+){0,3}?(?:was|were|is|has|had|died|diagnosed|treated|suffers?|suffered|developed|experienced|experiences)\b"
    r"[^.]*(?:diagnos|cancer|disease|died|history|treated|syndrome|diabetes|hypertension|stroke|attack|disorder|tumou?r|"
    r"infection|condition|illness|arthritis|asthma|allerg|migraine|depress|anxiety|seizure|epilep|thyroid|similar|same|"
    r"also|problem|thinning|rash|lupus|psoriasis|eczema|anemia|leukemia|lymphoma|malignan|carcinoma|tumou?r|at\s+\d+))",
    re.IGNORECASE,
)
_SOCIAL = re.compile(
    r"\b(smok\w*|cigarettes?|tobacco|vap(?:e|es|ing)|alcohol\w*|drinks?\b|drinking|beers?|wine|spirits|illicit|"
    r"recreational|cocaine|heroin|marijuana|cannabis|drug\s+use|intravenous\s+drug|works?\s+as|employed|occupation|"
    r"retired|student|unemployed|lives?\s+(?:with|alone|in)|married|divorced|sexually\s+active|sexual\s+partners?|"
    r"travel\w*|diet|exercise\w*)",
    re.IGNORECASE,
)
_FREE = frozenset({"hpi", "ros", "other", "pmh", "social"})


def topic_category(text: str, category: str) -> str:
    """The category a free-text fact belongs under, for the question topics (see `lexicon.TOPIC_CATEGORIES`).
    Only free-text categories move (hpi, ros, other, and pmh / social items that are really another topic);
    structured symptoms, exams and tests keep theirs."""
    if category not in _FREE:
        return category
    if _FAMILY.search(text) and not re.match(
        r"(?:the\s+)?(?:first|only|second|third|youngest|oldest)\s+(?:child|son|daughter)\b"
        r"(?![^.]*\b(?:history|similar|illness|disease))",
        text,
        re.IGNORECASE,
    ):
        return "family"
    if _ALLERGY.search(text):
        return "allergy"
    if category in ("hpi", "ros", "other") and _MEDICATION.search(text) and not _NOT_MEDICATION.search(text):
        return "medication"
    if category == "pmh" and _MEDICATION_ITEM.match(text):  # "Not on any regular medications."
        return "medication"
    if (
        category in ("hpi", "ros", "other")
        and _SOCIAL.search(text)
        and not re.search(r"\b(pain|ache)\b", text, re.IGNORECASE)
    ):
        return "social"
    return category


_LIGHT_USE = re.compile(
    r"\b(socially|social|occasional(?:ly)?|rarely|light|moderate(?:ly)?|a\s+glass|one\s+glass|"
    r"1\s+glass|a\s+beer|one\s+drink|abstain\w*|stopped|quit|no\s+longer|weekends?)\b",
    re.IGNORECASE,
)


def light_use(text: str) -> bool:
    """ "Drinks alcohol socially", "a glass of wine per day": not the table's heavy alcohol use."""
    return bool(_LIGHT_USE.search(text))


# --- what the patient cannot tell: work-up, treatments given, clinician opinions, test results ------------

_TEST_NOUN = (
    r"(?:x-?rays?|radiographs?|ct\b|ct\s+scans?|mri|ultrasound\w*|sonograph\w*|echocardiogra\w*|"
    r"electrocardiogra\w*|ecg|ekg|eeg|emg|biops(?:y|ies)|cultures?|smears?|serolog\w*|electrophoresis|"
    r"scans?|imaging|angiogra\w*|endoscop\w*|colonoscop\w*|bronchoscop\w*|laboratory|labs?\b|blood\s+tests?|"
    r"blood\s+work|urinalysis|skin\s+tests?|patch\s+tests?|tests?|studies|panel|titers?|levels?|histolog\w*|"
    r"patholog\w*|microscop\w*|stain\w*|assays?|screen(?:ing)?|pcr|antibod(?:y|ies))"
)
# a result read out of a test: "a CT scan of the lungs showed ...", "found to have 93% HbA on electrophoresis"
_TEST_RESULT = re.compile(
    r"\b" + _TEST_NOUN + r"[^.;]{0,80}?\b(?:showed|shows|revealed|reveals|demonstrated|demonstrates|confirmed|"
    r"confirms|indicated|indicates|was\s+(?:positive|negative|normal|abnormal)|were\s+(?:positive|negative|normal|"
    r"abnormal)|came\s+back|(?:is|are|was|were)\s+within\s+normal\s+limits)\b|"
    r"\b(?:showed|revealed|demonstrated)\b[^.;]{0,80}\bon\s+" + _TEST_NOUN + r"|"
    r"\b(?:is|was|were|are)\s+found\s+to\s+have\b[^.;]{0,80}\b(?:on|by|in)\s+" + _TEST_NOUN + r"|"
    r"\b(?:has\s+)?(?:undergone|underwent|undergoes)\b[^.;]{0,40}\b" + _TEST_NOUN,
    re.IGNORECASE,
)
# an examination finding stated as history: "was found to have a murmur", "the Weber test localizes to the left",
# "When asked to make a tight fist ... could not open them", "absent reflexes"
_EXAM_FINDING = re.compile(
    r"\b(?:is|was|were|are)\s+(?:found|noted|observed|seen)\s+to\s+(?:have|be)\b|^(?:on\s+)?(?:physical\s+)?"
    r"exam(?:ination)?\b|\b(?:weber|rinne|romberg|babinski|phalen|tinel)\b|\bwhen\s+asked\s+to\b|"
    r"\breflex(?:es)?\b|\bwhen\s+words\s+are\s+whispered\b|\bon\s+(?:auscultation|palpation|inspection|percussion)\b|"
    r"\b(?:is|are|was|were)\s+(?:seen|observed|noted|palpated|palpable|heard|auscultated|elicited)\b|\bvital\s+signs\b|\bvitals\b|\bexams?\b|\bexamination\b|\bspindle\s+cells?\b|\bgammopathy\b|\bnot\s+(?:palpable|observed)\b",
    re.IGNORECASE,
)
# what clinicians did or think, and treatment given in the visit: never the patient's to tell
_COURSE = re.compile(
    r"\b(?:is|was|are|were|has\s+been|have\s+been)\s+(?:\w+ly\s+)?(?:started\s+on|begun\s+on|placed\s+on|"
    r"given|administered|transfused|intubated|resuscitated|scheduled|admitted|discharged|transferred|"
    r"treated|managed|prescribed|put\s+on|initiated\s+on|taken\s+to\s+(?:the\s+)?(?:operating|surgery))\b|"
    r"\b(?:blood|urine|serum|samples?|specimens?|cultures?|biops(?:y|ies)|tests?|studies|labs?)\s+(?:is|are|was|were)\s+"
    r"(?:drawn|sent|obtained|collected|taken|ordered|performed|done|pending)\b|"
    r"\b(?:physician|doctor|pediatrician|clinician|surgeon|dermatologist|cardiologist|neurologist|oncologist|"
    r"psychiatrist|team|resident|provider|nurse|practitioner|staff|examiner)s?\s+(?:also\s+)?(?:suspects?|suspected|"
    r"believes?|believed|thinks?|thought|considers?|considered|orders?|ordered|recommends?|recommended|"
    r"decides?|decided|performs?|performed|notes?|noted|observes?|observed|finds?|found|prescribes?|prescribed|"
    r"administers?|administered|starts?|started|diagnos\w+|suggests?|suggested|concludes?|concluded)\b|"
    r"\b(?:is|was)\s+(?:planned|recommended|indicated|advised)\b|\bhad\s+a\s+procedure\b|"
    r"\b(?:took|taken|take)\s+a\s+(?:small\s+)?(?:sample|biopsy|specimen)\b|"
    r"\b(?:is|was|were|are)\s+performed\b|^(?:treatment|management|therapy)\s+(?:with|was|is|included)\b|"
    r"\b(?:corticosteroid|steroid|antibiotic|topical)\s+(?:treatment|therapy)\s+(?:failed|was|is)\b",
    re.IGNORECASE,
)
# the patient (or a parent) taking a medicine is history, not a clinician's action
_SELF_MEDICATION = re.compile(
    r"\b(?:started|stopped|began|discontinued)\s+taking\b|\btakes?\b|\btaking\b", re.IGNORECASE
)


def clinical_kind(text: str) -> str | None:
    """ "test" for a test result told as history ("A CT scan of the lungs showed a nodule"), "exam" for an
    examination finding ("was found to have a murmur", "Absent reflexes"), "record" for work-up, treatment
    given in the visit and clinicians' opinions ("is started on IV fluids", "The pediatrician suspects ...");
    None for what the patient may tell."""
    t = text.strip()
    if _TEST_RESULT.search(t):
        return "test"
    if _COURSE.search(t) and not _SELF_MEDICATION.search(t):
        return "record"
    if _EXAM_FINDING.search(t):
        return "exam"
    return None


_DEMOGRAPHIC_FACT = re.compile(
    r"^(?:the\s+)?(?:patient|pt|child|baby|infant)?\s*(?:is\s+)?(?:an?\s+)?(?:(?:healthy|previously\s+healthy|otherwise\s+"
    r"healthy)\s+)?(?:\d+[-\s](?:year|month|week|day)s?[-\s]old\s*)?(?:(?:white|black|caucasian|african[-\s]american|"
    r"hispanic|asian|latina|latino|healthy|pregnant|obese|thin|nulliparous|primigravid|multiparous)\s+){0,2}"
    r"(?:male|female|man|woman|boy|girl|infant|newborn|"
    r"child|baby|teen(?:ager)?|adolescent|gentleman|lady)?\.?$",
    re.IGNORECASE,
)


def demographic_statement(text: str) -> bool:
    """ "The patient is a healthy 45-year-old woman.", "Patient is male.": who the patient is, not a finding."""
    t = text.strip().rstrip(".").strip()
    return (
        bool(t)
        and bool(re.search(r"\d+[-\s](?:year|month|week|day)s?[-\s]old|\b(?:male|female)\b", t, re.IGNORECASE))
        and bool(_DEMOGRAPHIC_FACT.match(t))
    )


# what the record does not know is not a fact: "No mention of smoking", "Family history is not available"
_NO_INFORMATION = re.compile(
    r"^(?:there\s+is\s+)?no\s+(?:mention|information|data|details|record|documentation)\s+(?:of|about|on|regarding)\b|"
    r"\b(?:is|are|was|were)\s+(?:not\s+(?:available|provided|known|documented|mentioned|specified|reported|given)|"
    r"unknown|unavailable)\b|^not\s+(?:applicable|available|provided|mentioned|specified)\b|"
    r"\b(?:not\s+applicable)\b|\b(?:may|might|could)\s+(?:indicate|include|reveal|show)\b|"
    r"\b(?:playing|play)\s+the\s+role\b|^(?:(?:a|the|her|his|their)\s+)?(?:mother|father|parents?)\s+(?:brings?|brought)\b|^(?:an?\s+|the\s+)?[\w\s-]{0,40}?\bbrings?\s+(?:his|her|their)\s+[\w\s-]{0,30}?\bto\s+the\b|\brole\s+of\s+the\s+(?:parent|patient)\b|"
    r"\b(?:haven'?t|have\s+not|hasn'?t|has\s+not)\s+been\s+(?:informed|told)\b|"
    r"\b(?:does|do|did)\s*(?:not|n't)\s+provide\b|\bno\s+provided\s+information\b|\bnot\s+provided\b|"
    # a clinician's summary of the review of systems: "ROS negative except for the rash", "Unremarkable."
    r"^(?:all\s+)?(?:other\s+)?(?:the\s+)?(?:patient's\s+)?(?:review\s+of\s+systems?|systems?\s+review\w*|systemic\s+review|ros)\b|"
    r"^(?:negative|unremarkable)\b(?:\s+(?:except|apart)\b.*)?$|"
    # a fragment left from a cut sentence: "The past 3 hours.", "The boy."
    r"^(?:the\s+)?(?:past|last)\s+(?:\d+|few|several)\s+\w+\.?$|^(?:the\s+)?(?:boy|girl|man|woman|patient|child|infant)\.?$",
    re.IGNORECASE,
)


def no_information(text: str) -> bool:
    """A statement that records missing information or an instruction, not a finding."""
    return bool(_NO_INFORMATION.search(text.strip()))
