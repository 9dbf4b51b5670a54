"""Seeded case generator over the knowledge table.

    python -m mock_patients.generate --seed 0 --n 320 --test-extra 36 --out mock_patients/data/cases.jsonl

Each case samples a disease by prior weight, then sex and age, then EVERY finding of the table
independently with P(finding | disease, sex) — the same numbers the Bayesian diagnoser uses, so its
posterior is the generating model's own. The case records all present findings (`closed_world`) plus the
absent ones a clinician would ask about (the disease's own findings and the strong findings of its
differential) as explicit negatives. The same seed and n always give the same file, byte for byte.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from mock_patients.cases import (
    Demographics,
    Observation,
    PatientCase,
    Symptom,
    save_cases,
)
from mock_patients.facts import FactBuilder, symptom_sentence
from mock_patients.knowledge import Disease, KnowledgeTable, default_table
from mock_patients.names import LeakFilter

TEST_EVERY = 5  # every 5th case goes to the test split (20%)
_SEVERITY = (("mild", 0.3), ("moderate", 0.45), ("severe", 0.25))
_HISTORY_CATEGORY = {"pmh": "pmh", "social": "social", "family": "family", "medication": "medication"}
_DIFFERENTIAL_STRONG = 0.5  # a differential disease's findings at least this likely become pertinent negatives


def _weighted(rng: random.Random, items: list, weights: list[float]):
    return rng.choices(items, weights=weights, k=1)[0]


def _onset(rng: random.Random, tempo: str) -> str:
    lo, hi, unit = {
        "hours": (2, 18, "hour"),
        "days": (1, 6, "day"),
        "weeks": (1, 5, "week"),
        "months": (2, 11, "month"),
    }[tempo]
    n = rng.randint(lo, hi)
    return f"about {'a' if unit != 'hour' else 'an'} {unit}" if n == 1 else f"about {n} {unit}s"


def sample_findings(rng: random.Random, table: KnowledgeTable, d: Disease, sex: str) -> dict[str, bool]:
    """Every table finding's presence, in table order (the order matters for reproducibility)."""
    return {f.id: rng.random() < table.p_finding(d, f.id, sex) for f in table.findings}


def pertinent(table: KnowledgeTable, d: Disease, sex: str) -> set[str]:
    ids = {f for f, p in d.findings.items()}
    for dd in d.differential:
        ids |= {f for f, p in table.disease(dd).findings.items() if p >= _DIFFERENTIAL_STRONG}
    return {f for f in ids if table.finding(f).sex in (None, sex)}


def generate_case(table: KnowledgeTable, seed: int, index: int, *, split: str | None = None) -> PatientCase:
    """Case `index` of `seed`'s stream; `split` None: test one in TEST_EVERY, else train."""
    rng = random.Random(seed * 1_000_003 + index)  # per-case stream: case i does not depend on n
    diseases = list(table.diseases)
    while True:  # resample until the patient has at least one symptom to present with
        d = _weighted(rng, diseases, [x.prior for x in diseases])
        sex = "female" if rng.random() < d.p_female else "male"
        age = rng.randint(*d.age)
        present = sample_findings(rng, table, d, sex)
        symptoms = [f for f in table.findings if f.kind == "symptom" and present[f.id]]
        if symptoms:
            break
    negatives = pertinent(table, d, sex)
    # chief complaint: the present symptom the disease makes most likely (plain-template ones first)
    cc = max(symptoms, key=lambda f: (not f.yes, table.p_finding(d, f.id, sex)))
    timing = {
        f.id: (_onset(rng, d.tempo), _weighted(rng, [s for s, _ in _SEVERITY], [w for _, w in _SEVERITY]))
        for f in symptoms
    }

    b = FactBuilder()
    b.add(f"Age {age}", "demographics", patient_text=f"I'm {age} years old.", link=False)
    b.add(f"Sex: {sex}", "demographics", patient_text=f"I'm a {'woman' if sex == 'female' else 'man'}.", link=False)
    sym_records: list[Symptom] = []
    hist: dict[str, list[str]] = {k: [] for k in _HISTORY_CATEGORY.values()}
    exams: list[Observation] = []
    tests: list[Observation] = []
    ordered = [cc] + [f for f in table.findings if f.id != cc.id]
    for f in ordered:
        is_present = present[f.id]
        if not is_present and f.id not in negatives:
            continue
        if f.kind == "symptom":
            onset, sev = timing.get(f.id, (None, None))
            cat = "chief_complaint" if f.id == cc.id else "symptom"
            if is_present:
                b.add(
                    f"{f.name.capitalize()} for {onset.removeprefix('about ')}, {sev}",
                    cat,
                    finding=f.id,
                    patient_text=symptom_sentence(f, onset, sev),
                )
            else:
                b.add(f"No {f.name}", "symptom", present=False, finding=f.id, patient_text=f.patient_no())
            sym_records.append(Symptom(name=f.name, present=is_present, onset=onset, severity=sev, finding=f.id))  # type: ignore[arg-type]
        elif f.kind == "history":
            cat = _HISTORY_CATEGORY[f.section]
            text = f.name[0].upper() + f.name[1:] if is_present else f"No {f.name}"
            b.add(
                text,
                cat,
                present=is_present,
                finding=f.id,
                patient_text=f.patient_yes() if is_present else f.patient_no(),
            )  # type: ignore[arg-type]
            if is_present:
                hist[cat].append(f.name)
        else:
            spec = table.test_spec(f.test)
            text = f"{spec.name[0].upper() + spec.name[1:]}: {f.result if is_present else 'no ' + f.name}"
            b.add(text, f.kind, present=is_present, finding=f.id, test=f.test, link=False)  # type: ignore[arg-type]
            if is_present:
                (exams if f.kind == "exam" else tests).append(
                    Observation(test=spec.name, result=f.result, test_id=f.test, finding=f.id)
                )
    facts = tuple(b.facts)
    others = [f for f in symptoms if f.id != cc.id]
    denied = [table.finding(s.finding).name for s in sym_records if not s.present and s.finding][:4]
    hpi = (
        f"{age}-year-old {'woman' if sex == 'female' else 'man'} with {cc.name} for {timing[cc.id][0].removeprefix('about ')}"
        + (f", also reporting {', '.join(f.name for f in others[:4])}" if others else "")
        + (f"; denies {', '.join(denied)}" if denied else "")
        + "."
    )
    case = PatientCase(
        id=f"gen-{seed}-{index:04d}",
        source="generated",
        split=split or ("test" if index % TEST_EVERY == TEST_EVERY - 1 else "train"),
        demographics=Demographics(age=age, sex=sex),  # type: ignore[arg-type]
        chief_complaint=cc.name,
        history_of_present_illness=hpi,
        symptoms=tuple(sym_records),
        past_medical_history=tuple(hist["pmh"]),
        social_history=tuple(hist["social"]),
        family_history=tuple(hist["family"]),
        medications=tuple(hist["medication"]),
        exam_findings=tuple(exams),
        test_results=tuple(tests),
        diagnosis=d.name,
        diagnosis_id=d.id,
        differential=tuple(table.disease(x).name for x in d.differential),
        key_facts=facts,
        closed_world=True,
    )
    _assert_no_leak(case, table)
    return case


def _assert_no_leak(case: PatientCase, table: KnowledgeTable) -> None:
    """A fact naming its own diagnosis would let the patient reveal it: a table bug, refuse to ship it."""
    leak = LeakFilter.for_case(case, table)
    for f in case.key_facts:
        for text in (f.text, f.patient_text or ""):
            hit = leak.find(text)
            if hit:
                raise ValueError(
                    f"case {case.id} ({case.diagnosis}): fact {f.id} {text!r} names the diagnosis ({hit!r})"
                )


def generate(seed: int, n: int, table: KnowledgeTable | None = None, *, test_extra: int = 0) -> list[PatientCase]:
    """n cases split one in TEST_EVERY to test, then `test_extra` more cases, all test (module docstring)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if test_extra < 0:
        raise ValueError(f"test_extra must be >= 0, got {test_extra}")
    table = table or default_table()
    return [generate_case(table, seed, i) for i in range(n)] + [
        generate_case(table, seed, i, split="test") for i in range(n, n + test_extra)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mock_patients.generate", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=320)
    p.add_argument("--test-extra", type=int, default=36, help="cases appended to the test split only")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "cases.jsonl")
    args = p.parse_args(argv)
    cases = generate(args.seed, args.n, test_extra=args.test_extra)
    save_cases(args.out, cases)
    by_split = {s: sum(c.split == s for c in cases) for s in ("train", "test")}
    print(
        f"wrote {len(cases)} cases ({by_split['train']} train, {by_split['test']} test, "
        f"{len({c.diagnosis_id for c in cases})} diseases) to {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
