"""Hostile FlightBooking worlds in τ-bench's layout (issue 27): a bad meta.json, a bad price, a deep or
non-UTF-8 file is one WorldFormatError line naming the file, the key and what is allowed — never a traceback
from deeper code (a TypeError from `airports: 5`, a crash of task generation on a negative fare)."""

from __future__ import annotations

import json
import shutil

import pytest

from environments.flight_booking.env import FlightBookingEnv
from environments.flight_booking.taubench_loader import DEFAULT_WORLD_DIR, WorldFormatError, load_world

META_FORM = '{"clock": "2024-05-15T15:00:00", "airports": {"SFO": "San Francisco", ...}'


@pytest.fixture
def world(tmp_path):
    d = tmp_path / "w"
    shutil.copytree(DEFAULT_WORLD_DIR, d)
    return d


def _error(path) -> str:
    with pytest.raises(WorldFormatError) as exc:
        load_world(path)
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "meta, expected",
    [
        ([1, 2], f"meta.json must hold a JSON object {META_FORM}"),
        ([{"clock": "x"}], "meta.json must hold a JSON object"),
        (
            {"airports": 5},
            "meta.json: 'airports' must be an object {airport code: city name} like "
            '{"SFO": "San Francisco"}, got a number (5)',
        ),
        ({"airports": ["SFO"]}, "meta.json: 'airports' must be an object {airport code: city name}"),
        (
            {"airports": {"SFO": 5}},
            '\'airports\' must be an object {airport code: city name} like {"SFO": "San Francisco"}, '
            "got an object with a value that is not a city name",
        ),
        ({"clock": 5}, "meta.json: 'clock' must be a date-time text like '2024-05-15T15:00:00', got a number (5)"),
        ({"clock": "noon"}, "'clock' must be a date-time text like '2024-05-15T15:00:00', got a text 'noon'"),
        ({"clock": "2024-05-15T15:00:00+02:00"}, "'clock' must be a local time without a UTC offset"),
        ({"name": 5}, "meta.json: 'name' must be a text, got a number (5)"),
        ({"seed": "zero"}, "meta.json: 'seed' must be an integer, got a text"),
        ({"colour": "red"}, "meta.json: unknown keys ['colour'] (allowed: clock, airports, name, generator, seed)"),
    ],
    ids=[
        "list",
        "list-of-objects",
        "airports-5",
        "airports-list",
        "airports-value",
        "clock-5",
        "clock-noon",
        "clock-offset",
        "name-5",
        "seed-text",
        "unknown-key",
    ],
)
def test_bad_meta_json_is_one_line_naming_the_key(world, meta, expected):
    (world / "meta.json").write_text(json.dumps(meta))
    message = _error(world)
    assert message.startswith(str(world / "meta.json")) and expected in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{nope", "meta.json is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ("[" * 100_000 + "]" * 100_000, "meta.json is nested too deeply; it holds one flat object"),
    ],
)
def test_unreadable_meta_json(world, text, expected):
    (world / "meta.json").write_text(text)
    assert expected in _error(world)


def _set_prices(world, value: str) -> None:
    flights = json.loads((world / "flights.json").read_text())
    for f in flights.values():
        for d in f["dates"].values():
            if d["status"] == "available":
                d["prices"]["economy"] = "@PRICE@"
    (world / "flights.json").write_text(json.dumps(flights).replace('"@PRICE@"', value))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("-100", "a cabin price must be a positive number of dollars (at least 0.01), got -100"),
        ("0", "a cabin price must be a positive number of dollars (at least 0.01), got 0"),
        ("NaN", "Input should be a finite number"),
        ("Infinity", "Input should be a finite number"),
        ("1e308", "Input should be less than or equal to 1000000000"),
    ],
)
def test_a_bad_cabin_price_is_one_line_before_task_generation(world, value, expected):
    _set_prices(world, value)
    message = _error(world)
    assert (
        message.startswith(f"{world / 'flights.json'}: at ") and ".prices.economy: " in message and expected in message
    )
    with pytest.raises(WorldFormatError, match="prices.economy"):
        FlightBookingEnv(world=world)  # the env (and its task generator) never sees the world


def test_deep_or_binary_world_files(world):
    (world / "flights.json").write_text('{"HAT001": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "flights.json: Invalid JSON: recursion limit exceeded" in _error(world)
    shutil.copy(DEFAULT_WORLD_DIR / "flights.json", world / "flights.json")
    (world / "users.json").write_bytes(b'{"a": "\xff"}')
    assert _error(world) == f"{world / 'users.json'} is not UTF-8 text (byte 7)"


def test_a_good_meta_json_still_loads(world):
    meta = json.loads((world / "meta.json").read_text())
    meta["clock"] = "2024-05-16T10:30:00"
    (world / "meta.json").write_text(json.dumps(meta))
    w = load_world(world)
    assert w.clock_str == "2024-05-16T10:30:00" and w.airports["SFO"] == "San Francisco" and w.name == meta["name"]


def test_task_files_are_bounded_and_name_the_line(tmp_path):
    from environments.flight_booking.tasks import TASKS_DIR, read_tasks

    good = (TASKS_DIR / "test.jsonl").read_text(encoding="utf-8").splitlines()[0]
    cases = {
        "binary": (good + "\n").encode() + b"\xff\xfe not utf-8\n",
        "deep": (good + "\n" + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
        "huge": (good + "\n" + '{"id": "' + "x" * (2 << 20) + '"}\n').encode(),
    }
    expected = {
        "binary": ":2: not a valid task: not UTF-8",
        "deep": ":2: not a valid task: nested deeper",
        "huge": ":2: not a valid task:",
    }
    for name, data in cases.items():
        f = tmp_path / f"{name}.jsonl"
        f.write_bytes(data)
        with pytest.raises(ValueError) as exc:
            read_tasks(f)
        assert expected[name] in str(exc.value) and len(str(exc.value).splitlines()) == 1, (name, str(exc.value)[:200])
    assert "over the cap" in str(pytest.raises(ValueError, read_tasks, tmp_path / "huge.jsonl").value)


def test_world_files_are_written_whole(tmp_path, monkeypatch):
    """dump_world writes through a temp file and a rename: a failure leaves the old file, not half a new one."""
    import os

    from environments.flight_booking.taubench_loader import dump_world

    w = load_world(DEFAULT_WORLD_DIR)
    dump_world(w, tmp_path / "w")
    before = (tmp_path / "w" / "flights.json").read_bytes()

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        dump_world(w, tmp_path / "w")
    assert (tmp_path / "w" / "flights.json").read_bytes() == before
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.endswith(".tmp")]
