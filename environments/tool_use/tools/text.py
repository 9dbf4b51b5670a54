"""Small string and list utilities. Inputs are bounded so every call is linear in a few thousand characters."""

from __future__ import annotations

from agentrl.core.tools import ToolError, tool

MAX_TEXT_CHARS = 5_000
MAX_ITEMS = 200
MAX_ITEM_CHARS = 100


def _check_text(text: str, argument: str = "text") -> str:
    if not isinstance(text, str):
        raise ToolError(f"{argument} must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ToolError(f"{argument} has {len(text)} characters; at most {MAX_TEXT_CHARS} are allowed")
    return text


def _check_items(items: list[str]) -> list[str]:
    if not isinstance(items, list):
        raise ToolError(f"items must be a list of strings, got {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise ToolError(f"items has {len(items)} entries; at most {MAX_ITEMS} are allowed")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ToolError(f"items[{i}] must be a string, got {type(item).__name__}")
        if len(item) > MAX_ITEM_CHARS:
            raise ToolError(f"items[{i}] has {len(item)} characters; at most {MAX_ITEM_CHARS} are allowed")
        if "," in item:  # results are joined with ", "; a comma inside an item would make them ambiguous
            raise ToolError(f"items[{i}] contains a comma; give each item separately")
    return items


@tool
def text_length(text: str) -> str:
    """Number of characters in a text (spaces and punctuation included).

    Args:
        text: the text to measure
    """
    return str(len(_check_text(text)))


@tool
def count_occurrences(text: str, substring: str) -> str:
    """How many times a substring occurs in a text, ignoring case (non-overlapping, left to right).

    Args:
        text: the text to search
        substring: what to count, e.g. "a"
    """
    _check_text(text)
    _check_text(substring, "substring")
    if not substring:
        raise ToolError("substring is empty; give at least one character to count")
    return str(text.casefold().count(substring.casefold()))


@tool
def reverse_text(text: str) -> str:
    """The text with its characters in reverse order.

    Args:
        text: the text to reverse
    """
    return _check_text(text)[::-1]


@tool
def word_count(text: str) -> str:
    """Number of whitespace-separated words in a text.

    Args:
        text: the text whose words to count
    """
    return str(len(_check_text(text).split()))


@tool
def sort_items(items: list[str], descending: bool = False) -> str:
    """Sort strings alphabetically (ignoring case) and return them joined by ", ".

    Args:
        items: the strings to sort, e.g. ["pear", "Apple", "fig"]
        descending: true for Z to A
    """
    return ", ".join(sorted(_check_items(items), key=lambda s: (s.casefold(), s), reverse=descending))
