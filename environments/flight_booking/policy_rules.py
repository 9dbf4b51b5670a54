"""The written policy as checks over an episode's write calls: what the tools perform but the policy forbids.

As in τ-bench ("The API does not check these for the agent, so the agent must make sure the rules apply before
calling the API!", wiki.md), the tools validate data only; an agent that books six passengers, changes a
basic economy flight or cancels a non-refundable trip sees its call succeed. `check_episode` replays the
episode's successful writes on a fresh copy of the world, checks each against the database as it was just
before that call, and names every rule broken; the reward is 0 when any is (reward.py), and the env reports
them (info["policy_violations"], reward_breakdown "policy_violations" and "policy/<rule>").

Rules that depend on what was said (the user's confirmation, the reason for a cancellation with insurance,
whether the user asked for compensation) are left to the database comparison and the required outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .parity import DEFAULT_RULES, Rules
from .policy import (
    CERTIFICATE_CANCELLED,
    CERTIFICATE_DELAYED,
    MAX_PASSENGERS,
    MAX_PAYMENTS,
    airline_cancelled,
    any_flown,
    booked_within_24h,
    nonfree_bags,
    segment_statuses,
)  # fmt: skip
from .tools import TOOLS_BY_NAME
from .world import Database, World, money

MAX_SEGMENTS_PER_DIRECTION = 2  # direct or one stop, what the search tools find

# rule name -> the policy sentence it checks (README's FlightBooking section lists them)
POLICY_RULES: dict[str, str] = {
    "max_passengers": f"a reservation has at most {MAX_PASSENGERS} passengers",
    "payment_method_limits": "a booking uses at most 1 certificate, 1 credit card and 3 gift cards",
    "trip_matches_flights": "a booking's flights form its trip: origin to destination (and back for a round trip), each direction direct or one stop",
    "bag_allowance": "non-free bags are exactly the bags beyond the membership's free allowance",
    "bags_not_removed": "checked bags can be added, not removed",
    "basic_economy_flights_fixed": "basic economy reservations cannot change flights (only the cabin)",
    "trip_fixed": "a flight change keeps the reservation's origin, destination and trip type",
    "cancellation_conditions": "cancel only within 24 hours of booking, after an airline cancellation, in business, or with travel insurance",
    "cancel_flown": "a trip with a flown segment cannot be cancelled (transfer to a human agent)",
    "certificate_eligibility": (f"certificates only to silver/gold members or reservations with insurance or in business: ${CERTIFICATE_CANCELLED} x "
                                f"passengers for an airline-cancelled flight, ${CERTIFICATE_DELAYED} x passengers for a delayed flight after a change or cancellation"),
}  # fmt: skip


@dataclass(frozen=True)
class Violation:
    rule: str  # a key of POLICY_RULES
    call: int  # the write's position among the episode's successful writes
    detail: str


@dataclass
class _Replay:
    db: Database
    rules: Rules = DEFAULT_RULES
    delayed_changed: dict[str, int] = field(default_factory=dict)  # reservation id -> passengers, changed while delayed


def route_problem(segs: list[tuple[str, str]], origin: str, destination: str, flight_type: str) -> str | None:
    """Why (origin, destination) legs do not form the trip, or None when they do."""
    if not segs:
        return "no flights"
    for (_, a_dest), (b_orig, _) in zip(segs, segs[1:]):
        if a_dest != b_orig:
            return f"a flight lands in {a_dest} but the next leaves from {b_orig}"
    if segs[0][0] != origin:
        return f"the first flight leaves from {segs[0][0]}, not {origin}"
    stops = [d for _, d in segs]
    if origin == destination:
        return "origin and destination are the same"
    if flight_type == "one_way":
        legs = [stops]
        if stops[-1] != destination:
            return f"the last flight lands in {stops[-1]}, not {destination}"
    else:
        if stops[-1] != origin or destination not in stops:
            return f"a round trip must reach {destination} and end in {origin}"
        k = stops.index(destination) + 1
        legs = [stops[:k], stops[k:]]
    for leg in legs:
        if not 1 <= len(leg) <= MAX_SEGMENTS_PER_DIRECTION:
            return "each direction must be direct or have one stop"
        if any(s in (origin, destination) for s in leg[:-1]):
            return f"a connection passes through {origin} or {destination}"
    return None


def _legs(db: Database, flights: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for f in flights:
        fl = db.flight(f["flight_number"])
        out.append((fl.origin, fl.destination) if fl is not None else ("?", "?"))
    return out


def _book(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    db, found = rp.db, []
    user, n = db.user(a["user_id"]), len(a["passengers"])
    if n > MAX_PASSENGERS:
        found.append(("max_passengers", f"{n} passengers booked; at most {MAX_PASSENGERS}"))
    counts: dict[str, int] = {}
    for p in a["payment_methods"]:
        source = user.payment_methods[p["payment_id"]].source
        counts[source] = counts.get(source, 0) + 1
    over = [f"{c} {s}s" for s, c in counts.items() if c > MAX_PAYMENTS[s]]
    if over:
        found.append(("payment_method_limits", f"paid with {', '.join(over)}"))
    why = route_problem(_legs(db, a["flights"]), a["origin"], a["destination"], a["flight_type"])
    if why:
        found.append(("trip_matches_flights", f"{a['flight_type']} {a['origin']}-{a['destination']}: {why}"))
    expected = nonfree_bags(user.membership, a["cabin"], n, a["total_baggages"])
    if a["nonfree_baggages"] != expected:
        found.append(("bag_allowance", f"{a['nonfree_baggages']} non-free of {a['total_baggages']} bags; the allowance makes it {expected}"))
    return found


def _bags(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    r = rp.db.reservation(a["reservation_id"])
    total, nonfree = a["total_baggages"], a["nonfree_baggages"]
    if total < r.total_baggages or nonfree < r.nonfree_baggages:
        return [("bags_not_removed", f"{r.reservation_id}: {r.total_baggages} bags ({r.nonfree_baggages} non-free) -> {total} ({nonfree})")]
    membership = rp.db.user(r.user_id).membership
    expected = max(r.nonfree_baggages, nonfree_bags(membership, r.cabin, len(r.passengers), total))
    if nonfree != expected:
        return [("bag_allowance", f"{r.reservation_id}: {nonfree} non-free of {total} bags; the allowance makes it {expected}")]
    return []


def _note_delayed(rp: _Replay, reservation_id: str) -> None:
    r = rp.db.reservation(reservation_id)
    if "delayed" in segment_statuses(rp.db, r):
        rp.delayed_changed[reservation_id] = len(r.passengers)


def _flights(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    r, found = rp.db.reservation(a["reservation_id"]), []
    _note_delayed(rp, r.reservation_id)
    new = [(f["flight_number"], f["date"]) for f in a["flights"]]
    if r.cabin == "basic_economy" and new != [(s.flight_number, s.date) for s in r.flights]:
        found.append(("basic_economy_flights_fixed", f"{r.reservation_id} is basic economy and its flights were changed"))
    why = route_problem(_legs(rp.db, a["flights"]), r.origin, r.destination, r.flight_type)
    if why:
        found.append(("trip_fixed", f"{r.reservation_id} is a {r.flight_type} {r.origin}-{r.destination}: {why}"))
    return found


def _cancel(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    db = rp.db
    r = db.reservation(a["reservation_id"])
    _note_delayed(rp, r.reservation_id)
    if any_flown(db, r):
        return [("cancel_flown", f"{r.reservation_id} has a flown segment")]
    if not (booked_within_24h(r, db.world.clock) or airline_cancelled(db, r) or r.cabin == "business" or r.insurance == "yes"):
        return [("cancellation_conditions", f"{r.reservation_id}: {r.cabin}, booked {r.created_at}, no airline cancellation, no insurance")]
    return []


def _certificate(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    db = rp.db
    user = db.user(a["user_id"])
    allowed: set[float] = set()
    for rid in user.reservations:
        r = db.reservation(rid)
        if r is None or not (user.membership in ("silver", "gold") or r.insurance == "yes" or r.cabin == "business"):
            continue
        if airline_cancelled(db, r):
            allowed.add(money(CERTIFICATE_CANCELLED * len(r.passengers)))
        if rid in rp.delayed_changed:
            allowed.add(money(CERTIFICATE_DELAYED * rp.delayed_changed[rid]))
    if money(a["amount"]) not in allowed:
        ok = ", ".join(f"${x:g}" for x in sorted(allowed)) or "none"
        return [("certificate_eligibility", f"${money(a['amount']):g} to {a['user_id']}; eligible amounts: {ok}")]
    return []


CHECKS = {"book_reservation": _book, "update_reservation_baggages": _bags, "update_reservation_flights": _flights,
          "cancel_reservation": _cancel, "send_certificate": _certificate}  # fmt: skip


def check_episode(world: World, writes: list[tuple[str, dict[str, Any]]], rules: Rules = DEFAULT_RULES) -> list[Violation]:
    """The policy rules that the episode's successful write calls (name, arguments), in order, broke."""
    rp = _Replay(Database(world), rules)
    out: list[Violation] = []
    for i, (name, arguments) in enumerate(writes):
        check = CHECKS.get(name)
        found = check(rp, arguments) if check is not None else []
        result = TOOLS_BY_NAME[name].invoke(arguments, state=rp)
        if not result.ok:  # a write that succeeded in the episode succeeds again: a failure here is a bug
            raise RuntimeError(f"policy replay: write {i} ({name}) failed: {result.content}")
        out += [Violation(rule, i, detail) for rule, detail in found]
    return out
