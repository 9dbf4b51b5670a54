"""The env contract (DESIGN.md, "Environment"): check_env, rewards, truncation, snapshots, bad agent output."""

from __future__ import annotations

import copy
import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from agentrl.core.env import EnvPrompt, EnvSnapshot, MultiTurnEnv, Outcome, RewardResult
from agentrl.core.registry import env_ids
from agentrl.core.tools import TOOL_CALL_FORMAT

REGISTERED = env_ids()


def checked(env: gym.Env) -> None:
    with warnings.catch_warnings():
        # gymnasium warns that a bare env (no spec) cannot have its render modes tested, and about render_fps
        warnings.filterwarnings("ignore", message=".*render.*")
        check_env(env, skip_render_check=True)


def is_error(obs, kind_role: str | None = None) -> bool:
    return (
        len(obs) == 1 and obs[0]["content"].startswith("Error: ") and (kind_role is None or obs[0]["role"] == kind_role)
    )


# ------------------------------------------------------------------ check_env


def test_small_env_with_tools_passes_check_env(notes_env) -> None:
    checked(notes_env)


def test_env_without_tools_passes_check_env(plain_env_cls) -> None:
    checked(plain_env_cls())


def test_some_env_is_registered() -> None:
    assert "agentrl/CreditChain-v0" in REGISTERED


@pytest.mark.parametrize("env_id", REGISTERED)
def test_registered_env_passes_check_env(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    assert isinstance(env, MultiTurnEnv)
    checked(env)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_registered_env_contract_on_random_text(env_id: str) -> None:
    """Random agent text until the end: reward 0 before, breakdown at the end, observations in the space,
    a snapshot replays to the same observation, and stepping the finished episode raises."""
    env = gym.make(env_id).unwrapped
    obs, info = env.reset(seed=7)
    assert [m["role"] for m in obs] == ["system", "user"]
    assert env.observation_space.contains(obs)
    env.action_space.seed(7)
    for _ in range(env.max_turns):
        action = env.action_space.sample()
        snap = env.snapshot()
        obs, reward, term, trunc, info = env.step(action)
        assert env.observation_space.contains(obs)
        env2_obs = None
        if not (term or trunc):
            assert reward == 0.0 and "reward_breakdown" not in info
            state_after = copy.deepcopy(env.state)
            env.restore(snap)
            env2_obs, r2, t2, tr2, _ = env.step(action)
            assert (env2_obs, r2, t2, tr2) == (obs, reward, term, trunc)
            assert env.state == state_after
        else:
            assert isinstance(info["reward_breakdown"], dict)
            assert isinstance(reward, float)
            break
    assert env.done, f"{env_id} did not end within max_turns={env.max_turns}"
    with pytest.raises(RuntimeError, match="ended"):
        env.step("hello")


# ------------------------------------------------------------------ reset / rewards / truncation


def test_first_observation_and_info(notes_env) -> None:
    obs, info = notes_env.reset(seed=1)
    assert [m["role"] for m in obs] == ["system", "user"]
    system = obs[0]["content"]
    assert system.startswith("You keep notes.") and TOOL_CALL_FORMAT in system and '"name":"put"' in system
    assert info["system_without_tools"] == "You keep notes."
    assert [t["function"]["name"] for t in info["tools"]] == ["put", "get", "add", "boom"]
    assert info["turn"] == 0 and info["task_id"].startswith("t")
    assert notes_env.reset(seed=1)[0] == obs  # seeded reset is reproducible
    assert notes_env.observation_space.contains(obs)


def test_reward_zero_until_terminal_and_breakdown(notes_env, tool_call) -> None:
    notes_env.reset(seed=0)
    rewards, infos = [], []
    for action in [tool_call("put", key="a", value="1"), "hello", tool_call("put", key="b", value="2"), "DONE"]:
        obs, r, term, trunc, info = notes_env.step(action)
        rewards.append(r)
        infos.append(info)
    assert rewards == [0.0, 0.0, 0.0, 0.5]
    assert term and not trunc
    assert all("reward_breakdown" not in i for i in infos[:-1])
    assert infos[-1]["reward_breakdown"] == {"notes": 2.0, "total": 0.0}
    assert infos[-1]["success"] is False
    assert infos[0]["errors"] == {} and infos[-1]["turn"] == 4
    assert notes_env.last_result.reward == 0.5
    with pytest.raises(RuntimeError, match="after the episode ended"):
        notes_env.step("again")


def test_prompt_is_the_typed_opening(notes_env, plain_env_cls) -> None:
    """prompt(): the first observation's text, with the system prompt, tool block and schemas kept apart."""
    with pytest.raises(RuntimeError, match="before reset"):
        notes_env.prompt()
    obs, info = notes_env.reset(seed=1)
    p = notes_env.prompt()
    assert isinstance(p, EnvPrompt)
    assert [m.to_dict() for m in p.messages()] == list(obs) and p.system_text == obs[0]["content"]
    assert p.system == info["system_without_tools"] == "You keep notes." and p.opening == obs[1]["content"]
    assert p.tool_block and obs[0]["content"] == f"{p.system}\n\n{p.tool_block}"
    assert list(p.tools) == info["tools"] and info["tools"] is not p.tools  # info holds its own copy
    env = plain_env_cls()
    obs, info = env.reset()
    assert env.prompt() == EnvPrompt("Plain.", "Talk.", "", ())
    assert info["tools"] == [] and info["system_without_tools"] == "Plain."


def test_outcome_says_how_the_episode_ended(notes_env, tool_call) -> None:
    notes_env.reset(seed=0)
    assert notes_env.outcome() is None
    notes_env.step("x" * 5000)  # an error, counted
    notes_env.step(tool_call("put", key="a", value="1"))
    assert notes_env.outcome() is None
    _, r, term, trunc, info = notes_env.step("DONE")
    o = notes_env.outcome()
    assert o == Outcome(0.25, {"notes": 1.0, "total": 0.0}, False, {"action_too_long": 1}, True, False)
    assert (r, o.breakdown, o.success, o.errors) == (0.25, info["reward_breakdown"], info["success"], info["errors"])
    assert notes_env.last_result == RewardResult(0.25, {"notes": 1.0, "total": 0.0}, success=False)
    notes_env.reset(seed=0)
    assert notes_env.outcome() is None and notes_env.last_result is None


def test_end_truncated_does_the_truncating_steps_bookkeeping(notes_env_cls, tool_call) -> None:
    """end_truncated(): the episode ends as a truncating step would end it, without an agent turn."""
    env = notes_env_cls()
    with pytest.raises(RuntimeError, match="before reset"):
        env.end_truncated()
    env.reset(seed=0)
    env.step(tool_call("put", key="a", value="1"))
    env.step(tool_call("nope"))
    snap = env.snapshot()
    calls = []
    reward = env.compute_reward
    env.compute_reward = lambda: calls.append(1) or reward()
    o = env.end_truncated()
    assert o == Outcome(0.25, {"notes": 1.0, "total": 0.0}, False, {"unknown_tool": 1}, False, True) == env.outcome()
    assert calls == [1] and env.done and env.turn == 2
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step("hi")
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.end_truncated()
    env.restore(snap)  # snapshots carry the outcome (none yet) and the prompt
    assert env.outcome() is None and not env.done and env.prompt().system == "You keep notes."
    _, r, term, trunc, info = env.step("DONE")
    assert (r, term, trunc) == (0.25, True, False) and env.outcome().terminated


def test_snapshots_carry_prompt_and_outcome_across_envs(notes_env_cls, tool_call) -> None:
    a, b = notes_env_cls(), notes_env_cls()
    a.reset(seed=3)
    a.step("DONE")
    b.reset(seed=4)
    b.restore(a.snapshot())
    assert b.prompt() == a.prompt() and b.outcome() == a.outcome() and b.done


def test_tool_results_are_tool_messages(notes_env, tool_call) -> None:
    notes_env.reset(seed=0)
    obs, *_ = notes_env.step(tool_call("put", key="a", value="hello"))
    assert obs == ({"role": "tool", "content": "stored a"},)
    obs, *_ = notes_env.step(tool_call("get", key="a"))
    assert obs == ({"role": "tool", "content": "hello"},)
    obs, *_ = notes_env.step(tool_call("add", numbers=[2, 3]))
    assert obs == ({"role": "tool", "content": "5"},)
    obs, *_ = notes_env.step("plain text")
    assert obs == ({"role": "user", "content": "txet nialp"},)


def test_max_turns_truncates(plain_env_cls) -> None:
    env = plain_env_cls()
    env.reset(seed=0)
    for _ in range(3):
        _, r, term, trunc, info = env.step("go")
        assert (r, term, trunc) == (0.0, False, False)
    _, r, term, trunc, info = env.step("go")
    assert (term, trunc) == (False, True)
    assert r == 1.0 and info["reward_breakdown"] == {"n": 4.0}
    with pytest.raises(RuntimeError):
        env.step("go")
    short = plain_env_cls(max_turns=1)
    short.reset()
    assert short.step("go")[3] is True


def test_terminal_wins_over_truncation(plain_env_cls) -> None:
    env = plain_env_cls(max_turns=1)
    env.reset()
    _, _, term, trunc, _ = env.step("stop")
    assert (term, trunc) == (True, False)


def test_bad_constructor_arguments(plain_env_cls) -> None:
    for kw in ({"max_turns": 0}, {"max_turns": "3"}, {"max_action_chars": 0}, {"render_mode": "human"}):
        with pytest.raises(ValueError):
            plain_env_cls(**kw)


def test_step_before_reset_raises(plain_env_cls) -> None:
    with pytest.raises(RuntimeError, match="before reset"):
        plain_env_cls().step("hi")


def test_render_ansi(plain_env_cls) -> None:
    env = plain_env_cls(render_mode="ansi")
    env.reset()
    env.step("hi")
    assert env.render() == "[system] Plain.\n[user] Talk.\n[assistant] hi\n[user] ok"
    assert plain_env_cls().render() is None


# ------------------------------------------------------------------ bad agent output


def test_bad_actions_answer_with_errors_and_count_them(notes_env_cls, tool_call) -> None:
    env = notes_env_cls(max_turns=50)
    env.reset(seed=0)
    env.step(tool_call("put", key="a", value="1"))
    cases = [
        (123, "invalid_action", "must be text"),
        (None, "invalid_action", "got NoneType"),
        (b"bytes", "invalid_action", "got bytes"),
        ("", "empty_action", "empty"),
        ("  \n\t ", "empty_action", "empty"),
        ("x" * 2001, "action_too_long", "2001 characters; at most 2000"),
        ("<tool_call>{not json}</tool_call>", "malformed_call", "not valid JSON"),
        ('<tool_call>{"name": "put", "arguments": {}}', "malformed_call", "unbalanced"),
        (tool_call("delete", key="a"), "unknown_tool", "unknown tool 'delete' (available tools: put, get, add, boom)"),
        (tool_call("put", key=1, value="x"), "invalid_arguments", "argument 'key'"),
        (tool_call("put", key="a"), "invalid_arguments", "argument 'value': Field required"),
        (tool_call("add", numbers=[1], mode="min"), "invalid_arguments", "'mode'"),
        (tool_call("put", key="b", value="2") + tool_call("get", key="b"), "too_many_calls", "2 tool calls"),
        (tool_call("get", key="zzz"), "tool_error", "no note 'zzz'"),
        (tool_call("boom"), "tool_exception", "RuntimeError: kaboom"),
        (tool_call("add", numbers=[], mode="max"), "tool_exception", "ValueError"),
    ]
    expected: dict[str, int] = {}
    for action, kind, text in cases:
        before = copy.deepcopy(env.state)
        obs, r, term, trunc, info = env.step(action)
        assert is_error(obs), (action, obs)
        assert text in obs[0]["content"], (text, obs)
        assert env.observation_space.contains(obs)
        assert (r, term, trunc) == (0.0, False, False)
        assert info["error"] == kind
        expected[kind] = expected.get(kind, 0) + 1
        assert info["errors"] == expected
        assert env.state == before, f"{kind} changed the state"
    # the tool results show up as tool messages, the pre-parse errors as user messages
    assert env.step(123)[0][0]["role"] == "user"
    assert env.step(tool_call("nope"))[0][0]["role"] == "tool"
    # a good call still works afterwards, and counts nothing
    obs, _, _, _, info = env.step(tool_call("get", key="a"))
    assert obs[0]["content"] == "1" and info["error"] is None


def test_oversized_tool_output_is_truncated(tool_call) -> None:
    from agentrl.core.env import EnvReply, RewardResult
    from agentrl.core.tools import tool

    @tool
    def big(n: int) -> str:
        """Big output.

        Args:
            n: Characters.
        """
        return "y" * n

    class Big(MultiTurnEnv):
        tools = (big,)
        max_observation_chars = 100

        def setup(self, options):
            self.state = {}
            return "s", "u"

        def respond(self, text):
            return EnvReply(terminated=True)

        def compute_reward(self):
            return RewardResult(0.0)

    env = Big()
    env.reset()
    obs, *_ = env.step(tool_call("big", n=500_000))
    assert obs[0]["content"].startswith("y" * 100 + "... [truncated: 500000 characters]")
    assert env.observation_space.contains(obs)


# ------------------------------------------------------------------ snapshot / restore


def test_snapshot_restore_round_trip(notes_env, tool_call) -> None:
    env = notes_env
    env.reset(seed=3)
    env.step(tool_call("put", key="a", value="1"))
    env.step("hi")
    snap = env.snapshot()
    assert isinstance(snap, EnvSnapshot)
    action = tool_call("add", numbers=[4, 5])
    obs1, r1, t1, tr1, info1 = env.step(action)
    obs1b = env.step(tool_call("put", key="b", value="2"))[0]
    state1 = copy.deepcopy(env.state)
    transcript1 = env.transcript
    env.step(tool_call("boom"))  # diverge further: errors, transcript

    env.restore(snap)
    assert env.turn == 2 and env.errors == {} and len(env.transcript) == 6 and not env.done
    obs2, r2, t2, tr2, info2 = env.step(action)
    assert (obs2, r2, t2, tr2, info2) == (obs1, r1, t1, tr1, info1)
    assert env.step(tool_call("put", key="b", value="2"))[0] == obs1b
    assert env.state == state1
    assert env.transcript == transcript1


def test_snapshot_is_not_changed_by_later_steps(notes_env, tool_call) -> None:
    env = notes_env
    env.reset(seed=0)
    snap = env.snapshot()
    env.step(tool_call("put", key="a", value="1"))
    assert snap.data["state"]["notes"] == {}
    assert snap.data["turn"] == 0


def test_one_snapshot_restored_twice_gives_independent_copies(notes_env, tool_call) -> None:
    env = notes_env
    env.reset(seed=0)
    env.step(tool_call("put", key="a", value="1"))
    snap = env.snapshot()
    env.restore(snap)
    first = env.state
    env.step(tool_call("put", key="b", value="2"))
    first["notes"]["c"] = "mutated directly"
    env.restore(snap)
    assert env.state is not first
    assert env.state["notes"] == {"a": "1"}
    other = copy.deepcopy(env)  # a second env restored from the same snapshot is independent too
    other.restore(snap)
    other.step(tool_call("put", key="z", value="9"))
    assert env.state["notes"] == {"a": "1"}


def test_deepcopy_self_objects_are_shared_not_copied(notes_env, tool_call) -> None:
    env = notes_env
    env.reset(seed=0)
    sim = env.sim
    snap = env.snapshot()
    assert snap.data["state"]["sim"] is sim
    env.step("hello")
    env.restore(snap)
    assert env.state["sim"] is sim
    env.step("hello")
    assert sim.calls == 2  # the one shared model served both branches


def test_shared_state_attributes_are_shared(plain_env_cls) -> None:
    class World(plain_env_cls):
        shared_state = ("world",)

        def setup(self, options):
            self.world = {"big": list(range(10))}
            super().setup(options)
            self.state = {"n": 0, "world": self.world, "local": [1]}
            return "s", "u"

    env = World()
    env.reset()
    snap = env.snapshot()
    env.restore(snap)
    assert env.state["world"] is env.world
    assert env.state["local"] is not snap.data["state"]["local"]


def test_restore_brings_back_rng_and_done(notes_env) -> None:
    env = notes_env
    env.reset(seed=5)
    snap = env.snapshot()
    a = env.np_random.random(3).tolist()
    env.restore(snap)
    assert env.np_random.random(3).tolist() == a
    env.step("DONE")
    assert env.done
    end = env.snapshot()
    env.restore(snap)
    assert not env.done
    env.step("hello")  # an ended episode can branch again from an earlier point
    env.restore(end)
    with pytest.raises(RuntimeError):
        env.step("hello")


def test_restore_rejects_other_objects(notes_env) -> None:
    notes_env.reset()
    with pytest.raises(TypeError, match="EnvSnapshot"):
        notes_env.restore({"state": {}})


def test_restore_on_a_fresh_env_allows_stepping(notes_env_cls, tool_call) -> None:
    a = notes_env_cls()
    a.reset(seed=2)
    a.step(tool_call("put", key="k", value="v"))
    snap = a.snapshot()
    b = notes_env_cls()
    b.restore(snap)
    obs, *_ = b.step(tool_call("get", key="k"))
    assert obs[0]["content"] == "v"
    assert json.loads(json.dumps(b.transcript[-1].to_dict()))["role"] == "tool"


# ------------------------------------------------------------------ spaces


def test_text_and_chat_spaces() -> None:
    from agentrl.core.spaces import ChatSpace, TextSpace

    ts = TextSpace(10, seed=0)
    assert ts.contains("") and ts.contains("é" * 10) and not ts.contains("x" * 11) and not ts.contains(b"x")
    assert all(ts.contains(ts.sample()) for _ in range(50))
    assert ts == TextSpace(10) and ts != TextSpace(11)
    with pytest.raises(ValueError):
        TextSpace(0)
    cs = ChatSpace(max_messages=2, max_content=5, seed=0)
    assert cs.contains(()) and cs.contains(({"role": "tool", "content": "hi"},))
    assert cs.contains([{"role": "user", "content": ""}])
    for bad in (
        ({"role": "robot", "content": "x"},),
        ({"role": "user", "content": "x" * 6},),
        ({"role": "user", "content": 1},),
        ({"role": "user", "content": "x", "name": "n"},),
        ({"role": "user"},),
        ({"role": "user", "content": "a"},) * 3,
        "user: hi",
        {"role": "user", "content": "x"},
    ):
        assert not cs.contains(bad), bad
    assert all(cs.contains(cs.sample()) for _ in range(50))
    assert cs == ChatSpace(2, 5) and cs != ChatSpace(3, 5)
