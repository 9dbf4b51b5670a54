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
plus, optionally, meta.json ({"clock": "2024-05-15T15:00:00", "airports": {code: city}, "name": ...}; each key
checked, see `read_meta`), which
τ-bench does not have: without it the clock is inferred (15:00 on the last date on which any flight has
taken off or is about to: statuses landed / flying / delayed / on time), as in τ-bench's own data.

τ²-bench keeps the same three tables in one file, db.json ({"flights": {...}, "users": {...}, "reservations":
{...}}, data/tau2/domains/airline/db.json); `load_world` takes that file, or a directory holding only it.

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

from agentrl.core.io import atomic_write_text

from .world import AS_READ, Flight, Reservation, User, World, canonical_json

WORLD_FILES = ("flights.json", "users.json", "reservations.json")
TAU2_DB = "db.json"  # τ²-bench: the three tables in one file
DEFAULT_WORLD_DIR = Path(__file__).parent / "data" / "world"

_ADAPTERS = {
    "flights.json": pydantic.TypeAdapter(dict[str, Flight]),
    "users.json": pydantic.TypeAdapter(dict[str, User]),
    "reservations.json": pydantic.TypeAdapter(dict[str, Reservation]),
}


class _Tau2DB(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    flights: dict[str, Flight]
    users: dict[str, User]
    reservations: dict[str, Reservation]


_TAU2_ADAPTER = pydantic.TypeAdapter(_Tau2DB)


class WorldFormatError(ValueError):
    """A world directory that is not in τ-bench's airline layout; the message names the file and field."""


MAX_WORLD_FILE_BYTES = 256 * 1024 * 1024  # τ-bench's largest airline file is a few MB
MAX_META_BYTES = 1024 * 1024
META_KEYS = ("clock", "airports", "name", "generator", "seed")
META_FORM = (
    '{"clock": "2024-05-15T15:00:00", "airports": {"SFO": "San Francisco", ...}, "name": "...", '
    '"generator": "...", "seed": 0}'
)


def _bytes(file: Path, cap: int) -> bytes:
    try:
        size = file.stat().st_size
        if size > cap:
            raise WorldFormatError(f"{file} is {size:,} bytes; at most {cap:,} allowed")
        return file.read_bytes()
    except OSError as exc:
        raise WorldFormatError(f"cannot read {file}: {exc.strerror or exc}") from None


def _read(path: Path, name: str) -> Any:
    file = path / name
    if not file.is_file():
        present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        raise WorldFormatError(
            f"{file} is missing; a τ-bench airline world needs {', '.join(WORLD_FILES)}, or τ²-bench's "
            f"{TAU2_DB} alone (found: {present or 'nothing'})"
        )
    return _parse(file, _ADAPTERS[name])


def _parse(file: Path, adapter: pydantic.TypeAdapter) -> Any:
    data = _bytes(file, MAX_WORLD_FILE_BYTES)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorldFormatError(f"{file} is not UTF-8 text (byte {exc.start})") from None
    try:
        return adapter.validate_json(data)  # pydantic's parser: bounded nesting, never a RecursionError
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
        where = f": at {loc}" if loc else ""
        raise WorldFormatError(f"{file}{where}: {first['msg']}{more}") from None


def _kind(v: Any) -> str:
    return {list: "a list", dict: "an object", str: "a text", bool: "a boolean", type(None): "null"}.get(
        type(v), f"a number ({v!r})" if isinstance(v, (int, float)) else type(v).__name__
    )


def read_meta(path: str | Path) -> dict[str, Any]:
    """meta.json of a world directory, checked: {} when there is none; WorldFormatError naming the file, the
    key and the allowed form for anything else (a list, `"clock": 5`, `"airports": 5`, unknown keys)."""
    file = Path(path) / "meta.json"
    if not file.is_file():
        return {}
    try:
        meta = json.loads(_bytes(file, MAX_META_BYTES).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WorldFormatError(f"{file} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise WorldFormatError(f"{file} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise WorldFormatError(f"{file} is nested too deeply; it holds one flat object: {META_FORM}") from None
    if not isinstance(meta, dict):
        raise WorldFormatError(f"{file} must hold a JSON object {META_FORM}; got {_kind(meta)}")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise WorldFormatError(f"{file}: unknown keys {unknown} (allowed: {', '.join(META_KEYS)})")
    if "clock" in meta:
        c = meta["clock"]
        try:
            clock = dt.datetime.fromisoformat(c) if isinstance(c, str) else None
        except ValueError:
            clock = None
        if clock is None:
            raise WorldFormatError(
                f"{file}: 'clock' must be a date-time text like '2024-05-15T15:00:00', got {_kind(c)}"
                + (f" {c[:40]!r}" if isinstance(c, str) else "")
            )
        if clock.tzinfo is not None:
            raise WorldFormatError(
                f"{file}: 'clock' must be a local time without a UTC offset (like τ-bench's "
                f"'2024-05-15T15:00:00'), got {c[:40]!r}"
            )
        meta["clock"] = clock
    a = meta.get("airports")
    if a is not None:
        if not isinstance(a, dict) or not all(isinstance(v, str) and v.strip() for v in a.values()):
            bad = _kind(a) if not isinstance(a, dict) else "an object with a value that is not a city name"
            raise WorldFormatError(
                f"{file}: 'airports' must be an object {{airport code: city name}} like "
                f'{{"SFO": "San Francisco"}}, got {bad}'
            )
    for key, kind, form in (("name", str, "a text"), ("generator", str, "a text"), ("seed", int, "an integer")):
        v = meta.get(key)
        if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
            raise WorldFormatError(f"{file}: '{key}' must be {form}, got {_kind(v)}")
    return meta


def infer_clock(flights: dict[str, Flight]) -> dt.datetime:
    started = [
        d
        for f in flights.values()
        for d, fd in f.dates.items()
        if fd.status in ("landed", "flying", "delayed", "on time")
    ]
    if not started:
        raise WorldFormatError(
            "cannot infer the clock: no flight date is landed, flying, delayed or on time; write meta.json with a 'clock'"
        )
    day = dt.date.fromisoformat(max(started))
    return dt.datetime(day.year, day.month, day.day, 15, 0, 0)


def world_source(path: str | Path) -> tuple[str, Path]:
    """("tau_bench_v1", directory) or ("tau2", db.json file) for a world path; WorldFormatError naming what is
    allowed for anything else. A directory with the three v1 files is v1 even if it also holds a db.json."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".json" or path.name in WORLD_FILES:
            raise WorldFormatError(
                f"{path} is not a directory; pass the directory holding {', '.join(WORLD_FILES)} (τ-bench), "
                f"or τ²-bench's {TAU2_DB} file"
            )
        return "tau2", path
    if not path.is_dir():
        raise WorldFormatError(
            f"{path} does not exist; pass a directory holding {', '.join(WORLD_FILES)} (τ-bench), "
            f"or τ²-bench's {TAU2_DB} (the file or its directory)"
        )
    if not (path / WORLD_FILES[0]).is_file() and (path / TAU2_DB).is_file():
        return "tau2", path / TAU2_DB
    return "tau_bench_v1", path


def load_world(path: str | Path, *, clock: dt.datetime | None = None) -> World:
    """Load a world: a directory in τ-bench's layout, or τ²-bench's db.json (module docstring). Raises
    WorldFormatError naming the file and the first bad field."""
    kind, path = world_source(path)
    if kind == "tau2":
        db = _parse(path, _TAU2_ADAPTER)
        flights, users, reservations = db.flights, db.users, db.reservations
        meta = read_meta(path.parent) if path.name == TAU2_DB else {}
    else:
        flights, users, reservations = (_read(path, n) for n in WORLD_FILES)
        meta = read_meta(path)
    if clock is None:
        clock = meta["clock"] if "clock" in meta else infer_clock(flights)
    try:
        name = meta.get("name", path.name if kind == "tau_bench_v1" else f"{path.parent.name}/{path.name}")
        return World(flights, users, reservations, clock=clock, airports=meta.get("airports"), name=name)
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

    files = {
        "flights.json": table(world.flights),
        "users.json": table(world.users),
        "reservations.json": table(world.reservations),
    }
    files["meta.json"] = (
        json.dumps({"clock": world.clock_str, "airports": world.airports, "name": world.name, **(meta or {})}, indent=2)
        + "\n"
    )
    return files


def dump_world(world: World, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Write the world's files into `path`, each whole (a temp file, then a rename): a reader never sees half."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, text in render_world(world, meta).items():
        atomic_write_text(path / name, text)


def save_taubench(world: World, path: str | Path) -> None:
    """Write flights.json, users.json and reservations.json in τ-bench's layout, each record as it was read
    (field spellings, omitted optional fields and explicit nulls kept; see world.AS_READ). No meta.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, records in zip(WORLD_FILES, (world.flights, world.users, world.reservations)):
        data = {k: v.model_dump(mode="json", context=AS_READ) for k, v in records.items()}
        atomic_write_text(path / name, json.dumps(data, indent=4, ensure_ascii=False) + "\n")
