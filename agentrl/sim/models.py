"""Chat models for simulated users, patients and judges, from a name (config `env.simulator`, CLI flags).

    smollm2-135m | tiny-random | /local/hf/dir     -> HFChatModel (local transformers)
    MODEL@http(s)://HOST/v1                        -> HTTPChatModel (OpenAI-compatible; key from $OPENAI_API_KEY)

`env_kwargs_with_simulator` puts one shared model (behind a `BatchingChatModel` when asked) into the env
constructor's keyword arguments, so every env of a run talks to the same model.
"""

from __future__ import annotations

from typing import Any

from agentrl.core.errors import UsageError

# constructor arguments by which envs take a simulator model (FlightBooking: user, Consultation: chat_model)
SIMULATOR_KWARGS = ("user", "chat_model")


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


def env_kwargs_with_simulator(kwargs: dict[str, Any], simulator: Any) -> dict[str, Any]:
    """`simulator`: a `SimulatorConfig` or None. Returns a new kwargs dict (the config's is not changed)."""
    out = dict(kwargs)
    if simulator is None:
        return out
    _check_not_set(kwargs, simulator)
    model = make_chat_model(simulator.model, kv_store=simulator.kv_store, dtype=simulator.dtype)
    if simulator.batch:
        from agentrl.sim.batching import BatchingChatModel

        model = BatchingChatModel(model, max_batch=simulator.max_batch, max_wait_s=simulator.max_wait_s)
    out[simulator.kwarg] = model
    return out


def _check_not_set(kwargs: dict[str, Any], simulator: Any) -> None:
    if simulator.kwarg in kwargs:
        raise UsageError(f"env.kwargs.{simulator.kwarg} is set and env.simulator would set it too; keep one of them")


def simulated_envs() -> dict[str, list[str]]:
    """Registered env id -> its constructor arguments among SIMULATOR_KWARGS (envs with none are left out)."""
    from agentrl.core.registry import env_ids, env_kwarg_names

    out = {}
    for env_id in env_ids():
        try:
            names = env_kwarg_names(env_id) or []
        except Exception:  # an env that cannot be imported takes no simulator here
            continue
        if hits := [k for k in SIMULATOR_KWARGS if k in names]:
            out[env_id] = hits
    return out


def check_simulator(env_id: str, kwargs: dict[str, Any], simulator: Any) -> None:
    """Raise UsageError, before any model loads, when `env_id` has no constructor argument `simulator.kwarg`
    (no simulated counterpart to give the model) or env.kwargs sets that argument too."""
    from agentrl.core.registry import env_kwarg_names

    if simulator is None:
        return
    names = env_kwarg_names(env_id)
    if names is not None and simulator.kwarg not in names:
        accepting = ", ".join(f"{e} (env.simulator.kwarg={'|'.join(ks)})" for e, ks in simulated_envs().items())
        raise UsageError(f"env.simulator: {env_id} takes no {simulator.kwarg!r} argument, so it has no simulated "
                         f"user or patient to give the model; envs that take one: {accepting or 'none'}")
    _check_not_set(kwargs, simulator)
