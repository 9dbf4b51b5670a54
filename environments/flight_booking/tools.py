"""The 15 airline tools, with τ-bench's names, arguments and outputs (plus get_flight_status from τ²-bench);
the read tools live in tools_read.py, the write tools here.

Every tool acts on `state.db`, the episode's copy-on-write `Database` (world.py), under `state.rules`
(parity.py: which τ-bench version the outputs, error strings, seat accounting and cabin write follow).

Write tools check data, not policy (tool_checks.py): they refuse what is impossible — unknown ids, a flight
not bookable on that date, too few seats, a payment method that is not the user's, a balance too low, payments
that do not add up to the fare rules — and perform what is possible, checking everything before they change
anything, so a failed call changes nothing. The written policy (basic economy, fixed routes, cancellation
conditions, bag allowances, payment limits, compensation) is the agent's job: policy_rules.py finds where an
episode broke it, and the reward is 0 then.

New ids follow τ-bench's (both versions): reservations get the first of HATHAT, HATHAU, HATHAV not taken,
certificates the first of certificate_3221322, _3221323, _3221324 not in the user's profile, so a replay of
τ-bench's gold actions gets τ-bench's ids. Past τ-bench's three, the sequences go on (HATHAW, ...;
certificate_3221325, ...) where τ² raises "Too many reservations" / "Too many certificates".
"""

from __future__ import annotations

import math
import string
from typing import Any

from agentrl.core.tools import ToolError, tool

from . import views
from .parity import Rules, error, num, rules_of
from .policy import booking_total
from .tool_checks import (
    FlightRef,
    PaymentPart,
    bookable_segment,
    check_airport,
    check_change_payment,
    check_passengers,
    check_payments,
    find_reservation,
    find_user,
)
from .tools_read import (
    calculate,
    get_flight_status,
    get_reservation_details,
    get_user_details,
    list_all_airports,
    search_direct_flight,
    search_onestop_flight,
    think,
    transfer_to_human_agents,
)
from .world import (
    Cabin,
    Certificate,
    Database,
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
FIRST_CERTIFICATE = 3221322  # τ-bench: certificate_3221322, _3221323, _3221324


def _reservation_ids() -> Any:
    """HATHAT, HATHAU, HATHAV (τ-bench's three), then HATHAW ... HATHAZ, HATHBA ... HATHZZ."""
    letters = string.ascii_uppercase
    for k in range(letters.index("A") * 26 + letters.index("T"), 26 * 26):
        yield "HATH" + letters[k // 26] + letters[k % 26]


def new_reservation_id(db: Database) -> str:
    for rid in _reservation_ids():
        if not db.has_reservation_id(rid):
            return rid
    raise ToolError("too many reservations in one episode: every id from HATHAT to HATHZZ is taken")


def new_certificate_id(user: User) -> str:
    for k in range(10_000):
        pid = f"certificate_{FIRST_CERTIFICATE + k}"
        if pid not in user.payment_methods:
            return pid
    raise ToolError("too many certificates for this user")


def _out(db: Database, r: Reservation, rules: Rules) -> str:
    return views.dumps(views.reservation(db, r, rules))


def _charge_gift_card(db: Database, user_id: str, payment_id: str, amount: float) -> None:
    pm = db.user_for_update(user_id).payment_methods[payment_id]
    if isinstance(pm, GiftCard) and amount:
        pm.amount = money(pm.amount - amount)  # a negative amount (a refund) goes back onto the gift card


def _bill(db: Database, rw: Reservation, payment_id: str, amount: float) -> None:
    """Charge (or refund, amount < 0) an update to the payment method; a non-zero amount joins the history."""
    _charge_gift_card(db, rw.user_id, payment_id, amount)
    if amount:
        rw.payment_history.append(Payment(payment_id=payment_id, amount=amount))


def _move_seats(db: Database, segs: list[ReservationFlight], cabin: str, delta: int) -> None:
    """Take (delta < 0) or give back (delta > 0) seats; only bookable dates track seats."""
    for s in segs:
        fd = db.flight_date(s.flight_number, s.date)
        if fd is not None and fd.status == "available":
            fdw = db.flight_date_for_update(s.flight_number, s.date)
            setattr(fdw.available_seats, cabin, getattr(fdw.available_seats, cabin) + delta)


def _flight_list(flights: list[FlightRef], what: str) -> list[tuple[str, str]]:
    if not flights:
        raise ToolError(f"flights is empty; list every flight of the {what} as {{flight_number, date}}")
    keys = [(f.flight_number, f.date) for f in flights]
    if len(set(keys)) != len(keys):
        raise ToolError("the same flight on the same date is listed twice; list each flight of the trip once")
    return keys


def _check_bags(total_baggages: int, nonfree_baggages: int) -> None:
    if not 0 <= nonfree_baggages <= total_baggages <= MAX_BAGS:
        raise ToolError(
            f"bags must satisfy 0 <= nonfree_baggages <= total_baggages <= {MAX_BAGS} (got {nonfree_baggages} non-free of {total_baggages})"
        )


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
    rules = rules_of(state)
    user = find_user(db, user_id, rules)
    check_airport(db, origin, "origin")
    check_airport(db, destination, "destination")
    check_passengers(passengers)
    n = len(passengers)
    _flight_list(flights, "trip")
    segs = [bookable_segment(db, ref, cabin, n, rules)[0] for ref in flights]
    _check_bags(total_baggages, nonfree_baggages)
    total = booking_total([s.price for s in segs], n, insurance == "yes", nonfree_baggages)
    payments = check_payments(user, payment_methods, total, rules)

    # every check passed: change the database
    if rules.seat_mode != "none":
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
    db.tool_ordered.add(res.reservation_id)
    uw.reservations.append(res.reservation_id)
    return _out(db, res, rules)


@tool
def cancel_reservation(reservation_id: str, state: Any) -> str:
    """Cancel the whole reservation. Every payment is refunded to its original method (in 5 to 7 business days).

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
    """
    db: Database = state.db
    rules = rules_of(state)
    r = find_reservation(db, reservation_id, rules)
    rw = db.reservation_for_update(r.reservation_id)
    rw.payment_history.extend([Payment(payment_id=p.payment_id, amount=-p.amount) for p in r.payment_history])
    rw.status = "cancelled"
    if rules.seat_mode == "full":
        _move_seats(db, rw.flights, rw.cabin, len(rw.passengers))
    return _out(db, rw, rules)


@tool
def update_reservation_baggages(
    reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str, state: Any
) -> str:
    """Update the checked bags of a reservation. Each added non-free bag costs $50.

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
        total_baggages: The new total number of checked bags.
        nonfree_baggages: The new number of non-free checked bags.
        payment_id: The payment id (credit card or gift card in the user's profile) for the fee, such as 'credit_card_7815826'.
    """
    db: Database = state.db
    rules = rules_of(state)
    r = find_reservation(db, reservation_id, rules)
    _check_bags(total_baggages, nonfree_baggages)
    fee = money(50 * max(0, nonfree_baggages - r.nonfree_baggages))  # as τ-bench: fewer bags are not refunded
    check_change_payment(find_user(db, r.user_id, rules), payment_id, fee, rules)

    rw = db.reservation_for_update(reservation_id)
    rw.total_baggages, rw.nonfree_baggages = total_baggages, nonfree_baggages
    _bill(db, rw, payment_id, fee)
    return _out(db, rw, rules)


@tool
def update_reservation_flights(
    reservation_id: str, cabin: Cabin, flights: list[FlightRef], payment_id: str, state: Any
) -> str:
    """Update the flights and/or the cabin of a reservation. Segments kept in the same cabin keep their price;
    new segments (and all segments, if the cabin changes) cost today's price. The difference is charged to, or
    refunded onto, the payment method.

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
        cabin: The cabin for all flights of the reservation.
        flights: Every flight of the ENTIRE new reservation, in order, including unchanged segments.
        payment_id: The payment id (credit card or gift card in the user's profile), such as 'credit_card_7815826'.
    """
    db: Database = state.db
    rules = rules_of(state)
    r = find_reservation(db, reservation_id, rules)
    n = len(r.passengers)
    _flight_list(flights, "new reservation")
    old = {(s.flight_number, s.date): s for s in r.flights}
    new_segs, taken = [], []
    for ref in flights:
        kept = old.get((ref.flight_number, ref.date)) if cabin == r.cabin else None
        if kept is not None:
            new_segs.append(kept.model_copy())
        else:
            seg = bookable_segment(db, ref, cabin, n, rules)[0]
            new_segs.append(seg)
            taken.append(seg)
    diff = money((sum(s.price for s in new_segs) - sum(s.price for s in r.flights)) * n)
    check_change_payment(find_user(db, r.user_id, rules), payment_id, diff, rules)

    if rules.seat_mode == "full":
        kept_keys = {(s.flight_number, s.date) for s in new_segs} if cabin == r.cabin else set()
        _move_seats(db, [s for s in r.flights if (s.flight_number, s.date) not in kept_keys], r.cabin, n)
        _move_seats(db, taken, cabin, -n)
    rw = db.reservation_for_update(reservation_id)
    rw.flights = new_segs
    if rules.writes_cabin:
        rw.cabin = cabin  # τ² writes it; τ-bench v1 leaves the old cabin (τ² calls that a bug)
    db.tool_ordered.add(reservation_id)
    _bill(db, rw, payment_id, diff)
    return _out(db, rw, rules)


@tool
def update_reservation_passengers(reservation_id: str, passengers: list[Passenger], state: Any) -> str:
    """Update the passengers of a reservation (names and dates of birth). The number of passengers cannot change.

    Args:
        reservation_id: The reservation id, such as 'ZFA04Y'.
        passengers: Every passenger of the reservation, in order, with first name, last name and date of birth (YYYY-MM-DD).
    """
    db: Database = state.db
    rules = rules_of(state)
    r = find_reservation(db, reservation_id, rules)
    if len(passengers) != len(r.passengers):
        raise error(
            rules,
            "passenger_count",
            f"the reservation has {len(r.passengers)} passengers and must keep that number; {len(passengers)} given",
        )
    rw = db.reservation_for_update(reservation_id)
    rw.passengers = [p.model_copy() for p in passengers]
    return _out(db, rw, rules)


@tool
def send_certificate(user_id: str, amount: float, state: Any) -> str:
    """Send a travel certificate to a user, as compensation allowed by the policy. Be careful!

    Args:
        user_id: The user id, such as 'sara_doe_496'.
        amount: The certificate amount in dollars.
    """
    db: Database = state.db
    rules = rules_of(state)
    user = find_user(db, user_id, rules)
    if not math.isfinite(amount) or not 0 < money(amount) <= MAX_CERTIFICATE:
        raise ToolError(f"amount must be more than 0 and at most {MAX_CERTIFICATE} dollars, got {amount}")
    pid = new_certificate_id(user)
    db.user_for_update(user_id).payment_methods[pid] = Certificate(id=pid, amount=amount)
    return f"Certificate {pid} added to user {user_id} with amount {num(amount)}."


TOOLS = (
    book_reservation, cancel_reservation, get_reservation_details, get_user_details, list_all_airports,
    search_direct_flight, search_onestop_flight, send_certificate, transfer_to_human_agents,
    update_reservation_baggages, update_reservation_flights, update_reservation_passengers, calculate, think,
    get_flight_status,
)  # fmt: skip
TOOLS_BY_NAME = {t.name: t for t in TOOLS}
