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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from agentrl.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.tools import ToolCall, ToolError, ToolResult, tool
from agentrl.types import Message

from . import reward
from .scripted import GoldAgent
from .tasks import Task, load_tasks
from .tools import TOOLS

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


@tool
def final_answer(answer: str | int | float, state: EpisodeState) -> str:
    """Give your final answer and end the episode. Call it once, with the answer alone.

    Args:
        answer: the answer, e.g. "Paris", 429, 3.14 or "2021-03-05"; round as the question asks
    """
    text = str(answer).strip()
    if not text:
        raise ToolError("answer is empty; give the answer itself, e.g. 429 or \"Paris\"")
    if len(text) > reward.MAX_ANSWER_CHARS:
        raise ToolError(f"answer has {len(text)} characters; at most {reward.MAX_ANSWER_CHARS} (give the answer alone)")
    state.answer = text
    return f"Final answer recorded: {text}"


class ToolUseEnv(MultiTurnEnv):
    """split: "train" (400 tasks), "test" (100) or "all"; tier: None or 1-4 (number of tool calls the gold
    chain needs); tool_cost: subtracted from the terminal reward per tool call; rel_tol: relative tolerance
    for number answers (reward.py). One tool call per message (the base class's max_tool_calls_per_turn)."""

    tools = TOOLS + (final_answer,)
    max_turns = 8  # tier 4 needs 5 turns (4 calls + final_answer); 8 leaves room for a few mistakes
    scripted_agents: ClassVar[dict[str, Any]] = {"gold": lambda env: GoldAgent(env)}

    def __init__(
        self,
        split: str = "train",
        tier: int | None = None,
        tool_cost: float = 0.0,
        max_turns: int = 8,
        render_mode: str | None = None,
        rel_tol: float = reward.DEFAULT_REL_TOL,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        for name, value in (("tool_cost", tool_cost), ("rel_tol", rel_tol)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.split, self.tier = split, tier
        self.tool_cost, self.rel_tol = float(tool_cost), float(rel_tol)
        self._tasks = load_tasks(split, tier)  # read-only; never part of the episode state
        if not self._tasks:
            raise ValueError(f"no ToolUse tasks for split={split!r}, tier={tier!r}")
        self._by_id = {t.id: t for t in self._tasks}
        self.state: EpisodeState | None = None

    # --- hooks ---------------------------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        return [t.id for t in self._tasks]

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        ids = [t.id for t in self._tasks]
        task = self._by_id[self.choose_task_id(options, ids, self._by_id, what=f"tasks (split={self.split!r}, tier={self.tier!r})")]
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

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        info.update(tier=self.state.task.tier, family=self.state.task.family)
        return obs, info
