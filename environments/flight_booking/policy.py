"""The airline's written policy: the system prompt the agent follows, and the same rules as functions.

The text follows τ-bench's airline policy (wiki.md) with its fixed clock. The functions are what the task
generator uses to decide what the gold agent may do, and what policy_rules.py judges episodes by; the tools
do NOT enforce these rules (as in τ-bench, "the API does not check these for the agent"): an agent that
breaks them sees its call succeed, and the reward is 0 with the rule named (policy_rules.py, reward.py).
Tools check data only (tool_checks.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .world import Database, Reservation, User, money

MAX_PASSENGERS = 5
BAG_FEE = 50
INSURANCE_FEE = 30
CERTIFICATE_CANCELLED = 100  # per passenger, for a flight the airline cancelled
CERTIFICATE_DELAYED = 50  # per passenger, for a delayed flight, after a change or cancellation
# free checked bags per passenger: membership -> cabin -> bags
FREE_BAGS = {
    "regular": {"basic_economy": 0, "economy": 1, "business": 2},
    "silver": {"basic_economy": 1, "economy": 2, "business": 3},
    "gold": {"basic_economy": 2, "economy": 3, "business": 3},
}
COVERED_REASONS = ("health", "weather")  # what travel insurance covers
MAX_PAYMENTS = {"certificate": 1, "credit_card": 1, "gift_card": 3}

POLICY = """# Airline agent policy

The current time is {clock} EST.

You are a customer-service agent of the airline. You help users book, modify and cancel flight reservations.

- Before any action that changes the database (booking, changing flights or cabin, adding bags, changing passengers, cancelling, sending a certificate), list the action's details and get the user's explicit confirmation ("yes") before calling the tool.
- Make at most one tool call per message, and when you call a tool, do not also write to the user in that message.
- Do not give information, knowledge or procedures that the user or the tools did not provide, and no subjective recommendations.
- Deny requests that are against this policy.
- Transfer the user to a human agent (transfer_to_human_agents) if and only if the request is outside what your tools can do; then the conversation ends.

## Domain
- A user profile has a user id, email, address, date of birth, payment methods (credit cards, gift cards, travel certificates), saved passengers, membership (regular, silver or gold) and reservation ids.
- A reservation has an id, the user id, origin, destination, trip type (one_way or round_trip), cabin, flights, passengers, payment history, creation time, total and non-free baggages, and travel insurance (yes or no).
- A flight has a number, origin, destination, scheduled departure and arrival times (EST), and a status per date: "available" (not departed; seats and prices per cabin listed; the only status that can be booked), "delayed" or "on time" (about to depart, cannot be booked), "flying" (departed, not landed), "landed", or "cancelled" (cancelled by the airline).

## Booking
- First get the user id, then the trip type, origin and destination.
- At most {max_passengers} passengers per reservation; collect each one's first name, last name and date of birth. All passengers fly the same flights in the same cabin.
- Payment: at most one travel certificate, at most one credit card and at most three gift cards per reservation, all already in the user's profile. What is left on a certificate after use is not refunded.
- Free checked bags per passenger, by the booking user's membership, for basic_economy / economy / business: regular 0 / 1 / 2, silver 1 / 2 / 3, gold 2 / 3 / 3. Each extra bag costs ${bag_fee}.
- Ask whether the user wants travel insurance: ${insurance_fee} per passenger; it gives a full refund if the user cancels for health or weather reasons.
- The total is: sum of flight prices x passengers + ${insurance_fee} x passengers with insurance + ${bag_fee} x non-free bags.

## Changing a reservation
- First get the user id and the reservation id.
- Flights: basic_economy reservations cannot change flights. Other reservations can, but origin, destination and trip type stay the same. Kept segments keep their original price; new segments cost today's price. The tools do not check these rules: you must.
- Cabin: any reservation, basic_economy included, can change cabin for all its flights together (not for one segment), paying or being refunded the difference at today's prices.
- Bags and insurance: bags can be added but not removed; insurance cannot be added after booking.
- Passengers: names and dates of birth can be changed, but not the number of passengers (no one, not even a human agent, can change that).
- Payment for changes: one gift card or credit card from the profile (not a certificate); ask the user which one.

## Cancelling
- First get the user id, the reservation id and the reason (change of plan, airline cancelled flight, or other reasons such as health or weather).
- A reservation can be cancelled if it was booked within the last 24 hours, or if the airline cancelled one of its flights, or if its cabin is business, or if it has travel insurance and the reason is health or weather. Otherwise it cannot be cancelled. The rules hold for every membership. The tools do not check them: you must.
- Only a whole trip none of whose flights has been flown can be cancelled; if a segment has already been flown, you cannot help: transfer to a human agent.
- Refunds go to the original payment methods in 5 to 7 business days.

## Compensation
- Only if the user complains and explicitly asks for compensation, and only for silver or gold members, reservations with travel insurance, or business cabin — never otherwise, and never proactively:
  - a flight of the reservation was cancelled by the airline: a travel certificate of ${cert_cancelled} x the number of passengers;
  - a flight of the reservation is delayed and the user wants to change or cancel the reservation: after that change or cancellation, a travel certificate of ${cert_delayed} x the number of passengers.
- Confirm the facts (reservation and flight status) before sending a certificate with send_certificate.
"""


def policy_text(clock: dt.datetime) -> str:
    return POLICY.format(
        clock=clock.strftime("%Y-%m-%d %H:%M:%S"), max_passengers=MAX_PASSENGERS, bag_fee=BAG_FEE, insurance_fee=INSURANCE_FEE,
        cert_cancelled=CERTIFICATE_CANCELLED, cert_delayed=CERTIFICATE_DELAYED,
    )  # fmt: skip


# ---- the same rules as functions (used by the task generator) ---------------------------------------------


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str


def free_bags(membership: str, cabin: str, passengers: int) -> int:
    return FREE_BAGS[membership][cabin] * passengers


def nonfree_bags(membership: str, cabin: str, passengers: int, total_bags: int) -> int:
    return max(0, total_bags - free_bags(membership, cabin, passengers))


def booking_total(prices: list[float], passengers: int, insurance: bool, nonfree: int) -> float:
    return money(sum(prices) * passengers + (INSURANCE_FEE * passengers if insurance else 0) + BAG_FEE * nonfree)


def segment_statuses(db: Database, res: Reservation) -> list[str]:
    out = []
    for seg in res.flights:
        fd = db.flight_date(seg.flight_number, seg.date)
        out.append(fd.status if fd is not None else "unknown")
    return out


def any_flown(db: Database, res: Reservation) -> bool:
    return any(s in ("landed", "flying") for s in segment_statuses(db, res))


def airline_cancelled(db: Database, res: Reservation) -> bool:
    return "cancelled" in segment_statuses(db, res)


def booked_within_24h(res: Reservation, clock: dt.datetime) -> bool:
    return clock - dt.datetime.fromisoformat(res.created_at) <= dt.timedelta(hours=24)


def can_cancel(db: Database, res: Reservation, reason: str) -> Decision:
    """reason: "change_of_plan", "airline_cancelled", "health", "weather" or another short word."""
    if res.status == "cancelled":
        return Decision(False, "the reservation is already cancelled")
    if any_flown(db, res):
        return Decision(False, "a segment has already been flown (transfer to a human agent)")
    if booked_within_24h(res, db.world.clock):
        return Decision(True, "it was booked within the last 24 hours")
    if airline_cancelled(db, res):
        return Decision(True, "the airline cancelled one of its flights")
    if res.cabin == "business":
        return Decision(True, "it is in business class")
    if res.insurance == "yes" and reason in COVERED_REASONS:
        return Decision(True, f"it has travel insurance and {reason} is a covered reason")
    if res.insurance == "yes":
        return Decision(
            False, f"travel insurance covers only health or weather reasons, not {reason.replace('_', ' ')}"
        )
    article = "an" if res.cabin == "economy" else "a"
    return Decision(
        False,
        f"it is {article} {res.cabin.replace('_', ' ')} reservation booked more than 24 hours ago, no flight was cancelled by the airline, and it has no travel insurance",
    )


def compensation_eligible(user: User, res: Reservation) -> Decision:
    if user.membership in ("silver", "gold"):
        return Decision(True, f"you are a {user.membership} member")
    if res.insurance == "yes":
        return Decision(True, "the reservation has travel insurance")
    if res.cabin == "business":
        return Decision(True, "the reservation is in business class")
    return Decision(
        False,
        f"you are a regular member, the reservation has no travel insurance and is in {res.cabin.replace('_', ' ')}",
    )
