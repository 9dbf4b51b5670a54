"""Tool outputs as τ-bench writes them: `json.dumps` with its default separators (", " and ": "), and each
record's fields in the order (and with the fields) of the selected parity (parity.py).

τ² (tau2/environment/environment.py `to_json_str`): json.dumps(model.model_dump()) of its pydantic models
(tau2/domains/airline/data_model.py), so fields follow the models' declaration order, optional fields are
written as null, and float-typed fields (gift-card and certificate amounts) are written as floats (100.0).

τ-bench v1 (tau_bench/envs/airline/tools/*.py): json.dumps of the JSON records themselves, so records read
from its files keep the files' key order (reservation flights: origin, destination, flight_number, date,
price; credit cards: source, brand, last_four, id; an address's "state", or "province" where the file says so),
and what its tools build keeps their order (a flight
entry written by book_reservation or update_reservation_flights: flight_number, date, price, origin,
destination; a certificate: source, amount, id).
"""

from __future__ import annotations

import json
from typing import Any

from .parity import Rules, num
from .world import (
    Available,
    CreditCard,
    Database,
    Flight,
    FlightDate,
    Passenger,
    Payment,
    Reservation,
    ReservationFlight,
    User,
)

dumps = json.dumps  # default separators, as both versions


def passenger(p: Passenger) -> dict[str, Any]:
    return {"first_name": p.first_name, "last_name": p.last_name, "dob": p.dob}


def payment(p: Payment) -> dict[str, Any]:
    return {"payment_id": p.payment_id, "amount": num(p.amount)}


def segment(s: ReservationFlight, rules: Rules, tool_order: bool = False) -> dict[str, Any]:
    if not rules.v1:
        return {
            "flight_number": s.flight_number,
            "origin": s.origin,
            "destination": s.destination,
            "date": s.date,
            "price": num(s.price),
        }
    if tool_order:
        return {
            "flight_number": s.flight_number,
            "date": s.date,
            "price": num(s.price),
            "origin": s.origin,
            "destination": s.destination,
        }
    return {
        "origin": s.origin,
        "destination": s.destination,
        "flight_number": s.flight_number,
        "date": s.date,
        "price": num(s.price),
    }


def reservation(db: Database, r: Reservation, rules: Rules) -> dict[str, Any]:
    tool_order = r.reservation_id in db.tool_ordered
    out: dict[str, Any] = {
        "reservation_id": r.reservation_id, "user_id": r.user_id, "origin": r.origin, "destination": r.destination,
        "flight_type": r.flight_type, "cabin": r.cabin, "flights": [segment(s, rules, tool_order) for s in r.flights],
        "passengers": [passenger(p) for p in r.passengers], "payment_history": [payment(p) for p in r.payment_history],
        "created_at": r.created_at, "total_baggages": r.total_baggages, "nonfree_baggages": r.nonfree_baggages, "insurance": r.insurance,
    }  # fmt: skip
    if not rules.v1 or r.status is not None:
        out["status"] = r.status  # τ²: null while active; v1: written only by cancel_reservation
    return out


def payment_method(pm: Any, rules: Rules) -> dict[str, Any]:
    if isinstance(pm, CreditCard):
        if rules.v1:
            return {"source": pm.source, "brand": pm.brand, "last_four": pm.last_four, "id": pm.id}
        return {"source": pm.source, "id": pm.id, "brand": pm.brand, "last_four": pm.last_four}
    if rules.v1:
        return {"source": pm.source, "amount": num(pm.amount), "id": pm.id}
    return {"source": pm.source, "id": pm.id, "amount": float(pm.amount)}


def user(user_id: str, u: User, rules: Rules) -> dict[str, Any]:
    a = u.address
    # v1 dumps the record as its file holds it: "state" since τ-bench's January 2025 data ("province" in its first
    # commit's files, kept when a world was read that way); τ² always "state"
    address = {"address1": a.address1, "address2": a.address2, "city": a.city, "country": a.country,
               ("province" if rules.v1 and a._province else "state"): a.state, "zip": a.zip}  # fmt: skip
    out: dict[str, Any] = {} if rules.v1 else {"user_id": user_id}
    out.update(
        name={"first_name": u.name.first_name, "last_name": u.name.last_name}, address=address, email=u.email, dob=u.dob,
        payment_methods={k: payment_method(pm, rules) for k, pm in u.payment_methods.items()},
        saved_passengers=[passenger(p) for p in u.saved_passengers], membership=u.membership, reservations=list(u.reservations),
    )  # fmt: skip
    return out


def airports(world_airports: dict[str, str], rules: Rules) -> Any:
    """v1: {code: city}; τ²: [{"iata": code, "city": city}] (its AirportCode list)."""
    if rules.v1:
        return dict(world_airports)
    return [{"iata": code, "city": city} for code, city in world_airports.items()]


def search_result(f: Flight, fd: FlightDate, rules: Rules, date: str | None) -> dict[str, Any]:
    """One flight of a search on a date. v1: the flight's fields, then that date's record, then "date" (one-stop
    searches only: date None leaves it out); τ²: its DirectFlight model, "date" null on direct searches."""
    if rules.v1:
        out = {**f.header(), **fd.model_dump(mode="json")}
        if date is not None:
            out["date"] = date
        return out
    assert isinstance(fd, Available)
    return {"flight_number": f.flight_number, "origin": f.origin, "destination": f.destination, "status": fd.status,
            "scheduled_departure_time_est": f.scheduled_departure_time_est, "scheduled_arrival_time_est": f.scheduled_arrival_time_est,
            "date": date, "available_seats": fd.available_seats.model_dump(), "prices": {k: num(v) for k, v in fd.prices.model_dump().items()}}  # fmt: skip
