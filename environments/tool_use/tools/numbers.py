"""How numbers are written in tool outputs and read back from answers.

Every numeric tool prints its result with `format_number`, so an output can be pasted into the next call
(the calculator reads it back) and a gold chain computed at generation time replays to the same digits.
"""

from __future__ import annotations

import math
import re

# 12 significant digits: enough that chaining outputs through the calculator keeps gold answers well inside
# the reward tolerance (1e-4 relative), few enough to hide float noise such as 0.30000000000000004.
SIGNIFICANT_DIGITS = 12

# A plain number, optionally with thousands separators ("66,987,244") and an exponent ("1.5e+20").
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d{1,3})?"
NUMBER_RE = re.compile(rf"^\s*({_NUMBER})\s*$")


def format_number(x: int | float) -> str:
    """Integers (and integral floats below 1e15) without a decimal point; other floats to 12 significant digits."""
    if isinstance(x, bool):  # bool is an int subclass; never a number the tools produce
        raise TypeError("format_number() takes an int or float, not bool")
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot format non-finite number {x!r}")
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return format(x, f".{SIGNIFICANT_DIGITS}g")


def parse_number(text: str) -> float | None:
    """The number a short text holds ("66,987,244", "3.11", "-2e3"), or None if it holds anything else."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    m = NUMBER_RE.match(text)
    if not m or not re.search(r"\d", m.group(1)):
        return None
    try:
        value = float(m.group(1).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None
