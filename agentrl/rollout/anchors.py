"""Anchor-state keys: one stable hash per agent turn, equal exactly when two episodes stand in the same situation.

GiGPO (Feng et al. 2025, "Group-in-Group Policy Optimization for LLM Agent Training", arXiv:2505.10978, §3.2)
groups the steps of a task's trajectories that start from the same *anchor state* and compares their returns.
verl-agent finds them by comparing the observation text (optionally by a similarity threshold). agentrl can
compare states exactly: the key of turn k is

    sha256( canonical(env.snapshot() before turn k), the observation history before turn k )

where the observation history is every env-side message of `Episode.messages` so far (system prompt, opening
and each env reply; the agent's own messages are left out). So two turns share a key when the env is in the
same state and showed the same observations: two episodes whose agents worded a turn differently but did the
same thing (the same tool call, the same answer) meet again at one anchor, which is what GiGPO's step-level
groups are for. (The paper keys on the current observation alone; the env snapshot makes the match exact.)

The canonical form (`canonical`) is JSON over a tagged tree, so it does not depend on memory addresses, dict
or set order, or which env instance of the pool ran the episode:
  * None, bool, int, float, str: themselves; list / tuple / deque / dict / set / frozenset: tagged, dicts
    and sets sorted by their entries' canonical JSON;
  * dataclasses and other objects: their type's qualified name and their attributes (`__dict__` and
    `__slots__`), sorted; enums: type and member name; numpy arrays and torch tensors: dtype, shape and a
    digest of their bytes; numpy / `random` RNGs: their state; functions, classes and modules: their name;
  * objects the snapshot contract shares instead of copying (their class's `__deepcopy__` returns the
    object itself, e.g. `BaseChatModel`, FlightBooking's `World` and `Task`, ToolUse's `Task`; or an env
    attribute listed in `shared_state`) are read-only resources, not episode state: only their type name
    counts (a model's weights are never hashed; a task record is, in effect, through the snapshot's task id
    and prompt). Whether a class's `__deepcopy__` returns self is checked once per class. Numbers (Decimal,
    Fraction, complex) and compiled patterns count by value, though their `__deepcopy__` may return self;
  * a reference cycle is written as a marker.
An object none of these covers (no attributes, and a default `<... at 0x...>` repr, e.g. a bare `object()`)
makes the snapshot unhashable: the key then falls back to the observation history alone (a warning is logged
once per env class), which still separates every conversation that differs but can merge two states that
differ only out of sight. The same happens for a snapshot nested deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import json
import logging
import numbers
import random
import re
import threading
import types
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import torch

from agentrl.core.env import EnvSnapshot, MultiTurnEnv
from agentrl.core.types import Message

log = logging.getLogger(__name__)

VERSION = "agentrl.anchor/1"  # part of every hashed text: a change of the canonical form changes every key
MAX_DEPTH = 100  # a few Python frames per level: deeper would meet the recursion limit first
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_SHARES_SELF: dict[type, bool] = {}  # class -> its __deepcopy__ returns the object itself
_WARNED: set[str] = set()
_LOCK = threading.Lock()


class Unhashable(ValueError):
    """A snapshot holds something without a canonical form (see the module docstring)."""


def _type_name(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _shares_self(obj: Any) -> bool:
    t = type(obj)
    if getattr(t, "__deepcopy__", None) is None:
        return False
    if t not in _SHARES_SELF:
        _SHARES_SELF[t] = copy.deepcopy(obj, {}) is obj
    return _SHARES_SELF[t]


def canonical(obj: Any, shared: Collection[int] = (), *, _path: frozenset[int] = frozenset(), _depth: int = 0) -> Any:
    """A JSON-able tree that is equal for equal states (module docstring). shared: ids of objects written as their
    type name only (the env's `shared_state` attributes). Raises `Unhashable`."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if _depth > MAX_DEPTH:
        raise Unhashable(f"nested deeper than {MAX_DEPTH}")
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (numbers.Number, re.Pattern)):  # Decimal, Fraction, complex: values (their __deepcopy__
        return ["R", _type_name(obj), repr(obj)]  # may return self, but they are not shared resources)
    if id(obj) in shared or _shares_self(obj):
        return ["shared", _type_name(obj)]
    if id(obj) in _path:
        return ["cycle", _type_name(obj)]
    path, d = _path | {id(obj)}, _depth + 1

    def rec(x: Any) -> Any:
        return canonical(x, shared, _path=path, _depth=d)

    def entries(pairs: Any) -> list[Any]:
        return sorted(([rec(k), rec(v)] for k, v in pairs), key=_dumps)

    if isinstance(obj, enum.Enum):
        return ["E", _type_name(obj), obj.name]
    if isinstance(obj, (list, tuple, deque)):
        return ["L" if isinstance(obj, list) else "T" if isinstance(obj, tuple) else "Q", [rec(x) for x in obj]]
    if isinstance(obj, dict):
        return ["D", _type_name(obj), entries(obj.items())]
    if isinstance(obj, (set, frozenset)):
        return ["S", sorted((rec(x) for x in obj), key=_dumps)]
    if isinstance(obj, (bytes, bytearray)):
        return ["B", bytes(obj).hex()]
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return ["A", "object", list(obj.shape), rec(obj.tolist())]
        return ["A", str(obj.dtype), list(obj.shape), hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()]
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return rec((t.float() if t.dtype == torch.bfloat16 else t).numpy())  # numpy has no bfloat16
    if isinstance(obj, np.random.Generator):
        return ["rng", _type_name(obj.bit_generator), rec(obj.bit_generator.state)]
    if isinstance(obj, np.random.RandomState):
        return ["rng", "RandomState", rec(obj.get_state(legacy=False))]
    if isinstance(obj, random.Random):
        return ["rng", "random.Random", rec(obj.getstate())]
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type, types.ModuleType)):
        return [
            "code",
            getattr(obj, "__module__", "") or "",
            getattr(obj, "__qualname__", getattr(obj, "__name__", "")),
        ]
    attrs = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
    for klass in type(obj).__mro__:
        slots = getattr(klass, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name.startswith("__") and not name.endswith("__"):  # a private slot is stored under its mangled name
                name = f"_{klass.__name__.lstrip('_')}{name}"
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                attrs.setdefault(name, getattr(obj, name))
    if attrs or hasattr(obj, "__dict__"):
        return ["O", _type_name(obj), entries(attrs.items())]
    text = repr(obj)  # datetime, date ...: their repr is their value
    if _ADDRESS.search(text):
        raise Unhashable(f"{_type_name(obj)} has no canonical form ({_ADDRESS.sub('', text)[:80]})")
    return ["R", _type_name(obj), text]


def _dumps(x: Any) -> str:
    return json.dumps(x, separators=(",", ":"), allow_nan=True)


def history(messages: Sequence[Message]) -> list[list[str]]:
    """The observation history: the env-side messages (the agent's own are not observations)."""
    return [[m.role, m.content] for m in messages if m.role != "assistant"]


def anchor_key(
    snapshot: EnvSnapshot | None, messages: Sequence[Message], shared: Collection[int] = (), *, owner: str = ""
) -> str:
    """The hex sha256 of (canonical snapshot data, observation history). With snapshot None, or one that cannot
    be hashed, of the history alone: such a key never equals a full one, and a warning names `owner` (the env
    class) once."""
    state = None
    if snapshot is not None:
        try:
            state = canonical(snapshot.data, shared)
        except (Unhashable, RecursionError) as exc:
            with _LOCK:
                first = owner not in _WARNED
                _WARNED.add(owner)
            if first:
                log.warning(
                    "anchor states of %s: its snapshot cannot be hashed (%s); GiGPO's anchor keys use the "
                    "observation history alone",
                    owner or "an env",
                    exc,
                )
    return hashlib.sha256(_dumps([VERSION, state, history(messages)]).encode()).hexdigest()


def env_anchor_key(env: MultiTurnEnv, messages: Sequence[Message], snapshot: EnvSnapshot | None = None) -> str:
    """The key of `env`'s current state after `messages`: of `snapshot` when given (it must be the env's current
    one), else of a snapshot taken here. The env's `shared_state` attributes count by type name only."""
    snap = env.snapshot() if snapshot is None else snapshot
    shared = {id(getattr(env, n)) for n in env.shared_state if hasattr(env, n)}
    return anchor_key(snap, messages, shared, owner=_type_name(env))
