"""Dynamic sampling (issue 28, part 1): groups whose returns are all equal are replaced by groups of fresh tasks
until the batch is full of groups with a spread (bounded rounds); the batch keeps its size, only zero-spread
groups leave, every sampled episode counts in the tokens, and the first draw's reward stays logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrl.core.types import Episode
from agentrl.rollout.runner import EpisodeSpec
from agentrl.train.config import ConfigError, load_config
from agentrl.train.dynamic_sampling import Refill, refill_specs, swap_groups, zero_spread_groups
from agentrl.train.trainer import Trainer


def ep(group: int, reward: float) -> Episode:
    e = Episode(prompt_ids=[1], task_id=f"t{group}", group_id=group)
    e.reward = reward
    return e


def test_zero_spread_groups_by_hand() -> None:
    eps = [ep(0, 1.0), ep(0, 1.0), ep(1, 0.0), ep(1, 1.0), ep(2, 0.0), ep(2, 0.0), ep(3, 0.5)]
    assert zero_spread_groups(eps) == [0, 2, 3]


def test_swap_keeps_the_size_and_drops_only_zero_spread_groups() -> None:
    batch = [ep(0, 1.0), ep(0, 1.0), ep(1, 0.0), ep(1, 1.0), ep(2, 0.0), ep(2, 0.0)]
    specs = [EpisodeSpec(seed=g, group_id=g) for g in (0, 0, 1, 1, 2, 2)]
    fresh = [ep(3, 0.0), ep(3, 1.0), ep(4, 1.0), ep(4, 1.0)]  # group 3 has a spread, group 4 none
    fresh_specs = [EpisodeSpec(seed=g, group_id=g) for g in (3, 3, 4, 4)]
    out, out_specs = swap_groups(batch, specs, [0, 2], fresh, fresh_specs)
    assert len(out) == len(batch) and len(out_specs) == len(specs)
    assert sorted({e.group_id for e in out}) == [1, 2, 3], (
        "one zero-spread group (0) swapped for the one fresh group with spread"
    )
    assert {s.group_id for s in out_specs} == {1, 2, 3}


def test_refill_specs_are_fresh_tasks() -> None:
    a = refill_specs(seed=0, step=3, round_=0, n_groups=2, group_size=2, first_id=4)
    b = refill_specs(seed=0, step=3, round_=1, n_groups=2, group_size=2, first_id=6)
    assert [s.group_id for s in a] == [4, 4, 5, 5] and a[0].seed == a[1].seed != a[2].seed
    assert [s.key for s in a[:3]] == [("refill", 3, 0, 0, 0), ("refill", 3, 0, 0, 1), ("refill", 3, 0, 1, 0)]
    assert not {s.seed for s in a} & {s.seed for s in b}


def test_metrics() -> None:
    r = Refill(first_draw=[ep(0, 1.0), ep(0, 0.0)], groups=4, zero_spread_first=2, rounds=2)
    m = r.metrics(zero_spread_after=1)
    assert (
        m["groups/frac_reward_zero_std"] == 0.5 and m["groups/refilled"] == 1.0 and m["reward/first_draw_mean"] == 0.5
    )


BASE = [
    "model=tiny-random",
    "env.kwargs.turns=2",
    "algorithm.name=grpo",
    "rollout.groups=4",
    "rollout.group_size=2",
    "rollout.max_new_tokens=4",
    "rollout.constrained=true",
    "train.checkpoint_every=100",
    "train.log_episodes=0",
    "ppo.minibatch_size=8",
    "ppo.micro_batch_size=8",
    "optim.lr=1e-3",
    "train.updates=3",
    "train.seed=2",
]


def test_the_trainer_refills_zero_spread_groups(tmp_path: Path) -> None:
    t = Trainer(
        load_config(None, [*BASE, "rollout.refill_rounds=3", f"train.run_dir={tmp_path / 'run'}"]), console=False
    )
    seen, keys = [], []
    collect = t.runner.collect

    def spy(specs: list[EpisodeSpec]) -> list[Episode]:
        seen.append(len(specs))
        keys.extend(s.key for s in specs)
        return collect(specs)

    t.runner.collect = spy  # type: ignore[method-assign]
    m = t.train_step()
    first = m["groups/frac_reward_zero_std"] * 4
    assert seen[0] == 8 and len(seen) - 1 == m["groups/refill_rounds"]
    assert m["groups/refill_rounds"] >= (1 if first else 0)
    assert m["tokens/sampled"] > 0 and sum(seen) >= 8
    assert m["groups/zero_std_after_refill"] <= first, "refilling never adds zero-spread groups"
    assert m["groups/refilled"] == first - m["groups/zero_std_after_refill"]
    assert "reward/first_draw_mean" in m
    # every refill episode is keyed by its step, round and place: seeds of its own, apart from the first draw's
    assert len(set(keys)) == len(keys) == sum(seen) and sum(k[0] == "refill" for k in keys) == sum(seen) - 8


def test_refill_needs_groups_of_two() -> None:
    with pytest.raises(ConfigError, match="rollout.group_size >= 2"):
        load_config(None, ["algorithm.name=trepo", "rollout.group_size=1", "rollout.refill_rounds=2"])
