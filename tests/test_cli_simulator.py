"""`--simulator MODEL` on `agentrl rollout` and `agentrl eval`: the env's simulated user gets its chat model the
way training's `env.simulator` gives it (`rollout/build.py`), and bad combinations fail before a model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrl.cli import main
from agentrl.core.records import EpisodeRecord
from agentrl.inference.hf import HFChatModel

FLIGHT = "agentrl/FlightBooking-v0"
LLM_USER = '{"user": "llm", "max_turns": 2}'


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many conversations the simulator's HFChatModel answered."""
    seen: list[int] = []
    real = HFChatModel.complete_batch

    def counted(self, batch, **kw):
        seen.append(len(batch))
        return real(self, batch, **kw)

    monkeypatch.setattr(HFChatModel, "complete_batch", counted)
    return seen


def test_rollout_simulator_plays_the_flight_user(tmp_path: Path, capsys, calls: list[int]) -> None:
    out = tmp_path / "t.jsonl"
    rc = main(
        [
            "rollout",
            "--env",
            FLIGHT,
            "--env-kwargs",
            LLM_USER,
            "--simulator",
            "tiny-random",
            "--model",
            "tiny-random",
            "--episodes",
            "1",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert sum(calls) >= 1, "the LLM user answered the agent's first message"
    rec = EpisodeRecord.from_json(out.read_text().splitlines()[0])
    assert rec.env == FLIGHT and rec.model == "tiny-random" and rec.truncated and len(rec.turns) == 2
    assert rec.turns[0].env_messages and rec.turns[0].env_messages[0]["role"] == "user"


def test_eval_simulator_with_a_scripted_agent(capsys, calls: list[int]) -> None:
    rc = main(
        [
            "eval",
            "--env",
            FLIGHT,
            "--env-kwargs",
            LLM_USER,
            "--simulator",
            "tiny-random",
            "--model",
            "scripted:gold",
            "--episodes",
            "1",
            "--json",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    assert res["simulator"] == "tiny-random" and res["tasks"] == 1 and sum(calls) >= 1


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--env", "agentrl/CreditChain-v0", "--simulator", "tiny-random"], "CreditChain-v0 takes no simulator"),
        (["--env", FLIGHT, "--simulator", "tiny-random"], "user='rule' does not use it"),
        (["--env", FLIGHT, "--env-kwargs", '{"user": "llm"}'], "user='llm' needs simulator"),
        (
            ["--env", FLIGHT, "--env-kwargs", '{"user": "llm", "simulator": "x"}', "--simulator", "tiny-random"],
            "simulator is set and",
        ),
    ],
)
@pytest.mark.parametrize("command", ["rollout", "eval"])
def test_simulator_mistakes_exit_2_before_any_model_loads(
    command: str, argv: list[str], needle: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loading(*a, **k):
        raise AssertionError("a model loaded before the check")

    monkeypatch.setattr("agentrl.inference.models.load_model", no_loading)
    monkeypatch.setattr("agentrl.sim.models.make_chat_model", no_loading)
    extra = ["--out", str(tmp_path / "t.jsonl")] if command == "rollout" else []
    assert main([command, *argv, "--model", "tiny-random", *extra]) == 2
    err = capsys.readouterr().err
    assert f"agentrl {command}: error:" in err and needle in err
