"""`env.simulator` in the config: one shared chat model for every env of a run, behind the batching queue."""

from __future__ import annotations

import pytest

from agentrl.core.chat import BaseChatModel
from agentrl.sim.batching import BatchingChatModel
from agentrl.sim.models import (
    check_simulator,
    env_kwargs_with_simulator,
    make_chat_model,
    simulated_envs,
)
from agentrl.train.config import ConfigError, load_config


class ScriptedModel(BaseChatModel):
    """A stand-in chat model: says "hi" to everything (never called by a constructor)."""

    def complete_batch(self, batch, **kwargs):
        return ["hi" for _ in batch]


def test_simulator_config_gives_envs_one_shared_batched_model() -> None:
    cfg = load_config(
        None,
        [
            "env.id=agentrl/Consultation-v0",
            "env.kwargs.patient=llm",
            "env.simulator.model=tiny-random",
            "rollout.env_workers=4",
        ],
    )
    check_simulator(cfg.env.id, cfg.env.kwargs, cfg.env.simulator)  # builds no model
    kw = env_kwargs_with_simulator(cfg.env.kwargs, cfg.env.simulator)
    assert isinstance(kw["simulator"], BatchingChatModel) and kw["patient"] == "llm"
    assert "simulator" not in cfg.env.kwargs  # the config itself is not changed
    from agentrl.core.registry import make_env

    a, b = make_env(cfg.env.id, **kw).unwrapped, make_env(cfg.env.id, **kw).unwrapped
    assert a.simulator is b.simulator is kw["simulator"]
    assert kw["simulator"].model.policy.store.max_entries == 64  # the default: conversations keep their KV


@pytest.mark.parametrize(
    "env_id,kwargs",
    [
        ("agentrl/FlightBooking-v0", {"user": "llm"}),
        ("agentrl/Consultation-v0", {"patient": "llm"}),
        ("agentrl/Consultation-v0", {"diagnoser": "llm", "split": "all"}),
    ],
)
def test_every_simulated_env_takes_its_model_as_simulator(env_id: str, kwargs: dict) -> None:
    """One constructor argument for every env with a simulated counterpart; the kind argument says what it plays."""
    from agentrl.core.registry import make_env

    assert env_id in simulated_envs()
    model = ScriptedModel()
    env = make_env(env_id, **kwargs, simulator=model).unwrapped
    assert env.simulator is model
    with pytest.raises(ValueError, match="simulator is given but"):
        make_env(env_id, simulator=model)  # the default kinds (rule user, rule patient, Bayes judge) use no model
    with pytest.raises(ValueError, match="needs simulator=<chat model>"):
        make_env(env_id, **kwargs)
    with pytest.raises(ValueError, match="simulator must be a chat model"):
        make_env(env_id, **kwargs, simulator="tiny-random")


def test_old_simulator_argument_names_are_refused_naming_the_new_ones() -> None:
    """The spellings before 0.1 (`FlightBookingEnv(user=<model>)`, `ConsultationEnv(chat_model=)`) were removed:
    passing them says what replaces them."""
    from environments.consultation.env import ConsultationEnv
    from environments.flight_booking.env import FlightBookingEnv

    model = ScriptedModel()
    with pytest.raises(ValueError, match=r"removed in 0\.1; pass user='llm', simulator=<chat model>"):
        FlightBookingEnv(split="test", user=model)
    with pytest.raises(ValueError, match=r"removed in 0\.1; pass simulator=<chat model>"):
        ConsultationEnv(split="test", patient="llm", chat_model=model)
    with pytest.raises(ValueError, match=r"removed in 0\.1; pass simulator=<chat model>"):
        ConsultationEnv(patient="llm", chat_model=model, simulator=model)


def test_simulator_check_runs_before_any_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import agentrl.sim.models

    monkeypatch.setattr(agentrl.sim.models, "make_chat_model", lambda *a, **k: pytest.fail("a model was loaded"))
    cfg = load_config(None, ["env.id=agentrl/FlightBooking-v0", "env.simulator.model=tiny-random"])
    with pytest.raises(ValueError, match="FlightBooking-v0: simulator is given but user='rule' does not use it"):
        check_simulator(cfg.env.id, cfg.env.kwargs, cfg.env.simulator)
    check_simulator(cfg.env.id, {"user": "llm"}, cfg.env.simulator)
    check_simulator(cfg.env.id, {}, None)  # no simulator: nothing to check


def test_simulator_kv_store_setting() -> None:
    cfg = load_config(
        None, ["env.simulator.model=tiny-random", "env.simulator.batch=false", "env.simulator.kv_store=5"]
    )
    assert env_kwargs_with_simulator({}, cfg.env.simulator)["simulator"].policy.store.max_entries == 5
    assert make_chat_model("tiny-random", kv_store=0).policy.store is None
    with pytest.raises(ConfigError, match="kv_store"):
        load_config(None, ["env.simulator.model=tiny-random", "env.simulator.kv_store=-1"])


def test_simulator_errors_name_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="max_batch"):
        load_config(None, ["env.simulator.model=tiny-random", "env.simulator.max_batch=0"])
    with pytest.raises(ConfigError, match="env_workers"):
        load_config(None, ["rollout.env_workers=0"])
    cfg = load_config(None, ["env.kwargs.simulator=tiny-random", "env.simulator.model=tiny-random"])
    with pytest.raises(ValueError, match="env.kwargs.simulator is set and env.simulator would set it too"):
        env_kwargs_with_simulator(cfg.env.kwargs, cfg.env.simulator)
    with pytest.raises(ConfigError, match="env.simulator.kwarg is gone"):
        load_config(None, ["env.simulator.model=tiny-random", "env.simulator.kwarg=user"])
    with pytest.raises(ValueError, match="non-empty string"):
        make_chat_model("")
    with pytest.raises(ConfigError, match="dtype"):
        load_config(None, ["env.simulator.model=tiny-random", "env.simulator.dtype=float16"])
    with pytest.raises(ValueError, match="allowed: float32, bfloat16"):
        make_chat_model("tiny-random", dtype="float64")


def test_simulator_dtype_bfloat16() -> None:
    import torch

    cfg = load_config(
        None, ["env.simulator.model=tiny-random", "env.simulator.batch=false", "env.simulator.dtype=bfloat16"]
    )
    m = env_kwargs_with_simulator({}, cfg.env.simulator)["simulator"]
    assert next(m.policy.model.parameters()).dtype == torch.bfloat16
    out = m.complete_batch([[{"role": "user", "content": "hello"}]] * 2, max_tokens=4, seed=0)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    assert next(make_chat_model("tiny-random").policy.model.parameters()).dtype == torch.float32, "float32 by default"


def test_endpoint_names_make_http_models() -> None:
    from agentrl.inference.http import HTTPChatModel

    m = make_chat_model("my-model@http://127.0.0.1:9/v1")
    assert isinstance(m, HTTPChatModel)
