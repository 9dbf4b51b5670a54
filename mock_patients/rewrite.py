"""Clinical statements in the patient's voice, and how a patient names themself.

`to_first_person(text)` rewrites one third-person statement from a case record ("The man denied having a
fever", "A 22-year-old man presented with complaints of painful lesions on his penis", "Weakness in upper
limbs") into a grammatical first-person sentence ("I haven't had a fever.", "I have painful lesions on my
penis.", "I have weakness in my upper limbs."). It is a rule set, not a parser: it handles the shapes the
public case formats use (a person subject + verb, a possessive subject, a bare noun phrase, a verb phrase
without subject, a negated phrase) and keeps the rest of the sentence, with pronouns turned around.

`person_noun(age, sex)` / `self_description(demographics)` pick the words by age: newborn, baby, boy or girl,
man or woman ("I'm an 8-month-old baby boy.", "I'm a 5-year-old girl.").
"""

from __future__ import annotations

import re

from mock_patients.polarity import POSSESSIVE_SUBJECT, SUBJECT

# --- how a patient names themself ---------------------------------------------------------------------


def person_noun(age: int | None, sex: str | None, description: str = "") -> str:
    """ "woman", "man", "girl", "boy", "baby girl", "newborn boy", "child", "person" by age and sex."""
    d = description.lower()
    female, male = sex == "female", sex == "male"
    if re.search(r"\b(newborn|neonate)\b", d) or (age == 0 and re.search(r"\d+[-\s]*(day|week)s?[-\s]old", d)):
        return "newborn girl" if female else "newborn boy" if male else "newborn baby"
    if age is not None and age < 1:
        return "baby girl" if female else "baby boy" if male else "baby"
    if age is not None and age < 18:
        return "girl" if female else "boy" if male else "child"
    return "woman" if female else "man" if male else "person"


def age_phrase(age: int | None, description: str = "") -> str:
    """ "35-year-old", "8-month-old", "" (newborns and unknown ages)."""
    d = description.lower()
    if re.search(r"\b(newborn|neonate)\b", d):
        return ""
    word = _age_word(d)
    if word is not None:
        return word
    m = re.search(r"(\d+)[-\s]*(year|month|week|day)s?[-\s]*old", d)
    if m and (age is None or age == 0 or m.group(2) == "year"):
        return f"{m.group(1)}-{m.group(2)}-old"
    return f"{age}-year-old" if age is not None else ""


def _age_word(d: str) -> str | None:
    """ "elderly" / "teenage" / "" when a description gives the age in words and no number, else None."""
    if re.search(r"\d+[-\s]*(?:year|month|week|day|yr)s?[-\s]*old|\bage[d]?\s+\d", d):
        return None  # a number age wins ("for 2 days" is not an age)
    if re.search(r"\b(?:elderly|geriatric|older\s+adult)\b", d):
        return "elderly"
    if re.search(r"\b(?:teen|teenage|teenager|adolescent)\b", d):
        return "teenage"
    if re.search(r"\b(?:toddler|infant|baby|child|middle[-\s]aged|young\s+adult)\b", d):
        return ""
    return None


def _article(phrase: str) -> str:
    if re.match(r"[FHLMNRSX](?:[A-Z]|-)", phrase):  # "an MRI", "an X-ray" read letter by letter
        return "an"
    return "an" if re.match(r"(?:[aeio]|8|11-|18-|u(?!ni|s))", phrase, re.IGNORECASE) else "a"


def self_description(age: int | None, sex: str | None, description: str = "") -> str:
    """ "I'm a 35-year-old woman.", "I'm an 8-month-old baby boy.", "I'm a newborn girl."."""
    noun = person_noun(age, sex, description)
    phrase = " ".join(p for p in (age_phrase(age, description), noun) if p)
    return f"I'm {_article(phrase)} {phrase}."


def age_sentence(age: int, description: str = "") -> str:
    """ "I'm 35 years old." or, for babies, "I'm 8 months old." / "I'm a newborn."."""
    ap = age_phrase(age, description)
    word = _age_word(description.lower())
    if word is not None:  # an age given in words is said in words
        return {"elderly": "I'm elderly.", "teenage": "I'm a teenager."}.get(word) or (
            "I'm a baby."
            if age < 1
            else "I'm a young child."
            if age < 5
            else "I'm a child."
            if age < 13
            else "I'm an adult."
        )
    if not ap:
        return "I'm a newborn." if age == 0 else f"I'm {age} years old."
    n, unit, _ = ap.split("-")
    return f"I'm {n} {unit}{'' if n == '1' else 's'} old."


def sex_sentence(age: int | None, sex: str, description: str = "") -> str:
    noun = person_noun(age, sex, description)
    return f"I'm {_article(noun)} {noun}."


# --- first person --------------------------------------------------------------------------------------

_BODY = (
    r"(?:limbs?|extremit(?:y|ies)|hair|skin|scalp|penis|groin|scrotum|chest|abdomen|belly|stomach|back|neck|"
    r"face|hands?|foot|feet|toes?|fingers?|fingernails?|nails?|arms?|legs?|knees?|hips?|shoulders?|elbows?|"
    r"ankles?|wrists?|eyes?|eyelids?|ears?|mouth|lips?|tongue|throat|nose|cheeks?|forehead|jaw|breasts?|"
    r"shins?|calf|calves|thighs?|buttocks?|genitals|vagina|vulva|rectum|head|body|trunk|joints?|muscles?|"
    r"flank|side|teeth|tooth|gums?|palms?|soles?|heels?|spine|pelvis|armpits?|axilla|nipples?)"
)
_BODY_PREP = re.compile(
    r"\b(in|on|of|over|around|to|from|behind|under|at|across|near|along|into|between)\s+(?:the\s+)?(both\s+)?"
    r"((?:(?:right|left|upper|lower|inner|outer|front|middle|index|ring|little|big|distal|proximal|medial|"
    r"lateral|bilateral|ventral|dorsal)\s+)*)(" + _BODY + r")\b"
    r"(?!\s+(?:of\b|loss\b|cancer|lesions?|conditions?|diseases?|infections?|tumou?rs?|tests?|biops(?:y|ies)|exam(?:ination)?s?|"
    r"changes|care|type|rash))",
    re.IGNORECASE,
)
_ADJ_BODY = re.compile(
    r"^((?:[a-z]+ed|swollen|red|painful|sore|stiff|tender|itchy|numb|weak|cold|pale|dry)"
    r"(?:,?\s+(?:and\s+)?[a-z]+)?)\s+(" + _BODY + r")$",
    re.IGNORECASE,
)
_DURATION = re.compile(
    r"\b(?:for\s+(?:over\s+|more\s+than\s+|about\s+|almost\s+)?(?:the\s+)?(?:past\s+|last\s+)?(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|"
    r"eleven|twelve|few|several|many|hour|day|week|"
    r"month|year|night|morning)\b|"
    r"since\b|over\s+the\s+(?:past|last)\b|\d+\s+(?:days?|weeks?|months?|years?)\s+ago)",
    re.IGNORECASE,
)
_COUNT_NOUN = re.compile(
    r"^(?:[a-z-]+,?\s+){0,3}?(?:rash|cough|fever|headache|lump|mass|lesion|murmur|ulcer|wound|"
    r"sore|bruise|tremor|nosebleed|infection|seizure|blister|spot|cut|fracture|swelling|"
    r"discharge|limp)\b",
    re.IGNORECASE,
)
_DETERMINER = re.compile(
    r"^(?:a|an|the|my|some|any|no|several|multiple|many|few|two|three|this|these|those|there|it|its|that|\d+)\b",
    re.IGNORECASE,
)
_IRREGULAR_3RD = {"has": "have", "does": "do", "is": "am", "goes": "go", "was": "was"}
_VERB_WORDS = (
    "shows displays exhibits expresses demonstrates "
    "smokes drinks works lives uses takes feels eats exercises enjoys plays attends runs walks sleeps wears "
    "travels spends goes gets keeps needs wants likes consumes stays studies vapes chews injects snorts owns "
    "cares cites states says mentions admits believes thinks appears looks seems notices reports describes "
    "complains endorses experiences presents returns regularly occasionally"
).split()
_PAST_VERBS = (
    "regained stopped quit started began lost gained noticed developed took used returned traveled travelled "
    "underwent received felt fell visited moved joined went came ate drank tried had was woke fainted "
    "collapsed injured hurt broke vomited reported denied recently initially"
).split()
_PERSON_NP = re.compile(
    r"^(?:(?:former|ex|non|retired|current|heavy|light|social|occasional|daily|lifetime|"
    r"graduate|college|high\s+school)[-\s]+)*(?:[a-z]+\s+){0,2}?(?:[a-z]+(?:er|or|ist|ian)|"
    # -ent/-ant words are mostly adjectives ("intermittent, sharp pain"): only these nouns
    r"student|resident|immigrant|migrant|assistant|consultant|attendant|accountant|servant|tenant)\b",
    re.IGNORECASE,
)
_NOT_PERSON = re.compile(
    r"\b(pain|cancer|fever|disorder|discomfort|ulcer|murmur|tumou?r|tremor|weakness|movement|"
    r"treatment|enlargement|impairment|management|event|agent|blister|colou?r|odou?r|pallor|stupor|"
    r"wrist|finger|shoulder|bladder|liver|water|anger|hunger|shiver|other|never|after|later|under|"
    r"over|upper|lower|center|letter|order|number|sister|brother|mother|father|daughter|either|"
    r"neither|whether|rather|further|together|ever|however|her|\w*rior|minor|major|stridor|rigors?|"
    r"error|motor|factor|vapou?r|tender|sober|bitter|paper|powder|fist|mist|twist|moist|assist|"
    r"exist|persist|list|behaviou?r|labou?r|humou?r|vigou?r|rumou?r|flavou?r|favou?r|harbou?r)\b",
    re.IGNORECASE,
)
# what a person is, said as a bare noun ("Student and active in sports", "Newborn, no past medical history")
_ROLE = re.compile(
    r"^((?:(?:former|ex|non|lifetime|retired|current|full-time|part-time|college|university|high\s+school|"
    r"graduate|medical|nursing|law|first-year|healthy|premature|term)[-\s]+)*"
    r"(?:newborn|neonate|infant|toddler|baby|child|teenager|adolescent|student|resident|immigrant|refugee|"
    r"retiree|veteran|widow(?:er)?|vegan|nurse|housewife|homemaker|[a-z]+(?:er|or|ist|ian)))"
    r"(?=$|\s*[,;]|\s+and\b)",
    re.IGNORECASE,
)
_FINITE = re.compile(
    r"\b(is|are|was|were|has|have|had|does|do|did|becomes?|gets?|radiates?|worsens?|worsened|"
    r"improves?|improved|occurs?|occurred|comes|goes|feels|spreads?|started|starts|began|begins|"
    r"lasts?|lasted|happens?|happened|wakes?|include[sd]?|resolved|appeared|developed|persist(?:s|ed)?|"
    r"affects?|affected|extends?|progressed|stabilized|disappeared|enlarged|grew|go|went)\b",
    re.IGNORECASE,
)


def _base_verb(word: str) -> str:
    w = word.lower()
    if w in _IRREGULAR_3RD:
        return _IRREGULAR_3RD[w]
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        return w[:-2]
    return w[:-1] if w.endswith("s") and not w.endswith("ss") else w


# Predicate (subject removed) -> first person; the first matching rule wins.
_PREDICATE = [
    (r"^(?:den(?:ies|ied|y))\s+(?:any\s+)?(?=(?:[\w-]+\s+){0,3}?history\b)", "I don't have any "),
    (r"^(?:den(?:ies|ied|y))\s+(?:having\s+|experiencing\s+)?(?:any\s+)?", "I haven't had "),
    (r"^(?:does|did)\s*(?:not|n't)\s+(?:have|report|complain\s+of|experience)\s+(?:any\s+)?", "I haven't had "),
    (r"^(?:has|have)\s*(?:not|n't)\s+had\s+", "I haven't had "),
    (r"^(?:has|had)\s+no\s+", "I have no "),
    (
        r"^(?:reports?|reported|complains?\s+of|complained\s+of|describes|described|endorses|endorsed|"
        r"experiences|experienced|(?:is|are)\s+experiencing|(?:has|have)\s+been\s+experiencing|(?:has|have)\s+experienced|"
        r"(?:has|have)\s+had)\s+"
        r"(?:experiencing\s+|having\s+)?",
        "I've had ",
    ),
    (
        r"^(?:notes|noted|notices|noticed|reports|reported|says|said|states|stated|mentions|mentioned|believes)\s+that\s+",
        "I've noticed that ",
    ),
    (r"^(?:has\s+never|had\s+never)\s+", "I've never "),
    (r"^never\s+", "I've never "),
    (r"^(?:shares|shared|gives|gave|provides|provided)\s+(?:a\s+)?history\s+of\s+", "I have a history of "),
    (r"^(?:has\s+not|hasn't)\s+", "I haven't "),
    (r"^(?:has|have)\s+been\s+", "I've been "),
    (r"^has\s+", "I have "),
    (r"^had\s+", "I had "),
    (r"^(?:is\s+not|isn't)\s+", "I'm not "),
    (r"^is\s+unable\s+to\s+", "I can't "),
    (r"^is\s+", "I'm "),
    (r"^(?:was|were)\s+", "I was "),
    (r"^(?:does\s+not|doesn't)\s+", "I don't "),
    (r"^(?:did\s+not|didn't)\s+", "I didn't "),
    (r"^(?:cannot|can't|can\s+not)\s+", "I can't "),
    (r"^can\s+", "I can "),
    (r"^will\s+", "I'll "),
    (r"^(?:appears|looks|seems)\s+", "I look "),
]
_INNER = [  # a verb right after "and"/"but" continues the patient's sentence
    (r"\b(and|but)\s+(?:is\s+not|isn't)\s+", r"\1 I'm not "),
    (r"\b(and|but)\s+is\s+", r"\1 I'm "),
    (r"\b(and|but)\s+has\s+been\s+", r"\1 I've been "),
    (r"\b(and|but)\s+has\s+(?!to\b)", r"\1 I have "),
    (r"\b(and|but)\s+(?:does\s+not|doesn't)\s+", r"\1 I don't "),
    (r"\b(and|but)\s+was\s+", r"\1 I was "),
    (r"\b(and|but)\s+(?:mentions|mentioned|states|stated|notes|noted|says|said)\s+(?:that\s+)?(?=I\b)", r"\1 "),
    (r"\b(and|but)\s+(reports|reported|denies|denied)\s+", r"\1 I \2 "),
    (
        r"\b(and|but)\s+(drinks|smokes|uses|works|lives|takes|exercises|eats|vapes)\b",
        lambda m: f"{m.group(1)} I {_base_verb(m.group(2))}",
    ),
]
_PRONOUN_SUBJ = [
    (r"\b{p}['’]s\s+(?:been|had|got)\b", "I've been"),
    (r"\b{p}['’]s\b", "I'm"),
    (r"\b{p}\s+(?:is\s+not|isn't)\b", "I'm not"),
    (r"\b{p}\s+is\b", "I'm"),
    (r"\b{p}\s+has\s+been\b", "I've been"),
    (r"\b{p}\s+has\b", "I have"),
    (r"\b{p}\s+(?:does\s+not|doesn't)\b", "I don't"),
    (r"\b{p}\s+does\b", "I do"),
    (r"\b{p}\s+was\b", "I was"),
    (r"\b{p}\s+(\w+?)(?:ies)\b", r"I \1y"),
    (r"\b{p}\s+(\w+?(?:sh|ch|ss|x|o))es\b", r"I \1"),
    (r"\b{p}\s+(\w+?[^s'])s\b(?!['’])", r"I \1"),
    (r"\b{p}\b", "I"),
]
_FEMALE_RELATIVE = re.compile(r"\b(mother|wife|sister|daughter|grandmother|aunt|girlfriend)\b", re.IGNORECASE)
_MALE_RELATIVE = re.compile(r"\b(father|husband|brother|son|grandfather|uncle|boyfriend)\b", re.IGNORECASE)
_PERSON_REF = r"(?:the\s+)?(?:patient|child|baby|infant|boy|girl|man|woman|newborn)"


def _pronouns(t: str, patient_subject: bool = True, relative: str = "") -> str:
    """Third person -> first person. With a relative as the subject ("My mother reports that he ..."), only
    the pronoun of the other sex is the patient ("he" after a mother, "she" after a father)."""
    t = re.sub(r"\b" + _PERSON_REF + r"['’]s\b", "my", t, flags=re.IGNORECASE)
    t = re.sub(
        r"\b(?:the|this)\s+(?:patient|child|baby|infant|newborn)\s+(?:has|have)\s+been\b",
        "I have been",
        t,
        flags=re.IGNORECASE,
    )
    t = re.sub(
        r"\b(?:the|this)\s+(?:patient|child|baby|infant|newborn)\s+(?:is|was)\b",
        lambda m: "I was" if m.group(0).lower().endswith("was") else "I am",
        t,
        flags=re.IGNORECASE,
    )
    t = re.sub(
        r"\b(?:the|this)\s+(?:patient|child|baby|infant|newborn)\s+(has|does)(?:\s+(not)\b|(n't)\b)?",
        lambda m: ("I have" if m.group(1).lower() == "has" else "I do") + ("n't" if m.group(2) or m.group(3) else ""),
        t,
        flags=re.IGNORECASE,
    )
    pron = (
        "(?:he|she)"
        if patient_subject or re.search(r"\b(?:parents|family)\b", relative, re.IGNORECASE)
        else "he"
        if _FEMALE_RELATIVE.search(relative)
        else "she"
        if _MALE_RELATIVE.search(relative)
        else ""
    )
    if pron:
        for pat, rep in _PRONOUN_SUBJ:
            t = re.sub(pat.replace("{p}", pron), rep, t, flags=re.IGNORECASE)
    t = re.sub(r"\bhis\b", "my", t, flags=re.IGNORECASE)
    t = re.sub(
        r"\bher\b(?=\s*(?:[.,;:!?)]|$|\s+(?:to|with|in|on|at|for|from|by|and|or|that|a|an|the|because|after|"
        r"before|when|if|about|into|over|up|down|out|off)\b))",
        "me",
        t,
        flags=re.IGNORECASE,
    )
    t = re.sub(r"\bher\b", "my", t, flags=re.IGNORECASE)
    # "them" / "their" in a third-person record are things or other people ("scrape them off"); the patient is
    # he or she (NEJM's second-person "you" is turned by its own loader)
    t = re.sub(r"\bhim\b", "me", t, flags=re.IGNORECASE)
    t = re.sub(r"\b(?:himself|herself|themselves)\b", "myself", t, flags=re.IGNORECASE)
    t = re.sub(
        r"\b(?:the|this)\s+(?:patient|child|baby|infant|newborn)\s+([a-z]+[^s'\s]s)\b(?!['’])",
        lambda m: "I " + _base_verb(m.group(1)),
        t,
        flags=re.IGNORECASE,
    )  # "when the patient takes" -> "when I take"
    t = re.sub(r"\bthey\s+have\s+no\s+family\s+history\b", "there is no family history", t, flags=re.IGNORECASE)
    t = re.sub(r"\bthe\s+(?:patient|child|baby|infant|newborn)\b", "me", t, flags=re.IGNORECASE)
    t = re.sub(r"\bthe\s+(mom|mother|dad|father|parents|grandmother|grandfather)\b", r"my \1", t, flags=re.IGNORECASE)
    t = re.sub(
        r"\b(towards?|to|with|by|from|at|against|in|of)\s+(mom|mother|dad|father|parents|sister|brother|siblings?)\b",
        r"\1 my \2",
        t,
        flags=re.IGNORECASE,
    )  # "irritability towards mother" -> "towards my mother"
    return _BODY_PREP.sub(lambda m: f"{m.group(1)} {m.group(2) or ''}my {m.group(3)}{m.group(4)}", t)


_HISTORY_IN = re.compile(
    r"\bI've had (?:a|an) (\d+|one|two|three|several|few)[-\s](hour|day|week|month|year)s?[-\s]history\s+of\s+"
    r"(?:experiencing\s+)?(.+)$",
    re.IGNORECASE,
)


def _finish(t: str) -> str:
    t = re.sub(r"\s+", " ", t).strip().rstrip(".,;: ")
    m = _HISTORY_IN.search(t)
    if m:  # "I've had a 1-month history of double vision" -> "I've had double vision for the past 1 month"
        n, unit = m.group(1), m.group(2)
        what, tail = m.group(3), ""
        m2 = re.search(
            r",?\s+and\s+(?:a|an)\s+(\d+|one|two|three|several|few)[-\s](hour|day|week|month|year)s?[-\s]history\s+of\s+(.+)$",
            what,
            re.IGNORECASE,
        )
        if m2:  # "... and a 1-month history of fever": each duration stays with its own complaint
            n2, unit2 = m2.group(1), m2.group(2)
            what = what[: m2.start()]
            tail = f", and {m2.group(3)} for the past {n2} {unit2}{'' if n2 in ('1', 'one') else 's'}"
        t = t[: m.start()] + f"I've had {what} for the past {n} {unit}{'' if n in ('1', 'one') else 's'}{tail}"
    t = re.sub(r"\bmy my\b", "my", t)
    t = re.sub(r"\s+([,;:])", r"\1", t)
    t = re.sub(r"\b(haven't had|don't have|didn't have|haven't been) no\b", r"\1 any", t)  # no double negative
    t = re.sub(
        r"\bI (has|is|does|was)\b",
        lambda m: "I " + {"has": "have", "is": "am", "does": "do", "was": "was"}[m.group(1)],
        t,
    )
    t = re.sub(r"\bI report (\w+ing)\b", r"I've been \1", t)  # "which I report receiving regularly"
    # "I have 4 weeks of worsening thickening of my skin" -> "I've had worsening thickening of my skin for 4 weeks"
    t = re.sub(
        r"^I have (\d+|several|a few|many|one|two|three) (hours?|days?|weeks?|months?|years?) of (.+)$",
        r"I've had \3 for \1 \2",
        t,
    )
    t = re.sub(
        r"^I (smoke|drink|use) (.+ for (?:the\s+(?:past|last)\s+)?(?:\d+|several|many|a\s+few)\s+(?:years?|months?|decades?))$",
        lambda m: f"I've {dict(smoke='smoked', drink='drunk', use='used')[m.group(1)]} {m.group(2)}",
        t,
    )
    if t.startswith("I"):  # "I smoke ... and drinks one beer daily" -> "... and I drink one beer daily"
        t = re.sub(
            r"\b(and|but)\s+(drinks|smokes|uses|works|lives|takes|exercises|eats|vapes|consumes|has|reports)\b",
            lambda m: f"{m.group(1)} I {_base_verb(m.group(2))}",
            t,
        )
    return (t[:1].upper() + t[1:] + ".") if t else t


_PRESENT = re.compile(
    r"^(?:presents?|presented|presenting|comes?|came|is\s+brought|was\s+brought|has\s+been\s+brought|is\s+seen|"
    r"was\s+seen|visits?|visited|is\s+referred|was\s+referred|is\s+admitted|was\s+admitted)\b"
    r"(?:\s+(?:back\s+)?(?:to|at|in)\s+(?:the|his|her|a|an|their)?\s*(?:[\w-]+\s+){0,3}?(?:clinic|department|office|"
    r"hospital|physician|doctor|room|center|centre|dermatologist|pediatrician|provider|practitioner|emergency)"
    r"(?:\s+(?:department|room|unit|clinic|center|centre))?)?"
    r"(?:\s+by\s+(?:his|her|their|the)\s+\w+)?(?:\s+for\s+the\s+\w+\s+time(?:\s+in\s+[\w\s]+?)?(?=\s+(?:with|because|for|presenting)|$))?"
    r"\s*(?:presenting\s+)?",
    re.IGNORECASE,
)
_HISTORY_OF = re.compile(
    r"^(?:(?:a|an)\s+)?(\d+|one|two|three|several|few)[-\s](hour|day|week|month|year)s?[-\s]history\s+of\s+(?:experiencing\s+)?",
    re.IGNORECASE,
)


def _had_for(what: str, n: str, unit: str) -> str:
    """ "I've had X for the past N units", the duration kept beside its complaint: "lesions and a 1-month history of
    fever" -> "I've had lesions for the past 3 months, and fever for the past 1 month"; "dark urine after a cold 1 week
    earlier" -> "I've had dark urine for the past 1 day, after a cold 1 week earlier"."""
    dur = f"for the past {n} {unit}{'' if n in ('1', 'one') else 's'}"
    if re.match(r"(?:feeling|having|experiencing|getting|being)\b", what):  # "feeling unusually energetic"
        return f"I've been {what} {dur}"
    if not _DETERMINER.match(what) and re.match(
        r"(?:dry|productive|chronic|persistent|non-?productive|wet|hacking|"
        r"worsening|painful|itchy|pruritic)\s+(?:cough|rash|headache|lump|mass|ulcer)\b(?!\s+and\b)",
        what,
    ):
        what = "a " + what  # "dry cough" -> "a dry cough"
    m2 = re.search(
        r",?\s+and\s+(?:a|an)\s+(\d+|one|two|three|several|few)[-\s](hour|day|week|month|year)s?[-\s]history\s+of\s+(.+)$",
        what,
        re.IGNORECASE,
    )
    if m2:
        n2, unit2 = m2.group(1), m2.group(2)
        return (
            f"I've had {what[: m2.start()]} {dur}, and {m2.group(3)} for the past {n2} "
            f"{unit2}{'' if n2 in ('1', 'one') else 's'}"
        )
    if re.search(r"\b(?:for|over)\s+the\s+(?:past|last)\b|\bfor\s+\d+\s+\w+", what, re.IGNORECASE):
        return f"I've had {what} — this time {dur}"  # the record's own duration stays; the episode's follows
    m3 = re.search(
        r"\s+(?=(?:(?:that|which)\s+(?:had\s+)?(?:started|began)\s+(?:[\w-]+\s+){0,3}?)?(?:after|following|since)\b)",
        what,
        re.IGNORECASE,
    )
    if m3:
        return f"I've had {what[: m3.start()]} {dur}, " + re.sub(
            r"^(?:that|which)\s+(?:had\s+)?", "which ", what[m3.end() :]
        )
    return f"I've had {what} {dur}"


def _presentation(subject: str, rest: str) -> str | None:
    """ "A 22-year-old man" + "presented with complaints of X" -> "I have X."; without X -> "I'm a ..."."""
    m = _PRESENT.match(rest)
    if not m:
        return None
    obj = rest[m.end() :].strip()
    obj = re.sub(
        r"^(?:with|because\s+of|complaining\s+of|for\s+evaluation\s+of)\s+(?:complaints?\s+of\s+)?",
        "",
        obj,
        flags=re.IGNORECASE,
    )
    if not obj or re.fullmatch(r"(?:with\s+)?complaints?", obj, re.IGNORECASE):
        who = re.sub(r"^(?:a|an|the)\s+", "", subject.strip(), flags=re.IGNORECASE)
        if re.match(r"\d", who):
            return _finish(f"I'm {_article(who)} {who}")
        return "I've come to see you."
    if re.match(r"(?:after|following|because|due\s+to)\b", obj, re.IGNORECASE):  # "brought in after a fall"
        return _finish("I came in " + _pronouns(obj))
    if re.match(r"(?:for|to)\b", obj, re.IGNORECASE):  # "for a follow-up ...", "to establish care"
        return _finish("I'm here " + _pronouns(obj))
    h = _HISTORY_OF.match(obj)
    if h:
        return _finish(_had_for(_pronouns(obj[h.end() :]), h.group(1), h.group(2)))
    verb = "I've had" if _DURATION.search(obj) else "I have"
    return _finish(f"{verb} {_pronouns(obj)}")


def _subject_sentence(t: str) -> str | None:
    m = POSSESSIVE_SUBJECT.match(t)
    if m:  # "The man's female partner was ..." / "Her immunizations are ..." -> "My ..."
        rest = t[m.end() :]
        relative = re.match(
            r"(?:\w+\s+)?(?:mother|father|parents?|sister|brother|wife|husband|partner|son|daughter|"
            r"family|roommates?|friends?|teacher)\b",
            rest,
            re.IGNORECASE,
        )
        if relative:  # "The mother reports that her son has no history" -> "My mother reports that I have no history"
            rest = re.sub(
                r"\b(?:her|his|their)\s+(?:son|daughter|child|baby|boy|girl|infant)\b", "I", rest, flags=re.IGNORECASE
            )
        return _finish(
            "My " + _pronouns(rest, patient_subject=not relative, relative=relative.group(0) if relative else "")
        )
    m = SUBJECT.match(t)
    if not m or m.end() >= len(t) or not re.match(r"[a-z]", t[m.end() :]):
        return None
    subject, rest = t[: m.end()], t[m.end() :]
    m = re.match(
        r"^with\s+(.+?)\s+who\s+(.+?)\s+(developed|presented\s+with|presents\s+with|noticed|reported)\s+(.+)$",
        rest,
        re.IGNORECASE,
    ) or re.match(r"^with\s+(.+?),?\s+()(developed|presented\s+with|presents\s+with)\s+(.+)$", rest, re.IGNORECASE)
    if m:  # "A man with metastatic cancer who had started steroids developed a rash" -> "I have ..., and I developed a rash"
        verb = {"presented with": "had", "presents with": "have"}.get(m.group(3).lower(), m.group(3).lower())
        mid = f", I {_pronouns(m.group(2))}" if m.group(2) else ""
        return _finish(f"I have {_pronouns(m.group(1))}{mid}, and I {verb} {_pronouns(m.group(4))}")
    if re.match(r"(?:to|of|with|in|on|for|at|from|and|or)\b", rest, re.IGNORECASE):  # "First child to young parents"
        return None
    if re.search(r"\b(mother|father|parents?|roommates?|wife|husband|partner|family)\s*$", subject, re.IGNORECASE):
        rest = re.sub(
            r"\b(?:her|his|their)\s+(?:son|daughter|child|baby|boy|girl|infant)\b", "I", rest, flags=re.IGNORECASE
        )
        return _finish(
            "My "
            + re.sub(r"^(?:the|his|her|their)\s+", "", subject.strip(), flags=re.IGNORECASE).lower()
            + " "
            + _pronouns(rest, patient_subject=False, relative=subject)
        )
    rest = (
        re.sub(r"^(?:also|initially|then|further|now|currently|still)\s+", lambda x: "", rest, flags=re.IGNORECASE)
        if re.match(r"(?:also|then|further)\s", rest, re.IGNORECASE)
        else rest
    )
    pres = _presentation(subject, rest)
    if pres is not None:
        return pres
    m = re.match(
        r"^who\s+(.+?)\s+(had|has|developed|noticed|presented\s+with|presents\s+with)\s+(?!been\b)(.+)$",
        rest,
        re.IGNORECASE,
    )
    if m:
        verb = {"presented with": "had", "presents with": "have"}.get(m.group(2).lower(), m.group(2).lower())
        return _finish(f"I {_pronouns(m.group(1))}, and I {verb} {_pronouns(m.group(3))}")
    m = re.match(r"^(?:was\s+)?(delivered|born)\s+(.+?)\s+(had|has|developed)\s+(.+)$", rest, re.IGNORECASE)
    if m:  # "A girl delivered at term had a rash at birth" -> "I was delivered at term, and I had a rash at birth."
        return _finish(
            f"I was {m.group(1).lower()} {_pronouns(m.group(2))}, and I {m.group(3).lower()} {_pronouns(m.group(4))}"
        )
    m = re.match(r"^who\s+(.+)$", rest, re.IGNORECASE)
    if m:  # "A 53-year-old man who had been admitted to the hospital after a fall" -> "I had been admitted ..."
        return _finish("I " + _pronouns(m.group(1)))
    m = re.match(r"^(\w+ing\b.+?)\s+(developed|had|noticed|presented\s+with|reported)\s+(.+)$", rest, re.IGNORECASE)
    if m:  # "A woman receiving chemotherapy for AML developed plaques" -> "While receiving ..., I developed plaques."
        verb = "had" if m.group(2).lower().startswith("presented") else m.group(2).lower()
        return _finish(f"While {_pronouns(m.group(1))}, I {verb} {_pronouns(m.group(3))}")
    for pat, rep in _PREDICATE:
        new = re.sub(pat, rep, rest, count=1, flags=re.IGNORECASE)
        if new != rest:
            return _finish(_INNER_apply(_pronouns(new)))
    w = rest.split()[0]
    ws = rest.split()
    if (
        len(ws) > 1
        and re.fullmatch(r"\w+ly", w, re.IGNORECASE)
        and ws[1].lower().endswith("s")
        and not ws[1].lower().endswith(("ss", "us", "is"))
    ):  # "occasionally takes" -> "occasionally take"
        return _finish(f"I {w} {_base_verb(ws[1])} " + _INNER_apply(_pronouns(" ".join(ws[2:]))))
    if re.match(r"(?:initially|recently|previously|also|now)$", w, re.IGNORECASE):
        return _finish("I " + _pronouns(rest))
    if w.lower().endswith("s") and not w.lower().endswith(("ss", "us", "is")):
        return _finish(f"I {_base_verb(w)} " + _INNER_apply(_pronouns(rest[len(w) :].strip())))
    return _finish("I " + _INNER_apply(_pronouns(rest)))


def _INNER_apply(t: str) -> str:  # noqa: N802
    for pat, rep in _INNER:
        t = re.sub(pat, rep, t, flags=re.IGNORECASE)
    return t


def _negated_fragment(t: str) -> str | None:
    low = t.lower()
    m = (
        re.match(
            r"^no\s+(?:(?:reported|known|documented)\s+)?(?:use\s+of\s+)?(medications?|drugs|tobacco|alcohol)\b(.*)$",
            low,
        )
        if re.match(r"^no\s+(?:(?:reported|known|documented)\s+)?use\s+of\b|^no\s+(?:reported|known|documented)\b", low)
        else None
    )
    if m:  # "No reported use of medications" -> "No, I don't use any medications."
        return _finish(
            f"No, I don't {'take' if m.group(1).startswith('medication') else 'use'} any {m.group(1)}"
            + _pronouns(m.group(2))
        )
    m = re.match(
        r"^(?:no|denies|denied)\s+(?:any\s+)?(?:use\s+of\s+|using\s+)?(tobacco|alcohol|illicit\s+drugs|recreational\s+drugs|"
        r"drugs|cigarettes|marijuana|cannabis)(?:\s+(?:use|usage|consumption))?$",
        low,
    )
    if m:
        return _finish(f"No, I don't use {m.group(1)}")
    m = re.match(
        r"^(?:(?:the|his|her|the\s+patient's|current|regular|daily)\s+)*(?:medications?|medicines?|meds)\s+"
        r"(?:include|includes|are|is|consist\s+of|consists\s+of)\s+(.+)$",
        low,
        re.IGNORECASE,
    )
    if m:  # "Current medications include aspirin and enalapril." -> "I take aspirin and enalapril."
        return _finish("I take " + _pronouns(m.group(1)))
    m = re.match(
        r"^no\s+(?:(?:current|regular|daily|prescription|prescribed|other|known)\s+)*(medications?|medicines?|meds)(?:\s+use)?\b(.*)$",
        low,
    )
    if m:  # "No medications." -> "No, I don't take any medications."
        return _finish("No, I don't take any medications" + _pronouns(m.group(2)))
    if re.match(r"(?:no|nkda)\b", low) and not low.startswith("no longer"):
        rest = re.sub(r"^no\s+", "", t, flags=re.IGNORECASE)
        if low == "nkda" or re.search(r"\ballerg", low):
            return "No, I don't have any known allergies." if low == "nkda" else _finish("No, I don't have any " + rest)
        if re.search(r"\bhistory\b", rest, re.IGNORECASE):
            rest = re.sub(r"^(?:known|significant)\s+", lambda x: x.group(0), rest)
            return _finish("No, I don't have any " + _pronouns(re.sub(r"^any\s+", "", rest)))
        if re.match(r"\w+ing\b", rest) and not re.match(
            r"(?:swelling|bleeding|itching|tingling|vomiting|wheezing)\b", rest
        ):
            return _finish("No, I haven't been " + _pronouns(rest))
        return _finish("No, I haven't had " + _pronouns(rest))
    if re.match(r"not\s+(?:currently\s+)?on\b", low):
        return _finish("No, I'm " + _pronouns(t[0].lower() + t[1:]))
    if re.match(r"never\s+", low):
        return _finish("No, I've " + _pronouns(t[0].lower() + t[1:]))
    if re.match(r"den(?:ies|ied|y)\s+", low):
        rest = re.sub(r"^den(?:ies|ied|y)\s+(?:having\s+|experiencing\s+)?(?:any\s+)?", "", t, flags=re.IGNORECASE)
        return _finish("No, I haven't had " + _pronouns(rest))
    return None


def _verb_fragment(t: str) -> str | None:
    """ "Drinks alcohol socially" -> "I drink alcohol socially."; "Regained consciousness ..." -> "I regained ..."."""
    words_ = t.split()
    w = words_[0].lower()
    nxt = words_[1].lower() if len(words_) > 1 else ""
    if w in ("has", "have") and nxt == "been":
        return _finish("I've been " + _pronouns(" ".join(words_[2:])))
    if (
        w
        in (
            "reports",
            "reported",
            "endorses",
            "endorsed",
            "describes",
            "described",
            "experiences",
            "experienced",
            "notes",
            "noted",
        )
        and nxt
        and nxt not in ("that",)
    ):
        if nxt == "of":  # "Reports of pregnancy symptoms"
            words_ = [words_[0]] + words_[2:]
            nxt = words_[1].lower() if len(words_) > 1 else ""
        # "Reports a dry cough for 6 months" -> "I've had a dry cough ..."; "Reports coughing up blood" -> "I've been ..."
        rest = _pronouns(" ".join(words_[1:]))
        return _finish(("I've been " if nxt.endswith("ing") else "I've had ") + _INNER_apply(rest))
    if w in ("has", "is", "was", "does", "can", "will", "had"):
        rep = {
            "has": "I have",
            "is": "I'm",
            "was": "I was",
            "does": "I do",
            "can": "I can",
            "will": "I'll",
            "had": "I had",
        }[w]
        return _finish(rep + " " + _INNER_apply(_pronouns(" ".join(words_[1:]))))
    third = w in _VERB_WORDS or (
        w.endswith("s")
        and not w.endswith(("ss", "us", "is", "ness", "ions", "ies"))
        and len(w) > 3
        and re.fullmatch(r"(?:a|an|the|as|alone|socially|occasionally|daily|regularly|heavily|\d+.*)", nxt or "-")
        is not None
    )
    if w in ("appears", "looks", "seems") and nxt:  # "Appears unwell" -> "I look unwell."
        return _finish("I look " + _pronouns(" ".join(words_[1:])))
    if third and w not in ("regularly", "occasionally"):
        return _finish(f"I {_base_verb(w)} " + _INNER_apply(_pronouns(" ".join(words_[1:]))))
    if w in _PAST_VERBS and w not in ("recently", "initially"):
        return _finish("I " + w + " " + _INNER_apply(_pronouns(" ".join(words_[1:]))))
    return None


_EPONYM = re.compile(r"^[A-Z][a-z]+(?:['’]s\b|(?=\s+(?:disease|syndrome|palsy|phenomenon)\b))")
_TAIL_NONE = re.compile(
    r"^\s*[,;]?\s*(?:and\s+|with\s+)?no\s+(.+?)(?:\s+(?:noted|reported|available|known|documented|"
    r"given|present|mentioned))?$",
    re.IGNORECASE,
)
_REPEAT = re.compile(
    r"^(?:this\s+is\s+)?(?:for\s+)?(?:the|a|my)\s+(first|second|third|fourth|fifth|sixth|\d+(?:st|nd|rd|th))\s+"
    r"(?:time|visit|occasion)\b(.*?)\s*,?\s*(?:presenting\s+|complaining\s+|coming\s+in\s+)?"
    r"(?:with|because\s+of|for)\s+(.+)$",
    re.IGNORECASE,
)
_APPEARANCE = re.compile(
    r"^(?:(overall|generally|general)\s*,?\s+)?(?!(?:a|an|the|my|his|her|its|their|no)\b)"
    r"([a-z]+(?:\s+and\s+[a-z]+)?)[-\s]+(?:appearance|appearing)\b(?=\s*(?:$|[,;]))(.*)$",
    re.IGNORECASE,
)


def _tail(rest: str) -> str:
    """What follows a self-description: ", no past medical history available" -> ", and I have no past
    medical history"; " and drinks alcohol" -> " and I drink alcohol"; else the words with pronouns turned."""
    m = _TAIL_NONE.match(rest)
    if m and rest.strip():
        return ", and I have no " + _pronouns(m.group(1))
    m = re.match(
        r"^(?:\s*,\s*(?:and\s+)?|\s+and\s+)(?:does\s+not|doesn't|did\s+not|didn't)\s+(\w+)\b(.*)$", rest, re.IGNORECASE
    )
    if m:  # "Non-smoker, does not consume alcohol" -> "I'm a non-smoker, and I don't consume alcohol."
        return f", and I don't {m.group(1)}" + _INNER_apply(_pronouns(m.group(2)))
    m = re.match(r"^(?:\s*,\s*(?:and\s+)?|\s+and\s+)((?:\w+ly\s+)?)(\w+)\b(.*)$", rest)
    if m and m.group(2).lower() in _VERB_WORDS and m.group(2).lower().endswith("s"):  # ", rarely drinks alcohol"
        return f", and I {m.group(1)}{_base_verb(m.group(2))}" + _INNER_apply(_pronouns(m.group(3)))
    return _INNER_apply(_pronouns(rest))


def _described_self(low: str) -> str | None:
    """A fragment that says what or how the patient is, or why they came again: "Student and active in sports"
    -> "I'm a student and active in sports."; "Newborn, no past medical history" -> "I'm a newborn, and I
    have no past medical history."; "Overall healthy appearance" -> "Overall, I look healthy."; "The third
    time in 4 months presenting with a rash" -> "This is the third time in 4 months I've come in with a rash."."""
    m = _REPEAT.match(low)
    if m:
        mid = _pronouns(m.group(2).strip())
        return _finish(
            f"This is the {m.group(1).lower()} time{' ' + mid if mid else ''} I've come in with "
            + _pronouns(m.group(3))
        )
    m = _ROLE.match(low)
    if m and not _NOT_PERSON.search(m.group(1)) and len(m.group(1).split()) <= 4:
        return _finish(f"I'm {_article(m.group(1))} {m.group(1)}{_tail(low[m.end() :])}")
    m = _APPEARANCE.match(low)
    if m and not _NOT_PERSON.search(m.group(2)):
        lead = f"{m.group(1)[0].upper()}{m.group(1)[1:].lower()}, I" if m.group(1) else "I"
        return _finish(f"{lead} look {m.group(2)}{_tail(m.group(3))}")
    return None


_ALCOHOL_ADVERB = {
    "moderate": "moderately",
    "heavy": "heavily",
    "light": "lightly",
    "occasional": "occasionally",
    "social": "socially",
    "daily": "daily",
    "regular": "regularly",
}


_ABSTRACT = (  # "I have inability to flex ..." is not English: what the noun means, said as a verb
    (r"^recovery\s+(?=(?:after|with|following)\b)", "I recovered "),
    (r"^(?:a\s+)?(?:familial|family)\s+history\s+of\s+(?!no\b)", "There's a history in my family of "),
    (r"^(?:an?\s+)?exacerbations?\s+(?=(?:during|with|on|when|after|while)\b)", "It gets worse "),
    (r"^(?:an?\s+)?(?=(?:rapid|gradual|progressive|sudden|slow)?\s*(?:increase|decrease)\s+in\b)", "There's been a "),
    (r"^(?:an?\s+)?inability\s+to\s+", "I can't "),
    (r"^(?:an?\s+)?refusal\s+to\s+", "I refuse to "),
    (r"^(?:an?\s+)?(?:difficulty|trouble)\s+to\s+", "I have trouble trying to "),
    (r"^(?:failed|unsuccessful)\s+attempts?\s+to\s+", "I tried without success to "),
)


def _plain_fragment(low: str) -> str | None:
    """Fragments said in plain words: "Recent appearance" -> "It appeared recently."; "Limping favoring left leg" ->
    "I've been limping, favoring my left leg."; "Moderate alcohol use" -> "I drink alcohol moderately.";
    "Noncompliance with medications" -> "I haven't been taking my medications."."""
    m = re.match(r"^(?:(recent|sudden|new|gradual)\s+)(?:appearance|onset)\b\s*(.*)$", low, re.IGNORECASE)
    if m:
        how = {
            "recent": "It appeared recently",
            "new": "It appeared recently",
            "sudden": "It came on suddenly",
            "gradual": "It came on gradually",
        }[m.group(1).lower()]
        if m.group(2).lower().startswith("of "):  # "Sudden onset of paralysis in the legs"
            return _finish(f"I've had {_pronouns(m.group(2)[3:])}, and {how[0].lower() + how[1:]}")
        return _finish(f"{how} {_pronouns(m.group(2))}")
    for pat, rep in _ABSTRACT:
        m = re.match(pat, low, re.IGNORECASE)
        if m:
            return _finish(rep + _pronouns(low[m.end() :]))
    m = re.match(
        r"^(?:an?\s+)?attempts?\s+to\s+(.+?)\s+(?:(?:were|was|have\s+been|has\s+been)\s+)?(?:unsuccessful|failed)$",
        low,
        re.IGNORECASE,
    )
    if m:  # "Attempts to remove lesions unsuccessful" -> "I tried to remove them, without success."
        return _finish(f"I tried to {_pronouns(m.group(1))}, without success")
    m = re.match(
        r"^(limping|coughing|vomiting|wheezing|sneezing|sweating|scratching|crying|snoring|shaking|trembling|"
        r"stumbling|falling)\b\s*(.*)$",
        low,
        re.IGNORECASE,
    )
    if m:
        rest = _pronouns(m.group(2))
        rest = re.sub(r"^favou?ring\s+(?!my\b)", "favoring my ", rest)
        return _finish(
            f"I've been {m.group(1).lower()}"
            + (f", {rest}" if rest.startswith("favor") else f" {rest}" if rest else "")
        )
    m = re.match(
        r"^(moderate|heavy|light|occasional|social|daily|regular)\s+(?:alcohol|drinking|ethanol)(?:\s+(?:use|intake|consumption))?(.*)$",
        low,
        re.IGNORECASE,
    )
    if m:
        return _finish(f"I drink alcohol {_ALCOHOL_ADVERB[m.group(1).lower()]}{_pronouns(m.group(2))}")
    m = re.match(
        r"^(?:non-?compliance|non-?adherence|poor\s+(?:compliance|adherence))\s+(?:with|to)\s+(?:his\s+|her\s+|the\s+)?(.*)$",
        low,
        re.IGNORECASE,
    )
    if m:
        return _finish("I haven't been taking my " + _pronouns(m.group(1)))
    return None


def _noun_fragment(t: str) -> str:
    """A bare noun phrase ("Weakness in upper limbs", "Distended abdomen", "History of rash") as a sentence."""
    low = t[0].lower() + t[1:] if not ((t[:2].isupper() and t[1:2].isalpha()) or _EPONYM.match(t)) else t
    plain = _plain_fragment(low)
    if plain is not None:
        return plain
    m = re.match(r"^(?:an?\s+)?episodic\s+history\s+of\s+", low, re.IGNORECASE)
    if m:  # "An episodic history of swelling of the face" -> "I've had episodes of swelling of my face."
        return _finish("I've had episodes of " + _pronouns(low[m.end() :]))
    m = re.match(
        r"^(?:brought\s+in|came\s+in|comes\s+in|presented|presents|is\s+brought\s+in)\s+(after|following)\s+",
        low,
        re.IGNORECASE,
    )
    if m:  # "Brought in after a bicycle accident" -> "I came in after a bicycle accident."
        return _finish(f"I came in {m.group(1).lower()} " + _pronouns(low[m.end() :]))
    if re.match(
        r"^(?:an?\s+|the\s+|my\s+)?(?:[\w-]+\s+){0,4}?(?:examination|exam|check-?up|visit|physical|follow-?up|"
        r"screening|evaluation|assessment|appointment|vaccinations?|immunizations?)(?:$|,|\s+(?:and|requested|for|by|"
        r"with|at)\b)",
        low,
        re.IGNORECASE,
    ) and not re.search(r"\b(?:pain|rash|swelling|bleeding)\b", low):
        return _finish("I'm here for " + _pronouns(low))
    m = re.match(
        r"^(several|many|a\s+few|\d+|one|two|three|four|five|six)\s+(hours?|days?|weeks?|months?|years?)\s+"
        r"(?:(?:duration|history)\s+)?of\s+(.+)$",
        low,
        re.IGNORECASE,
    )
    if m:  # "Several years of progressive difficulty in walking" -> "I've had ... for several years."
        return _finish(f"I've had {_pronouns(m.group(3))} for {m.group(1)} {m.group(2)}")
    m = re.match(
        r"^(?:the\s+)?(first|only|second|third|youngest|oldest|eldest)\s+(child|son|daughter)\b", low, re.IGNORECASE
    )
    if m:
        return _finish("I'm the " + _pronouns(low))
    said = _described_self(low)
    if said is not None:
        return said
    m = re.match(r"^([^,;]+?)\s+diagnosed\s+(.*)$", low)
    if m and not _FINITE.search(m.group(1)):
        return _finish(f"I was diagnosed with {m.group(1)} {_pronouns(m.group(2))}")
    h = _HISTORY_OF.match(low)
    if h:  # "A 1-year history of skin darkening" -> "I've had skin darkening for the past 1 year."
        return _finish(_had_for(_pronouns(low[h.end() :]), h.group(1), h.group(2)))
    m = re.match(r"^(?:presence\s+of|evidence\s+of)\s+", low)
    if m:  # "Presence of a left breast mass" -> "I have a left breast mass."
        return _finish("I have " + _pronouns(low[m.end() :]))
    m = re.match(r"^(?:a\s+|an\s+)?(?:(?:past|prior|previous|known)\s+)?history\s+of\s+", low, re.IGNORECASE)
    if m:
        return _finish("I have a history of " + _pronouns(low[m.end() :]))
    m = re.match(r"^(?:an?\s+)?(episodes?|attacks?|bouts?)\s+of\s+", low, re.IGNORECASE)
    if m:
        one = not m.group(1).endswith("s")
        return _finish(
            ("I've had an " if m.group(1)[0] in "ae" else "I've had a ") + low
            if one and not low.startswith("a")
            else "I've had " + _pronouns(low)
        )
    m = re.match(r"^(improvement|worsening)\s+(with|on|after|at|in|when|during|by)\b\s*(.*)$", low, re.IGNORECASE)
    if m:  # "Improvement with rest" -> "It gets better with rest."
        how = "gets better" if m.group(1).lower() == "improvement" else "gets worse"
        return _finish(f"It {how} {m.group(2)} {_pronouns(m.group(3))}")
    m = re.match(r"^concern(?:ed)?\s+(?:over|about)\s+(?:the\s+)?(.*)$", low, re.IGNORECASE)
    if m:  # "Concern over sudden onset" -> "I'm worried about the sudden onset."
        return _finish("I'm worried about the " + _pronouns(m.group(1)))
    m = re.match(r"^(?:(recent|sudden|new|gradual)\s+)(?:appearance|onset)\b\s*(.*)$", low, re.IGNORECASE)
    if m:  # "Recent appearance" -> "It appeared recently."
        how = {
            "recent": "It appeared recently",
            "new": "It appeared recently",
            "sudden": "It came on suddenly",
            "gradual": "It came on gradually",
        }[m.group(1).lower()]
        return _finish(f"{how} {_pronouns(m.group(2))}")
    m = re.match(
        r"^(?:(?:past\s+)?medical\s+history\s+|pmh\s+)?(?:is\s+)?(?:only\s+)?significant\s+(?:only\s+)?for\s+",
        low,
        re.IGNORECASE,
    )
    if m:  # "Significant for Lyme disease, currently treated with doxycycline"
        return _finish("I have a history of " + _pronouns(low[m.end() :]))
    m = re.match(r"^(?:was\s+|recently\s+|previously\s+)?diagnosed\s+(?:with|as\s+having)\s+", low, re.IGNORECASE)
    if m:  # "Diagnosed with influenza recently" -> "I was diagnosed with influenza recently."
        return _finish("I was diagnosed with " + _pronouns(low[m.end() :]))
    m = re.match(r"^worsening\s+\w+(?:\s+\w+)?\s+and\s+", low, re.IGNORECASE)
    if m:  # "Worsening dyspnea and dry cough" -> "I have worsening dyspnea and dry cough."
        return _finish("I have " + _pronouns(low))
    m = re.match(
        r"^(improvement|worsening)\s+(?:of\s+)?(?:the\s+|my\s+)?(symptoms?|pain|\w+)\s+(.*)$", low, re.IGNORECASE
    )
    if m:
        how = "get better" if m.group(1).lower() == "improvement" else "get worse"
        thing = m.group(2) + ("" if m.group(2).endswith("s") else "")
        verb = how if thing.endswith("s") else how.replace("get", "gets")
        return _finish(f"My {thing} {verb} {_pronouns(m.group(3))}")
    m = _ADJ_BODY.match(low)
    if m:
        part = m.group(2)
        plural = part.endswith("s") and not part.endswith(("ss", "us", "is")) or part in ("feet", "teeth", "calves")
        return _finish(f"My {part} {'are' if plural else 'is'} {m.group(1)}")
    if (
        _PERSON_NP.match(low)
        and len(re.split(r"[,;(]", low)[0].split()) <= 4
        and not _NOT_PERSON.search(re.split(r"[,;(]", low)[0])
    ):
        return _finish(f"I'm {_article(low)} " + low)
    if re.match(
        r"\w+ly\s+(?:active|inactive|alert|independent|isolated|stable|fit|healthy|well|disabled|"
        r"impaired|delayed)\b",
        low,
    ):  # "sexually active" (not "scaly plaques")
        return _finish("I'm " + _pronouns(low))
    main = re.split(r"\b(?:that|which|who|when|where|while)\b", low, maxsplit=1)[0]
    if len(low.split()) > 2 and _FINITE.search(" ".join(main.split()[1:])):
        body = _pronouns(low)
        if not _DETERMINER.match(body) and (
            re.match(r"[a-z]+s\b", body)
            or re.match(r"(?![a-z]+ing\b)[a-z]+\s+(?:has|have|had|is|are|was|were)\b", body)
        ):  # "Lesions are painless", "Lump has grown" -> "My ..."
            body = "my " + body
        return _finish(body)
    if re.match(r"(?:the|these|this|those)\s", low) and (
        _FINITE.search(low) or re.search(r"\b(?:appears?|looks?|seems?|remains?)\b", low)
    ):  # "The skin where it was ... appears lighter."
        return _finish(_pronouns(low))
    if re.match(
        r"(?:the|these|this|those)\s+(?:\S+\s+){0,3}?(?:\w+ed|became|grew|appears?|recurs?|resolves?|indicates?|"
        r"shows?|involves?)\b",
        low,
    ):  # "The rash eventually destroyed my nails."
        return _finish(_pronouns(low))
    if re.match(
        r"(?:alert|awake|active|healthy|well|fit|pregnant)\b", low
    ):  # "Alert and active" -> "I'm alert and active."
        return _finish("I'm " + low)
    if _THING_SENTENCE.match(low) and not re.match(r"(?:the|this|these|those|that)\s+(?:past|last|first|next)\b", low):
        return _finish(_pronouns(low))  # never "I have the lesions start as small bumps"
    verb = "I've had" if _DURATION.search(low) else "I have"
    body = _pronouns(low)
    if (
        not _DETERMINER.match(body)
        and _COUNT_NOUN.match(body)
        and not re.match(r"\w+s\b", body.split(",")[0].split()[-1] if False else "")
    ):
        head = _COUNT_NOUN.match(body).group(0)
        if not head.endswith("s") or head.endswith("ss"):  # "painless mass" is one mass
            body = f"{_article(body)} {body}"
    return _finish(f"{verb} {body}")


_LEAD_NOISE = re.compile(
    r"^(?:on\s+(?:further\s+questioning|review(?:\s+of\s+systems)?)|additionally|also|however|otherwise|"
    r"of\s+note|in\s+addition)\s*,?\s*",
    re.IGNORECASE,
)


# a leading adverbial clause before the statement itself: "When he scrapes off the crusts, they reappear"
_LEAD_CLAUSE = re.compile(
    r"^((?:when|whenever|during|upon|after|before|while|soon\s+thereafter|for|if|since|although|as|"
    r"at\s+night|in\s+the\s+morning)\b[^,]{0,100}?),\s*(\S.*)$",
    re.IGNORECASE,
)
# a statement about a thing, not the patient: "The lesions start as small bumps.", "This redness doesn't itch."
_THING_SENTENCE = re.compile(
    r"^(?:the|this|these|those|that)\s+(?!presence\b|evidence\b)\S+(?:\s+\S+){1,}", re.IGNORECASE
)


def to_first_person(text: str) -> str:
    """Best-effort rewrite of one clinical statement into the patient's voice (see module docstring)."""
    t = re.sub(r"\s+", " ", text.strip()).rstrip(".").strip()
    if not t:
        return t
    t = _LEAD_NOISE.sub("", t) or t
    t = (
        re.sub(r"\s+(?:for|of|in)\s+the\s+patient$", "", t, flags=re.IGNORECASE) or t
    )  # "No history of allergies for the patient"
    t = re.sub(r"^the\s+(?=presence\s+of\b)", "", t, flags=re.IGNORECASE)
    m = re.match(
        r"^(?:(?:his|her|my|their|an?|the)\s+)?((?:(?:annual|routine|yearly|regular|scheduled|follow-?up|"
        r"well-?child|wellness)\s+)+(?:physical\s+)?(?:exam|examination|check-?up|visit|physical)\b.*|"
        r"(?:mri|ct|x-?ray|ultrasound|scan|biopsy|colonoscopy|mammogram)\b.*)$",
        t,
        re.IGNORECASE,
    )
    if m and not re.search(r"\b(?:showed|shows|revealed|reveals|found|demonstrated)\b", t, re.IGNORECASE):
        # "His annual physical exam", "An MRI of his lower back": a visit, not something the patient has
        art = (
            "my "
            if re.match(r"(?:his|her|my|their)\b", t, re.IGNORECASE)
            else f"{_article(m.group(1))} "
            if not re.match(r"(?:the)\b", t, re.IGNORECASE)
            else "the "
        )
        return _finish("I'm here for " + art + _pronouns(m.group(1)))
    m = re.match(
        r"^(?:was\s+)?born\s+(?=at\b|by\b|via\b|preterm|prematurely|full[- ]term|vaginally|after\b|to\b|in\b)",
        t,
        re.IGNORECASE,
    )
    if m:  # "Born at term, no prenatal care for the mother" -> "I was born at term, ..."
        return _finish("I was born " + _pronouns(t[m.end() :]))
    m = re.match(r"^(?:exclusively\s+|mostly\s+)?(?:breast|bottle|formula)[- ]?fed\b", t, re.IGNORECASE)
    if m:  # "Exclusively breastfed" -> "I've been exclusively breastfed."
        return _finish("I've been " + t[0].lower() + t[1:])
    m = re.match(
        r"^(?:(?:a|his|her|the\s+patient's)\s+)?(?:positive\s+)?(?:familial|family)\s+history\s+(?:is\s+)?(?:of|includes|including|"
        r"notable\s+for|significant\s+for|positive\s+for|remarkable\s+for)\s+(?!no\b)",
        t,
        re.IGNORECASE,
    )
    if m:  # "Family history of similar leg problems" -> "There's a history in my family of similar leg problems."
        return _finish("There's a history in my family of " + _pronouns(t[m.end() :]))
    t = (
        re.sub(r"^(?:complaints?|complaining)\s+of\s+", "", t, flags=re.IGNORECASE) or t
    )  # a loader's cut-off "presents with"
    if t.lower().startswith(("i ", "i'", "my ")):
        return _finish(t)
    m = _LEAD_CLAUSE.match(t)
    if (
        m and len(m.group(2).split()) >= 2
    ):  # "For his osteoarthritis, he takes ..." -> "For my osteoarthritis, I take ..."
        main = to_first_person(m.group(2)).rstrip(".")
        main = main if re.match(r"I\b|My\b", main) else main[:1].lower() + main[1:]
        return _finish(_pronouns(m.group(1)) + ", " + main)
    out = _subject_sentence(t)
    if out is not None:
        return out
    out = _negated_fragment(t)
    if out is not None:
        return out
    if re.match(r"(?:non-?smoker|nonsmoker|former smoker|ex-smoker|lifetime non-?smoker)", t, re.IGNORECASE):
        return _described_self(t[0].lower() + t[1:]) or _finish(f"I'm {_article(t)} " + t[0].lower() + t[1:])
    if re.match(r"(?:not|never)\s", t, re.IGNORECASE):
        return _finish(t)
    out = _verb_fragment(t)
    if out is not None:
        return out
    if re.match(r"(?:mother|father|parents?|sister|brother|wife|husband|partner|family)\b", t, re.IGNORECASE):
        return _finish("My " + t[0].lower() + t[1:])
    return _noun_fragment(t)
