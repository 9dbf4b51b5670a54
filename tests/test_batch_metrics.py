"""The batch's logged metrics (agentrl/train/batch_metrics.py), against hand computations."""

from __future__ import annotations

import pytest
import torch

from agentrl.core.types import Episode, TrainBatch
from agentrl.train.batch_metrics import advantage_metrics, best_and_worst, family_rows


def test_best_and_worst_picks_the_lowest_half_and_the_highest_rest_in_order() -> None:
    rewards = [0.5, 0.1, 0.9, 0.3, 0.7]
    assert best_and_worst(rewards, 3) == [1, 2, 4]  # lowest 1 (0.1), highest 2 (0.9, 0.7), original order
    assert best_and_worst(rewards, 4) == [1, 2, 3, 4]
    assert best_and_worst(rewards, 1) == [2]
    assert best_and_worst([0.2, 0.4], 8) == [0, 1], "fewer than n: all of them"
    with pytest.raises(ValueError, match="has a reward"):
        best_and_worst([0.2, None], 2)


def test_family_rows_mark_the_groups_without_spread() -> None:
    eps = [
        Episode(prompt_ids=[1], reward=1.0, task_id="a", group_id=0),
        Episode(prompt_ids=[1], reward=0.0, task_id="b", group_id=1),
        Episode(prompt_ids=[1], reward=1.0, task_id="c", group_id=1),
    ]
    rows = family_rows(eps, {"a": "capital", "b": "weekday", "c": None}, flat={0})
    assert rows == [("capital", 1.0, False), ("weekday", 0.0, True), (None, 1.0, True)]


def test_advantage_metrics_are_over_agent_tokens_only() -> None:
    adv = torch.tensor([[1.0, -3.0, 9.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    ids = torch.ones(2, 3, dtype=torch.long)
    batch = TrainBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        action_mask=mask,
        old_logprobs=torch.zeros(2, 3),
        advantages=adv,
    )
    m = advantage_metrics(batch)
    vals = torch.tensor([1.0, -3.0, 2.0], dtype=torch.float64)
    assert m["adv/mean"] == pytest.approx(0.0)
    assert m["adv/std"] == pytest.approx(float(vals.std(unbiased=False)), rel=1e-6)
    assert m["adv/abs_max"] == 3.0, "the 9.0 is not an agent token"
