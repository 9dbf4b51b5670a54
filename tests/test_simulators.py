"""`env.simulator` in the config: one shared chat model for every env of a run, behind the batching queue."""

from __future__ import annotations

import pytest

from agentrl.sim.batching import BatchingChatModel
from agentrl.sim.models import env_kwargs_with_simulator, make_chat_model
from agentrl.train.config import ConfigError, load_config


def test_simulator_config_gives_envs_one_shared_batched_model() -> None:
    cfg = load_config(None, ["env.id=agentrl/Consultation-v0", "env.kwargs.patient=llm", "env.simulator.model=tiny-random",
                             "env.simulator.kwarg=chat_model", "rollout.env_workers=4"])
    kw = env_kwargs_with_simulator(cfg.env.kwargs, cfg.env.simulator)
    assert isinstance(kw["chat_model"], BatchingChatModel) and kw["patient"] == "llm"
    assert "chat_model" not in cfg.env.kwargs  # the config itself is not changed
    from agentrl.core.registry import make_env

    a, b = make_env(cfg.env.id, **kw).unwrapped, make_env(cfg.env.id, **kw).unwrapped
    assert a.chat_model is b.chat_model is kw["chat_model"]
    assert kw["chat_model"].model.policy.store.max_entries == 64  # the default: conversations keep their KV


def test_simulator_kv_store_setting() -> None:
    cfg = load_config(None, ["env.simulator.model=tiny-random", "env.simulator.batch=false", "env.simulator.kv_store=5"])
    assert env_kwargs_with_simulator({}, cfg.env.simulator)["user"].policy.store.max_entries == 5
    assert make_chat_model("tiny-random", kv_store=0).policy.store is None
    with pytest.raises(ConfigError, match="kv_store"):
        load_config(None, ["env.simulator.model=tiny-random", "env.simulator.kv_store=-1"])


def test_simulator_errors_name_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="max_batch"):
        load_config(None, ["env.simulator.model=tiny-random", "env.simulator.max_batch=0"])
    with pytest.raises(ConfigError, match="env_workers"):
        load_config(None, ["rollout.env_workers=0"])
    cfg = load_config(None, ["env.kwargs.user=rule", "env.simulator.model=tiny-random"])
    with pytest.raises(ValueError, match="env.kwargs.user is set and env.simulator would set it too"):
        env_kwargs_with_simulator(cfg.env.kwargs, cfg.env.simulator)
    with pytest.raises(ValueError, match="non-empty string"):
        make_chat_model("")
    with pytest.raises(ConfigError, match="dtype"):
        load_config(None, ["env.simulator.model=tiny-random", "env.simulator.dtype=float16"])
    with pytest.raises(ValueError, match="allowed: float32, bfloat16"):
        make_chat_model("tiny-random", dtype="float64")


def test_simulator_dtype_bfloat16() -> None:
    import torch

    cfg = load_config(None, ["env.simulator.model=tiny-random", "env.simulator.batch=false", "env.simulator.dtype=bfloat16"])
    m = env_kwargs_with_simulator({}, cfg.env.simulator)["user"]
    assert next(m.policy.model.parameters()).dtype == torch.bfloat16
    out = m.complete_batch([[{"role": "user", "content": "hello"}]] * 2, max_tokens=4, seed=0)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    assert next(make_chat_model("tiny-random").policy.model.parameters()).dtype == torch.float32, "float32 by default"


def test_endpoint_names_make_http_models() -> None:
    from agentrl.inference.http import HTTPChatModel

    m = make_chat_model("my-model@http://127.0.0.1:9/v1")
    assert isinstance(m, HTTPChatModel)
