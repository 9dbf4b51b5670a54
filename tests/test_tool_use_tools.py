"""ToolUse-v0 tools: correct answers on known inputs, and a clear error naming the problem on bad ones."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrl.core.tools import ToolCall, ToolSet
from environments.tool_use.tools import TOOLS
from environments.tool_use.tools.calculator import evaluate
from environments.tool_use.tools.numbers import format_number, parse_number

TOOLSET = ToolSet(TOOLS)


def call(name: str, **arguments):
    return TOOLSET.dispatch(ToolCall(name, arguments))


def ok(name: str, **arguments) -> str:
    r = call(name, **arguments)
    assert r.ok, r.content
    return r.content


def err(name: str, **arguments) -> str:
    r = call(name, **arguments)
    assert not r.ok and r.content.startswith("Error:"), r.content
    assert r.error_kind in ("tool_error", "invalid_arguments"), r
    return r.content


# ---- calculator ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("1 + 2 * 3", "7"),
        ("(3 + 4) * 2 ** 10 / 7", "1024"),
        ("7 // 2 + 7 % 2", "4"),
        ("-2 ** 2", "-4"),
        ("0.1 + 0.2", "0.3"),  # 12 significant digits hide float noise
        ("sqrt(16) + abs(-3) + round(2.567, 2)", "9.57"),
        ("log(8, 2) + log10(1000) + floor(2.7) + ceil(2.1)", "11"),
        ("max(1, 5, 3) - min(4, 2)", "3"),
        ("2 ** -1", "0.5"),
        ("10 ** 100", "1" + "0" * 100),
        ("66987244 - 83000000", "-16012756"),  # integers stay exact
    ],
)
def test_calculator_values(expr, expected):
    assert ok("calculate", expression=expr) == expected


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("2 ^ 10", "write powers with **"),
        ("1,000 + 1", "write 1000 rather than 1,000"),
        ("1 / 0", "division by zero"),
        ("9 ** 9 ** 9", "exponent 387420489 is too large"),
        ("10 ** 101", "would exceed the limit of 1e100"),
        ("(-8) ** 0.5", "fractional power"),
        ("sqrt(-1)", "non-negative"),
        ("__import__('os')", "unknown function '__import__'"),
        ("(1).__class__", "Attribute is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("'a' * 3", "'a' is not a number"),
        ("1 < 2", "comparisons are not allowed"),
        ("", "empty"),
        ("(" * 30 + "1" + ")" * 30, "nests brackets 30 deep"),
        ("1" + " + 1" * 100, "at most 300 are allowed"),
        ("exp(1000)", "exp() failed"),
    ],
)
def test_calculator_errors_name_the_problem(expr, fragment):
    assert fragment in err("calculate", expression=expr)


@settings(max_examples=60, deadline=None)
@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6), st.sampled_from(["+", "-", "*"]))
def test_calculator_agrees_with_python_on_integers(a, b, op):
    expected = {"+": a + b, "-": a - b, "*": a * b}[op]
    assert evaluate(f"({a}) {op} ({b})") == expected


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e12, 1e12, allow_nan=False), st.floats(1e-3, 1e6))
def test_calculator_output_reads_back_within_12_digits(a, b):
    # Gold chains paste one tool's output into the next expression: the text must round-trip closely.
    out = ok("calculate", expression=f"{a!r} / {b!r}")
    assert math.isclose(float(out), a / b, rel_tol=1e-11, abs_tol=1e-300)


def test_format_and_parse_number():
    assert format_number(4.0) == "4" and format_number(2.5) == "2.5" and format_number(1e20) == "1e+20"
    assert parse_number("66,987,244") == 66987244 and parse_number("-1.5e3") == -1500.0
    assert parse_number("12 apples") is None and parse_number("1,23") is None and parse_number("") is None


# ---- units --------------------------------------------------------------------------------------------


def test_unit_conversions():
    assert ok("convert_units", value=1, from_unit="mile", to_unit="km") == "1.609344"
    assert ok("convert_units", value=100, from_unit="degC", to_unit="degF") == "212"
    assert float(ok("convert_units", value=1, from_unit="km**2", to_unit="mile**2")) == pytest.approx(0.386102158542)
    assert float(ok("convert_units", value=36, from_unit="km/h", to_unit="m/s")) == pytest.approx(10)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (dict(value=1, from_unit="furlongz", to_unit="m"), "unknown unit 'furlongz'"),
        (dict(value=1, from_unit="m", to_unit="s"), "measure different things"),
        (dict(value=1, from_unit="9**9**9", to_unit="m"), "is not a unit expression"),
        (dict(value=1, from_unit="m", to_unit="k" * 41), "at most 40 are allowed"),
        (dict(value=1e300, from_unit="m", to_unit="km"), "too large"),
        (dict(value="1", from_unit="m", to_unit="km"), "argument 'value'"),
    ],
)
def test_unit_errors(args, fragment):
    assert fragment in err("convert_units", **args)


# ---- dates --------------------------------------------------------------------------------------------


def test_dates():
    assert ok("days_between", start="2020-01-01", end="2021-03-05") == "429"
    assert ok("days_between", start="2021-03-05", end="2020-01-01") == "-429"
    assert ok("days_between", start="March 5, 2021", end="2021-03-06") == "1"
    assert ok("add_days", date="2020-02-28", days=1) == "2020-02-29"
    assert ok("add_months", date="2021-01-31", months=1) == "2021-02-28"
    assert ok("weekday", date="2000-01-01") == "Saturday"


@pytest.mark.parametrize(
    "name, args, fragment",
    [
        ("weekday", dict(date="2021-02"), "incomplete"),  # dateutil would silently fill the day from today
        ("weekday", dict(date="2021-02-30"), "is not a date"),
        ("weekday", dict(date="2021-03-05 10:00"), "has a time"),
        ("weekday", dict(date="x" * 41), "at most 40"),
        ("add_days", dict(date="9999-12-31", days=1), "outside the supported range"),
        ("add_days", dict(date="2020-01-01", days=10**12), "out of range"),
        ("add_days", dict(date="2020-01-01", days=1.5), "argument 'days'"),
    ],
)
def test_date_errors(name, args, fragment):
    assert fragment in err(name, **args)


# ---- geography ----------------------------------------------------------------------------------------


def test_country_lookup_by_any_spelling():
    for spelling in ("France", "france", "FR", "FRA", "French Republic", " FRANCE "):
        assert ok("country_fact", country=spelling, field="capital") == "Paris"
    assert ok("country_fact", country="Russian Federation", field="capital") == "Moscow"
    assert ok("country_fact", country="Netherlands", field="currency_code") == "EUR"
    assert ok("country_fact", country="Japan", field="continent") == "Asia"
    assert ok("country_fact", country="France", field="languages").startswith("French")
    assert int(ok("country_fact", country="India", field="population")) > 10**9


def test_city_lookup_and_disambiguation():
    paris_fr = int(ok("city_fact", city="Paris", field="population"))
    paris_us = int(ok("city_fact", city="Paris", field="population", country="US"))
    assert paris_fr > 10**6 > paris_us  # without country: the most populous Paris
    assert ok("city_fact", city="Paris", field="country") == "France"
    assert ok("city_fact", city="bogota", field="country") == "Colombia"  # accents ignored


@pytest.mark.parametrize(
    "name, args, fragment",
    [
        ("country_fact", dict(country="Atlantis", field="capital"), "unknown country 'Atlantis'"),
        ("country_fact", dict(country="Frnace", field="capital"), "did you mean 'France'"),
        ("country_fact", dict(country="France", field="gdp"), "argument 'field'"),
        ("country_fact", dict(country="Antarctica", field="capital"), "no capital for Antarctica"),
        ("country_fact", dict(country="x" * 81, field="capital"), "at most 80"),
        ("city_fact", dict(city="Pariss", field="population"), "did you mean 'Paris'"),
        ("city_fact", dict(city="Paris", field="population", country="JP"), "no city named 'Paris' in Japan"),
    ],
)
def test_geo_errors(name, args, fragment):
    assert fragment in err(name, **args)


# ---- text ---------------------------------------------------------------------------------------------


def test_text_tools():
    assert ok("text_length", text="New Delhi") == "9"
    assert ok("count_occurrences", text="Banana", substring="a") == "3"
    assert ok("reverse_text", text="peach") == "hcaep"
    assert ok("word_count", text=" two  words ") == "2"
    assert ok("sort_items", items=["pear", "Apple", "fig"]) == "Apple, fig, pear"
    assert ok("sort_items", items=["pear", "Apple", "fig"], descending=True) == "pear, fig, Apple"


@pytest.mark.parametrize(
    "name, args, fragment",
    [
        ("text_length", dict(text="x" * 5001), "at most 5000"),
        ("count_occurrences", dict(text="abc", substring=""), "substring is empty"),
        ("sort_items", dict(items=["a,b"]), "contains a comma"),
        ("sort_items", dict(items=["a"] * 201), "at most 200"),
        ("sort_items", dict(items="a, b"), "argument 'items'"),
    ],
)
def test_text_errors(name, args, fragment):
    assert fragment in err(name, **args)


def test_every_tool_has_a_described_schema():
    for t in TOOLS:
        fn = t.schema["function"]
        assert fn["description"], t.name
        for pname, prop in fn["parameters"]["properties"].items():
            assert prop.get("description"), f"{t.name}.{pname} has no description"
