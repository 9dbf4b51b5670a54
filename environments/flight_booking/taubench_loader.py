"""Reading and writing worlds in τ-bench's airline JSON layout.

A world is a directory with three files, each one JSON object keyed by id, with τ-bench's field names:
    flights.json        {"HAT001": {"flight_number", "origin", "destination", "scheduled_departure_time_est",
                                    "scheduled_arrival_time_est", "dates": {"2024-05-01": {"status": ...}}}}
    users.json          {"mia_li_3668": {["user_id"], "name", "address": {"address1", "address2", "city", "country",
                                         "state" (τ²-bench) or "province" (τ-bench), "zip"}, "email", "dob",
                                         "payment_methods", "saved_passengers", "membership", "reservations"}}
    reservations.json   {"NO6JO3": {"reservation_id", "user_id", "origin", "destination", "flight_type", "cabin",
                                    "flights", "passengers", "payment_history", "created_at", "total_baggages",
                                    "nonfree_baggages", "insurance", ["status": "cancelled"]}}
plus, optionally, meta.json ({"clock": "2024-05-15T15:00:00", "airports": {code: city}, "name": ...}), which
τ-bench does not have: without it the clock is inferred (15:00 on the last date on which any flight has
taken off or is about to: statuses landed / flying / delayed / on time), as in τ-bench's own data.

The shipped default world (data/world/) is written in this layout by generate.py, so one loader serves both.
save_taubench writes a loaded world back as read: json.load of each file equals json.load of its source.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pydantic

from .world import AS_READ, Flight, Reservation, User, World, canonical_json

WORLD_FILES = ("flights.json", "users.json", "reservations.json")
DEFAULT_WORLD_DIR = Path(__file__).parent / "data" / "world"

_ADAPTERS = {
    "flights.json": pydantic.TypeAdapter(dict[str, Flight]),
    "users.json": pydantic.TypeAdapter(dict[str, User]),
    "reservations.json": pydantic.TypeAdapter(dict[str, Reservation]),
}


class WorldFormatError(ValueError):
    """A world directory that is not in τ-bench's airline layout; the message names the file and field."""


def _read(path: Path, name: str) -> Any:
    file = path / name
    if not file.is_file():
        present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        raise WorldFormatError(f"{file} is missing; a τ-bench airline world needs {', '.join(WORLD_FILES)} (found: {present or 'nothing'})")
    try:
        text = file.read_text(encoding="utf-8")
        return _ADAPTERS[name].validate_json(text)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
        raise WorldFormatError(f"{file}: at {loc}: {first['msg']}{more}") from None


def infer_clock(flights: dict[str, Flight]) -> dt.datetime:
    started = [d for f in flights.values() for d, fd in f.dates.items() if fd.status in ("landed", "flying", "delayed", "on time")]
    if not started:
        raise WorldFormatError("cannot infer the clock: no flight date is landed, flying, delayed or on time; write meta.json with a 'clock'")
    day = dt.date.fromisoformat(max(started))
    return dt.datetime(day.year, day.month, day.day, 15, 0, 0)


def load_world(path: str | Path, *, clock: dt.datetime | None = None) -> World:
    """Load a world directory in τ-bench's layout (module docstring). Raises WorldFormatError naming the
    file and the first bad field."""
    path = Path(path)
    if not path.is_dir():
        raise WorldFormatError(f"{path} is not a directory; pass a directory holding {', '.join(WORLD_FILES)}")
    flights, users, reservations = (_read(path, n) for n in WORLD_FILES)
    meta: dict[str, Any] = {}
    if (path / "meta.json").is_file():
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        unknown = set(meta) - {"clock", "airports", "name", "generator", "seed"}
        if unknown:
            raise WorldFormatError(f"{path / 'meta.json'}: unknown keys {sorted(unknown)} (allowed: clock, airports, name, generator, seed)")
    if clock is None:
        clock = dt.datetime.fromisoformat(meta["clock"]) if "clock" in meta else infer_clock(flights)
    try:
        return World(flights, users, reservations, clock=clock, airports=meta.get("airports"), name=meta.get("name", path.name))
    except ValueError as exc:
        raise WorldFormatError(f"{path}: {exc}") from None


@lru_cache(maxsize=4)
def _cached(path: str) -> World:
    return load_world(path)


def default_world() -> World:
    """The shipped world (data/world/), loaded once per process and shared read-only."""
    return _cached(str(DEFAULT_WORLD_DIR))


def cached_world(path: str | Path) -> World:
    return _cached(str(Path(path).resolve()))


def render_world(world: World, meta: dict[str, Any] | None = None) -> dict[str, str]:
    """File name -> file text in τ-bench's layout (one record per line: diffs stay readable)."""

    def table(records: dict[str, pydantic.BaseModel]) -> str:
        lines = [f"  {json.dumps(k)}: {canonical_json(v)}" for k, v in records.items()]
        return "{\n" + ",\n".join(lines) + "\n}\n"

    files = {"flights.json": table(world.flights), "users.json": table(world.users), "reservations.json": table(world.reservations)}
    files["meta.json"] = json.dumps({"clock": world.clock_str, "airports": world.airports, "name": world.name, **(meta or {})}, indent=2) + "\n"
    return files


def dump_world(world: World, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, text in render_world(world, meta).items():
        (path / name).write_text(text, encoding="utf-8")


def save_taubench(world: World, path: str | Path) -> None:
    """Write flights.json, users.json and reservations.json in τ-bench's layout, each record as it was read
    (field spellings, omitted optional fields and explicit nulls kept; see world.AS_READ). No meta.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, records in zip(WORLD_FILES, (world.flights, world.users, world.reservations)):
        data = {k: v.model_dump(mode="json", context=AS_READ) for k, v in records.items()}
        (path / name).write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
