"""`ToolUseEnv` (agentrl/ToolUse-v0): answer a question with one to four chained tool calls, then final_answer.

Episode: the first observation is the system prompt (with the tool schemas) and the question. Each agent
message holds one tool call in the `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` format; the
tool's output (or an "Error: ..." explaining a bad call) comes back as the next observation.
`final_answer(answer)` ends the episode, and the one terminal reward is computed by reward.py
(normalized exact match, minus `tool_cost` per tool call). `max_turns` truncates with correct = 0.

Plain text with no tool call is not taken as an answer: answering by text is easy to do by accident
(thinking aloud), and the reward needs one unambiguous answer. The env replies with NUDGE as a user
message, counts it in state.nudges, and the turn is used up.

All mutable episode state lives in `self.state` (an EpisodeState), so snapshot()/restore() branch
episodes exactly; the task itself is immutable and shared between snapshots.

Prompt size options (for small models and CPU training; the defaults give the full prompt):
  * `tools`: "all", or a list of tool families (TOOL_FAMILIES: calculator, units, dates, geo, text) and/or
    tool names. Only those tools (plus final_answer, always) are shown and callable: the toolset is per
    instance, so calling another one is an "Error: unknown tool" like any unknown name. Tasks whose gold
    chain needs a tool that is not shown are left out (task_ids() and seeded draws see only the rest).
  * `schema`: "json" (each tool's JSON schema; `prompt().tools` carries them so a chat template with tools=
    support renders them) or "compact" (one line per tool, the call format and one example call;
    `prompt().tools` is None — and info carries no "tools" / "system_without_tools" — so every formatter
    shows the compact system prompt as it is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.tools import Tool, ToolCall, ToolError, ToolResult, ToolSet, tool
from agentrl.core.types import Message

from . import reward
from .tasks import Task, load_tasks
from .tools import TOOL_FAMILIES, TOOLS

NUDGE = "Please use a tool or call final_answer."
SYSTEM_PROMPT = (
    "You answer questions by calling tools. Call exactly one tool per message; its result comes back in the "
    "next message. Use earlier results as arguments of later calls. When you know the answer, call "
    "final_answer with the answer alone: a number, a date (YYYY-MM-DD) or a name, with no explanation, "
    "rounded as the question asks."
)


@dataclass
class EpisodeState:
    task: Task  # immutable: shared, not copied, by snapshots (Task.__deepcopy__)
    answer: str | None = None  # set by final_answer
    tool_calls: int = 0  # calls of tools other than final_answer, failed calls included (the reward's cost)
    nudges: int = 0  # plain-text messages answered with NUDGE


SCHEMA_STYLES = ("json", "compact")
# schema="compact": one short summary per tool (the JSON schemas' descriptions are written for bigger
# prompts); a tool missing here would use its description's first sentence.
COMPACT_SUMMARIES = {
    "calculate": "Evaluate arithmetic (+ - * / ** and parentheses, sqrt, round); no thousands separators.",
    "convert_units": "Convert a value between units, e.g. km, mile, km**2, mile**2, foot, kg, degC.",
    "days_between": "Days from start to end (dates as YYYY-MM-DD).",
    "add_days": "The date some days after a date (negative: before).",
    "add_months": "The date some calendar months after a date.",
    "weekday": "The day of the week of a date.",
    "country_fact": "A fact about a country (name or ISO code).",
    "city_fact": "A fact about a city; country picks one of same-named cities.",
    "text_length": "Number of characters in a text.",
    "count_occurrences": "Count a substring in a text, ignoring case.",
    "reverse_text": "The text reversed.",
    "word_count": "Number of words in a text.",
    "sort_items": "Sort strings A to Z, ignoring case.",
    "final_answer": "Give the answer and end the episode.",
}
# schema="compact": the example call shown is the first of these whose tool is shown (final_answer always is).
COMPACT_EXAMPLES = (
    ToolCall("country_fact", {"country": "France", "field": "capital"}),
    ToolCall("calculate", {"expression": "(3 + 4) * 2"}),
    ToolCall("convert_units", {"value": 12.5, "from_unit": "km", "to_unit": "mile"}),
    ToolCall("add_days", {"date": "2021-03-05", "days": 30}),
    ToolCall("city_fact", {"city": "Paris", "field": "population"}),
    ToolCall("text_length", {"text": "hello world"}),
    ToolCall("final_answer", {"answer": "Paris"}),
)


@tool
def final_answer(answer: str | int | float, state: EpisodeState) -> str:
    """Give your final answer and end the episode. Call it once, with the answer alone.

    Args:
        answer: the answer, e.g. "Paris", 429, 3.14 or "2021-03-05"; round as the question asks
    """
    text = str(answer).strip()
    if not text:
        raise ToolError('answer is empty; give the answer itself, e.g. 429 or "Paris"')
    if len(text) > reward.MAX_ANSWER_CHARS:
        raise ToolError(f"answer has {len(text)} characters; at most {reward.MAX_ANSWER_CHARS} (give the answer alone)")
    state.answer = text
    return f"Final answer recorded: {text}"


def select_tools(tools: str | Sequence[str] = "all") -> tuple[Tool, ...]:
    """The tools a `tools=` option shows, in TOOLS order, final_answer last. `tools` is "all" or a list of
    tool families (TOOL_FAMILIES) and/or tool names ("all" and "final_answer" may appear in the list; a
    single name may be given as a string)."""
    entries = [tools] if isinstance(tools, str) else tools
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(f'tools must be "all" or a non-empty list of tool families and/or tool names, got {tools!r}')
    by_name = {t.name: t for t in TOOLS}
    chosen: set[str] = set()
    for entry in entries:
        if entry == "all":
            chosen.update(by_name)
        elif isinstance(entry, str) and entry in TOOL_FAMILIES:
            chosen.update(t.name for t in TOOL_FAMILIES[entry])
        elif isinstance(entry, str) and (entry in by_name or entry == final_answer.name):
            chosen.add(entry)
        else:
            raise ValueError(
                f'unknown tool or tool family {entry!r} in tools={tools!r}; allowed: "all", the families '
                f"{', '.join(TOOL_FAMILIES)}, the tools {', '.join(by_name)} (final_answer is always included)"
            )
    return tuple(t for t in TOOLS if t.name in chosen) + (final_answer,)


class _CompactToolSet(ToolSet):
    """A ToolSet whose prompt block is the compact one (built once): the base reset() puts it in the system
    prompt, and ToolUseEnv.template_tools() offers no JSON schemas, so no formatter renders them instead."""

    def __init__(self, tools: tuple[Tool, ...]):
        super().__init__(tools)
        example = next(c for c in COMPACT_EXAMPLES if c.name in self.tools)
        summaries = {k: v for k, v in COMPACT_SUMMARIES.items() if k in self.tools}
        self._block = self.compact_prompt_block(example, summaries)

    def prompt_block(self) -> str:
        return self._block


class ToolUseEnv(MultiTurnEnv):
    """split: "train" (400 tasks, 100 per tier), "test" (200, 50 per tier) or "all"; tier: None, 1-4 or a list
    such as [1, 2] (tool calls the gold chain needs); tool_cost: subtracted from the terminal reward per tool
    call; rel_tol: relative tolerance for number answers (reward.py). One tool call per message (the base class's max_tool_calls_per_turn).
    tools: "all" or a list of tool families / tool names to show (tasks needing other tools are left out);
    schema: "json" (full JSON schemas) or "compact" (one line per tool). See the module docstring."""

    tools = TOOLS + (final_answer,)
    max_turns = 8  # tier 4 needs 5 turns (4 calls + final_answer); 8 leaves room for a few mistakes

    def __init__(
        self,
        split: str = "train",
        tier: int | list[int] | None = None,
        tool_cost: float = 0.0,
        max_turns: int = 8,
        render_mode: str | None = None,
        rel_tol: float = reward.DEFAULT_REL_TOL,
        tools: str | Sequence[str] = "all",
        schema: str = "json",
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        for name, value in (("tool_cost", tool_cost), ("rel_tol", rel_tol)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if schema not in SCHEMA_STYLES:
            raise ValueError(f"schema must be one of {', '.join(map(repr, SCHEMA_STYLES))}, got {schema!r}")
        self.split, self.tier = split, tier
        self.tool_cost, self.rel_tol = float(tool_cost), float(rel_tol)
        self.schema = schema
        self.tools = select_tools(tools)  # per instance: shadows the class's full tuple
        self.toolset = _CompactToolSet(self.tools) if schema == "compact" else ToolSet(self.tools)
        shown = set(self.toolset.tools)
        self._what = (
            f"tasks (split={split!r}, tier={tier!r})"
            if tools == "all"
            else f"tasks (split={split!r}, tier={tier!r}, tools={tools!r})"
        )
        every = load_tasks(split, tier)  # read-only; never part of the episode state
        if not every:
            raise ValueError(f"no ToolUse tasks for split={split!r}, tier={tier!r}")
        self._tasks = tuple(t for t in every if all(step.name in shown for step in t.gold))
        if not self._tasks:
            needed = sorted({step.name for t in every for step in t.gold} - shown)
            raise ValueError(
                f"no ToolUse task for split={split!r}, tier={tier!r} can be solved with tools={tools!r}: "
                f"every one needs a tool not shown (among {', '.join(needed)})"
            )
        self._by_id = {t.id: t for t in self._tasks}
        self.state: EpisodeState | None = None

    # --- hooks ---------------------------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        return [t.id for t in self._tasks]

    def task_family(self, task_id: str) -> str | None:
        return self._by_id[task_id].family  # the chain's kind (e.g. capital_population): rollout.task_draw=stratified

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        ids = [t.id for t in self._tasks]
        task = self._by_id[self.choose_task_id(options, ids, self._by_id, what=self._what)]
        self.task_id = task.id
        self.state = EpisodeState(task=task)
        return SYSTEM_PROMPT, task.question

    def respond(self, text: str) -> EnvReply:
        self.state.nudges += 1
        return EnvReply([Message("user", NUDGE)], error="no_tool_call")  # counted in info["errors"]

    def on_tool_result(self, call: ToolCall, result: ToolResult) -> EnvReply | None:
        if call.name != final_answer.name:
            self.state.tool_calls += 1  # unknown tools and failed calls cost too: the agent spent a turn
            return None
        return EnvReply(terminated=True) if result.ok else None

    def compute_reward(self) -> RewardResult:
        s = self.state
        return reward.compute(s.task, s.answer, s.tool_calls, tool_cost=self.tool_cost, rel_tol=self.rel_tol)

    def template_tools(self) -> list[dict[str, Any]] | None:
        # compact: the compact tool block stays in the system prompt, with no schemas to render instead
        return None if self.schema == "compact" else super().template_tools()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        info.update(tier=self.state.task.tier, family=self.state.task.family)
        return obs, info
