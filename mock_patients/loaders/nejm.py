"""AgentClinic's NEJM image-challenge records (agentclinic_nejm.jsonl, agentclinic_nejm_extended.jsonl) ->
`PatientCase`.

One object per line:

    {"image_url": "https://...", "question": "<the case vignette, ending with the question>",
     "patient_info": "<instructions to a patient actor, in the second person>",
     "physical_exams": "<exam and test results as text: 'Name: result' items, '- ' bullets, '1.' numbers>",
     "answers": [{"text": "...", "correct": false}, ...],   # exactly one correct: the diagnosis
     "type": ["CT scan", ...]}                                # extended file only; not used

The patient's key facts come from `patient_info` (rewritten from "you have ..." into clinical statements,
with the actor instructions and "you don't know your results" sentences dropped); exam findings from the
vignette's examination sentences; test results from `physical_exams`. The image is kept as a reference
(`LoadResult.references[case id]`), not described: the image's findings are in the text where AgentClinic
has them. The other answers are the case's multiple-choice options and differential.
"""

from __future__ import annotations

import re
from pathlib import Path

from mock_patients.cases import KeyFact, Observation, PatientCase, diagnosis_length_error
from mock_patients.facts import split_sentences, structured_facts
from mock_patients.lexicon import default_lexicon
from mock_patients.loaders.common import (
    EXAM_WORDS,
    Split,
    check_split,
    chief_complaint,
    informative,
    link_diagnosis,
    parse_demographics,
    text_of,
)
from mock_patients.loaders.report import LoadResult, load_records
from mock_patients.rewrite import to_first_person

_ROLE = re.compile(
    r"^\s*(?:(?:for your role as an? (?:patient|patient actor)|as an? (?:patient|patient actor)|"
    r"in your role as an? patient(?: actor)?)\s*,\s*|for the patient(?: actor)?\s*:\s*)",
    re.IGNORECASE,
)
_INTRO = re.compile(r"^(?:here'?s|here is|you need to convey|the following|this is)\b[^:]{0,160}:\s*", re.IGNORECASE)
_UNITS = re.compile(r"\s+-\s+|(?<![\d.])\s*\b\d{1,2}\.\s+(?=[A-Z*])|\n+")  # bullets, "1." items, lines
_HEADING = re.compile(r"^[A-Z][\w /’'(),&-]{0,60}:\s+(?=\S)")
_META = re.compile(
    r"\b(remember|your role|patient actor|not aware|aren't aware|don'?t know|do not know|"
    r"not been told|haven'?t been told|haven'?t seen any|have not seen any|medical terms|portray|"
    r"(?:your|the) diagnosis|test readings|specific test results)\b",
    re.IGNORECASE,
)
_SELF_DEMOGRAPHIC = re.compile(r"^you(?:'re| are) an? \d+[-\s](?:year|month|week|day)", re.IGNORECASE)
_NOTICED_THAT = re.compile(
    r"^you(?:'ve| have)? (?:noticed|observed|felt|found|realized|been told) that\s+", re.IGNORECASE
)
_SECOND_PERSON = [  # sentence openings, "you ..." -> a clinical statement without a subject
    (r"^you(?:'ve| have) never been diagnosed with\s+", "Denies history of "),
    (
        r"^you (?:haven'?t|have not|did not|didn'?t|do not|don'?t)\s+(?:had|have|noticed|notice|experienced|experience|"
        r"seen|see|felt|feel)\s+(?:any\s+)?",
        "Denies ",
    ),
    (r"^you(?:'ve| have) not (?:had|noticed|experienced|seen)\s+(?:any\s+)?", "Denies "),
    (
        r"^you(?:'ve| have) (?:been experiencing|been having|experienced|noticed|observed|had|developed|felt)\s+",
        "Reports ",
    ),
    (r"^you(?:'re| are)\s+", "Is "),
    (r"^you(?:'ve| have)\s+", "Has "),
    (r"^you were\s+", "Was "),
    (r"^you can'?t\s+", "Cannot "),
    (r"^mention\s+(?:that\s+)?(?:noticing|having|experiencing)\s+", "Reports "),
    (
        r"^you ((?:\w+ed|began|had|went|took|felt|got|came|saw|ate|drank|fell|became|grew|began|left|lost|made|quit|ran|"
        r"spent|thought|tried|woke|wore))\s+",
        "past",
    ),
    (r"^you (\w+?)(s?)\s+", None),
]
_MID = [
    (r"\byou've\b", "they have"),
    (r"\byou're\b", "they are"),
    (r"\byourself\b", "themselves"),
    (r"\byour\b", "their"),
    (r"\byou\b", "they"),
]


def _clinical(sentence: str) -> str:
    """ "You've had fevers during this period." -> "Reports fevers during this period." """
    s = _NOTICED_THAT.sub("", sentence.strip())  # "You've noticed that you've lost weight" -> "you've lost weight"
    s = re.sub(r"^you\s+(?:also|still|then|now|just|later|recently|further)\s+", "you ", s, flags=re.IGNORECASE)
    for pat, rep in _SECOND_PERSON:
        m = re.match(pat, s, flags=re.IGNORECASE)
        if m:
            if rep == "past":  # "you began using ..." -> "Began using ..."
                rep = m.group(1)[:1].upper() + m.group(1)[1:] + " "
            elif rep is None:  # "you feel a burning sensation" -> "Feels a burning sensation"
                verb = m.group(1)
                rep = verb[:1].upper() + verb[1:] + ("es" if verb.endswith(("sh", "ch", "s", "x")) else "s") + " "
            s = rep + s[m.end() :]
            break
    for pat, rep in _MID:
        s = re.sub(pat, rep, s, flags=re.IGNORECASE)
    return s[:1].upper() + s[1:]


_THEY = [  # a statement's "they" came from the record's "you": the patient
    (
        r"\b(for|to|caused|cause|gave|give|told|tell|made|make|makes|with|about|from|of|at|by|on|bother|bothers|bothered|"
        r"affect|affects|affected|prevent|prevents|prevented)\s+they\b",
        r"\1 me",
    ),
    (r"\bthey(?:'re|\s+are)\b", "I am"),
    (r"\bthey\s+were\b", "I was"),
    (r"\bthey've\b", "I've"),
    (r"\bthey\b", "I"),
    (r"\btheir\b", "my"),
    (r"\bthemselves\b", "myself"),
    (r"\bthem\b", "me"),
]
_CLAUSE_LEAD = re.compile(
    r"^(?:they|for|over|during|when|whenever|recently|about|upon|at|since|after|before|also|this|these|"
    r"in|on|while|sometimes|lately|now)\b",
    re.IGNORECASE,
)


def patient_sentence(text: str, present: bool = True) -> str:
    """A NEJM statement in the patient's voice, its "they" (the record's "you") read as the patient:
    "For the past year, they have had sores on their penis." -> "For the past year, I have had sores on my penis." """
    if not present or not _CLAUSE_LEAD.match(text):
        text = to_first_person(text)
    for pat, rep in _THEY:
        text = re.sub(pat, rep, text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text).strip().rstrip(".")
    if not present and not re.search(
        r"^(?:no|none|never)\b|\b(?:not|no|never|without|none)\b|n't\b", text, re.IGNORECASE
    ):
        text = "No, " + (
            text if text.startswith(("I ", "I'")) else text[:1].lower() + text[1:]
        )  # a denial is said as one
    return text[:1].upper() + text[1:] + "."


def _voiced(facts: tuple[KeyFact, ...]) -> tuple[KeyFact, ...]:
    return tuple(
        f.model_copy(update={"patient_text": patient_sentence(f.text, f.present)})
        if f.patient_facing and re.search(r"\b(?:they|their|them|themselves)\b", f.text, re.IGNORECASE)
        else f
        for f in facts
    )


def _own_they(sentence: str) -> str:
    """The record's own "they" is a thing ("the blisters ... they don't burst"), never the patient (who is
    "you"): it becomes "these" before "you" becomes "they", so the patient's voice does not turn it into "I"."""
    for pat, rep in (
        (r"\bthey're\b", "these are"),
        (r"\bthey've\b", "these have"),
        (r"\bthey\b", "these"),
        (r"\bthem\b", "these"),
        (r"\btheir\b", "its"),
    ):
        sentence = re.sub(pat, rep, sentence, flags=re.IGNORECASE)
    return sentence


def patient_statements(patient_info: str) -> list[str]:
    """The clinical statements in a NEJM `patient_info` passage (actor instructions dropped)."""
    text = _ROLE.sub("", patient_info.replace("**", "").strip())
    out = []
    for unit in _UNITS.split(text):
        unit = _INTRO.sub("", _HEADING.sub("", unit.strip().lstrip("-*• ").strip()))
        for sent in split_sentences(unit):
            sent = _INTRO.sub("", sent).strip()
            if _SELF_DEMOGRAPHIC.match(sent):
                # "You are a 34-year-old woman who smokes.": the age is the demographics, "who smokes" a fact
                who = re.search(r"\bwho\s+(.+?)\.?$", sent)
                if who and not _META.search(who.group(1)):
                    out.append(_clinical(_own_they(who.group(1)[:1].upper() + who.group(1)[1:])))
                continue
            if not informative(sent) or _META.search(sent) or len(sent) < 4:
                continue
            if re.fullmatch(
                r"(?:age\s*:?\s*)?\d+\s*(?:-\s*)?(?:years?|months?|weeks?|days?)(?:[-\s]old)?\.?", sent, re.IGNORECASE
            ):
                continue  # "Age: 66 years old": the demographics, not a fact to tell
            if sent.endswith(":"):
                continue  # a heading with nothing under it
            out.append(_clinical(_own_they(sent)))
    return out


_SECTION_END = re.compile(r"\s+([A-Z][\w /()-]{2,60}?(?:results?|findings|studies|tests?|examination|imaging)):$")
_RESULT_WORDS = {
    "negative",
    "positive",
    "normal",
    "abnormal",
    "elevated",
    "present",
    "absent",
    "detected",
    "low",
    "high",
    "increased",
    "decreased",
    "unremarkable",
    "none",
}


def _section_end(unit: str) -> re.Match[str] | None:
    """A section heading glued to the end of an item ("...: Negative Imaging results:"), without the item's
    own result word."""
    for m in _SECTION_END.finditer(unit):
        words = m.group(1).split()
        if words[0].lower() in _RESULT_WORDS and len(words) > 1:
            return re.search(r"\s+(" + re.escape(" ".join(words[1:])) + r"):$", unit)
        return m
    return None


_PREAMBLE = re.compile(
    r"information extracted|relevant to instrument|includes:$|does not (?:contain|include|provide)|"
    r"no specific (?:instrument|test)",
    re.IGNORECASE,
)


def exam_observations(physical_exams: str) -> list[Observation]:
    """`physical_exams` text -> one observation per "Name: result" item; items without a name take the
    section heading they are under ("Laboratory testing results: - Peripheral eosinophilia present")."""
    lex = default_lexicon()
    out: list[Observation] = []
    section = "Test results"
    for unit in _UNITS.split(physical_exams.replace("**", "")):
        unit = unit.strip().rstrip(";").strip()
        if not unit or _PREAMBLE.search(unit):
            continue
        m = _section_end(unit)  # "Negative Imaging results:" ends one item and opens a section
        heading = m.group(1) if m else None
        if m:
            unit = unit[: m.start()].strip()
        if unit.endswith(":") and not heading:
            heading, unit = unit[:-1].strip(), ""
        if unit:
            name, sep, result = unit.partition(":")
            if not sep or not result.strip() or len(name) > 80:
                name, result = section, unit
            name = re.sub(r"\s+(?:results?|findings)$", "", name.strip(), flags=re.IGNORECASE) or section
            out.append(Observation(test=name, result=result.strip(), test_id=lex.resolve_test(name)))
        if heading:
            section = re.sub(r"\s+(?:results?|findings)$", "", heading, flags=re.IGNORECASE)
    return out


def _diagnosis(answers: object) -> tuple[str, list[str]]:
    if not isinstance(answers, list) or not answers:
        raise ValueError("answers must be a non-empty list of {text, correct} options")
    opts, correct = [], []
    for i, a in enumerate(answers):
        if isinstance(a, dict) and isinstance(a.get("text"), (list, dict)):  # never joined into "Gout; Pneumonia"
            kind = "a list" if isinstance(a["text"], list) else "an object"
            raise ValueError(f"answers[{i}].text must be a text, got {kind}")
        if not isinstance(a, dict) or not text_of(a.get("text")):
            raise ValueError(f"answers[{i}] must be an object with a non-empty 'text' and a 'correct' flag")
        opts.append(text_of(a["text"]))
        if a.get("correct") is True or str(a.get("correct")).lower() == "true":
            correct.append(opts[-1])
            err = diagnosis_length_error(f"answers[{i}].text", opts[-1])
            if err:
                raise ValueError(err)
    if len(correct) != 1:
        raise ValueError(f"answers must mark exactly one option correct (the diagnosis); {len(correct)} are marked")
    return correct[0], opts


_FOUND = re.compile(
    r",?\s+(?:and\s+)?(?:was|were|is|had\s+been)\s+(?:found|noted|observed|seen)\s+to\s+(?:have|be)\s+(.+)$",
    re.IGNORECASE,
)


def nejm_case(record: dict, case_id: str, *, split: Split = "test") -> PatientCase:
    """One AgentClinic NEJM record."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    question = text_of(record.get("question"))
    if not question:
        raise ValueError("question (the case vignette) is missing or empty")
    info = text_of(record.get("patient_info"))
    if not info:
        raise ValueError("patient_info is missing or empty")
    dx, opts = _diagnosis(record.get("answers"))
    sents = split_sentences(question)
    first = sents[0]
    body = [s for s in sents[1:] if not s.rstrip().endswith("?")]
    demo = parse_demographics(first)
    # "... presented for a yearly eye exam and was found to have light-brown nodules on the iris": what the
    # examiner found is an exam finding (often the answer's defining sign), not the patient's complaint
    found = _FOUND.search(first)
    cc = chief_complaint(first[: found.start()].rstrip(" ,") + "." if found else first)
    exams = ([Observation(test="Physical examination", result=found.group(1).strip().rstrip("."))] if found else []) + [
        Observation(test="Physical examination", result=s) for s in body if EXAM_WORDS.search(s)
    ]
    tests = exam_observations(text_of(record.get("physical_exams")))
    # each statement ends its own sentence: a bulleted list without full stops must not run into one fact
    hpi = " ".join(s if s.rstrip().endswith((".", "!", "?")) else s.rstrip() + "." for s in patient_statements(info))
    facts = structured_facts(
        demographics=demo,
        chief_complaint=cc,
        history_of_present_illness=hpi,
        exam_findings=exams,
        test_results=tests,
        lexicon=default_lexicon(),
    )
    facts = _voiced(facts)
    return PatientCase(
        id=case_id,
        source="agentclinic",
        split=split,
        demographics=demo,
        chief_complaint=cc,  # type: ignore[arg-type]
        history_of_present_illness=hpi,
        exam_findings=tuple(exams),
        test_results=tuple(tests),
        diagnosis=dx,
        diagnosis_id=link_diagnosis(dx),
        options=tuple(opts),
        differential=tuple(o for o in opts if o != dx),
        key_facts=facts,
    )


def read_nejm(path: str | Path, *, split: Split = "test", id_prefix: str = "nejm", strict: bool = False) -> LoadResult:
    """An AgentClinic NEJM file with its load report; case ids are "<id_prefix>-<line number>", and
    `references` holds each case's image URL."""
    check_split(split)
    refs: dict[str, list[str]] = {}

    def convert(r: dict, line: int) -> PatientCase:
        case = nejm_case(r, f"{id_prefix}-{line:04d}", split=split)
        url = text_of(r.get("image_url"))
        if url:
            refs[case.id] = [url]
        return case

    result = load_records(path, "nejm", convert, strict=strict)
    result.references = {c.id: refs[c.id] for c in result.cases if c.id in refs}
    return result


def load_nejm(
    path: str | Path, *, split: Split = "test", id_prefix: str = "nejm", strict: bool = False
) -> list[PatientCase]:
    """The cases of an AgentClinic NEJM file (bad records skipped; `strict`: a LoaderError instead)."""
    return read_nejm(path, split=split, id_prefix=id_prefix, strict=strict).cases
