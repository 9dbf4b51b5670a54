"""@tool: schema generation, argument validation, call parsing, dispatch (DESIGN.md, "Tools")."""

from __future__ import annotations

import enum
import json
from typing import Literal

import pytest

from agentrl.core.tools import (
    TOOL_CALL_FORMAT,
    Tool,
    ToolCall,
    ToolCallParseError,
    ToolError,
    ToolSet,
    format_tool_call,
    parse_tool_calls,
    tool,
)


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@tool
def forecast(
    city: str,
    days: int = 3,
    unit: Literal["c", "f"] = "c",
    grid: list[list[float]] | None = None,
    scale: float = 1.0,
    verbose: bool = False,
    state=None,
    env=None,
) -> dict:
    """Weather forecast for a city.

    Uses the episode's own world.

    Args:
        city: Name of the city,
            Example: Paris or Lyon.
        days (int): How many days ahead.
        unit: Temperature unit.
        grid: Rows of sample points.
        scale: Multiplier.
        verbose: Say more.

    Returns:
        A dict with the forecast.
    """
    return {"city": city, "days": days, "unit": unit, "grid": grid, "scale": scale, "state": state}


@tool(name="convert")
def _convert(value: float, to: Unit, pair: tuple[int, int] = (0, 0)) -> str:
    """Convert a temperature.

    Args:
        value: Degrees.
        to: Target unit.
        pair: Two ints.
    """
    return f"{value}->{to.value} {pair}"


def params(t: Tool) -> dict:
    return t.schema["function"]["parameters"]


# ------------------------------------------------------------------ schema


def test_schema_layout_descriptions_required_defaults() -> None:
    s = forecast.schema
    assert s["type"] == "function"
    assert s["function"]["name"] == "forecast"
    assert s["function"]["description"] == "Weather forecast for a city.\n\nUses the episode's own world."
    p = params(forecast)
    assert p["type"] == "object"
    assert p["required"] == ["city"]
    assert p["additionalProperties"] is False
    props = p["properties"]
    assert list(props) == ["city", "days", "unit", "grid", "scale", "verbose"]
    # a continuation line holding a colon stays part of its argument's description
    assert props["city"] == {"type": "string", "description": "Name of the city, Example: Paris or Lyon."}
    assert props["days"] == {"type": "integer", "default": 3, "description": "How many days ahead."}
    assert props["unit"]["enum"] == ["c", "f"] and props["unit"]["default"] == "c"
    assert props["scale"]["type"] == "number"
    assert props["verbose"]["type"] == "boolean"
    grid = props["grid"]
    assert {"type": "array", "items": {"type": "array", "items": {"type": "number"}}} in grid["anyOf"]
    assert grid["default"] is None
    assert not any("title" in v for v in props.values())
    assert "Returns" not in json.dumps(s)


def test_injected_params_not_in_schema() -> None:
    props = params(forecast)["properties"]
    assert "state" not in props and "env" not in props
    assert forecast.injected == ("state", "env")
    assert "state" not in json.dumps(forecast.schema)


def test_tool_name_override_and_enum_class() -> None:
    assert _convert.name == "convert"
    assert _convert.schema["function"]["name"] == "convert"
    assert "celsius" in json.dumps(_convert.schema)


def test_missing_type_hint_is_rejected() -> None:
    with pytest.raises(TypeError, match="'x' needs a type hint"):

        @tool
        def bad(x) -> str:  # noqa: ANN001
            return ""


# ------------------------------------------------------------------ validation


def test_valid_arguments_pass_and_defaults_fill() -> None:
    assert forecast.validate({"city": "Paris"}) == {
        "city": "Paris",
        "days": 3,
        "unit": "c",
        "grid": None,
        "scale": 1.0,
        "verbose": False,
    }
    v = forecast.validate({"city": "Oslo", "grid": [[1, 2.5], []], "scale": 2})
    assert v["grid"] == [[1.0, 2.5], []] and v["scale"] == 2.0


def test_arguments_that_the_schema_advertises_are_accepted() -> None:
    # the schema shows an enum class as its values and a tuple as an array: JSON input of that shape must pass
    r = _convert.invoke({"value": 20, "to": "fahrenheit", "pair": [1, 2]})
    assert r.ok, r.content
    assert r.content == "20.0->fahrenheit (1, 2)"
    bad = _convert.invoke({"value": 20, "to": "kelvin"})
    assert bad.error_kind == "invalid_arguments"
    assert "'to'" in bad.content and "celsius" in bad.content and "fahrenheit" in bad.content


@pytest.mark.parametrize(
    "args, must_contain",
    [
        ({"city": 3}, ["'city'", "string"]),  # wrong type
        ({"city": "P", "days": "3"}, ["'days'", "integer"]),  # no coercion from str
        ({"city": "P", "days": 2.5}, ["'days'", "integer"]),
        ({"city": "P", "verbose": 1}, ["'verbose'", "boolean"]),  # 1 is not a bool
        ({"city": "P", "days": True}, ["'days'", "integer"]),  # True is not an int
        ({"city": "P", "unit": "k"}, ["'unit'", '"c"', '"f"']),  # enum: names the allowed values
        ({"city": "P", "grid": [[1], ["x"]]}, ["'grid.1.0'", "number"]),  # nested: names the path
        ({}, ["'city'", "required", "string"]),  # missing
        (
            {"city": "P", "country": "FR"},
            ["unknown argument 'country'", "allowed: city, days, unit, grid, scale, verbose"],
        ),
        ({"city": "P", "state": {}}, ["unknown argument 'state'"]),  # injected names cannot be supplied by the agent
    ],
)
def test_validation_errors_name_argument_and_allowed(args: dict, must_contain: list[str]) -> None:
    with pytest.raises(ToolError) as ei:
        forecast.validate(args)
    msg = str(ei.value)
    assert msg.startswith("invalid arguments for 'forecast'")
    for s in must_contain:
        assert s in msg, (s, msg)
    r = forecast.invoke(args, state={}, env=None)
    assert r.error_kind == "invalid_arguments" and r.content == f"Error: {msg}"


def test_non_object_arguments() -> None:
    with pytest.raises(ToolError, match="must be a JSON object, got list"):
        forecast.validate([1, 2])


def test_unicode_arguments() -> None:
    assert forecast.validate({"city": "Zürich \U0001f600"})["city"] == "Zürich \U0001f600"
    call = parse_tool_calls(tc('{"name": "forecast", "arguments": {"city": "a\\ud800b"}}'))[
        0
    ]  # valid JSON, lone surrogate
    r = forecast.invoke(call.arguments)
    assert r.error_kind == "invalid_arguments" and "'city'" in r.content and "invalid Unicode" in r.content


def test_long_bad_values_are_shortened_in_messages() -> None:
    msg = forecast.invoke({"city": "x" * 10_000, "days": "y" * 10_000}).content
    assert len(msg) < 400 and "'days'" in msg


# ------------------------------------------------------------------ invocation


def test_injected_state_reaches_the_function() -> None:
    st = {"k": 1}
    r = forecast.invoke({"city": "P"}, state=st, env="E")
    assert r.ok
    assert json.loads(r.content)["state"] == {"k": 1}


def test_missing_injection_is_a_tool_failure_not_a_crash() -> None:
    r = forecast.invoke({"city": "P"})  # called with no state/env: the function's defaults apply
    assert r.ok and json.loads(r.content)["state"] is None

    @tool
    def needs_state(state) -> str:
        """Needs state."""
        return str(state)

    r = needs_state.invoke({})
    assert r.error_kind == "tool_exception" and "needs_state" in r.content


def test_tool_error_vs_unexpected_exception() -> None:
    @tool
    def picky(x: int) -> str:
        """Picky.

        Args:
            x: A number.
        """
        if x < 0:
            raise ToolError("x must be >= 0")
        if x == 0:
            raise ZeroDivisionError("division by zero")
        return "ok"

    ok = picky.invoke({"x": 1})
    assert ok.ok and ok.content == "ok" and ok.error_kind is None
    expected = picky.invoke({"x": -1})
    assert expected.error_kind == "tool_error" and expected.content == "Error: x must be >= 0"
    bug = picky.invoke({"x": 0})
    assert bug.error_kind == "tool_exception"
    assert "ZeroDivisionError" in bug.content and "picky" in bug.content


def test_non_string_results_are_json() -> None:
    r = forecast.invoke({"city": "P", "days": 1}, state=None, env=None)
    assert json.loads(r.content)["days"] == 1


# ------------------------------------------------------------------ parsing


def tc(obj) -> str:
    return "<tool_call>" + (obj if isinstance(obj, str) else json.dumps(obj)) + "</tool_call>"


def test_parse_good_and_multiple() -> None:
    assert parse_tool_calls("no calls here") == []
    assert parse_tool_calls("Sure. " + tc({"name": "f", "arguments": {"a": 1}}) + " thanks") == [
        ToolCall("f", {"a": 1})
    ]
    text = tc({"name": "f", "arguments": {"a": 1}}) + "\n" + tc({"name": "g", "arguments": {}})
    assert parse_tool_calls(text) == [ToolCall("f", {"a": 1}), ToolCall("g", {})]
    assert parse_tool_calls(tc({"name": "f"})) == [ToolCall("f", {})]  # arguments may be left out
    assert parse_tool_calls('<tool_call>\n  {"name": "f", "arguments": {}}\n</tool_call>') == [ToolCall("f", {})]


def test_parse_arguments_as_json_string() -> None:
    assert parse_tool_calls(tc({"name": "f", "arguments": json.dumps({"a": [1, 2]})})) == [ToolCall("f", {"a": [1, 2]})]
    with pytest.raises(ToolCallParseError, match="not valid JSON"):
        parse_tool_calls(tc({"name": "f", "arguments": "{a: 1"}))
    with pytest.raises(ToolCallParseError, match="must be a JSON object"):
        parse_tool_calls(tc({"name": "f", "arguments": "[1, 2]"}))


@pytest.mark.parametrize(
    "text, match",
    [
        (tc('{"name": "f", "arguments": {'), "not valid JSON"),
        (tc("{'name': 'f'}"), "not valid JSON"),
        (tc(""), "not valid JSON"),
        (
            tc('{"name": "f", "arguments": {"a": ' + "1" * 5000 + "}}"),
            "not valid JSON",
        ),  # int over Python's digit limit
        (tc("[" * 100_000 + "]" * 100_000), "not valid JSON"),  # deeper than the recursion limit
        ('<tool_call>{"name": "f", "arguments": {}}', "unbalanced"),
        ('{"name": "f", "arguments": {}}</tool_call>', "unbalanced"),
        (tc({"name": "f", "arguments": {}}) + "<tool_call>", "unbalanced"),
        ("<tool_call><tool_call>{}</tool_call>", "unbalanced"),
        (tc({"name": "f", "arguments": [1]}), "must be a JSON object"),
        (tc({"name": "f", "arguments": 3}), "must be a JSON object"),
        (tc({"name": "f", "arguments": None}), "must be a JSON object"),
        (tc({"name": 5, "arguments": {}}), 'string "name"'),
        (tc({"arguments": {}}), 'string "name"'),
        (tc([1, 2]), 'string "name"'),
        (tc({"name": "f", "arguments": {}, "id": "call_1"}), r"unexpected keys.*'id'"),
    ],
)
def test_parse_errors_are_clear(text: str, match: str) -> None:
    with pytest.raises(ToolCallParseError, match=match) as ei:
        parse_tool_calls(text)
    assert len(str(ei.value)) < 500


def test_parse_error_shows_the_format() -> None:
    with pytest.raises(ToolCallParseError) as ei:
        parse_tool_calls(tc("{bad"))
    assert TOOL_CALL_FORMAT in str(ei.value)


@pytest.mark.parametrize(
    "name, arguments",
    [
        ("f", {}),
        ("calculate", {"expression": "2 * (150 + 30) - 50"}),
        (
            "book",
            {
                "flights": [{"flight_number": "HAT001", "date": "2024-05-01"}],
                "n": 2,
                "price": 12.5,
                "ok": True,
                "note": None,
            },
        ),
        ("nested", {"a": {"b": {"c": [1, [2, {"d": []}]]}}}),
        ("unicode", {"city": "São Paulo", "greeting": "こんにちは 👋", "escape": "\\u00e9 stays text"}),
        ("quotes", {"text": "she said \"hi\" and 'bye'", "path": "C:\\temp\\new", "lines": "a\nb\tc"}),
        ("tags", {"text": "</tool_call> then <tool_call>{} and \\</tool_call>"}),
    ],
)
def test_format_tool_call_round_trips(name: str, arguments: dict) -> None:
    text = format_tool_call(name, arguments)
    assert text.startswith("<tool_call>") and text.endswith("</tool_call>")
    assert parse_tool_calls(text) == [ToolCall(name, arguments)]
    assert parse_tool_calls("Sure. " + text + "\n" + text) == [ToolCall(name, arguments)] * 2


def test_format_tool_call_keeps_non_ascii_and_the_documented_layout() -> None:
    assert (
        format_tool_call("get_weather", {"city": "Zürich"})
        == '<tool_call>{"name": "get_weather", "arguments": {"city": "Zürich"}}</tool_call>'
    )


# ------------------------------------------------------------------ ToolSet


def test_toolset_dispatch_and_prompt() -> None:
    ts = ToolSet([forecast, _convert])
    assert bool(ts) and "forecast" in ts and "nope" not in ts
    r = ts.dispatch(ToolCall("nope" * 100, {}), state=None, env=None)
    assert r.error_kind == "unknown_tool" and "available tools: forecast, convert" in r.content and len(r.content) < 200
    assert ts.dispatch(ToolCall("convert", {"value": 1.5, "to": "celsius"})).ok
    block = ts.prompt_block()
    assert TOOL_CALL_FORMAT in block and '"name":"forecast"' in block and '"name":"convert"' in block
    schemas = ts.schemas()
    schemas[0]["function"]["name"] = "changed"
    assert forecast.schema["function"]["name"] == "forecast"  # schemas() hands out copies
    assert not ToolSet()


def test_toolset_rejects_non_tools_and_duplicates() -> None:
    with pytest.raises(TypeError, match="decorate it with @tool"):
        ToolSet([lambda: 1])
    with pytest.raises(ValueError, match="duplicate tool name 'forecast'"):
        ToolSet([forecast, forecast])
