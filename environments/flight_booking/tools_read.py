"""The airline's read tools (and calculate, think, transfer_to_human_agents), with τ-bench's names, arguments
and outputs for the selected parity (parity.py, views.py).

Where the env differs from both τ-bench versions, on purpose, in its own mode (`Rules.hints`; off for the
benchmarks' tasks, where each output is the benchmark's):
  * malformed input (an unknown airport, a date not in YYYY-MM-DD form) gets an error saying what is allowed,
    where τ-bench answers "[]";
  * search_onestop_flight takes the real next day for a first leg that lands after midnight; both versions
    compute f"2024-05-{day + 1}" (unpadded, May only), which misses such connections on May 1 to 8;
  * get_flight_status (τ² only) returns {flight_number, date, status, estimated/actual times} where τ²
    returns the bare status word: the flight-status tasks ask for the times;
  * calculate evaluates + - * / ** // and parentheses without eval(), with bounded powers.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
from typing import Any

from agentrl.core.tools import ToolError, tool

from . import views
from .parity import error, rules_of
from .tool_checks import check_airport, check_date, find_reservation, find_user
from .world import Available, Database

MAX_EXPONENT = 64


@tool
def get_user_details(user_id: str, state: Any) -> str:
    """Get the details of a user: profile, payment methods, saved passengers, membership and reservation ids.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
    """
    rules = rules_of(state)
    return views.dumps(views.user(user_id, find_user(state.db, user_id, rules), rules))


@tool
def get_reservation_details(reservation_id: str, state: Any) -> str:
    """Get the details of a reservation.

    Args:
        reservation_id: The reservation id, such as '8JX2WO'.
    """
    rules = rules_of(state)
    r = find_reservation(state.db, reservation_id, rules, active=False, key="reservation_details_not_found")
    return views.dumps(views.reservation(state.db, r, rules))


@tool
def list_all_airports(state: Any) -> str:
    """List all airports (IATA codes) and their cities."""
    return views.dumps(views.airports(state.db.world.airports, rules_of(state)))


@tool
def search_direct_flight(origin: str, destination: str, date: str, state: Any) -> str:
    """Search direct flights between two cities on a date. Only flights that can be booked (status
    'available') are listed, with their seats and prices per cabin.

    Args:
        origin: The origin airport in three letters, such as 'JFK'.
        destination: The destination airport in three letters, such as 'LAX'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'.
    """
    db: Database = state.db
    rules = rules_of(state)
    if rules.hints:  # the benchmarks answer [] (no flight matches)
        check_airport(db, origin, "origin")
        check_airport(db, destination, "destination")
        check_date(date)
    out = []
    for f in db.world.by_origin.get(origin, ()):
        if f.destination == destination:
            fd = db.flight_date(f.flight_number, date)
            if isinstance(fd, Available):
                out.append(views.search_result(f, fd, rules, None))
    return views.dumps(out)


@tool
def search_onestop_flight(origin: str, destination: str, date: str, state: Any) -> str:
    """Search one-stop flights between two cities, the first flight leaving on the date. Each result is a pair
    of bookable flights; the second leaves after the first lands (the next day if the first lands after midnight).

    Args:
        origin: The origin airport in three letters, such as 'JFK'.
        destination: The destination airport in three letters, such as 'LAX'.
        date: The date of the first flight in the format 'YYYY-MM-DD', such as '2024-05-01'.
    """
    db: Database = state.db
    rules = rules_of(state)
    if rules.hints:  # the benchmarks answer [] (no flight matches)
        check_airport(db, origin, "origin")
        check_airport(db, destination, "destination")
        check_date(date)
    try:
        next_day = (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()
    except ValueError:  # not a date: no flight flies on it (hints off; with hints, check_date has said so)
        return views.dumps([])
    out = []
    for f1 in db.world.by_origin.get(origin, ()):
        fd1 = db.flight_date(f1.flight_number, date)
        if f1.destination in (origin, destination) or not isinstance(fd1, Available):
            continue
        date2 = next_day if "+1" in f1.scheduled_arrival_time_est else date
        for f2 in db.world.by_origin.get(f1.destination, ()):
            # τ-bench compares the times as strings: "01:30:00+1" is later than "01:30:00"
            if f2.destination != destination or f1.scheduled_arrival_time_est > f2.scheduled_departure_time_est:
                continue
            fd2 = db.flight_date(f2.flight_number, date2)
            if not isinstance(fd2, Available):
                continue
            shown = db.flight_date(f2.flight_number, date) if rules.v1 else fd2  # v1 shows leg 2 on the first date
            if shown is not None:
                out.append([views.search_result(f1, fd1, rules, date), views.search_result(f2, shown, rules, date2)])
    return views.dumps(out)


@tool
def get_flight_status(flight_number: str, date: str, state: Any) -> str:
    """Get the status of a flight on a date (available, on time, delayed, flying, landed or cancelled), with its
    estimated or actual times.

    Args:
        flight_number: The flight number, such as 'HAT001'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'.
    """
    db: Database = state.db
    rules = rules_of(state)
    f = db.flight(flight_number)
    if f is None:
        raise error(rules, "flight_not_found", "flight numbers look like 'HAT001'", flight_number=flight_number[:20])
    if rules.hints:
        check_date(date)
    fd = db.flight_date(flight_number, date)
    if fd is None:
        days = sorted(f.dates)
        raise error(
            rules,
            "flight_not_on_date",
            f"it flies {days[0]} to {days[-1]}" if days else "it has no dates",
            flight_number=flight_number,
            date=date,
        )
    if not rules.hints and not rules.v1:
        return fd.status  # τ²: the bare status word
    view = {
        "flight_number": flight_number,
        "date": date,
        **fd.model_dump(mode="json", exclude={"available_seats", "prices"}),
    }
    return views.dumps(view)


def _power(base: float, exponent: float) -> float:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"exponents are limited to at most {MAX_EXPONENT} in size")
    if base == 0 and exponent < 0:
        raise ToolError("division by zero")
    value = operator.pow(float(base), float(exponent))  # floats: an overflow raises instead of growing a huge int
    if isinstance(value, complex):
        raise ToolError("a negative number to a fractional power has no real value")
    return value


def _divide(op: Any, left: float, right: float) -> float:
    if right == 0:
        raise ToolError("division by zero")
    return op(left, right)


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: _power,
        ast.Div: lambda a, b: _divide(operator.truediv, a, b), ast.FloorDiv: lambda a, b: _divide(operator.floordiv, a, b)}  # fmt: skip


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    raise ToolError("only numbers, + - * / ** // and parentheses are allowed")


@tool
def calculate(expression: str, state: Any) -> str:
    """Calculate the result of an arithmetic expression (numbers, + - * / and parentheses); the result is
    rounded to 2 decimals.

    Args:
        expression: The expression, such as '2 * (150 + 30) - 50'.
    """
    if not expression.strip() or len(expression) > 500:
        raise ToolError("expression must be 1 to 500 characters of numbers, + - * / ( ) . and spaces")
    if any(c not in "0123456789+-*/(). " for c in expression):
        raise error(rules_of(state), "invalid_characters", "allowed: digits, + - * / ( ) . and spaces")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolError(f"'{expression[:60]}' is not a valid arithmetic expression") from None
    try:
        value = float(_eval(tree))
    except (OverflowError, RecursionError):
        raise ToolError("the result is too large") from None
    if not math.isfinite(value):
        raise ToolError("the result is too large")
    return str(round(value, 2))


@tool
def think(thought: str, state: Any) -> str:
    """Think about something. It changes nothing and finds nothing new; it only records the thought. Use it for
    reasoning that needs a scratchpad.

    Args:
        thought: The thought.
    """
    return ""


@tool
def transfer_to_human_agents(summary: str, state: Any) -> str:
    """Transfer the user to a human agent, with a summary of the user's issue. Only when the request cannot be
    handled with the other tools and the policy. This ends the conversation.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"
