"""Finding environments: Gymnasium's registry, filled by packages named in the `agentrl.envs` entry point."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

from agentrl.core.errors import UsageError, usage_errors

_loaded = False


def load_env_plugins() -> None:
    """Import every package registered under the `agentrl.envs` entry-point group (once)."""
    global _loaded
    if _loaded:
        return
    for ep in entry_points(group="agentrl.envs"):
        importlib.import_module(ep.value)
    _loaded = True


def env_ids(prefix: str = "agentrl/") -> list[str]:
    load_env_plugins()
    return sorted(k for k in gym.registry if k.startswith(prefix))


class UnknownEnvKwarg(UsageError, TypeError):
    """A kwarg the env's constructor does not take: bad input, and a TypeError as calling it would raise."""


def env_class(env_id: str) -> Any:
    """The class (or creator function) registered for `env_id`; an unknown id names the registered ones."""
    load_env_plugins()
    if env_id not in gym.registry:
        raise UsageError(f"unknown environment {env_id!r}; registered: {', '.join(env_ids()) or 'none'}")
    entry = gym.registry[env_id].entry_point
    if not isinstance(entry, str):
        return entry
    mod, _, attr = entry.partition(":")
    return getattr(importlib.import_module(mod), attr)


# keyword arguments gymnasium.make takes itself (make_env sets disable_env_checker)
_MAKE_KWARGS = tuple(n for n, p in inspect.signature(gym.make).parameters.items()
                     if p.kind is p.POSITIONAL_OR_KEYWORD and n not in ("id", "disable_env_checker"))


def env_kwarg_names(env_id: str) -> list[str] | None:
    """The keyword arguments `make_env(env_id, ...)` accepts; None when the constructor takes **kwargs."""
    params = inspect.signature(env_class(env_id)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)] + list(_MAKE_KWARGS)


def check_env_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> None:
    """Raise UsageError for an unknown env id or a kwarg its constructor does not take; constructs nothing."""
    allowed = env_kwarg_names(env_id)
    unknown = sorted(set(kwargs) - set(allowed)) if allowed is not None else []
    if unknown:
        raise UnknownEnvKwarg(f"unknown env kwarg{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))} for {env_id}; "
                         f"allowed: {', '.join(allowed)}")


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` after loading plugins. An unknown id or kwarg, or a ValueError from the constructor
    (its check of the kwargs' values), is a UsageError."""
    check_env_kwargs(env_id, kwargs)
    # disable_env_checker: check_env is run by the tests; the passive checker would re-check every step
    with usage_errors(f"{env_id}: "):
        return gym.make(env_id, disable_env_checker=True, **kwargs)
