"""The one way to get a run's env and a `RolloutRunner` on it: for training (`Trainer`), held-out evaluation,
`agentrl rollout` and `agentrl eval`.

`resolve_env` turns (env id, kwargs, simulator setting) into a `ResolvedEnv`, once per run, before any policy
model loads: the id resolved, the constructor's signature read once, the kwargs' names checked, the env built once
(the probe: it checks the values and gives the task list), the simulator's model loaded. Everything after takes
the record: the runner's envs (`ResolvedEnv.make`), the task draws and the held-out evaluator (its task list), and
`agentrl eval` / `rollout`. So a run builds its env once per env its runners keep (without a simulator the probe is
the first of them), plus, with a simulator, the one probe that held the stand-in (`tests/test_env_once.py`).

The env's simulated user / patient gets its chat model the same way everywhere: a simulator setting (config
`env.simulator`, flag `--simulator`) is checked against the env with a stand-in for the model (the probe is then
built with the stand-in and closed), loaded once, and given to every env of the run as its `simulator` argument
(`agentrl/sim/models.py`).

A run's simulator calls are batched on its `SimulatorQueue` (`agentrl/sim/batching.py`): whoever builds the run
creates one and gives it to `resolve_env` (the batching simulator joins it) and to `build_runner` (the runner
serves it while it steps the envs). Runs with different queues share no state.

`simulator` is duck-typed: anything with the fields of `train.config.SimulatorConfig` (model, batch, max_batch,
max_wait_s, kv_store, dtype); this layer does not import the training config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentrl.core.registry import (
    check_kwarg_names,
    env_class,
    env_kwarg_names,
    make_checked,
    resolve_env_id,
    with_id_kwargs,
)
from agentrl.inference.base import PolicyBackend, SamplingParams
from agentrl.rollout.runner import RolloutRunner
from agentrl.sim.batching import SimulatorQueue
from agentrl.sim.models import (
    env_kwargs_with_simulator,
    simulator_queue_of,
    simulator_stand_in,
)


@dataclass(eq=False)
class ResolvedEnv:
    """A run's env, resolved once (`resolve_env`): what building one more instance needs, and what the probe
    instance told about it. `make()` builds an instance without checking again."""

    env_id: str  # as given: `Id`, `module:Id` or `PREFIX:VALUE`
    registered_id: str  # gymnasium's id
    env_class: Any  # the registered class (or creator function)
    kwargs: dict[str, Any]  # checked, as the user gave them plus the simulator's model (if any)
    kwarg_names: list[str] | None  # what the constructor takes (None: **kwargs), read once
    task_ids: list[str] | None  # the env's fixed tasks (`MultiTurnEnv.task_ids()`); None: it draws from the seed
    task_families: dict[str, str | None] = field(default_factory=dict)  # `task_family` of each task id
    simulator: str | None = None  # the simulator's model name, if one plays the env's user / patient
    _spare: list[Any] = field(default_factory=list, repr=False)  # the probe, when it can run episodes

    def make(self) -> Any:
        """A new env (the probe the first time, when it was built with these very kwargs)."""
        if self._spare:
            return self._spare.pop()
        return make_checked(self.registered_id, with_id_kwargs(self.env_id, self.kwargs), self.env_id)

    def with_kwargs(self, extra: Mapping[str, Any]) -> ResolvedEnv:
        """The same env with `extra` over its kwargs (held-out evaluation's `train.eval_env_kwargs`): names checked
        against the constructor's, read before; built once here (values, task list), and that probe is the first
        env its `make()` gives. No `extra`: this record itself."""
        if not extra:
            return self
        check_kwarg_names(self.env_id, self.kwarg_names, extra)
        return _probed(self, {**self.kwargs, **extra}, stand_in=None)


def _probed(env: ResolvedEnv, kwargs: dict[str, Any], stand_in: dict[str, Any] | None) -> ResolvedEnv:
    """`env` with `kwargs`, its task list read from one instance built with them (with `stand_in`'s kwargs when
    given: then the instance is closed, else it is kept as the first env `make()` gives)."""
    probe = make_checked(env.registered_id, with_id_kwargs(env.env_id, stand_in or kwargs), env.env_id)
    try:
        bare = getattr(probe, "unwrapped", probe)
        ids = bare.task_ids() if hasattr(bare, "task_ids") else None
        ids = list(ids) if ids else None
        families = {t: bare.task_family(t) for t in ids} if ids and hasattr(bare, "task_family") else {}
    except BaseException:
        probe.close()
        raise
    if stand_in is not None:
        probe.close()
    out = ResolvedEnv(
        env.env_id,
        env.registered_id,
        env.env_class,
        kwargs,
        env.kwarg_names,
        ids,
        families,
        env.simulator,
    )
    if stand_in is None:
        out._spare.append(probe)
    return out


def resolve_env(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    simulator: Any = None,
    simulator_queue: SimulatorQueue | None = None,
    *,
    check_also: Mapping[str, Any] | None = None,
) -> ResolvedEnv:
    """The run's env, checked and built once, in this order, each step before the next costs anything: the id
    (an unknown one names the registered), the kwargs' names (and `check_also`'s, kwargs another env of the
    run adds: `train.eval_env_kwargs`), that the env takes a simulator when one is set, the values (the env built
    once: the probe, with a stand-in for the simulator's model), then the simulator's model loaded (joining
    `simulator_queue`; None: a private queue of the model's) and put in the kwargs. Raises UsageError naming
    the problem (an unknown kwarg is also a TypeError)."""
    registered = resolve_env_id(env_id)
    names = env_kwarg_names(env_id)  # the one signature inspection
    kwargs = dict(env_kwargs)
    with_id_kwargs(env_id, kwargs)  # a kwarg the id sets, given again, is named as such
    check_kwarg_names(env_id, names, {**kwargs, **(check_also or {})})
    env = ResolvedEnv(env_id, registered, env_class(env_id), kwargs, names, None)
    if simulator is None:
        return _probed(env, kwargs, stand_in=None)
    env = _probed(env, kwargs, stand_in=simulator_stand_in(env_id, names, kwargs, simulator))
    env.kwargs = env_kwargs_with_simulator(kwargs, simulator, simulator_queue)
    env.simulator = simulator.model
    return env


def build_runner(
    env: ResolvedEnv,
    policy: PolicyBackend,
    formatter: Any,
    sampling: SamplingParams,
    *,
    constrained: bool = False,
    snapshot_turns: bool = False,
    anchor_turns: bool = False,
    max_seq_len: int = 4096,
    seed: int = 0,
    progress: bool = False,
    env_workers: int = 1,
    simulator_queue: SimulatorQueue | None = None,
    episode_timeout_s: float | None = None,
) -> RolloutRunner:
    """A runner whose envs are `env.make()` (`resolve_env`'s record: its kwargs hold the simulator's model).

    simulator_queue: the run's queue, served by the runner. None: the queue of the batching simulator that
    `env.kwargs` hold, if any, else a new one.
    episode_timeout_s: wall-clock limit per episode (config `rollout.episode_timeout_s`; None: no limit).
    The other options are `RolloutRunner`'s."""
    if simulator_queue is None:
        simulator_queue = simulator_queue_of(env.kwargs) or SimulatorQueue()
    return RolloutRunner(
        env.make,
        policy,
        formatter,
        sampling,
        constrained=constrained,
        snapshot_turns=snapshot_turns,
        anchor_turns=anchor_turns,
        max_seq_len=max_seq_len,
        seed=seed,
        progress=progress,
        env_workers=env_workers,
        simulator_queue=simulator_queue,
        episode_timeout_s=episode_timeout_s,
    )
