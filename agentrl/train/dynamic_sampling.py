"""Dynamic sampling (DAPO, Yu et al. 2025, §3.2): a group whose episodes all got the same return carries no
signal for a group-relative estimator (GRPO's and RLOO's advantages are all 0 there), so the update would
spend a slot of its batch on nothing. With `rollout.refill_rounds: k`, such groups are replaced by groups of
fresh tasks, collected in up to k extra rounds, until every group has a spread or the rounds run out.

Pure pieces here; the trainer collects (`Trainer._refill`). The reward curve stays honest: the trainer logs
the first draw's mean reward and the fraction of groups with zero spread (`groups/frac_reward_zero_std`,
the name TRL logs), and every refill episode counts in the sampled tokens.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from agentrl.core.types import Episode
from agentrl.rollout.runner import EpisodeSpec

_REFILL_SALT = 500_009  # keeps refill seeds apart from the regular groups' (`Trainer._episode_specs`)


def zero_spread_groups(episodes: list[Episode]) -> list[int]:
    """Group ids whose episodes' rewards are all equal (a group of one episode included), in first-seen order."""
    by_group: dict[int, list[float]] = defaultdict(list)
    for ep in episodes:
        by_group[ep.group_id].append(float(ep.reward))
    return [g for g, rs in by_group.items() if max(rs) == min(rs)]


def refill_specs(
    *, seed: int, step: int, round_: int, n_groups: int, group_size: int, first_id: int
) -> list[EpisodeSpec]:
    """Specs of `n_groups` fresh groups (fresh task seeds, group ids from `first_id` on) for refill round `round_`.
    Episode i of the round's k-th group is keyed ("refill", step, round_, k, i): its sampling seeds are its own,
    apart from the regular groups' ("train", ...) and from every other round's."""
    specs = []
    for k in range(n_groups):
        task_seed = (seed * 1_000_003 + step * 1009 + _REFILL_SALT * (round_ + 1) + k) & 0x7FFFFFFF
        specs += [
            EpisodeSpec(seed=task_seed, group_id=first_id + k, key=("refill", step, round_, k, i))
            for i in range(group_size)
        ]
    return specs


@dataclass
class Refill:
    """What dynamic sampling did in one update."""

    first_draw: list[Episode]  # the update's regular collection, before anything was replaced
    groups: int  # groups in the batch
    zero_spread_first: int = 0  # of them, with all returns equal in the first draw
    rounds: int = 0  # extra collection rounds run
    extra: list[Episode] = field(default_factory=list)  # every episode the rounds collected (kept or not)

    def metrics(self, zero_spread_after: int) -> dict[str, float]:
        """zero_spread_after: the batch's groups still without spread. `swap_groups` lets a zero-spread group go only
        for a fresh group with a spread, so the groups replaced are the difference."""
        r = [float(ep.reward) for ep in self.first_draw]
        return {
            "groups/frac_reward_zero_std": self.zero_spread_first / max(self.groups, 1),
            "groups/refilled": float(self.zero_spread_first - zero_spread_after),
            "groups/refill_rounds": float(self.rounds),
            "groups/zero_std_after_refill": float(zero_spread_after),
            "reward/first_draw_mean": sum(r) / len(r) if r else float("nan"),
        }


def swap_groups(
    episodes: list[Episode],
    specs: list[EpisodeSpec],
    drop: list[int],
    fresh: list[Episode],
    fresh_specs: list[EpisodeSpec],
) -> tuple[list[Episode], list[EpisodeSpec]]:
    """`episodes`/`specs` without the groups `drop`, with the fresh groups that have a spread in their place (up
    to len(drop) of them; fresh groups without spread are not taken)."""
    flat = set(zero_spread_groups(fresh))
    spread = [g for g in dict.fromkeys(ep.group_id for ep in fresh) if g not in flat]
    take = set(spread[: len(drop)])
    gone = set(drop[: len(take)])  # as many zero-spread groups leave as fresh ones with a spread arrive
    kept_eps = [ep for ep in episodes if ep.group_id not in gone] + [ep for ep in fresh if ep.group_id in take]
    kept_specs = [s for s in specs if s.group_id not in gone] + [s for s in fresh_specs if s.group_id in take]
    return kept_eps, kept_specs
