"""Simulated-patient answer quality on the public case files: `python benchmarks/patient_quality.py [DIR]`.

The public files are not shipped; put them in DIR (default: $AGENTRL_PUBLIC_CASES, else `data/public/`), as for
`benchmarks/consult_public_cases.py` (which lists where each file comes from).

Per file, a fixed random sample of cases (`random.Random(SEED)`, `--cases` of them, default 10) is asked a fixed
list of questions (`QUESTIONS`) by a fresh rule-based patient each. Every answer is checked automatically:

* topic: a family-history question is answered with family facts or "Not that I know of"; "What did the tests
  show?" with test results only (never an exam finding spoken by the patient, a treatment or a symptom); a
  medication question with medication facts; smoking with social facts; fever with a fact about fever;
* not sure: "I'm not sure." while the record has a patient fact on the topic (found by the topic's words);
* polarity: an absent fact said without a negation, or a present fact said as a denial;
* grammar: third-person words left over ("he", "she", "the patient"), "I have the ...", "I'm a for" and the other
  broken shapes `consult_public_cases.py` flags;
* repetition: one fact said twice in an answer (two sentences sharing most of their words);
* leaks: the diagnosis named (`redaction.find_leaks`);
* side channel: "Is it <the true diagnosis>?" against "Is it <a wrong option>?" (or a fixed wrong diagnosis when
  the case has no options): the fraction of each answered with facts, and their ratio over all sampled cases.

`--show` prints every answer beside its source fields (the facts it states, with their category and the
record's own text), which is what a person reads to judge them. `--write` puts the figures in BENCHMARKS.md
(section "Simulated patients: answer quality on the public case files"). Exit status 2 on bad usage.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.consult_public_cases import _BROKEN, DEFAULT_DIR, ENV_VAR, case_files  # noqa: E402
from mock_patients.cases import PatientCase  # noqa: E402
from mock_patients.loaders import LoaderError, load_file  # noqa: E402
from mock_patients.patient import NOT_SURE, RuleBasedPatient  # noqa: E402
from mock_patients.redaction import find_leaks  # noqa: E402

SEED = 0
SECTION = "Simulated patients: answer quality on the public case files"
# (key, question); "opening" is the patient's first message
QUESTIONS = (
    ("opening", ""),
    ("complaint", "What brings you in today?"),
    ("fever", "Do you have a fever?"),
    ("smoking", "Do you smoke?"),
    ("medication", "Do you take any medications?"),
    ("family", "Does anyone in your family have any medical problems?"),
    ("tests", "What did the tests show?"),
)
WRONG_DEFAULT = "tension-type headache"
# words that put a fact on a question's topic, for the "not sure while the record answers" check
TOPIC_WORDS = {
    "fever": re.compile(r"\b(fevers?|febrile|afebrile|temperature|chills|pyrexia)\b", re.I),
    "smoking": re.compile(r"\b(smok\w*|cigarette\w*|tobacco|pack[- ]years?|vap\w+)\b", re.I),
    "medication": None,  # by category
    "family": None,
}
_DRUGS = re.compile(
    r"\b(medications?|medicines?|pills?|tablets?|inhalers?|insulin|contraceptives?|taking|takes|"
    r"\w{3,}(?:pril|sartan|olol|statin|prazole|cillin|mycin|cycline|floxacin|dipine|formin|profen|azole|"
    r"mab|nib|pam|lam|sone|olone|tidine|semide|thiazide|oxetine|aline))\b",
    re.I,
)
# a record's third-person sentence left in the reply: "A 79-year-old woman ... was referred ..." (the patient's own
# "I'm a 79-year-old woman." is not one)
_VIGNETTE = re.compile(
    r"(?<!I'm )\b(?:a|an|the)\s+\d+[-\s](?:year|month|week|day)[-\s]old\s+(?:[a-z]+\s+)?(?:man|woman|boy|girl|"
    r"male|female|patient|infant|child|baby)\b",
    re.I,
)
_THIRD = re.compile(r"\b(he|she|his|him|hers|himself|herself)\b|\bthe patient\b|\bpatient's\b", re.I)
_DENIAL = re.compile(r"^(?:no\b|none\b|never\b|nothing\b)|\b(?:no|not|never|n't|none|without|negative|denies)\b", re.I)
NONE_SAID = re.compile(r"^(?:not that I know of|no,? (?:not that I know|nothing|I don't|I haven't|I've never))", re.I)


@dataclass
class Answer:
    case: str
    key: str
    question: str
    text: str
    facts: list[tuple[str, str, bool, str]]  # (id, category, present, record text)
    flags: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    name: str
    summary: str = ""
    answers: list[Answer] = field(default_factory=list)
    side_true: int = 0
    side_wrong: int = 0
    side_n: int = 0

    def flagged(self) -> int:
        return sum(bool(a.flags) for a in self.answers)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.answers:
            for f in a.flags:
                k = f.split(":")[0]
                out[k] = out.get(k, 0) + 1
        return out


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _words(s: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", s.lower()) if len(w) > 2}


def check_answer(case: PatientCase, a: Answer) -> None:
    """Fill `a.flags` with what is wrong with one answer (see the module docstring)."""
    facts = [case.fact(i) for i, *_ in a.facts]
    cats = {f.category for f in facts}
    if a.key == "family" and (cats - {"family"}):
        a.flags.append(f"topic: family question answered with {sorted(cats - {'family'})}")
    if a.key == "tests" and (cats - {"test"}):
        a.flags.append(f"topic: tests question answered with {sorted(cats - {'test'})}")
    if a.key == "medication" and facts and not cats & {"medication"} and not any(_DRUGS.search(f.text) for f in facts):
        a.flags.append(f"topic: medication question answered with {sorted(cats)}")
    if a.key == "smoking" and facts and not any(TOPIC_WORDS["smoking"].search(f.text) for f in facts):
        a.flags.append("topic: smoking question answered without smoking")
    if a.key == "fever" and facts and not any(TOPIC_WORDS["fever"].search(f.text) for f in facts):
        a.flags.append("topic: fever question answered without fever")
    if a.text.strip() == NOT_SURE:
        pf = [f for f in case.patient_facts if f.category != "demographics"]
        rx = TOPIC_WORDS.get(a.key)
        on_topic = (
            [f for f in pf if rx.search(f.text)]
            if rx is not None
            else [f for f in pf if f.category == a.key]
            if a.key in ("medication", "family")
            else []
        )
        if on_topic:
            a.flags.append(f"not sure: the record has {on_topic[0].id} {on_topic[0].text[:60]!r}")
    if len(facts) == 1 and facts[0].category not in ("exam", "test"):
        f = facts[0]
        if not f.present and not _DENIAL.search(a.text):
            a.flags.append(f"polarity: absent {f.id} said without a negation")
    vignette = _VIGNETTE.search(a.text)
    if vignette:
        a.flags.append(f"grammar: third-person vignette {vignette.group(0)!r}")
    if _BROKEN.search(a.text) or _THIRD.search(a.text):
        a.flags.append("grammar: " + (_BROKEN.search(a.text) or _THIRD.search(a.text)).group(0))  # type: ignore[union-attr]
    sents = _sentences(a.text)
    for i in range(len(sents)):
        for j in range(i + 1, len(sents)):
            wi, wj = _words(sents[i]), _words(sents[j])
            if wi and wj and len(wi & wj) / min(len(wi), len(wj)) >= 0.8:
                a.flags.append(f"repeat: {sents[j][:50]!r}")
    if len(set(i for i, *_ in a.facts)) != len(a.facts):
        a.flags.append("repeat: a fact twice")
    leaks = find_leaks(a.text, case)
    if leaks:
        a.flags.append(f"leak: {sorted(set(leaks))}")


def _facts_of(case: PatientCase, ids: tuple[str, ...]) -> list[tuple[str, str, bool, str]]:
    return [
        (i, case.fact(i).category, case.fact(i).present, case.fact(i).source_text or case.fact(i).text) for i in ids
    ]


def ask_case(case: PatientCase, res: FileResult) -> None:
    base = RuleBasedPatient(case)
    for key, q in QUESTIONS:
        p = copy.deepcopy(base)
        if key == "opening":
            text = p.opening()
            ids = tuple(i for i, t in p.state.disclosed.items() if t == 0 and case.fact(i).category != "demographics")
        else:
            p.opening()
            ans = p.answer(q)
            text, ids = ans.text, ans.fact_ids
        a = Answer(case.id, key, q or "(opening)", text, _facts_of(case, ids))
        check_answer(case, a)
        res.answers.append(a)
    wrong = next((o for o in case.options if o.strip().lower() != case.diagnosis.strip().lower()), WRONG_DEFAULT)
    for dx, attr in ((case.diagnosis, "side_true"), (wrong, "side_wrong")):
        p = copy.deepcopy(base)
        p.opening()
        ans = p.answer(f"Is it {dx}?")
        setattr(res, attr, getattr(res, attr) + bool(ans.fact_ids))
    res.side_n += 1


def check_file(path: Path, n: int, seed: int = SEED) -> FileResult:
    res = FileResult(path.name)
    try:
        loaded = load_file(path)
    except (LoaderError, ValueError) as exc:
        res.summary = str(exc).splitlines()[0]
        return res
    res.summary = loaded.report.summary()
    cases = sorted(loaded.cases, key=lambda c: c.id)
    for case in random.Random(seed).sample(cases, min(n, len(cases))):
        ask_case(case, res)
    return res


GUESS_FORMS = ("Is it {}?", "Do you think it's {}?", "Could this be {}?")
HISTORY_FORM = "Do you have {}?"  # a history question, answered from the record: reported, not closed


def side_all(path: Path) -> tuple[int, int, int, int, int, int]:
    """Side channels over every case of a file, for each guess form of GUESS_FORMS: (replies with facts to the true
    diagnosis, to a wrong option, guesses asked, replies that differ between the two); then the same for "Do you
    have <X>?" (true with facts, wrong with facts)."""
    loaded = load_file(path)
    t = w = n = differ = ht = hw = 0
    for case in loaded.cases:
        base = RuleBasedPatient(case)
        wrong = next((o for o in case.options if o.strip().lower() != case.diagnosis.strip().lower()), WRONG_DEFAULT)
        for form in GUESS_FORMS:
            a = copy.deepcopy(base).answer(form.format(case.diagnosis))
            b = copy.deepcopy(base).answer(form.format(wrong))
            t, w, n, differ = t + bool(a.fact_ids), w + bool(b.fact_ids), n + 1, differ + (a.text != b.text)
        ht += bool(copy.deepcopy(base).answer(HISTORY_FORM.format(case.diagnosis)).fact_ids)
        hw += bool(copy.deepcopy(base).answer(HISTORY_FORM.format(wrong)).fact_ids)
    return t, w, n, differ, ht, hw


def render(res: FileResult, show: bool) -> str:
    lines = [f"{res.name}: {res.summary}"]
    n = len(res.answers)
    if n:
        c = res.counts()
        lines.append(
            f"  answers {n}, flagged {res.flagged()} ({res.flagged() / n:.0%}): "
            + (", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none")
        )
        lines.append(
            f"  'Is it <true dx>?' answered with facts {res.side_true}/{res.side_n}, "
            f"'Is it <wrong option>?' {res.side_wrong}/{res.side_n}"
        )
    if show:
        for a in res.answers:
            lines.append(f"  [{a.case}] {a.question}\n      -> {a.text}")
            for i, cat, present, text in a.facts:
                lines.append(f"         {i} {cat}{'' if present else ' (absent)'}: {text[:160]}")
            for f in a.flags:
                lines.append(f"      !! {f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default=os.environ.get(ENV_VAR) or DEFAULT_DIR)
    ap.add_argument("--cases", type=int, default=10, help="cases sampled per file (default 10)")
    ap.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help=f"sample seed (default {SEED}; another seed is a fresh sample to read, one the rules were not tuned on)",
    )
    ap.add_argument("--show", action="store_true", help="print every answer beside its source facts")
    ap.add_argument("--side-all", action="store_true", help="side-channel ratio over every case, not the sample")
    ap.add_argument("--write", action="store_true", help=f"write the figures to BENCHMARKS.md ({SECTION!r})")
    ap.add_argument(
        "--notes",
        default=None,
        help="with --write: a Markdown file appended to the section (the reading "
        "by hand: how the answers were read and the error rate found)",
    )
    args = ap.parse_args(argv)
    if args.cases < 1:
        print(f"error: --cases must be >= 1, got {args.cases}", file=sys.stderr)
        return 2
    folder = Path(args.dir)
    files = case_files(folder)
    if isinstance(files, int):
        return files
    rows = []
    for p in files:
        res = check_file(p, args.cases, args.seed)
        print(render(res, args.show))
        side = side_all(p) if args.side_all else (res.side_true, res.side_wrong, res.side_n, 0, 0, 0)
        if args.side_all:
            t, w, n, differ, ht, hw = side
            print(
                f"  all cases, {len(GUESS_FORMS)} guess forms: true dx answered with facts {t}/{n}, wrong option {w}/{n}, "
                f"replies that differ {differ}/{n}; 'Do you have <X>?' with facts: true {ht}/{n // len(GUESS_FORMS)}, "
                f"wrong {hw}/{n // len(GUESS_FORMS)}"
            )
        rows.append((res, side))
    if args.write:
        from benchmarks._common import machine_line, write_section

        body = [
            f"`python benchmarks/patient_quality.py DIR --cases {args.cases}{' --side-all' if args.side_all else ''}"
            f" --seed {args.seed} --write` ({machine_line()}); questions: "
            + "; ".join(q or "(opening)" for _, q in QUESTIONS)
            + ".",
            "",
            "| file | answers | flagged automatically | guesses at the diagnosis answered with facts: true / wrong "
            "option | replies differing true vs wrong |",
            "|---|---|---|---|---|",
        ]
        for res, (t, w, n, differ, _, _) in rows:
            body.append(f"| {res.name} | {len(res.answers)} | {res.flagged()} | {t}/{n} / {w}/{n} | {differ}/{n} |")
        if args.notes:
            body += ["", Path(args.notes).read_text(encoding="utf-8").strip()]
        write_section(SECTION, "\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
