"""Fuzz: 10,000 random and adversarial tool calls (drawn by hypothesis) against the shipped world leave the
invariants intact (invariants.py: no negative seats or balances, every reservation's user and flights exist,
payment histories sum to what was charged), and every failed call leaves the database unchanged.

Calls mix plausible ones (real ids, and "recipes" that build a valid write from the current database, so
writes do succeed and pile up) with adversarial ones (unknown ids, wrong types, negative / huge / NaN
amounts, empty or duplicated lists, malformed dates)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrl.core.tools import ToolCall, ToolSet, format_tool_call
from environments.flight_booking import invariants
from environments.flight_booking.env import FlightBookingEnv
from environments.flight_booking.parity import Rules
from environments.flight_booking.reward import ReplayState
from environments.flight_booking.taubench_loader import default_world
from environments.flight_booking.tools import TOOLS, WRITE_TOOLS
from environments.flight_booking.world import (
    CABINS,
    Available,
    CreditCard,
    Database,
    GiftCard,
    money,
)

W = default_world()
TOOLSET = ToolSet(TOOLS)
USERS = sorted(W.users)
RIDS = sorted(W.reservations)
FLIGHTS = sorted(W.flights)
DATES = sorted({d for f in W.flights.values() for d in f.dates})
PIDS = sorted({p for u in W.users.values() for p in u.payment_methods})
BOOKABLE = [(f, d) for f in W.flights.values() for d, fd in sorted(f.dates.items()) if isinstance(fd, Available)]
EXAMPLES, CALLS = 100, 100  # 10,000 calls

junk = st.one_of(
    st.sampled_from(
        ["", " ", "HAT", "ZZZZZZ", "null", "../etc", "a" * 300, "\u0000", "HAT001 ", "2024-02-30", "2024-5-1"]
    ),
    st.text(max_size=12),
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    junk,
    st.lists(st.integers(), max_size=3),
    st.just({"x": 1}),
)
amount = st.one_of(
    st.integers(-1000, 3000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.001, 0.005, 1e-9, 1e308, -0.0, 49.999]),
)
count = st.one_of(st.integers(-3, 12), st.integers(-(2**70), 2**70), st.sampled_from([1.0, "2", None, True]))
uid = st.one_of(st.sampled_from(USERS), junk)
rid = st.one_of(st.sampled_from(RIDS), junk)
pid = st.one_of(st.sampled_from(PIDS), junk)
cabin = st.one_of(st.sampled_from(CABINS), junk)
airport = st.one_of(st.sampled_from(sorted(W.airports)), junk)
date = st.one_of(st.sampled_from(DATES), junk)
flight_ref = st.one_of(st.fixed_dictionaries({"flight_number": st.sampled_from(FLIGHTS), "date": st.sampled_from(DATES)}),
                       st.fixed_dictionaries({"flight_number": junk, "date": date}), st.just({"flight_number": "HAT001"}), anything)  # fmt: skip
passenger = st.one_of(
    st.fixed_dictionaries({"first_name": st.text(max_size=8), "last_name": st.text(max_size=8), "dob": date}), anything
)
payment = st.one_of(st.fixed_dictionaries({"payment_id": pid, "amount": amount}), anything)

RAW_CALLS = {
    "book_reservation": st.fixed_dictionaries(
        {"user_id": uid, "origin": airport, "destination": airport, "flight_type": st.sampled_from(["one_way", "round_trip", "x"]),
         "cabin": cabin, "flights": st.lists(flight_ref, max_size=5), "passengers": st.lists(passenger, max_size=7),
         "payment_methods": st.lists(payment, max_size=5), "total_baggages": count, "nonfree_baggages": count,
         "insurance": st.sampled_from(["yes", "no", "maybe"])}),
    "cancel_reservation": st.fixed_dictionaries({"reservation_id": rid}),
    "update_reservation_baggages": st.fixed_dictionaries({"reservation_id": rid, "total_baggages": count, "nonfree_baggages": count, "payment_id": pid}),
    "update_reservation_flights": st.fixed_dictionaries({"reservation_id": rid, "cabin": cabin, "flights": st.lists(flight_ref, max_size=5), "payment_id": pid}),
    "update_reservation_passengers": st.fixed_dictionaries({"reservation_id": rid, "passengers": st.lists(passenger, max_size=6)}),
    "send_certificate": st.fixed_dictionaries({"user_id": uid, "amount": amount}),
    "get_user_details": st.fixed_dictionaries({"user_id": uid}),
    "get_reservation_details": st.fixed_dictionaries({"reservation_id": rid}),
    "search_direct_flight": st.fixed_dictionaries({"origin": airport, "destination": airport, "date": date}),
    "search_onestop_flight": st.fixed_dictionaries({"origin": airport, "destination": airport, "date": date}),
    "get_flight_status": st.fixed_dictionaries({"flight_number": st.one_of(st.sampled_from(FLIGHTS), junk), "date": date}),
    "calculate": st.fixed_dictionaries({"expression": st.one_of(st.text(alphabet="0123456789+-*/(). ", max_size=30), junk)}),
    "think": st.fixed_dictionaries({"thought": anything}),
    "transfer_to_human_agents": st.fixed_dictionaries({"summary": anything}),
    "list_all_airports": st.one_of(st.just({}), st.fixed_dictionaries({"extra": anything})),
}  # fmt: skip
raw_call = st.one_of(*[args.map(lambda a, n=name: (n, a)) for name, args in RAW_CALLS.items()])
# recipes: (kind, seed) -> a call built at run time from the current database, valid or nearly so
recipe = st.tuples(
    st.sampled_from(["book", "cancel", "bags", "cabin", "move", "passengers", "certificate"]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([False, False, False, True]),
)  # a quarter of them a little off
# half recipes, half raw calls (some with an unknown extra argument); flatmap because hypothesis flattens nested
# one_of into equally likely leaves, which would leave recipes at 1 in 17
fuzz_call = st.integers(0, 9).flatmap(
    lambda k: (
        recipe
        if k < 5
        else raw_call
        if k < 9
        else raw_call.map(lambda c: (c[0], {**c[1], "extra": 1}) if isinstance(c[1], dict) else c)
    )
)


def _payment(u, rng: random.Random, amount: float) -> str | None:
    ok = [
        p
        for p, m in u.payment_methods.items()
        if isinstance(m, CreditCard) or (isinstance(m, GiftCard) and m.amount >= amount)
    ]
    return rng.choice(ok) if ok else None


def build(db: Database, kind: str, seed: int, nudge: bool) -> tuple[str, dict] | None:
    """A write that should succeed on `db` (when `nudge`, with one number off by a little)."""
    rng = random.Random(seed)
    off = rng.choice([-1, 1, 0.01, 50]) if nudge else 0
    if kind == "book":
        u_id = rng.choice(USERS)
        u = db.user(u_id)
        f, d = rng.choice(BOOKABLE)
        fd = db.flight_date(f.flight_number, d)
        c = rng.choice(CABINS)
        if not isinstance(fd, Available):
            return None
        n = rng.randint(1, 5)
        total_bags = rng.randint(0, 4)
        nonfree = rng.randint(0, total_bags)
        ins = rng.choice(["yes", "no"])
        total = money(getattr(fd.prices, c) * n + (30 * n if ins == "yes" else 0) + 50 * nonfree)
        p = _payment(u, rng, total)
        if p is None:
            return None
        pax = [{"first_name": f"P{i}", "last_name": "Fuzz", "dob": "1990-01-01"} for i in range(n)]
        return "book_reservation", {"user_id": u_id, "origin": f.origin, "destination": f.destination, "flight_type": "one_way", "cabin": c,
                                    "flights": [{"flight_number": f.flight_number, "date": d}], "passengers": pax,
                                    "payment_methods": [{"payment_id": p, "amount": total + off}], "total_baggages": total_bags,
                                    "nonfree_baggages": nonfree, "insurance": ins}  # fmt: skip
    rids = sorted(db.all_reservation_ids())
    r = db.reservation(rng.choice(rids))
    u = db.user(r.user_id)
    if kind == "cancel":
        return "cancel_reservation", {"reservation_id": r.reservation_id}
    if kind == "certificate":
        return "send_certificate", {"user_id": r.user_id, "amount": rng.choice([50, 100, 150.5, 500]) + off}
    if kind == "passengers":
        pax = [p.model_dump() for p in r.passengers]
        pax[0]["first_name"] += "z"
        return "update_reservation_passengers", {
            "reservation_id": r.reservation_id,
            "passengers": pax[: len(pax) - (1 if nudge else 0)] or pax,
        }
    if kind == "bags":
        p = _payment(u, rng, 150)
        add = rng.randint(0, 3)
        return (None if p is None else ("update_reservation_baggages", {"reservation_id": r.reservation_id, "total_baggages": r.total_baggages + add + (1 if nudge else 0),
                                                                        "nonfree_baggages": r.nonfree_baggages + add, "payment_id": p}))  # fmt: skip
    p = _payment(u, rng, 3000)
    if p is None:
        return None
    flights = [{"flight_number": s.flight_number, "date": s.date} for s in r.flights]
    if kind == "cabin":
        return "update_reservation_flights", {
            "reservation_id": r.reservation_id,
            "cabin": rng.choice(CABINS),
            "flights": flights,
            "payment_id": p,
        }
    seg = flights[-1]
    seg["date"] = rng.choice(DATES)  # "move": the last segment to another day
    return "update_reservation_flights", {
        "reservation_id": r.reservation_id,
        "cabin": r.cabin,
        "flights": flights,
        "payment_id": p,
    }


@pytest.mark.parametrize(
    "rules",
    [Rules("tau2"), Rules("tau_bench_v1"), Rules("tau2", seats="full")],
    ids=["tau2", "tau_bench_v1", "full_seats"],
)
def test_fuzz_tool_calls_keep_the_invariants(rules: Rules) -> None:
    seen = {"calls": 0, "writes_ok": 0, "errors": 0}
    writes_by_tool: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(calls=st.lists(fuzz_call, min_size=CALLS, max_size=CALLS))
    def run(calls: list) -> None:
        db = Database(W)
        state = ReplayState(db, rules)
        before = db.hash()
        for i, c in enumerate(calls):
            if isinstance(c[1], int):  # a recipe; its position varies the seed (hypothesis repeats small seeds)
                c = build(db, c[0], c[1] * 1_000_003 + i, c[2])
                if c is None:
                    c = ("think", {"thought": "nothing to build"})
            name, args = c
            result = TOOLSET.dispatch(ToolCall(name, args), state=state)
            after = db.hash()
            seen["calls"] += 1
            if result.ok:
                if name in WRITE_TOOLS:
                    seen["writes_ok"] += 1
                    writes_by_tool[name] = writes_by_tool.get(name, 0) + 1
            else:
                seen["errors"] += 1
                assert result.error_kind in ("invalid_arguments", "tool_error"), (
                    result.content
                )  # never a crash in a tool
                assert after == before, f"failed {name} changed the database: {result.content}"
            before = after
            problems = invariants.check(db)
            assert not problems, (name, args, problems)
        assert W.hash() == Database(W).hash()

    run()
    assert seen["calls"] == EXAMPLES * CALLS >= 10_000
    assert seen["writes_ok"] >= 1_000 and seen["errors"] >= 2_000, seen
    assert set(writes_by_tool) == WRITE_TOOLS, writes_by_tool  # every write tool both succeeded and was attacked
    assert math.isclose(sum(writes_by_tool.values()), seen["writes_ok"])


def test_fuzz_through_the_env_never_raises() -> None:
    """The same calls as agent text: the env answers every one (tool message or error) and keeps its invariants."""
    env = FlightBookingEnv(split="test", max_turns=60)

    @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(calls=st.lists(fuzz_call, min_size=50, max_size=50), seed=st.integers(0, 1000))
    def run(calls: list, seed: int) -> None:
        env.reset(seed=seed)
        for i, c in enumerate(calls):
            if isinstance(c[1], int):
                c = build(env.state.db, c[0], c[1] * 1_000_003 + i, c[2]) or ("think", {"thought": "-"})
            try:
                text = format_tool_call(*c)
            except (TypeError, ValueError):  # arguments that are not JSON (NaN is fine, surrogates are not)
                continue
            obs, r, term, trunc, info = env.step(text)
            assert env.observation_space.contains(obs)
            assert invariants.check(env.state.db) == []
            if term or trunc:
                assert "reward_breakdown" in info
                env.reset(seed=seed + 1)

    run()
