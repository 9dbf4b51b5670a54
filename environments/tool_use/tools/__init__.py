"""The ToolUse-v0 tools. Each module wraps one well-kept library; each tool validates its own input and
raises ToolError (shown to the agent as "Error: ...") for anything outside its documented bounds.

`final_answer` is not here: it touches the episode, so it lives with the env (env.py).
"""

from agentrl.tools import Tool

from .calculator import calculate
from .dates import add_days, add_months, days_between, weekday
from .geo import city_fact, country_fact
from .text import count_occurrences, reverse_text, sort_items, text_length, word_count
from .units import convert_units

TOOLS: tuple[Tool, ...] = (
    calculate,
    convert_units,
    days_between,
    add_days,
    add_months,
    weekday,
    country_fact,
    city_fact,
    text_length,
    count_occurrences,
    reverse_text,
    word_count,
    sort_items,
)

__all__ = ["TOOLS"] + [t.name for t in TOOLS]
