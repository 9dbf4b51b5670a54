"""Small worlds and task files written by hand in the two benchmarks' published formats (issue 30), used by the
test_flight_published_* tests, and the tests that they load: τ-bench's airline directory (users.json, flights.json, reservations.json) with a
tasks_test.py of Task(...)/Action(...) literals, and τ²-bench's db.json with tasks.json and split_tasks.json.

The world is test_flight_booking_world's tiny world plus what the published worlds hold and the env used to trip
on: a reservation whose origin equals its destination (DDD444, JFK-JFK via LAX, as 69 of the published 2,000
are), a reservation with a flown segment (EEE555), and a flight from SFO, so that list_all_airports' benchmark order
(SFO, JFK, LAX, ORD) differs from the alphabetical one.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from test_flight_booking_world import TINY_FLIGHTS, TINY_RESERVATIONS, TINY_USERS, _avail


def records() -> tuple[dict, dict, dict]:
    flights, users, reservations = (copy.deepcopy(x) for x in (TINY_FLIGHTS, TINY_USERS, TINY_RESERVATIONS))
    flights["HAT005"] = {"flight_number": "HAT005", "origin": "SFO", "destination": "JFK", "scheduled_departure_time_est": "07:00:00",
                         "scheduled_arrival_time_est": "15:30:00", "dates": {"2024-05-16": _avail(6, 100, 200, 500)}}  # fmt: skip
    reservations["DDD444"] = {
        "reservation_id": "DDD444", "user_id": "cy_ng_2000", "origin": "JFK", "destination": "JFK", "flight_type": "round_trip",
        "cabin": "economy", "flights": [
            {"origin": "JFK", "destination": "LAX", "flight_number": "HAT001", "date": "2024-05-16", "price": 150},
            {"origin": "LAX", "destination": "JFK", "flight_number": "HAT002", "date": "2024-05-18", "price": 160}],
        "passengers": [{"first_name": "Cy", "last_name": "Ng", "dob": "1975-05-06"}],
        "payment_history": [{"payment_id": "credit_card_4444444", "amount": 310}], "created_at": "2024-05-03T09:00:00",
        "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"}  # fmt: skip
    reservations["EEE555"] = {
        "reservation_id": "EEE555", "user_id": "ada_lee_1000", "origin": "JFK", "destination": "LAX", "flight_type": "one_way",
        "cabin": "business", "flights": [{"origin": "JFK", "destination": "LAX", "flight_number": "HAT001", "date": "2024-05-14", "price": 400}],
        "passengers": [{"first_name": "Ada", "last_name": "Lee", "dob": "1980-01-02"}],
        "payment_history": [{"payment_id": "credit_card_1111111", "amount": 400}], "created_at": "2024-05-01T09:00:00",
        "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"}  # fmt: skip
    users["cy_ng_2000"]["reservations"].append("DDD444")
    users["ada_lee_1000"]["reservations"].append("EEE555")
    return flights, users, reservations


# The τ-bench tasks, as tasks_test.py writes them. The line before TASKS would stop the test run if the file were
# executed: the loader must parse it, never run it.
TAU_BENCH_TASKS = """# Copyright of the format: τ-bench (tau_bench/envs/airline/tasks_test.py); these tasks are made up for tests
from tau_bench.types import Action, Task

raise SystemExit("a task file must never be executed")

TASKS = [
    Task(
        annotator="0",
        user_id="cy_ng_2000",
        instruction="Your user id is cy_ng_2000. You want to upgrade your round trip DDD444 to business, keeping the flights. You pay with your card.",
        actions=[
            Action(
                name="update_reservation_flights",
                kwargs={
                    "reservation_id": "DDD444",
                    "cabin": "business",
                    "flights": [
                        {"flight_number": "HAT001", "date": "2024-05-16"},
                        {"flight_number": "HAT002", "date": "2024-05-18"},
                    ],
                    "payment_id": "credit_card_4444444",
                },
            )
        ],
        outputs=[],
    ),
    Task(
        annotator="1",
        user_id="ada_lee_1000",
        instruction="Your user id is ada_lee_1000. You want to know how much you paid for reservation AAA111 and how many bags it has.",
        actions=[Action(name="get_reservation_details", kwargs={"reservation_id": "AAA111"})],
        outputs=["170", "1 bag"],
    ),
    Task(
        annotator="1",
        user_id="ada_lee_1000",
        instruction="Your user id is ada_lee_1000. You want to cancel reservation EEE555 because your plans changed.",
        actions=[Action(name="cancel_reservation", kwargs={"reservation_id": "EEE555"})],
        outputs=[],
    ),
    Task(
        annotator="2",
        user_id="cy_ng_2000",
        instruction="Your user id is cy_ng_2000. You want a refund for a lost bag and insist on a human agent.",
        actions=[Action(name="transfer_to_human_agents", kwargs={"summary": "lost bag refund"})],
        outputs=[],
    ),
]
"""


def write_tau_bench(root: Path) -> tuple[Path, Path]:
    """τ-bench's layout: <root>/data/{flights,users,reservations}.json and <root>/tasks_test.py. Returns (data dir,
    tasks file)."""
    flights, users, reservations = records()
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, obj in {"flights.json": flights, "users.json": users, "reservations.json": reservations}.items():
        (data / name).write_text(json.dumps(obj, indent=4))
    tasks = root / "tasks_test.py"
    tasks.write_text(TAU_BENCH_TASKS)
    return data, tasks


def tau2_task(
    tid: str,
    known: str,
    reason: str,
    actions: list[dict],
    communicate: list[str] | None = None,
    nl: list[str] | None = None,
) -> dict:
    return {"id": tid, "description": {"purpose": "test", "relevant_policies": None, "notes": None},
            "user_scenario": {"persona": None, "instructions": {"domain": "airline", "reason_for_call": reason, "known_info": known,
                                                                 "unknown_info": None, "task_instructions": "Be brief."}},
            "initial_state": None,
            "evaluation_criteria": {"actions": [{"action_id": f"{tid}_{i}", "name": a["name"], "arguments": a["arguments"], "info": None}
                                                for i, a in enumerate(actions)],
                                    "communicate_info": communicate or [], "nl_assertions": nl or ["Agent should be polite."],
                                    "reward_basis": ["DB", "COMMUNICATE"]},
            "annotations": None}  # fmt: skip


TAU2_TASKS = [
    tau2_task("0", "You are Cy Ng.\nYour user id is cy_ng_2000.", "You want to upgrade reservation DDD444 to business.",
              [{"name": "get_reservation_details", "arguments": {"reservation_id": "DDD444"}},
               {"name": "update_reservation_flights", "arguments": {"reservation_id": "DDD444", "cabin": "business", "flights": [
                   {"flight_number": "HAT001", "date": "2024-05-16"}, {"flight_number": "HAT002", "date": "2024-05-18"}],
                   "payment_id": "credit_card_4444444"}}]),
    tau2_task("1", "You are Ada Lee.\nYour user id is ada_lee_1000.", "You want to know the status of flight HAT002 on May 15.",
              [{"name": "get_flight_status", "arguments": {"flight_number": "HAT002", "date": "2024-05-15"}}], communicate=["delayed"]),
    tau2_task("2", "You are Ada Lee.\nYour user id is ada_lee_1000.", "You want to add 2 bags to reservation AAA111.",
              [{"name": "update_reservation_baggages", "arguments": {"reservation_id": "AAA111", "total_baggages": 3, "nonfree_baggages": 1,
                                                                     "payment_id": "credit_card_1111111"}}]),
]  # fmt: skip
TAU2_SPLITS = {"train": ["0", "1"], "test": ["2"], "base": ["0", "1", "2"]}


def write_tau2(root: Path) -> tuple[Path, Path]:
    """τ²'s layout: <root>/db.json, tasks.json, split_tasks.json. Returns (db.json, tasks.json)."""
    flights, users, reservations = records()
    users = {uid: {"user_id": uid, **u} for uid, u in users.items()}
    for u in users.values():  # τ²'s data model writes gift-card and certificate amounts as floats
        for pm in u["payment_methods"].values():
            if "amount" in pm:
                pm["amount"] = float(pm["amount"])
    root.mkdir(parents=True, exist_ok=True)
    db = root / "db.json"
    db.write_text(json.dumps({"flights": flights, "users": users, "reservations": reservations}, indent=4))
    (root / "tasks.json").write_text(json.dumps(TAU2_TASKS, indent=4))
    (root / "split_tasks.json").write_text(json.dumps(TAU2_SPLITS, indent=4))
    return db, root / "tasks.json"


# ---- tests: any published world builds the env; the task files load as published ------------------------------------

import logging  # noqa: E402

import gymnasium as gym  # noqa: E402
import pytest  # noqa: E402

import environments  # noqa: E402,F401  (registers the envs)
from environments.flight_booking.published import (  # noqa: E402
    TaskFileError,
    read_tau2_tasks,
    read_tau_bench_tasks,
    tau2_scenario_text,
)
from environments.flight_booking.tasks import generator  # noqa: E402
from environments.flight_booking.taubench_loader import WorldFormatError, load_world  # noqa: E402


@pytest.fixture()
def v1(tmp_path: Path) -> tuple[Path, Path]:
    return write_tau_bench(tmp_path / "tau_bench")


@pytest.fixture()
def tau2(tmp_path: Path) -> tuple[Path, Path]:
    return write_tau2(tmp_path / "tau2")


def test_both_published_world_formats_load_the_same_records(v1, tau2) -> None:
    a, b = load_world(v1[0]), load_world(tau2[0])
    assert (
        (len(a.flights), len(a.users), len(a.reservations))
        == (len(b.flights), len(b.users), len(b.reservations))
        == (5, 2, 5)
    )
    assert load_world(tau2[0].parent).hash() == b.hash()  # τ²'s directory, holding only db.json
    assert (
        a.reservations.keys() == b.reservations.keys()
        and a.users["ada_lee_1000"].address == b.users["ada_lee_1000"].address
    )


def test_a_db_json_that_is_not_tau2s_names_what_is_allowed(tmp_path: Path) -> None:
    bad = tmp_path / "db.json"
    bad.write_text(json.dumps({"flights": {}, "users": {}}))
    with pytest.raises(WorldFormatError, match="reservations"):
        load_world(bad)
    with pytest.raises(WorldFormatError, match="not a directory"):
        load_world(write_tau_bench(tmp_path / "v1")[0] / "users.json")
    with pytest.raises(WorldFormatError, match="db.json"):
        load_world(tmp_path / "nowhere")


@pytest.mark.parametrize("which", ["v1", "tau2"])
def test_the_env_builds_on_a_published_world_with_generated_tasks(which: str, v1, tau2) -> None:
    world = v1[0] if which == "v1" else tau2[0]
    env = gym.make("agentrl/FlightBooking-v0", world=str(world), split="all").unwrapped
    assert env.task_ids() and env.skipped_tasks == []
    for tid in env.task_ids():  # no family picks the reservation whose origin equals its destination
        task = env._by_id[tid]
        assert all(a.arguments.get("reservation_id") != "DDD444" for a in task.gold_actions), tid
        env.reset(options={"task_id": tid})


def test_generated_tasks_the_gold_agent_cannot_solve_are_skipped_counted_and_logged_once(
    v1, monkeypatch, caplog
) -> None:
    from environments.flight_booking.env import FlightBookingEnv

    real = generator.play
    calls = {"n": 0}

    def flaky(env, task_id, agent=None):
        calls["n"] += 1
        r, breakdown, turns = real(env, task_id, agent)
        if calls["n"] % 2 == 0:  # every other task "fails", as a task on an odd published record would
            return 0.0, {**breakdown, "database": 0.0, "reward": 0.0}, turns
        return r, breakdown, turns

    monkeypatch.setattr(generator, "play", flaky)
    with caplog.at_level(logging.WARNING, logger="environments.flight_booking.tasks.generator"):
        env = FlightBookingEnv(world=load_world(v1[0]), split="all")
    skipped = env.skipped_tasks
    assert skipped and len(env.task_ids()) + len(skipped) == calls["n"]
    assert all("database" in why for _, why in skipped)
    warnings = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and f"skipped {len(skipped)} of {calls['n']}" in warnings[0].getMessage()
    with pytest.raises(RuntimeError, match="the gold agent scored"):  # the shipped world's generator stays strict
        generator.check_tasks(load_world(v1[0]), generator.generate_tasks(load_world(v1[0]), check=False), strict=True)


def test_tau_bench_task_file_is_parsed_never_executed(v1) -> None:
    tasks = read_tau_bench_tasks(v1[1])  # the file raises SystemExit if run
    assert [t.id for t in tasks] == ["0", "1", "2", "3"] and {t.splits for t in tasks} == {("test",)}
    assert tasks[0].user_id == "cy_ng_2000" and tasks[0].gold_actions[0].name == "update_reservation_flights"
    assert tasks[1].outputs == ["170", "1 bag"] and tasks[3].expects_transfer


@pytest.mark.parametrize("body,match", [
    ("TASKS = [Task(instruction=open('x').read(), actions=[])]", r"tasks_test.py:1: Call is not a literal"),
    ("TASKS = [Task(instruction='x', actions=[Action(name='fly_me', kwargs={})])]", "unknown tool 'fly_me'"),
    ("TASKS = [Task(instruction='x', actions=[], colour='red')]", r"unknown fields \['colour'\]"),
    ("OTHER = [1]", "no `TASKS = \\[...\\]`"),
    ("TASKS = [", "not valid Python"),
])  # fmt: skip
def test_a_bad_tau_bench_task_file_names_the_line_and_what_is_allowed(tmp_path: Path, body: str, match: str) -> None:
    f = tmp_path / "tasks_test.py"
    f.write_text(body)
    with pytest.raises(TaskFileError, match=match):
        read_tau_bench_tasks(f)


def test_the_older_dict_literal_task_file_loads_too(tmp_path: Path) -> None:
    f = tmp_path / "tasks.py"
    f.write_text(
        "tasks = [{'annotator': 0, 'user_id': 'cy_ng_2000', 'instruction': 'x', 'actions': "
        "[{'name': 'get_user_details', 'arguments': {'user_id': 'cy_ng_2000'}}], 'outputs': ['y']}]"
    )
    (t,) = read_tau_bench_tasks(f)
    assert t.gold_actions[0].arguments == {"user_id": "cy_ng_2000"} and t.outputs == ["y"] and t.splits == ("test",)


def test_tau2_tasks_and_splits_load(tau2) -> None:
    tasks = {t.id: t for t in read_tau2_tasks(tau2[1])}
    assert tasks["0"].splits == ("train", "base") and tasks["2"].splits == ("test", "base")
    assert tasks["1"].outputs == ["delayed"] and tasks["1"].nl_assertions == ["Agent should be polite."]
    assert tasks["0"].user_id == "cy_ng_2000"
    text = tau2_scenario_text(TAU2_TASKS[0]["user_scenario"])  # τ²'s str(UserScenario)
    assert text.startswith("Instructions:\n\tDomain: airline\n\tReason for call:\n\t\tYou want to upgrade")
    assert (
        "\tKnown info:\n\t\tYou are Cy Ng.\n\t\tYour user id is cy_ng_2000.\n\tTask instructions:\n\t\tBe brief."
        in text
    )


def test_tau2_split_file_naming_unknown_tasks_is_an_error(tau2) -> None:
    (tau2[1].parent / "split_tasks.json").write_text(json.dumps({"train": ["0", "99"]}))
    with pytest.raises(TaskFileError, match=r"does not have: \['99'\]"):
        read_tau2_tasks(tau2[1])


@pytest.mark.parametrize("split,n", [("train", 2), ("test", 1), ("base", 3), (None, 3)])
def test_split_chooses_tau2s_train_test_or_base(tau2, split, n) -> None:
    env = gym.make(
        "agentrl/FlightBooking-v0", tasks=str(tau2[1]), split=split
    ).unwrapped  # world found beside tasks.json
    assert len(env.task_ids()) == n and env.rules.parity == "tau2" and not env.rules.hints


def test_an_unknown_split_lists_the_splits_there_are(tau2, v1) -> None:
    with pytest.raises(ValueError, match="splits: base, test, train, all"):
        gym.make("agentrl/FlightBooking-v0", tasks=str(tau2[1]), split="dev")
    with pytest.raises(ValueError, match="needs tasks=<its tasks.json>"):
        gym.make("agentrl/FlightBooking-v0", split="base")
    env = gym.make("agentrl/FlightBooking-v0", tasks=str(v1[1]), world=str(v1[0])).unwrapped
    assert env.rules.parity == "tau_bench_v1" and len(env.task_ids()) == 4  # v1 files default to v1 parity, every task


def test_bad_constructor_arguments_fail_before_anything_loads(tmp_path: Path) -> None:
    from environments.flight_booking.env import FlightBookingEnv

    with pytest.raises(ValueError, match="policy must be one of 'score', 'report'"):
        FlightBookingEnv(policy="lenient", tasks=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="benchmark_errors must be one of 'exempt', 'score'"):
        FlightBookingEnv(benchmark_errors="maybe")
    with pytest.raises(TaskFileError, match="is not a file"):
        FlightBookingEnv(tasks=str(tmp_path / "missing.json"), world=str(tmp_path))
    with pytest.raises(ValueError, match="none found beside it"):
        (tmp_path / "tasks.json").write_text("[]")
        FlightBookingEnv(tasks=str(tmp_path / "tasks.json"))


def test_a_family_that_cannot_build_on_a_record_is_skipped_not_raised(v1, monkeypatch, caplog) -> None:
    def broken(ctx, split):
        raise RuntimeError("generator read get_reservation_details failed: odd record")

    monkeypatch.setitem(generator.FAMILIES, "broken_family", (broken, 1, 1))
    world = load_world(v1[0])
    with caplog.at_level(logging.WARNING, logger="environments.flight_booking.tasks.generator"):
        tasks = generator.generate_tasks(world, seed=0)
    assert tasks and not any("broken_family" in t.id for t in tasks)
    skipped = world.memo["skipped_tasks"]
    assert [t for t, _ in skipped if "broken_family" in t] and all(
        "odd record" in why for t, why in skipped if "broken_family" in t
    )
    assert any("could not be built" in r.getMessage() for r in caplog.records)
    assert len([t for t, _ in skipped if "broken_family" in t]) == 2  # its train and test slot, once each
    monkeypatch.setattr(generator, "FAMILIES", {"broken_family": (broken, 1, 1)})
    with pytest.raises(RuntimeError, match="odd record"):  # the shipped world's generator stays strict
        generator.generate_tasks(load_world(v1[0]), seed=0, strict=True, check=False)
