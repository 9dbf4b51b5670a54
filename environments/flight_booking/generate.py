"""Seeded generator of the shipped world and tasks: `python -m environments.flight_booking.generate --seed 0`.

World: τ-bench's 20 US airports, `n_flights` flight numbers flying daily through one month (May 2024), a
status per date consistent with the fixed clock (2024-05-15 15:00 EST: landed before it, flying / on time /
delayed around it, bookable after it, a few cancelled), `n_users` users with payment methods, saved
passengers and a membership, and `n_reservations` reservations whose fares, bags (free allowance by
membership) and payment histories follow the fare rules exactly. Reservations are drawn by archetype
(upcoming, flown, partly flown, with an airline-cancelled or a delayed flight, booked in the last 24 hours,
cancelled) so every task family finds candidates.

Output: data/world/{flights,users,reservations,meta}.json (τ-bench's layout, taubench_loader.py) and
data/tasks/{train,test}.jsonl plus manifest.json. The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
from collections import Counter
from pathlib import Path

from .policy import FREE_BAGS, booking_total
from .tasks import DATA_DIR, SPLITS, Task, render_tasks
from .tasks.generator import generate_tasks
from .taubench_loader import render_world
from .world import (
    AIRPORTS,
    CABINS,
    DEFAULT_CLOCK,
    Address,
    Available,
    CabinPrices,
    CabinSeats,
    Cancelled,
    Certificate,
    CreditCard,
    Delayed,
    Flight,
    Flying,
    GiftCard,
    Landed,
    Name,
    OnTime,
    Passenger,
    Payment,
    Reservation,
    ReservationFlight,
    User,
    World,
)  # fmt: skip

FIRST = ("Mia Liam Noah Emma Olivia Ava Lucas Mason Sophia Harper Ethan Amelia Raj Mei Chen Aarav Fatima Omar Yusuf Lei "
         "Ivan Anya Juan Sofia James Isabella Evelyn Daniel Yara Kenji Priya Mateo Nora Hana Samir Lucia Arjun Ines Tomas Zoe").split()  # fmt: skip
LAST = ("Li Smith Garcia Nguyen Kim Patel Johnson Brown Rossi Muller Lopez Ahmed Hernandez Taylor Davis Wilson Anderson "
        "Jackson Martin Moore Sanchez Khan Silva Santos Wang Kowalski Ito Novak Costa Berg").split()  # fmt: skip
STREETS = (
    "Elm Street",
    "Oak Avenue",
    "Pine Lane",
    "Cedar Street",
    "Sunset Drive",
    "Lakeview Drive",
    "Broadway",
    "Maple Road",
    "Hillside Avenue",
    "River Road",
)
CITIES = (("Austin", "TX", "787"), ("Dallas", "TX", "752"), ("Los Angeles", "CA", "900"), ("San Francisco", "CA", "941"), ("Denver", "CO", "802"),
          ("Chicago", "IL", "606"), ("New York", "NY", "100"), ("Seattle", "WA", "981"), ("Miami", "FL", "331"), ("Boston", "MA", "021"),
          ("Phoenix", "AZ", "850"), ("Philadelphia", "PA", "191"), ("Charlotte", "NC", "282"), ("Detroit", "MI", "482"))  # fmt: skip
ARCHETYPES = (
    ("future", 40),
    ("past", 12),
    ("partly_flown", 8),
    ("airline_cancelled", 10),
    ("delayed_today", 10),
    ("recent", 10),
    ("cancelled", 10),
)
PRICE_RANGE = {"basic_economy": (50, 100), "economy": (100, 200), "business": (200, 500)}


def _hhmmss(minutes: int) -> str:
    day, m = divmod(minutes, 1440)
    return f"{m // 60:02d}:{m % 60:02d}:00" + ("+1" if day else "")


def _km(a: str, b: str) -> float:
    (_, la1, lo1), (_, la2, lo2) = AIRPORTS[a], AIRPORTS[b]
    x = math.radians(lo2 - lo1) * math.cos(math.radians((la1 + la2) / 2))
    y = math.radians(la2 - la1)
    return 6371 * math.hypot(x, y)


def gen_flights(rng: random.Random, n: int, clock: dt.datetime, first: dt.date, days: int) -> dict[str, Flight]:
    codes = list(AIRPORTS)
    routes: list[tuple[str, str]] = []
    for a in codes:  # every airport gets departures, then random routes, most with a return route
        for b in rng.sample([c for c in codes if c != a], 3):
            routes.append((a, b))
    while len(routes) < n:
        a, b = rng.sample(codes, 2)
        routes.append((a, b))
        if len(routes) < n and rng.random() < 0.6:
            routes.append((b, a))
    rng.shuffle(routes)
    flights = {}
    for i, (a, b) in enumerate(routes[:n], 1):
        num = f"HAT{i:03d}"
        dep = rng.choice(range(5 * 60, 23 * 60 + 1, 30))
        dur = max(60, int(round((_km(a, b) / 750 + 0.5) * 2)) * 30)
        base = {c: rng.randint(*PRICE_RANGE[c]) for c in CABINS}
        dates = {}
        for k in range(days):
            day = first + dt.timedelta(days=k)
            d = day.isoformat()
            t_dep = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=dep)
            t_arr = t_dep + dt.timedelta(minutes=dur)
            jitter = dt.timedelta(minutes=rng.randint(-15, 40))
            iso = lambda t: t.isoformat(timespec="seconds")  # noqa: E731
            if t_arr <= clock:
                dates[d] = (
                    Cancelled()
                    if rng.random() < 0.04
                    else Landed(
                        actual_departure_time_est=iso(t_dep + jitter), actual_arrival_time_est=iso(t_arr + jitter)
                    )
                )
            elif t_dep <= clock:
                dates[d] = Flying(
                    actual_departure_time_est=iso(t_dep + jitter), estimated_arrival_time_est=iso(t_arr + jitter)
                )
            elif day == clock.date():
                u = rng.random()
                if u < 0.35:
                    delay = dt.timedelta(minutes=rng.randint(2, 10) * 30)
                    dates[d] = Delayed(
                        estimated_departure_time_est=iso(t_dep + delay), estimated_arrival_time_est=iso(t_arr + delay)
                    )
                elif u < 0.45:
                    dates[d] = Cancelled()
                else:
                    dates[d] = OnTime(estimated_departure_time_est=iso(t_dep), estimated_arrival_time_est=iso(t_arr))
            elif rng.random() < 0.03:
                dates[d] = Cancelled()
            else:
                seats = {c: (rng.randint(0, 3) if rng.random() < 0.1 else rng.randint(4, 20)) for c in CABINS}
                prices = {c: max(PRICE_RANGE[c][0], base[c] + rng.randint(-25, 25)) for c in CABINS}
                dates[d] = Available(available_seats=CabinSeats(**seats), prices=CabinPrices(**prices))
        flights[num] = Flight(flight_number=num, origin=a, destination=b, scheduled_departure_time_est=_hhmmss(dep),
                              scheduled_arrival_time_est=_hhmmss(dep + dur), dates=dates)  # fmt: skip
    return flights


def _dob(rng: random.Random, lo: int = 1950, hi: int = 2005) -> str:
    return f"{rng.randint(lo, hi)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def gen_users(rng: random.Random, n: int) -> dict[str, User]:
    users: dict[str, User] = {}
    used_pids: set[str] = set()

    def pid(kind: str) -> str:
        while True:
            p = f"{kind}_{rng.randint(1_000_000, 9_999_999)}"
            if p not in used_pids:
                used_pids.add(p)
                return p

    while len(users) < n:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        uid = f"{first}_{last}_{rng.randint(1000, 9999)}".lower()
        if uid in users:
            continue
        city, state, zip3 = rng.choice(CITIES)
        methods: list = []
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            methods.append(
                CreditCard(
                    id=pid("credit_card"),
                    brand=rng.choice(["visa", "mastercard"]),
                    last_four=f"{rng.randint(0, 9999):04d}",
                )
            )
        for _ in range(rng.choice([0, 0, 1, 1, 2]) + (0 if methods else 1)):
            methods.append(
                GiftCard(id=pid("gift_card"), amount=rng.choice([rng.randint(0, 300), rng.randint(300, 2000)]))
            )
        for _ in range(rng.choice([0, 0, 1, 2])):
            methods.append(Certificate(id=pid("certificate"), amount=rng.choice([100, 150, 250, 500])))
        rng.shuffle(methods)
        saved = [
            Passenger(first_name=rng.choice(FIRST), last_name=rng.choice(LAST), dob=_dob(rng))
            for _ in range(rng.choice([0, 1, 1, 2, 3]))
        ]
        users[uid] = User(
            name=Name(first_name=first, last_name=last),
            address=Address(address1=f"{rng.randint(100, 999)} {rng.choice(STREETS)}", address2=f"Suite {rng.randint(100, 999)}",
                            city=city, country="USA", state=state, zip=f"{zip3}{rng.randint(0, 99):02d}"),
            email=f"{first}.{last}{rng.randint(1000, 9999)}@example.com".lower(), dob=_dob(rng),
            payment_methods={m.id: m for m in methods}, saved_passengers=saved,
            membership=rng.choices(["regular", "silver", "gold"], [2, 1, 1])[0], reservations=[],
        )  # fmt: skip
    return users


class _Trips:
    """Builds itineraries (direct or one stop each way) from a chosen first flight and date."""

    def __init__(self, flights: dict[str, Flight]):
        self.flights = flights
        self.by_origin: dict[str, list[Flight]] = {}
        for f in flights.values():
            self.by_origin.setdefault(f.origin, []).append(f)

    @staticmethod
    def _mins(t: str) -> int:
        base, plus = (t[:-2], 1440) if t.endswith("+1") else (t, 0)
        h, m, _ = base.split(":")
        return int(h) * 60 + int(m) + plus

    def connect(
        self, rng: random.Random, f1: Flight, d1: str, avoid: set[str], dest: str | None = None
    ) -> tuple[Flight, str] | None:
        arrive = self._mins(f1.scheduled_arrival_time_est)
        d2 = (dt.date.fromisoformat(d1) + dt.timedelta(days=arrive // 1440)).isoformat()
        opts = [f for f in self.by_origin.get(f1.destination, []) if f.destination not in avoid and (dest is None or f.destination == dest)
                and self._mins(f.scheduled_departure_time_est) >= arrive % 1440 + 60 and d2 in f.dates]  # fmt: skip
        return (rng.choice(opts), d2) if opts else None

    def build(
        self, rng: random.Random, f1: Flight, d1: str, round_trip: bool, onestop: bool
    ) -> list[tuple[Flight, str]] | None:
        segs = [(f1, d1)]
        origin = f1.origin
        if onestop:
            nxt = self.connect(rng, f1, d1, {origin, f1.destination})
            if nxt is None:
                return None
            segs.append(nxt)
        dest = segs[-1][0].destination
        if round_trip:
            back_day = dt.date.fromisoformat(segs[-1][1]) + dt.timedelta(days=rng.randint(1, 7))
            r = back_day.isoformat()
            direct = [f for f in self.by_origin.get(dest, []) if f.destination == origin and r in f.dates]
            if direct:
                segs.append((rng.choice(direct), r))
            else:
                hops = [f for f in self.by_origin.get(dest, []) if f.destination not in (origin, dest) and r in f.dates]
                rng.shuffle(hops)
                for h in hops:
                    nxt = self.connect(rng, h, r, {dest}, dest=origin)
                    if nxt is not None:
                        segs += [(h, r), nxt]
                        break
                else:
                    return None
        return segs


def _archetype_ok(kind: str, statuses: list[str], dates: list[str], today: str, round_trip: bool, n_out: int) -> bool:
    flown = {"landed", "flying"}
    if kind in ("future", "recent", "cancelled"):
        return all(s == "available" for s in statuses)
    if kind == "past":
        return all(s == "landed" for s in statuses)
    if kind == "partly_flown":
        return (
            round_trip
            and all(s == "landed" for s in statuses[:n_out])
            and all(s == "available" for s in statuses[n_out:])
        )
    if kind == "airline_cancelled":
        return "cancelled" in statuses and not any(s in flown for s in statuses)
    if kind == "delayed_today":
        return (
            statuses[0] == "delayed"
            and dates[0] == today
            and all(s in ("available", "on time", "delayed") for s in statuses)
        )
    raise ValueError(kind)


def gen_reservations(
    rng: random.Random, flights: dict[str, Flight], users: dict[str, User], n: int, clock: dt.datetime
) -> dict[str, Reservation]:
    trips = _Trips(flights)
    today = clock.date().isoformat()
    all_days = sorted({d for f in flights.values() for d in f.dates})
    by_status: dict[str, list[tuple[Flight, str]]] = {}
    for f in flights.values():
        for d, fd in f.dates.items():
            by_status.setdefault(fd.status, []).append((f, d))
    uids = sorted(users)
    out: dict[str, Reservation] = {}
    kinds = [k for k, w in ARCHETYPES for _ in range(w)]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    while len(out) < n:
        kind = rng.choice(kinds)
        round_trip = kind == "partly_flown" or rng.random() < 0.45
        onestop = rng.random() < 0.3
        if kind == "airline_cancelled":
            f1, d1 = rng.choice(
                [x for x in by_status["cancelled"] if x[1] >= (clock.date() - dt.timedelta(days=2)).isoformat()]
            )
        elif kind == "delayed_today":
            f1, d1 = rng.choice([x for x in by_status["delayed"] if x[1] == today])
        else:
            f1 = rng.choice(list(flights.values()))
            lo, hi = {"past": (0, 10), "partly_flown": (5, 12)}.get(kind, (15, len(all_days) - 3))
            d1 = all_days[rng.randint(lo, hi)]
        segs = trips.build(rng, f1, d1, round_trip, onestop)
        if segs is None:
            continue
        statuses = [f.dates[d].status if d in f.dates else "missing" for f, d in segs]
        n_out = 2 if onestop else 1
        if "missing" in statuses or not _archetype_ok(kind, statuses, [d for _, d in segs], today, round_trip, n_out):
            continue
        uid = rng.choice(uids)
        u = users[uid]
        cabin = rng.choices(CABINS, [3, 4, 3])[0]
        n_pax = rng.choices([1, 2, 3, 4], [5, 3, 2, 1])[0]
        pax = (
            [Passenger(first_name=u.name.first_name, last_name=u.name.last_name, dob=u.dob)]
            if rng.random() < 0.7
            else []
        ) + list(u.saved_passengers)
        while len(pax) < n_pax:
            pax.append(Passenger(first_name=rng.choice(FIRST), last_name=rng.choice(LAST), dob=_dob(rng)))
        pax = pax[:n_pax]
        segments = []
        for f, d in segs:
            fd = f.dates[d]
            price = getattr(fd.prices, cabin) if isinstance(fd, Available) else rng.randint(*PRICE_RANGE[cabin])
            segments.append(
                ReservationFlight(
                    origin=f.origin, destination=f.destination, flight_number=f.flight_number, date=d, price=price
                )
            )
        total_bags = rng.randint(0, 2 * n_pax)
        nonfree = max(0, total_bags - FREE_BAGS[u.membership][cabin] * n_pax)
        insurance = rng.random() < 0.35
        total = booking_total([s.price for s in segments], n_pax, insurance, nonfree)
        methods = [p for p, m in u.payment_methods.items() if m.source in ("credit_card", "gift_card")]
        if not methods:
            continue
        first_dep = dt.datetime.fromisoformat(segs[0][1])
        if kind == "recent":
            created = clock - dt.timedelta(minutes=rng.randint(60, 23 * 60))
        else:
            latest = min(first_dep - dt.timedelta(hours=6), clock - dt.timedelta(hours=26))
            created = latest - dt.timedelta(minutes=rng.randint(0, 14 * 24 * 60))
        rid = "".join(rng.choice(alphabet) for _ in range(6))
        if rid in out:
            continue
        pay = rng.choice(methods)
        history = [Payment(payment_id=pay, amount=total)]
        status = None
        if kind == "cancelled":
            history.append(Payment(payment_id=pay, amount=-total))
            status = "cancelled"
        out[rid] = Reservation(
            reservation_id=rid, user_id=uid, origin=segs[0][0].origin,
            destination=segs[n_out - 1][0].destination,
            flight_type="round_trip" if round_trip else "one_way", cabin=cabin, flights=segments, passengers=pax,
            payment_history=history, created_at=created.isoformat(timespec="seconds"), total_baggages=total_bags,
            nonfree_baggages=nonfree, insurance="yes" if insurance else "no", status=status,
        )  # fmt: skip
        u.reservations.append(rid)
    return out


def generate_world(seed: int = 0, *, n_flights: int = 200, n_users: int = 300, n_reservations: int = 700,
                   clock: dt.datetime = DEFAULT_CLOCK, first_day: dt.date = dt.date(2024, 5, 1), days: int = 30) -> World:  # fmt: skip
    rng = random.Random(seed)
    flights = gen_flights(rng, n_flights, clock, first_day, days)
    users = gen_users(rng, n_users)
    reservations = gen_reservations(rng, flights, users, n_reservations, clock)
    return World(
        flights,
        users,
        reservations,
        clock=clock,
        airports={c: AIRPORTS[c][0] for c in AIRPORTS},
        name=f"agentrl-airline-seed{seed}",
    )


def render_files(world: World, tasks: list[Task], seed: int) -> dict[str, str]:
    """Relative path -> exact file text (what `main` writes, and what the tests compare against)."""
    files = {
        f"world/{k}": v
        for k, v in render_world(
            world, {"generator": "python -m environments.flight_booking.generate", "seed": seed}
        ).items()
    }
    for s in SPLITS:
        files[f"tasks/{s}.jsonl"] = render_tasks([t for t in tasks if t.split == s])
    manifest = {
        "generator": "python -m environments.flight_booking.generate", "seed": seed, "world": world.name, "world_hash": world.hash(),
        "counts": {"flights": len(world.flights), "users": len(world.users), "reservations": len(world.reservations),
                   **{s: dict(sorted(Counter(t.family for t in tasks if t.split == s).items())) for s in SPLITS}},
    }  # fmt: skip
    files["tasks/manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    return files


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DATA_DIR)
    args = ap.parse_args(argv)
    world = generate_world(args.seed)
    tasks = generate_tasks(world, args.seed, strict=True)
    for rel, text in render_files(world, tasks, args.seed).items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(
        f"wrote {world!r} and {sum(t.split == 'train' for t in tasks)} train + {sum(t.split == 'test' for t in tasks)} test tasks to {args.out}"
    )


if __name__ == "__main__":
    main()
