"""Task generator: writes tasks from a world, each one solvable by construction.

Each family picks users / reservations that fit it, computes the gold actions through the same tools the
agent calls (search results, prices and statuses come from the tools; fares from policy.py), and writes
the user's side (requests, known / unknown info, what the user must hear to say yes). `generate_tasks`
then plays every task with the gold agent and the rule-based user and keeps it only at reward 1 — a
failure there is a generator bug and raises.

Splits are by user: a user (chosen by a hash of the id) belongs to train or test, never both, so no test
task reuses a train task's user or reservation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from .policy import (
    CERTIFICATE_CANCELLED,
    CERTIFICATE_DELAYED,
    FREE_BAGS,
    MAX_PASSENGERS,
    airline_cancelled,
    any_flown,
    booked_within_24h,
    booking_total,
    can_cancel,
    compensation_eligible,
    nonfree_bags,
    segment_statuses,
)  # fmt: skip
from .reward import ReplayState
from .tasks import Action, Goal, Task, UserScenario
from .tools import TOOLS_BY_NAME
from .world import (
    Available,
    Certificate,
    CreditCard,
    Database,
    GiftCard,
    Reservation,
    User,
    World,
    money,
)

ANYTHING_ELSE = "Is there anything else I can help you with?"
WRONG_CABIN = {"basic_economy": ["business"], "economy": ["basic economy", "business"], "business": ["economy"]}  # a proposal naming these is declined
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
    ("I need wheelchair assistance at the airport for my upcoming trip; can you arrange it?", "arrange wheelchair assistance at the airport"),
    ("I want to bring my dog in the cabin on my next flight; can you add that?", "add a pet in the cabin"),
    ("I was charged twice on my credit card by mistake and want the duplicate charge investigated.", "investigate a duplicate credit card charge"),
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


def payment_words(user: User, pid: str) -> list[str]:
    pm = user.payment_methods[pid]
    return [pid, pm.last_four] if isinstance(pm, CreditCard) else [pid]


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


@dataclass
class GoalDraft:
    goal: dict[str, Any]  # Goal fields except `actions`
    actions: list[Action]
    instruction: str  # the goal in words for an LLM user


@dataclass
class Draft:
    family: str
    user_id: str
    goals: list[GoalDraft]
    known: dict[str, str]
    unknown: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


class Ctx:
    """What families draw from: the world, a read-only database to call tools on, the rng, the split's users."""

    def __init__(self, world: World, rng: random.Random, test_share: int = 5):
        self.world = world
        self.db = Database(world)
        self.rng = rng
        self.today = world.clock.date()
        self.days = sorted({d for f in world.flights.values() for d in f.dates})
        self.users = {s: sorted(u for u in world.users if (user_split(u, test_share) == s)) for s in ("train", "test")}
        self.used: set[str] = set()  # reservation ids (and "user:<id>" for booking tasks) already in a task

    def read(self, name: str, **arguments: Any) -> tuple[Action, Any]:
        """Call a read tool as the agent would; the action and its parsed result."""
        action = Action(name=name, arguments=arguments)
        result = TOOLS_BY_NAME[name].invoke(arguments, state=ReplayState(self.db))
        if not result.ok:
            raise RuntimeError(f"generator read {name}({arguments}) failed: {result.content}")
        try:
            return action, json.loads(result.content)
        except ValueError:
            return action, result.content

    def reservations(self, split: str, pred: Callable[[User, Reservation], bool]) -> list[tuple[User, Reservation]]:
        out = []
        for uid in self.users[split]:
            u = self.world.users[uid]
            for rid in u.reservations:
                r = self.world.reservations[rid]
                if rid not in self.used and r.status is None and pred(u, r):
                    out.append((u, r))
        return out

    def pick(self, split: str, pred: Callable[[User, Reservation], bool]) -> tuple[User, Reservation] | None:
        cands = self.reservations(split, pred)
        if not cands:
            return None
        u, r = self.rng.choice(cands)
        self.used.add(r.reservation_id)
        return u, r

    def statuses(self, r: Reservation) -> list[str]:
        return segment_statuses(self.db, r)

    def all_available(self, r: Reservation) -> bool:
        return all(s == "available" for s in self.statuses(r))

    def future_day(self, lo: int = 1, hi: int | None = None) -> str | None:
        days = [d for d in self.days if (dt.date.fromisoformat(d) - self.today).days >= lo]
        if hi is not None:
            days = [d for d in days if (dt.date.fromisoformat(d) - self.today).days <= hi]
        return self.rng.choice(days) if days else None

    def change_payment(self, u: User, amount: float) -> str | None:
        """A credit card, else a gift card that covers `amount`: what changes are paid with."""
        cards = [p for p, m in u.payment_methods.items() if isinstance(m, CreditCard)]
        gifts = [p for p, m in u.payment_methods.items() if isinstance(m, GiftCard) and m.amount >= max(amount, 0)]
        opts = cards + gifts
        return self.rng.choice(opts) if opts else None


def user_split(user_id: str, test_share: int = 5) -> str:
    return "test" if int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % test_share == 0 else "train"


def known_ids(u: User, r: Reservation | None, rng: random.Random, ctx: Ctx, hide_rid: float = 0.3) -> tuple[dict[str, str], list[str], list[Action]]:
    """The user's id, and the reservation id unless the user has forgotten it (then the agent must look it up:
    get_user_details comes first in the gold actions, and the user describes the trip instead)."""
    known = {"user_id": f"My user id is {uid_of(u, ctx)}."}
    if r is None:
        return known, [], []
    if rng.random() < hide_rid and len(u.reservations) > 1:
        first = r.flights[0]
        known["trip"] = f"It's my trip from {r.origin} to {r.destination} leaving on {first.date} (flight {first.flight_number})."
        return known, ["reservation_id"], [ctx.read("get_user_details", user_id=uid_of(u, ctx))[0]]
    known["reservation_id"] = f"The reservation id is {r.reservation_id}."
    return known, [], []


def uid_of(u: User, ctx: Ctx) -> str:
    key = ("uid", id(u))
    if key not in ctx.world.memo:
        ctx.world.memo[key] = next(k for k, v in ctx.world.users.items() if v is u)
    return ctx.world.memo[key]


def trip_words(r: Reservation) -> str:
    return f"{r.origin} to {r.destination}, flights " + ", ".join(f"{s.flight_number} on {s.date}" for s in r.flights)


# ---- families ----------------------------------------------------------------------------------------------


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

    def cheapest(o: str, d: str, day: str, onestop: bool) -> list[dict[str, Any]] | None:
        act, res = ctx.read("search_onestop_flight" if onestop else "search_direct_flight", origin=o, destination=d, date=day)
        options = [x if onestop else [x] for x in res]
        options = [legs for legs in options if all(leg["available_seats"][cabin] >= n for leg in legs)]
        if not options:
            return None
        reads.append(act)
        return min(options, key=lambda legs: (sum(leg["prices"][cabin] for leg in legs), legs[0]["scheduled_departure_time_est"], [leg["flight_number"] for leg in legs]))

    onestop = variant == "onestop"
    dests = sorted({f.destination for f in w.by_origin[origin]}) if not onestop else sorted(c for c in w.airports if c != origin)
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
    dest = out[-1]["destination"]
    legs = out + (back or [])
    flight_type = "round_trip" if variant == "round_trip" else "one_way"

    pax_pool = [u.name.model_dump() | {"dob": u.dob}] + [p.model_dump() for p in u.saved_passengers]
    extra = [{"first_name": f, "last_name": l, "dob": f"{rng.randint(1950, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
             for f, l in (("Noah", "Kim"), ("Olivia", "Park"), ("Ethan", "Rossi"), ("Ava", "Silva"))]  # fmt: skip
    passengers = (pax_pool + extra)[:n]
    total_bags = rng.randint(0, 2 * n)
    nonfree = nonfree_bags(u.membership, cabin, n, total_bags)
    insurance = rng.random() < 0.4
    prices = [leg["prices"][cabin] for leg in legs]
    total = booking_total(prices, n, insurance, nonfree)
    cards = [p for p, m in u.payment_methods.items() if isinstance(m, CreditCard)]
    gifts = [p for p, m in u.payment_methods.items() if isinstance(m, GiftCard) and m.amount >= total]
    certs = [p for p, m in u.payment_methods.items() if isinstance(m, Certificate) and m.amount < total]
    plans: list[list[tuple[str, float]]] = [[(c, total)] for c in cards[:1]] + [[(g, total)] for g in gifts[:1]]
    if certs and cards:
        c_amt = u.payment_methods[certs[0]].amount
        plans.append([(certs[0], c_amt), (cards[0], money(total - c_amt))])
    if not plans:
        return None
    plan = rng.choice(plans)
    ctx.used.add(f"user:{uid}")

    args = {
        "user_id": uid, "origin": origin, "destination": dest, "flight_type": flight_type, "cabin": cabin,
        "flights": [{"flight_number": leg["flight_number"], "date": leg["date"]} for leg in legs],
        "passengers": passengers, "payment_methods": [{"payment_id": p, "amount": a} for p, a in plan],
        "total_baggages": total_bags, "nonfree_baggages": nonfree, "insurance": "yes" if insurance else "no",
    }  # fmt: skip
    stop_words = " with one stop" if onestop else " direct"
    city = w.airports
    # the user says how to pay, not the total: working out the fare is the agent's job
    pay_words = (f"with {describe_payment(u, plan[0][0])}" if len(plan) == 1 else
                 f"with {describe_payment(u, plan[0][0])} (all of it) and the rest with {describe_payment(u, plan[1][0])}")
    pay_text_agent = " and ".join(f"{fmt_money(a)} with {describe_payment(u, p, 'your')}" for p, a in plan)
    names = "; ".join(f"{p['first_name']} {p['last_name']}, born {p['dob']}" for p in passengers)
    known = {
        "user_id": f"My user id is {uid}.",
        "trip": f"From {city[origin]} ({origin}) to {city[dest]} ({dest}).",
        "trip_type": "One way." if flight_type == "one_way" else f"A round trip, coming back on {ret}.",
        "date": f"I want to leave on {date}" + (f" and come back on {ret}." if ret else "."),
        "cabin": f"{cabin_words(cabin).capitalize()}, please.",
        "passengers": f"{'The passenger is' if n == 1 else f'There are {n} passengers:'} {names}.",
        "bags": f"{total_bags} checked bags in total." if total_bags else "No checked bags.",
        "insurance": "Yes, I want travel insurance." if insurance else "No travel insurance, thanks.",
        "payment": f"I'd like to pay {pay_words}.",
        "flight": f"The cheapest{stop_words} {cabin_words(cabin)} option each way, the earliest if there is a tie.",
    }
    numbers = [leg["flight_number"] for leg in legs]
    flights_text = ", ".join(f"{leg['flight_number']} on {leg['date']} ({leg['origin']} to {leg['destination']}, {fmt_money(leg['prices'][cabin])} per passenger)" for leg in legs)
    proposal = (
        f"Here is the booking: a {'one-way' if flight_type == 'one_way' else 'round'} trip from {origin} to {dest} in {cabin_words(cabin)}, flights {flights_text}; "
        f"passengers: {names}; {total_bags} checked bags ({nonfree} non-free); travel insurance: {'yes' if insurance else 'no'}. "
        f"The total price is {fmt_money(total)}, paid {pay_text_agent}. Do you confirm that I should book it (yes/no)?"
    )
    goal = {
        "kind": "book", "outcome": "do",
        "request": f"I'd like to book a {'one-way' if flight_type == 'one_way' else 'round-trip'} flight from {origin} to {dest} leaving on {date}" + (f", returning {ret}." if ret else "."),
        "confirm": [[x] for x in numbers] + [[cabin_words(cabin)], [money_token(total)]] + [[p["first_name"]] for p in passengers],
        "reject": WRONG_CABIN[cabin], "choose": numbers,
        "gold_proposal": proposal, "gold_reply": f"Your reservation is booked. {ANYTHING_ELSE}",
    }  # fmt: skip
    instruction = (f"You want to book a {'one-way' if flight_type == 'one_way' else 'round-trip'}{stop_words} flight from {origin} to {dest} on {date}" + (f", returning on {ret}" if ret else "")
                   + f", in {cabin_words(cabin)}, the cheapest option, for {names}; {total_bags} checked bags; "
                   + ("with" if insurance else "without") + f" travel insurance; paying {pay_words}.")  # fmt: skip
    return Draft(f"book_{variant}", uid, [GoalDraft(goal, reads + [Action(name="book_reservation", arguments=args)], instruction)], known)


def _cancel_goal(ctx: Ctx, u: User, r: Reservation, reason: str, lookups: list[Action], insist: int = 0, ref: str = "") -> GoalDraft:
    rid = r.reservation_id
    decision = can_cancel(ctx.db, r, reason)
    read = ctx.read("get_reservation_details", reservation_id=rid)[0]
    request = f"I need to cancel my {ref or f'reservation {rid}'}."
    base = {"kind": "cancel", "request": request, "confirm": [[rid]]}
    if decision.allowed:
        goal = base | {
            "outcome": "do",
            "gold_proposal": (f"Reservation {rid} ({trip_words(r)}) can be cancelled because {decision.why}. The refund of "
                              f"{fmt_money(r.paid())} goes back to the original payment methods in 5 to 7 business days. "
                              f"Do you confirm that I should cancel it (yes/no)?"),
            "gold_reply": f"Reservation {rid} is now cancelled. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read, Action(name="cancel_reservation", arguments={"reservation_id": rid})]
        instruction = f"You want to cancel reservation {rid} ({REASON_WORDS[reason].lower()})."
    else:
        goal = base | {
            "outcome": "refuse", "insist": insist, "pushback": f"Are you sure? I really need to cancel reservation {rid}.",
            "gold_reply": f"I'm sorry, but I cannot cancel reservation {rid}: {decision.why}. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read]
        instruction = (f"You want to cancel reservation {rid} ({REASON_WORDS[reason].lower()}). If the agent says it cannot be "
                       f"cancelled, " + ("insist once, then " if insist else "") + "accept it.")  # fmt: skip
    return GoalDraft(goal, acts, instruction)


def fam_cancel(ctx: Ctx, split: str, allowed: bool) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    clock = ctx.world.clock
    if allowed:
        kind = rng.choice(["recent", "airline", "business", "insured"])
        preds = {
            "recent": (lambda u, r: booked_within_24h(r, clock) and not any_flown(db, r), "change_of_plan"),
            "airline": (lambda u, r: airline_cancelled(db, r) and not any_flown(db, r) and not booked_within_24h(r, clock), "airline_cancelled"),
            "business": (lambda u, r: r.cabin == "business" and ctx.all_available(r) and not booked_within_24h(r, clock), "change_of_plan"),
            "insured": (lambda u, r: r.insurance == "yes" and r.cabin != "business" and ctx.all_available(r) and not booked_within_24h(r, clock), rng.choice(["health", "weather"])),
        }  # fmt: skip
        pred, reason = preds[kind]
    else:
        reason = rng.choice(["change_of_plan", "change_of_plan", "health", "weather"])
        pred = lambda u, r: ctx.all_available(r) and not can_cancel(db, r, reason).allowed  # noqa: E731
    got = ctx.pick(split, pred)
    if got is None:
        return None
    u, r = got
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    known["reason"] = REASON_WORDS[reason]
    g = _cancel_goal(ctx, u, r, reason, lookups, insist=0 if allowed else rng.choice([0, 0, 1]), ref=res_ref(r, known))
    return Draft("cancel_allowed" if allowed else "cancel_refused", uid_of(u, ctx), [g], known, unknown)


def fam_cancel_flown(ctx: Ctx, split: str) -> Draft | None:
    db = ctx.db
    got = ctx.pick(split, lambda u, r: any_flown(db, r) and "available" in ctx.statuses(r))
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservation id is {rid}.", "reason": REASON_WORDS["change_of_plan"]}
    summary = f"User {uid} wants to cancel reservation {rid}, part of which has already been flown."
    acts = [ctx.read("get_reservation_details", reservation_id=rid)[0], Action(name="transfer_to_human_agents", arguments={"summary": summary})]
    goal = {"kind": "cancel", "outcome": "transfer", "request": f"I want to cancel the rest of my trip, reservation {rid}; I won't take the return flight.", "confirm": [[rid]]}
    return Draft("cancel_flown_transfer", uid, [GoalDraft(goal, acts, f"You want to cancel reservation {rid}, whose outbound flight you already took.")], known)


def fam_change_flight(ctx: Ctx, split: str, allowed: bool) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    if allowed:
        pred = lambda u, r: r.cabin != "basic_economy" and ctx.all_available(r) and len(r.flights) <= 2  # noqa: E731
    else:
        pred = lambda u, r: r.cabin == "basic_economy" and ctx.all_available(r) and len(r.flights) <= 2  # noqa: E731
    for _ in range(20):
        cands = ctx.reservations(split, pred)
        if not cands:
            return None
        u, r = rng.choice(cands)
        n = len(r.passengers)
        # move the last segment (one-way: the flight; round trip: the return) to another day, same flight number
        seg = r.flights[-1]
        lo = r.flights[0].date if len(r.flights) == 2 else None
        days = [d for d in ctx.days if d > ctx.today.isoformat() and d != seg.date and (lo is None or d > lo)]
        days = [d for d in days if abs((dt.date.fromisoformat(d) - dt.date.fromisoformat(seg.date)).days) <= 4]
        rng.shuffle(days)
        for new_date in days:
            fd = db.flight_date(seg.flight_number, new_date)
            if isinstance(fd, Available) and getattr(fd.available_seats, r.cabin) >= n:
                break
        else:
            continue
        new_price = getattr(fd.prices, r.cabin)
        diff = money((new_price - seg.price) * n)
        pid = ctx.change_payment(u, diff)
        if pid is None:
            continue
        ctx.used.add(r.reservation_id)
        break
    else:
        return None
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    which = "return flight" if len(r.flights) == 2 else "flight"
    known["date"] = f"I want to move my {which} {seg.flight_number} from {seg.date} to {new_date}, same flight number."
    known["flight"] = f"The same flight, {seg.flight_number}, on {new_date}."
    known["payment"] = f"Please use {describe_payment(u, pid)} for any difference."
    request = f"I'd like to change my {which} {seg.flight_number} on {seg.date} to {new_date}, on my {res_ref(r, known)}."
    read = ctx.read("get_reservation_details", reservation_id=rid)[0]
    search = ctx.read("search_direct_flight", origin=seg.origin, destination=seg.destination, date=new_date)[0]
    confirm = [[rid], [seg.flight_number], date_words(new_date)]
    if allowed:
        if diff > 0:
            money_text = f"The fare difference of {fmt_money(diff)} will be charged to {describe_payment(u, pid, 'your')}."
        elif diff < 0:
            money_text = f"The fare difference of {fmt_money(-diff)} will be refunded to {describe_payment(u, pid, 'your')}."
        else:
            money_text = "There is no fare difference."
        if diff:
            confirm.append([money_token(abs(diff))])
        flights = [{"flight_number": s.flight_number, "date": s.date} for s in r.flights[:-1]] + [{"flight_number": seg.flight_number, "date": new_date}]
        write = Action(name="update_reservation_flights", arguments={"reservation_id": rid, "cabin": r.cabin, "flights": flights, "payment_id": pid})
        goal = {
            "kind": "change_flights", "outcome": "do", "request": request, "confirm": confirm,
            "gold_proposal": (f"I can change reservation {rid}: flight {seg.flight_number} moves from {seg.date} to {new_date} in "
                              f"{cabin_words(r.cabin)}; the other flights stay as they are. {money_text} Do you confirm that I should make this change (yes/no)?"),
            "gold_reply": f"Your flight has been changed. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read, search, write]
        instruction = f"You want to move flight {seg.flight_number} of reservation {rid} from {seg.date} to {new_date} (same flight number), paying any difference with {pid}."
    else:
        goal = {
            "kind": "change_flights", "outcome": "refuse", "request": request, "confirm": confirm,
            "gold_reply": f"I'm sorry, but reservation {rid} is in basic economy, and basic economy flights cannot be changed. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read]
        instruction = f"You want to move flight {seg.flight_number} of reservation {rid} from {seg.date} to {new_date}. If the agent says it is not allowed, accept it."
    return Draft("change_flight" if allowed else "change_flight_refused", uid, [GoalDraft(goal, acts, instruction)], known, unknown)


def fam_change_cabin(ctx: Ctx, split: str) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    ups = {"basic_economy": ["economy", "business"], "economy": ["business"]}

    def fits(u: User, r: Reservation) -> bool:
        return r.cabin in ups and ctx.all_available(r)

    for _ in range(20):
        cands = ctx.reservations(split, fits)
        if not cands:
            return None
        u, r = rng.choice(cands)
        new = rng.choice(ups[r.cabin])
        n = len(r.passengers)
        fds = [db.flight_date(s.flight_number, s.date) for s in r.flights]
        if not all(getattr(fd.available_seats, new) >= n for fd in fds):
            continue
        diff = money((sum(getattr(fd.prices, new) for fd in fds) - sum(s.price for s in r.flights)) * n)
        pid = ctx.change_payment(u, diff)
        if pid is None or diff == 0:
            continue
        ctx.used.add(r.reservation_id)
        break
    else:
        return None
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    known["cabin"] = f"I want {cabin_words(new)} for all flights of the reservation."
    known["payment"] = f"Please use {describe_payment(u, pid)}."
    flights = [{"flight_number": s.flight_number, "date": s.date} for s in r.flights]
    write = Action(name="update_reservation_flights", arguments={"reservation_id": rid, "cabin": new, "flights": flights, "payment_id": pid})
    charged = f"charged to {describe_payment(u, pid, 'your')}" if diff > 0 else f"refunded to {describe_payment(u, pid, 'your')}"
    goal = {
        "kind": "change_cabin", "outcome": "do",
        "request": f"I'd like to upgrade my {res_ref(r, known)} to {cabin_words(new)}.",
        "confirm": [[rid], [cabin_words(new)], [money_token(abs(diff))]],
        "gold_proposal": (f"I can change the cabin of reservation {rid} from {cabin_words(r.cabin)} to {cabin_words(new)} for all its flights "
                          f"({', '.join(f['flight_number'] for f in flights)}). The price difference at today's prices is {fmt_money(abs(diff))}, "
                          f"{charged}. Do you confirm that I should make this change (yes/no)?"),
        "gold_reply": f"Your reservation is now in {cabin_words(new)}. {ANYTHING_ELSE}",
    }  # fmt: skip
    acts = lookups + [ctx.read("get_reservation_details", reservation_id=rid)[0], write]
    return Draft("change_cabin", uid, [GoalDraft(goal, acts, f"You want to change reservation {rid} to {cabin_words(new)}, paying with {pid}.")], known, unknown)


def _bags_goal(ctx: Ctx, u: User, r: Reservation, lookups: list[Action]) -> GoalDraft | None:
    rng = ctx.rng
    n = len(r.passengers)
    add = rng.randint(1, 3)
    total = r.total_baggages + add
    nonfree = max(r.nonfree_baggages, nonfree_bags(u.membership, r.cabin, n, total))
    fee = money(50 * (nonfree - r.nonfree_baggages))
    pid = ctx.change_payment(u, fee)
    if pid is None:
        return None
    rid, uid = r.reservation_id, uid_of(u, ctx)
    free = FREE_BAGS[u.membership][r.cabin]
    confirm = [[rid], bag_words(total)] + ([[money_token(fee)]] if fee else [])
    fee_text = f"The fee is {fmt_money(fee)}, charged to {describe_payment(u, pid, 'your')}." if fee else "They are all free, so there is no fee."
    goal = {
        "kind": "add_bags", "outcome": "do",
        "request": f"I'd like to add {plural(add, 'checked bag')} to my reservation {rid}.",
        "confirm": confirm,
        "gold_proposal": (f"Reservation {rid} will have {plural(total, 'checked bag')} in total, {nonfree} of them non-free: as a {u.membership} member "
                          f"you get {plural(free, 'free bag')} per passenger in {cabin_words(r.cabin)}, for {plural(n, 'passenger')}. "
                          f"{fee_text} Do you confirm that I should update the bags (yes/no)?"),
        "gold_reply": f"Your bags have been updated. {ANYTHING_ELSE}",
    }  # fmt: skip
    acts = lookups + [
        ctx.read("get_user_details", user_id=uid)[0], ctx.read("get_reservation_details", reservation_id=rid)[0],
        Action(name="update_reservation_baggages", arguments={"reservation_id": rid, "total_baggages": total, "nonfree_baggages": nonfree, "payment_id": pid}),
    ]  # fmt: skip
    if lookups and lookups[0].name == "get_user_details":
        acts.pop(1)  # the lookup already read the user
    return GoalDraft(goal, acts, f"You want to add {add} checked bags to reservation {rid}, paying any fee with {pid}.")


def fam_add_bags(ctx: Ctx, split: str) -> Draft | None:
    got = ctx.pick(split, lambda u, r: ctx.all_available(r))
    if got is None:
        return None
    u, r = got
    known, _, _ = known_ids(u, r, ctx.rng, ctx, hide_rid=0.0)
    g = _bags_goal(ctx, u, r, [])
    if g is None:
        return None
    known["payment"] = f"Please use {g.actions[-1].arguments['payment_id']}."
    known["bags"] = g.goal["request"]
    return Draft("add_bags", uid_of(u, ctx), [g], known)


def fam_bags_or_insurance_refused(ctx: Ctx, split: str) -> Draft | None:
    rng = ctx.rng
    kind = rng.choice(["remove_bags", "add_insurance"])
    pred = (lambda u, r: r.total_baggages >= 1 and ctx.all_available(r)) if kind == "remove_bags" else (lambda u, r: r.insurance == "no" and ctx.all_available(r))
    got = ctx.pick(split, pred)
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, _, _ = known_ids(u, r, rng, ctx, hide_rid=0.0)
    acts = [ctx.read("get_reservation_details", reservation_id=rid)[0]]
    if kind == "remove_bags":
        goal = {"kind": "remove_bags", "outcome": "refuse", "request": f"I'd like to remove one checked bag from reservation {rid} and get refunded for it.",
                "confirm": [[rid], bag_words(r.total_baggages - 1)],
                "gold_reply": f"I'm sorry, but checked bags cannot be removed from a reservation once added, so I cannot remove a bag from {rid}. {ANYTHING_ELSE}"}  # fmt: skip
        instruction = f"You want to remove one checked bag from reservation {rid}. If the agent says it is not possible, accept it."
    else:
        goal = {"kind": "add_insurance", "outcome": "refuse", "request": f"I'd like to add travel insurance to my reservation {rid}.",
                "confirm": [[rid], ["insurance"]],
                "gold_reply": f"I'm sorry, but travel insurance cannot be added after booking, so I cannot add it to {rid}. {ANYTHING_ELSE}"}  # fmt: skip
        instruction = f"You want to add travel insurance to reservation {rid}. If the agent says it is not possible, accept it."
    return Draft(f"{kind}_refused", uid, [GoalDraft(goal, acts, instruction)], known)


def fam_change_passenger(ctx: Ctx, split: str, allowed: bool) -> Draft | None:
    rng = ctx.rng
    got = ctx.pick(split, lambda u, r: ctx.all_available(r) and (not allowed or len(r.passengers) >= 1) and (allowed or len(r.passengers) < MAX_PASSENGERS))
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    names = {(p.first_name, p.last_name) for p in r.passengers}
    pool = [p for p in u.saved_passengers if (p.first_name, p.last_name) not in names]
    new = pool[0].model_dump() if pool else {"first_name": rng.choice(["Liam", "Emma", "Lucas", "Mia"]), "last_name": rng.choice(["Lopez", "Brown", "Ahmed"]),
                                               "dob": f"{rng.randint(1950, 2008)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}  # fmt: skip
    if (new["first_name"], new["last_name"]) in names:
        return None
    read = ctx.read("get_reservation_details", reservation_id=rid)[0]
    who = f"{new['first_name']} {new['last_name']}, born {new['dob']}"
    confirm = [[rid], [new["first_name"]], [new["last_name"]], date_words(new["dob"])]
    if allowed:
        i = rng.randrange(len(r.passengers))
        old = r.passengers[i]
        passengers = [p.model_dump() for p in r.passengers]
        passengers[i] = new
        known["passengers"] = f"Please replace {old.first_name} {old.last_name} with {who}."
        goal = {
            "kind": "change_passengers", "outcome": "do", "request": f"{old.first_name} {old.last_name} can't come; I'd like to put someone else on my {res_ref(r, known)} instead.",
            "confirm": confirm,
            "gold_proposal": f"On reservation {rid}, I will replace {old.first_name} {old.last_name} with {who}; the other passengers stay. Do you confirm that I should update the passengers (yes/no)?",
            "gold_reply": f"The passengers have been updated. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read, Action(name="update_reservation_passengers", arguments={"reservation_id": rid, "passengers": passengers})]
        instruction = f"On reservation {rid}, you want {old.first_name} {old.last_name} replaced by {who}."
        family = "change_passenger"
    else:
        known["passengers"] = f"I want to add {who} to the reservation."
        goal = {
            "kind": "change_passenger_count", "outcome": "refuse", "request": f"I'd like to add one more passenger to my {res_ref(r, known)}.",
            "confirm": confirm,
            "gold_reply": f"I'm sorry, but the number of passengers on a reservation cannot be changed, so I cannot add {new['first_name']} to {rid}. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read]
        instruction = f"You want to add {who} as an extra passenger on reservation {rid}. If the agent says it is not possible, accept it."
        family = "passenger_count_refused"
    return Draft(family, uid, [GoalDraft(goal, acts, instruction)], known, unknown)


def _compensation_goal(ctx: Ctx, u: User, r: Reservation, fn: str, date: str, per_pax: int, why: str, reads: list[Action]) -> GoalDraft:
    uid, n = uid_of(u, ctx), len(r.passengers)
    ok = compensation_eligible(u, r)
    amount = per_pax * n
    request = f"{why} I'd like some compensation for this."
    if ok.allowed:
        goal = {
            "kind": "compensation", "outcome": "do", "request": request, "confirm": [["certificate"], [money_token(amount)]],
            "gold_proposal": (f"I'm sorry about flight {fn} on {date}. Since {ok.why}, I can offer a travel certificate of {fmt_money(amount)} "
                              f"({fmt_money(per_pax)} for each of the {n} passenger{'s' if n > 1 else ''}) as a gesture. Do you want me to send it (yes/no)?"),
            "gold_reply": f"The certificate has been added to your profile. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = reads + [Action(name="send_certificate", arguments={"user_id": uid, "amount": amount})]
    else:
        goal = {
            "kind": "compensation", "outcome": "refuse", "request": request, "confirm": [["certificate"]],
            "gold_reply": f"I'm sorry about flight {fn}, but I'm not able to offer compensation: {ok.why}. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = reads
    return GoalDraft(goal, acts, f"{why} You ask for compensation. If the agent says you are not eligible, accept it.")


def fam_compensation_cancelled(ctx: Ctx, split: str) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    got = ctx.pick(split, lambda u, r: airline_cancelled(db, r) and not any_flown(db, r))
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    seg = next(s for s in r.flights if db.flight_date(s.flight_number, s.date).status == "cancelled")
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservation id is {rid}.", "reason": REASON_WORDS["airline_cancelled"]}
    why = f"My flight {seg.flight_number} on {seg.date} (reservation {rid}) was cancelled by the airline, which is really frustrating."
    goals = []
    also_cancel = rng.random() < 0.4
    if also_cancel:
        goals.append(_cancel_goal(ctx, u, r, "airline_cancelled", []))
    reads = [ctx.read("get_user_details", user_id=uid)[0]]
    if not also_cancel:
        reads.append(ctx.read("get_reservation_details", reservation_id=rid)[0])
    reads.append(ctx.read("get_flight_status", flight_number=seg.flight_number, date=seg.date)[0])
    goals.append(_compensation_goal(ctx, u, r, seg.flight_number, seg.date, CERTIFICATE_CANCELLED, why if not also_cancel else "Also, the cancelled flight ruined my plans.", reads))
    if also_cancel:
        goals[0].goal["request"] = f"My flight {seg.flight_number} on {seg.date} was cancelled by the airline, so I want to cancel my whole reservation {rid}."
    return Draft("compensation_cancelled" + ("_with_cancel" if also_cancel else ""), uid, goals, known)


def fam_delay(ctx: Ctx, split: str) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    today = ctx.today.isoformat()
    tomorrow = (ctx.today + dt.timedelta(days=1)).isoformat()

    def fits(u: User, r: Reservation) -> bool:
        if r.cabin == "basic_economy" or len(r.flights) > 2 or r.flights[0].date != today:
            return False
        st = ctx.statuses(r)
        if st[0] != "delayed" or not all(s == "available" for s in st[1:]):
            return False
        if len(r.flights) == 2 and (r.flights[1].date <= tomorrow or r.flights[1].origin != r.flights[0].destination or r.flight_type != "round_trip"):
            return False
        fd = db.flight_date(r.flights[0].flight_number, tomorrow)
        return isinstance(fd, Available) and getattr(fd.available_seats, r.cabin) >= len(r.passengers)

    cands = ctx.reservations(split, fits)
    for u, r in rng.sample(cands, len(cands)):
        seg = r.flights[0]
        new_price = getattr(db.flight_date(seg.flight_number, tomorrow).prices, r.cabin)
        diff = money((new_price - seg.price) * len(r.passengers))
        pid = ctx.change_payment(u, diff)
        if pid is not None:
            break
    else:
        return None
    ctx.used.add(r.reservation_id)
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservation id is {rid}.",
             "date": f"I want to take the same flight, {seg.flight_number}, tomorrow ({tomorrow}) instead.",
             "flight": f"The same flight, {seg.flight_number}, on {tomorrow}.", "payment": f"Please use {describe_payment(u, pid)} for any difference.",
             "reason": "My flight today is delayed."}  # fmt: skip
    reads = [ctx.read("get_reservation_details", reservation_id=rid)[0], ctx.read("get_flight_status", flight_number=seg.flight_number, date=today)[0],
             ctx.read("search_direct_flight", origin=seg.origin, destination=seg.destination, date=tomorrow)[0]]  # fmt: skip
    flights = [{"flight_number": seg.flight_number, "date": tomorrow}] + [{"flight_number": s.flight_number, "date": s.date} for s in r.flights[1:]]
    confirm = [[rid], [seg.flight_number], date_words(tomorrow)] + ([[money_token(abs(diff))]] if diff else [])
    money_text = (f"The fare difference of {fmt_money(abs(diff))} will be {'charged to' if diff > 0 else 'refunded to'} {describe_payment(u, pid, 'your')}."
                  if diff else "There is no fare difference.")  # fmt: skip
    change = GoalDraft(
        {"kind": "change_flights", "outcome": "do", "confirm": confirm,
         "request": f"My flight {seg.flight_number} today on reservation {rid} is delayed. I'd like to move it to the same flight tomorrow, {tomorrow}.",
         "gold_proposal": (f"Flight {seg.flight_number} today is indeed delayed. I can move reservation {rid} from flight {seg.flight_number} on {today} to "
                           f"flight {seg.flight_number} on {tomorrow} in {cabin_words(r.cabin)}. {money_text} Do you confirm that I should make this change (yes/no)?"),
         "gold_reply": f"Your flight has been changed to {tomorrow}. {ANYTHING_ELSE}"},
        reads + [Action(name="update_reservation_flights", arguments={"reservation_id": rid, "cabin": r.cabin, "flights": flights, "payment_id": pid})],
        f"Your flight {seg.flight_number} today (reservation {rid}) is delayed; you want to move to the same flight tomorrow, paying any difference with {pid}.",
    )  # fmt: skip
    comp = _compensation_goal(ctx, u, r, seg.flight_number, today, CERTIFICATE_DELAYED, "Also, because of the delay,", [ctx.read("get_user_details", user_id=uid)[0]])
    comp.goal["request"] = "Also, this delay really messed up my day. I'd like some compensation for it."
    return Draft("delay_change_compensation", uid, [change, comp], known)


def fam_transfer(ctx: Ctx, split: str) -> Draft | None:
    rng = ctx.rng
    uids = ctx.users[split]
    if not uids:
        return None
    uid = rng.choice(uids)
    text, what = rng.choice(OUT_OF_SCOPE)
    known = {"user_id": f"My user id is {uid}."}
    act = Action(name="transfer_to_human_agents", arguments={"summary": f"User {uid} wants to {what}, which the agent's tools cannot do."})
    goal = {"kind": "transfer", "outcome": "transfer", "request": text}
    return Draft("out_of_scope_transfer", uid, [GoalDraft(goal, [act], f"{text} You expect to be helped by someone who can do it.")], known)


def fam_flight_status(ctx: Ctx, split: str) -> Draft | None:
    db = ctx.db
    today = ctx.today.isoformat()
    got = ctx.pick(split, lambda u, r: any(s.date == today and db.flight_date(s.flight_number, s.date).status in ("delayed", "on time", "flying", "cancelled") for s in r.flights))
    if got is None:
        return None
    u, r = got
    seg = next(s for s in r.flights if s.date == today and db.flight_date(s.flight_number, s.date).status != "available")
    act, info = ctx.read("get_flight_status", flight_number=seg.flight_number, date=today)
    status = info["status"]
    times = ""
    if "estimated_departure_time_est" in info:
        times = f", expected to depart at {info['estimated_departure_time_est'][11:16]}"
    elif "estimated_arrival_time_est" in info:
        times = f", expected to land at {info['estimated_arrival_time_est'][11:16]}"
    goal = {
        "kind": "info", "outcome": "answer", "request": f"What's the status of my flight {seg.flight_number} today?",
        "answer": [status], "gold_reply": f"Flight {seg.flight_number} on {today} is {status}{times}. {ANYTHING_ELSE}",
    }  # fmt: skip
    known = {"flight": f"It's flight {seg.flight_number}, today ({today})."}
    return Draft("flight_status", uid_of(u, ctx), [GoalDraft(goal, [act], f"You want to know the status of your flight {seg.flight_number} today ({today}).")], known, outputs=[status])


def fam_total_paid(ctx: Ctx, split: str) -> Draft | None:
    got = ctx.pick(split, lambda u, r: len(r.payment_history) >= 1)
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    acts = [ctx.read("get_reservation_details", reservation_id=rid)[0]]
    paid = r.paid()
    if len(r.payment_history) > 1:
        acts.append(ctx.read("calculate", expression=" + ".join(money_token(p.amount) for p in r.payment_history))[0])
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservation id is {rid}."}
    goal = {
        "kind": "info", "outcome": "answer", "request": f"How much have I paid in total for my reservation {rid}?",
        "answer": [money_token(paid)], "gold_reply": f"You have paid {fmt_money(paid)} in total for reservation {rid}. {ANYTHING_ELSE}",
    }  # fmt: skip
    return Draft("total_paid", uid, [GoalDraft(goal, acts, f"You want to know how much you paid in total for reservation {rid}.")], known, outputs=[money_token(paid)])


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
    return Draft("too_many_passengers_refused", uid, [GoalDraft(goal, [], f"You want one reservation for {k} people from {origin} to {dest} on {date}. If the agent says it is not possible, accept it.")], known)


def fam_multi(ctx: Ctx, split: str) -> Draft | None:
    """Two requests on two reservations of one user: add bags to one, then cancel the other."""
    rng = ctx.rng
    reason = rng.choice(["change_of_plan", "health"])
    by_user: dict[str, list[Reservation]] = {}
    for u, r in ctx.reservations(split, lambda u, r: ctx.all_available(r)):
        by_user.setdefault(uid_of(u, ctx), []).append(r)
    pairs = [(uid, rs) for uid, rs in sorted(by_user.items()) if len(rs) >= 2]
    if not pairs:
        return None
    uid, rs = rng.choice(pairs)
    u = ctx.world.users[uid]
    a, b = rng.sample(rs, 2)
    bags = _bags_goal(ctx, u, a, [])
    if bags is None:
        return None
    ctx.used.update({a.reservation_id, b.reservation_id})
    cancel = _cancel_goal(ctx, u, b, reason, [], insist=0)
    cancel.goal["request"] = f"Also, I need to cancel another reservation, {b.reservation_id}."
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservations are {a.reservation_id} (bags) and {b.reservation_id} (to cancel).",
             "reason": REASON_WORDS[reason], "payment": f"Please use {bags.actions[-1].arguments['payment_id']}.", "bags": bags.goal["request"]}  # fmt: skip
    return Draft("bags_then_cancel", uid, [bags, cancel], known)


# family name -> (builder, train count, test count)
FAMILIES: dict[str, tuple[Callable[[Ctx, str], Draft | None], int, int]] = {
    "book_direct": (lambda c, s: fam_book(c, s, "direct"), 20, 5),
    "book_round_trip": (lambda c, s: fam_book(c, s, "round_trip"), 16, 4),
    "book_onestop": (lambda c, s: fam_book(c, s, "onestop"), 12, 3),
    "cancel_allowed": (lambda c, s: fam_cancel(c, s, True), 24, 6),
    "cancel_refused": (lambda c, s: fam_cancel(c, s, False), 20, 5),
    "cancel_flown_transfer": (fam_cancel_flown, 8, 2),
    "change_flight": (lambda c, s: fam_change_flight(c, s, True), 16, 4),
    "change_flight_refused": (lambda c, s: fam_change_flight(c, s, False), 10, 3),
    "change_cabin": (fam_change_cabin, 14, 3),
    "add_bags": (fam_add_bags, 16, 4),
    "bags_or_insurance_refused": (fam_bags_or_insurance_refused, 10, 3),
    "change_passenger": (lambda c, s: fam_change_passenger(c, s, True), 12, 3),
    "passenger_count_refused": (lambda c, s: fam_change_passenger(c, s, False), 6, 2),
    "compensation_cancelled": (fam_compensation_cancelled, 14, 4),
    "delay_change_compensation": (fam_delay, 10, 3),
    "out_of_scope_transfer": (fam_transfer, 8, 2),
    "flight_status": (fam_flight_status, 10, 3),
    "total_paid": (fam_total_paid, 8, 2),
    "too_many_passengers_refused": (fam_too_many_passengers, 4, 1),
    "bags_then_cancel": (fam_multi, 12, 3),
}


def build_task(d: Draft, task_id: str, split: str, rng: random.Random, world: World) -> Task:
    goals = [Goal(**g.goal, actions=len(g.actions)) for g in d.goals]
    u = world.users[d.user_id]
    instructions = f"Your name is {u.name.first_name} {u.name.last_name}. " + " Then: ".join(g.instruction for g in d.goals)
    if d.unknown:
        instructions += " You do not remember your reservation id; describe the trip instead."
    scenario = UserScenario(persona=rng.choice(PERSONAS), reason=f"Hi! {goals[0].request}", known_info=d.known, unknown_info=d.unknown,
                            instructions=instructions, goals=goals)  # fmt: skip
    actions = [a for g in d.goals for a in g.actions]
    return Task(id=task_id, split=split, family=d.family, user_id=d.user_id, user=scenario, gold_actions=actions, outputs=d.outputs)


def generate_tasks(world: World, seed: int = 0, *, scale: float = 1.0, strict: bool = False, check: bool = True) -> list[Task]:
    """Tasks for `world`: per family, `scale` x its (train, test) counts, as many as the world allows (all of
    them when `strict`, else best effort: a small world simply gets fewer). Every task is played once with the
    gold agent and the rule-based user, and must score 1 (`check`)."""
    rng = random.Random(seed)
    ctx = Ctx(world, rng)
    tasks: list[Task] = []
    for split in ("train", "test"):
        for name, (builder, n_train, n_test) in FAMILIES.items():
            want = max(1, round((n_train if split == "train" else n_test) * scale))
            made = 0
            for _ in range(want * 4):
                if made == want:
                    break
                draft = builder(ctx, split)
                if draft is None:
                    continue
                tasks.append(build_task(draft, f"{split}-{name}-{made:03d}", split, rng, world))
                made += 1
            if strict and made < want:
                raise RuntimeError(f"family {name}: only {made} of {want} {split} tasks fit this world")
    if check:
        check_tasks(world, tasks)
    return tasks


def check_tasks(world: World, tasks: list[Task]) -> None:
    """Play each task with the gold agent and the rule-based user; anything but reward 1 is a generator bug."""
    from .env import FlightBookingEnv

    env = FlightBookingEnv(split="all", world=world, tasks=tasks)
    for t in tasks:
        result = play(env, t.id)
        if result[0] != 1.0:
            transcript = "\n".join(f"[{m.role}] {m.content[:300]}" for m in env.transcript[1:])
            raise RuntimeError(f"task {t.id}: the gold agent scored {result[0]} ({result[1]})\n{transcript}")


def play(env: Any, task_id: str, agent: Any = None) -> tuple[float, dict[str, float], int]:
    """One episode of `agent` (default: the gold agent) on a task: (reward, breakdown, turns)."""
    obs, _ = env.reset(options={"task_id": task_id})
    agent = agent or env.scripted_agent("gold")
    convo = [dict(m) for m in obs]
    while True:
        action = agent(convo)
        obs, r, term, trunc, info = env.step(action)
        convo.append({"role": "assistant", "content": action})
        convo += [dict(m) for m in obs]
        if term or trunc:
            return r, info["reward_breakdown"], env.turn
