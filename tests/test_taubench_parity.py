"""The behaviours the `parity` option selects (parity.py): seat accounting, the cabin write of
update_reservation_flights, one-stop search's second leg, and the env option's validation; plus τ-bench's id
sequences (HATHAT, HATHAU, HATHAV; certificate_3221322, ...) and what comes after them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_flight_booking_world import TINY_FLIGHTS, write_tiny

from environments.flight_booking.env import FlightBookingEnv
from environments.flight_booking.parity import Rules
from environments.flight_booking.reward import ReplayState
from environments.flight_booking.taubench_loader import load_world
from environments.flight_booking.tools import TOOLS_BY_NAME
from environments.flight_booking.world import Database


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    flights = copy.deepcopy(TINY_FLIGHTS)
    # an overnight connection LAX -> JFK (lands 01:00+1) -> ORD the next day, with different seats on the two days
    seats = lambda n: {"status": "available", "available_seats": {"basic_economy": n, "economy": n, "business": n},  # noqa: E731
                       "prices": {"basic_economy": 60 + n, "economy": 120 + n, "business": 300 + n}}  # fmt: skip
    flights["HAT003"]["dates"].update({"2024-05-18": seats(3), "2024-05-19": seats(4)})
    return load_world(write_tiny(Path(tmp_path_factory.mktemp("tiny")), flights=flights))


def call(db: Database, rules: Rules, name: str, **arguments) -> dict | list | str:
    result = TOOLS_BY_NAME[name].invoke(arguments, state=ReplayState(db, rules))
    assert result.ok, result.content
    try:
        return json.loads(result.content)
    except ValueError:
        return result.content


BOOK = {"user_id": "ada_lee_1000", "origin": "JFK", "destination": "LAX", "flight_type": "one_way", "cabin": "economy",
        "flights": [{"flight_number": "HAT001", "date": "2024-05-16"}], "passengers": [{"first_name": "Ada", "last_name": "Lee", "dob": "1980-01-02"}] * 2,
        "payment_methods": [{"payment_id": "credit_card_1111111", "amount": 300}], "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"}  # fmt: skip


@pytest.mark.parametrize(("rules", "after_book", "after_move", "after_cancel"), [
    (Rules("tau_bench_v1"), (9, 7), (9, 7), (9, 7)),  # v1 never writes availability
    (Rules("tau2"), (7, 7), (7, 7), (7, 7)),  # τ² takes seats on booking only
    (Rules("tau2", seats="full"), (7, 7), (9, 5), (9, 7)),  # this env's own: given back on change and cancel
])  # fmt: skip
def test_seat_accounting(world, rules: Rules, after_book: tuple, after_move: tuple, after_cancel: tuple) -> None:
    db = Database(world)
    seats = lambda: (
        db.flight_date("HAT001", "2024-05-16").available_seats.economy,
        db.flight_date("HAT003", "2024-05-16").available_seats.economy,
    )  # noqa: E731
    rid = call(db, rules, "book_reservation", **BOOK)["reservation_id"]
    assert seats() == after_book
    call(db, rules, "update_reservation_flights", reservation_id=rid, cabin="economy", payment_id="credit_card_1111111",
         flights=[{"flight_number": "HAT003", "date": "2024-05-16"}, {"flight_number": "HAT004", "date": "2024-05-16"}])  # fmt: skip
    assert seats() == after_move
    call(db, rules, "cancel_reservation", reservation_id=rid)
    assert seats() == after_cancel


def test_cabin_write_tau2_writes_it_v1_does_not(world) -> None:
    for rules, cabin in ((Rules("tau2"), "business"), (Rules("tau_bench_v1"), "economy")):
        db = Database(world)
        res = call(db, rules, "update_reservation_flights", reservation_id="AAA111", cabin="business", payment_id="credit_card_1111111",
                   flights=[{"flight_number": "HAT001", "date": "2024-05-17"}])  # fmt: skip
        assert res["cabin"] == db.reservation("AAA111").cabin == cabin
        assert (
            res["flights"][0]["price"] == 390 and res["payment_history"][-1]["amount"] == 250
        )  # both reprice at today's business fare


def test_onestop_second_leg_tau2_on_its_date_v1_on_the_first_date(world) -> None:
    for rules, seats in ((Rules("tau2"), 4), (Rules("tau_bench_v1"), 3)):
        pairs = call(
            Database(world), rules, "search_onestop_flight", origin="LAX", destination="ORD", date="2024-05-18"
        )
        [[first, second]] = pairs
        assert (first["flight_number"], first["date"], second["flight_number"], second["date"]) == (
            "HAT002",
            "2024-05-18",
            "HAT003",
            "2024-05-19",
        )
        assert second["available_seats"]["economy"] == seats and second["prices"]["economy"] == 120 + seats


def test_ids_follow_tau_bench_and_go_on_after_its_three(world) -> None:
    db = Database(world)
    ids = [call(db, Rules(), "book_reservation", **{**BOOK, "passengers": BOOK["passengers"][:1], "flights": [{"flight_number": "HAT003", "date": "2024-05-16"}],
                                                    "destination": "ORD", "payment_methods": [{"payment_id": "credit_card_1111111", "amount": 120}]})["reservation_id"]
           for _ in range(5)]  # fmt: skip
    assert ids == ["HATHAT", "HATHAU", "HATHAV", "HATHAW", "HATHAX"]
    certs = [call(db, Rules(), "send_certificate", user_id="cy_ng_2000", amount=50).split()[1] for _ in range(4)]
    assert certs == ["certificate_3221322", "certificate_3221323", "certificate_3221324", "certificate_3221325"]


def test_env_parity_option_is_validated_and_reaches_the_tools() -> None:
    with pytest.raises(ValueError, match="parity must be one of 'tau2', 'tau_bench_v1', got 'tau3'"):
        FlightBookingEnv(split="test", parity="tau3")
    with pytest.raises(ValueError, match="seats must be None .* 'none', 'book', 'full', got 'some'"):
        FlightBookingEnv(split="test", seats="some")
    env = FlightBookingEnv(split="test", parity="tau_bench_v1")
    env.reset(seed=0)
    obs, *_ = env.step('<tool_call>{"name": "list_all_airports", "arguments": {}}</tool_call>')
    assert obs[0]["content"].startswith('{"SFO": "San Francisco", ')
