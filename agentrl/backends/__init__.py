"""Policy backends, looked up by name (`rollout.backend`): transformers ("hf") and vLLM ("vllm")."""

from __future__ import annotations

from typing import Any, Callable


def _hf(cfg: Any, model: Any, tokenizer: Any) -> Any:
    from agentrl.backends.hf import HFPolicy

    return HFPolicy(model, tokenizer, prefix_reuse=getattr(cfg, "prefix_reuse", True))


def _vllm(cfg: Any, model: Any, tokenizer: Any) -> Any:
    from agentrl.backends.vllm import VLLMPolicy  # lazy: vllm is an optional extra

    return VLLMPolicy.from_model(
        model, tokenizer, gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        tensor_parallel_size=cfg.vllm_tensor_parallel_size, max_model_len=cfg.max_seq_len,
    )


BACKENDS: dict[str, Callable[[Any, Any, Any], Any]] = {"hf": _hf, "vllm": _vllm}


def make_policy_backend(cfg: Any, model: Any, tokenizer: Any) -> Any:
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown rollout backend {cfg.backend!r}; allowed: {', '.join(BACKENDS)}")
    return BACKENDS[cfg.backend](cfg, model, tokenizer)
