"""One way to build a `RolloutRunner`: for training (`Trainer`), held-out evaluation, `agentrl rollout` and
`agentrl eval`.

The env's simulated user / patient gets its chat model the same way everywhere: a simulator setting (config
`env.simulator`, flag `--simulator`) is checked against the env before any model loads, loaded once, and given to
every env of the runner as its `simulator` argument (`agentrl/sim/models.py`).

A run's simulator calls are batched on its `SimulatorQueue` (`agentrl/sim/batching.py`): whoever builds the run
creates one and gives it to `prepare_env_kwargs` (the batching simulator joins it) and to `build_runner` (the
runner serves it while it steps the envs). Runs with different queues share no state.

`simulator` is duck-typed: anything with the fields of `train.config.SimulatorConfig` (model, batch, max_batch,
max_wait_s, kv_store, dtype); this layer does not import the training config.
"""

from __future__ import annotations

from typing import Any

from agentrl.core.registry import make_env
from agentrl.inference.base import PolicyBackend, SamplingParams
from agentrl.rollout.runner import RolloutRunner
from agentrl.sim.batching import SimulatorQueue
from agentrl.sim.models import (
    check_simulator,
    env_kwargs_with_simulator,
    simulator_queue_of,
)


def check_env(env_id: str, env_kwargs: dict[str, Any], simulator: Any = None) -> None:
    """Build the env once, before any model loads, to check its id and kwargs (and that it takes `simulator`:
    the simulator's model is stood in for). Raises UsageError / ValueError naming the problem."""
    if simulator is None:
        make_env(env_id, **env_kwargs).close()
    else:
        check_simulator(env_id, env_kwargs, simulator)


def prepare_env_kwargs(
    env_id: str, env_kwargs: dict[str, Any], simulator: Any = None, simulator_queue: SimulatorQueue | None = None
) -> dict[str, Any]:
    """The kwargs every env of a run is built with: `env_kwargs` plus the simulator's model, loaded once and shared
    (checked before it loads). The env is built once with them, so bad values fail here. A new dict.
    simulator_queue: the run's queue, which a batching simulator joins (None: a private one of the model's)."""
    check_env(env_id, env_kwargs, simulator)
    kwargs = env_kwargs_with_simulator(env_kwargs, simulator, simulator_queue)
    if simulator is not None:
        make_env(env_id, **kwargs).close()
    return kwargs


def build_runner(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: PolicyBackend,
    formatter: Any,
    sampling: SamplingParams,
    *,
    simulator: Any = None,
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
    """A runner whose envs are `make_env(env_id, **env_kwargs)`.

    simulator: None when `env_kwargs` are final (already hold the simulator's model, from `prepare_env_kwargs`,
    or the env has no simulated counterpart); a simulator setting to check, load and share here.
    simulator_queue: the run's queue, served by the runner. None: the queue of the batching simulator that
    `env_kwargs` already hold, if any, else a new one (which a simulator loaded here joins).
    episode_timeout_s: wall-clock limit per episode (config `rollout.episode_timeout_s`; None: no limit).
    The other options are `RolloutRunner`'s."""
    if simulator_queue is None:
        simulator_queue = simulator_queue_of(env_kwargs) or SimulatorQueue()
    kwargs = (
        prepare_env_kwargs(env_id, env_kwargs, simulator, simulator_queue)
        if simulator is not None
        else dict(env_kwargs)
    )
    return RolloutRunner(
        lambda: make_env(env_id, **kwargs),
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
