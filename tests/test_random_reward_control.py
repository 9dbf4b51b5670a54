"""The random-reward control (issue 28): `train.random_reward: p` makes every return an estimator sees a
Bernoulli(p) draw that ignores the episode, keyed by (seed, uid) so a resumed run draws the same; the episodes'
own rewards (reward/mean, held-out evaluation) stay real."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_helpers import TINY_GRPO

from agentrl.core.types import Episode
from agentrl.train.config import load_config
from agentrl.train.reward_shaping import RandomReturns
from agentrl.train.trainer import Trainer


def eps(n: int, reward: float = 1.0) -> list[Episode]:
    out = []
    for uid in range(n):
        e = Episode(prompt_ids=[1], uid=uid)
        e.reward = reward
        out.append(e)
    return out


def test_draws_are_bernoulli_and_ignore_the_episode() -> None:
    r = RandomReturns(0.3, seed=7)
    good, bad = r(eps(4000, 1.0)), r(eps(4000, 0.0))
    assert good == bad, "the draw depends on the uid, not on what the episode did"
    assert set(good) == {0.0, 1.0} and sum(good) / len(good) == pytest.approx(0.3, abs=0.03)


def test_draws_are_the_same_in_any_order_and_differ_by_seed() -> None:
    e = eps(50)
    r = RandomReturns(0.5, seed=1)
    assert r(e[::-1]) == r(e)[::-1], "order-free: a resumed run draws what the uninterrupted one did"
    assert RandomReturns(0.5, seed=2)(e) != r(e)
    assert RandomReturns(0.0, seed=1)(e) == [0.0] * 50 and RandomReturns(1.0, seed=1)(e) == [1.0] * 50


def test_the_trainer_trains_on_random_returns_and_logs_real_rewards(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            *TINY_GRPO,
            "ppo.minibatch_size=8",
            "ppo.micro_batch_size=8",
            "train.random_reward=0.5",
            f"train.run_dir={tmp_path / 'run'}",
        ],
    )
    t = Trainer(cfg, console=False)
    assert isinstance(t.returns, RandomReturns)
    seen: list[list[float]] = []
    collected: list[Episode] = []
    returns, collect = t.returns, t.runner.collect
    t.returns = lambda episodes: seen.append(returns(episodes)) or seen[-1]  # type: ignore[method-assign]
    t.runner.collect = lambda specs: collected.extend(out := collect(specs)) or out  # type: ignore[method-assign]
    m = t.train_step()
    (drawn,) = seen
    real = [ep.reward for ep in collected]
    assert set(drawn) <= {0.0, 1.0} and drawn == returns(collected)
    assert m["reward/mean"] == pytest.approx(sum(real) / len(real)), "reward/mean is the env's reward, not the draw"
