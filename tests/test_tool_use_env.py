"""ToolUse-v0 env contract: registration, check_env, task selection, gold agent, reward, errors, snapshots."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import environments  # noqa: F401  (registers the envs)
from agentrl.core.registry import scripted_agent
from agentrl.core.tools import format_tool_call
from environments.tool_use import ENV_ID
from environments.tool_use.env import NUDGE, ToolUseEnv


def play(env: ToolUseEnv, agent, conversation: list[dict[str, str]], max_steps: int = 20):
    """Drive env with agent until the episode ends; return (reward, info, conversation)."""
    for _ in range(max_steps):
        action = agent(conversation)
        conversation.append({"role": "assistant", "content": action})
        obs, reward, terminated, truncated, info = env.step(action)
        conversation.extend(obs)
        if terminated or truncated:
            return reward, info, conversation
    raise AssertionError("episode did not end")


def start(env: ToolUseEnv, task_id: str | None = None, seed: int | None = None) -> list[dict[str, str]]:
    obs, info = env.reset(seed=seed, options=None if task_id is None else {"task_id": task_id})
    assert info["task_id"] == env.task_id
    return list(obs)


@pytest.fixture(scope="module")
def test_env() -> ToolUseEnv:
    return ToolUseEnv(split="test")


def test_registered_and_made_by_id():
    env = gym.make(ENV_ID, split="test", tier=2, disable_env_checker=True)
    assert isinstance(env.unwrapped, ToolUseEnv)
    assert env.unwrapped.task_ids() and all("-t2-" in t for t in env.unwrapped.task_ids())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-importing must not re-register (gymnasium warns on that)
        import importlib

        importlib.reload(importlib.import_module("environments.tool_use"))


def test_check_env():
    check_env(ToolUseEnv(split="test"), skip_render_check=True)
    # Made by id, so check_env can also build it with each render mode from its spec.
    check_env(gym.make(ENV_ID, split="test", render_mode="ansi", disable_env_checker=True).unwrapped)


def test_task_selection():
    assert len(ToolUseEnv(split="train").task_ids()) == 400
    assert len(ToolUseEnv(split="test").task_ids()) == 200
    assert len(ToolUseEnv(split="all").task_ids()) == 600
    for tier in (1, 2, 3, 4):
        ids = ToolUseEnv(split="test", tier=tier).task_ids()
        assert len(ids) == 50 and all(f"-t{tier}-" in i for i in ids)
    with pytest.raises(ValueError, match="split"):
        ToolUseEnv(split="dev")
    with pytest.raises(ValueError, match="tier"):
        ToolUseEnv(tier=5)
    with pytest.raises(ValueError, match="tool_cost"):
        ToolUseEnv(tool_cost=-0.1)


def test_reset_by_task_id_and_by_seed(test_env):
    env = test_env
    tid = env.task_ids()[7]
    obs, info = env.reset(options={"task_id": tid})
    assert env.task_id == tid and obs[1] == {"role": "user", "content": env.state.task.question}
    assert obs[0]["role"] == "system" and "final_answer" in obs[0]["content"] and info["tier"] == env.state.task.tier
    drawn = {env.reset(seed=s)[1]["task_id"] for s in range(30)}
    assert len(drawn) > 10  # seeds draw different tasks...
    assert env.reset(seed=3)[1]["task_id"] == env.reset(seed=3)[1]["task_id"]  # ...reproducibly
    with pytest.raises(ValueError, match="unknown task_id"):
        env.reset(options={"task_id": "train-t1-000"})  # a train id in a test env
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"taskid": tid})


def test_gold_agent_scores_one_on_every_test_task(test_env):
    """What `agentrl eval --env agentrl/ToolUse-v0 --model scripted:gold --split test` runs."""
    env = test_env
    agent = scripted_agent(ENV_ID, "gold", env)
    for tid in env.task_ids():
        reward, info, conv = play(env, agent, start(env, tid))
        assert reward == 1.0 and info["success"] is True, (tid, conv[-3:])
        assert info["reward_breakdown"]["tool_calls"] == env.state.task.tier  # exactly the gold chain
        assert not info["errors"]


def test_tool_cost_is_folded_into_the_terminal_reward():
    env = ToolUseEnv(split="test", tier=3, tool_cost=0.05)
    reward, info, _ = play(env, scripted_agent(ENV_ID, "gold", env), start(env, env.task_ids()[0]))
    assert reward == pytest.approx(1.0 - 3 * 0.05)
    b = info["reward_breakdown"]
    assert b["correct"] + b["tool_cost"] == pytest.approx(reward) and b["tool_calls"] == 3


def test_rewards_are_zero_until_the_end(test_env):
    env = test_env
    conv = start(env, env.task_ids()[80])  # a tier-4 task: four calls, then the answer
    agent = scripted_agent(ENV_ID, "gold", env)
    rewards = []
    while True:
        a = agent(conv)
        conv.append({"role": "assistant", "content": a})
        obs, r, term, trunc, info = env.step(a)
        conv.extend(obs)
        rewards.append(r)
        if term or trunc:
            break
    assert rewards == [0.0] * (len(rewards) - 1) + [1.0] and len(rewards) == env.state.task.tier + 1


def test_wrong_answer_and_no_answer(test_env):
    env = test_env
    start(env, env.task_ids()[0])
    obs, r, term, trunc, info = env.step(format_tool_call("final_answer", {"answer": "certainly not this"}))
    assert term and r == 0.0 and info["success"] is False and info["reward_breakdown"]["answered"] == 1.0
    env2 = ToolUseEnv(split="test", max_turns=2)
    start(env2, env2.task_ids()[0])
    env2.step(format_tool_call("calculate", {"expression": "1+1"}))
    obs, r, term, trunc, info = env2.step(format_tool_call("calculate", {"expression": "2+2"}))
    assert trunc and not term and r == 0.0 and info["reward_breakdown"]["answered"] == 0.0


def test_plain_text_gets_a_nudge(test_env):
    env = test_env
    start(env, env.task_ids()[0])
    obs, r, term, trunc, info = env.step("I think the answer is 42.")
    assert obs == ({"role": "user", "content": NUDGE},) and not term and not trunc and env.state.nudges == 1
    assert env.state.answer is None


@pytest.mark.parametrize(
    "action, kind",
    [
        (42, "invalid_action"),
        ("   ", "empty_action"),
        ("x" * 9000, "action_too_long"),
        ("<tool_call>{not json}</tool_call>", "malformed_call"),
        ('<tool_call>{"name": "search_web", "arguments": {}}</tool_call>', "unknown_tool"),
        ('<tool_call>{"name": "calculate", "arguments": {"expr": "1"}}</tool_call>', "invalid_arguments"),
        ('<tool_call>{"name": "final_answer", "arguments": {"answer": ""}}</tool_call>', "tool_error"),
        ('<tool_call>{"name": "calculate", "arguments": {"expression": "1/0"}}</tool_call>', "tool_error"),
        (
            format_tool_call("calculate", {"expression": "1"}) + format_tool_call("calculate", {"expression": "2"}),
            "too_many_calls",
        ),
    ],
)
def test_every_kind_of_bad_call_gets_an_error_observation(test_env, action, kind):
    env = test_env
    start(env, env.task_ids()[0])
    obs, r, term, trunc, info = env.step(action)
    assert not term and r == 0.0
    assert info["error"] == kind and info["errors"] == {kind: 1}
    assert len(obs) == 1 and obs[0]["content"].startswith("Error:") and len(obs[0]["content"]) > 25, obs


def test_failed_and_unknown_calls_cost_like_good_ones():
    env = ToolUseEnv(split="test", tool_cost=0.1)
    start(env, env.task_ids()[0])
    env.step(format_tool_call("calculate", {"expression": "1/0"}))
    env.step(format_tool_call("nope", {}))
    env.step("<tool_call>{broken</tool_call>")  # never reaches a tool: not counted
    env.step(format_tool_call("final_answer", {"answer": 1}))  # answers may be numbers; final_answer is free
    assert env.state.tool_calls == 2 and env.last_result.breakdown["tool_cost"] == pytest.approx(-0.2)


def test_snapshot_restore_branches_exactly(test_env):
    env = test_env
    agent = scripted_agent(ENV_ID, "gold", env)
    conv = start(env, env.task_ids()[90])  # tier 4
    for _ in range(2):
        a = agent(conv)
        conv.append({"role": "assistant", "content": a})
        conv.extend(env.step(a)[0])
    snap, conv_at_snap = env.snapshot(), list(conv)
    reward1, info1, conv1 = play(env, agent, list(conv))
    transcript1 = env.transcript

    env.restore(snap)  # branch 2: a wrong answer from the same point
    assert env.turn == 2 and env.state.tool_calls == 2 and env.state.answer is None and not env.done
    obs, r, term, *_ = env.step(format_tool_call("final_answer", {"answer": "wrong"}))
    assert term and r == 0.0

    env.restore(snap)  # branch 3: the same snapshot again reproduces branch 1 exactly
    reward3, info3, conv3 = play(env, agent, list(conv_at_snap))
    assert (reward3, conv3, env.transcript) == (reward1, conv1, transcript1) and reward1 == 1.0
    assert info3["reward_breakdown"] == info1["reward_breakdown"]
    assert snap.data["state"].task is env.state.task  # the immutable task is shared, not copied


def test_gold_agent_skips_messages_that_are_not_its_own(test_env):
    env = test_env
    conv = start(env, env.task_ids()[60])  # tier 3
    agent = scripted_agent(ENV_ID, "gold", env)
    for junk in ("hmm", format_tool_call("calculate", {"expression": "2+2"}), "<tool_call>x</tool_call>"):
        conv.append({"role": "assistant", "content": junk})
        conv.extend(env.step(junk)[0])
    reward, info, _ = play(env, agent, conv)
    assert reward == 1.0 and info["reward_breakdown"]["tool_calls"] == env.state.task.tier + 1


def test_unknown_scripted_agent_is_an_error(test_env):
    with pytest.raises(ValueError, match="gold"):
        scripted_agent(ENV_ID, "oracle", test_env)


def test_render_shows_the_conversation():
    env = ToolUseEnv(split="test", render_mode="ansi")
    start(env, env.task_ids()[0])
    env.step(format_tool_call("calculate", {"expression": "6*7"}))
    text = env.render()
    assert env.state.task.question in text and "[tool] 42" in text


def test_tool_schemas_are_json_and_hide_injected_state(test_env):
    _, info = test_env.reset(seed=0)
    names = [t["function"]["name"] for t in info["tools"]]
    assert "final_answer" in names and len(names) == len(set(names)) == 14
    fa = next(t for t in info["tools"] if t["function"]["name"] == "final_answer")
    assert list(fa["function"]["parameters"]["properties"]) == ["answer"]  # `state` is injected, not shown
    json.dumps(info["tools"])
