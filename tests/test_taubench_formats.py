"""The tools' outputs, character for character, in τ-bench's formats: for each parity (parity.py) the strings
its tools return for the same world and calls. The expected strings are written from τ-bench's public code:

  * v1, tau_bench/envs/airline/tools/*.py: `json.dumps(record)` of the JSON records (key order of its data
    files: reservation flights {origin, destination, flight_number, date, price}, credit cards {source, brand,
    last_four, id}); book_reservation / update_reservation_flights build flight entries as {flight_number,
    date, price, origin, destination}; send_certificate answers "Certificate certificate_3221322 added to user
    <id> with amount <amount>."; new reservations are HATHAT, HATHAU, HATHAV; errors are "Error: user not found",
    "Error: flight HAT999 not found", ...
  * τ², src/tau2/domains/airline/tools.py + data_model.py, serialized by environment.py's to_json_str
    (`json.dumps(model.model_dump())`): model field order, "status": null on an active reservation, "date": null
    on a direct search result, gift-card / certificate amounts as floats, list_all_airports as
    [{"iata", "city"}]; errors "Error: User x not found", "Error: Flight HAT999 not found", ...
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_flight_booking_world import write_tiny

from environments.flight_booking.parity import Rules
from environments.flight_booking.reward import ReplayState
from environments.flight_booking.taubench_loader import load_world
from environments.flight_booking.tools import TOOLS_BY_NAME
from environments.flight_booking.world import Database

V1, TAU2 = Rules("tau_bench_v1"), Rules("tau2")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    return load_world(write_tiny(Path(tmp_path_factory.mktemp("tiny"))))


def out(db: Database, rules: Rules, name: str, **arguments) -> str:
    return TOOLS_BY_NAME[name].invoke(arguments, state=ReplayState(db, rules)).content


# v1 dumps the record as its file holds it: "state" (τ-bench's data since January 2025; only its first commit said "province")
USER_V1 = (
    '{"name": {"first_name": "Cy", "last_name": "Ng"}, "address": {"address1": "2 Oak Ave", "address2": "Apt 3", "city": "Denver", '
    '"country": "USA", "state": "CO", "zip": "80202"}, "email": "cy@example.com", "dob": "1975-05-06", "payment_methods": '
    '{"credit_card_4444444": {"source": "credit_card", "brand": "mastercard", "last_four": "0001", "id": "credit_card_4444444"}}, '
    '"saved_passengers": [], "membership": "regular", "reservations": ["CCC333"]}'
)
USER_TAU2 = (
    '{"user_id": "cy_ng_2000", "name": {"first_name": "Cy", "last_name": "Ng"}, "address": {"address1": "2 Oak Ave", "address2": "Apt 3", '
    '"city": "Denver", "country": "USA", "state": "CO", "zip": "80202"}, "email": "cy@example.com", "dob": "1975-05-06", "payment_methods": '
    '{"credit_card_4444444": {"source": "credit_card", "id": "credit_card_4444444", "brand": "mastercard", "last_four": "0001"}}, '
    '"saved_passengers": [], "membership": "regular", "reservations": ["CCC333"]}'
)
RES_HEAD = '{"reservation_id": "AAA111", "user_id": "ada_lee_1000", "origin": "JFK", "destination": "LAX", "flight_type": "one_way", "cabin": "economy", '
RES_TAIL = (
    '"passengers": [{"first_name": "Ada", "last_name": "Lee", "dob": "1980-01-02"}], "payment_history": [{"payment_id": "credit_card_1111111", '
    '"amount": 170}], "created_at": "2024-05-10T10:00:00", "total_baggages": 1, "nonfree_baggages": 0, "insurance": "yes"'
)
FILE_SEG = '{"origin": "JFK", "destination": "LAX", "flight_number": "HAT001", "date": "2024-05-17", "price": 140}'
TAU2_SEG = '{"flight_number": "HAT001", "origin": "JFK", "destination": "LAX", "date": "2024-05-17", "price": 140}'


def test_read_tools_v1_and_tau2(world) -> None:
    db = Database(world)
    assert out(db, V1, "get_user_details", user_id="cy_ng_2000") == USER_V1
    assert out(db, TAU2, "get_user_details", user_id="cy_ng_2000") == USER_TAU2
    assert (
        out(db, V1, "get_reservation_details", reservation_id="AAA111")
        == RES_HEAD + f'"flights": [{FILE_SEG}], ' + RES_TAIL + "}"
    )
    assert (
        out(db, TAU2, "get_reservation_details", reservation_id="AAA111")
        == RES_HEAD + f'"flights": [{TAU2_SEG}], ' + RES_TAIL + ', "status": null}'
    )
    assert out(db, V1, "get_reservation_details", reservation_id="CCC333").endswith(
        '"insurance": "no", "status": "cancelled"}'
    )
    gift = '"gift_card_2222222": {"source": "gift_card", '
    assert gift + '"amount": 500, "id": "gift_card_2222222"}' in out(db, V1, "get_user_details", user_id="ada_lee_1000")
    assert gift + '"id": "gift_card_2222222", "amount": 500.0}' in out(
        db, TAU2, "get_user_details", user_id="ada_lee_1000"
    )
    assert out(db, V1, "list_all_airports") == '{"JFK": "New York", "LAX": "Los Angeles", "ORD": "Chicago"}'
    assert out(db, TAU2, "list_all_airports") == (
        '[{"iata": "JFK", "city": "New York"}, {"iata": "LAX", "city": "Los Angeles"}, '
        '{"iata": "ORD", "city": "Chicago"}]'
    )
    for rules in (V1, TAU2):
        assert out(db, rules, "calculate", expression="2 * (150 + 30) - 50") == "310.0"
        assert out(db, rules, "calculate", expression="2 ** 3") == "8.0"
        assert out(db, rules, "think", thought="x") == ""
        assert out(db, rules, "transfer_to_human_agents", summary="x") == "Transfer successful"
        assert (
            out(db, rules, "get_flight_status", flight_number="HAT002", date="2024-05-16")
            == '{"flight_number": "HAT002", "date": "2024-05-16", "status": "cancelled"}'
        )


SEATS7 = '"available_seats": {"basic_economy": 7, "economy": 7, "business": 7}'


def test_searches_v1_and_tau2(world) -> None:
    db = Database(world)
    v1_003 = (
        '{"flight_number": "HAT003", "origin": "JFK", "destination": "ORD", "scheduled_departure_time_est": "09:00:00", '
        f'"scheduled_arrival_time_est": "11:00:00", "status": "available", {SEATS7}, "prices": {{"basic_economy": 60, "economy": 120, "business": 300}}'
    )
    tau2_003 = (
        '{"flight_number": "HAT003", "origin": "JFK", "destination": "ORD", "status": "available", "scheduled_departure_time_est": "09:00:00", '
        f'"scheduled_arrival_time_est": "11:00:00", "date": null, {SEATS7}, "prices": {{"basic_economy": 60, "economy": 120, "business": 300}}}}'
    )
    assert (
        out(db, V1, "search_direct_flight", origin="JFK", destination="ORD", date="2024-05-16") == f"[{v1_003}}}]"
    )  # no "date" in v1
    assert out(db, TAU2, "search_direct_flight", origin="JFK", destination="ORD", date="2024-05-16") == f"[{tau2_003}]"
    v1_pair = out(db, V1, "search_onestop_flight", origin="JFK", destination="LAX", date="2024-05-16")
    assert v1_pair.startswith(
        f'[[{v1_003}, "date": "2024-05-16"}}, {{"flight_number": "HAT004", '
    ) and v1_pair.endswith('"date": "2024-05-16"}]]')
    tau2_pair = out(db, TAU2, "search_onestop_flight", origin="JFK", destination="LAX", date="2024-05-16")
    assert tau2_pair.startswith(
        "[[" + tau2_003.replace('"date": null', '"date": "2024-05-16"') + ', {"flight_number": "HAT004", '
    )


BOOK = {"user_id": "ada_lee_1000", "origin": "JFK", "destination": "LAX", "flight_type": "one_way", "cabin": "economy",
        "flights": [{"flight_number": "HAT001", "date": "2024-05-16"}], "passengers": [{"first_name": "Ada", "last_name": "Lee", "dob": "1980-01-02"}],
        "payment_methods": [{"payment_id": "credit_card_1111111", "amount": 150}], "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"}  # fmt: skip


def test_write_tools_v1_and_tau2(world) -> None:
    tail = (
        '"passengers": [{"first_name": "Ada", "last_name": "Lee", "dob": "1980-01-02"}], "payment_history": [{"payment_id": "credit_card_1111111", '
        '"amount": 150}], "created_at": "2024-05-15T15:00:00", "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"'
    )
    head = '{"reservation_id": "HATHAT", "user_id": "ada_lee_1000", "origin": "JFK", "destination": "LAX", "flight_type": "one_way", "cabin": "economy", '
    v1_seg = '{"flight_number": "HAT001", "date": "2024-05-16", "price": 150, "origin": "JFK", "destination": "LAX"}'
    tau2_seg = '{"flight_number": "HAT001", "origin": "JFK", "destination": "LAX", "date": "2024-05-16", "price": 150}'
    db1, db2 = Database(world), Database(world)
    assert out(db1, V1, "book_reservation", **BOOK) == head + f'"flights": [{v1_seg}], ' + tail + "}"
    assert (
        out(db2, TAU2, "book_reservation", **BOOK) == head + f'"flights": [{tau2_seg}], ' + tail + ', "status": null}'
    )
    assert '"reservation_id": "HATHAU"' in out(db1, V1, "book_reservation", **BOOK)  # τ-bench's second id
    # update_reservation_flights: v1 rewrites every entry in its tools' order (kept ones too)
    moved = {
        "reservation_id": "AAA111",
        "cabin": "economy",
        "flights": [{"flight_number": "HAT001", "date": "2024-05-16"}],
        "payment_id": "credit_card_1111111",
    }
    got = out(db1, V1, "update_reservation_flights", **moved)
    assert (
        '"flights": [{"flight_number": "HAT001", "date": "2024-05-16", "price": 150, "origin": "JFK", "destination": "LAX"}]'
        in got
    )
    assert (
        '"payment_history": [{"payment_id": "credit_card_1111111", "amount": 170}, {"payment_id": "credit_card_1111111", "amount": 10}]'
        in got
    )
    assert out(db2, TAU2, "update_reservation_flights", **moved).endswith('"insurance": "yes", "status": null}')
    got = out(
        db1,
        V1,
        "update_reservation_baggages",
        reservation_id="AAA111",
        total_baggages=3,
        nonfree_baggages=1,
        payment_id="gift_card_2222222",
    )
    assert (
        '{"payment_id": "gift_card_2222222", "amount": 50}], "created_at": "2024-05-10T10:00:00", "total_baggages": 3, "nonfree_baggages": 1'
        in got
    )
    pax = [{"first_name": "Ann", "last_name": "Lee", "dob": "1980-01-02"}]
    assert '"passengers": [{"first_name": "Ann", "last_name": "Lee", "dob": "1980-01-02"}]' in out(
        db1, V1, "update_reservation_passengers", reservation_id="AAA111", passengers=pax
    )
    assert out(db1, V1, "cancel_reservation", reservation_id="AAA111").endswith(
        '{"payment_id": "credit_card_1111111", "amount": -10}, {"payment_id": "gift_card_2222222", "amount": -50}], "created_at": "2024-05-10T10:00:00", '
        '"total_baggages": 3, "nonfree_baggages": 1, "insurance": "yes", "status": "cancelled"}'
    )
    for rules, db in ((V1, db1), (TAU2, db2)):
        assert (
            out(db, rules, "send_certificate", user_id="cy_ng_2000", amount=150)
            == "Certificate certificate_3221322 added to user cy_ng_2000 with amount 150."
        )
        assert (
            out(db, rules, "send_certificate", user_id="cy_ng_2000", amount=50.5)
            == "Certificate certificate_3221323 added to user cy_ng_2000 with amount 50.5."
        )
    assert '"certificate_3221322": {"source": "certificate", "amount": 150, "id": "certificate_3221322"}' in out(
        db1, V1, "get_user_details", user_id="cy_ng_2000"
    )
    assert '"certificate_3221322": {"source": "certificate", "id": "certificate_3221322", "amount": 150.0}' in out(
        db2, TAU2, "get_user_details", user_id="cy_ng_2000"
    )


@pytest.mark.parametrize(("name", "arguments", "v1", "tau2"), [
    ("get_user_details", {"user_id": "nobody_1"}, "Error: user not found (", "Error: User nobody_1 not found ("),
    ("cancel_reservation", {"reservation_id": "ZZZ999"}, "Error: reservation not found (", "Error: Reservation ZZZ999 not found ("),
    ("book_reservation", {**BOOK, "flights": [{"flight_number": "HAT999", "date": "2024-05-16"}]}, "Error: flight HAT999 not found (", "Error: Flight HAT999 not found ("),
    ("book_reservation", {**BOOK, "flights": [{"flight_number": "HAT001", "date": "2024-05-20"}]}, "Error: flight HAT001 not found on date 2024-05-20 (",
     "Error: Flight HAT001 not found on date 2024-05-20 ("),
    ("book_reservation", {**BOOK, "flights": [{"flight_number": "HAT001", "date": "2024-05-15"}]}, "Error: flight HAT001 not available on date 2024-05-15 (",
     "Error: Flight HAT001 not available on date 2024-05-15 ("),
    ("book_reservation", {**BOOK, "flights": [{"flight_number": "HAT001", "date": "2024-05-17"}], "passengers": BOOK["passengers"] * 3},
     "Error: not enough seats on flight HAT001 (", "Error: Not enough seats on flight HAT001 ("),
    ("book_reservation", {**BOOK, "payment_methods": [{"payment_id": "credit_card_9", "amount": 150}]}, "Error: payment method credit_card_9 not found (",
     "Error: Payment method credit_card_9 not found ("),
    ("book_reservation", {**BOOK, "payment_methods": [{"payment_id": "certificate_3333333", "amount": 150}]},
     "Error: not enough balance in payment method certificate_3333333 (", "Error: Not enough balance in payment method certificate_3333333 ("),
    ("book_reservation", {**BOOK, "payment_methods": [{"payment_id": "credit_card_1111111", "amount": 100}]},
     "Error: payment amount does not add up, total price is 150, but paid 100 (", "Error: Payment amount does not add up, total price is 150, but paid 100 ("),
    ("update_reservation_baggages", {"reservation_id": "AAA111", "total_baggages": 2, "nonfree_baggages": 1, "payment_id": "x"},
     "Error: payment method not found (", "Error: Payment method not found ("),
    ("update_reservation_baggages", {"reservation_id": "AAA111", "total_baggages": 2, "nonfree_baggages": 1, "payment_id": "certificate_3333333"},
     "Error: certificate cannot be used to update reservation (", "Error: Certificate cannot be used to update reservation ("),
    ("update_reservation_passengers", {"reservation_id": "AAA111", "passengers": []}, "Error: number of passengers does not match (",
     "Error: Number of passengers does not match ("),
    ("calculate", {"expression": "x"}, "Error: invalid characters in expression (", "Error: Invalid characters in expression ("),
])  # fmt: skip
def test_error_strings_are_tau_benchs_then_what_is_allowed(
    world, name: str, arguments: dict, v1: str, tau2: str
) -> None:
    for rules, expected in ((V1, v1), (TAU2, tau2)):
        db = Database(world)
        got = out(db, rules, name, **arguments)
        assert got.startswith(expected) and got.endswith(")"), got
        assert db.hash() == world.hash()
