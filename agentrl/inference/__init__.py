"""Layer 2, inference: policy backends looked up by name (`rollout.backend`: transformers "hf", vLLM "vllm", N vLLM
OpenAI servers "remote"), the chat models over them (HFChatModel, HTTPChatModel), model resolution and the
loopback OpenAI server.

The contract is `base.py`. The transformers backend is `hf.py` (`HFPolicy`, `HFChatModel`) over `prefill.py`
(what a batch encodes, and encoding it), `sampling.py` (picking tokens; shared with `vllm.py`), `kv_cache.py`
(the decode cache) and `kv_store.py` (a chat model's stored conversations). The remote backend is `remote.py`
(`RemotePolicy`); `launch.py` starts its servers on one machine (`agentrl serve-policy`)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any


def _hf(cfg: Any, model: Any, tokenizer: Any) -> Any:
    from agentrl.inference.hf import HFPolicy
    from agentrl.inference.kv_store import KVStore

    n = getattr(cfg, "kv_store", 0)
    if n is None:  # one stored sequence per episode of an update
        n = cfg.groups * cfg.group_size
    return HFPolicy(model, tokenizer, prefix_reuse=getattr(cfg, "prefix_reuse", True), store=KVStore(n) if n else None)


def _vllm(cfg: Any, model: Any, tokenizer: Any) -> Any:
    from agentrl.inference.vllm import VLLMPolicy  # lazy: vllm is an optional extra

    return VLLMPolicy.from_model(
        model,
        tokenizer,
        gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        tensor_parallel_size=cfg.vllm_tensor_parallel_size,
        max_model_len=cfg.max_seq_len,
    )


def _remote(cfg: Any, model: Any, tokenizer: Any) -> Any:
    from agentrl.inference.merged_weights import merged_state_dict
    from agentrl.inference.remote import RemotePolicy

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    policy = RemotePolicy(
        cfg.servers,
        pad_id=pad,
        weights_dir=cfg.remote_weights_dir,
        attempts=cfg.server_attempts,
        timeout_s=cfg.server_timeout_s,
    )
    try:  # the servers may have started from other weights (a base model, an older run): sample with the trainer's
        policy.update_weights(merged_state_dict(model))
    except BaseException:
        policy.close()
        raise
    return policy


BACKENDS: dict[str, Callable[[Any, Any, Any], Any]] = {"hf": _hf, "vllm": _vllm, "remote": _remote}


def sampling_policy(
    model: Any, tokenizer: Any, *, backend: str = "hf", device: str = "auto", max_seq_len: int = 4096
) -> Any:
    """A policy backend for sampling only (`agentrl eval`, `agentrl rollout`): `hf` on `device` (`devices.pick_device`:
    auto is cuda when there is one, else cpu; the model is moved there), or an in-process `vllm` engine started from the model."""
    if backend not in ("hf", "vllm"):
        raise ValueError(f"backend must be hf or vllm here, got {backend!r} (remote servers are for training)")
    from agentrl.inference.devices import pick_device

    if backend == "hf":
        model.to(pick_device(device, "--device"))
    settings = {
        "backend": backend,
        "kv_store": 0,
        "prefix_reuse": True,
        "vllm_gpu_memory_utilization": 0.5,
        "vllm_tensor_parallel_size": 1,
        "max_seq_len": max_seq_len,
    }
    try:
        return make_policy_backend(SimpleNamespace(**settings), model, tokenizer)
    except ImportError as exc:  # no vLLM here: a usage error naming what to install, not a traceback
        raise ValueError(str(exc)) from None


def make_policy_backend(cfg: Any, model: Any, tokenizer: Any) -> Any:
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown rollout backend {cfg.backend!r}; allowed: {', '.join(BACKENDS)}")
    return BACKENDS[cfg.backend](cfg, model, tokenizer)
