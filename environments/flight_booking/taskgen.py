"""Task generator: writes tasks from a world, each one solvable by construction.

Each family picks users / reservations that fit it, computes the gold actions through the same tools the
agent calls (search results, prices and statuses come from the tools; fares from policy.py), and writes
the user's side (requests, known / unknown info, what the user must hear to say yes). `generate_tasks`
then plays every task with the gold agent and the rule-based user and keeps it only at reward 1 — a
failure there is a generator bug and raises.

Splits are by user: a user (chosen by a hash of the id) belongs to train or test, never both, so no test
task reuses a train task's user or reservation.

The families live in families_booking.py (new reservations), families_reservation.py (changes to existing
ones) and families_service.py (disruptions, information, transfers); they build `Draft`s (task_drafts.py)
worded with task_wording.py. This module lists them with their counts and turns drafts into tasks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .families_booking import fam_book, fam_too_many_passengers
from .families_reservation import (
    fam_add_bags,
    fam_bags_or_insurance_refused,
    fam_cancel,
    fam_cancel_flown,
    fam_change_cabin,
    fam_change_flight,
    fam_change_passenger,
    fam_multi,
)
from .families_service import (
    fam_compensation_cancelled,
    fam_delay,
    fam_flight_status,
    fam_total_paid,
    fam_transfer,
)
from .scripted import GoldAgent
from .task_drafts import Ctx, Draft
from .task_wording import PERSONAS
from .tasks import Goal, Task, UserScenario
from .world import World

# family name -> (builder, train count, test count)
FAMILIES: dict[str, tuple[Callable[[Ctx, str], Draft | None], int, int]] = {
    "book_direct": (lambda c, s: fam_book(c, s, "direct"), 20, 5),
    "book_round_trip": (lambda c, s: fam_book(c, s, "round_trip"), 16, 4),
    "book_onestop": (lambda c, s: fam_book(c, s, "onestop"), 12, 3),
    "cancel_allowed": (lambda c, s: fam_cancel(c, s, True), 24, 6),
    "cancel_refused": (lambda c, s: fam_cancel(c, s, False), 20, 5),
    "cancel_flown_transfer": (fam_cancel_flown, 8, 2),
    "change_flight": (lambda c, s: fam_change_flight(c, s, True), 16, 4),
    "change_flight_refused": (lambda c, s: fam_change_flight(c, s, False), 10, 3),
    "change_cabin": (fam_change_cabin, 14, 3),
    "add_bags": (fam_add_bags, 16, 4),
    "bags_or_insurance_refused": (fam_bags_or_insurance_refused, 10, 3),
    "change_passenger": (lambda c, s: fam_change_passenger(c, s, True), 12, 3),
    "passenger_count_refused": (lambda c, s: fam_change_passenger(c, s, False), 6, 2),
    "compensation_cancelled": (fam_compensation_cancelled, 14, 4),
    "delay_change_compensation": (fam_delay, 10, 3),
    "out_of_scope_transfer": (fam_transfer, 8, 2),
    "flight_status": (fam_flight_status, 10, 3),
    "total_paid": (fam_total_paid, 8, 2),
    "too_many_passengers_refused": (fam_too_many_passengers, 4, 1),
    "bags_then_cancel": (fam_multi, 12, 3),
}


def build_task(d: Draft, task_id: str, split: str, rng: random.Random, world: World) -> Task:
    goals = [Goal(**g.goal, actions=len(g.actions)) for g in d.goals]
    u = world.users[d.user_id]
    instructions = f"Your name is {u.name.first_name} {u.name.last_name}. " + " Then: ".join(g.instruction for g in d.goals)
    if d.unknown:
        instructions += " You do not remember your reservation id; describe the trip instead."
    scenario = UserScenario(persona=rng.choice(PERSONAS), reason=f"Hi! {goals[0].request}", known_info=d.known, unknown_info=d.unknown,
                            instructions=instructions, goals=goals)  # fmt: skip
    actions = [a for g in d.goals for a in g.actions]
    return Task(id=task_id, split=split, family=d.family, user_id=d.user_id, user=scenario, gold_actions=actions, outputs=d.outputs)


def generate_tasks(world: World, seed: int = 0, *, scale: float = 1.0, strict: bool = False, check: bool = True) -> list[Task]:
    """Tasks for `world`: per family, `scale` x its (train, test) counts, as many as the world allows (all of
    them when `strict`, else best effort: a small world simply gets fewer). Every task is played once with the
    gold agent and the rule-based user, and must score 1 (`check`)."""
    rng = random.Random(seed)
    ctx = Ctx(world, rng)
    tasks: list[Task] = []
    for split in ("train", "test"):
        for name, (builder, n_train, n_test) in FAMILIES.items():
            want = max(1, round((n_train if split == "train" else n_test) * scale))
            made = 0
            for _ in range(want * 4):
                if made == want:
                    break
                draft = builder(ctx, split)
                if draft is None:
                    continue
                tasks.append(build_task(draft, f"{split}-{name}-{made:03d}", split, rng, world))
                made += 1
            if strict and made < want:
                raise RuntimeError(f"family {name}: only {made} of {want} {split} tasks fit this world")
    if check:
        check_tasks(world, tasks)
    return tasks


def check_tasks(world: World, tasks: list[Task]) -> None:
    """Play each task with the gold agent and the rule-based user; anything but reward 1 is a generator bug."""
    from .env import FlightBookingEnv

    env = FlightBookingEnv(split="all", world=world, tasks=tasks)
    for t in tasks:
        result = play(env, t.id)
        if result[0] != 1.0:
            transcript = "\n".join(f"[{m.role}] {m.content[:300]}" for m in env.transcript[1:])
            raise RuntimeError(f"task {t.id}: the gold agent scored {result[0]} ({result[1]})\n{transcript}")


def play(env: Any, task_id: str, agent: Any = None) -> tuple[float, dict[str, float], int]:
    """One episode of `agent` (default: the gold agent) on a task: (reward, breakdown, turns)."""
    obs, _ = env.reset(options={"task_id": task_id})
    agent = agent or GoldAgent(env.unwrapped)
    convo = [dict(m) for m in obs]
    while True:
        action = agent(convo)
        obs, r, term, trunc, info = env.step(action)
        convo.append({"role": "assistant", "content": action})
        convo += [dict(m) for m in obs]
        if term or trunc:
            return r, info["reward_breakdown"], env.turn
