"""Date arithmetic with datetime and dateutil.

Dates are read with dateutil's parser (ISO "2021-03-05" and common forms such as "March 5, 2021"),
but only complete dates are accepted: dateutil silently fills a missing day, month or year from
today's date, which would make answers depend on when the tool runs. A date is parsed against two
different defaults; if the results differ, a part was missing and the call is refused.
Month-first is assumed for ambiguous numeric forms ("03/05/2021" is March 5); ISO is recommended.
"""

from __future__ import annotations

import datetime as dt

from dateutil import parser as date_parser
from dateutil.relativedelta import relativedelta

from agentrl.core.tools import ToolError, tool

MAX_DATE_CHARS = 40
MAX_DAYS = 3_000_000  # about 8,200 years: any shift inside datetime's range 0001..9999
MAX_MONTHS = 120_000
_DEFAULTS = (dt.datetime(2001, 1, 1), dt.datetime(2002, 2, 2))
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_date(text: str, argument: str = "date") -> dt.date:
    if not isinstance(text, str):
        raise ToolError(f"{argument} must be a date string like '2021-03-05', got {type(text).__name__}")
    if len(text) > MAX_DATE_CHARS:
        raise ToolError(f"{argument} has {len(text)} characters; at most {MAX_DATE_CHARS} are allowed (use YYYY-MM-DD)")
    try:
        parsed = [date_parser.parse(text, default=d) for d in _DEFAULTS]
    except (ValueError, OverflowError, TypeError) as exc:  # ParserError is a ValueError
        raise ToolError(f"{argument} {text!r} is not a date ({exc}); use YYYY-MM-DD, e.g. 2021-03-05") from None
    if parsed[0] != parsed[1]:
        raise ToolError(f"{argument} {text!r} is incomplete: give year, month and day as YYYY-MM-DD")
    if parsed[0].time() != dt.time(0) or parsed[0].tzinfo is not None:
        raise ToolError(f"{argument} {text!r} has a time or time zone; give a plain date as YYYY-MM-DD")
    return parsed[0].date()


def _check_int(n: int, argument: str, limit: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ToolError(f"{argument} must be a whole number, got {type(n).__name__}")
    if abs(n) > limit:
        raise ToolError(f"{argument} {n} is out of range; at most {limit} in magnitude")
    return n


def _shift(start: dt.date, delta: dt.timedelta | relativedelta) -> str:
    try:
        return (start + delta).isoformat()
    except (OverflowError, ValueError):
        raise ToolError("the resulting date is outside the supported range (years 1 to 9999)") from None


@tool
def days_between(start: str, end: str) -> str:
    """Number of days from start to end (negative if end is earlier).

    Args:
        start: the first date, as YYYY-MM-DD
        end: the second date, as YYYY-MM-DD
    """
    return str((parse_date(end, "end") - parse_date(start, "start")).days)


@tool
def add_days(date: str, days: int) -> str:
    """The date a number of days after (or, if negative, before) a date, as YYYY-MM-DD.

    Args:
        date: the starting date, as YYYY-MM-DD
        days: how many days to add; negative to go back
    """
    return _shift(parse_date(date), dt.timedelta(days=_check_int(days, "days", MAX_DAYS)))


@tool
def add_months(date: str, months: int) -> str:
    """The date a number of calendar months after a date, as YYYY-MM-DD (the day is clipped to the month's
    last day, so 2021-01-31 plus 1 month is 2021-02-28).

    Args:
        date: the starting date, as YYYY-MM-DD
        months: how many months to add; negative to go back
    """
    return _shift(parse_date(date), relativedelta(months=_check_int(months, "months", MAX_MONTHS)))


@tool
def weekday(date: str) -> str:
    """The day of the week of a date, e.g. "Friday".

    Args:
        date: the date, as YYYY-MM-DD
    """
    return WEEKDAYS[parse_date(date).weekday()]
