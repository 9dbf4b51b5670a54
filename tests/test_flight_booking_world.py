"""FlightBooking-v0's data: the world records, the τ-bench-layout loader, the copy-on-write database and its
canonical hash, the invariants of the shipped world, and the seeded generator of the shipped files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from environments.flight_booking import generate, invariants
from environments.flight_booking.env import FlightBookingEnv
from environments.flight_booking.reward import ReplayState
from environments.flight_booking.tasks import DATA_DIR, shipped_tasks
from environments.flight_booking.tasks.generator import generate_tasks, play
from environments.flight_booking.taubench_loader import (
    WorldFormatError,
    default_world,
    dump_world,
    load_world,
)
from environments.flight_booking.tools import TOOLS_BY_NAME
from environments.flight_booking.world import Database, World

# ---- a small world written by hand in τ-bench's airline layout ---------------------------------------------


def _avail(seats: int, be: int, ec: int, bu: int) -> dict:
    return {"status": "available", "available_seats": {"basic_economy": seats, "economy": seats, "business": seats},
            "prices": {"basic_economy": be, "economy": ec, "business": bu}}  # fmt: skip


TINY_FLIGHTS = {
    "HAT001": {"flight_number": "HAT001", "origin": "JFK", "destination": "LAX", "scheduled_departure_time_est": "08:00:00",
               "scheduled_arrival_time_est": "11:30:00", "dates": {
                   "2024-05-14": {"status": "landed", "actual_departure_time_est": "2024-05-14T08:05:00", "actual_arrival_time_est": "2024-05-14T11:40:00"},
                   "2024-05-15": {"status": "landed", "actual_departure_time_est": "2024-05-15T08:00:00", "actual_arrival_time_est": "2024-05-15T11:30:00"},
                   "2024-05-16": _avail(9, 80, 150, 400), "2024-05-17": _avail(2, 70, 140, 390)}},
    "HAT002": {"flight_number": "HAT002", "origin": "LAX", "destination": "JFK", "scheduled_departure_time_est": "17:00:00",
               "scheduled_arrival_time_est": "01:00:00+1", "dates": {
                   "2024-05-15": {"status": "delayed", "estimated_departure_time_est": "2024-05-15T19:00:00", "estimated_arrival_time_est": "2024-05-16T03:00:00"},
                   "2024-05-16": {"status": "cancelled"}, "2024-05-18": _avail(5, 90, 160, 420)}},
    "HAT003": {"flight_number": "HAT003", "origin": "JFK", "destination": "ORD", "scheduled_departure_time_est": "09:00:00",
               "scheduled_arrival_time_est": "11:00:00", "dates": {"2024-05-16": _avail(7, 60, 120, 300)}},
    "HAT004": {"flight_number": "HAT004", "origin": "ORD", "destination": "LAX", "scheduled_departure_time_est": "13:00:00",
               "scheduled_arrival_time_est": "15:30:00", "dates": {"2024-05-16": _avail(7, 65, 125, 310)}},
}  # fmt: skip
TINY_USERS = {
    "ada_lee_1000": {
        "name": {"first_name": "Ada", "last_name": "Lee"},
        "address": {"address1": "1 Main St", "address2": "", "city": "Boston", "country": "USA", "state": "MA", "zip": "02101"},
        "email": "ada@example.com", "dob": "1980-01-02",
        "payment_methods": {
            "credit_card_1111111": {"source": "credit_card", "brand": "visa", "last_four": "4242", "id": "credit_card_1111111"},
            "gift_card_2222222": {"source": "gift_card", "amount": 500, "id": "gift_card_2222222"},
            "certificate_3333333": {"source": "certificate", "amount": 100, "id": "certificate_3333333"}},
        "saved_passengers": [{"first_name": "Bo", "last_name": "Lee", "dob": "2010-03-04"}],
        "membership": "silver", "reservations": ["AAA111", "BBB222"]},
    "cy_ng_2000": {
        "name": {"first_name": "Cy", "last_name": "Ng"},
        "address": {"address1": "2 Oak Ave", "address2": "Apt 3", "city": "Denver", "country": "USA", "state": "CO", "zip": "80202"},
        "email": "cy@example.com", "dob": "1975-05-06",
        "payment_methods": {"credit_card_4444444": {"source": "credit_card", "brand": "mastercard", "last_four": "0001", "id": "credit_card_4444444"}},
        "saved_passengers": [], "membership": "regular", "reservations": ["CCC333"]},
}  # fmt: skip
TINY_RESERVATIONS = {
    "AAA111": {"reservation_id": "AAA111", "user_id": "ada_lee_1000", "origin": "JFK", "destination": "LAX", "flight_type": "one_way",
               "cabin": "economy", "flights": [{"origin": "JFK", "destination": "LAX", "flight_number": "HAT001", "date": "2024-05-17", "price": 140}],
               "passengers": [{"first_name": "Ada", "last_name": "Lee", "dob": "1980-01-02"}],
               "payment_history": [{"payment_id": "credit_card_1111111", "amount": 170}], "created_at": "2024-05-10T10:00:00",
               "total_baggages": 1, "nonfree_baggages": 0, "insurance": "yes"},
    "BBB222": {"reservation_id": "BBB222", "user_id": "ada_lee_1000", "origin": "LAX", "destination": "JFK", "flight_type": "one_way",
               "cabin": "business", "flights": [{"origin": "LAX", "destination": "JFK", "flight_number": "HAT002", "date": "2024-05-15", "price": 420}],
               "passengers": [{"first_name": "Ada", "last_name": "Lee", "dob": "1980-01-02"}],
               "payment_history": [{"payment_id": "gift_card_2222222", "amount": 420}], "created_at": "2024-05-01T09:00:00",
               "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"},
    "CCC333": {"reservation_id": "CCC333", "user_id": "cy_ng_2000", "origin": "LAX", "destination": "JFK", "flight_type": "one_way",
               "cabin": "basic_economy", "flights": [{"origin": "LAX", "destination": "JFK", "flight_number": "HAT002", "date": "2024-05-16", "price": 90}],
               "passengers": [{"first_name": "Cy", "last_name": "Ng", "dob": "1975-05-06"}],
               "payment_history": [{"payment_id": "credit_card_4444444", "amount": 90}, {"payment_id": "credit_card_4444444", "amount": -90}],
               "created_at": "2024-05-02T09:00:00", "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no", "status": "cancelled"},
}  # fmt: skip


def write_tiny(path: Path, **override: dict) -> Path:
    data = {"flights.json": TINY_FLIGHTS, "users.json": TINY_USERS, "reservations.json": TINY_RESERVATIONS}
    data.update({f"{k}.json": v for k, v in override.items()})
    path.mkdir(parents=True, exist_ok=True)
    for name, obj in data.items():
        (path / name).write_text(json.dumps(obj, indent=4))
    return path


def call(db: Database, name: str, **arguments) -> str:
    result = TOOLS_BY_NAME[name].invoke(arguments, state=ReplayState(db))
    assert result.ok, result.content
    return result.content


# ---- the τ-bench-layout loader --------------------------------------------------------------------------------


def test_taubench_layout_loader_reads_a_small_world(tmp_path: Path) -> None:
    w = load_world(write_tiny(tmp_path / "tiny"))
    assert (len(w.flights), len(w.users), len(w.reservations)) == (4, 2, 3)
    assert w.clock.isoformat() == "2024-05-15T15:00:00"  # inferred: the last day with landed / delayed flights
    assert w.airports == {"JFK": "New York", "LAX": "Los Angeles", "ORD": "Chicago"}
    assert w.reservations["CCC333"].status == "cancelled" and w.reservations["AAA111"].status is None
    assert w.users["ada_lee_1000"].payment_methods["gift_card_2222222"].amount == 500.0
    assert invariants.check(Database(w), whole=True) == []
    db = Database(w)
    found = json.loads(call(db, "search_direct_flight", origin="JFK", destination="LAX", date="2024-05-16"))
    assert [f["flight_number"] for f in found] == ["HAT001"] and found[0]["prices"]["economy"] == 150
    onestop = json.loads(call(db, "search_onestop_flight", origin="JFK", destination="LAX", date="2024-05-16"))
    assert [[leg["flight_number"] for leg in pair] for pair in onestop] == [["HAT003", "HAT004"]]
    booked = json.loads(call(db, "book_reservation", user_id="cy_ng_2000", origin="JFK", destination="LAX", flight_type="one_way",
                             cabin="economy", flights=[{"flight_number": "HAT003", "date": "2024-05-16"}, {"flight_number": "HAT004", "date": "2024-05-16"}],
                             passengers=[{"first_name": "Cy", "last_name": "Ng", "dob": "1975-05-06"}],
                             payment_methods=[{"payment_id": "credit_card_4444444", "amount": 295}], total_baggages=2,
                             nonfree_baggages=1, insurance="no"))  # fmt: skip
    assert booked["payment_history"] == [
        {"payment_id": "credit_card_4444444", "amount": 295}
    ]  # 120 + 125 + one $50 bag
    assert db.flight_date("HAT003", "2024-05-16").available_seats.economy == 6
    assert w.flights["HAT003"].dates["2024-05-16"].available_seats.economy == 7  # the world itself is untouched
    assert invariants.check(db) == []


def test_world_round_trips_through_the_layout(tmp_path: Path) -> None:
    w = load_world(write_tiny(tmp_path / "a"))
    dump_world(w, tmp_path / "b")
    again = load_world(tmp_path / "b")
    assert again.hash() == w.hash() and again.clock == w.clock
    assert set(json.loads((tmp_path / "b" / "meta.json").read_text())) >= {"clock", "airports"}


def test_env_runs_a_taubench_layout_world_with_generated_tasks(tmp_path: Path) -> None:
    env = FlightBookingEnv(split="all", world=write_tiny(tmp_path / "tiny"))
    ids = env.task_ids()
    assert len(ids) >= 3
    for tid in ids:
        assert play(env, tid)[0] == 1.0, tid


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (
            {"users": {**TINY_USERS, "cy_ng_2000": {**TINY_USERS["cy_ng_2000"], "membership": "platinum"}}},
            "users.json: at cy_ng_2000.membership",
        ),
        (
            {"flights": {"HAT001": {**TINY_FLIGHTS["HAT001"], "dates": {"2024-05-16": {"status": "boarding"}}}}},
            "flights.json: at HAT001.dates.2024-05-16",
        ),
        (
            {"reservations": {**TINY_RESERVATIONS, "AAA111": {**TINY_RESERVATIONS["AAA111"], "user_id": "nobody_1"}}},
            "unknown user 'nobody_1'",
        ),
        (
            {"reservations": {**TINY_RESERVATIONS, "AAA111": {**TINY_RESERVATIONS["AAA111"], "seat": "12A"}}},
            "AAA111.seat: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_world_files_name_what_is_wrong(tmp_path: Path, override: dict, needle: str) -> None:
    with pytest.raises(WorldFormatError) as exc:
        load_world(write_tiny(tmp_path / "bad", **override))
    assert needle in str(exc.value), str(exc.value)


def test_missing_world_file_is_named(tmp_path: Path) -> None:
    d = write_tiny(tmp_path / "w")
    (d / "users.json").unlink()
    with pytest.raises(WorldFormatError, match="users.json is missing"):
        load_world(d)
    with pytest.raises(WorldFormatError, match="not a directory"):
        load_world(d / "flights.json")


# ---- the copy-on-write database and its hash ------------------------------------------------------------------


def test_database_is_copy_on_write_and_its_hash_is_the_whole_databases() -> None:
    w = default_world()
    db = Database(w)
    assert db.hash() == w.hash()
    rid = next(r for r, res in w.reservations.items() if res.status is None)
    before = w.reservations[rid].model_dump()
    call(db, "cancel_reservation", reservation_id=rid)
    assert w.reservations[rid].model_dump() == before  # the shared world never changes
    assert db.reservation(rid).status == "cancelled"
    assert db.hash() != w.hash()
    assert db.materialize().hash() == db.hash()  # the incremental hash equals a full recomputation
    branch = copy.deepcopy(db)
    assert branch == db and branch.world is w and branch.reservations[rid] is not db.reservations[rid]
    uid = w.reservations[rid].user_id
    call(branch, "send_certificate", user_id=uid, amount=50)
    assert branch.hash() != db.hash() and branch.materialize().hash() == branch.hash()


def test_hash_is_canonical() -> None:
    """Equal databases reached by different paths hash equal; any difference changes the hash."""
    w = default_world()
    a, b = Database(w), Database(w)
    uid = next(iter(w.users))
    call(a, "send_certificate", user_id=uid, amount=100)
    call(b, "send_certificate", user_id=uid, amount=100.0)  # int vs float dollars: the same database
    assert a.hash() == b.hash()
    c = Database(w)
    call(c, "send_certificate", user_id=uid, amount=100.01)
    assert c.hash() != a.hash()


def test_shipped_world_satisfies_the_invariants() -> None:
    w = default_world()
    assert (len(w.flights), len(w.users), len(w.reservations)) == (200, 300, 700)
    assert len(w.airports) == 20
    assert invariants.check(Database(w), whole=True) == []
    statuses = {fd.status for f in w.flights.values() for fd in f.dates.values()}
    assert statuses == {"available", "landed", "cancelled", "delayed", "on time", "flying"}
    memberships = {u.membership for u in w.users.values()}
    assert memberships == {"regular", "silver", "gold"}


# ---- the generator --------------------------------------------------------------------------------------------


def test_generator_is_deterministic_and_made_the_shipped_files() -> None:
    world = generate.generate_world(0)
    tasks = generate_tasks(world, 0, strict=True, check=False)
    files = generate.render_files(world, tasks, 0)
    for rel, text in files.items():
        assert (DATA_DIR / rel).read_text(encoding="utf-8") == text, (
            f"{rel} differs from `python -m environments.flight_booking.generate --seed 0`"
        )
    other = generate.render_files(generate.generate_world(1, n_flights=60, n_users=40, n_reservations=80), [], 1)
    assert other["world/flights.json"] != files["world/flights.json"]


def test_shipped_tasks_cover_the_families_and_splits_by_user() -> None:
    train, test = shipped_tasks("train"), shipped_tasks("test")
    assert len(train) >= 200 and len(test) >= 50
    fams = {t.family for t in test}
    for needed in ("book_direct", "book_round_trip", "book_onestop", "cancel_allowed", "cancel_refused", "cancel_flown_transfer",
                   "change_flight", "change_cabin", "add_bags", "change_passenger", "compensation_cancelled",
                   "delay_change_compensation", "out_of_scope_transfer", "flight_status", "change_flight_refused"):  # fmt: skip
        assert needed in fams, needed
    assert not {t.user_id for t in train} & {t.user_id for t in test}
    outcomes = {g.outcome for t in test for g in t.user.goals}
    assert outcomes == {"do", "refuse", "transfer", "answer"}
    with pytest.raises(ValueError, match="split must be"):
        shipped_tasks("dev")


def test_a_world_object_is_shared_not_copied() -> None:
    w = default_world()
    assert copy.deepcopy(w) is w and isinstance(w, World)
