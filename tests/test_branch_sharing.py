"""TRePO at a lower token cost (issue 29, part 1): every sampled episode that shares W's prefix at a branch point is a
Monte-Carlo sample of V̂ there, so continuations run only where fewer than M such episodes exist; and the cheaper
point sets `sample:q` (random turn subsets, decided without looking ahead) and `divergence` (only where the batch's
episodes part). Hand computations with a fake runner; the unbiasedness of the point sets is in test_length_bias.py."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agentrl.algo.advantages import divergence_points, select_branch_points, shared_prefix_values
from agentrl.algo.advantages.params import TRePOParams
from agentrl.core.outcomes import EpisodeEnd
from agentrl.core.types import Episode, Turn
from agentrl.train.branch_values import estimate_branch_values
from agentrl.train.config import ConfigError, load_config

ENV = [9, 9]


def _ep(uid: int, turns: list[list[int]], reward: float, group: int = 0, prompt: tuple[int, ...] = (1, 2)) -> Episode:
    """Prompt, then each turn's sampled tokens followed by the env's reply (none after the last)."""
    ts, pos = [], len(prompt)
    for k, sampled in enumerate(turns):
        env = ENV if k < len(turns) - 1 else []
        ts.append(Turn(sampled, [0.0] * len(sampled), "", "stop", pos, env_ids=list(env), temperature=1.0))
        pos += len(sampled) + len(env)
    return Episode(prompt_ids=list(prompt), turns=ts, reward=reward, group_id=group, uid=uid, end=EpisodeEnd.TERMINATED)


class _Runner:
    """Records the branch requests; continuation c returns script[c] (request order, then temperature order)."""

    def __init__(self, script: list[float]):
        self.script, self.requests = script, []

    def branch_many(self, requests, **_: Any) -> list[Episode]:
        self.requests = [(parent.uid, pos, len(temps)) for parent, pos, temps in requests]
        out = []
        for parent, pos, temps in requests:
            for _t in temps:
                c = _ep(100 + len(out), [[7]], self.script[len(out)], parent.group_id)
                c.parent_uid, c.branch_pos = parent.uid, pos
                out.append(c)
        return out


# A group of four. Turn starts at 2 and 7 (a 3-token turn, a 2-token env reply). W0, W1 and W2 sample the same first
# turn, so all three share the prefix at 7; W3 parts at its first turn and is alone at 7.
W = [
    _ep(0, [[3, 4, 5], [6]], 1.0),
    _ep(1, [[3, 4, 5], [7]], 0.0),
    _ep(2, [[3, 4, 5], [8]], 1.0),
    _ep(3, [[3, 4, 6], [6]], 0.0),
]


def test_every_episode_sharing_the_prefix_is_a_sample() -> None:
    seqs = [w.input_ids for w in W]
    pos = [w.turn_starts for w in W]
    assert pos == [[2, 7]] * 4
    sh = shared_prefix_values(seqs, [w.reward for w in W], pos)
    # at 2 (the prompt) each sees the other three; at 7 W0 sees W1, W2; W3 is alone
    assert sh == [
        [[0.0, 1.0, 0.0], [0.0, 1.0]],
        [[1.0, 1.0, 0.0], [1.0, 1.0]],
        [[1.0, 0.0, 0.0], [1.0, 0.0]],
        [[1.0, 0.0, 1.0], []],
    ]


def test_continuations_only_where_fewer_than_m_share() -> None:
    runner = _Runner([0.5, 1.0])
    bv = estimate_branch_values(runner, W, spec="turns", m=2, t_min=None, t_max=1.0, point_seed=0)
    # M = 2: the first turn (3 others) and W0..W2's second turn (2 others) are free; only W3's second turn branches
    assert runner.requests == [(3, 7, 2)] and bv.continuations == 2
    assert bv.values[0] == pytest.approx([2 / 4, 2 / 3])  # (1 + 0 + 1 + 0) / 4, then (1 + 0 + 1) / 3: every sharer
    assert bv.values[1] == pytest.approx([2 / 4, 2 / 3])
    assert bv.values[3] == pytest.approx([2 / 4, (0.0 + 0.5 + 1.0) / 3])  # own + its two continuations
    assert bv.baselines[0] == pytest.approx([1 / 3, 1 / 2])  # without W0's own return
    assert bv.baselines[3] == pytest.approx([2 / 3, 0.75])
    # M = 3: now W0..W2's second turn (2 others < 3) branches too, and its value still counts both sharers
    runner = _Runner([0.0] * 12)
    bv = estimate_branch_values(runner, W, spec="turns", m=3, t_min=None, t_max=1.0, point_seed=0)
    assert runner.requests == [(0, 7, 3), (1, 7, 3), (2, 7, 3), (3, 7, 3)]
    assert bv.values[0][1] == pytest.approx((1.0 + 0.0 + 1.0 + 0.0 * 3) / 6)


def test_sample_q_keeps_each_later_turn_independently() -> None:
    starts, agent = [2, 7, 12, 17], [2, 3, 7, 8, 12, 13, 17]
    rng = random.Random(5)
    draws = [rng.random() for _ in range(3)]
    want = [2] + [s for s, u in zip(starts[1:], draws) if u < 0.5]
    assert select_branch_points(starts, agent, "sample:0.5", random.Random(5)) == want
    assert select_branch_points(starts, agent, "sample:1", random.Random(0)) == starts
    # whether turn j is a point uses the j-th draw only: the same prefix of turns gets the same points, however many
    # turns the episode goes on to have (the point set never looks ahead)
    assert select_branch_points(starts[:2], agent[:4], "sample:0.5", random.Random(5)) == [s for s in want if s <= 7]
    for bad in ("sample:0", "sample:1.5", "sample:x"):
        with pytest.raises(ValueError):
            select_branch_points(starts, agent, bad, random.Random(0))


def test_divergence_points_by_hand() -> None:
    seqs = [w.input_ids for w in W]
    assert divergence_points(seqs, [[2, 7]] * 4) == [[2, 7], [2, 7], [2, 7], [2, 7]]
    # four turns: W0 and W1 share two turns, then part; W2 parts from both at its first turn
    a = [1, 2, 3, 9, 9, 4, 9, 9, 5, 9, 9, 6]
    b = [1, 2, 3, 9, 9, 4, 9, 9, 7, 9, 9, 6]
    c = [1, 2, 8, 9, 9, 4, 9, 9, 5, 9, 9, 6]
    starts = [2, 5, 8, 11]
    # W0: shared at 2, 5, 8 (b shares a[:8]); alone at 11 -> kept, and nothing after; W2: shared at 2, alone at 5
    assert divergence_points([a, b, c], [starts] * 3) == [[2, 5, 8, 11], [2, 5, 8, 11], [2, 5]]
    assert divergence_points([a], [starts]) == [[2]], "one episode: alone at its first point"


def test_divergence_branches_once_per_episode_after_it_parts() -> None:
    w = [_ep(0, [[3], [4], [5]], 1.0), _ep(1, [[3], [4], [6]], 0.0), _ep(2, [[8], [4], [5]], 1.0)]
    assert w[0].turn_starts == [2, 5, 8]
    runner = _Runner([0.0] * 6)
    bv = estimate_branch_values(runner, w, spec="divergence", m=1, t_min=None, t_max=1.0, point_seed=0)
    # W0, W1 share up to 8 (one sharer each, >= M = 1: free); W2 is alone at 5: its one point with a continuation,
    # and its later turn start (8) is not a point
    assert bv.positions == [[2, 5, 8], [2, 5, 8], [2, 5]]
    assert runner.requests == [(2, 5, 1)]
    runner = _Runner([0.0] * 6)
    bv = estimate_branch_values(runner, w, spec="turns", m=1, t_min=None, t_max=1.0, point_seed=0)
    assert runner.requests == [(2, 5, 1), (2, 8, 1)], "turns: every later turn of W2 branches"


def test_the_specs_validate() -> None:
    assert TRePOParams(branch_points="sample:0.25").branch_points == "sample:0.25"
    assert TRePOParams(branch_points="divergence").branch_points == "divergence"
    with pytest.raises(ValueError):
        TRePOParams(branch_points="sample:0")
    cfg = load_config(None, ["algorithm.params.branch_points=divergence"])
    assert cfg.algorithm.estimator_params().branch_points == "divergence"
    with pytest.raises(ConfigError):
        load_config(None, ["algorithm.params.branch_points=sample:2"])
