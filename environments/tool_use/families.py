"""Question families of the ToolUse-v0 generator: one function per family, grouped by tier.

A family draws its parameters from the generator's `random.Random` and returns a Draft: the question and
its gold tool chain, written with "${k}" / {"$ref": k} references to earlier outputs (tasks.py). The chain
is run on the live tools later (generate.py); nothing here computes an answer. To add a family, write a
function and list it under its tier in FAMILIES (the tier must equal the number of steps).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .tasks import AnswerType
from .tools.geo import Country, find_city, find_country, normalize_name, world


@dataclass(frozen=True)
class Draft:
    """A question and its gold chain, before the chain is run."""

    family: str
    question: str
    steps: list[tuple[str, dict[str, Any]]]
    answer_type: AnswerType
    decimals: int | None = None


# ---- parameter pools ---------------------------------------------------------------------------------


def eligible_countries() -> list[Country]:
    """Countries whose facts make unambiguous questions: 1M+ people, a positive area, a currency, a capital
    that the city tool finds as exactly one city in that country, and a name that looks up to itself."""
    w = world()
    out = []
    for code, c in sorted(w.countries.items()):
        if c.population < 1_000_000 or c.area_km2 <= 0 or not c.currency_code or not c.capital:
            continue
        if find_country(c.name).code != code:
            continue
        same = [x for x in w.cities.get(normalize_name(c.capital), ()) if x.country_code == code]
        if len(same) != 1 or find_city(c.capital, code) != same[0]:
            continue
        out.append(c)
    return out


# (pint from-unit, pint to-unit, from words, to words, value range)
UNIT_PAIRS: list[tuple[str, str, str, str, tuple[float, float]]] = [
    ("mile", "km", "miles", "kilometres", (1, 500)),
    ("km", "mile", "kilometres", "miles", (1, 800)),
    ("lb", "kg", "pounds", "kilograms", (1, 400)),
    ("kg", "lb", "kilograms", "pounds", (1, 200)),
    ("foot", "m", "feet", "metres", (1, 30000)),
    ("inch", "cm", "inches", "centimetres", (1, 100)),
    ("gallon", "liter", "US gallons", "litres", (1, 100)),
    ("liter", "gallon", "litres", "US gallons", (1, 400)),
    ("degF", "degC", "degrees Fahrenheit", "degrees Celsius", (-40, 120)),
    ("degC", "degF", "degrees Celsius", "degrees Fahrenheit", (-40, 50)),
    ("mph", "km/h", "miles per hour", "kilometres per hour", (5, 200)),
    ("km/h", "m/s", "kilometres per hour", "metres per second", (5, 300)),
    ("acre", "hectare", "acres", "hectares", (1, 5000)),
    ("ounce", "gram", "ounces", "grams", (1, 64)),
]
WORDS = (
    "apple banana cherry mango papaya lemon orange grape melon peach plum kiwi apricot guava "
    "falcon tiger zebra otter beaver rabbit walrus panda koala gecko lynx heron "
    "river canyon meadow glacier island volcano desert forest harbor lagoon "
    "copper silver marble velvet crystal amber cobalt scarlet indigo"
).split()
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2099, 12, 31)


def rand_date(rng: random.Random, lo: date = FIRST_DAY, hi: date = LAST_DAY) -> date:
    return lo + timedelta(days=rng.randrange((hi - lo).days + 1))


def rand_value(rng: random.Random, lo: float, hi: float) -> float:
    """A value with one decimal place (or a whole number a third of the time), as people write them."""
    return float(rng.randint(int(lo), int(hi))) if rng.random() < 1 / 3 else round(rng.uniform(lo, hi), 1)


def num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# ---- question families: one function per family, grouped by tier ------------------------------------------


def t1_capital(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    return Draft(
        "capital",
        f"What is the capital of {c.name}?",
        [("country_fact", {"country": c.name, "field": "capital"})],
        "text",
    )


def t1_population(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What is the population of {c.name}? Answer with a whole number."
    return Draft("population", q, [("country_fact", {"country": c.name, "field": "population"})], "integer")


def t1_currency(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What is the ISO 4217 code of the currency of {c.name}?"
    return Draft("currency", q, [("country_fact", {"country": c.name, "field": "currency_code"})], "text")


def t1_continent(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    return Draft(
        "continent",
        f"On which continent is {c.name}?",
        [("country_fact", {"country": c.name, "field": "continent"})],
        "text",
    )


def t1_convert(rng: random.Random, cs: list[Country]) -> Draft:
    src, dst, src_w, dst_w, (lo, hi) = rng.choice(UNIT_PAIRS)
    v = rand_value(rng, lo, hi)
    q = f"Convert {num_text(v)} {src_w} to {dst_w}. Round to 2 decimal places."
    return Draft("convert", q, [("convert_units", {"value": v, "from_unit": src, "to_unit": dst})], "number", 2)


def t1_days_between(rng: random.Random, cs: list[Country]) -> Draft:
    d1 = rand_date(rng)
    d2 = d1 + timedelta(days=rng.randint(1, 20000))
    q = f"How many days are there from {d1.isoformat()} to {d2.isoformat()}?"
    return Draft("days_between", q, [("days_between", {"start": d1.isoformat(), "end": d2.isoformat()})], "integer")


def t1_weekday(rng: random.Random, cs: list[Country]) -> Draft:
    d = rand_date(rng).isoformat()
    return Draft("weekday", f"What day of the week is {d}?", [("weekday", {"date": d})], "text")


def t1_add_days(rng: random.Random, cs: list[Country]) -> Draft:
    d, n = rand_date(rng).isoformat(), rng.randint(1, 5000)
    q = f"What date is {n} days after {d}? Answer as YYYY-MM-DD."
    return Draft("add_days", q, [("add_days", {"date": d, "days": n})], "date")


def t1_calculate(rng: random.Random, cs: list[Country]) -> Draft:
    a, b, c = rng.randint(2, 999), rng.randint(2, 999), rng.randint(2, 99)
    expr = rng.choice(
        [f"{a} * {b} + {c}", f"({a} + {b}) / {c}", f"{c} ** 3 - {a}", f"sqrt({a}) * {b}", f"{a} / {c} - {b} / 7"]
    )
    q = f"Compute {expr}. Round to 2 decimal places."
    return Draft("calculate", q, [("calculate", {"expression": expr})], "number", 2)


def t1_count_letter(rng: random.Random, cs: list[Country]) -> Draft:
    text = " ".join(rng.sample(WORDS, rng.randint(3, 6)))
    letter = rng.choice(sorted(set(text) - {" "}))
    q = f'How many times does the letter "{letter}" appear in "{text}"?'
    return Draft("count_letter", q, [("count_occurrences", {"text": text, "substring": letter})], "integer")


def t1_reverse(rng: random.Random, cs: list[Country]) -> Draft:
    w = rng.choice(WORDS) + rng.choice(WORDS)
    return Draft("reverse", f'Write "{w}" backwards.', [("reverse_text", {"text": w})], "text")


def t1_sort(rng: random.Random, cs: list[Country]) -> Draft:
    items = rng.sample(WORDS, rng.randint(4, 7))
    q = f"Sort these words alphabetically: {', '.join(items)}. Answer with the sorted words separated by commas."
    return Draft("sort", q, [("sort_items", {"items": items})], "text")


def t2_capital_population(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What is the population of the capital city of {c.name}? Answer with a whole number."
    steps = [
        ("country_fact", {"country": c.name, "field": "capital"}),
        ("city_fact", {"city": "${0}", "field": "population", "country": c.code}),
    ]
    return Draft("capital_population", q, steps, "integer")


def t2_weekday_after(rng: random.Random, cs: list[Country]) -> Draft:
    d, n = rand_date(rng).isoformat(), rng.randint(1, 10000)
    q = f"What day of the week is it {n} days after {d}?"
    return Draft("weekday_after", q, [("add_days", {"date": d, "days": n}), ("weekday", {"date": "${0}"})], "text")


def t2_weeks_between(rng: random.Random, cs: list[Country]) -> Draft:
    d1 = rand_date(rng)
    d2 = d1 + timedelta(days=rng.randint(10, 20000))
    q = f"How many weeks are there from {d1.isoformat()} to {d2.isoformat()}? Round to 2 decimal places."
    steps = [
        ("days_between", {"start": d1.isoformat(), "end": d2.isoformat()}),
        ("calculate", {"expression": "${0} / 7"}),
    ]
    return Draft("weeks_between", q, steps, "number", 2)


def t2_area_sq_miles(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What is the area of {c.name} in square miles? Round to 2 decimal places."
    steps = [
        ("country_fact", {"country": c.name, "field": "area_km2"}),
        ("convert_units", {"value": {"$ref": 0}, "from_unit": "km**2", "to_unit": "mile**2"}),
    ]
    return Draft("area_sq_miles", q, steps, "number", 2)


def t2_population_millions(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What is the population of {c.name} in millions? Round to 2 decimal places."
    steps = [
        ("country_fact", {"country": c.name, "field": "population"}),
        ("calculate", {"expression": "${0} / 1000000"}),
    ]
    return Draft("population_millions", q, steps, "number", 2)


def t2_capital_length(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"How many characters (spaces included) are in the name of the capital of {c.name}?"
    steps = [("country_fact", {"country": c.name, "field": "capital"}), ("text_length", {"text": "${0}"})]
    return Draft("capital_length", q, steps, "integer")


def t2_weekday_months(rng: random.Random, cs: list[Country]) -> Draft:
    d, m = rand_date(rng).isoformat(), rng.randint(1, 240)
    q = f"What day of the week is it {m} calendar months after {d}?"
    return Draft("weekday_months", q, [("add_months", {"date": d, "months": m}), ("weekday", {"date": "${0}"})], "text")


def _two_countries(rng: random.Random, cs: list[Country]) -> tuple[Country, Country]:
    a, b = rng.sample(cs, 2)
    return a, b


def t3_density(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What is the population density of {c.name} in people per square kilometre? Round to 2 decimal places."
    steps = [
        ("country_fact", {"country": c.name, "field": "population"}),
        ("country_fact", {"country": c.name, "field": "area_km2"}),
        ("calculate", {"expression": "${0} / ${1}"}),
    ]
    return Draft("density", q, steps, "number", 2)


def t3_population_ratio(rng: random.Random, cs: list[Country]) -> Draft:
    a, b = _two_countries(rng, cs)
    q = f"How many times larger is the population of {a.name} than that of {b.name}? Round to 3 decimal places."
    steps = [
        ("country_fact", {"country": a.name, "field": "population"}),
        ("country_fact", {"country": b.name, "field": "population"}),
        ("calculate", {"expression": "${0} / ${1}"}),
    ]
    return Draft("population_ratio", q, steps, "number", 3)


def t3_population_difference(rng: random.Random, cs: list[Country]) -> Draft:
    a, b = sorted(_two_countries(rng, cs), key=lambda c: -c.population)
    q = f"How many more people live in {a.name} than in {b.name}? Answer with a whole number."
    steps = [
        ("country_fact", {"country": a.name, "field": "population"}),
        ("country_fact", {"country": b.name, "field": "population"}),
        ("calculate", {"expression": "${0} - ${1}"}),
    ]
    return Draft("population_difference", q, steps, "integer")


def t3_distance_sum(rng: random.Random, cs: list[Country]) -> Draft:
    miles, feet = rand_value(rng, 1, 50), rng.randint(100, 9000)
    q = f"A hiker walks {num_text(miles)} miles and then climbs {feet} feet. How many metres is that in total? Round to 2 decimal places."
    steps = [
        ("convert_units", {"value": miles, "from_unit": "mile", "to_unit": "m"}),
        ("convert_units", {"value": feet, "from_unit": "foot", "to_unit": "m"}),
        ("calculate", {"expression": "${0} + ${1}"}),
    ]
    return Draft("distance_sum", q, steps, "number", 2)


def t3_weekday_months_days(rng: random.Random, cs: list[Country]) -> Draft:
    d, m, n = rand_date(rng).isoformat(), rng.randint(1, 120), rng.randint(1, 400)
    q = f"What day of the week is it {m} calendar months and then {n} days after {d}?"
    steps = [
        ("add_months", {"date": d, "months": m}),
        ("add_days", {"date": "${0}", "days": n}),
        ("weekday", {"date": "${1}"}),
    ]
    return Draft("weekday_months_days", q, steps, "text")


def t3_capital_population_millions(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"How many million people live in the capital city of {c.name}? Round to 2 decimal places."
    steps = [
        ("country_fact", {"country": c.name, "field": "capital"}),
        ("city_fact", {"city": "${0}", "field": "population", "country": c.code}),
        ("calculate", {"expression": "${1} / 1000000"}),
    ]
    return Draft("capital_population_millions", q, steps, "number", 2)


def t4_days_times_ratio(rng: random.Random, cs: list[Country]) -> Draft:
    a, b = _two_countries(rng, cs)
    d1 = rand_date(rng)
    d2 = d1 + timedelta(days=rng.randint(1, 3000))
    q = (
        f"Multiply the number of days from {d1.isoformat()} to {d2.isoformat()} by the ratio of the population of "
        f"{a.name} to the population of {b.name}. Round to 2 decimal places."
    )
    steps = [
        ("days_between", {"start": d1.isoformat(), "end": d2.isoformat()}),
        ("country_fact", {"country": a.name, "field": "population"}),
        ("country_fact", {"country": b.name, "field": "population"}),
        ("calculate", {"expression": "${0} * ${1} / ${2}"}),
    ]
    return Draft("days_times_ratio", q, steps, "number", 2)


def t4_capital_share(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What percentage of the population of {c.name} lives in its capital city? Round to 2 decimal places."
    steps = [
        ("country_fact", {"country": c.name, "field": "capital"}),
        ("city_fact", {"city": "${0}", "field": "population", "country": c.code}),
        ("country_fact", {"country": c.name, "field": "population"}),
        ("calculate", {"expression": "100 * ${1} / ${2}"}),
    ]
    return Draft("capital_share", q, steps, "number", 2)


def t4_density_sq_mile(rng: random.Random, cs: list[Country]) -> Draft:
    c = rng.choice(cs)
    q = f"What is the population density of {c.name} in people per square mile? Round to 2 decimal places."
    steps = [
        ("country_fact", {"country": c.name, "field": "population"}),
        ("country_fact", {"country": c.name, "field": "area_km2"}),
        ("convert_units", {"value": {"$ref": 1}, "from_unit": "km**2", "to_unit": "mile**2"}),
        ("calculate", {"expression": "${0} / ${2}"}),
    ]
    return Draft("density_sq_mile", q, steps, "number", 2)


def t4_capital_letters_weekday(rng: random.Random, cs: list[Country]) -> Draft:
    c, d = rng.choice(cs), rand_date(rng).isoformat()
    q = (
        f"Count the characters (spaces included) in the name of the capital of {c.name}. "
        f"What day of the week is it that many days after {d}?"
    )
    steps = [
        ("country_fact", {"country": c.name, "field": "capital"}),
        ("text_length", {"text": "${0}"}),
        ("add_days", {"date": d, "days": {"$ref": 1}}),
        ("weekday", {"date": "${2}"}),
    ]
    return Draft("capital_letters_weekday", q, steps, "text")


def t4_area_sum_sq_miles(rng: random.Random, cs: list[Country]) -> Draft:
    a, b = _two_countries(rng, cs)
    q = f"What is the combined area of {a.name} and {b.name} in square miles? Round to 2 decimal places."
    steps = [
        ("country_fact", {"country": a.name, "field": "area_km2"}),
        ("country_fact", {"country": b.name, "field": "area_km2"}),
        ("calculate", {"expression": "${0} + ${1}"}),
        ("convert_units", {"value": {"$ref": 2}, "from_unit": "km**2", "to_unit": "mile**2"}),
    ]
    return Draft("area_sum_sq_miles", q, steps, "number", 2)


Family = Callable[[random.Random, list[Country]], Draft]
FAMILIES: dict[int, tuple[Family, ...]] = {
    1: (t1_capital, t1_population, t1_currency, t1_continent, t1_convert, t1_days_between, t1_weekday, t1_add_days,
        t1_calculate, t1_count_letter, t1_reverse, t1_sort),
    2: (t2_capital_population, t2_weekday_after, t2_weeks_between, t2_area_sq_miles, t2_population_millions,
        t2_capital_length, t2_weekday_months),
    3: (t3_density, t3_population_ratio, t3_population_difference, t3_distance_sum, t3_weekday_months_days,
        t3_capital_population_millions),
    4: (t4_days_times_ratio, t4_capital_share, t4_density_sq_mile, t4_capital_letters_weekday, t4_area_sum_sq_miles),
}  # fmt: skip
