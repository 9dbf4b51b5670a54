"""TRePO's branch continuations as training rows (issue 28, part 2; `algorithm.params.train_continuations`): the
continuations are on-policy samples, so with the option on each one sampled at the policy's temperature becomes a
row whose tokens after the branch point get R(C) − B̂₋C (the mean return of the other samples from the same prefix)
and whose prefix carries no loss. Hand computations; the trainer's batch with the option on and off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import agentrl.train.trainer as trainer_mod
from agentrl.algo.advantages import REGISTRY, continuation_rows, whiten
from agentrl.algo.advantages.params import TRePOParams
from agentrl.core.outcomes import EpisodeEnd
from agentrl.core.types import Episode, Turn
from agentrl.train.branch_values import estimate_branch_values
from agentrl.train.config import ConfigError, load_config
from agentrl.train.trainer import Trainer


# -- the pure function ---------------------------------------------------------------------------------------------
def test_continuation_rows_by_hand() -> None:
    # row 0 branched at 2: its agent tokens 1 (the parent's), 2, 4, 5; row 1 at 4: agent tokens 1, 2, 4, 5, 6
    mask = torch.tensor([[0, 1, 1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 1, 1, 1, 0]], dtype=torch.float32)
    own = [1.0, 0.0]
    others = [[0.0, 1.0, 0.5], [1.0]]  # B̂₋C = 0.5 and 1.0
    m, a = continuation_rows(mask, [2, 4], own, others)
    assert m.tolist() == [[0, 0, 1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1, 0]]
    assert torch.allclose(a, torch.tensor([[0, 0, 0.5, 0, 0.5, 0.5, 0, 0], [0, 0, 0, 0, -1, -1, -1, 0]]))
    _, a = continuation_rows(mask, [2, 4], own, others, mode="interpolate")  # the difference spread over the tokens
    assert torch.allclose(
        a, torch.tensor([[0, 0, 0.5 / 3, 0, 0.5 / 3, 0.5 / 3, 0, 0], [0, 0, 0, 0, -1 / 3, -1 / 3, -1 / 3, 0]])
    )
    assert mask[0, 1] == 1, "the input mask is not changed"


def test_continuation_rows_refuse_bad_input() -> None:
    mask = torch.ones(1, 3)
    with pytest.raises(ValueError, match="no other sample"):
        continuation_rows(mask, [1], [1.0], [[]])
    with pytest.raises(ValueError, match="one branch position"):
        continuation_rows(mask, [1, 2], [1.0], [[0.0]])
    with pytest.raises(ValueError, match="non-finite"):
        continuation_rows(mask, [1], [float("nan")], [[0.0]])
    with pytest.raises(ValueError, match="mode"):
        continuation_rows(mask, [1], [1.0], [[0.0]], mode="nope")


# -- the baseline side each continuation gets (branch_values.py) ---------------------------------------------------
def _episode(uid: int, sampled: list[int], reward: float, group: int = 0, **kw: Any) -> Episode:
    ep = Episode(
        prompt_ids=[1, 2],
        turns=[Turn(sampled, [0.0] * len(sampled), "", "stop", 2, temperature=1.0)],
        reward=reward,
        group_id=group,
        uid=uid,
        end=EpisodeEnd.TERMINATED,
        **kw,
    )
    return ep


class _FakeRunner:
    """Two continuations per request, with the returns `script` gives in request order; `fail` ends one by an env
    error, `greedy` samples one at temperature 0."""

    def __init__(self, script: list[float], fail: int | None = None, greedy: int | None = None):
        self.script, self.fail, self.greedy = script, fail, greedy

    def branch_many(self, requests, **_: Any) -> list[Episode]:
        out, k = [], 0
        for parent, pos, temps in requests:
            for temp in temps:
                c = _episode(100 + k, [7, 8], self.script[k], parent.group_id, parent_uid=parent.uid, branch_pos=pos)
                c.turns[0].temperature = 0.0 if k == self.greedy else temp
                if k == self.fail:
                    c.end, c.reward = EpisodeEnd.ENV_ERROR, 0.0
                out.append(c)
                k += 1
        return out


def test_each_continuation_leaves_itself_out_and_failures_are_not_trained() -> None:
    # W0 and W1 share the prompt (one group): at the first token each sees the other (|S| = 1 < M = 2), so both branch
    w0, w1 = _episode(1, [5, 6], 1.0), _episode(2, [6, 5], 0.0)
    runner = _FakeRunner([0.0, 1.0, 0.5, 1.0], fail=3)  # W0's continuations 0.0, 1.0; W1's 0.5 and a failed one
    bv = estimate_branch_values(runner, [w0, w1], spec="turns", m=2, t_min=None, t_max=1.0, point_seed=0)
    #   continuation 0 (of W0): W0's 1.0, its sibling 1.0, W1's 0.0 shares the prefix
    assert bv.others == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0], None]
    assert bv.returns == [0.0, 1.0, 0.5, 0.0] and bv.failed == 1
    assert bv.trainable(1.0) == ([0, 1, 2], 0)
    assert bv.trainable(0.7) == ([], 3), "sampled at another temperature than the policy's: not an on-policy row"
    bv = estimate_branch_values(
        _FakeRunner([0.0, 1.0, 0.5, 1.0], greedy=0),
        [w0, w1],
        spec="turns",
        m=2,
        t_min=None,
        t_max=1.0,
        point_seed=0,
    )
    assert bv.trainable(1.0) == ([1, 2, 3], 1)


def test_the_param() -> None:
    assert TRePOParams().train_continuations is False
    cfg = load_config(None, ["algorithm.params.train_continuations=true"])
    assert cfg.algorithm.estimator_params().train_continuations is True
    with pytest.raises(ConfigError, match="train_continuations: unknown"):
        load_config(None, ["algorithm.name=grpo", "algorithm.params.train_continuations=true"])


# -- the trainer's batch -------------------------------------------------------------------------------------------
BASE = [
    "model=tiny-random",
    "env.kwargs.turns=2",
    "algorithm.name=trepo",
    "algorithm.params.branch_m=2",
    "algorithm.params.branch_t_min=null",
    "rollout.groups=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=4",
    "rollout.constrained=true",
    "train.checkpoint_every=100",
    "train.log_episodes=0",
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=4",
    "train.seed=4",
]


def _step(tmp: Path, name: str, *extra: str) -> SimpleCapture:
    t = Trainer(load_config(None, [*BASE, *extra, f"train.run_dir={tmp / name}"]), console=False)
    cap = SimpleCapture()
    branch_many = t.runner.branch_many

    def failing_first(requests, **kw):  # the first continuation of the update: ended by an env failure
        conts = branch_many(requests, **kw)
        conts[0].end, conts[0].error = EpisodeEnd.ENV_ERROR, "failing on purpose"
        return conts

    t.runner.branch_many = failing_first  # type: ignore[method-assign]
    extra_sampling, batch = t._extra_sampling, t._batch

    def spy_extra(*a, **k):
        cap.extra = extra_sampling(*a, **k)
        return cap.extra

    def spy_batch(episodes, returns, extra):
        cap.episodes, cap.batch = episodes, batch(episodes, returns, extra)
        return cap.batch

    t._extra_sampling, t._batch = spy_extra, spy_batch  # type: ignore[method-assign]
    cap.metrics = t.train_step()
    return cap


class SimpleCapture:
    extra: dict[str, Any]
    episodes: list[Episode]
    batch: Any
    metrics: dict[str, float]


def test_the_batch_gets_continuation_rows_and_off_is_unchanged(tmp_path: Path) -> None:
    off = _step(tmp_path, "off", "algorithm.whiten=none")
    on = _step(tmp_path, "on", "algorithm.whiten=none", "algorithm.params.train_continuations=true")
    n = len(on.episodes)
    bv = on.extra["branch"]
    keep = on.extra["continuations"]
    assert bv.failed == 1 and 0 not in keep, "the continuation an env failure ended is not trained"
    assert keep == [k for k in range(1, len(bv.episodes))], (
        "every other continuation sampled at the policy's temperature"
    )
    assert on.metrics["branch/trained"] == len(keep) and on.metrics["branch/failed"] == 1.0
    assert "branch/trained" not in off.metrics and off.metrics["branch/failed"] == 1.0
    assert len(on.batch) == n + len(keep) and len(off.batch) == n
    # the episodes' rows are what they are with the option off (same seeds: same episodes and continuations)
    T = off.batch.input_ids.shape[1]
    for f in ("input_ids", "attention_mask", "action_mask", "old_logprobs", "advantages"):
        assert torch.equal(getattr(on.batch, f)[:n, :T], getattr(off.batch, f)), f
        assert not getattr(on.batch, f)[:n, T:].any(), f"{f}: only padding past the episodes' longest row"
    # each continuation row: the sampled sequence, no loss before the branch point, R(C) − mean(others) after it
    for row, k in enumerate(keep, start=n):
        c = bv.episodes[k]
        L, p = len(c.input_ids), c.branch_pos
        assert on.batch.input_ids[row, :L].tolist() == c.input_ids
        want_mask = [0] * p + c.action_mask[p:]
        assert on.batch.action_mask[row, :L].tolist() == want_mask and not on.batch.action_mask[row, L:].any()
        a = bv.returns[k] - sum(bv.others[k]) / len(bv.others[k])
        assert on.batch.advantages[row, :L].tolist() == pytest.approx([a * m for m in want_mask])
        assert on.batch.old_logprobs[row, p:L].tolist() == pytest.approx(c.old_logprobs[p:])
    assert all(bv.others[k] for k in keep)  # the parent at least


def test_continuation_rows_are_whitened_with_the_episodes(tmp_path: Path) -> None:
    raw = _step(tmp_path, "raw", "algorithm.whiten=none", "algorithm.params.train_continuations=true")
    scaled = _step(tmp_path, "scaled", "algorithm.params.train_continuations=true")  # trepo's default: scale
    assert REGISTRY["trepo"].default_whiten == "scale"
    want = whiten(raw.batch.advantages, raw.batch.action_mask, center=False)
    assert torch.allclose(scaled.batch.advantages, want, atol=1e-6)


def test_a_value_head_estimator_never_sees_continuation_rows() -> None:
    with pytest.raises(ConfigError, match="train_continuations: unknown"):
        load_config(None, ["algorithm.name=ppo_gae", "algorithm.params.train_continuations=true"])
    assert trainer_mod.continuation_rows is continuation_rows
