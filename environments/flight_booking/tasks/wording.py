"""How generated tasks talk: the user's personas and reasons, the agent's stock phrases, and the helpers
that word money, dates, bags, payments and trips (generator.py and the task families in ../families/ use them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..world import CreditCard, Reservation, User

ANYTHING_ELSE = "Is there anything else I can help you with?"
WRONG_CABIN = {
    "basic_economy": ["business"],
    "economy": ["basic economy", "business"],
    "business": ["economy"],
}  # a proposal naming these is declined
PERSONAS = (
    "You are polite and patient, and answer questions briefly.",
    "You are in a hurry and a bit terse.",
    "You are anxious and like to double-check details.",
    "You are friendly and chatty, but you stay on topic.",
    "You are direct and business-like.",
)
REASON_WORDS = {
    "change_of_plan": "My plans have changed.",
    "airline_cancelled": "The airline cancelled my flight.",
    "health": "I'm sick and can't travel; it's a health reason.",
    "weather": "A big storm is forecast at my destination; it's a weather reason.",
}
OUT_OF_SCOPE = (
    ("I lost my checked bag on my last flight and want to file a claim for it.", "file a lost-baggage claim"),
    (
        "I need wheelchair assistance at the airport for my upcoming trip; can you arrange it?",
        "arrange wheelchair assistance at the airport",
    ),
    ("I want to bring my dog in the cabin on my next flight; can you add that?", "add a pet in the cabin"),
    (
        "I was charged twice on my credit card by mistake and want the duplicate charge investigated.",
        "investigate a duplicate credit card charge",
    ),
    ("I'd like to request a special vegetarian meal on my flight.", "request a special meal"),
    ("I left my laptop on the plane yesterday; can you help me get it back?", "recover an item left on the plane"),
)


def fmt_money(x: float) -> str:
    return f"${x:,.0f}" if x == int(x) else f"${x:,.2f}"


def money_token(x: float) -> str:
    """What the user listens for: '1234' or '1234.5' (normalize() drops '$' and ',')."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def date_words(iso: str) -> list[str]:
    d = dt.date.fromisoformat(iso)
    return [iso, f"{d:%B} {d.day}"]  # '2024-05-20' or 'May 20'


def cabin_words(cabin: str) -> str:
    return cabin.replace("_", " ")


def bag_words(n: int) -> list[str]:
    return [f"{n} checked bag", f"{n} bag", f"{n} total bag", f"{n} checked"]


def describe_payment(user: User, pid: str, whose: str = "my") -> str:
    pm = user.payment_methods[pid]
    if isinstance(pm, CreditCard):
        return f"{whose} {pm.brand} credit card ending in {pm.last_four} ({pid})"
    return f"{whose} {pm.source.replace('_', ' ')} {pid}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def res_ref(r: Reservation, known: dict[str, str]) -> str:
    """How the user names a reservation: by id if they know it, else by the trip."""
    if "reservation_id" in known:
        return f"reservation {r.reservation_id}"
    return f"reservation for my trip from {r.origin} to {r.destination} on {r.flights[0].date}"


def person(p: Any) -> str:
    return f"{p.first_name} {p.last_name} (born {p.dob})"


def trip_words(r: Reservation) -> str:
    return f"{r.origin} to {r.destination}, flights " + ", ".join(f"{s.flight_number} on {s.date}" for s in r.flights)
