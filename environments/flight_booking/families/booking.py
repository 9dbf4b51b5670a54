"""Task families that book a new reservation: one way (direct or with one stop) or a round trip, the
cheapest fitting option, paid as the user says; and a booking for more passengers than allowed (refused).

`fam_book` draws the request (`_find_flights` picks the flights with the search tools, `_payment_plans`
the ways to pay), then words it (`_booking_known`, `_booking_goal`) from one `Booking`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..policy import MAX_PASSENGERS, booking_total, nonfree_bags
from ..tasks import Action
from ..tasks.drafts import Ctx, Draft, GoalDraft
from ..tasks.wording import (
    ANYTHING_ELSE,
    WRONG_CABIN,
    cabin_words,
    describe_payment,
    fmt_money,
    money_token,
)
from ..world import Certificate, CreditCard, GiftCard, User, money

Legs = list[dict[str, Any]]  # flights as the search tools return them


@dataclass
class Booking:
    """Everything a booking task is worded from."""

    user: User
    uid: str
    variant: str  # "direct", "round_trip" or "onestop"
    origin: str
    dest: str
    date: str
    ret: str | None  # the return date of a round trip
    cabin: str
    legs: Legs
    passengers: list[dict[str, Any]]
    total_bags: int
    nonfree: int
    insurance: bool
    total: float
    plan: list[tuple[str, float]]  # (payment id, amount)

    @property
    def flight_type(self) -> str:
        return "round_trip" if self.variant == "round_trip" else "one_way"


def _find_flights(
    ctx: Ctx, reads: list[Action], origin: str, date: str, cabin: str, n: int, variant: str
) -> tuple[Legs, Legs | None, str | None] | None:
    """The cheapest outbound (and, for a round trip, return) flights from `origin` with seats for `n`, to one
    of up to 6 shuffled destinations: (out, back, return date). The searches that found them join `reads`."""
    rng, w = ctx.rng, ctx.world

    def cheapest(o: str, d: str, day: str, onestop: bool) -> Legs | None:
        act, res = ctx.read(
            "search_onestop_flight" if onestop else "search_direct_flight", origin=o, destination=d, date=day
        )
        options = [
            x if onestop else [{**x, "date": day}] for x in res
        ]  # direct results carry no date (v1) or null (τ²)
        options = [legs for legs in options if all(leg["available_seats"][cabin] >= n for leg in legs)]
        if not options:
            return None
        reads.append(act)
        return min(
            options,
            key=lambda legs: (
                sum(leg["prices"][cabin] for leg in legs),
                legs[0]["scheduled_departure_time_est"],
                [leg["flight_number"] for leg in legs],
            ),
        )

    onestop = variant == "onestop"
    dests = (
        sorted({f.destination for f in w.by_origin[origin]})
        if not onestop
        else sorted(c for c in w.airports if c != origin)
    )
    rng.shuffle(dests)
    out = back = None
    ret = None
    for dest in dests[:6]:
        reads[1:] = []
        out = cheapest(origin, dest, date, onestop)
        if out is None:
            continue
        if variant == "round_trip":
            ret = (dt.date.fromisoformat(out[-1]["date"]) + dt.timedelta(days=rng.randint(2, 6))).isoformat()
            if ret > ctx.days[-1]:
                out = None
                continue
            back = cheapest(dest, origin, ret, False)
            if back is None:
                out = None
                continue
        break
    if out is None:
        return None
    return out, back, ret


def _payment_plans(u: User, total: float) -> list[list[tuple[str, float]]]:
    """Ways the user can pay `total`: a credit card, a gift card that covers it, or a certificate topped up by a card."""
    cards = [p for p, m in u.payment_methods.items() if isinstance(m, CreditCard)]
    gifts = [p for p, m in u.payment_methods.items() if isinstance(m, GiftCard) and m.amount >= total]
    certs = [p for p, m in u.payment_methods.items() if isinstance(m, Certificate) and m.amount < total]
    plans: list[list[tuple[str, float]]] = [[(c, total)] for c in cards[:1]] + [[(g, total)] for g in gifts[:1]]
    if certs and cards:
        c_amt = u.payment_methods[certs[0]].amount
        plans.append([(certs[0], c_amt), (cards[0], money(total - c_amt))])
    return plans


def _booking_args(b: Booking) -> dict[str, Any]:
    return {
        "user_id": b.uid, "origin": b.origin, "destination": b.dest, "flight_type": b.flight_type, "cabin": b.cabin,
        "flights": [{"flight_number": leg["flight_number"], "date": leg["date"]} for leg in b.legs],
        "passengers": b.passengers, "payment_methods": [{"payment_id": p, "amount": a} for p, a in b.plan],
        "total_baggages": b.total_bags, "nonfree_baggages": b.nonfree, "insurance": "yes" if b.insurance else "no",
    }  # fmt: skip


def _pay_words(b: Booking) -> str:
    """How the user says they will pay (not the total: working out the fare is the agent's job)."""
    u, plan = b.user, b.plan
    return (f"with {describe_payment(u, plan[0][0])}" if len(plan) == 1 else
            f"with {describe_payment(u, plan[0][0])} (all of it) and the rest with {describe_payment(u, plan[1][0])}")  # fmt: skip


def _names(b: Booking) -> str:
    return "; ".join(f"{p['first_name']} {p['last_name']}, born {p['dob']}" for p in b.passengers)


def _stop_words(b: Booking) -> str:
    return " with one stop" if b.variant == "onestop" else " direct"


def _booking_known(b: Booking, city: dict[str, str]) -> dict[str, str]:
    n, ret = len(b.passengers), b.ret
    return {
        "user_id": f"My user id is {b.uid}.",
        "trip": f"From {city[b.origin]} ({b.origin}) to {city[b.dest]} ({b.dest}).",
        "trip_type": "One way." if b.flight_type == "one_way" else f"A round trip, coming back on {ret}.",
        "date": f"I want to leave on {b.date}" + (f" and come back on {ret}." if ret else "."),
        "cabin": f"{cabin_words(b.cabin).capitalize()}, please.",
        "passengers": f"{'The passenger is' if n == 1 else f'There are {n} passengers:'} {_names(b)}.",
        "bags": f"{b.total_bags} checked bags in total." if b.total_bags else "No checked bags.",
        "insurance": "Yes, I want travel insurance." if b.insurance else "No travel insurance, thanks.",
        "payment": f"I'd like to pay {_pay_words(b)}.",
        "flight": f"The cheapest{_stop_words(b)} {cabin_words(b.cabin)} option each way, the earliest if there is a tie.",
    }


def _booking_goal(b: Booking) -> tuple[dict[str, Any], str]:
    """The goal (Goal fields) and the instruction for an LLM user."""
    u, cabin, origin, dest, date, ret, names = b.user, b.cabin, b.origin, b.dest, b.date, b.ret, _names(b)
    one_way = b.flight_type == "one_way"
    pay_text_agent = " and ".join(f"{fmt_money(a)} with {describe_payment(u, p, 'your')}" for p, a in b.plan)
    numbers = [leg["flight_number"] for leg in b.legs]
    flights_text = ", ".join(
        f"{leg['flight_number']} on {leg['date']} ({leg['origin']} to {leg['destination']}, {fmt_money(leg['prices'][cabin])} per passenger)"
        for leg in b.legs
    )
    proposal = (
        f"Here is the booking: a {'one-way' if one_way else 'round'} trip from {origin} to {dest} in {cabin_words(cabin)}, flights {flights_text}; "
        f"passengers: {names}; {b.total_bags} checked bags ({b.nonfree} non-free); travel insurance: {'yes' if b.insurance else 'no'}. "
        f"The total price is {fmt_money(b.total)}, paid {pay_text_agent}. Do you confirm that I should book it (yes/no)?"
    )
    goal = {
        "kind": "book", "outcome": "do",
        "request": f"I'd like to book a {'one-way' if one_way else 'round-trip'} flight from {origin} to {dest} leaving on {date}" + (f", returning {ret}." if ret else "."),
        "confirm": [[x] for x in numbers] + [[cabin_words(cabin)], [money_token(b.total)]] + [[p["first_name"]] for p in b.passengers],
        "reject": WRONG_CABIN[cabin], "choose": numbers,
        "gold_proposal": proposal, "gold_reply": f"Your reservation is booked. {ANYTHING_ELSE}",
    }  # fmt: skip
    instruction = (f"You want to book a {'one-way' if one_way else 'round-trip'}{_stop_words(b)} flight from {origin} to {dest} on {date}" + (f", returning on {ret}" if ret else "")
                   + f", in {cabin_words(cabin)}, the cheapest option, for {names}; {b.total_bags} checked bags; "
                   + ("with" if b.insurance else "without") + f" travel insurance; paying {_pay_words(b)}.")  # fmt: skip
    return goal, instruction


def fam_book(ctx: Ctx, split: str, variant: str) -> Draft | None:
    rng, w = ctx.rng, ctx.world
    uids = [u for u in ctx.users[split] if f"user:{u}" not in ctx.used]
    if not uids:
        return None
    uid = rng.choice(uids)
    u = w.users[uid]
    date = ctx.future_day(2, 20)
    if date is None:
        return None
    origin = rng.choice(sorted(w.by_origin))
    cabin = rng.choice(["basic_economy", "economy", "economy", "business"])
    n = rng.choice([1, 1, 2, 2, 3])
    reads: list[Action] = [ctx.read("get_user_details", user_id=uid)[0]]
    found = _find_flights(ctx, reads, origin, date, cabin, n, variant)
    if found is None:
        return None
    out, back, ret = found
    legs = out + (back or [])

    pax_pool = [u.name.model_dump() | {"dob": u.dob}] + [p.model_dump() for p in u.saved_passengers]
    extra = [{"first_name": f, "last_name": l, "dob": f"{rng.randint(1950, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
             for f, l in (("Noah", "Kim"), ("Olivia", "Park"), ("Ethan", "Rossi"), ("Ava", "Silva"))]  # fmt: skip
    passengers = (pax_pool + extra)[:n]
    total_bags = rng.randint(0, 2 * n)
    nonfree = nonfree_bags(u.membership, cabin, n, total_bags)
    insurance = rng.random() < 0.4
    total = booking_total([leg["prices"][cabin] for leg in legs], n, insurance, nonfree)
    plans = _payment_plans(u, total)
    if not plans:
        return None
    plan = rng.choice(plans)
    ctx.used.add(f"user:{uid}")

    b = Booking(
        u,
        uid,
        variant,
        origin,
        out[-1]["destination"],
        date,
        ret,
        cabin,
        legs,
        passengers,
        total_bags,
        nonfree,
        insurance,
        total,
        plan,
    )
    goal, instruction = _booking_goal(b)
    action = Action(name="book_reservation", arguments=_booking_args(b))
    return Draft(
        f"book_{variant}", uid, [GoalDraft(goal, reads + [action], instruction)], _booking_known(b, w.airports)
    )


def fam_too_many_passengers(ctx: Ctx, split: str) -> Draft | None:
    rng = ctx.rng
    uid = rng.choice(ctx.users[split]) if ctx.users[split] else None
    if uid is None:
        return None
    origin = rng.choice(sorted(ctx.world.by_origin))
    dest = rng.choice(sorted({f.destination for f in ctx.world.by_origin[origin]}))
    date = ctx.future_day(2, 20)
    k = MAX_PASSENGERS + 1
    known = {"user_id": f"My user id is {uid}.", "trip": f"From {origin} to {dest}, one way, on {date}.",
             "passengers": f"We are {k} people: me and five colleagues."}  # fmt: skip
    goal = {
        "kind": "book", "outcome": "refuse", "request": f"I want to book a one-way flight from {origin} to {dest} on {date} for {k} people on one reservation.",
        "confirm": [[f"{k} passengers", "six passengers"]],
        "gold_reply": f"I'm sorry, but a reservation can have at most {MAX_PASSENGERS} passengers, so I cannot book {k} people on one reservation. {ANYTHING_ELSE}",
    }  # fmt: skip
    return Draft(
        "too_many_passengers_refused",
        uid,
        [
            GoalDraft(
                goal,
                [],
                f"You want one reservation for {k} people from {origin} to {dest} on {date}. If the agent says it is not possible, accept it.",
            )
        ],
        known,
    )
