"""Chat models for simulated users, patients and judges, from a name (config `env.simulator`, CLI flags).

    smollm2-135m | tiny-random | /local/hf/dir     -> HFChatModel (local transformers)
    MODEL@http(s)://HOST/v1                        -> HTTPChatModel (OpenAI-compatible; key from $OPENAI_API_KEY)

`env_kwargs_with_simulator` puts one shared model (behind a `BatchingChatModel` when asked) into the env
constructor's keyword arguments, so every env of a run talks to the same model.
"""

from __future__ import annotations

from typing import Any


def make_chat_model(name: str, *, kv_store: int = 32, dtype: str = "float32") -> Any:
    """kv_store: for a local model, how many conversations keep their KV cache between calls (each turn then
    encodes only what was added since the last; `agentrl/backends/kv_store.py`). 0 = off.
    dtype: a local model's weights, "float32" or "bfloat16" (an endpoint's model is the server's business)."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype {dtype!r} is not supported for a chat model; allowed: float32, bfloat16")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a chat model name must be a non-empty string, got {name!r}")
    if "@http://" in name or "@https://" in name:
        from agentrl.backends.http import HTTPChatModel

        model, url = name.split("@", 1)
        return HTTPChatModel(url, model)
    from agentrl.backends.hf import HFChatModel

    import torch

    return HFChatModel.load(name, kv_store=kv_store, dtype=getattr(torch, dtype))


def env_kwargs_with_simulator(kwargs: dict[str, Any], simulator: Any) -> dict[str, Any]:
    """`simulator`: a `SimulatorConfig` or None. Returns a new kwargs dict (the config's is not changed)."""
    out = dict(kwargs)
    if simulator is None:
        return out
    if simulator.kwarg in out:
        raise ValueError(f"env.kwargs.{simulator.kwarg} is set and env.simulator would set it too; keep one of them")
    model = make_chat_model(simulator.model, kv_store=simulator.kv_store, dtype=simulator.dtype)
    if simulator.batch:
        from agentrl.batching import BatchingChatModel

        model = BatchingChatModel(model, max_batch=simulator.max_batch, max_wait_s=simulator.max_wait_s)
    out[simulator.kwarg] = model
    return out
