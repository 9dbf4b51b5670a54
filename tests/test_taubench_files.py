"""World files in the public τ-bench / τ²-bench airline format load, serve an episode, and are written back
unchanged (JSON-value equality). The records follow the published files' structure field for field:
τ-bench's users.json spells the address's state "province" and has no user_id; τ²-bench's data model says
"state", has user_id, an optional address2 and an optional reservation status."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import gymnasium as gym
import pytest
from test_flight_booking_world import TINY_FLIGHTS, TINY_RESERVATIONS, TINY_USERS

import environments  # noqa: F401  (registers the envs)
from agentrl.core.tools import format_tool_call
from environments.flight_booking.taubench_loader import load_world, save_taubench


def _tau_files() -> tuple[dict, dict, dict]:
    """test_flight_booking_world's tiny world as τ-bench's files write it ("province"), plus the two flight
    statuses it lacks (flying, on time) and a non-whole gift-card balance."""
    flights = copy.deepcopy(TINY_FLIGHTS)
    flights["HAT001"]["dates"]["2024-05-15"] = {"status": "flying", "actual_departure_time_est": "2024-05-15T08:00:00",
                                                "estimated_arrival_time_est": "2024-05-15T11:30:00"}  # fmt: skip
    flights["HAT003"]["dates"]["2024-05-15"] = {"status": "on time", "estimated_departure_time_est": "2024-05-15T21:00:00",
                                                "estimated_arrival_time_est": "2024-05-15T23:00:00"}  # fmt: skip
    users = copy.deepcopy(TINY_USERS)
    for u in users.values():
        u["address"] = {("province" if k == "state" else k): v for k, v in u["address"].items()}
    users["ada_lee_1000"]["payment_methods"]["gift_card_2222222"]["amount"] = 98.5
    return flights, users, copy.deepcopy(TINY_RESERVATIONS)


def _tau2(users: dict, reservations: dict) -> tuple[dict, dict]:
    """The same records as τ²-bench's data model writes them: user_id, "state", optional fields spelled out."""
    users = {
        uid: {"user_id": uid, **u, "address": {("state" if k == "province" else k): v for k, v in u["address"].items()}}
        for uid, u in users.items()
    }
    users["cy_ng_2000"]["address"]["address2"] = None
    return users, {rid: {"status": None, **r} for rid, r in reservations.items()}


def write_world(path: Path, flavor: str) -> Path:
    flights, users, reservations = _tau_files()
    if flavor == "tau2":
        users, reservations = _tau2(users, reservations)
    path.mkdir(parents=True, exist_ok=True)
    for name, obj in {"flights.json": flights, "users.json": users, "reservations.json": reservations}.items():
        (path / name).write_text(json.dumps(obj, indent=4))
    return path


@pytest.mark.parametrize("flavor", ["tau", "tau2"])
def test_public_format_loads_runs_and_writes_back_unchanged(tmp_path: Path, flavor: str) -> None:
    src = write_world(tmp_path / "src", flavor)
    env = gym.make("agentrl/FlightBooking-v0", world=str(src), split="all").unwrapped
    env.reset(seed=0)
    obs, _, term, _, _ = env.step(format_tool_call("get_user_details", {"user_id": "ada_lee_1000"}))
    assert (
        not term and json.loads(obs[0]["content"])["address"]["state"] == "MA"
    )  # τ²'s output (the default parity) says `state`
    obs, _, _, _, _ = env.step(format_tool_call("get_reservation_details", {"reservation_id": "CCC333"}))
    assert "cancelled" in json.dumps(obs)
    assert env.world.users["ada_lee_1000"].address.state == "MA"

    save_taubench(env.world, tmp_path / "out")
    for name in ("flights.json", "users.json", "reservations.json"):
        assert json.loads((tmp_path / "out" / name).read_text()) == json.loads((src / name).read_text()), name
    assert load_world(tmp_path / "out").hash() == env.world.hash()
