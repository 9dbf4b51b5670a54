"""Chat models for simulated users, patients and judges, from a name (config `env.simulator`, CLI flags).

    smollm2-135m | tiny-random | /local/hf/dir     -> HFChatModel (local transformers)
    MODEL@http(s)://HOST/v1                        -> HTTPChatModel (OpenAI-compatible; key from $OPENAI_API_KEY)

`env_kwargs_with_simulator` puts one shared model (behind a `BatchingChatModel` on the run's `SimulatorQueue`
when asked) into the env constructor's `simulator` argument, so every env of a run talks to the same model.
Every env with a simulated counterpart takes its model that way (FlightBooking: user="llm"; Consultation:
patient / diagnoser="llm").
"""

from __future__ import annotations

from typing import Any

from agentrl.core.chat import BaseChatModel
from agentrl.core.errors import UsageError
from agentrl.sim.batching import BatchingChatModel, SimulatorQueue

SIMULATOR_ARG = "simulator"  # the constructor argument by which an env takes its simulator's chat model


def make_chat_model(name: str, *, kv_store: int = 32, dtype: str = "float32") -> Any:
    """kv_store: for a local model, how many conversations keep their KV cache between calls (each turn then
    encodes only what was added since the last; `agentrl/inference/kv_store.py`). 0 = off.
    dtype: a local model's weights, "float32" or "bfloat16" (an endpoint's model is the server's business)."""
    if dtype not in ("float32", "bfloat16"):
        raise UsageError(f"dtype {dtype!r} is not supported for a chat model; allowed: float32, bfloat16")
    if not isinstance(name, str) or not name:
        raise UsageError(f"a chat model name must be a non-empty string, got {name!r}")
    if "@http://" in name or "@https://" in name:
        from agentrl.inference.http import HTTPChatModel

        model, url = name.split("@", 1)
        return HTTPChatModel(url, model)
    import torch

    from agentrl.inference.hf import HFChatModel

    return HFChatModel.load(name, kv_store=kv_store, dtype=getattr(torch, dtype))


def env_kwargs_with_simulator(
    kwargs: dict[str, Any], simulator: Any, queue: SimulatorQueue | None = None
) -> dict[str, Any]:
    """`simulator`: a `SimulatorConfig` or None. Returns a new kwargs dict (the config's is not changed) with
    the loaded model as `simulator`. queue: the run's `SimulatorQueue`, which a batching model joins (None:
    the model gets a private one; `simulator_queue_of` finds it)."""
    out = dict(kwargs)
    if simulator is None:
        return out
    _check_not_set(kwargs)
    model = make_chat_model(simulator.model, kv_store=simulator.kv_store, dtype=simulator.dtype)
    if simulator.batch:
        model = BatchingChatModel(model, queue=queue, max_batch=simulator.max_batch, max_wait_s=simulator.max_wait_s)
    out[SIMULATOR_ARG] = model
    return out


def simulator_queue_of(kwargs: dict[str, Any]) -> SimulatorQueue | None:
    """The `SimulatorQueue` of the batching model that env kwargs give as `simulator`; None when they give none."""
    model = kwargs.get(SIMULATOR_ARG)
    return model.queue if isinstance(model, BatchingChatModel) else None


def _check_not_set(kwargs: dict[str, Any]) -> None:
    if SIMULATOR_ARG in kwargs:
        raise UsageError(f"env.kwargs.{SIMULATOR_ARG} is set and env.simulator would set it too; keep env.simulator")


def simulated_envs() -> list[str]:
    """Registered env ids whose constructor takes a `simulator` (envs that cannot be imported are left out)."""
    from agentrl.core.registry import env_ids, env_kwarg_names

    out = []
    for env_id in env_ids():
        try:
            names = env_kwarg_names(env_id)
        except Exception:  # an env that cannot be imported takes no simulator here
            continue
        if names is not None and SIMULATOR_ARG in names:
            out.append(env_id)
    return out


class _ModelNotLoaded(BaseChatModel):
    """Stands in for the simulator's model while `check_simulator` builds the env: a constructor checks it is
    a chat model and that something uses it, and never calls it."""

    def complete_batch(self, batch: list[list[dict[str, str]]], **kwargs: Any) -> list[str]:
        raise RuntimeError("the simulator's model is not loaded yet (check_simulator's stand-in)")


def simulator_stand_in(env_id: str, names: list[str] | None, kwargs: dict[str, Any], simulator: Any) -> dict[str, Any]:
    """`kwargs` with a stand-in for the simulator's model as `simulator` (a new dict), to build the env with before the
    model loads. names: what the env's constructor takes (`env_kwarg_names`). Raises UsageError when the env takes
    no `simulator` (no simulated user or patient to give the model) or env.kwargs sets it too."""
    if names is not None and SIMULATOR_ARG not in names:
        raise UsageError(
            f"env.simulator: {env_id} takes no simulator (it has no simulated user or patient to give "
            f"the model); envs that take one: {', '.join(simulated_envs()) or 'none'}"
        )
    _check_not_set(kwargs)
    return {**kwargs, SIMULATOR_ARG: _ModelNotLoaded()}


def check_simulator(env_id: str, kwargs: dict[str, Any], simulator: Any) -> None:
    """Raise UsageError, before any model loads, when `env_id` takes no `simulator` (no simulated user or
    patient to give the model), env.kwargs sets it too, or the env refuses it with these kwargs (e.g. a rule
    user that would leave the model unused): the env is built once with a stand-in for the model.
    (`rollout.build.resolve_env` does this check with the run's one probe of the env.)"""
    from agentrl.core.registry import env_kwarg_names, make_env

    if simulator is None:
        return
    make_env(env_id, **simulator_stand_in(env_id, env_kwarg_names(env_id), kwargs, simulator)).close()
