"""The policy check reads the written policy as the benchmarks' answer keys do (issue 30), on a small world in
τ-bench's format: a cabin change is read from the call (τ-bench v1's tool does not write it), a change keeping every
flight never changes the trip (even origin == destination), bags added later may all be charged, and a delay
certificate needs a delayed flight (not a prior change). What the policy plainly forbids is still flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_flight_published_files import write_tau_bench

from environments.flight_booking.parity import Rules
from environments.flight_booking.policy_rules import check_episode
from environments.flight_booking.taubench_loader import load_world

V1, TAU2 = Rules("tau_bench_v1", hints=False), Rules("tau2", hints=False)
SAME = [{"flight_number": "HAT001", "date": "2024-05-16"}]
VIA_ORD = [{"flight_number": "HAT003", "date": "2024-05-16"}, {"flight_number": "HAT004", "date": "2024-05-16"}]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    data, _ = write_tau_bench(Path(tmp_path_factory.mktemp("v1")))
    res = json.loads((data / "reservations.json").read_text())
    res["FFF666"] = {**res["AAA111"], "reservation_id": "FFF666", "user_id": "cy_ng_2000", "cabin": "basic_economy", "insurance": "no",
                     "flights": [{"origin": "JFK", "destination": "LAX", "flight_number": "HAT001", "date": "2024-05-16", "price": 80}],
                     "passengers": [{"first_name": "Cy", "last_name": "Ng", "dob": "1975-05-06"}], "total_baggages": 0,
                     "payment_history": [{"payment_id": "credit_card_4444444", "amount": 80}]}  # fmt: skip
    users = json.loads((data / "users.json").read_text())
    users["cy_ng_2000"]["reservations"].append("FFF666")
    (data / "reservations.json").write_text(json.dumps(res))
    (data / "users.json").write_text(json.dumps(users))
    return load_world(data)


def rules_of(world, writes, rules):
    return [v.rule for v in check_episode(world, writes, rules)]


def flights(rid: str, cabin: str, fl: list[dict]) -> tuple[str, dict]:
    return (
        "update_reservation_flights",
        {"reservation_id": rid, "cabin": cabin, "flights": fl, "payment_id": "credit_card_4444444"},
    )


@pytest.mark.parametrize("rules", [V1, TAU2])
def test_upgrading_basic_economy_then_changing_flights_follows_the_call_not_the_stored_cabin(world, rules) -> None:
    # τ-bench test task 22: upgrade OWZ4XL to economy, then change its flights (v1 leaves "basic_economy" stored)
    assert rules_of(world, [flights("FFF666", "economy", SAME), flights("FFF666", "economy", VIA_ORD)], rules) == []
    assert rules_of(world, [flights("FFF666", "basic_economy", VIA_ORD)], rules) == ["basic_economy_flights_fixed"]


@pytest.mark.parametrize("rules", [V1, TAU2])
def test_bags_after_an_upgrade_use_the_new_cabins_allowance_and_may_all_be_charged(world, rules) -> None:
    up = flights("FFF666", "economy", SAME)
    bags = lambda total, nonfree: (
        "update_reservation_baggages",
        {
            "reservation_id": "FFF666",
            "total_baggages": total,  # noqa: E731
            "nonfree_baggages": nonfree,
            "payment_id": "credit_card_4444444",
        },
    )
    assert rules_of(world, [up, bags(1, 0)], rules) == []  # regular economy: 1 free bag (τ-bench task 4's reading)
    assert rules_of(world, [up, bags(1, 1)], rules) == []  # every added bag charged (τ-bench tasks 19, 23)
    assert rules_of(world, [bags(1, 0)], rules) == ["bag_allowance"]  # still basic economy: no free bag
    assert rules_of(world, [up, bags(2, 0)], rules) == ["bag_allowance"]  # more free bags than the allowance


def test_a_cabin_change_on_an_origin_equals_destination_trip_is_no_trip_change(world) -> None:
    keep = [{"flight_number": "HAT001", "date": "2024-05-16"}, {"flight_number": "HAT002", "date": "2024-05-18"}]
    assert rules_of(world, [flights("DDD444", "business", keep)], TAU2) == []  # τ-bench task 2, τ² task 18 (2FBBAH)
    elsewhere = [{"flight_number": "HAT003", "date": "2024-05-16"}]
    assert rules_of(world, [flights("DDD444", "economy", elsewhere)], TAU2) == [
        "trip_fixed"
    ]  # JFK-ORD is not that trip


def test_a_delay_certificate_needs_a_delayed_flight_and_an_eligible_user(world) -> None:
    cert = lambda uid, amount: ("send_certificate", {"user_id": uid, "amount": amount})  # noqa: E731
    assert (
        rules_of(world, [cert("ada_lee_1000", 50)], TAU2) == []
    )  # silver; BBB222's HAT002 is delayed (τ-bench 16, 45, 46)
    assert rules_of(world, [cert("ada_lee_1000", 100)], TAU2) == [
        "certificate_eligibility"
    ]  # no cancelled flight of hers
    assert rules_of(world, [cert("cy_ng_2000", 50)], TAU2) == [
        "certificate_eligibility"
    ]  # regular, no insurance, economy


def test_what_the_policy_plainly_forbids_is_still_flagged(world) -> None:
    assert rules_of(world, [("cancel_reservation", {"reservation_id": "EEE555"})], V1) == [
        "cancel_flown"
    ]  # τ-bench 26, 27
    assert rules_of(world, [("cancel_reservation", {"reservation_id": "FFF666"})], V1) == [
        "cancellation_conditions"
    ]  # 10, 34
