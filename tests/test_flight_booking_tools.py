"""FlightBooking-v0's tools: τ-bench's names and arguments, the fare arithmetic, and write tools that check
data before changing anything (a failed call leaves the database hash unchanged and says why) and perform
what the policy forbids (policy_rules.py judges that; tests/test_flight_booking_policy.py)."""

from __future__ import annotations

import json

import pytest

from environments.flight_booking import invariants
from environments.flight_booking.parity import Rules
from environments.flight_booking.policy import nonfree_bags
from environments.flight_booking.reward import ReplayState
from environments.flight_booking.taubench_loader import default_world
from environments.flight_booking.tools import TOOLS, TOOLS_BY_NAME, WRITE_TOOLS
from environments.flight_booking.world import Available, CreditCard, Database, GiftCard

TAU_BENCH_TOOLS = {
    "book_reservation": ["user_id", "origin", "destination", "flight_type", "cabin", "flights", "passengers", "payment_methods",
                         "total_baggages", "nonfree_baggages", "insurance"],
    "cancel_reservation": ["reservation_id"], "get_reservation_details": ["reservation_id"], "get_user_details": ["user_id"],
    "list_all_airports": [], "search_direct_flight": ["origin", "destination", "date"], "search_onestop_flight": ["origin", "destination", "date"],
    "send_certificate": ["user_id", "amount"], "transfer_to_human_agents": ["summary"],
    "update_reservation_baggages": ["reservation_id", "total_baggages", "nonfree_baggages", "payment_id"],
    "update_reservation_flights": ["reservation_id", "cabin", "flights", "payment_id"],
    "update_reservation_passengers": ["reservation_id", "passengers"], "calculate": ["expression"], "think": ["thought"],
    "get_flight_status": ["flight_number", "date"],
}  # fmt: skip

W = default_world()


FULL = Rules("tau2", seats="full")


def run(db: Database, name: str, rules: Rules = Rules(), **arguments):
    return TOOLS_BY_NAME[name].invoke(arguments, state=ReplayState(db, rules))


def ok(db: Database, name: str, rules: Rules = Rules(), **arguments) -> str:
    r = run(db, name, rules, **arguments)
    assert r.ok, r.content
    return r.content


def fails(db: Database, name: str, needle: str, **arguments) -> str:
    """The call fails with `needle` in its message, and changes nothing."""
    before = db.hash()
    r = run(db, name, **arguments)
    assert not r.ok and r.content.startswith("Error: "), r.content
    assert needle in r.content, r.content
    assert db.hash() == before, f"failed {name} changed the database"
    return r.content


def user_with(pred):
    return next(uid for uid, u in sorted(W.users.items()) if pred(u))


def bookable(cabin: str = "economy", min_seats: int = 2):
    for _num, f in sorted(W.flights.items()):
        for d, fd in sorted(f.dates.items()):
            if isinstance(fd, Available) and getattr(fd.available_seats, cabin) >= min_seats:
                return f, d, fd
    raise AssertionError("no bookable flight")


def active_future(pred=lambda r: True):
    db = Database(W)
    for _rid, r in sorted(W.reservations.items()):
        if (
            r.status is None
            and all(isinstance(db.flight_date(s.flight_number, s.date), Available) for s in r.flights)
            and pred(r)
        ):
            return r
    raise AssertionError("no reservation fits")


def card(uid: str) -> str:
    return next(p for p, m in W.users[uid].payment_methods.items() if isinstance(m, CreditCard))


PAX = [
    {"first_name": "Ann", "last_name": "Lee", "dob": "1990-01-01"},
    {"first_name": "Ben", "last_name": "Lee", "dob": "1992-02-02"},
]


def booking(uid: str, f, d: str, amount_delta: float = 0, **over):
    fd = f.dates[d]
    total = fd.prices.economy * 2 + 30 * 2 + 50 * 1  # 2 passengers, insurance, one non-free bag
    args = dict(user_id=uid, origin=f.origin, destination=f.destination, flight_type="one_way", cabin="economy",
                flights=[{"flight_number": f.flight_number, "date": d}], passengers=PAX,
                payment_methods=[{"payment_id": card(uid), "amount": total + amount_delta}], total_baggages=3, nonfree_baggages=1,
                insurance="yes")  # fmt: skip
    args.update(over)
    return args, total


# ---- names and schemas ---------------------------------------------------------------------------------------


def test_tools_have_tau_bench_names_and_arguments() -> None:
    assert {t.name for t in TOOLS} == set(TAU_BENCH_TOOLS)
    for t in TOOLS:
        params = t.schema["function"]["parameters"]
        assert list(params.get("properties", {})) == TAU_BENCH_TOOLS[t.name], t.name
        assert t.description, t.name
    assert WRITE_TOOLS == {"book_reservation", "cancel_reservation", "update_reservation_baggages", "update_reservation_flights",
                           "update_reservation_passengers", "send_certificate"}  # fmt: skip


# ---- book_reservation ---------------------------------------------------------------------------------------------


def test_book_reservation_charges_the_fare_rules_and_takes_seats() -> None:
    uid = user_with(lambda u: any(isinstance(m, CreditCard) for m in u.payment_methods.values()))
    f, d, fd = bookable()
    db = Database(W)
    args, total = booking(uid, f, d)
    res = json.loads(ok(db, "book_reservation", **args))
    assert res["payment_history"] == [{"payment_id": card(uid), "amount": total}]
    assert res["flights"] == [
        {
            "origin": f.origin,
            "destination": f.destination,
            "flight_number": f.flight_number,
            "date": d,
            "price": fd.prices.economy,
        }
    ]
    assert res["created_at"] == "2024-05-15T15:00:00" and res["status"] is None and res["reservation_id"] == "HATHAT"
    assert db.flight_date(f.flight_number, d).available_seats.economy == fd.available_seats.economy - 2
    assert res["reservation_id"] in db.user(uid).reservations
    again = Database(W)
    assert (
        json.loads(ok(again, "book_reservation", **args))["reservation_id"] == res["reservation_id"]
    )  # deterministic ids
    second = json.loads(ok(db, "book_reservation", **args))["reservation_id"]
    assert second != res["reservation_id"]
    assert invariants.check(db) == []


def test_book_with_gift_card_and_certificate_updates_balances() -> None:
    uid = user_with(lambda u: any(isinstance(m, GiftCard) and m.amount >= 400 for m in u.payment_methods.values())
                    and any(m.source == "certificate" for m in u.payment_methods.values()))  # fmt: skip
    u = W.users[uid]
    gift = next(p for p, m in u.payment_methods.items() if isinstance(m, GiftCard) and m.amount >= 400)
    cert = next(p for p, m in u.payment_methods.items() if m.source == "certificate")
    f, d, fd = bookable("basic_economy", 2)
    price = fd.prices.basic_economy * 2
    cert_amount = min(u.payment_methods[cert].amount, price // 2)  # part of the certificate: the rest is forfeited
    db = Database(W)
    ok(db, "book_reservation", user_id=uid, origin=f.origin, destination=f.destination, flight_type="one_way", cabin="basic_economy",
       flights=[{"flight_number": f.flight_number, "date": d}], passengers=PAX, total_baggages=0, nonfree_baggages=0, insurance="no",
       payment_methods=[{"payment_id": cert, "amount": cert_amount}, {"payment_id": gift, "amount": price - cert_amount}])  # fmt: skip
    assert cert not in db.user(uid).payment_methods  # used certificates are consumed, remainder not refunded
    assert db.user(uid).payment_methods[gift].amount == u.payment_methods[gift].amount - (price - cert_amount)
    assert invariants.check(db) == []


def test_book_reservation_rejects_bad_bookings_without_changing_anything() -> None:
    uid = user_with(lambda u: sum(isinstance(m, CreditCard) for m in u.payment_methods.values()) >= 2)
    cards = [p for p, m in W.users[uid].payment_methods.items() if isinstance(m, CreditCard)]
    f, d, fd = bookable()
    db = Database(W)
    args, total = booking(uid, f, d)
    fails(
        db,
        "book_reservation",
        f"total price is {total:g}, but paid {total + 30:g}",
        **booking(uid, f, d, amount_delta=30)[0],
    )
    fails(
        db,
        "book_reservation",
        "is not in the user's profile; the user has:",
        **{**args, "payment_methods": [{"payment_id": "credit_card_0000000", "amount": total}]},
    )
    fails(
        db,
        "book_reservation",
        "listed twice",
        **{
            **args,
            "payment_methods": [{"payment_id": cards[0], "amount": total - 10}, {"payment_id": cards[0], "amount": 10}],
        },
    )
    fails(
        db,
        "book_reservation",
        "must be a positive number",
        **{
            **args,
            "payment_methods": [
                {"payment_id": cards[0], "amount": total + 10},
                {"payment_id": cards[1], "amount": -10},
            ],
        },
    )
    fails(db, "book_reservation", "User nobody_0 not found", **{**args, "user_id": "nobody_0"})
    fails(
        db,
        "book_reservation",
        "passengers is empty; a reservation has at least 1 passenger",
        **{**args, "passengers": []},
    )
    fails(db, "book_reservation", "0 <= nonfree_baggages <= total_baggages", **{**args, "nonfree_baggages": 4})
    fails(
        db,
        "book_reservation",
        "'XYZ' is not an airport of this airline (allowed: SFO, JFK",
        **{**args, "origin": "XYZ"},
    )
    fails(
        db,
        "book_reservation",
        "listed twice",
        **{**args, "flights": [{"flight_number": f.flight_number, "date": d}] * 2},
    )
    fails(
        db,
        "book_reservation",
        "Flight HAT999 not found (flight numbers look like 'HAT001')",
        **{**args, "flights": [{"flight_number": "HAT999", "date": d}]},
    )
    fails(
        db,
        "book_reservation",
        "not found on date 2024-06-30 (it flies",
        **{**args, "flights": [{"flight_number": f.flight_number, "date": "2024-06-30"}]},
    )
    landed = next(day for day, x in sorted(f.dates.items()) if x.status == "landed")
    fails(
        db,
        "book_reservation",
        f"not available on date {landed} (its status is 'landed'",
        **{**args, "flights": [{"flight_number": f.flight_number, "date": landed}]},
    )
    fails(
        db,
        "book_reservation",
        "is not a date in the form YYYY-MM-DD",
        **{**args, "flights": [{"flight_number": f.flight_number, "date": "May 20"}]},
    )
    fails(db, "book_reservation", "argument 'insurance'", **{**args, "insurance": "maybe"})
    assert db.hash() == W.hash()


def test_not_enough_seats() -> None:
    f, d, fd = next((f, d, fd) for f in W.flights.values() for d, fd in sorted(f.dates.items())
                    if isinstance(fd, Available) and fd.available_seats.business == 1)  # fmt: skip
    uid = user_with(lambda u: any(isinstance(m, CreditCard) for m in u.payment_methods.values()))
    db = Database(W)
    args, _ = booking(uid, f, d, cabin="business")
    fails(db, "book_reservation", "Not enough seats on flight", **args)


# ---- the other write tools ------------------------------------------------------------------------------------------


def test_cancel_refunds_everything_and_gives_seats_back_only_with_full_seat_accounting() -> None:
    r = active_future()
    db = Database(W)
    before = [db.flight_date(s.flight_number, s.date) for s in r.flights]
    res = json.loads(ok(db, "cancel_reservation", FULL, reservation_id=r.reservation_id))
    assert res["status"] == "cancelled" and sum(p["amount"] for p in res["payment_history"]) == 0
    after = [db.flight_date(s.flight_number, s.date) for s in r.flights]
    assert all(
        getattr(a.available_seats, r.cabin) == getattr(b.available_seats, r.cabin) + len(r.passengers)
        for a, b in zip(after, before)
    )
    tau2 = Database(W)
    ok(tau2, "cancel_reservation", reservation_id=r.reservation_id)  # τ² gives no seats back
    assert [tau2.flight_date(s.flight_number, s.date) for s in r.flights] == before
    fails(
        db,
        "cancel_reservation",
        "is cancelled; a cancelled reservation cannot be changed",
        reservation_id=r.reservation_id,
    )
    fails(db, "cancel_reservation", "Reservation NOPE00 not found", reservation_id="NOPE00")
    assert invariants.check(db) == []


def test_update_baggages_charges_only_added_nonfree_bags() -> None:
    r = active_future(lambda r: r.insurance in ("yes", "no"))
    uid = r.user_id
    u = W.users[uid]
    pay = next((p for p, m in u.payment_methods.items() if isinstance(m, CreditCard)), None) or next(
        p for p, m in u.payment_methods.items() if isinstance(m, GiftCard)
    )
    db = Database(W)
    total = r.total_baggages + 3
    nonfree = max(r.nonfree_baggages, nonfree_bags(u.membership, r.cabin, len(r.passengers), total)) + 1
    res = json.loads(
        ok(
            db,
            "update_reservation_baggages",
            reservation_id=r.reservation_id,
            total_baggages=total,
            nonfree_baggages=nonfree,
            payment_id=pay,
        )
    )
    assert res["payment_history"][-1] == {"payment_id": pay, "amount": 50 * (nonfree - r.nonfree_baggages)}
    fails(
        db,
        "update_reservation_baggages",
        "0 <= nonfree_baggages <= total_baggages",
        reservation_id=r.reservation_id,
        total_baggages=1,
        nonfree_baggages=2,
        payment_id=pay,
    )
    again = json.loads(
        ok(
            db,
            "update_reservation_baggages",
            reservation_id=r.reservation_id,
            total_baggages=total,
            nonfree_baggages=nonfree,
            payment_id=pay,
        )
    )
    assert again == res  # the same bags again: nothing changes, nothing is charged (as τ-bench)
    fewer = json.loads(
        ok(
            db,
            "update_reservation_baggages",
            reservation_id=r.reservation_id,
            total_baggages=total - 1,
            nonfree_baggages=nonfree - 1,
            payment_id=pay,
        )
    )
    assert fewer["payment_history"] == res["payment_history"]  # removing bags (a policy violation) refunds nothing
    assert invariants.check(db) == []
    cert_user = next(
        res_
        for res_ in W.reservations.values()
        if res_.status is None
        and any(m.source == "certificate" for m in W.users[res_.user_id].payment_methods.values())
    )
    cert = next(p for p, m in W.users[cert_user.user_id].payment_methods.items() if m.source == "certificate")
    fails(
        db,
        "update_reservation_baggages",
        "Certificate cannot be used to update reservation (",
        reservation_id=cert_user.reservation_id,
        total_baggages=cert_user.total_baggages + 1,
        nonfree_baggages=cert_user.nonfree_baggages + 1,
        payment_id=cert,
    )


def test_update_flights_cabin_change_reprices_and_moves_seats() -> None:
    r = active_future(
        lambda r: (
            r.cabin == "economy" and any(isinstance(m, CreditCard) for m in W.users[r.user_id].payment_methods.values())
        )
    )
    db = Database(W)
    n = len(r.passengers)
    fds = [db.flight_date(s.flight_number, s.date) for s in r.flights]
    if not all(fd.available_seats.business >= n for fd in fds):
        pytest.skip("the chosen reservation's flights lack business seats")
    pay = card(r.user_id)
    flights = [{"flight_number": s.flight_number, "date": s.date} for s in r.flights]
    res = json.loads(
        ok(
            db,
            "update_reservation_flights",
            FULL,
            reservation_id=r.reservation_id,
            cabin="business",
            flights=flights,
            payment_id=pay,
        )
    )
    diff = (sum(fd.prices.business for fd in fds) - sum(s.price for s in r.flights)) * n
    assert res["cabin"] == "business" and res["payment_history"][-1] == {"payment_id": pay, "amount": diff}
    for s, fd in zip(r.flights, fds):
        now = db.flight_date(s.flight_number, s.date).available_seats
        assert (now.economy, now.business) == (fd.available_seats.economy + n, fd.available_seats.business - n)
    assert invariants.check(db) == []


def test_update_flights_keeps_kept_segment_prices_and_checks_the_route() -> None:
    r = active_future(lambda r: r.flight_type == "round_trip" and len(r.flights) == 2 and r.cabin != "basic_economy"
                      and any(isinstance(m, CreditCard) for m in W.users[r.user_id].payment_methods.values()))  # fmt: skip
    db = Database(W)
    out, back = r.flights
    alt = next(d for d, fd in sorted(W.flights[back.flight_number].dates.items())
               if d > out.date and d != back.date and isinstance(fd, Available) and getattr(fd.available_seats, r.cabin) >= len(r.passengers))  # fmt: skip
    pay = card(r.user_id)
    flights = [
        {"flight_number": out.flight_number, "date": out.date},
        {"flight_number": back.flight_number, "date": alt},
    ]
    res = json.loads(
        ok(
            db,
            "update_reservation_flights",
            reservation_id=r.reservation_id,
            cabin=r.cabin,
            flights=flights,
            payment_id=pay,
        )
    )
    assert res["flights"][0]["price"] == out.price  # kept segment keeps its original price
    assert res["flights"][1]["price"] == getattr(W.flights[back.flight_number].dates[alt].prices, r.cabin)
    fails(
        db,
        "update_reservation_flights",
        "listed twice",
        reservation_id=r.reservation_id,
        cabin=r.cabin,
        flights=flights + flights[:1],
        payment_id=pay,
    )
    fails(
        db,
        "update_reservation_flights",
        "flights is empty",
        reservation_id=r.reservation_id,
        cabin=r.cabin,
        flights=[],
        payment_id=pay,
    )
    assert (
        json.loads(
            ok(
                db,
                "update_reservation_flights",
                reservation_id=r.reservation_id,
                cabin=r.cabin,
                flights=flights,
                payment_id=pay,
            )
        )
        == res
    )
    assert invariants.check(db) == []


def test_update_passengers_and_send_certificate() -> None:
    r = active_future()
    db = Database(W)
    new = [{"first_name": "Zed", "last_name": "Quinn", "dob": "2001-01-01"}] + [
        p.model_dump() for p in r.passengers[1:]
    ]
    res = json.loads(ok(db, "update_reservation_passengers", reservation_id=r.reservation_id, passengers=new))
    assert res["passengers"][0]["first_name"] == "Zed"
    fails(
        db,
        "update_reservation_passengers",
        "Number of passengers does not match (the reservation has",
        reservation_id=r.reservation_id,
        passengers=new + new[:1],
    )
    assert (
        json.loads(ok(db, "update_reservation_passengers", reservation_id=r.reservation_id, passengers=new)) == res
    )  # the same again: a no-op
    msg = ok(db, "send_certificate", user_id=r.user_id, amount=150)
    pid = msg.split()[1]
    assert pid == "certificate_3221322"
    assert db.user(r.user_id).payment_methods[pid].amount == 150
    assert msg == ok(Database(W), "send_certificate", user_id=r.user_id, amount=150)  # deterministic id
    fails(db, "send_certificate", "more than 0 and at most 10000", user_id=r.user_id, amount=0)
    fails(db, "send_certificate", "more than 0 and at most 10000", user_id=r.user_id, amount=1e9)


# ---- read tools ----------------------------------------------------------------------------------------------------


def test_read_tools() -> None:
    db = Database(W)
    assert {"iata": "JFK", "city": "New York"} in json.loads(ok(db, "list_all_airports"))
    assert json.loads(ok(db, "list_all_airports", Rules("tau_bench_v1")))["JFK"] == "New York"
    f, d, fd = bookable()
    status = json.loads(ok(db, "get_flight_status", flight_number=f.flight_number, date=d))
    assert status == {"flight_number": f.flight_number, "date": d, "status": "available"}
    delayed = next(
        (n, day) for n, fl in sorted(W.flights.items()) for day, x in fl.dates.items() if x.status == "delayed"
    )
    got = json.loads(ok(db, "get_flight_status", flight_number=delayed[0], date=delayed[1]))
    assert got["status"] == "delayed" and "estimated_departure_time_est" in got
    fails(
        db,
        "get_flight_status",
        "not found on date 2025-01-01 (it flies 2024-05-01 to 2024-05-30)",
        flight_number=f.flight_number,
        date="2025-01-01",
    )
    fails(db, "search_direct_flight", "is not in the form YYYY-MM-DD", origin="JFK", destination="LAX", date="20240520")
    found = json.loads(ok(db, "search_direct_flight", origin=f.origin, destination=f.destination, date=d))
    assert f.flight_number in [x["flight_number"] for x in found] and all(x["status"] == "available" for x in found)
    for pair in json.loads(ok(db, "search_onestop_flight", origin="JFK", destination="LAX", date="2024-05-20")):
        a, b = pair
        assert a["origin"] == "JFK" and a["destination"] == b["origin"] and b["destination"] == "LAX"
        assert b["date"] >= a["date"] and a["status"] == b["status"] == "available"
    r = next(iter(W.reservations.values()))
    assert (
        json.loads(ok(db, "get_reservation_details", reservation_id=r.reservation_id))["reservation_id"]
        == r.reservation_id
    )
    assert json.loads(ok(db, "get_user_details", user_id=r.user_id))["membership"] == W.users[r.user_id].membership
    assert (
        ok(db, "think", thought="hmm") == ""
        and ok(db, "transfer_to_human_agents", summary="x") == "Transfer successful"
    )


@pytest.mark.parametrize(("expression", "expected"), [("2 * (150 + 30) - 50", "310.0"), ("10 / 4", "2.5"), ("-3 + 1.25 * 2", "-0.5"),
                                                      ("2 ** 10", "1024.0"), ("7 // 2", "3.0")])  # fmt: skip
def test_calculate(expression: str, expected: str) -> None:
    assert ok(Database(W), "calculate", expression=expression) == expected


@pytest.mark.parametrize(("expression", "needle"), [("__import__('os')", "Invalid characters in expression"), ("9**9**9", "exponents are limited"), ("(10.0 ** 64) ** 64", "too large"),
                                                    ("1 / 0", "division by zero"), ("(1", "not a valid arithmetic"), ("", "1 to 500 characters")])  # fmt: skip
def test_calculate_rejects_everything_else(expression: str, needle: str) -> None:
    fails(Database(W), "calculate", needle, expression=expression)
