"""Finding environments: Gymnasium's registry, filled by packages named in the `agentrl.envs` entry point, and
by the user's own modules named in an id: `my_module:MyEnv-v0` (Gymnasium's `module:id` convention) imports
`my_module`, whose import registers `MyEnv-v0`, so an env in a file of one's own trains without packaging it.
Scripted (rule-based) agents are looked up here by env id too (`scripted_agents`), apart from the env classes."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

from agentrl.core.errors import UsageError, usage_errors

_loaded = False

# id prefixes a plugin registers (`register_id_prefix`): `openenv:http://host:8000` is the env registered for the prefix with
# its `kwarg` set to what follows the colon. Checked before `module:Id`, whose module part would be `openenv:http`.
_ID_PREFIXES: dict[str, tuple[str, str]] = {}


def register_id_prefix(prefix: str, env_id: str, kwarg: str) -> None:
    """Make `PREFIX:VALUE` an env id meaning `env_id` made with `kwarg=VALUE` (an env package calls this on import,
    e.g. `openenv:URL` -> the OpenEnv client env with `base_url=URL`)."""
    if not prefix.isidentifier() or not kwarg.isidentifier():
        raise ValueError(f"id prefix {prefix!r} and kwarg {kwarg!r} must be identifiers")
    _ID_PREFIXES[prefix] = (env_id, kwarg)


def prefixed_id(env_id: Any) -> tuple[str, dict[str, str]] | None:
    """(registered id, {kwarg: value}) for a `PREFIX:VALUE` id of a registered prefix, else None."""
    load_env_plugins()
    if not isinstance(env_id, str):
        return None
    prefix, sep, value = env_id.partition(":")
    if not sep or prefix not in _ID_PREFIXES:
        return None
    target, kwarg = _ID_PREFIXES[prefix]
    if not value:
        raise UsageError(f"environment {env_id!r}: give a value after {prefix}: (e.g. {prefix}:http://127.0.0.1:8000)")
    return target, {kwarg: value}


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


def _missing(exc: ModuleNotFoundError, module: str) -> bool:
    """Whether `exc` says `module` itself (or a package above it) is missing, not something it imports."""
    return exc.name is not None and (module == exc.name or module.startswith(exc.name + "."))


def _import_env_module(module: str, env_id: str) -> None:
    """Import the module an id names. The working directory is searched too (where one runs `agentrl train`
    next to one's env file), after everything on sys.path. Not importable: a UsageError."""
    try:
        importlib.import_module(module)
        return
    except ModuleNotFoundError as exc:
        if not _missing(exc, module):
            raise UsageError(f"environment {env_id!r}: importing {module!r} failed: {exc}") from exc
        cwd = os.getcwd()
        if cwd in sys.path or "" in sys.path:
            raise UsageError(
                f"environment {env_id!r}: no module {module!r} to import (searched sys.path and the "
                f"working directory {cwd}); put {module.replace('.', '/')}.py there or on PYTHONPATH"
            ) from exc
    sys.path.append(cwd)  # the working directory, last: installed packages keep precedence
    importlib.invalidate_caches()
    _import_env_module(module, env_id)


def _registered_by(module: str) -> list[str]:
    """Registered ids whose entry point lives in `module` (or a module below it)."""
    out = []
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point
        where = entry.partition(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")
        if where == module or where.startswith(module + "."):
            out.append(env_id)
    return sorted(out)


def resolve_env_id(env_id: str) -> str:
    """The registered id for `env_id`: plugins loaded, and for `module:Id` the module imported (which registers
    Id) and Id returned. An unknown id or module is a UsageError naming what is registered."""
    load_env_plugins()
    if not isinstance(env_id, str) or not env_id:
        raise UsageError(f"an environment id must be a non-empty string, got {env_id!r}")
    pre = prefixed_id(env_id)
    if pre is not None:
        return resolve_env_id(pre[0])
    module, sep, name = env_id.rpartition(":")
    if sep:
        if not module or not name:
            raise UsageError(f"environment {env_id!r} must look like module:EnvId-v0 or EnvId-v0")
        _import_env_module(module, env_id)
        if name not in gym.registry:
            raise UsageError(
                f"unknown environment {name!r}: importing {module!r} did not register it (it registered "
                f"{', '.join(_registered_by(module)) or 'none'}; gymnasium.register(id=..., entry_point=...) does)"
            )
        return name
    if env_id not in gym.registry:
        raise UsageError(f"unknown environment {env_id!r}; registered: {', '.join(env_ids()) or 'none'}")
    return env_id


def env_class(env_id: str) -> Any:
    """The class (or creator function) registered for `env_id` (or `module:Id`); an unknown id names the
    registered ones."""
    entry = gym.registry[resolve_env_id(env_id)].entry_point
    if not isinstance(entry, str):
        return entry
    mod, _, attr = entry.partition(":")
    return getattr(importlib.import_module(mod), attr)


# keyword arguments gymnasium.make takes itself (make_env sets disable_env_checker)
_MAKE_KWARGS = tuple(
    n
    for n, p in inspect.signature(gym.make).parameters.items()
    if p.kind is p.POSITIONAL_OR_KEYWORD and n not in ("id", "disable_env_checker")
)


def env_kwarg_names(env_id: str) -> list[str] | None:
    """The keyword arguments `make_env(env_id, ...)` accepts; None when the constructor takes **kwargs."""
    params = inspect.signature(env_class(env_id)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    pre = prefixed_id(env_id)
    fixed = set(pre[1]) if pre is not None else set()  # what a `PREFIX:VALUE` id sets itself
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in fixed]
    return names + list(_MAKE_KWARGS)


def check_env_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> None:
    """Raise UsageError for an unknown env id or a kwarg its constructor does not take; constructs nothing."""
    check_kwarg_names(env_id, env_kwarg_names(env_id), kwargs)


def check_kwarg_names(env_id: str, allowed: list[str] | None, kwargs: Mapping[str, Any]) -> None:
    """`check_env_kwargs` with the names already read (`env_kwarg_names`; None: the constructor takes **kwargs)."""
    if allowed is None:  # the constructor takes **kwargs
        return
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UnknownEnvKwarg(
            f"unknown env kwarg{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))} for {env_id}; "
            f"allowed: {', '.join(allowed)}"
        )


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` after loading plugins (and, for `module:Id`, importing the module). An unknown id,
    module or kwarg, or a ValueError from the constructor (its check of the kwargs' values), is a UsageError."""
    full = with_id_kwargs(env_id, kwargs)  # first: a kwarg the id sets is named as such, not as unknown
    check_env_kwargs(env_id, kwargs)
    return make_checked(resolve_env_id(env_id), full, env_id)


def with_id_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """`kwargs` plus what a `PREFIX:VALUE` id sets (a new dict); one the id sets given again is a UsageError."""
    pre = prefixed_id(env_id)
    if pre is None:
        return dict(kwargs)
    given = sorted(set(pre[1]) & set(kwargs))
    if given:
        raise UsageError(f"{env_id}: the id already sets {given[0]}; leave it out of the env kwargs")
    return {**kwargs, **pre[1]}


def make_checked(registered_id: str, kwargs: Mapping[str, Any], env_id: str | None = None) -> gym.Env:
    """`gymnasium.make` of a registered id with kwargs whose names were checked (`check_kwarg_names`, and
    `with_id_kwargs` applied): what `make_env` does after its checks. A ValueError from the constructor is a
    UsageError naming `env_id` (default: the registered id)."""
    # disable_env_checker: check_env is run by the tests; the passive checker would re-check every step
    with usage_errors(f"{env_id or registered_id}: "):
        return gym.make(registered_id, disable_env_checker=True, **kwargs)


# --- scripted agents ------------------------------------------------------------------------------------
# Rule-based agents (`--model scripted:NAME`, `sft --from scripted:NAME`) are not part of the env contract: they
# are found by env id, in the `agentrl.scripted` entry-point group (entry name: the env id; value: a module
# attribute holding {name: factory}) and in what `register_scripted` was given (a user's `module:Id` env).
# Only the scripted module of the env asked about is imported.

ScriptedAgent = Callable[[list[dict[str, str]]], str]  # act(conversation so far) -> the agent's next message
ScriptedFactory = Callable[[Any], ScriptedAgent]  # factory(bare env) -> an agent bound to that env instance

_scripted: dict[str, dict[str, ScriptedFactory]] = {}
_scripted_loaded: set[str] = set()


class UnknownScriptedAgent(UsageError):
    """A scripted:NAME the env does not have (a ValueError too, as every UsageError)."""


def register_scripted(env_id: str, agents: Mapping[str, ScriptedFactory]) -> None:
    """Add scripted agents for `env_id` ({name: factory(env) -> act(conversation) -> str}); a name given
    again replaces the earlier factory. A user's own env module calls this next to `gymnasium.register`."""
    bad = [n for n, f in agents.items() if not isinstance(n, str) or not n or not callable(f)]
    if bad:
        raise TypeError(
            f"scripted agents for {env_id}: each needs a non-empty name and a callable factory; bad: {bad!r}"
        )
    _scripted.setdefault(env_id, {}).update(agents)


def _load_scripted_plugins(env_id: str) -> None:
    """Load the `agentrl.scripted` entry points named `env_id` (once per id); a name `register_scripted` was
    given before keeps its factory."""
    if env_id in _scripted_loaded:
        return
    given = dict(_scripted.get(env_id, {}))
    for ep in entry_points(group="agentrl.scripted", name=env_id):
        agents = ep.load()
        if not isinstance(agents, Mapping):
            raise TypeError(
                f"entry point agentrl.scripted {ep.name} = {ep.value} must name a mapping "
                f"{{name: factory}}, got {type(agents).__name__}"
            )
        register_scripted(env_id, agents)
    if given:
        register_scripted(env_id, given)
    _scripted_loaded.add(env_id)


def scripted_agents(env_id: str) -> dict[str, ScriptedFactory]:
    """{name: factory} of the scripted agents of `env_id` (or `module:Id`); {} when it has none. An unknown
    id is a UsageError naming the registered ones."""
    resolved = resolve_env_id(env_id)
    _load_scripted_plugins(resolved)
    return dict(_scripted.get(resolved, {}))


def scripted_factory(env_id: str, name: str) -> ScriptedFactory:
    """The factory of `env_id`'s scripted agent `name`; an unknown name is an UnknownScriptedAgent that lists
    the available ones. Builds no env: the CLI checks `scripted:NAME` with it before anything loads."""
    agents = scripted_agents(env_id)
    if name not in agents:
        have = ", ".join(f"scripted:{a}" for a in sorted(agents)) or "none"
        raise UnknownScriptedAgent(f"{env_id} has no scripted agent {name!r}; available: {have}")
    return agents[name]


def scripted_agent(env_id: str, name: str, env: Any) -> ScriptedAgent:
    """`env_id`'s scripted agent `name`, bound to `env` (a wrapper is unwrapped to the env it wraps)."""
    return scripted_factory(env_id, name)(getattr(env, "unwrapped", env))
