"""Unit conversion with pint.

pint's unit parser evaluates numbers inside a unit string (`parse_units("9**9**9")` never returns), so a
unit string is checked against a small grammar first: unit names joined by * or /, each optionally raised
to a power of -4..4 (`km**2`, `m/s^2`, `mile / hour`). Anything else is refused before pint sees it.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import pint

from agentrl.core.tools import ToolError, tool

from .numbers import format_number

MAX_UNIT_CHARS = 40
MAX_VALUE = 1e15
_NAME = r"[A-Za-z_°µΩ][A-Za-z_°µΩ]*"
_FACTOR = rf"{_NAME}(?:\s*(?:\*\*|\^)\s*-?[1-4])?"
UNIT_RE = re.compile(rf"^\s*{_FACTOR}(?:\s*[*/ ]\s*{_FACTOR})*\s*$")
UNIT_EXAMPLES = (
    "km, mile, m/s, km/h, mph, km**2, square_mile, hectare, kg, lb, ounce, liter, gallon, degC, degF, kelvin"
)


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """One registry per process: building it takes about half a second."""
    return pint.UnitRegistry()


def parse_unit(unit: str, argument: str) -> pint.Unit:
    if not isinstance(unit, str):
        raise ToolError(f"{argument} must be a string unit name, got {type(unit).__name__}")
    if len(unit) > MAX_UNIT_CHARS:
        raise ToolError(f"{argument} has {len(unit)} characters; at most {MAX_UNIT_CHARS} are allowed")
    if not UNIT_RE.match(unit):
        raise ToolError(
            f"{argument} {unit!r} is not a unit expression: use unit names joined by * or /, with optional "
            f"powers ** -4..4 and no numbers (e.g. {UNIT_EXAMPLES})"
        )
    try:
        return registry().parse_units(unit.strip())
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, AttributeError, TypeError):
        raise ToolError(f"unknown unit {unit!r} in {argument}; known units include {UNIT_EXAMPLES}") from None


def convert(value: float, from_unit: str, to_unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ToolError(f"value must be a finite number, got {value!r}")
    if abs(value) > MAX_VALUE:
        raise ToolError(f"value {format_number(value)} is too large; at most 1e15 in magnitude")
    src, dst = parse_unit(from_unit, "from_unit"), parse_unit(to_unit, "to_unit")
    try:
        out = registry().Quantity(value, src).to(dst).magnitude
    except pint.errors.DimensionalityError:
        raise ToolError(
            f"cannot convert {from_unit!r} ({src.dimensionality}) to {to_unit!r} ({dst.dimensionality}): "
            "they measure different things"
        ) from None
    except pint.errors.OffsetUnitCalculusError as exc:
        raise ToolError(f"cannot convert with offset units this way ({exc}); convert plain degC/degF/kelvin") from None
    out = float(out)
    if not math.isfinite(out):
        raise ToolError("the converted value is not a finite number")
    return out


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity from one unit to another and return the number in the new unit.

    Units are pint names or symbols: km, mile, m/s, km/h, mph, km**2, square_mile, hectare, kg, lb,
    ounce, liter, gallon, degC, degF, kelvin, and many more.

    Args:
        value: the amount to convert, e.g. 12.5
        from_unit: the unit the value is in, e.g. "km"
        to_unit: the unit to convert to, e.g. "mile"
    """
    return format_number(convert(value, from_unit, to_unit))
