"""The ToolUse-v0 reward: normalized exact match of the final answer, minus an optional cost per tool call.

    reward = correct - tool_cost * tool_calls          (paid once, on the terminal step)

  * correct is 1 or 0. How an answer is compared depends on the task's answer type:
      - integer: the same whole number ("66,987,244" and "66987244" both match 66987244);
      - number:  within max(rel_tol * |gold|, 10**-decimals) of the gold value — the relative tolerance
        the issue asks for, and one unit in the last decimal place the question asked for, so a
        different but reasonable rounding of the same value still counts;
      - date:    the same calendar date, in any complete form the dates tool reads ("2021-03-05", "March 5, 2021");
      - text:    equal after normalization (case, accents, surrounding quotes and spaces, a final period,
        spacing around commas).
    A number may carry a trailing unit ("429 days"); anything else around it makes the answer wrong.
  * tool_calls counts every call of a tool other than final_answer, failed calls included: the cost is
    for the agent's work, so a wasted call costs the same as a useful one. Malformed calls never reach a
    tool and are not counted here (they show in info["errors"]).
An episode that ends without final_answer (truncated at max_turns) has correct = 0.
"""

from __future__ import annotations

import math
import re
import unicodedata

from agentrl.core.env import RewardResult
from agentrl.core.tools import ToolError

from .tasks import Task
from .tools.dates import parse_date
from .tools.numbers import parse_number

DEFAULT_REL_TOL = 1e-4
MAX_ANSWER_CHARS = 500
_UNIT_SUFFIX = re.compile(r"^\s*(.*?\d)\s*[A-Za-z%°²³/ .]*$")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = " ".join(text.split()).strip().strip("\"'`").strip()
    text = text.removesuffix(".").strip()
    return re.sub(r"\s*,\s*", ", ", text)


def answer_number(text: str) -> float | None:
    """The number an answer gives, allowing a trailing unit word ("3.11 miles"), else None."""
    value = parse_number(text)
    if value is None:
        m = _UNIT_SUFFIX.match(text)
        value = parse_number(m.group(1)) if m else None
    return value


def is_correct(task: Task, answer: str | None, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    if answer is None or len(answer) > MAX_ANSWER_CHARS:
        return False
    if task.answer_type == "text":
        return normalize_text(answer) == normalize_text(task.answer)
    if task.answer_type == "date":
        try:
            return parse_date(answer.strip().strip("\"'").removesuffix("."), "answer") == parse_date(task.answer)
        except ToolError:
            return False
    got, gold = answer_number(answer), float(task.answer)
    if got is None:
        return False
    if task.answer_type == "integer":
        return got == gold
    tol = max(rel_tol * abs(gold), 10.0 ** -(task.decimals or 0))
    return math.isclose(got, gold, rel_tol=0.0, abs_tol=tol * (1 + 1e-9))


def compute(
    task: Task, answer: str | None, tool_calls: int, *, tool_cost: float = 0.0, rel_tol: float = DEFAULT_REL_TOL
) -> RewardResult:
    """The terminal reward and its itemization: correct + tool_cost_total = reward."""
    correct = is_correct(task, answer, rel_tol)
    cost = -tool_cost * tool_calls
    breakdown = {
        "correct": float(correct),
        "tool_cost": cost,
        "tool_calls": float(tool_calls),
        "answered": float(answer is not None),
    }
    return RewardResult(float(correct) + cost, breakdown, success=correct)
