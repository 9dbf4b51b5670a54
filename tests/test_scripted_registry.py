"""Scripted agents live outside the env contract: found by env id (`agentrl.core.registry.scripted_agents`, fed by
the `agentrl.scripted` entry points and `register_scripted`), and no env module imports its scripted module."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import gymnasium as gym
import pytest

from agentrl.core.env import MultiTurnEnv
from agentrl.core.registry import (
    UnknownScriptedAgent,
    env_class,
    env_ids,
    make_env,
    scripted_agent,
    scripted_agents,
    scripted_factory,
)
from agentrl.eval.evaluate import evaluate, play_scripted

ROOT = Path(__file__).resolve().parent.parent
AGENTS = {
    "agentrl/CreditChain-v0": {"gold"},
    "agentrl/ToolUse-v0": {"gold"},
    "agentrl/FlightBooking-v0": {"gold"},
    "agentrl/Consultation-v0": {"good", "wander"},
}
PACKAGES = ("credit", "tool_use", "flight_booking", "consultation")


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_an_env_module_does_not_import_its_scripted_module(package: str) -> None:
    code = (
        f"import sys, environments, environments.{package}.env\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('environments.') and m.endswith('.scripted'))\n"
        "assert not loaded, loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_lookup_lists_every_envs_agents() -> None:
    assert {e: set(scripted_agents(e)) for e in env_ids()} == AGENTS
    assert sorted(ep.name for ep in entry_points(group="agentrl.scripted")) == sorted(AGENTS)


def test_scripted_agents_are_not_part_of_the_env_contract() -> None:
    assert not hasattr(MultiTurnEnv, "scripted_agent") and not hasattr(MultiTurnEnv, "scripted_agents")
    for env_id in AGENTS:
        assert not hasattr(env_class(env_id), "scripted_agents"), env_id


def test_an_unknown_name_lists_the_available_agents() -> None:
    with pytest.raises(
        UnknownScriptedAgent,
        match=r"Consultation-v0 has no scripted agent 'oracle'; "
        r"available: scripted:good, scripted:wander",
    ):
        scripted_factory("agentrl/Consultation-v0", "oracle")
    with pytest.raises(ValueError, match="unknown environment 'agentrl/Nope-v0'"):
        scripted_agents("agentrl/Nope-v0")


def test_scripted_agent_binds_to_the_unwrapped_env() -> None:
    env = gym.make("agentrl/CreditChain-v0", turns=2, disable_env_checker=True)
    obs, _ = env.reset(seed=3)
    act = scripted_agent("agentrl/CreditChain-v0", "gold", env)
    assert act(list(obs)) == env.unwrapped.replies[env.unwrapped.state["seq"][0]]


def test_play_scripted_records_the_whole_episode() -> None:
    # the one scripted-episode loop (`agentrl eval`, `consult run`, the flight task filter): what it records
    env = make_env("agentrl/CreditChain-v0", turns=2).unwrapped
    ep = play_scripted(env, scripted_factory("agentrl/CreditChain-v0", "gold"), seed=3, task=None)
    assert len(ep.turns) == 2 and ep.terminated and not ep.truncated
    assert ep.reward == 1.0 and ep.success and ep.final_info["reward_breakdown"]["right_turns"] == 2.0
    (a0, m0), (a1, m1) = ep.turns
    assert ep.messages == [*ep.opening, {"role": "assistant", "content": a0}, *m0, {"role": "assistant", "content": a1}]
    assert m1 == []
    # seed=None resets without reseeding (the flight task filter's episodes): the env's own random stream goes on
    again = play_scripted(env, scripted_factory("agentrl/CreditChain-v0", "gold"), seed=None, task=None)
    assert again.reward == 1.0 and len(again.turns) == 2


def test_a_users_own_env_module_registers_its_scripted_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_scripted_env.py").write_text(
        "import gymnasium\n"
        "from agentrl.core.registry import register_scripted\n"
        "from environments.credit.env import CreditChainEnv\n"
        "gymnasium.register(id='MyScriptedCredit-v0', entry_point=CreditChainEnv)\n"
        "register_scripted('MyScriptedCredit-v0', {'always1': lambda env: (lambda conversation: '1')})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        env_id = "my_scripted_env:MyScriptedCredit-v0"
        assert set(scripted_agents(env_id)) == {"always1"}
        assert scripted_agents("MyScriptedCredit-v0").keys() == {"always1"}
        res = evaluate(env_id, "scripted:always1", env_kwargs={"turns": 2}, tasks=4)
        assert res.tasks == 4 and 0.0 <= res.mean_reward <= 1.0
        with pytest.raises(UnknownScriptedAgent, match="available: scripted:always1"):
            evaluate(env_id, "scripted:gold", tasks=1)
    finally:
        gym.registry.pop("MyScriptedCredit-v0", None)
        sys.modules.pop("my_scripted_env", None)
