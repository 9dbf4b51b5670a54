"""What the airline tools check before they change anything, and the argument models they take.

The checks are about data, not policy: unknown ids, airports and dates, flights that cannot be booked on that
date, too few seats, payment methods that are not the user's, balances too low, amounts that do not add up.
Each raises ToolError with τ-bench's error string for the selected parity (parity.py), followed by what was
wrong and what is allowed. The written policy (who may cancel, basic economy, routes, bag allowances, payment
method limits, compensation) is the agent's to follow and the reward's to judge (policy_rules.py).
"""

from __future__ import annotations

import datetime as dt
import math

import pydantic

from agentrl.core.tools import ToolError

from .parity import Rules, error
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


class FlightRef(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)  # as strict as the tools' top-level arguments
    flight_number: str = pydantic.Field(description="Flight number, such as 'HAT001'.")
    date: DateStr = pydantic.Field(
        description="The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'."
    )


class PaymentPart(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    payment_id: str = pydantic.Field(
        description="A payment id from the user's profile, such as 'credit_card_7815826', 'gift_card_7815826', 'certificate_7815826'."
    )
    amount: float = pydantic.Field(description="The amount to pay with this method.")


# ---- lookups that fail with clear messages ----------------------------------------------------------------


def find_user(db: Database, user_id: str, rules: Rules) -> User:
    u = db.user(user_id)
    if u is None:
        raise error(
            rules, "user_not_found", f"no user '{user_id[:60]}'; user ids look like 'mia_li_3668'", user_id=user_id[:60]
        )
    return u


def find_reservation(
    db: Database, reservation_id: str, rules: Rules, *, active: bool = True, key: str = "reservation_not_found"
) -> Reservation:
    """The reservation; `active`: refuse a cancelled one (the env's own mode only: both benchmarks' tools change
    a cancelled reservation as any other)."""
    r = db.reservation(reservation_id)
    if r is None:
        raise error(rules, key, f"no reservation '{reservation_id[:60]}'; reservation ids are 6 letters/digits, e.g. 'ZFA04Y'",
                    reservation_id=reservation_id[:60])  # fmt: skip
    if active and rules.hints and r.status == "cancelled":
        raise ToolError(f"reservation {reservation_id} is cancelled; a cancelled reservation cannot be changed")
    return r


def check_airport(db: Database, code: str, what: str) -> str:
    if code not in db.world.airports:
        raise ToolError(
            f"{what} '{code[:20]}' is not an airport of this airline (allowed: {', '.join(db.world.airports)})"
        )
    return code


def check_date(date: str) -> None:
    try:
        if len(date) != 10:
            raise ValueError
        dt.date.fromisoformat(date)
    except ValueError:
        raise ToolError(f"date '{date[:30]}' is not in the form YYYY-MM-DD (e.g. '2024-05-20')") from None


def bookable_segment(
    db: Database, ref: FlightRef, cabin: str, passengers: int, rules: Rules
) -> tuple[ReservationFlight, Available]:
    num_ = ref.flight_number
    f = db.flight(num_)
    if f is None:
        raise error(rules, "flight_not_found", "flight numbers look like 'HAT001'", flight_number=num_[:20])
    fd = db.flight_date(num_, ref.date)
    if fd is None:
        days = sorted(f.dates)
        span = f"it flies {days[0]} to {days[-1]}" if days else "it has no dates"
        raise error(rules, "flight_not_on_date", span, flight_number=num_, date=ref.date)
    if not isinstance(fd, Available):
        raise error(
            rules,
            "flight_not_available",
            f"its status is '{fd.status}'; only 'available' flights can be booked",
            flight_number=num_,
            date=ref.date,
        )
    seats = getattr(fd.available_seats, cabin)
    if seats < passengers:
        raise error(
            rules, "not_enough_seats", f"{seats} left in {cabin} on {ref.date}, {passengers} needed", flight_number=num_
        )
    seg = ReservationFlight(origin=f.origin, destination=f.destination, flight_number=f.flight_number, date=ref.date,
                            price=getattr(fd.prices, cabin))  # fmt: skip
    return seg, fd


def check_passengers(passengers: list[Passenger]) -> None:
    if not passengers:
        raise ToolError("passengers is empty; a reservation has at least 1 passenger (first_name, last_name, dob)")


def _unknown_method(user: User, payment_id: str) -> str:
    return (
        f"'{payment_id[:40]}' is not in the user's profile; the user has: {', '.join(user.payment_methods) or 'none'}"
    )


def check_payments(user: User, parts: list[PaymentPart], total: float, rules: Rules) -> list[Payment]:
    if not parts:
        raise ToolError("payment_methods is empty; give one or more {payment_id, amount} from the user's profile")
    seen: set[str] = set()
    for p in parts:
        pm = user.payment_methods.get(p.payment_id)
        if pm is None:
            raise error(rules, "payment_not_found", _unknown_method(user, p.payment_id), payment_id=p.payment_id[:40])
        if p.payment_id in seen:
            raise ToolError(
                f"payment method {p.payment_id} is listed twice; give each method once with its whole amount"
            )
        seen.add(p.payment_id)
        if not math.isfinite(p.amount) or money(p.amount) <= 0:
            raise ToolError(f"amount {p.amount} for {p.payment_id} must be a positive number of dollars")
        if isinstance(pm, (GiftCard, Certificate)) and pm.amount < money(p.amount):
            raise error(
                rules,
                "not_enough_balance",
                f"{pm.amount} available, {money(p.amount)} requested",
                payment_id=p.payment_id,
            )
    paid = money(sum(p.amount for p in parts))
    if paid != money(total):
        raise error(rules, "payment_sum", "the total is flights x passengers + $30 x passengers with insurance + $50 x non-free bags",
                    total=money(total), paid=paid)  # fmt: skip
    return [Payment(payment_id=p.payment_id, amount=p.amount) for p in parts]


def check_change_payment(user: User, payment_id: str, amount: float, rules: Rules) -> None:
    """Changes are paid (or refunded) with one gift card or credit card, never a certificate (as τ-bench's tools check)."""
    pm = user.payment_methods.get(payment_id)
    if pm is None:
        raise error(rules, "update_payment_not_found", _unknown_method(user, payment_id))
    if pm.source == "certificate":
        raise error(
            rules,
            "certificate_for_update",
            f"{payment_id} is a certificate; changes are paid with a credit card or gift card",
        )
    if isinstance(pm, GiftCard) and amount > 0 and pm.amount < amount:
        raise error(rules, "gift_card_balance", f"{payment_id} has {pm.amount}, {amount} needed")
