"""`EpisodeRecord`: the one JSON shape of a finished episode (trainer logs, `agentrl rollout`, the report), and
how tolerant it is of files written before it or by someone else."""

from __future__ import annotations

import json

import pytest

from agentrl.core.outcomes import EpisodeEnd
from agentrl.core.records import EpisodeRecord, TurnRecord, read_records, write_records
from agentrl.core.types import Episode, Message, Turn


class _Tok:
    def decode(self, ids: list[int]) -> str:
        return "".join(f"<{i}>" for i in ids)


def _episode() -> Episode:
    ep = Episode(
        prompt_ids=[1, 2, 3],
        reward=0.5,
        reward_breakdown={"right": 1.0},
        success=False,
        end=EpisodeEnd.TERMINATED,
        task_id="t-1",
        group_id=2,
        seed=7,
        uid=11,
        metrics={"turns": 2.0},
    )
    ep.turns = [
        Turn([4, 5], [-0.1, -0.2], "hi", "stop", 3, env_ids=[6], env_messages=[Message("user", "ok")]),
        Turn([7], [-0.3], "bye", "length", 6),
    ]
    ep.messages = [
        Message("system", "s"),
        Message("user", "u"),
        Message("assistant", "hi"),
        Message("user", "ok"),
        Message("assistant", "bye"),
    ]
    return ep


def test_from_episode_records_the_conversation_and_the_token_view() -> None:
    rec = EpisodeRecord.from_episode(
        _episode(), _Tok(), advantages=[0.0, 0.0, 0.0, 0.123456789, -1.0, 0.0, 2.0], step=3, algorithm="trepo"
    )
    assert (rec.uid, rec.seed, rec.task_id, rec.group_id, rec.step, rec.algorithm) == (11, 7, "t-1", 2, 3, "trepo")
    assert rec.reward == 0.5 and rec.success is False and rec.terminated and rec.truncated is False
    assert rec.prompt_tokens == 3
    assert rec.turns == [
        TurnRecord("hi", 2, 1, "stop", [{"role": "user", "content": "ok"}]),
        TurnRecord("bye", 1, 0, "length", []),
    ]
    assert [m["role"] for m in rec.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert rec.tokens == ["<1>", "<2>", "<3>", "<4>", "<5>", "<6>", "<7>"]
    assert rec.action_mask == [0, 0, 0, 1, 1, 0, 1]
    assert rec.advantages[3] == 0.12346  # rounded to 5 places, as the trainer always wrote them
    d = rec.to_dict()
    assert "env" not in d and "model" not in d and "extra" not in d  # what a writer lacks is left out
    assert EpisodeRecord.from_json(rec.to_json()) == rec

    plain = EpisodeRecord.from_episode(_episode(), env="agentrl/X-v0", model="m")
    assert plain.tokens is plain.action_mask is plain.advantages is None  # no tokenizer: no per-token view
    assert {"tokens", "action_mask", "advantages", "step", "algorithm"}.isdisjoint(plain.to_dict())


def test_old_trainer_and_rollout_lines_read_back() -> None:
    old_trainer = {
        "step": 12,
        "uid": 4,
        "reward": 1.0,
        "algorithm": "grpo",
        "tokens": ["a", "b"],
        "action_mask": [0, 1],
        "advantages": [0.0, 0.5],
    }
    rec = EpisodeRecord.from_json(json.dumps(old_trainer))
    assert (rec.step, rec.uid, rec.reward, rec.algorithm, rec.tokens, rec.action_mask, rec.advantages) == (
        12,
        4,
        1.0,
        "grpo",
        ["a", "b"],
        [0, 1],
        [0.0, 0.5],
    )
    assert rec.messages == [] and rec.turns == [] and rec.success is None and rec.extra == {}
    assert rec.to_dict() == {**old_trainer, "reward_breakdown": {}, "turns": [], "messages": [], "metrics": {}}

    old_rollout = {
        "env": "agentrl/CreditChain-v0",
        "model": "tiny-random",
        "seed": 5,
        "task_id": "abc",
        "reward": 0.5,
        "reward_breakdown": {"right_turns": 1.0},
        "success": False,
        "terminated": True,
        "truncated": False,
        "prompt_tokens": 40,
        "turns": [
            {
                "text": "1",
                "sampled_tokens": 2,
                "env_tokens": 9,
                "finish_reason": "stop",
                "env_messages": [{"role": "user", "content": "red"}],
            }
        ],
        "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": "1"}],
        "metrics": {"turns": 1.0},
    }
    rec = EpisodeRecord.from_json(json.dumps(old_rollout))
    assert rec.to_dict() == old_rollout  # nothing lost, nothing added
    assert rec.tokens is None and rec.turns[0].env_tokens == 9


def test_unknown_keys_survive_and_bad_values_are_dropped() -> None:
    line = json.dumps(
        {
            "uid": "x",
            "reward": "nan",
            "step": "12",
            "success": "yes",
            "tokens": "abc",
            "future_key": [1, 2],
            "advantages": [1, "inf", None, "0.5"],
            "action_mask": [True, 0, 2],
            "messages": [{"role": "user"}, "junk", {"content": "no role"}],
            "reward_breakdown": {"a": "1", "b": "x"},
        }
    )
    rec = EpisodeRecord.from_json(line)
    assert rec.uid == "x" and rec.reward is None and rec.step is None and rec.success is None and rec.tokens is None
    assert rec.advantages == [1.0, 0.0, 0.0, 0.5] and rec.action_mask == [1, 0, 1]
    assert rec.messages == [{"role": "user", "content": ""}] and rec.reward_breakdown == {"a": 1.0}
    assert rec.extra == {"future_key": [1, 2]} and json.loads(rec.to_json())["future_key"] == [1, 2]
    with pytest.raises(ValueError, match="JSON object"):
        EpisodeRecord.from_json("[1, 2]")
    with pytest.raises(ValueError):
        EpisodeRecord.from_json('{"uid": 1')


def test_read_and_write_records() -> None:
    recs = [EpisodeRecord(uid=1, reward=1.0), EpisodeRecord(uid=2, reward=0.0)]
    text = write_records(recs)
    assert text.endswith("\n") and len(text.splitlines()) == 2
    good, bad = read_records([*text.splitlines(), "", "not json", "3"])
    assert [(i, r.uid) for i, r in good] == [(1, 1), (2, 2)]
    assert [i for i, _ in bad] == [4, 5]
