"""The written policy is judged, not enforced: for each rule of policy_rules.py a call that breaks it succeeds as
a tool call (as τ-bench's tools perform it), and the episode's reward is 0 with the rule named in
info["policy_violations"] and reward_breakdown["policy/<rule>"]. The shipped tasks' gold actions break none."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from agentrl.core.tools import format_tool_call
from environments.flight_booking import reward
from environments.flight_booking.env import FlightBookingEnv
from environments.flight_booking.policy import nonfree_bags, segment_statuses
from environments.flight_booking.policy_rules import POLICY_RULES, check_episode
from environments.flight_booking.tasks import shipped_tasks
from environments.flight_booking.tools import WRITE_TOOLS
from environments.flight_booking.world import Available, CreditCard, Database

ENV = FlightBookingEnv(split="all")
W = ENV.world
DB = Database(W)
PAX = {"first_name": "Ann", "last_name": "Lee", "dob": "1990-01-01"}


def _card_user(k: int = 1):
    return next(
        uid
        for uid, u in sorted(W.users.items())
        if sum(isinstance(m, CreditCard) for m in u.payment_methods.values()) >= k
    )


def _cards(uid: str) -> list[str]:
    return [p for p, m in W.users[uid].payment_methods.items() if isinstance(m, CreditCard)]


def _bookable(seats: int, cabin: str = "economy"):
    return next((f, d, fd) for _, f in sorted(W.flights.items()) for d, fd in sorted(f.dates.items())
                if isinstance(fd, Available) and getattr(fd.available_seats, cabin) >= seats)  # fmt: skip


def _book(n: int = 1, bags: int = 0, **over) -> dict:
    uid = over.pop("user_id", _card_user())
    f, d, fd = _bookable(n)
    free = nonfree_bags(W.users[uid].membership, "economy", n, bags)
    total = fd.prices.economy * n + 50 * free
    args = {"user_id": uid, "origin": f.origin, "destination": f.destination, "flight_type": "one_way", "cabin": "economy",
            "flights": [{"flight_number": f.flight_number, "date": d}], "passengers": [PAX] * n,
            "payment_methods": [{"payment_id": _cards(uid)[0], "amount": total}], "total_baggages": bags, "nonfree_baggages": free, "insurance": "no"}  # fmt: skip
    args.update(over)
    return args


def _reservation(pred):
    for _rid, r in sorted(W.reservations.items()):
        if r.status is None and _cards(r.user_id) and pred(r, segment_statuses(DB, r)):
            return r
    raise AssertionError("no reservation fits")


def _future(r, st) -> bool:
    return all(s == "available" for s in st)


def _moved_last_segment(r) -> list[dict]:
    """The reservation's flights with the last one moved to another bookable date."""
    last = r.flights[-1]
    day = next(d for d, fd in sorted(W.flights[last.flight_number].dates.items())
               if d != last.date and d >= r.flights[0].date and isinstance(fd, Available) and getattr(fd.available_seats, r.cabin) >= len(r.passengers))  # fmt: skip
    return [{"flight_number": s.flight_number, "date": s.date} for s in r.flights[:-1]] + [
        {"flight_number": last.flight_number, "date": day}
    ]


def _other_trip(r) -> list[dict]:
    """A round trip from the reservation's origin to another city and back (the issue's DTW->LGA made DTW->JFK->DTW)."""
    for out in W.by_origin[r.origin]:
        if out.destination == r.destination:
            continue
        for back in W.by_origin[out.destination]:
            if back.destination != r.origin:
                continue
            for d, fd in sorted(out.dates.items()):
                bd = back.dates.get(d)
                if (
                    isinstance(fd, Available)
                    and isinstance(bd, Available)
                    and min(getattr(fd.available_seats, r.cabin), getattr(bd.available_seats, r.cabin))
                    >= len(r.passengers)
                ):
                    return [
                        {"flight_number": out.flight_number, "date": d},
                        {"flight_number": back.flight_number, "date": d},
                    ]
    raise AssertionError("no other trip")


def _violating_call(rule: str) -> tuple[str, dict]:
    if rule == "max_passengers":
        return "book_reservation", _book(n=6)
    if rule == "payment_method_limits":
        uid = _card_user(2)
        args = _book(user_id=uid)
        total = args["payment_methods"][0]["amount"]
        return "book_reservation", {
            **args,
            "payment_methods": [{"payment_id": c, "amount": a} for c, a in zip(_cards(uid), (total - 10, 10))],
        }
    if rule == "trip_matches_flights":
        args = _book()
        return "book_reservation", {
            **args,
            "destination": next(c for c in W.airports if c not in (args["origin"], args["destination"])),
        }
    if rule == "bag_allowance":
        args = _book(bags=4)
        return "book_reservation", {
            **args,
            "nonfree_baggages": 0,
            "payment_methods": [
                {
                    **args["payment_methods"][0],
                    "amount": args["payment_methods"][0]["amount"] - 50 * args["nonfree_baggages"],
                }
            ],
        }
    if rule == "bags_not_removed":
        r = _reservation(lambda r, st: _future(r, st) and r.total_baggages >= 1 and r.nonfree_baggages == 0)
        return "update_reservation_baggages", {
            "reservation_id": r.reservation_id,
            "total_baggages": 0,
            "nonfree_baggages": 0,
            "payment_id": _cards(r.user_id)[0],
        }
    if rule == "basic_economy_flights_fixed":
        r = _reservation(lambda r, st: _future(r, st) and r.cabin == "basic_economy")
        return "update_reservation_flights", {
            "reservation_id": r.reservation_id,
            "cabin": r.cabin,
            "flights": _moved_last_segment(r),
            "payment_id": _cards(r.user_id)[0],
        }
    if rule == "trip_fixed":
        r = _reservation(lambda r, st: _future(r, st) and r.cabin != "basic_economy" and r.flight_type == "round_trip")
        return "update_reservation_flights", {
            "reservation_id": r.reservation_id,
            "cabin": r.cabin,
            "flights": _other_trip(r),
            "payment_id": _cards(r.user_id)[0],
        }
    if rule == "cancellation_conditions":
        r = _reservation(lambda r, st: _future(r, st) and r.cabin != "business" and r.insurance == "no"
                         and W.clock - dt.datetime.fromisoformat(r.created_at) > dt.timedelta(hours=24))  # fmt: skip
        return "cancel_reservation", {"reservation_id": r.reservation_id}
    if rule == "cancel_flown":
        r = _reservation(lambda r, st: "landed" in st and "cancelled" not in st)
        return "cancel_reservation", {"reservation_id": r.reservation_id}
    assert rule == "certificate_eligibility"
    uid = next(uid for uid, u in sorted(W.users.items()) if u.membership == "regular")
    return "send_certificate", {"user_id": uid, "amount": 100}


@pytest.mark.parametrize("rule", sorted(POLICY_RULES))
def test_a_call_breaking_the_rule_succeeds_and_the_episode_scores_0_naming_it(rule: str) -> None:
    name, args = _violating_call(rule)
    task = next(t for t in (ENV._by_id[i] for i in ENV.task_ids()) if not t.outputs and not t.expects_transfer)
    ENV.reset(options={"task_id": task.id})
    obs, _, term, _, _ = ENV.step(format_tool_call(name, args))
    assert not term and not obs[0]["content"].startswith("Error"), obs[0]["content"]  # the tool performed it
    _, r, term, _, info = ENV.step(format_tool_call("transfer_to_human_agents", {"summary": "end"}))
    assert term and r == 0.0
    assert info["reward_breakdown"]["policy"] == 0.0 and info["reward_breakdown"][f"policy/{rule}"] == 1.0
    assert any(v.startswith(f"{rule}: ") for v in info["policy_violations"]), info["policy_violations"]
    # the policy check alone makes it 0: the same episode, scored against its own database, scores 1 without it
    db, violations = ENV.state.db, ENV.state.violations
    alone = reward.compute(task, db, [], "user_stop", expected_hash=db.hash(), violations=violations)
    assert alone.reward == 0.0 and alone.breakdown["database"] == alone.breakdown["ended"] == 1.0
    assert reward.compute(task, db, [], "user_stop", expected_hash=db.hash(), violations=[]).reward == 1.0


def test_every_rule_is_tested_and_documented() -> None:
    readme = open("README.md", encoding="utf-8").read()
    assert all(f"`{rule}`" in readme for rule in POLICY_RULES)


def test_the_shipped_gold_actions_break_no_rule() -> None:
    for task in shipped_tasks("all"):
        writes = [(a.name, a.arguments) for a in task.gold_actions if a.name in WRITE_TOOLS]
        assert check_episode(W, writes) == [], task.id


def test_a_delayed_flight_compensation_needs_a_delayed_flight_and_the_right_amount() -> None:
    task = next(
        t
        for t in shipped_tasks("all")
        if t.family == "delay_change_compensation" and any(a.name == "send_certificate" for a in t.gold_actions)
    )
    writes = [(a.name, a.arguments) for a in task.gold_actions if a.name in WRITE_TOOLS]
    assert [w[0] for w in writes] == ["update_reservation_flights", "send_certificate"] and check_episode(
        W, writes
    ) == []
    # the benchmarks' answer keys (τ-bench test tasks 16, 45, 46) compensate a delay without a change: allowed
    assert check_episode(W, writes[1:]) == []
    wrong = ("send_certificate", {**writes[1][1], "amount": writes[1][1]["amount"] + 25})
    assert [v.rule for v in check_episode(W, [wrong])] == ["certificate_eligibility"]  # not $50 x passengers


def test_gold_agent_still_scores_1_under_every_parity() -> None:
    from environments.flight_booking.tasks.generator import play

    for parity, seats in (("tau_bench_v1", None), ("tau2", "full")):
        env = FlightBookingEnv(split="test", parity=parity, seats=seats)
        for tid in env.task_ids():
            r, breakdown, _ = play(env, tid)
            assert r == 1.0 and breakdown["policy_violations"] == 0.0, (parity, tid, breakdown)
    assert json.dumps(POLICY_RULES)  # the descriptions are plain text
