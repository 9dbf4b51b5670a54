"""Episode outcomes (core/outcomes.py): the runner ends every episode one explicit way; an env or simulator that
fails ends only its own episode (env_error / simulator_error, error text kept, scrubbed), never the rollout; the
per-episode wall-clock limit ends an episode as timed_out; infrastructure failures are left out of the update
(or scored 0), with groups kept consistent; the kind survives an EpisodeRecord round trip."""

from __future__ import annotations

from typing import Any

import pytest

from agentrl.core.chat import BaseChatModel
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.outcomes import (
    EpisodeEnd,
    SimulatorError,
    drop_unusable,
    error_text,
    outcome_metrics,
    usable_for_advantages,
)
from agentrl.core.records import EpisodeRecord
from agentrl.core.types import Episode
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.inference.http import HTTPBackendError
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner, failure_kind


def make_runner(tiny, make_env, **kw: Any) -> RolloutRunner:
    model, tok = tiny
    return RolloutRunner(
        make_env, HFPolicy(model, tok), ChatFormatter(tok), SamplingParams(temperature=1.0, max_new_tokens=6), **kw
    )


def specs(n: int) -> list[EpisodeSpec]:
    return [EpisodeSpec(seed=i, group_id=i) for i in range(n)]


class FailingModel(BaseChatModel):
    def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None) -> str:
        raise ValueError("the simulator's model broke")


def failing_env(plain_env_cls, exc_for_seed: dict[int, Exception], *, in_reset: bool = False):
    class Failing(plain_env_cls):
        def setup(self, options):
            out = super().setup(options)
            self.state["seed"] = self._seed
            if in_reset and self._seed in exc_for_seed:
                raise exc_for_seed[self._seed]
            return out

        def reset(self, *, seed=None, options=None):
            self._seed = seed
            return super().reset(seed=seed, options=options)

        def respond(self, text):
            exc = exc_for_seed.get(self.state["seed"])
            if exc is not None:
                raise exc
            return super().respond(text)

    return Failing


def test_env_error_ends_only_that_episode(tiny, plain_env_cls) -> None:
    r = make_runner(tiny, failing_env(plain_env_cls, {1: RuntimeError("db connection lost\nretry later")}))
    eps = r.collect(specs(3))
    by_seed = {e.seed: e for e in eps}
    bad = by_seed[1]
    assert bad.end is EpisodeEnd.ENV_ERROR and bad.error == "RuntimeError: db connection lost retry later"
    assert bad.reward == 0.0 and bad.success is None and not bad.terminated and not bad.truncated
    assert len(bad.turns) == 1 and bad.turns[0].env_ids == [] and bad.metrics["turns"] == 1.0
    for s in (0, 2):
        assert by_seed[s].end in (EpisodeEnd.TERMINATED, EpisodeEnd.TRUNCATED_TURNS) and by_seed[s].error is None
    assert len(r._pool) == 2, "an env that raised is not reused"
    assert outcome_metrics(eps)["episode/outcome/env_error"] == 1.0


@pytest.mark.parametrize(
    "exc",
    [
        HTTPBackendError(
            "failed after 3 attempts", path="/v1/chat/completions", status=503, attempts=3, retryable=True
        ),
        SimulatorError("the patient model is down"),
        KeyError("wrapped"),  # raised with a SimulatorError as its cause, below
    ],
)
def test_simulator_errors_are_told_apart(tiny, plain_env_cls, exc) -> None:
    if isinstance(exc, KeyError):
        exc.__cause__ = SimulatorError("down")
    (ep,) = make_runner(tiny, failing_env(plain_env_cls, {0: exc})).collect(specs(1))
    assert ep.end is EpisodeEnd.SIMULATOR_ERROR and ep.error.startswith(type(exc).__name__)


def test_exception_inside_a_chat_model_is_a_simulator_error(tiny, notes_env_cls) -> None:
    class BrokenSim(notes_env_cls):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.sim = FailingModel()

        def allowed_replies(self):
            return ["hello"]

    (ep,) = make_runner(tiny, BrokenSim, constrained=True).collect(specs(1))
    assert ep.end is EpisodeEnd.SIMULATOR_ERROR and "the simulator's model broke" in ep.error
    assert failure_kind(RuntimeError("plain")) is EpisodeEnd.ENV_ERROR


def test_reset_failure_is_an_episode_too(tiny, plain_env_cls) -> None:
    r = make_runner(tiny, failing_env(plain_env_cls, {0: SimulatorError("no opening")}, in_reset=True))
    eps = r.collect(specs(2))
    assert [e.seed for e in eps] == [0, 1] and eps[0].end is EpisodeEnd.SIMULATOR_ERROR and eps[0].prompt_ids == []
    assert eps[1].end is not None and not eps[1].end.infra


def test_error_text_is_one_scrubbed_line() -> None:
    exc = RuntimeError("auth failed:\n Authorization: Bearer sk-abcdefghijklmnop api_key=hunter2xyz token: t0k3n")
    text = error_text(exc)
    assert "\n" not in text and "sk-abc" not in text and "hunter2" not in text and "t0k3n" not in text
    assert text.startswith("RuntimeError: auth failed: Authorization: ")
    assert len(error_text(RuntimeError("x" * 5000))) == 300


def test_episode_timeout(tiny, plain_env_cls) -> None:
    eps = make_runner(tiny, plain_env_cls, episode_timeout_s=1e-9).collect(specs(3))
    for e in eps:  # each episode crossed its limit during its first turn; one that ended there keeps its outcome
        assert len(e.turns) == 1
        assert e.end is EpisodeEnd.TIMED_OUT or e.end is EpisodeEnd.TERMINATED
    assert any(e.end is EpisodeEnd.TIMED_OUT and e.reward == 0.0 and e.error is None for e in eps)
    with pytest.raises(ValueError, match="episode_timeout_s"):
        make_runner(tiny, plain_env_cls, episode_timeout_s=0)


def test_normal_ends(tiny, plain_env_cls) -> None:
    eps = make_runner(tiny, plain_env_cls).collect(specs(2))
    assert all(e.end is EpisodeEnd.TRUNCATED_TURNS and e.truncated for e in eps)  # the tiny model never says "stop"
    r = make_runner(tiny, plain_env_cls)
    r.max_seq_len = len(eps[0].prompt_ids) + 12
    (ep,) = r.collect(specs(1))
    assert ep.end is EpisodeEnd.TRUNCATED_CONTEXT and ep.metrics["context_overflow"] == 1.0


def _ep(group: int, end: EpisodeEnd | None, uid: int) -> Episode:
    return Episode(prompt_ids=[1], group_id=group, uid=uid, end=end)


def test_usable_and_drop_keep_groups_consistent() -> None:
    T, E, S, O = EpisodeEnd.TERMINATED, EpisodeEnd.ENV_ERROR, EpisodeEnd.SIMULATOR_ERROR, EpisodeEnd.TIMED_OUT
    eps = [
        _ep(0, T, 1),
        _ep(0, E, 2),
        _ep(0, T, 3),  # loses one, keeps 2
        _ep(1, T, 4),
        _ep(1, S, 5),
        _ep(1, O, 6),  # left with 1: dropped whole
        _ep(2, T, 7),  # a group of one from the start: kept
        _ep(3, EpisodeEnd.TRUNCATED_CONTEXT, 8),
        _ep(3, None, 9),
    ]
    assert usable_for_advantages(eps) == [True, False, True, True, False, False, True, True, True]
    assert usable_for_advantages(eps, "score_zero") == [True] * 9
    with pytest.raises(ValueError, match="exclude_infra"):
        usable_for_advantages(eps, "ignore")
    kept = drop_unusable(eps)
    assert [e.uid for e in kept.episodes] == [1, 3, 7, 8, 9] and kept.small_groups == [1]
    assert sorted(e.uid for e in kept.dropped) == [2, 4, 5, 6]
    assert kept.metrics() == {"episode/dropped": 4.0, "episode/dropped_groups": 1.0}
    assert drop_unusable(eps, "score_zero").episodes == eps
    m = outcome_metrics(eps)
    assert (
        m["episode/outcome/terminated"] == 4.0
        and m["episode/outcome/timed_out"] == 1.0
        and m["episode/outcome/unknown"] == 1.0
    )
    assert set(m) >= {f"episode/outcome/{k.value}" for k in EpisodeEnd}


def test_record_round_trip() -> None:
    ep = Episode(prompt_ids=[1, 2], uid=3, end=EpisodeEnd.SIMULATOR_ERROR, error="HTTPBackendError: 503")
    rec = EpisodeRecord.from_episode(ep)
    back = EpisodeRecord.from_json(rec.to_json())
    assert back.end == "simulator_error" and back.error == "HTTPBackendError: 503" and back == rec
    assert EpisodeEnd(back.end) is EpisodeEnd.SIMULATOR_ERROR
    assert EpisodeRecord.from_episode(Episode(prompt_ids=[1])).to_dict().get("end") is None
