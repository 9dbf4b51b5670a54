"""Fuzz: 1,000 random and adversarial agent actions against an env with tools. Nothing may escape step();
every observation lies in the observation space; the env's state and bookkeeping stay valid; and a
snapshot taken at the start replays the same actions to the same observations."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TOOL_NAMES = ["put", "get", "add", "boom", "Put", "put ", "", "nope", "get\u0000", "add" * 50]
EXAMPLES = 50
ACTIONS_PER_EXAMPLE = 20

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.integers(0xD7F0, 0xE010), max_size=4).map(lambda cps: "".join(map(chr, cps))),  # lone surrogates
)
json_value = st.recursive(
    json_leaf,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
    max_leaves=12,
)
# plausible arguments: the right keys with values of any type
arguments = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "key": json_value,
            "value": json_value,
            "numbers": json_value,
            "mode": json_value,
            "extra": json_value,
        },
    ),
    st.fixed_dictionaries({"key": st.text(max_size=10), "value": st.one_of(st.text(max_size=10), json_leaf)}),
    st.fixed_dictionaries(
        {"numbers": st.lists(st.integers(-(10**30), 10**30), max_size=5)},
        optional={"mode": st.sampled_from(["sum", "max", "min"])},
    ),
    json_value,
)
unicode_text = st.lists(st.integers(0, 0x10FFFF), max_size=40).map(lambda cps: "".join(map(chr, cps)))  # surrogates too


@st.composite
def near_miss_call(draw) -> str:
    obj: dict = {"name": draw(st.sampled_from(TOOL_NAMES))}
    args = draw(arguments)
    how = draw(st.sampled_from(["object", "string", "missing", "extra_key"]))
    if how == "object":
        obj["arguments"] = args
    elif how == "string":
        obj["arguments"] = json.dumps(args)
    elif how == "extra_key":
        obj["arguments"], obj["id"] = args, "call_0"
    body = json.dumps(obj)
    if draw(st.booleans()):  # damage it: cut, or splice junk in
        i = draw(st.integers(0, len(body)))
        body = body[:i] + draw(st.sampled_from(["", "}", "{", '"', ",", "\\", "\u2028", "NaN", "1" * 5000]))
    opening, closing = draw(
        st.sampled_from(
            [
                ("<tool_call>", "</tool_call>"),
                ("<tool_call>", ""),
                ("", "</tool_call>"),
                ("<tool_call >", "</tool_call>"),
                ("<tool_call><tool_call>", "</tool_call>"),
                ("<TOOL_CALL>", "</TOOL_CALL>"),
            ]
        )
    )
    n = draw(st.integers(1, 3))
    return draw(st.text(max_size=10)) + (opening + body + closing) * n + draw(st.text(max_size=10))


@st.composite
def deep_json(draw) -> str:
    depth = draw(st.sampled_from([10, 200, 900, 990, 1200, 5000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opener * depth + "1" + closer * depth
    where = draw(st.sampled_from(["arguments", "value", "body"]))
    if where == "body":
        return f"<tool_call>{inner}</tool_call>"
    if where == "value":
        return '<tool_call>{"name": "put", "arguments": {"key": "k", "value": ' + inner + "}}</tool_call>"
    return '<tool_call>{"name": "add", "arguments": ' + inner + "}</tool_call>"


class DeepList:
    """Stands for a list nested `depth` deep (a wrong-type action); `build()` makes it."""

    def __init__(self, depth: int):
        self.depth = depth

    def __repr__(self) -> str:
        return f"DeepList({self.depth})"

    def build(self) -> list:
        x: list = []
        for _ in range(self.depth):
            x = [x]
        return x


wrong_types = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=10),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(("tuple",)),
    st.sampled_from([2000, 5000, 50_000]).map(DeepList),  # built at step time: hypothesis cannot print it
)

action = st.one_of(
    st.text(max_size=200),
    unicode_text,
    near_miss_call(),
    deep_json(),
    st.sampled_from([1999, 2000, 2001, 100_000]).map(lambda n: "x" * n),  # around max_action_chars (2000)
    st.integers(0, 3000).map(
        lambda n: '<tool_call>{"name": "put", "arguments": {"key": "k", "value": "' + "v" * n + '"}}</tool_call>'
    ),
    st.sampled_from(["DONE", " DONE ", "", "   ", "\n"]),
    wrong_types,
)


def check_invariant(env, steps_this_episode: int, errored_steps: int) -> None:
    st_ = env.state
    assert set(st_) == {"notes", "total", "said", "target", "sim"}
    notes = st_["notes"]
    assert isinstance(notes, dict) and len(notes) <= 4
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in notes.items())
    assert isinstance(st_["total"], int) and not isinstance(st_["total"], bool)
    assert all(isinstance(s, str) and s.strip() for s in st_["said"])
    assert st_["sim"] is env.sim
    assert env.turn == steps_this_episode <= env.max_turns
    assert sum(env.errors.values()) == errored_steps
    assert set(env.errors) <= {
        "invalid_action",
        "empty_action",
        "action_too_long",
        "malformed_call",
        "unknown_tool",
        "invalid_arguments",
        "tool_error",
        "tool_exception",
        "too_many_calls",
    }


def test_fuzz_env_with_tools(notes_env_cls) -> None:
    counted = {"actions": 0, "errors": 0, "episodes_ended": 0, "tool_results": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        actions=st.lists(action, min_size=ACTIONS_PER_EXAMPLE, max_size=ACTIONS_PER_EXAMPLE),
        seed=st.integers(0, 2**31 - 1),
    )
    def run(actions: list, seed: int) -> None:
        env = notes_env_cls(max_action_chars=2000)
        obs, _ = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        start = env.snapshot()
        steps = errored = 0
        replay: list[tuple] = []  # (action, observation) since the snapshot, while no reset happened
        replayable = True
        for a in actions:
            counted["actions"] += 1
            if isinstance(a, DeepList):
                a = a.build()
            obs, r, term, trunc, info = env.step(a)
            steps += 1
            assert env.observation_space.contains(obs), obs
            assert isinstance(r, float)
            if info["error"]:
                errored += 1
                counted["errors"] += 1
                assert any(m["content"].startswith("Error: ") for m in obs)
            if not info["error"] and obs and obs[0]["role"] == "tool":
                counted["tool_results"] += 1
            if replayable:
                replay.append((a, obs))
            check_invariant(env, steps, errored)
            if term or trunc:
                assert "reward_breakdown" in info and 0.0 <= r <= 1.0
                counted["episodes_ended"] += 1
                replayable = False
                env.reset(seed=seed + 1)
                steps = errored = 0
            else:
                assert r == 0.0
        env.restore(start)
        for a, obs in replay:
            assert env.step(a)[0] == obs

    run()
    assert counted["actions"] >= 1000
    print(f"fuzz: {counted}")
    assert counted["errors"] > 100 and counted["episodes_ended"] > 0 and counted["tool_results"] > 10
