"""ToolUse-v0's prompt-size options: `tools=` (a subset of tool families / tools, tasks filtered to match)
and `schema="compact"` (one line per tool instead of JSON schemas). The defaults must stay exactly as before."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import environments  # noqa: F401  (registers the envs)
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.registry import make_env, scripted_agent
from agentrl.core.tools import (
    TOOL_CALL_FORMAT,
    ToolCall,
    ToolSet,
    compact_signature,
    first_sentence,
    format_tool_call,
    parse_tool_calls,
    tool,
)
from environments.tool_use import ENV_ID
from environments.tool_use.env import (
    COMPACT_SUMMARIES,
    SYSTEM_PROMPT,
    ToolUseEnv,
    final_answer,
    select_tools,
)
from environments.tool_use.tasks import load_tasks
from environments.tool_use.tools import TOOL_FAMILIES, TOOLS

ALL_NAMES = [
    "calculate",
    "convert_units",
    "days_between",
    "add_days",
    "add_months",
    "weekday",
    "country_fact",
    "city_fact",
    "text_length",
    "count_occurrences",
    "reverse_text",
    "word_count",
    "sort_items",
    "final_answer",
]
DEFAULT_INFO_KEYS = {"turn", "task_id", "tools", "system_without_tools", "tier", "family"}
CHATML = "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
GEN = "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
# A chat template with tools= support (like Qwen's): it lists the tools after the system message.
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{{ messages[0]['content'] }}\nTools:{% for t in tools %} {{ t['function']['name'] }}"
    "{% endfor %}<|im_end|>\n{% for m in messages[1:] %}" + CHATML + "{% endfor %}"
    "{% else %}{% for m in messages %}" + CHATML + "{% endfor %}{% endif %}" + GEN
)


@pytest.fixture(scope="module")
def tok():
    from agentrl.inference.models import load_tokenizer

    return load_tokenizer("tiny-random")  # SmolLM2's tokenizer and chat template


@pytest.fixture(scope="module")
def fmt(tok) -> ChatFormatter:
    return ChatFormatter(tok)


def drive(
    env: ToolUseEnv, agent, conv: list[dict[str, str]], limit: int = 20
) -> tuple[float, dict, list[dict[str, str]]]:
    """Step `agent` from conversation `conv` to the episode's end."""
    for _ in range(limit):
        action = agent(conv)
        conv.append({"role": "assistant", "content": action})
        obs, reward, term, trunc, info = env.step(action)
        conv.extend(obs)
        if term or trunc:
            return reward, info, conv
    raise AssertionError("episode did not end")


def play(env: ToolUseEnv, task_id: str, agent=None) -> tuple[float, dict, list[dict[str, str]]]:
    obs, _ = env.reset(options={"task_id": task_id})
    return drive(env, agent or scripted_agent(ENV_ID, "gold", env), list(obs))


def names(env: ToolUseEnv) -> list[str]:
    return list(env.toolset.tools)


def solvable_with(shown: set[str], split: str = "train", tier: int | None = None) -> list[str]:
    return [t.id for t in load_tasks(split, tier) if {s.name for s in t.gold} <= shown]


# ------------------------------------------------------------------ defaults unchanged


def test_defaults_are_unchanged():
    default, explicit = ToolUseEnv(split="test"), ToolUseEnv(split="test", tools="all", schema="json")
    assert names(default) == names(explicit) == ALL_NAMES
    assert [t.name for t in ToolUseEnv.tools] == ALL_NAMES  # the class attribute too
    block = ToolSet(TOOLS + (final_answer,)).prompt_block()  # the base class's JSON-schema block
    for tid in default.task_ids()[::10]:
        obs, info = default.reset(options={"task_id": tid})
        assert (obs, info) == explicit.reset(options={"task_id": tid})
        assert obs[0] == {"role": "system", "content": f"{SYSTEM_PROMPT}\n\n{block}"}
        assert set(info) == DEFAULT_INFO_KEYS
        assert info["system_without_tools"] == SYSTEM_PROMPT
        assert [t["function"]["name"] for t in info["tools"]] == ALL_NAMES
    assert len(default.task_ids()) == 200 and len(ToolUseEnv().task_ids()) == 400
    assert ToolUseEnv(split="test").reset(seed=5) == explicit.reset(seed=5)  # seeded draws unchanged


def test_tool_families_partition_the_tools():
    assert list(TOOL_FAMILIES) == ["calculator", "units", "dates", "geo", "text"]
    assert [t.name for fam in TOOL_FAMILIES.values() for t in fam] == ALL_NAMES[:-1] == [t.name for t in TOOLS]


# ------------------------------------------------------------------ tool subsets


@pytest.mark.parametrize("schema", ["json", "compact"])
def test_family_subset(schema):
    env = ToolUseEnv(tools=["geo"], schema=schema)
    assert names(env) == ["country_fact", "city_fact", "final_answer"]
    want = solvable_with({"country_fact", "city_fact"})
    assert env.task_ids() == want and 0 < len(want) < 400
    obs, info = env.reset(seed=0)
    assert env.task_id in want
    system = obs[0]["content"]
    assert "country_fact" in system and "final_answer" in system
    for hidden in ("calculate", "convert_units", "weekday", "text_length", "sort_items"):
        assert hidden not in system
    if schema == "json":
        assert [t["function"]["name"] for t in info["tools"]] == names(env)
        assert info["system_without_tools"] == SYSTEM_PROMPT


def test_explicit_and_mixed_subsets():
    env = ToolUseEnv(split="all", tools=["geo", "calculate"])
    assert names(env) == ["calculate", "country_fact", "city_fact", "final_answer"]  # TOOLS order, not list order
    assert env.task_ids() == solvable_with({"calculate", "country_fact", "city_fact"}, "all")
    assert names(ToolUseEnv(tools=["calculate", "geo", "calculate"])) == names(env)  # order and repeats ignored
    assert names(ToolUseEnv(tools="dates")) == ["days_between", "add_days", "add_months", "weekday", "final_answer"]
    assert names(ToolUseEnv(tools=["weekday", "final_answer"])) == ["weekday", "final_answer"]
    assert names(ToolUseEnv(tools=["all"])) == ALL_NAMES
    assert names(ToolUseEnv(tools=("text", "units"))) == [
        "convert_units",
        "text_length",
        "count_occurrences",
        "reverse_text",
        "word_count",
        "sort_items",
        "final_answer",
    ]
    # every remaining task is solvable by the shown tools
    for t in ToolUseEnv(split="all", tools=["dates", "calculator"]).task_ids():
        assert {s.name for s in next(x for x in load_tasks("all") if x.id == t).gold} <= {
            "days_between",
            "add_days",
            "add_months",
            "weekday",
            "calculate",
        }


def test_filtered_out_task_id_is_refused():
    env = ToolUseEnv(split="test", tools=["geo"])
    other = next(t for t in ToolUseEnv(split="test").task_ids() if t not in env.task_ids())
    with pytest.raises(ValueError, match=r"unknown task_id .*tools=\['geo'\]"):
        env.reset(options={"task_id": other})


@pytest.mark.parametrize("bad", ["geography", ["geo", "calc"], ["geo", 3], ["Geo"]])
def test_unknown_names_are_rejected(bad):
    with pytest.raises(ValueError) as ei:
        ToolUseEnv(tools=bad)
    msg = str(ei.value)
    entry = bad if isinstance(bad, str) else bad[-1]
    assert f"unknown tool or tool family {entry!r}" in msg
    for allowed in ("calculator, units, dates, geo, text", "calculate", "country_fact", "sort_items", "final_answer"):
        assert allowed in msg


@pytest.mark.parametrize("bad", [[], (), None, 3, {"geo": 1}])
def test_malformed_tools_option(bad):
    with pytest.raises(ValueError, match="non-empty list of tool families"):
        ToolUseEnv(tools=bad)


def test_bad_schema_and_no_task_left():
    with pytest.raises(ValueError, match="schema must be one of 'json', 'compact'"):
        ToolUseEnv(schema="yaml")
    with pytest.raises(ValueError, match=r"no ToolUse task .*tier=3.*tools=\['geo'\].*among add_days"):
        ToolUseEnv(tier=3, tools=["geo"])  # every tier-3 chain needs more than geography
    with pytest.raises(ValueError, match="no ToolUse task"):
        ToolUseEnv(tools=["final_answer"])


@pytest.mark.parametrize("schema", ["json", "compact"])
def test_calling_a_hidden_tool_is_an_unknown_tool_error(schema):
    env = ToolUseEnv(split="test", tier=1, tools=["geo"], schema=schema, tool_cost=0.1)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(format_tool_call("calculate", {"expression": "6*7"}))
    assert not term and r == 0.0 and info["errors"] == {"unknown_tool": 1}
    assert obs == (
        {
            "role": "tool",
            "content": "Error: unknown tool 'calculate' (available tools: country_fact, city_fact, final_answer)",
        },
    )
    assert env.state.tool_calls == 1  # costs like any other call
    # the default env next to it still has the tool: the toolset is per instance
    full = ToolUseEnv(split="test")
    full.reset(seed=0)
    assert full.step(format_tool_call("calculate", {"expression": "6*7"}))[0] == ({"role": "tool", "content": "42"},)


def test_select_tools():
    assert select_tools() == TOOLS + (final_answer,)
    assert [t.name for t in select_tools(["units"])] == ["convert_units", "final_answer"]


# ------------------------------------------------------------------ compact schemas


def test_compact_prompt_content():
    env = ToolUseEnv(schema="compact")
    obs, info = env.reset(seed=0)
    assert set(info) == DEFAULT_INFO_KEYS - {"tools", "system_without_tools"}
    system = obs[0]["content"]
    assert system.startswith(SYSTEM_PROMPT + "\n\n") and TOOL_CALL_FORMAT in system and "JSON schema" not in system
    lines = system.split("\n")
    tool_lines = lines[lines.index("Tools:") + 1 :]
    assert [ln.split("(")[0] for ln in tool_lines] == ALL_NAMES
    assert (
        'country_fact(country: str, field: "capital"|"population"|"area_km2"|"continent"|"currency_code"|'
        '"currency_name"|"languages") - ' in system
    )
    assert (
        'city_fact(city: str, field: "population"|"country"|"latitude"|"longitude"|"timezone", country: str = null)'
        in system
    )
    assert "sort_items(items: list[str], descending: bool = false)" in system
    assert "final_answer(answer: str|int|float) - " in system
    assert all(len(ln) < 200 for ln in tool_lines)
    # exactly one example, in the exact call format, and it is a valid call of a shown tool
    examples = [ln for ln in lines if ln.startswith("Example: ")]
    assert len(examples) == 1
    (call,) = parse_tool_calls(examples[0])
    assert examples[0] == "Example: " + format_tool_call(call.name, call.arguments)
    assert env.toolset.dispatch(call).ok
    assert set(COMPACT_SUMMARIES) == set(ALL_NAMES)


@pytest.mark.parametrize("tools", [["text"], ["dates"], ["units"], ["weekday"]])
def test_compact_example_uses_a_shown_tool(tools):
    env = ToolUseEnv(split="all", tools=tools, schema="compact")
    system = env.reset(seed=0)[0][0]["content"]
    (call,) = parse_tool_calls(next(ln for ln in system.split("\n") if ln.startswith("Example: ")))
    assert call.name in env.toolset
    if call.name != "final_answer":
        assert env.toolset.dispatch(call).ok


def test_compact_prompt_token_counts(fmt):
    """The compact prompt of SmolLM2 (135M) fits: at most ~35% of the default's tokens."""
    counts = {}
    for tier in (1, 2):
        for key, kw in {
            "default": {},
            "compact": {"schema": "compact"},
            "compact_geo": {"schema": "compact", "tools": ["geo"]},
        }.items():
            env = ToolUseEnv(tier=tier, **kw)
            task = next(t for t in ToolUseEnv(tier=tier, tools=["geo"]).task_ids())  # a task all three envs have
            obs, info = env.reset(options={"task_id": task})
            counts[key, tier] = len(fmt.prompt_ids(list(obs), info))
        assert counts["compact", tier] <= 0.35 * counts["default", tier]
        assert counts["compact_geo", tier] <= 0.6 * counts["compact", tier]
    print("\nprompt tokens (SmolLM2):", {f"{k} tier {t}": n for (k, t), n in counts.items()})
    assert 1700 < counts["default", 1] < 1900  # the JSON schemas: ~90% of the default prompt
    default, compact = ToolUseEnv(split="test"), ToolUseEnv(split="test", schema="compact")
    ratios = []
    for tid in default.task_ids():  # every question, tiers 1-4
        n = [
            len(fmt.prompt_ids(list(obs), info))
            for obs, info in (e.reset(options={"task_id": tid}) for e in (default, compact))
        ]
        ratios.append(n[1] / n[0])
    print(f"compact/default over the test split: mean {sum(ratios) / len(ratios):.3f}, max {max(ratios):.3f}")
    assert max(ratios) <= 0.35


def test_compact_is_not_replaced_by_template_tools(tok, fmt):
    """A chat template with tools= support renders info["tools"] in place of the env's block; compact mode gives it
    none, so the compact system prompt goes through as it is."""
    from agentrl.inference.models import load_tokenizer

    ttok = load_tokenizer("tiny-random")
    ttok.chat_template = TOOLS_TEMPLATE
    tfmt = ChatFormatter(ttok)
    assert tfmt.supports_tools and not fmt.supports_tools
    env = ToolUseEnv(split="test", schema="compact", tools=["geo", "calculator"])
    obs, info = env.reset(seed=1)
    prompt = ttok.decode(tfmt.prompt_ids(list(obs), info))
    assert obs[0]["content"] in prompt and "\nTools: " not in prompt  # the compact block, not the template's list
    assert tfmt.prompt_ids(list(obs), info) == fmt.prompt_ids(list(obs), info)  # same ChatML either way
    # json mode (default) still hands the schemas to the template, which drops the env's block
    obs, info = ToolUseEnv(split="test", tools=["geo"]).reset(seed=1)
    prompt = ttok.decode(tfmt.prompt_ids(list(obs), info))
    assert "Tools: country_fact city_fact final_answer<|im_end|>" in prompt and TOOL_CALL_FORMAT not in prompt


# ------------------------------------------------------------------ gold agent, check_env, snapshots


@pytest.mark.parametrize(
    "kw",
    [
        {"split": "test", "schema": "compact"},
        {"split": "all", "tier": 1, "tools": ["geo"], "schema": "compact"},
        {"split": "all", "tools": ["dates", "calculator"], "schema": "compact"},
        {"split": "test", "tools": ["geo", "calculate", "units"]},
    ],
)
def test_gold_agent_solves_every_remaining_task(kw):
    env = ToolUseEnv(**kw)
    assert env.task_ids()
    for tid in env.task_ids():
        reward, info, conv = play(env, tid)
        assert reward == 1.0 and info["success"] is True and not info["errors"], (tid, conv[-3:])
        assert info["reward_breakdown"]["tool_calls"] == env.state.task.tier


def test_check_env_with_options():
    check_env(ToolUseEnv(split="test", schema="compact"), skip_render_check=True)
    check_env(ToolUseEnv(split="test", tools=["geo", "calculate"]), skip_render_check=True)
    env = gym.make(ENV_ID, split="test", tools=["geo"], schema="compact", render_mode="ansi", disable_env_checker=True)
    check_env(env.unwrapped)


def test_make_env_with_kwargs():
    env = make_env(ENV_ID, split="test", tier=1, tools=["geo"], schema="compact").unwrapped
    assert isinstance(env, ToolUseEnv) and names(env) == ["country_fact", "city_fact", "final_answer"]
    assert env.schema == "compact" and "tools" not in env.reset(seed=0)[1]


def test_snapshot_restore_with_options():
    env = ToolUseEnv(split="all", tier=2, tools=["geo", "calculator"], schema="compact")
    agent = scripted_agent(ENV_ID, "gold", env)
    obs, _ = env.reset(options={"task_id": env.task_ids()[0]})
    conv = list(obs)
    a = agent(conv)
    conv.append({"role": "assistant", "content": a})
    conv.extend(env.step(a)[0])
    snap, conv_at_snap = env.snapshot(), list(conv)

    r1, _, conv1 = drive(env, agent, list(conv), limit=10)
    transcript1 = env.transcript
    env.restore(snap)
    obs, r, term, *_ = env.step(format_tool_call("convert_units", {"value": 1, "from_unit": "km", "to_unit": "mile"}))
    assert obs[0]["content"].startswith("Error: unknown tool 'convert_units'") and not term
    env.restore(snap)
    r3, _, conv3 = drive(env, agent, list(conv_at_snap), limit=10)
    assert (r3, conv3, env.transcript) == (r1, conv1, transcript1) and r1 == 1.0


# ------------------------------------------------------------------ the generic renderer (agentrl.core.tools)


@tool
def _demo(city: str, unit: str = "km", kind: int | str | None = None, tags: list[str] | None = None) -> str:
    """Look up a city. More text.

    Args:
        city: the city
        unit: unit, e.g. "km"
        kind: which kind
        tags: labels
    """
    return city


def test_compact_signature_and_block():
    assert compact_signature(_demo) == (
        '_demo(city: str, unit: str = "km", kind: int|str = null, tags: list[str] = null) - Look up a city.'
    )
    assert (
        compact_signature(_demo, "Cities.")
        == '_demo(city: str, unit: str = "km", kind: int|str = null, tags: list[str] = null) - Cities.'
    )
    assert first_sentence('The day of a date, e.g. "Friday". More.') == 'The day of a date, e.g. "Friday".'
    assert first_sentence("No period\n\nSecond paragraph.") == "No period"
    ts = ToolSet([_demo])
    block = ts.compact_prompt_block(ToolCall("_demo", {"city": "Paris"}), {"_demo": "Cities."})
    assert block.split("\n") == [
        "To call a tool, reply with one block of this form and nothing after it:",
        TOOL_CALL_FORMAT,
        'Example: <tool_call>{"name": "_demo", "arguments": {"city": "Paris"}}</tool_call>',
        "Tools:",
        '_demo(city: str, unit: str = "km", kind: int|str = null, tags: list[str] = null) - Cities.',
    ]
    assert ts.prompt_block() != block and "JSON schemas" in ts.prompt_block()  # the default block is untouched
    with pytest.raises(ValueError, match="example calls unknown tool 'nope'"):
        ts.compact_prompt_block(ToolCall("nope", {}))
    with pytest.raises(ValueError, match="example call is invalid"):
        ts.compact_prompt_block(ToolCall("_demo", {"town": "Paris"}))
    with pytest.raises(ValueError, match="summaries for unknown tools"):
        ts.compact_prompt_block(summaries={"nope": "x"})
    json.dumps(block)
    assert re.fullmatch(r"[^\n]+", block.split("\n")[-1])


def test_tier_list_selects_several_tiers() -> None:
    from environments.tool_use.env import ToolUseEnv

    env = ToolUseEnv(split="test", tier=[1, 2])
    tiers = {env._by_id[t].tier for t in env.task_ids()}
    assert tiers == {1, 2} and len(env.task_ids()) == len(ToolUseEnv(split="test", tier=1).task_ids()) * 2
    for bad in ([1, 7], [], [True]):
        with pytest.raises(ValueError, match="tier must be one of"):
            ToolUseEnv(split="test", tier=bad)
