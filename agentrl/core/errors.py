"""Errors that mean "the input was wrong", as opposed to a bug.

The CLI turns a `UsageError` (and its subclass `config.ConfigError`) into a one-line message and exit
status 2; any other exception is a bug and keeps its traceback. Both are ValueErrors, so callers that
catch ValueError keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UsageError(ValueError):
    """Bad user input (a flag, a config value, a file): the message says what was wrong and what is allowed."""


@contextmanager
def usage_errors(prefix: str = "") -> Iterator[None]:
    """Treat a ValueError raised inside as bad user input, for code whose ValueErrors validate what the user
    named (an env constructor, a model name); `prefix` says which input, e.g. "--model tiny: "."""
    try:
        yield
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(f"{prefix}{exc}") from exc
