"""Which task each group of an update runs (issue 28, part 1): `rollout.task_draw`.

Per-update reward is decided by which few tasks were drawn, and a group whose episodes all fail (or all succeed)
carries no signal. So the draw is a choice:

* `seed` (default): no task is chosen here; the env draws one from the group's seed (`Trainer._episode_specs`),
  exactly as before this option existed.
* `stratified`: the env's tasks (`task_ids()`) are split into strata by `MultiTurnEnv.task_family` (ToolUse: the
  task's family, Consultation: the case's diagnosis; an env without the hook has one stratum). Each draw takes the
  stratum drawn least so far (over the whole run, refills included); among those, one the current update has not
  drawn yet; among those, the first in a seeded order of (step, round). Within a stratum, tasks come in seeded
  permutations, one pass after another. So the strata's counts never differ by more than one (draws 1..F of the
  run, F+1..2F, ... each hold every one of the F strata once), and an update of n groups covers min(n, F) strata.
* `success_band`: each task keeps its recent success: the last `rollout.draw_window` group means of its episodes'
  success (1/0; the reward where an env sets no success), from training episodes that no infrastructure failure
  ended. A task is *in the band* when that mean is strictly between 0 and 1: its groups are the ones whose rewards
  spread. Of an update's n groups, a fraction `rollout.draw_uniform` (stochastically rounded: ⌊u·n + U⌋ with U
  uniform on [0, 1), so at most ⌈u·n⌉) is drawn uniformly over every task, so no task is starved; the others are
  drawn without replacement from the band, then from the tasks never seen (explored), then from the rest. A task
  is drawn at most once per update while there are others left.
  Measured failure (BENCHMARKS.md "Agent learning beyond noise", setting `band`): the band can be a handful of
  tasks of one kind. SmolLM2 after SFT on ToolUse tiers 1-2 kept 3-5 band tasks, all tier 1 (one tool call; the
  tier-2 tasks it tried scored 0 at temperature 1 and left), so GRPO trained 10 updates on the same few one-call
  tasks and held-out tier 2 fell from 24 of 50 solved to 0. Watch `draw/band_tasks`; prefer `stratified` (with
  `rollout.refill_rounds` for the signal) unless the band is large and spans the task kinds.

Every object is seeded and resumable: a draw depends only on (run seed, step, round) and the object's state
(`state_dict`), which the checkpoint holds. The trainer draws every group of an update (global group indices), on
every rank, and feeds `observe` the outcomes of every rank's groups, so all ranks hold the same state and draw the
same tasks.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from agentrl.core.types import Episode
from agentrl.rollout.build import ResolvedEnv
from agentrl.train.config import ConfigError

ONE_STRATUM = "all"  # the stratum of tasks whose env names no family


def _rng(*parts: Any) -> random.Random:
    """A generator seeded by a stable hash of `parts` (Python's hash() of a str changes between processes)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(h, "little"))


def episode_score(ep: Episode) -> float:
    """What "success" means for the band: 1/0 where the env says whether the episode succeeded, else the reward."""
    return float(ep.success) if ep.success is not None else float(ep.reward)


def group_scores(episodes: list[Episode]) -> list[tuple[str, float]]:
    """(task id, mean `episode_score`) per group, in first-seen group order, over the episodes that no infrastructure
    failure (env or simulator error, timeout) ended; a group left with none is skipped (its outcome says nothing
    about the task)."""
    by_group: dict[int, list[Episode]] = defaultdict(list)
    for ep in episodes:
        if ep.end is None or not ep.end.infra:
            by_group[ep.group_id].append(ep)
    out = []
    for eps in by_group.values():
        out.append((eps[0].task_id, sum(episode_score(e) for e in eps) / len(eps)))
    return out


class TaskDraws(Protocol):
    """One update's task choices. `draw` returns one task id per group (None: the env draws from the seed)."""

    needs_tasks: ClassVar[bool]  # built from the env's task list (`task_ids()`)
    observes: ClassVar[bool]  # reads the groups' outcomes (`observe`); the trainer gathers them over ranks

    def draw(self, n: int, *, step: int, round_: int) -> list[str | None]: ...
    def observe(self, scores: list[tuple[str, float]]) -> None: ...
    def metrics(self) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SeedDraws:
    """`seed`: no choice here; each group's env draws its task from the group's seed (the behaviour before
    `rollout.task_draw`)."""

    needs_tasks: ClassVar[bool] = False
    observes: ClassVar[bool] = False

    def draw(self, n: int, *, step: int, round_: int) -> list[str | None]:
        return [None] * n

    def observe(self, scores: list[tuple[str, float]]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class StratifiedDraws:
    """`stratified`: the least drawn stratum first, one not drawn in this update among equals; tasks within a
    stratum in seeded passes (module docstring)."""

    needs_tasks: ClassVar[bool] = True
    observes: ClassVar[bool] = False

    def __init__(self, task_ids: list[str], families: dict[str, str | None], *, seed: int):
        if not task_ids:
            raise ValueError("stratified task draws need at least one task")
        strata: dict[str, list[str]] = defaultdict(list)
        for tid in task_ids:
            strata[families.get(tid) or ONE_STRATUM].append(tid)
        self.strata = {name: strata[name] for name in sorted(strata)}  # task-list order within each stratum
        self.names = list(self.strata)
        self.seed = seed
        self.drawn = 0  # draws so far, over the whole run
        self.per_stratum = {name: 0 for name in self.names}  # draws so far from each stratum
        self._update_strata: set[str] = set()

    def draw(self, n: int, *, step: int, round_: int) -> list[str | None]:
        if round_ == 0:  # a new update
            self._update_strata = set()
        order = _rng(self.seed, "strata", step, round_).sample(self.names, len(self.names))
        rank = {name: r for r, name in enumerate(order)}
        out: list[str | None] = []
        for _ in range(n):
            # the least drawn stratum; among those, one this update has not drawn yet; then a seeded order
            name = min(self.names, key=lambda s: (self.per_stratum[s], s in self._update_strata, rank[s]))
            tasks = self.strata[name]
            passes, j = divmod(self.per_stratum[name], len(tasks))
            out.append(_rng(self.seed, "stratum", name, passes).sample(tasks, len(tasks))[j])
            self.per_stratum[name] += 1
            self.drawn += 1
            self._update_strata.add(name)
        return out

    def observe(self, scores: list[tuple[str, float]]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {"draw/strata": float(len(self.names)), "draw/strata_drawn": float(len(self._update_strata))}

    def state_dict(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "per_stratum": dict(self.per_stratum)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state["per_stratum"]) - set(self.names)
        if unknown:
            raise ValueError(f"resume: the saved task draws name strata this env does not have ({sorted(unknown)[:3]})")
        self.drawn = int(state["drawn"])
        self.per_stratum = {name: int(state["per_stratum"].get(name, 0)) for name in self.names}


class SuccessBandDraws:
    """`success_band`: prefer tasks whose recent success is strictly between 0 and 1, explore unseen ones, and draw
    a bounded fraction uniformly (module docstring)."""

    needs_tasks: ClassVar[bool] = True
    observes: ClassVar[bool] = True

    def __init__(self, task_ids: list[str], *, seed: int, window: int, uniform: float):
        if not task_ids:
            raise ValueError("success-band task draws need at least one task")
        if window < 1 or not 0.0 <= uniform <= 1.0:
            raise ValueError(f"success_band needs window >= 1 and 0 <= uniform <= 1, got {window}, {uniform}")
        self.task_ids = list(task_ids)
        self._known = set(task_ids)
        self.seed, self.window, self.uniform = seed, window, uniform
        self.recent: dict[str, list[float]] = {}  # task -> its last `window` group means, oldest first
        self._now: set[str] = set()  # tasks drawn in the current update (refill rounds included)
        self._counts = {"band": 0, "unseen": 0, "rest": 0, "uniform": 0}

    def success(self, task: str) -> float | None:
        r = self.recent.get(task)
        return sum(r) / len(r) if r else None

    def band(self) -> list[str]:
        """Tasks whose recent success is strictly between 0 and 1, in task-list order."""
        return [t for t in self.task_ids if (s := self.success(t)) is not None and 0.0 < s < 1.0]

    def draw(self, n: int, *, step: int, round_: int) -> list[str | None]:
        rng = _rng(self.seed, "band", step, round_)
        if round_ == 0:  # a new update
            self._now = set()
            self._counts = dict.fromkeys(self._counts, 0)
        n_uniform = min(n, math.floor(self.uniform * n + rng.random()))  # stochastic rounding: E = u·n, ≤ ⌈u·n⌉
        in_band = set(self.band())
        pools = {
            "band": [t for t in self.task_ids if t in in_band],
            "unseen": [t for t in self.task_ids if t not in self.recent],
            "rest": [t for t in self.task_ids if t in self.recent and t not in in_band],
        }
        out: list[str] = []
        for name, pool in pools.items():  # preferred slots: band first, then unseen, then the rest
            left = [t for t in pool if t not in self._now]
            take = rng.sample(left, min(n - n_uniform - len(out), len(left)))
            self._counts[name] += len(take)
            self._now.update(take)
            out += take
        while len(out) < n:  # uniform slots, and any a task list smaller than the update leaves
            fresh = [t for t in self.task_ids if t not in self._now] or self.task_ids  # repeats only when all drawn
            t = rng.choice(fresh)
            self._counts["uniform"] += 1
            self._now.add(t)
            out.append(t)
        rng.shuffle(out)  # under torchrun ranks take blocks of groups: none gets only the band
        return list(out)

    def observe(self, scores: list[tuple[str, float]]) -> None:
        for task, score in scores:
            if task not in self._known:  # e.g. an episode whose env failed before it named a task
                continue
            r = self.recent.setdefault(task, [])
            r.append(float(score))
            del r[: max(0, len(r) - self.window)]

    def metrics(self) -> dict[str, float]:
        return {
            "draw/band_tasks": float(len(self.band())),
            "draw/unseen_tasks": float(sum(1 for t in self.task_ids if t not in self.recent)),
            **{f"draw/from_{k}": float(v) for k, v in self._counts.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        return {"recent": {t: list(r) for t, r in self.recent.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = {t: [float(x) for x in r][-self.window :] for t, r in state["recent"].items() if t in self._known}


def _stratified(env: ResolvedEnv, rollout: Any, seed: int) -> StratifiedDraws:
    ids = list(env.task_ids or [])
    return StratifiedDraws(ids, {t: env.task_families.get(t) for t in ids}, seed=seed)


def _band(env: ResolvedEnv, rollout: Any, seed: int) -> SuccessBandDraws:
    return SuccessBandDraws(
        list(env.task_ids or []), seed=seed, window=rollout.draw_window, uniform=rollout.draw_uniform
    )


# rollout.task_draw -> (class, builder from the run's resolved env); looked up, never branched on
DRAWS: dict[str, tuple[type[TaskDraws], Callable[[Any, Any, int], Any]]] = {
    "seed": (SeedDraws, lambda env, rollout, seed: SeedDraws()),
    "stratified": (StratifiedDraws, _stratified),
    "success_band": (SuccessBandDraws, _band),
}


def build_task_draws(rollout: Any, seed: int, env: ResolvedEnv) -> TaskDraws:
    """The run's task draws for `rollout.task_draw` (with `draw_window`, `draw_uniform`). Draws that choose tasks
    read the run's env's task list and families (`resolve_env` read them; nothing is built here); an env without a
    task list is a ConfigError."""
    cls, build = DRAWS[rollout.task_draw]
    if not cls.needs_tasks:
        return build(env, rollout, seed)
    if not env.task_ids:
        raise ConfigError(
            f"rollout.task_draw={rollout.task_draw} chooses among an env's fixed tasks, and {env.env_id} "
            "has no task list (task_ids() is None): use rollout.task_draw=seed"
        )
    return build(env, rollout, seed)
