"""What task families build from and into: `Ctx` (the world, a read-only database to call tools on, the rng
and each split's users) and `Draft` / `GoalDraft` (a task before generator.build_task turns it into a Task).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..policy import segment_statuses
from ..reward import ReplayState
from ..tools import TOOLS_BY_NAME
from ..world import CreditCard, Database, GiftCard, Reservation, User, World
from . import Action


@dataclass
class GoalDraft:
    goal: dict[str, Any]  # Goal fields except `actions`
    actions: list[Action]
    instruction: str  # the goal in words for an LLM user


@dataclass
class Draft:
    family: str
    user_id: str
    goals: list[GoalDraft]
    known: dict[str, str]
    unknown: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


class Ctx:
    """What families draw from: the world, a read-only database to call tools on, the rng, the split's users."""

    def __init__(self, world: World, rng: random.Random, test_share: int = 5):
        self.world = world
        self.db = Database(world)
        self.rng = rng
        self.today = world.clock.date()
        self.days = sorted({d for f in world.flights.values() for d in f.dates})
        self.users = {s: sorted(u for u in world.users if (user_split(u, test_share) == s)) for s in ("train", "test")}
        self.used: set[str] = set()  # reservation ids (and "user:<id>" for booking tasks) already in a task

    def read(self, name: str, **arguments: Any) -> tuple[Action, Any]:
        """Call a read tool as the agent would; the action and its parsed result."""
        action = Action(name=name, arguments=arguments)
        result = TOOLS_BY_NAME[name].invoke(arguments, state=ReplayState(self.db))
        if not result.ok:
            raise RuntimeError(f"generator read {name}({arguments}) failed: {result.content}")
        try:
            return action, json.loads(result.content)
        except ValueError:
            return action, result.content

    def reservations(self, split: str, pred: Callable[[User, Reservation], bool]) -> list[tuple[User, Reservation]]:
        out = []
        for uid in self.users[split]:
            u = self.world.users[uid]
            for rid in u.reservations:
                r = self.world.reservations[rid]
                if rid not in self.used and r.status is None and self.well_formed(r) and pred(u, r):
                    out.append((u, r))
        return out

    def well_formed(self, r: Reservation) -> bool:
        """The reservation's flights form its own trip (policy_rules.route_problem): the families' changes and
        their policy checks assume it. Published worlds hold reservations that do not (origin == destination)."""
        key = ("well_formed", r.reservation_id)
        hit = self.world.memo.get(key)
        if hit is None:
            from ..policy_rules import route_problem

            legs = [(s.origin, s.destination) for s in r.flights]
            hit = self.world.memo[key] = route_problem(legs, r.origin, r.destination, r.flight_type) is None
        return hit

    def pick(self, split: str, pred: Callable[[User, Reservation], bool]) -> tuple[User, Reservation] | None:
        cands = self.reservations(split, pred)
        if not cands:
            return None
        u, r = self.rng.choice(cands)
        self.used.add(r.reservation_id)
        return u, r

    def statuses(self, r: Reservation) -> list[str]:
        return segment_statuses(self.db, r)

    def all_available(self, r: Reservation) -> bool:
        return all(s == "available" for s in self.statuses(r))

    def future_day(self, lo: int = 1, hi: int | None = None) -> str | None:
        days = [d for d in self.days if (dt.date.fromisoformat(d) - self.today).days >= lo]
        if hi is not None:
            days = [d for d in days if (dt.date.fromisoformat(d) - self.today).days <= hi]
        return self.rng.choice(days) if days else None

    def change_payment(self, u: User, amount: float) -> str | None:
        """A credit card, else a gift card that covers `amount`: what changes are paid with."""
        cards = [p for p, m in u.payment_methods.items() if isinstance(m, CreditCard)]
        gifts = [p for p, m in u.payment_methods.items() if isinstance(m, GiftCard) and m.amount >= max(amount, 0)]
        opts = cards + gifts
        return self.rng.choice(opts) if opts else None


def user_split(user_id: str, test_share: int = 5) -> str:
    return "test" if int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % test_share == 0 else "train"


def known_ids(
    u: User, r: Reservation | None, rng: random.Random, ctx: Ctx, hide_rid: float = 0.3
) -> tuple[dict[str, str], list[str], list[Action]]:
    """The user's id, and the reservation id unless the user has forgotten it (then the agent must look it up:
    get_user_details comes first in the gold actions, and the user describes the trip instead)."""
    known = {"user_id": f"My user id is {uid_of(u, ctx)}."}
    if r is None:
        return known, [], []
    if rng.random() < hide_rid and len(u.reservations) > 1:
        first = r.flights[0]
        known["trip"] = (
            f"It's my trip from {r.origin} to {r.destination} leaving on {first.date} (flight {first.flight_number})."
        )
        return known, ["reservation_id"], [ctx.read("get_user_details", user_id=uid_of(u, ctx))[0]]
    known["reservation_id"] = f"The reservation id is {r.reservation_id}."
    return known, [], []


def uid_of(u: User, ctx: Ctx) -> str:
    key = ("uid", id(u))
    if key not in ctx.world.memo:
        ctx.world.memo[key] = next(k for k, v in ctx.world.users.items() if v is u)
    return ctx.world.memo[key]
