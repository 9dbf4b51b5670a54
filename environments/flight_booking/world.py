"""The airline's data: typed records (τ-bench airline field names), the read-only `World`, and the
per-episode copy-on-write `Database` the tools act on.

Layout follows τ-bench's airline domain (Sierra, 2024) so its JSON files load unchanged
(taubench_loader.py): users, flights (with a status per date) and reservations, each keyed by id.

Why copy-on-write: a world holds ~10,000 records, and TRePO snapshots an episode at every turn. An
episode's `Database` keeps only the records it changed (an overlay over the shared, never-mutated
`World`), so a snapshot deep-copies a handful of records instead of the whole world.

Why an additive hash: the reward compares the agent's final database with the gold one by a canonical
hash of the *whole* database. The hash is the sum (mod 2**256) of one SHA-256 per record, so it does not
depend on record order, and a database's hash is the world's (computed once) plus the change of the few
records its overlay holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import AfterValidator, Field, PlainSerializer

CABINS = ("basic_economy", "economy", "business")
Cabin = Literal["basic_economy", "economy", "business"]
Membership = Literal["regular", "silver", "gold"]
FlightType = Literal["one_way", "round_trip"]
YesNo = Literal["yes", "no"]

# τ-bench's fixed clock: the policy, the statuses and the 24-hour cancellation rule are all relative to it.
DEFAULT_CLOCK = dt.datetime(2024, 5, 15, 15, 0, 0)

# τ-bench's airports (list_all_airports), with rough coordinates for flight durations in the generator.
AIRPORTS: dict[str, tuple[str, float, float]] = {
    "SFO": ("San Francisco", 37.6, -122.4), "JFK": ("New York", 40.6, -73.8), "LAX": ("Los Angeles", 33.9, -118.4),
    "ORD": ("Chicago", 41.9, -87.9), "DFW": ("Dallas", 32.9, -97.0), "DEN": ("Denver", 39.9, -104.7),
    "SEA": ("Seattle", 47.4, -122.3), "ATL": ("Atlanta", 33.6, -84.4), "MIA": ("Miami", 25.8, -80.3),
    "BOS": ("Boston", 42.4, -71.0), "PHX": ("Phoenix", 33.4, -112.0), "IAH": ("Houston", 30.0, -95.3),
    "LAS": ("Las Vegas", 36.1, -115.2), "MCO": ("Orlando", 28.4, -81.3), "EWR": ("Newark", 40.7, -74.2),
    "CLT": ("Charlotte", 35.2, -80.9), "MSP": ("Minneapolis", 44.9, -93.2), "DTW": ("Detroit", 42.2, -83.4),
    "PHL": ("Philadelphia", 39.9, -75.2), "LGA": ("LaGuardia", 40.8, -73.9),
}  # fmt: skip


def money(x: float) -> float:
    """Dollars rounded to cents: sums of prices, fees and refunds must compare exactly."""
    return round(float(x) + 0.0, 2)


def _money_json(v: float) -> int | float:
    return int(v) if v == int(v) else v  # 100.0 is written 100, as in τ-bench's files


def _positive(v: float) -> float:
    if v < 0.01:
        raise ValueError(f"a cabin price must be a positive number of dollars (at least 0.01), got {v:g}")
    return v


# Money is a float in cents precision; JSON shows whole dollars as ints (canonical, so hashes agree). Finite and
# within a billion dollars (NaN, Infinity or 1e308 would break sums and the JSON); a cabin price is positive
# (a negative or zero fare would make the generator's gold bookings pay a negative or zero amount).
MAX_MONEY = 1_000_000_000
_MONEY_JSON = PlainSerializer(_money_json, return_type=Union[int, float])  # noqa: UP007 (a runtime value)
Money = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MONEY, le=MAX_MONEY), AfterValidator(money), _MONEY_JSON]
Balance = Annotated[float, Field(allow_inf_nan=False, ge=0, le=MAX_MONEY), AfterValidator(money), _MONEY_JSON]
Price = Annotated[
    float, Field(allow_inf_nan=False, le=MAX_MONEY), AfterValidator(money), AfterValidator(_positive), _MONEY_JSON
]
Count = Annotated[int, Field(ge=0)]


def _check_date(v: str) -> str:
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        raise ValueError(f"{v!r} is not a date in the form YYYY-MM-DD (e.g. '2024-05-20')") from None
    if len(v) != 10:
        raise ValueError(f"{v!r} is not a date in the form YYYY-MM-DD (e.g. '2024-05-20')")
    return v


DateStr = Annotated[str, AfterValidator(_check_date)]


# Serialization context for writing a record back as it was read (taubench_loader.save_taubench, copy_record):
# optional fields the source file left out stay out, explicit nulls stay null, and an address keeps the key
# spelling of its source (τ-bench writes "province", τ²-bench "state").
AS_READ = {"as_read": True}


class Record(pydantic.BaseModel):
    # extra="forbid": a misspelled field in a world file is an error naming it, never silently dropped
    model_config = pydantic.ConfigDict(extra="forbid")

    @pydantic.model_serializer(mode="wrap")
    def _serialize(self, handler: pydantic.SerializerFunctionWrapHandler, info: pydantic.SerializationInfo) -> Any:
        data = handler(self)
        if info.context and info.context.get("as_read") and isinstance(data, dict):
            for k in [k for k, v in data.items() if v is None and k not in self.model_fields_set]:
                del data[k]
        return data


# ---- users ---------------------------------------------------------------------------------------------


class Name(Record):
    first_name: str
    last_name: str


class Address(Record):
    address1: str
    address2: str | None = ""  # τ²-bench: optional
    city: str
    country: str
    # τ²-bench's name; τ-bench's files say "province", read as `state` and written back as read (AS_READ)
    state: str = Field(validation_alias=pydantic.AliasChoices("state", "province"))
    zip: str
    _province: bool = pydantic.PrivateAttr(default=False)

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _spelling(cls, data: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Address:
        obj = handler(data)
        obj._province = isinstance(data, dict) and "province" in data
        return obj

    @pydantic.model_serializer(mode="wrap")
    def _serialize(self, handler: pydantic.SerializerFunctionWrapHandler, info: pydantic.SerializationInfo) -> Any:
        data = Record._serialize(self, handler, info)
        if self._province and info.context and info.context.get("as_read") and "state" in data:
            data = {("province" if k == "state" else k): v for k, v in data.items()}
        return data


class CreditCard(Record):
    source: Literal["credit_card"] = "credit_card"
    id: str
    brand: str
    last_four: str


class GiftCard(Record):
    source: Literal["gift_card"] = "gift_card"
    id: str
    amount: Balance


class Certificate(Record):
    source: Literal["certificate"] = "certificate"
    id: str
    amount: Balance


PaymentMethod = Annotated[CreditCard | GiftCard | Certificate, Field(discriminator="source")]


class Passenger(Record):
    first_name: str = Field(min_length=1, max_length=60)
    last_name: str = Field(min_length=1, max_length=60)
    dob: DateStr


class User(Record):
    user_id: str | None = None  # τ²-bench writes the key again here; τ-bench does not
    name: Name
    address: Address
    email: str
    dob: DateStr
    payment_methods: dict[str, PaymentMethod]
    saved_passengers: list[Passenger] = []
    membership: Membership
    reservations: list[str] = []

    @pydantic.model_validator(mode="after")
    def _ids_match_keys(self) -> User:
        for key, pm in self.payment_methods.items():
            if pm.id != key:
                raise ValueError(f"payment method key {key!r} differs from its id {pm.id!r}")
        return self


# ---- flights -------------------------------------------------------------------------------------------


class CabinSeats(Record):
    basic_economy: Count
    economy: Count
    business: Count


class CabinPrices(Record):
    basic_economy: Price
    economy: Price
    business: Price


class Available(Record):
    """Not departed and bookable: seats left and today's price per cabin."""

    status: Literal["available"] = "available"
    available_seats: CabinSeats
    prices: CabinPrices


class Landed(Record):
    status: Literal["landed"] = "landed"
    actual_departure_time_est: str
    actual_arrival_time_est: str


class Cancelled(Record):
    status: Literal["cancelled"] = "cancelled"


class Delayed(Record):
    status: Literal["delayed"] = "delayed"
    estimated_departure_time_est: str
    estimated_arrival_time_est: str


class OnTime(Record):
    status: Literal["on time"] = "on time"
    estimated_departure_time_est: str
    estimated_arrival_time_est: str


class Flying(Record):
    status: Literal["flying"] = "flying"
    actual_departure_time_est: str
    estimated_arrival_time_est: str


FlightDate = Annotated[Available | Landed | Cancelled | Delayed | OnTime | Flying, Field(discriminator="status")]
FLIGHT_STATUSES = ("available", "landed", "cancelled", "delayed", "on time", "flying")


class Flight(Record):
    flight_number: str
    origin: str
    destination: str
    scheduled_departure_time_est: str  # "HH:MM:SS"
    scheduled_arrival_time_est: str  # "HH:MM:SS", with "+1" when it lands the next day
    dates: dict[str, FlightDate]

    def header(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if k != "dates"}


# ---- reservations --------------------------------------------------------------------------------------


class ReservationFlight(Record):
    origin: str
    destination: str
    flight_number: str
    date: DateStr
    price: Balance  # per passenger, fixed when the segment was booked


class Payment(Record):
    payment_id: str
    amount: Money  # negative for refunds


class Reservation(Record):
    reservation_id: str
    user_id: str
    origin: str
    destination: str
    flight_type: FlightType
    cabin: Cabin
    flights: list[ReservationFlight]
    passengers: list[Passenger]
    payment_history: list[Payment]
    created_at: str  # "YYYY-MM-DDTHH:MM:SS"
    total_baggages: Count
    nonfree_baggages: Count
    insurance: YesNo
    # τ-bench writes "status" only on cancelled reservations; absent means active
    status: Literal["cancelled"] | None = None

    def charged(self) -> float:
        """What the reservation costs under the fare rules (τ-bench book_reservation): flights x passengers,
        $30 insurance per passenger, $50 per non-free bag."""
        n = len(self.passengers)
        total = (
            sum(f.price for f in self.flights) * n
            + (30 * n if self.insurance == "yes" else 0)
            + 50 * self.nonfree_baggages
        )
        return money(total)

    def paid(self) -> float:
        return money(sum(p.amount for p in self.payment_history))


# ---- canonical hashing ---------------------------------------------------------------------------------

_MOD = 2**256


def canonical_json(obj: pydantic.BaseModel | dict[str, Any]) -> str:
    data = obj.model_dump(mode="json", exclude_none=True) if isinstance(obj, pydantic.BaseModel) else obj
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_digest(kind: str, key: str, obj: pydantic.BaseModel | dict[str, Any]) -> int:
    h = hashlib.sha256(f"{kind}\x1f{key}\x1f{canonical_json(obj)}".encode())
    return int.from_bytes(h.digest(), "big")


# ---- the world -------------------------------------------------------------------------------------------


class World:
    """A complete airline database, read-only once built. Episodes never change it: they change a
    `Database` overlay. Shared by every episode and snapshot (`__deepcopy__` returns self)."""

    def __init__(
        self,
        flights: dict[str, Flight],
        users: dict[str, User],
        reservations: dict[str, Reservation],
        *,
        clock: dt.datetime = DEFAULT_CLOCK,
        airports: dict[str, str] | None = None,
        name: str = "world",
    ):
        self.flights = flights
        self.users = users
        self.reservations = reservations
        self.clock = clock
        self.name = name
        used = {c for f in flights.values() for c in (f.origin, f.destination)}
        # τ-bench's order (both versions' list_all_airports list them so), then codes it does not know, sorted
        known = [c for c in AIRPORTS if c in used] + sorted(used - set(AIRPORTS))
        self.airports = dict(airports) if airports else {c: AIRPORTS[c][0] if c in AIRPORTS else c for c in known}
        self.by_origin: dict[str, list[Flight]] = {}
        for f in flights.values():
            self.by_origin.setdefault(f.origin, []).append(f)
        self.memo: dict[Any, Any] = {}  # values derived from this world (e.g. gold hashes), computed once
        self._digests: dict[tuple[str, str], int] | None = None
        self._base_sum: int | None = None
        self._check_references()

    def __deepcopy__(self, memo: dict[int, Any]) -> World:
        return self

    def __repr__(self) -> str:
        return f"World({self.name!r}: {len(self.flights)} flights, {len(self.users)} users, {len(self.reservations)} reservations)"

    def _check_references(self) -> None:
        """A world whose reservations point at missing users or flights is unusable: say which."""
        for rid, r in self.reservations.items():
            if r.reservation_id != rid:
                raise ValueError(f"reservation key {rid!r} differs from its reservation_id {r.reservation_id!r}")
            if r.user_id not in self.users:
                raise ValueError(f"reservation {rid} belongs to unknown user {r.user_id!r}")
            for seg in r.flights:
                if seg.flight_number not in self.flights:
                    raise ValueError(f"reservation {rid} uses unknown flight {seg.flight_number!r}")
        for uid, u in self.users.items():
            if u.user_id not in (None, uid):
                raise ValueError(f"user key {uid!r} differs from its user_id {u.user_id!r}")
        for fid, f in self.flights.items():
            if f.flight_number != fid:
                raise ValueError(f"flight key {fid!r} differs from its flight_number {f.flight_number!r}")
        for uid, u in self.users.items():
            for rid in u.reservations:
                if rid not in self.reservations:
                    raise ValueError(f"user {uid} lists unknown reservation {rid!r}")

    @property
    def clock_str(self) -> str:
        return self.clock.isoformat(timespec="seconds")

    # --- hashing (see module docstring) ---
    def entries(self) -> Iterator[tuple[str, str, pydantic.BaseModel | dict[str, Any]]]:
        for k, u in self.users.items():
            yield "user", k, u
        for k, r in self.reservations.items():
            yield "reservation", k, r
        for k, f in self.flights.items():
            yield "flight", k, f.header()
            for d, fd in f.dates.items():
                yield "flight_date", f"{k}/{d}", fd

    def base_digest(self, kind: str, key: str) -> int:
        self._ensure_digests()
        return self._digests.get((kind, key), 0)  # type: ignore[union-attr]

    def base_sum(self) -> int:
        self._ensure_digests()
        return self._base_sum  # type: ignore[return-value]

    def _ensure_digests(self) -> None:
        if self._digests is None:
            digests = {(kind, key): record_digest(kind, key, obj) for kind, key, obj in self.entries()}
            self._base_sum = sum(digests.values()) % _MOD
            self._digests = digests

    def hash(self) -> str:
        return f"{self.base_sum():064x}"


# ---- the episode's database --------------------------------------------------------------------------------


def copy_record(rec: Any) -> Any:
    """A deep copy of a record: dump + validate is ~2.5x faster than pydantic's deepcopy, and copy-on-write
    and snapshots copy records on every write and every branch."""
    return type(rec).model_validate(rec.model_dump(context=AS_READ))


class Database:
    """One episode's view of a World: reads fall through to the world, writes copy the record into the
    overlay first. Tools must write only to records obtained from the `*_for_update` methods."""

    def __init__(self, world: World):
        self.world = world
        self.users: dict[str, User] = {}
        self.reservations: dict[str, Reservation] = {}
        self.flight_dates: dict[tuple[str, str], FlightDate] = {}
        # reservations whose flight entries a τ-bench v1 tool wrote: v1 shows those in its tools' key order (views.py)
        self.tool_ordered: set[str] = set()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Database):
            return NotImplemented
        return (self.world is other.world and self.users == other.users and self.reservations == other.reservations
                and self.flight_dates == other.flight_dates and self.tool_ordered == other.tool_ordered)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Database:
        new = Database.__new__(Database)
        new.world = self.world  # shared, read-only
        new.users = {k: copy_record(v) for k, v in self.users.items()}
        new.reservations = {k: copy_record(v) for k, v in self.reservations.items()}
        new.flight_dates = {k: copy_record(v) for k, v in self.flight_dates.items()}
        new.tool_ordered = set(self.tool_ordered)
        memo[id(self)] = new
        return new

    def __repr__(self) -> str:
        return f"Database(over {self.world!r}; changed: {len(self.users)} users, {len(self.reservations)} reservations, {len(self.flight_dates)} flight dates)"

    # --- reads: never mutate what these return ---
    def user(self, user_id: str) -> User | None:
        u = self.users.get(user_id)
        return u if u is not None else self.world.users.get(user_id)

    def reservation(self, reservation_id: str) -> Reservation | None:
        r = self.reservations.get(reservation_id)
        return r if r is not None else self.world.reservations.get(reservation_id)

    def flight(self, flight_number: str) -> Flight | None:
        return self.world.flights.get(flight_number)  # schedules never change; per-date data: flight_date()

    def flight_date(self, flight_number: str, date: str) -> FlightDate | None:
        fd = self.flight_dates.get((flight_number, date))
        if fd is not None:
            return fd
        f = self.world.flights.get(flight_number)
        return None if f is None else f.dates.get(date)

    def has_reservation_id(self, reservation_id: str) -> bool:
        return reservation_id in self.reservations or reservation_id in self.world.reservations

    def all_reservation_ids(self) -> set[str]:
        return set(self.world.reservations) | set(self.reservations)

    def all_user_ids(self) -> set[str]:
        return set(self.world.users) | set(self.users)

    # --- writes ---
    def user_for_update(self, user_id: str) -> User:
        u = self.users.get(user_id)
        if u is None:
            u = copy_record(self.world.users[user_id])
            self.users[user_id] = u
        return u

    def reservation_for_update(self, reservation_id: str) -> Reservation:
        r = self.reservations.get(reservation_id)
        if r is None:
            r = copy_record(self.world.reservations[reservation_id])
            self.reservations[reservation_id] = r
        return r

    def flight_date_for_update(self, flight_number: str, date: str) -> FlightDate:
        key = (flight_number, date)
        fd = self.flight_dates.get(key)
        if fd is None:
            fd = copy_record(self.world.flights[flight_number].dates[date])
            self.flight_dates[key] = fd
        return fd

    def add_reservation(self, reservation: Reservation) -> None:
        if self.has_reservation_id(reservation.reservation_id):
            raise ValueError(f"reservation id {reservation.reservation_id} already exists")
        self.reservations[reservation.reservation_id] = reservation

    # --- the canonical hash of the whole database (module docstring) ---
    def hash(self) -> str:
        w = self.world
        total = w.base_sum()
        for kind, table in (("user", self.users), ("reservation", self.reservations)):
            for key, obj in table.items():
                total += record_digest(kind, key, obj) - w.base_digest(kind, key)
        for (num, date), fd in self.flight_dates.items():
            key = f"{num}/{date}"
            total += record_digest("flight_date", key, fd) - w.base_digest("flight_date", key)
        return f"{total % _MOD:064x}"

    def materialize(self) -> World:
        """The merged database as a new World (for export and whole-database checks; not for hot paths)."""
        flights = {}
        for num, f in self.world.flights.items():
            dates = {d: self.flight_dates.get((num, d), fd) for d, fd in f.dates.items()}
            flights[num] = f.model_copy(update={"dates": dates})
        users = {**self.world.users, **self.users}
        reservations = {**self.world.reservations, **self.reservations}
        return World(
            flights,
            users,
            reservations,
            clock=self.world.clock,
            airports=self.world.airports,
            name=self.world.name + "+episode",
        )
