"""Finding environments: Gymnasium's registry, filled by packages named in the `agentrl.envs` entry point."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

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


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` after loading plugins; an unknown id names the registered ones."""
    load_env_plugins()
    if env_id not in gym.registry:
        raise ValueError(f"unknown environment {env_id!r}; registered: {', '.join(env_ids()) or 'none'}")
    # disable_env_checker: check_env is run by the tests; the passive checker would re-check every step
    return gym.make(env_id, disable_env_checker=True, **kwargs)
