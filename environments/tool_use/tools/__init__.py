"""The ToolUse-v0 tools. Each module wraps one well-kept library; each tool validates its own input and
raises ToolError (shown to the agent as "Error: ...") for anything outside its documented bounds.

`TOOL_FAMILIES` names the tools by module (calculator, units, dates, geo, text); the env's `tools=` option
accepts these family names as well as tool names. `TOOLS` is all of them, in family order.

`final_answer` is not here: it touches the episode, so it lives with the env (env.py).
"""

from types import MappingProxyType

from agentrl.core.tools import Tool

from .calculator import calculate
from .dates import add_days, add_months, days_between, weekday
from .geo import city_fact, country_fact
from .text import count_occurrences, reverse_text, sort_items, text_length, word_count
from .units import convert_units

TOOL_FAMILIES: MappingProxyType[str, tuple[Tool, ...]] = MappingProxyType(
    {
        "calculator": (calculate,),
        "units": (convert_units,),
        "dates": (days_between, add_days, add_months, weekday),
        "geo": (country_fact, city_fact),
        "text": (text_length, count_occurrences, reverse_text, word_count, sort_items),
    }
)

TOOLS: tuple[Tool, ...] = tuple(t for family in TOOL_FAMILIES.values() for t in family)

__all__ = ["TOOLS", "TOOL_FAMILIES"] + [t.name for t in TOOLS]
