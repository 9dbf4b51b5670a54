"""What the airline tools check before they change anything, and the argument models they take.

Each check raises ToolError with a message that says what was wrong and what is allowed: unknown ids,
airports and dates, flights that cannot be booked, routes that do not form the trip, passenger counts, and
payments (methods not the user's, balances, amounts that do not add up, too many of one kind). They check
the arguments, not the policy (policy.py); tools.py runs them.
"""

from __future__ import annotations

import datetime as dt
import math

import pydantic

from agentrl.core.tools import ToolError

from .policy import MAX_PASSENGERS, MAX_PAYMENTS
from .world import (
    Available,
    Certificate,
    Database,
    DateStr,
    GiftCard,
    Passenger,
    Payment,
    Reservation,
    ReservationFlight,
    User,
    money,
)  # fmt: skip

MAX_SEGMENTS_PER_DIRECTION = 2  # direct or one stop, what the search tools can find


class FlightRef(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)  # as strict as the tools' top-level arguments
    flight_number: str = pydantic.Field(description="Flight number, such as 'HAT001'.")
    date: DateStr = pydantic.Field(description="The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'.")


class PaymentPart(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    payment_id: str = pydantic.Field(description="A payment id from the user's profile, such as 'credit_card_7815826', 'gift_card_7815826', 'certificate_7815826'.")
    amount: float = pydantic.Field(description="The amount to pay with this method.")


# ---- lookups that fail with clear messages ----------------------------------------------------------------


def find_user(db: Database, user_id: str) -> User:
    u = db.user(user_id)
    if u is None:
        raise ToolError(f"user '{user_id[:60]}' not found (user ids look like 'mia_li_3668')")
    return u


def find_reservation(db: Database, reservation_id: str, *, active: bool = True) -> Reservation:
    r = db.reservation(reservation_id)
    if r is None:
        raise ToolError(f"reservation '{reservation_id[:60]}' not found (reservation ids are 6 letters/digits, e.g. 'ZFA04Y')")
    if active and r.status == "cancelled":
        raise ToolError(f"reservation {reservation_id} is cancelled; a cancelled reservation cannot be changed")
    return r


def check_airport(db: Database, code: str, what: str) -> str:
    if code not in db.world.airports:
        raise ToolError(f"{what} '{code[:20]}' is not an airport of this airline (allowed: {', '.join(db.world.airports)})")
    return code


def check_date(date: str) -> None:
    try:
        if len(date) != 10:
            raise ValueError
        dt.date.fromisoformat(date)
    except ValueError:
        raise ToolError(f"date '{date[:30]}' is not in the form YYYY-MM-DD (e.g. '2024-05-20')") from None


def bookable_segment(db: Database, ref: FlightRef, cabin: str, passengers: int) -> tuple[ReservationFlight, Available]:
    f = db.flight(ref.flight_number)
    if f is None:
        raise ToolError(f"flight '{ref.flight_number[:20]}' not found (flight numbers look like 'HAT001')")
    fd = db.flight_date(ref.flight_number, ref.date)
    if fd is None:
        raise ToolError(f"flight {ref.flight_number} does not fly on {ref.date}")
    if fd.status != "available":
        raise ToolError(f"flight {ref.flight_number} on {ref.date} is '{fd.status}', not 'available'; only available flights can be booked")
    seats = getattr(fd.available_seats, cabin)
    if seats < passengers:
        raise ToolError(f"not enough seats on flight {ref.flight_number} on {ref.date}: {seats} left in {cabin}, {passengers} needed")
    seg = ReservationFlight(origin=f.origin, destination=f.destination, flight_number=f.flight_number, date=ref.date,
                            price=getattr(fd.prices, cabin))  # fmt: skip
    return seg, fd


def check_route(segs: list[ReservationFlight], origin: str, destination: str, flight_type: str) -> None:
    """The segments must form the trip: origin -> destination (one_way), and back to origin (round_trip),
    each direction direct or with one stop, dates in order."""
    path = " -> ".join([segs[0].origin] + [s.destination for s in segs]) if segs else "(none)"
    bad = f"flights {path} do not form a {flight_type} trip from {origin} to {destination}"
    for a, b in zip(segs, segs[1:]):
        if a.destination != b.origin:
            raise ToolError(f"{bad}: {a.flight_number} lands in {a.destination} but {b.flight_number} leaves from {b.origin}")
        if b.date < a.date:
            raise ToolError(f"{bad}: {b.flight_number} on {b.date} is before {a.flight_number} on {a.date}")
    if segs[0].origin != origin:
        raise ToolError(f"{bad}: the first flight leaves from {segs[0].origin}")
    stops = [s.destination for s in segs]
    if flight_type == "one_way":
        legs = [stops]
        if stops[-1] != destination:
            raise ToolError(f"{bad}: the last flight lands in {stops[-1]}")
    else:
        if stops[-1] != origin or destination not in stops:
            raise ToolError(f"{bad}: a round trip must reach {destination} and end in {origin}")
        k = stops.index(destination) + 1
        legs = [stops[:k], stops[k:]]
    for leg in legs:
        if not 1 <= len(leg) <= MAX_SEGMENTS_PER_DIRECTION:
            raise ToolError(f"{bad}: each direction must be direct or have one stop")
        if any(s in (origin, destination) for s in leg[:-1]):
            raise ToolError(f"{bad}: a connection may not pass through {origin} or {destination}")


def check_passengers(passengers: list[Passenger]) -> None:
    if not 1 <= len(passengers) <= MAX_PASSENGERS:
        raise ToolError(f"{len(passengers)} passengers given; a reservation has 1 to {MAX_PASSENGERS} passengers")


def check_payments(user: User, parts: list[PaymentPart], total: float) -> list[Payment]:
    if not parts:
        raise ToolError("payment_methods is empty; give one or more {payment_id, amount} from the user's profile")
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for p in parts:
        pm = user.payment_methods.get(p.payment_id)
        if pm is None:
            raise ToolError(f"payment method '{p.payment_id[:40]}' is not in the user's profile (the user has: {', '.join(user.payment_methods) or 'none'})")
        if p.payment_id in seen:
            raise ToolError(f"payment method {p.payment_id} is listed twice; give each method once with its whole amount")
        seen.add(p.payment_id)
        if not math.isfinite(p.amount) or money(p.amount) <= 0:
            raise ToolError(f"amount {p.amount} for {p.payment_id} must be a positive number of dollars")
        counts[pm.source] = counts.get(pm.source, 0) + 1
        if counts[pm.source] > MAX_PAYMENTS[pm.source]:
            limits = ", ".join(f"{n} {s.replace('_', ' ')}{'s' if n > 1 else ''}" for s, n in MAX_PAYMENTS.items())
            raise ToolError(f"too many {pm.source.replace('_', ' ')} payments; at most {limits} per reservation")
        if isinstance(pm, (GiftCard, Certificate)) and pm.amount < money(p.amount):
            raise ToolError(f"not enough balance on {p.payment_id}: {pm.amount} available, {money(p.amount)} requested")
    paid = money(sum(p.amount for p in parts))
    if paid != money(total):
        raise ToolError(f"payment amounts do not add up: the total price is {money(total)}, the payments sum to {paid}")
    return [Payment(payment_id=p.payment_id, amount=p.amount) for p in parts]


def check_change_payment(user: User, payment_id: str, amount: float) -> None:
    """Changes are paid (or refunded) with one gift card or credit card, never a certificate."""
    pm = user.payment_methods.get(payment_id)
    if pm is None:
        raise ToolError(f"payment method '{payment_id[:40]}' is not in the user's profile (the user has: {', '.join(user.payment_methods) or 'none'})")
    if pm.source == "certificate":
        raise ToolError(f"{payment_id} is a certificate; changes are paid with a credit card or gift card")
    if isinstance(pm, GiftCard) and amount > 0 and pm.amount < amount:
        raise ToolError(f"not enough balance on {payment_id}: {pm.amount} available, {amount} needed")
