"""Adversarial input to the ToolUse-v0 tools and env: every call answers with a clear error (or a result) in
bounded time and memory, and nothing raises.

"Clear error" is checked as: the reply starts with "Error:" and its kind is `tool_error` or
`invalid_arguments` — never `tool_exception`, which would mean a tool crashed on input it should
have refused. Timings here are generous sanity bounds (CI machines are shared), not benchmarks.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrl.core.tools import ToolResult
from environments.tool_use.env import ToolUseEnv, final_answer
from environments.tool_use.tools import TOOLS

CALL_SECONDS = 5.0  # a hang guard, not a speed target (speeds live in benchmarks/): a call takes ~25 ms; 0.5 s failed once in CI on a loaded 2-core machine
CALL_PEAK_BYTES = 8 * 2**20
MAX_REPLY_CHARS = 25_000  # the longest legitimate reply: sort_items on 200 items of 100 characters

ADVERSARIAL_STRINGS = [
    "__import__('os').system('echo pwned')",
    "__import__('os')",
    "().__class__.__bases__[0].__subclasses__()",
    "9**9**9",
    "9 ** 9 ** 9 ** 9",
    "10**10**10",
    "(" * 1000 + "1" + ")" * 1000,
    "[" * 1000 + "]" * 1000,
    "-" * 1000 + "1",
    "not " * 250 + "1",
    "1" + "+1" * 2000,
    "x" * 1_000_000,
    "9" * 5000,
    "",
    " ",
    "\x00\x01\x02",
    "\ud7ff\ufffd" * 100,
    "🙂" * 1000,
    "1e999",
    "nan",
    "inf",
    "lambda: 0",
    "[x for x in range(10**9)]",
    "'a' * 10**9",
    "${0} ${1}",
    "%s%s%s%n",
    "m**9**9",
    "meter ** 99999",
    "degC**2",
    "e" * 45,
    "furlongz per fortnight",
    "Atlantis",
    "Narnia",
    "2021-02-30",
    "0000-00-00",
    "9999-12-31",
    "today",
    "1/0",
    "99999999999999999999-01-01",
]
ADVERSARIAL_VALUES = [
    None,
    True,
    0,
    -1,
    2**63,
    10**100,
    -(10**100),
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    [],
    ["a"] * 10_000,
    [1, 2, 3],
    {"a": 1},
    [[["deep"]]],
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
adversarial = st.sampled_from(ADVERSARIAL_STRINGS + ADVERSARIAL_VALUES) | json_values | st.text(max_size=400)

ALL_TOOLS = {t.name: t for t in TOOLS}


def _parameters(tool) -> list[str]:
    return list(tool.schema["function"]["parameters"]["properties"])


def invoke_checked(tool, arguments) -> ToolResult:
    """Run one call and check the contract: a ToolResult, in bounded time, with a clear error if it failed."""
    start = time.perf_counter()
    result = tool.invoke(arguments, state=None)
    elapsed = time.perf_counter() - start
    assert isinstance(result, ToolResult)
    assert elapsed < CALL_SECONDS, f"{tool.name}({str(arguments)[:200]}) took {elapsed:.2f}s"
    assert isinstance(result.content, str) and len(result.content) <= MAX_REPLY_CHARS
    if not result.ok:
        assert result.error_kind in ("tool_error", "invalid_arguments"), result.content[:500]
        assert result.content.startswith("Error: ") and len(result.content) > 20, result.content
    return result


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Load pint's registry and the geography data once, so per-call timings measure calls, not imports."""
    for tool, args in [
        (ALL_TOOLS["convert_units"], {"value": 1, "from_unit": "m", "to_unit": "km"}),
        (ALL_TOOLS["country_fact"], {"country": "France", "field": "capital"}),
        (ALL_TOOLS["weekday"], {"date": "2000-01-01"}),
    ]:
        assert tool.invoke(args).ok


@pytest.mark.parametrize("tool_name", sorted(ALL_TOOLS))
@pytest.mark.parametrize("value", ADVERSARIAL_STRINGS + ADVERSARIAL_VALUES, ids=lambda v: repr(v)[:30])
def test_each_argument_gets_each_adversarial_value(tool_name, value):
    """Every parameter of every tool receives every hand-picked hostile value, with sane other arguments."""
    tool = ALL_TOOLS[tool_name]
    sane = {"expression": "1+1", "value": 1, "from_unit": "m", "to_unit": "km", "start": "2000-01-01", "end": "2000-01-02",
            "date": "2000-01-01", "days": 1, "months": 1, "country": "France", "field": "population", "city": "Paris",
            "text": "abc", "substring": "a", "items": ["b", "a"], "descending": False}  # fmt: skip
    for param in _parameters(tool):
        args = {p: sane[p] for p in _parameters(tool) if p in sane}
        args[param] = value
        tracemalloc.start()
        try:
            invoke_checked(tool, args)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < CALL_PEAK_BYTES, f"{tool_name}({param}={str(value)[:40]}) peaked at {peak / 2**20:.1f} MiB"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(ALL_TOOLS)), st.data())
def test_random_arguments_never_raise(tool_name, data):
    """Random argument dicts: right names with hostile values, missing names, extra names, non-dict arguments."""
    tool = ALL_TOOLS[tool_name]
    names = _parameters(tool) + ["extra", "__class__"]
    arguments = data.draw(
        st.dictionaries(st.sampled_from(names), adversarial, max_size=len(names)) | adversarial, label="arguments"
    )
    invoke_checked(tool, arguments)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789+-*/%().^ e,abcpisqrt_", max_size=300))
def test_calculator_random_arithmetic(expression):
    """Random strings over arithmetic characters: a number or a clear error, always fast."""
    result = invoke_checked(ALL_TOOLS["calculate"], {"expression": expression})
    if result.ok:
        float(result.content)  # a successful answer is a number


@settings(max_examples=150, deadline=None)
@given(st.from_regex(r"[A-Za-z_°µ*/^ 0-9\-]{0,45}", fullmatch=True), st.floats(allow_nan=True, allow_infinity=True))
def test_units_random_unit_strings(unit, value):
    invoke_checked(ALL_TOOLS["convert_units"], {"value": value, "from_unit": unit, "to_unit": "m"})
    invoke_checked(ALL_TOOLS["convert_units"], {"value": 1.0, "from_unit": "km", "to_unit": unit})


def test_final_answer_refuses_bad_answers():
    from environments.tool_use.env import EpisodeState
    from environments.tool_use.tasks import load_tasks

    state = EpisodeState(task=load_tasks("test")[0])
    for bad in ("", "   ", "x" * 501, None, [1], {"a": 1}, True):
        r = final_answer.invoke({"answer": bad}, state=state)
        assert not r.ok and r.content.startswith("Error: "), (bad, r)
    assert state.answer is None  # nothing recorded by a refused call


# ---- the env: hostile agent messages -------------------------------------------------------------------

ENV_ACTIONS = [
    '<tool_call>{"name": "calculate", "arguments": {"expression": "9**9**9"}}</tool_call>',
    '<tool_call>{"name": "calculate", "arguments": {"expression": "__import__(\'os\')"}}</tool_call>',
    '<tool_call>{"name": "calculate", "arguments": {"expression": "' + "(" * 1000 + '"}}</tool_call>',
    '<tool_call>{"name": "calculate", "arguments": ' + "[" * 2000 + "]" * 2000 + "}</tool_call>",
    '<tool_call>{"name": "convert_units", "arguments": {"value": NaN, "from_unit": "m", "to_unit": "km"}}</tool_call>',
    '<tool_call>{"name": "convert_units", "arguments": {"value": 1, "from_unit": "parsec", "to_unit": "kg"}}</tool_call>',
    '<tool_call>{"name": "country_fact", "arguments": {"country": "Atlantis", "field": "capital"}}</tool_call>',
    '<tool_call>{"name": "calculate", "arguments": {"expression": ' + "9" * 5000 + "}}</tool_call>",
    '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
    "<tool_call>not json</tool_call>",
    "<tool_call>",
    "x" * 9000,
    "",
]


@pytest.mark.parametrize("action", ENV_ACTIONS, ids=lambda a: a[:40])
def test_env_answers_hostile_actions_with_errors(action):
    env = ToolUseEnv(split="test")
    env.reset(seed=0)
    start = time.perf_counter()
    obs, reward, terminated, truncated, info = env.step(action)
    assert time.perf_counter() - start < CALL_SECONDS
    assert env.observation_space.contains(obs) and reward == 0.0 and not terminated
    assert info["error"] is not None and obs[0]["content"].startswith("Error:"), (info, obs)
    assert sum(info["errors"].values()) == 1


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda name, args: f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>",
            st.sampled_from(sorted(ALL_TOOLS) + ["final_answer", "nope"]),
            st.dictionaries(st.text(max_size=12), json_values, max_size=4),
        ),
    )  # fmt: skip
)
def test_env_never_raises_on_random_actions(action):
    env = ToolUseEnv(split="test")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert env.observation_space.contains(obs) and obs
    if terminated:  # only a valid final_answer ends the episode
        assert json.loads(action[len("<tool_call>") : -len("</tool_call>")])["name"] == "final_answer"
        assert "reward_breakdown" in info
