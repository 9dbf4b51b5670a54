"""Database invariants that no sequence of tool calls may break (the fuzz tests check them after every call):

  * no negative seats, gift-card or certificate balances;
  * every reservation's user and flights exist, each flight on that date, and the user lists it;
  * every reservation's payment history sums to at least what it is charged under the fare rules
    (flights x passengers + insurance + non-free bags; more only when bags were removed, which, as in
    τ-bench, is not refunded), or to 0 once cancelled (fully refunded);
  * bags are consistent (0 <= non-free <= total) and there is at least one passenger.

The policy's limits (at most 5 passengers, bags not removed, ...) are not invariants: the tools perform what
the policy forbids, and policy_rules.py reports it.

`check(db)` returns the violations as messages (empty = all hold). By default it checks only what the
episode changed (the overlay): the world itself is checked once, with `whole=True`.
"""

from __future__ import annotations

from .world import Available, Certificate, Database, GiftCard, Reservation, User, money


def _check_user(db: Database, uid: str, u: User, out: list[str]) -> None:
    for pid, pm in u.payment_methods.items():
        if isinstance(pm, (GiftCard, Certificate)) and pm.amount < 0:
            out.append(f"user {uid}: {pid} has a negative balance {pm.amount}")
    for rid in u.reservations:
        r = db.reservation(rid)
        if r is None:
            out.append(f"user {uid} lists unknown reservation {rid}")
        elif r.user_id != uid:
            out.append(f"user {uid} lists reservation {rid} of user {r.user_id}")


def _check_reservation(db: Database, rid: str, r: Reservation, out: list[str]) -> None:
    u = db.user(r.user_id)
    if u is None:
        out.append(f"reservation {rid}: unknown user {r.user_id}")
    elif rid not in u.reservations:
        out.append(f"reservation {rid}: its user {r.user_id} does not list it")
    for s in r.flights:
        if db.flight(s.flight_number) is None or db.flight_date(s.flight_number, s.date) is None:
            out.append(f"reservation {rid}: flight {s.flight_number} on {s.date} does not exist")
    expected = 0.0 if r.status == "cancelled" else r.charged()
    short = money(r.paid() - expected)
    if short < 0 or (r.status == "cancelled" and short != 0):
        out.append(f"reservation {rid}: payments sum to {r.paid()}, but it was charged {expected}")
    if not 0 <= r.nonfree_baggages <= r.total_baggages:
        out.append(f"reservation {rid}: {r.nonfree_baggages} non-free of {r.total_baggages} bags")
    if not r.passengers:
        out.append(f"reservation {rid}: {len(r.passengers)} passengers")


def check(db: Database, *, whole: bool = False) -> list[str]:
    out: list[str] = []
    w = db.world
    users = w.users.keys() | db.users.keys() if whole else db.users.keys()
    for uid in sorted(users):
        _check_user(db, uid, db.user(uid), out)  # type: ignore[arg-type]
    reservations = w.reservations.keys() | db.reservations.keys() if whole else db.reservations.keys()
    for rid in sorted(reservations):
        _check_reservation(db, rid, db.reservation(rid), out)  # type: ignore[arg-type]
    keys = [(n, d) for n, f in w.flights.items() for d in f.dates] if whole else list(db.flight_dates)
    for n, d in keys:
        fd = db.flight_date(n, d)
        if (
            isinstance(fd, Available)
            and min(fd.available_seats.basic_economy, fd.available_seats.economy, fd.available_seats.business) < 0
        ):
            out.append(f"flight {n} on {d}: negative seats {fd.available_seats.model_dump()}")
    return out
