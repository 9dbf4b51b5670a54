"""ToolUse-v0 task files, generator and reward: the shipped files are what the seeded generator makes, their
pinned facts still match the installed libraries, and answers are matched as documented."""

from __future__ import annotations

import json
from collections import Counter
from importlib.metadata import version

import pytest

from environments.tool_use import families, generate
from environments.tool_use.reward import compute, is_correct, normalize_text
from environments.tool_use.tasks import (
    DATA_DIR,
    GoldStep,
    Task,
    check_pinned_facts,
    load_tasks,
    resolve_arguments,
)


@pytest.fixture(scope="module")
def regenerated() -> dict[str, str]:
    return generate.render_files(generate.generate(seed=0), seed=0)


def test_shipped_files_are_what_seed_0_generates(regenerated):
    """Deterministic generation; also fails if a library update changed any fact or gold answer."""
    for split in ("train", "test"):
        shipped = (DATA_DIR / f"{split}.jsonl").read_text(encoding="utf-8")
        assert regenerated[f"{split}.jsonl"] == shipped, (
            f"data/{split}.jsonl differs from `python -m environments.tool_use.generate --seed 0`; "
            "if a library update changed facts, see test_pinned_facts_match_installed_libraries"
        )
    shipped_manifest = json.loads((DATA_DIR / "manifest.json").read_text())
    new_manifest = json.loads(regenerated["manifest.json"])
    assert (shipped_manifest["seed"], shipped_manifest["counts"]) == (new_manifest["seed"], new_manifest["counts"])


def test_another_seed_gives_other_tasks():
    a = generate.generate(seed=1, train_per_tier=8, test_per_tier=2)
    b = generate.generate(seed=0, train_per_tier=8, test_per_tier=2)
    assert [t.question for t in a["train"]] != [t.question for t in b["train"]]


def test_extra_test_draws_change_no_earlier_task():
    """The extra test tasks are drawn last: train and each tier's first test tasks are what they were without
    them, and the extras are new questions (in neither split), numbered on from the tier's first test tasks."""
    base = generate.generate(seed=0, train_per_tier=8, test_per_tier=2, extra_test_per_tier=0)
    more = generate.generate(seed=0, train_per_tier=8, test_per_tier=2, extra_test_per_tier=3)
    assert more["train"] == base["train"]
    for tier in (1, 2, 3, 4):
        first, extended = ([t for t in x["test"] if t.tier == tier] for x in (base, more))
        assert extended[:2] == first and [t.id for t in extended[2:]] == [f"test-t{tier}-{i:03d}" for i in (2, 3, 4)]
    questions = [t.question for t in more["train"] + more["test"]]
    assert len(questions) == len(set(questions)) == 4 * (8 + 2 + 3)


def test_pinned_facts_match_installed_libraries():
    manifest = json.loads((DATA_DIR / "manifest.json").read_text())
    problems = check_pinned_facts(list(load_tasks("all")))
    installed = {p: version(p) for p in manifest["libraries"]}
    assert not problems, (
        f"{len(problems)} gold steps give different outputs with the installed libraries {installed} than with "
        f"those the task files were generated with {manifest['libraries']}:\n" + "\n".join(problems[:10])
    )


def test_drift_is_detected():
    task = load_tasks("test", tier=1)[0]
    step = task.gold[0]
    tampered = task.model_copy(update={"gold": (step.model_copy(update={"output": step.output + "0"}),)})
    problems = check_pinned_facts([tampered])
    assert len(problems) == 1 and task.id in problems[0] and "pinned" in problems[0]


def test_splits_tiers_and_families():
    train, test = load_tasks("train"), load_tasks("test")
    assert len(train) == 400 and len(test) == 200
    for tier in (1, 2, 3, 4):
        assert sum(t.tier == tier for t in train) == 100 and sum(t.tier == tier for t in test) == 50
        names = {f.__name__.split("_", 1)[1] for f in families.FAMILIES[tier]}
        assert {t.family for t in train if t.tier == tier} == names
        assert {t.family for t in test if t.tier == tier} == names  # stratified: every family is tested
    assert not {t.question for t in train} & {t.question for t in test}
    assert len({t.id for t in train + test}) == 600 and len({t.question for t in test}) == 200
    assert Counter(t.answer_type for t in test).keys() == {"integer", "number", "text", "date"}


def test_multi_call_tasks_really_chain():
    """From tier 2 up, a later call takes an earlier output: the calls cannot all be made up front."""
    for t in load_tasks("all"):
        refs = [json.dumps(s.arguments) for s in t.gold[1:]]
        assert t.tier == 1 or any("${" in r or '"$ref"' in r for r in refs), t.id


def test_resolve_arguments():
    outputs = ["429", "66987244", "2.5"]
    got = resolve_arguments({"expression": "${0} * ${1} / ${2}", "days": {"$ref": 0}, "value": {"$ref": 2}}, outputs)
    assert got == {"expression": "429 * 66987244 / 2.5", "days": 429, "value": 2.5} and isinstance(got["days"], int)
    with pytest.raises(ValueError, match="step 3"):
        resolve_arguments({"x": "${3}"}, outputs)


def test_task_records_validate():
    step = GoldStep(name="calculate", arguments={"expression": "1"}, output="1")
    base = dict(id="x", split="test", family="f", question="q", answer="1", answer_type="integer", gold=(step,))
    Task(tier=1, **base)
    with pytest.raises(ValueError, match="tier 2 but 1 gold steps"):
        Task(tier=2, **base)
    with pytest.raises(ValueError, match="decimals"):
        Task(tier=1, **{**base, "answer_type": "number"})


# ---- answer matching -----------------------------------------------------------------------------------


def _task(answer: str, answer_type: str, decimals: int | None = None) -> Task:
    step = GoldStep(name="calculate", arguments={"expression": "1"}, output=answer)
    return Task(id="x", split="test", tier=1, family="f", question="q", answer=answer, answer_type=answer_type,
                decimals=decimals, gold=(step,))  # fmt: skip


@pytest.mark.parametrize(
    "gold, answer_type, decimals, answer, correct",
    [
        ("66987244", "integer", None, "66987244", True),
        ("66987244", "integer", None, "66,987,244", True),
        ("66987244", "integer", None, "66987244 people", True),
        ("66987244", "integer", None, "66987245", False),  # integers are exact: no relative tolerance
        ("66987244", "integer", None, "about 66987244", False),
        ("3.11", "number", 2, "3.11", True),
        ("3.11", "number", 2, "3.1069", True),  # the unrounded value
        ("3.11", "number", 2, "3.12", True),  # one unit in the last asked-for place
        ("3.11", "number", 2, "3.13", False),
        ("3.11", "number", 2, "3.11 miles", True),
        ("3.11", "number", 2, "3.11 or 3.12", False),
        ("123456.79", "number", 2, "123460", True),  # within the 1e-4 relative tolerance
        ("123456.79", "number", 2, "123500", False),
        ("2021-03-05", "date", None, "2021-03-05", True),
        ("2021-03-05", "date", None, "March 5, 2021", True),
        ("2021-03-05", "date", None, "2021-03-06", False),
        ("2021-03-05", "date", None, "March 2021", False),
        ("Bogotá", "text", None, "bogota", True),
        ("Bogotá", "text", None, '"Bogotá."', True),
        ("Saturday", "text", None, "Sunday", False),
        ("apple, fig, pear", "text", None, "apple,fig ,  pear", True),
        ("apple, fig, pear", "text", None, "fig, apple, pear", False),
    ],
)
def test_answer_matching(gold, answer_type, decimals, answer, correct):
    assert is_correct(_task(gold, answer_type, decimals), answer) is correct


def test_reward_breakdown_sums_to_reward():
    r = compute(_task("7", "integer"), "7", tool_calls=3, tool_cost=0.01)
    assert r.reward == pytest.approx(0.97) and r.success is True
    assert r.breakdown["correct"] + r.breakdown["tool_cost"] == pytest.approx(r.reward)
    assert compute(_task("7", "integer"), None, tool_calls=0).breakdown == {
        "correct": 0.0,
        "tool_cost": -0.0,
        "tool_calls": 0.0,
        "answered": 0.0,
    }


def test_normalize_text():
    assert normalize_text("  The  Hague. ") == "the hague"
    assert normalize_text("'Zürich'") == "zurich"
