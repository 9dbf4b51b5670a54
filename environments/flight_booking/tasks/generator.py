"""Task generator: writes tasks from a world, each one solvable by construction.

Each family picks users / reservations that fit it, computes the gold actions through the same tools the
agent calls (search results, prices and statuses come from the tools; fares from policy.py), and writes
the user's side (requests, known / unknown info, what the user must hear to say yes). `generate_tasks`
then plays every task with the gold agent and the rule-based user and keeps it only at reward 1. On the
shipped world (`strict=True`, generate.py) a failure is a generator bug and raises; on a user's world (a
published one holds records no family was written for) the task is skipped, counted in
`world.memo["skipped_tasks"]`, and the first reasons are logged once — one odd record never takes the env
down. Families pick only records they can handle (drafts.Ctx.reservations: a reservation whose flights
do not form its own trip, such as the 69 published ones whose origin equals their destination, is never picked).

Splits are by user: a user (chosen by a hash of the id) belongs to train or test, never both, so no test
task reuses a train task's user or reservation.

The families live in ../families/: booking.py (new reservations), reservation.py (changes to existing
ones) and service.py (disruptions, information, transfers); they build `Draft`s (drafts.py) worded with
wording.py. This module lists them with their counts and turns drafts into tasks.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from agentrl.eval.evaluate import play_scripted

from ..families.booking import fam_book, fam_too_many_passengers
from ..families.reservation import (
    fam_add_bags,
    fam_bags_or_insurance_refused,
    fam_cancel,
    fam_cancel_flown,
    fam_change_cabin,
    fam_change_flight,
    fam_change_passenger,
    fam_multi,
)
from ..families.service import (
    fam_compensation_cancelled,
    fam_delay,
    fam_flight_status,
    fam_total_paid,
    fam_transfer,
)
from ..scripted import GoldAgent
from ..world import World
from . import Goal, Task, UserScenario
from .drafts import Ctx, Draft
from .wording import PERSONAS

log = logging.getLogger(__name__)
MAX_LOGGED_REASONS = 3

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
    instructions = f"Your name is {u.name.first_name} {u.name.last_name}. " + " Then: ".join(
        g.instruction for g in d.goals
    )
    if d.unknown:
        instructions += " You do not remember your reservation id; describe the trip instead."
    scenario = UserScenario(persona=rng.choice(PERSONAS), reason=f"Hi! {goals[0].request}", known_info=d.known, unknown_info=d.unknown,
                            instructions=instructions, goals=goals)  # fmt: skip
    actions = [a for g in d.goals for a in g.actions]
    return Task(
        id=task_id,
        split=split,
        family=d.family,
        user_id=d.user_id,
        user=scenario,
        gold_actions=actions,
        outputs=d.outputs,
    )


def generate_tasks(
    world: World, seed: int = 0, *, scale: float = 1.0, strict: bool = False, check: bool = True
) -> list[Task]:
    """Tasks for `world`: per family, `scale` x its (train, test) counts, as many as the world allows (all of
    them when `strict`, else best effort: a small world simply gets fewer). Every task is played once with the
    gold agent and the rule-based user, and must score 1 (`check`)."""
    rng = random.Random(seed)
    ctx = Ctx(world, rng)
    tasks: list[Task] = []
    failed: list[tuple[str, str]] = []  # drafts a family could not finish on this world (non-strict only)
    for split in ("train", "test"):
        for name, (builder, n_train, n_test) in FAMILIES.items():
            want = max(1, round((n_train if split == "train" else n_test) * scale))
            made = 0
            for _ in range(want * 4):
                if made == want:
                    break
                tid = f"{split}-{name}-{made:03d}"
                try:
                    draft = builder(ctx, split)
                    if draft is None:
                        continue
                    task = build_task(draft, tid, split, rng, world)
                except (RuntimeError, ValueError, KeyError) as exc:  # a record the family was not written for
                    if strict:
                        raise
                    if not failed or failed[-1][0] != tid:  # one entry per task slot, however many draws failed
                        failed.append(
                            (tid, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
                        )
                    continue
                tasks.append(task)
                made += 1
            if strict and made < want:
                raise RuntimeError(f"family {name}: only {made} of {want} {split} tasks fit this world")
    if check:
        tasks = check_tasks(world, tasks, strict=strict)
    if failed:
        skipped = world.memo.setdefault("skipped_tasks", [])
        skipped[:0] = failed
        log.warning(
            "world %r: %d generated tasks could not be built on it, skipped (first: %s)",
            world.name,
            len(failed),
            "; ".join(f"{t}: {why}" for t, why in failed[:MAX_LOGGED_REASONS]),
        )
    return tasks


def _why(breakdown: dict[str, float]) -> str:
    failed = [k for k, v in breakdown.items() if k != "reward" and (v == 0.0 or k.startswith("policy/"))]
    return ", ".join(failed) or "reward below 1"


def check_tasks(world: World, tasks: list[Task], *, strict: bool = True) -> list[Task]:
    """Play each task with the gold agent and the rule-based user; keep those scoring 1. `strict`: anything else
    is a generator bug and raises. Otherwise it is skipped: counted in world.memo["skipped_tasks"] (a list of
    (task id, reason)) and the first reasons logged once."""
    from ..env import FlightBookingEnv

    if not tasks:
        return []
    env = FlightBookingEnv(split="all", world=world, tasks=tasks)
    kept, skipped = [], []
    for t in tasks:
        try:
            result = play(env, t.id)
        except RuntimeError as exc:  # a gold action failing on this world (reward.replay raises)
            if strict:
                raise
            skipped.append((t.id, str(exc).splitlines()[0][:200]))
            continue
        if result[0] == 1.0:
            kept.append(t)
            continue
        if strict:
            transcript = "\n".join(f"[{m.role}] {m.content[:300]}" for m in env.transcript[1:])
            raise RuntimeError(f"task {t.id}: the gold agent scored {result[0]} ({result[1]})\n{transcript}")
        skipped.append((t.id, f"the gold agent scored {result[0]} ({_why(result[1])})"))
    world.memo["skipped_tasks"] = skipped
    if skipped:
        first = "; ".join(f"{tid}: {why}" for tid, why in skipped[:MAX_LOGGED_REASONS])
        log.warning(
            "world %r: skipped %d of %d generated tasks the gold agent cannot solve on it (first: %s)",
            world.name,
            len(skipped),
            len(tasks),
            first,
        )
    return kept


def play(env: Any, task_id: str, agent: Any = None) -> tuple[float, dict[str, float], int]:
    """One episode of `agent` (default: the gold agent) on a task: (reward, breakdown, turns)."""
    # seed=None: reset without reseeding, so which generated tasks the gold agent keeps does not move
    ep = play_scripted(env, lambda e: agent or GoldAgent(e.unwrapped), seed=None, task=task_id)
    return ep.reward, ep.final_info["reward_breakdown"], env.turn
