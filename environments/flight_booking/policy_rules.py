"""The written policy as checks over an episode's write calls: what the tools perform but the policy forbids.

As in τ-bench ("The API does not check these for the agent, so the agent must make sure the rules apply before
calling the API!", wiki.md), the tools validate data only; an agent that books six passengers, changes a
basic economy flight or cancels a non-refundable trip sees its call succeed. `check_episode` replays the
episode's successful writes on a fresh copy of the world, checks each against the database as it was just
before that call, and names every rule broken; the reward is 0 when any is (reward.py), and the env reports
them (info["policy_violations"], reward_breakdown "policy_violations" and "policy/<rule>").

Rules that depend on what was said (the user's confirmation, the reason for a cancellation with insurance,
whether the user asked for compensation, whether the user of a delayed flight wants to change or cancel) are left
to the database comparison and the required outputs.

Where the written policy can be read two ways, the check takes the reading the benchmarks' answer keys take
(replaying every published gold action sequence must give no violation, published.BENCHMARK_ERRORS aside):
  * bags added later: the allowance sets the least number of non-free bags; charging for every added bag
    (τ-bench test tasks 19 and 23) is allowed too;
  * a cabin change is read from the call, not from the stored reservation: τ-bench v1's tool does not write the
    cabin (task 4 upgrades, then adds bags at the new cabin's allowance; task 22 upgrades basic economy, then
    changes flights);
  * a flight change that keeps every flight (a cabin change) never changes the trip, even on the 69 published
    reservations whose origin equals their destination (τ-bench task 2, τ² task 18);
  * a delay certificate needs a delayed flight in one of the user's reservations: one delayed now, or one that took
    off or landed later than scheduled (τ-bench tasks 16, 45, 46 compensate without a change or cancellation).
"""

from __future__ import annotations

import datetime as dt
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
                                f"passengers for an airline-cancelled flight, ${CERTIFICATE_DELAYED} x passengers for a delayed flight"),
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
    cabins: dict[str, str] = field(default_factory=dict)  # reservation id -> the cabin its last flight change asked for


def _cabin(rp: _Replay, r: Any) -> str:
    """The reservation's cabin as the calls so far set it (τ-bench v1's update_reservation_flights does not write it)."""
    return rp.cabins.get(r.reservation_id, r.cabin)


def _late_dt(date: str, scheduled: str, actual: str | None) -> bool:
    """Did the flight of `date` take off / land after `scheduled` ("HH:MM:SS", "+1" for the next day)?"""
    if not actual:
        return False
    try:
        due = dt.datetime.fromisoformat(f"{date}T{scheduled[:8]}") + dt.timedelta(
            days=1 if scheduled.endswith("+1") else 0
        )
        return dt.datetime.fromisoformat(actual) > due
    except ValueError:
        return False


def was_delayed(db: Database, r: Any) -> bool:
    """A segment delayed now, or one that took off or landed later than scheduled."""
    for seg in r.flights:
        fd, f = db.flight_date(seg.flight_number, seg.date), db.flight(seg.flight_number)
        if fd is None or f is None:
            continue
        if fd.status == "delayed":
            return True
        if fd.status in ("landed", "flying") and _late_dt(
            seg.date, f.scheduled_departure_time_est, getattr(fd, "actual_departure_time_est", None)
        ):
            return True
        if fd.status == "landed" and _late_dt(
            seg.date, f.scheduled_arrival_time_est, getattr(fd, "actual_arrival_time_est", None)
        ):
            return True
    return False


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
        found.append(
            (
                "bag_allowance",
                f"{a['nonfree_baggages']} non-free of {a['total_baggages']} bags; the allowance makes it {expected}",
            )
        )
    return found


def _bags(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    r = rp.db.reservation(a["reservation_id"])
    total, nonfree = a["total_baggages"], a["nonfree_baggages"]
    if total < r.total_baggages or nonfree < r.nonfree_baggages:
        return [
            (
                "bags_not_removed",
                f"{r.reservation_id}: {r.total_baggages} bags ({r.nonfree_baggages} non-free) -> {total} ({nonfree})",
            )
        ]
    membership = rp.db.user(r.user_id).membership
    least = max(r.nonfree_baggages, nonfree_bags(membership, _cabin(rp, r), len(r.passengers), total))
    most = r.nonfree_baggages + (total - r.total_baggages)  # every added bag charged (module docstring)
    if not least <= nonfree <= max(least, most):
        return [
            (
                "bag_allowance",
                f"{r.reservation_id}: {nonfree} non-free of {total} bags; the allowance makes it {least}"
                + (f" to {most} (every added bag charged)" if most > least else ""),
            )
        ]
    return []


def _note_delayed(rp: _Replay, reservation_id: str) -> None:
    r = rp.db.reservation(reservation_id)
    if "delayed" in segment_statuses(rp.db, r):
        rp.delayed_changed[reservation_id] = len(r.passengers)


def _flights(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    r, found = rp.db.reservation(a["reservation_id"]), []
    _note_delayed(rp, r.reservation_id)
    new = [(f["flight_number"], f["date"]) for f in a["flights"]]
    unchanged = new == [(s.flight_number, s.date) for s in r.flights]
    if _cabin(rp, r) == "basic_economy" and not unchanged:
        found.append(
            ("basic_economy_flights_fixed", f"{r.reservation_id} is basic economy and its flights were changed")
        )
    rp.cabins[r.reservation_id] = a["cabin"]
    if unchanged:  # a cabin change keeps the trip, even where the stored trip does not match its own flights
        return found
    legs = _legs(rp.db, a["flights"])
    old_legs = [(s.origin, s.destination) for s in r.flights]
    if route_problem(old_legs, r.origin, r.destination, r.flight_type) is None:
        why = route_problem(legs, r.origin, r.destination, r.flight_type)
    else:  # the stored trip is inconsistent (e.g. origin == destination): keep where its own flights start and end
        why = (
            route_problem(legs, old_legs[0][0], old_legs[-1][1], "one_way")
            if old_legs[0][0] != old_legs[-1][1]
            else None
        )
        if why is None and legs and (legs[0][0], legs[-1][1]) != (old_legs[0][0], old_legs[-1][1]):
            why = f"the flights go {legs[0][0]}-{legs[-1][1]}, the reservation's own flights {old_legs[0][0]}-{old_legs[-1][1]}"
    if why:
        found.append(("trip_fixed", f"{r.reservation_id} is a {r.flight_type} {r.origin}-{r.destination}: {why}"))
    return found


def _cancel(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    db = rp.db
    r = db.reservation(a["reservation_id"])
    _note_delayed(rp, r.reservation_id)
    if any_flown(db, r):
        return [("cancel_flown", f"{r.reservation_id} has a flown segment")]
    cabin = _cabin(rp, r)
    if not (
        booked_within_24h(r, db.world.clock) or airline_cancelled(db, r) or cabin == "business" or r.insurance == "yes"
    ):
        return [
            (
                "cancellation_conditions",
                f"{r.reservation_id}: {cabin}, booked {r.created_at}, no airline cancellation, no insurance",
            )
        ]
    return []


def _certificate(rp: _Replay, a: dict[str, Any]) -> list[tuple[str, str]]:
    db = rp.db
    user = db.user(a["user_id"])
    allowed: set[float] = set()
    for rid in user.reservations:
        r = db.reservation(rid)
        if r is None or not (
            user.membership in ("silver", "gold") or r.insurance == "yes" or _cabin(rp, r) == "business"
        ):
            continue
        if airline_cancelled(db, r):
            allowed.add(money(CERTIFICATE_CANCELLED * len(r.passengers)))
        if rid in rp.delayed_changed:
            allowed.add(money(CERTIFICATE_DELAYED * rp.delayed_changed[rid]))
        if was_delayed(db, r):
            allowed.add(money(CERTIFICATE_DELAYED * len(r.passengers)))
    if money(a["amount"]) not in allowed:
        ok = ", ".join(f"${x:g}" for x in sorted(allowed)) or "none"
        return [("certificate_eligibility", f"${money(a['amount']):g} to {a['user_id']}; eligible amounts: {ok}")]
    return []


CHECKS = {"book_reservation": _book, "update_reservation_baggages": _bags, "update_reservation_flights": _flights,
          "cancel_reservation": _cancel, "send_certificate": _certificate}  # fmt: skip


def check_episode(
    world: World, writes: list[tuple[str, dict[str, Any]]], rules: Rules = DEFAULT_RULES
) -> list[Violation]:
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
