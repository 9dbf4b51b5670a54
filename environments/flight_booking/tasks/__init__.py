"""Task records for FlightBooking-v0 and the shipped task files (data/tasks/train.jsonl, test.jsonl).

A task is τ-bench's (user instruction, gold actions, required outputs), with the user's side made explicit
so an offline, rule-based user can play it:
  * `user`: persona, reason for the call (the opening message), known info (what the user can tell the
    agent, by topic), unknown info (topics the user does not know), instructions (the scenario in words,
    for an LLM user), and `goals`: what the user wants, one at a time, in order;
  * `gold_actions`: the tool calls a policy-following agent makes (reads included), computed by the
    generator through the same tools the agent calls; every goal owns a consecutive run of them;
  * `outputs`: strings the agent must say (e.g. a flight status or an amount).

A goal's `outcome` is what the policy lets the agent do: "do" (exactly one write, after the user
confirms), "refuse" (no write: the policy forbids it), "transfer" (out of scope: transfer_to_human_agents,
which ends the episode) or "answer" (reads, then say the `answer` strings).

The generator that writes them is beside: `generator` (lists the families of ../families/ and turns their
drafts into tasks), `drafts` (what families build from and into), `wording` (how generated tasks talk).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pydantic

from agentrl.core.bounded import iter_jsonl

from ..tools import TOOLS_BY_NAME, WRITE_TOOLS

MAX_TASK_BYTES = 1 << 20  # one task line: the shipped ones are about 1 KB

DATA_DIR = Path(__file__).parent.parent / "data"
TASKS_DIR = DATA_DIR / "tasks"
SPLITS = ("train", "test")

# What a user can be asked about. The rule-based user (users.py) recognises each topic by keywords.
TOPICS = ("user_id", "reservation_id", "reason", "trip", "trip_type", "date", "cabin", "passengers", "bags",
          "insurance", "payment", "flight")  # fmt: skip
GoalKind = Literal["book", "cancel", "change_flights", "change_cabin", "add_bags", "remove_bags", "add_insurance",
                   "change_passengers", "change_passenger_count", "compensation", "transfer", "info"]  # fmt: skip
Outcome = Literal["do", "refuse", "transfer", "answer"]


class Frozen(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class Action(Frozen):
    name: str
    arguments: dict[str, Any]

    @pydantic.field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in TOOLS_BY_NAME:
            raise ValueError(f"unknown tool {v!r} (tools: {', '.join(TOOLS_BY_NAME)})")
        return v


class Goal(Frozen):
    kind: GoalKind
    request: str  # how the user asks for it
    outcome: Outcome
    actions: int = pydantic.Field(ge=0)  # how many consecutive gold actions serve this goal
    confirm: list[list[str]] = []  # the user agrees to a proposal that mentions one string of every group ...
    reject: list[str] = []  # ... and none of these
    choose: list[str] = []  # flight numbers the user picks when the agent offers them
    answer: list[str] = []  # "answer" goals are met once the agent has said all of these
    insist: int = pydantic.Field(0, ge=0, le=3)  # refusals the user pushes back on before accepting
    pushback: str = ""  # what the user says when pushing back
    gold_proposal: str = ""  # the gold agent's confirmation request ("do" goals)
    gold_reply: str = ""  # the gold agent's message after the goal: done / refusal / answer


class UserScenario(Frozen):
    persona: str
    reason: str  # the user's opening message
    known_info: dict[str, str]  # topic -> what the user says when asked about it
    unknown_info: list[str] = []  # topics the user does not know
    instructions: str  # the whole scenario in words, for an LLM user
    goals: list[Goal]

    @pydantic.model_validator(mode="after")
    def _topics(self) -> UserScenario:
        for t in [*self.known_info, *self.unknown_info]:
            if t not in TOPICS:
                raise ValueError(f"unknown topic {t!r} (topics: {', '.join(TOPICS)})")
        if not self.goals:
            raise ValueError("a scenario needs at least one goal")
        return self


class Task(Frozen):
    id: str
    split: Literal["train", "test"]
    family: str  # which generator family made it
    user_id: str
    user: UserScenario
    gold_actions: list[Action]
    outputs: list[str] = []

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Task:
        if sum(g.actions for g in self.user.goals) != len(self.gold_actions):
            raise ValueError(
                f"task {self.id}: goals own {sum(g.actions for g in self.user.goals)} actions, gold has {len(self.gold_actions)}"
            )
        for g, acts in zip(self.user.goals, self.goal_actions()):
            writes = [a.name for a in acts if a.name in WRITE_TOOLS]
            if g.outcome == "do" and len(writes) != 1:
                raise ValueError(f"task {self.id}: a 'do' goal needs exactly one write, has {writes}")
            if g.outcome != "do" and writes:
                raise ValueError(f"task {self.id}: a '{g.outcome}' goal may not write, has {writes}")
            if (g.outcome == "transfer") != any(a.name == "transfer_to_human_agents" for a in acts):
                raise ValueError(f"task {self.id}: transfer_to_human_agents belongs to, and only to, 'transfer' goals")
        if any(g.outcome == "transfer" for g in self.user.goals[:-1]):
            raise ValueError(f"task {self.id}: a transfer ends the episode, so it must be the last goal")
        return self

    def goal_actions(self) -> list[list[Action]]:
        out, i = [], 0
        for g in self.user.goals:
            out.append(self.gold_actions[i : i + g.actions])
            i += g.actions
        return out

    @property
    def expects_transfer(self) -> bool:
        return any(a.name == "transfer_to_human_agents" for a in self.gold_actions)

    def __deepcopy__(self, memo: dict[int, Any]) -> Task:
        return self  # immutable: env snapshots share it instead of copying it


def read_tasks(path: str | Path) -> list[Task]:
    """Tasks from a JSONL file, one Task per line; errors name the line. Each line is capped (1 MiB) and its
    nesting bounded before it is parsed (`agentrl.core.bounded`); a task file is a benchmark's definition, so a
    bad line is an error, not a skip."""
    path = Path(path)
    tasks = []
    for i, obj, problem in iter_jsonl(path, max_line_bytes=MAX_TASK_BYTES):
        if problem is not None:
            raise ValueError(f"{path}:{i}: not a valid task: {problem}")
        try:
            tasks.append(Task.model_validate(obj))
        except pydantic.ValidationError as exc:
            raise ValueError(
                f"{path}:{i}: not a valid task: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            ) from None
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate task ids")
    return tasks


@lru_cache(maxsize=8)
def _shipped(split: str) -> tuple[Task, ...]:
    return tuple(read_tasks(TASKS_DIR / f"{split}.jsonl"))


def shipped_tasks(split: str) -> list[Task]:
    """The shipped tasks of a split ("train", "test" or "all"), made by generate.py for the default world."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return [t for s in SPLITS if split in (s, "all") for t in _shipped(s)]


def render_tasks(tasks: list[Task]) -> str:
    return "".join(
        json.dumps(t.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")) + "\n" for t in tasks
    )
