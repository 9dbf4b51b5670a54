"""The 15 airline tools, with τ-bench's names and arguments (plus get_flight_status from τ²-bench).

Every tool acts on `state.db`, the episode's copy-on-write `Database` (world.py). Write tools check
everything before they change anything — unknown ids, flight not bookable on that date, too few seats,
a payment method that is not the user's, balances, payments that do not add up to the fare rules
(flights x passengers + $30 x passengers with insurance + $50 x non-free bags), at most 1 certificate,
1 credit card and 3 gift cards, routes that do not connect (tool_checks.py) — so a failed call changes
nothing and its error message says what was wrong and what is allowed.

They do not check the *policy* (who may cancel, basic economy changes, free-bag counts, compensation
eligibility): as in τ-bench, that is the agent's job, and the database comparison in the reward catches
an agent that gets it wrong (policy.py).

New ids are deterministic: the k-th reservation an episode creates gets the k-th id of a fixed
pseudo-random sequence that is not taken yet, so the gold replay and the agent get the same ids.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import math
import operator
from typing import Any

import pydantic

from agentrl.core.tools import ToolError, tool

from .policy import booking_total
from .tool_checks import (
    FlightRef,
    PaymentPart,
    bookable_segment,
    check_airport,
    check_change_payment,
    check_date,
    check_passengers,
    check_payments,
    check_route,
    find_reservation,
    find_user,
)
from .world import (
    Cabin,
    Certificate,
    Database,
    FlightDate,
    FlightType,
    GiftCard,
    Passenger,
    Payment,
    Reservation,
    ReservationFlight,
    User,
    YesNo,
    money,
)  # fmt: skip

WRITE_TOOLS = frozenset(
    {"book_reservation", "cancel_reservation", "update_reservation_baggages", "update_reservation_flights",
     "update_reservation_passengers", "send_certificate"}
)  # fmt: skip
MAX_CERTIFICATE = 10_000
MAX_BAGS = 50


def _dumps(obj: Any) -> str:
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump_json(exclude_none=True)
    return json.dumps(obj)



def _charge(db: Database, user_id: str, payment_id: str, amount: float) -> None:
    if amount == 0:
        return
    pm = db.user_for_update(user_id).payment_methods[payment_id]
    if isinstance(pm, GiftCard):
        pm.amount = money(pm.amount - amount)  # a negative amount (refund) goes back onto the gift card


def _bill(db: Database, rw: Reservation, payment_id: str, amount: float) -> None:
    """Charge (or refund, amount < 0) an update to the reservation's payment method and record it in its history."""
    if amount:
        _charge(db, rw.user_id, payment_id, amount)
        rw.payment_history.append(Payment(payment_id=payment_id, amount=amount))


def _move_seats(db: Database, segs: list[ReservationFlight], cabin: str, delta: int) -> None:
    """Take (delta < 0) or give back (delta > 0) seats; only bookable dates track seats."""
    for s in segs:
        fd = db.flight_date(s.flight_number, s.date)
        if fd is not None and fd.status == "available":
            fdw = db.flight_date_for_update(s.flight_number, s.date)
            setattr(fdw.available_seats, cabin, getattr(fdw.available_seats, cabin) + delta)


def _sequence_id(prefix: str, k: int) -> str:
    return hashlib.sha256(f"{prefix}:{k}".encode()).hexdigest()


def new_reservation_id(db: Database) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    for k in range(10_000):
        n = int(_sequence_id("reservation", k), 16)
        rid = "".join(alphabet[(n >> (6 * i)) % 36] for i in range(6))
        if not db.has_reservation_id(rid):
            return rid
    raise RuntimeError("no free reservation id")  # 10,000 new reservations in one episode: a bug


def new_certificate_id(user: User) -> str:
    for k in range(10_000):
        pid = f"certificate_{int(_sequence_id('certificate', k), 16) % 10_000_000:07d}"
        if pid not in user.payment_methods:
            return pid
    raise RuntimeError("no free certificate id")


def _minutes(t: str) -> int:
    """'HH:MM:SS' or 'HH:MM:SS+1' -> minutes after midnight of the departure day."""
    base, plus = (t[:-2], 1440) if t.endswith("+1") else (t, 0)
    h, m = base.split(":")[:2]
    return int(h) * 60 + int(m) + plus


def _flight_view(db: Database, number: str, date: str, fd: FlightDate) -> dict[str, Any]:
    f = db.flight(number)
    assert f is not None
    return {**f.header(), "date": date, **fd.model_dump(mode="json")}


# ---- read tools --------------------------------------------------------------------------------------------


@tool
def get_user_details(user_id: str, state: Any) -> str:
    """Get the details of a user: profile, payment methods, saved passengers, membership and reservation ids.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
    """
    return _dumps(find_user(state.db, user_id))


@tool
def get_reservation_details(reservation_id: str, state: Any) -> str:
    """Get the details of a reservation.

    Args:
        reservation_id: The reservation id, such as '8JX2WO'.
    """
    return _dumps(find_reservation(state.db, reservation_id, active=False))


@tool
def list_all_airports(state: Any) -> str:
    """List all airports (IATA codes) and their cities."""
    return json.dumps(state.db.world.airports)


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
    check_airport(db, origin, "origin")
    check_airport(db, destination, "destination")
    check_date(date)
    out = []
    for f in db.world.by_origin.get(origin, ()):
        if f.destination == destination:
            fd = db.flight_date(f.flight_number, date)
            if fd is not None and fd.status == "available":
                out.append(_flight_view(db, f.flight_number, date, fd))
    return json.dumps(out)


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
    check_airport(db, origin, "origin")
    check_airport(db, destination, "destination")
    check_date(date)
    next_day = (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()
    out = []
    for f1 in db.world.by_origin.get(origin, ()):
        if f1.destination in (origin, destination):
            continue
        fd1 = db.flight_date(f1.flight_number, date)
        if fd1 is None or fd1.status != "available":
            continue
        arrive = _minutes(f1.scheduled_arrival_time_est)
        date2 = next_day if arrive >= 1440 else date
        for f2 in db.world.by_origin.get(f1.destination, ()):
            if f2.destination != destination or _minutes(f2.scheduled_departure_time_est) < arrive % 1440:
                continue
            fd2 = db.flight_date(f2.flight_number, date2)
            if fd2 is not None and fd2.status == "available":
                out.append([_flight_view(db, f1.flight_number, date, fd1), _flight_view(db, f2.flight_number, date2, fd2)])
    return json.dumps(out)


@tool
def get_flight_status(flight_number: str, date: str, state: Any) -> str:
    """Get the status of a flight on a date (available, on time, delayed, flying, landed or cancelled), with its
    estimated or actual times.

    Args:
        flight_number: The flight number, such as 'HAT001'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'.
    """
    db: Database = state.db
    f = db.flight(flight_number)
    if f is None:
        raise ToolError(f"flight '{flight_number[:20]}' not found (flight numbers look like 'HAT001')")
    check_date(date)
    fd = db.flight_date(flight_number, date)
    if fd is None:
        days = sorted(f.dates)
        raise ToolError(f"flight {flight_number} does not fly on {date} (it flies {days[0]} to {days[-1]})" if days else f"flight {flight_number} has no dates")
    view = {"flight_number": flight_number, "date": date, **fd.model_dump(mode="json", exclude={"available_seats", "prices"})}
    return json.dumps(view)


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ToolError("division by zero")
        return _OPS[type(node.op)](left, right)
    raise ToolError("only numbers, + - * / and parentheses are allowed")


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
        raise ToolError("invalid characters in expression; allowed: digits, + - * / ( ) . and spaces")
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


# ---- write tools -------------------------------------------------------------------------------------------


@tool
def book_reservation(
    user_id: str,
    origin: str,
    destination: str,
    flight_type: FlightType,
    cabin: Cabin,
    flights: list[FlightRef],
    passengers: list[Passenger],
    payment_methods: list[PaymentPart],
    total_baggages: int,
    nonfree_baggages: int,
    insurance: YesNo,
    state: Any,
) -> str:
    """Book a reservation.

    Args:
        user_id: The id of the user making the booking, such as 'sara_doe_496'.
        origin: The IATA code of the origin city, such as 'SFO'.
        destination: The IATA code of the destination city, such as 'JFK'.
        flight_type: one_way or round_trip.
        cabin: The cabin, the same for every flight and passenger.
        flights: Every flight of the trip, in order (a round trip lists the outbound flights, then the return flights).
        passengers: Each passenger's first name, last name and date of birth (YYYY-MM-DD).
        payment_methods: Payment ids from the user's profile with the amount each pays; the amounts must add up to the total price.
        total_baggages: The total number of checked bags in the reservation.
        nonfree_baggages: How many of those bags are not free under the membership's allowance.
        insurance: Whether the reservation has travel insurance, yes or no.
    """
    db: Database = state.db
    user = find_user(db, user_id)
    check_airport(db, origin, "origin")
    check_airport(db, destination, "destination")
    if origin == destination:
        raise ToolError("origin and destination must differ")
    check_passengers(passengers)
    n = len(passengers)
    if not flights:
        raise ToolError("flights is empty; list every flight of the trip as {flight_number, date}")
    keys = [(f.flight_number, f.date) for f in flights]
    if len(set(keys)) != len(keys):
        raise ToolError("the same flight on the same date is listed twice")
    segs = [bookable_segment(db, ref, cabin, n)[0] for ref in flights]
    check_route(segs, origin, destination, flight_type)
    if not 0 <= nonfree_baggages <= total_baggages <= MAX_BAGS:
        raise ToolError(f"bags must satisfy 0 <= nonfree_baggages <= total_baggages <= {MAX_BAGS} (got {nonfree_baggages} non-free of {total_baggages})")
    total = booking_total([s.price for s in segs], n, insurance == "yes", nonfree_baggages)
    payments = check_payments(user, payment_methods, total)

    # every check passed: change the database
    _move_seats(db, segs, cabin, -n)
    uw = db.user_for_update(user_id)
    for p in payments:
        pm = uw.payment_methods[p.payment_id]
        if isinstance(pm, GiftCard):
            pm.amount = money(pm.amount - p.amount)
        elif isinstance(pm, Certificate):
            del uw.payment_methods[p.payment_id]  # what is left on a certificate is not refunded
    res = Reservation(
        reservation_id=new_reservation_id(db), user_id=user_id, origin=origin, destination=destination,
        flight_type=flight_type, cabin=cabin, flights=segs, passengers=[p.model_copy() for p in passengers],
        payment_history=payments, created_at=db.world.clock_str, total_baggages=total_baggages,
        nonfree_baggages=nonfree_baggages, insurance=insurance,
    )  # fmt: skip
    db.add_reservation(res)
    uw.reservations.append(res.reservation_id)
    return _dumps(res)


@tool
def cancel_reservation(reservation_id: str, state: Any) -> str:
    """Cancel the whole reservation. Every payment is refunded to its original method (in 5 to 7 business days).

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
    """
    db: Database = state.db
    r = find_reservation(db, reservation_id)
    rw = db.reservation_for_update(r.reservation_id)
    rw.payment_history.extend([Payment(payment_id=p.payment_id, amount=-p.amount) for p in r.payment_history])
    rw.status = "cancelled"
    _move_seats(db, rw.flights, rw.cabin, len(rw.passengers))
    return _dumps(rw)


@tool
def update_reservation_baggages(reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str, state: Any) -> str:
    """Update the checked bags of a reservation. Bags can be added, not removed; each added non-free bag costs $50.

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
        total_baggages: The new total number of checked bags.
        nonfree_baggages: The new number of non-free checked bags.
        payment_id: The payment id (credit card or gift card in the user's profile) for the fee, such as 'credit_card_7815826'.
    """
    db: Database = state.db
    r = find_reservation(db, reservation_id)
    if not 0 <= nonfree_baggages <= total_baggages <= MAX_BAGS:
        raise ToolError(f"bags must satisfy 0 <= nonfree_baggages <= total_baggages <= {MAX_BAGS} (got {nonfree_baggages} non-free of {total_baggages})")
    if total_baggages < r.total_baggages or nonfree_baggages < r.nonfree_baggages:
        raise ToolError(f"bags cannot be removed: the reservation has {r.total_baggages} bag(s) ({r.nonfree_baggages} non-free)")
    if (total_baggages, nonfree_baggages) == (r.total_baggages, r.nonfree_baggages):
        raise ToolError(f"nothing to update: the reservation already has {r.total_baggages} bag(s) ({r.nonfree_baggages} non-free)")
    fee = money(50 * (nonfree_baggages - r.nonfree_baggages))
    check_change_payment(find_user(db, r.user_id), payment_id, fee)

    rw = db.reservation_for_update(reservation_id)
    rw.total_baggages, rw.nonfree_baggages = total_baggages, nonfree_baggages
    _bill(db, rw, payment_id, fee)
    return _dumps(rw)


@tool
def update_reservation_flights(reservation_id: str, cabin: Cabin, flights: list[FlightRef], payment_id: str, state: Any) -> str:
    """Update the flights and/or the cabin of a reservation. Origin, destination and trip type stay the same.
    Segments kept in the same cabin keep their price; new segments (and all segments, if the cabin changes) cost
    today's price. The difference is charged to, or refunded onto, the payment method.

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
        cabin: The cabin for all flights of the reservation.
        flights: Every flight of the ENTIRE new reservation, in order, including unchanged segments.
        payment_id: The payment id (credit card or gift card in the user's profile), such as 'credit_card_7815826'.
    """
    db: Database = state.db
    r = find_reservation(db, reservation_id)
    n = len(r.passengers)
    if not flights:
        raise ToolError("flights is empty; list every flight of the new reservation as {flight_number, date}")
    keys = [(f.flight_number, f.date) for f in flights]
    if len(set(keys)) != len(keys):
        raise ToolError("the same flight on the same date is listed twice")
    old = {(s.flight_number, s.date): s for s in r.flights}
    if cabin == r.cabin and keys == list(old):
        raise ToolError("nothing to update: these are the reservation's flights and cabin already")
    new_segs, taken = [], []
    for ref in flights:
        kept = old.get((ref.flight_number, ref.date)) if cabin == r.cabin else None
        if kept is not None:
            new_segs.append(kept.model_copy())
        else:
            seg = bookable_segment(db, ref, cabin, n)[0]
            new_segs.append(seg)
            taken.append(seg)
    check_route(new_segs, r.origin, r.destination, r.flight_type)
    diff = money((sum(s.price for s in new_segs) - sum(s.price for s in r.flights)) * n)
    check_change_payment(find_user(db, r.user_id), payment_id, diff)

    kept_keys = {(s.flight_number, s.date) for s in new_segs} if cabin == r.cabin else set()
    released = [s for s in r.flights if (s.flight_number, s.date) not in kept_keys]
    _move_seats(db, released, r.cabin, n)
    _move_seats(db, taken, cabin, -n)
    rw = db.reservation_for_update(reservation_id)
    rw.flights, rw.cabin = new_segs, cabin
    _bill(db, rw, payment_id, diff)
    return _dumps(rw)


@tool
def update_reservation_passengers(reservation_id: str, passengers: list[Passenger], state: Any) -> str:
    """Update the passengers of a reservation (names and dates of birth). The number of passengers cannot change.

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
        passengers: Every passenger of the reservation, in order, with first name, last name and date of birth (YYYY-MM-DD).
    """
    db: Database = state.db
    r = find_reservation(db, reservation_id)
    if len(passengers) != len(r.passengers):
        raise ToolError(f"the reservation has {len(r.passengers)} passengers and must keep that number; {len(passengers)} given")
    if passengers == r.passengers:
        raise ToolError("nothing to update: these are the reservation's passengers already")
    rw = db.reservation_for_update(reservation_id)
    rw.passengers = [p.model_copy() for p in passengers]
    return _dumps(rw)


@tool
def send_certificate(user_id: str, amount: float, state: Any) -> str:
    """Send a travel certificate to a user, as compensation allowed by the policy. Be careful!

    Args:
        user_id: The user id, such as 'sara_doe_496'.
        amount: The certificate amount in dollars.
    """
    db: Database = state.db
    user = find_user(db, user_id)
    if not math.isfinite(amount) or not 0 < money(amount) <= MAX_CERTIFICATE:
        raise ToolError(f"amount must be more than 0 and at most {MAX_CERTIFICATE} dollars, got {amount}")
    pid = new_certificate_id(user)
    db.user_for_update(user_id).payment_methods[pid] = Certificate(id=pid, amount=amount)
    return f"Certificate {pid} added to user {user_id} with amount {money(amount):g}."


TOOLS = (
    book_reservation, cancel_reservation, get_reservation_details, get_user_details, list_all_airports,
    search_direct_flight, search_onestop_flight, send_certificate, transfer_to_human_agents,
    update_reservation_baggages, update_reservation_flights, update_reservation_passengers, calculate, think,
    get_flight_status,
)  # fmt: skip
TOOLS_BY_NAME = {t.name: t for t in TOOLS}
