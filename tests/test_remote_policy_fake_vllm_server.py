"""The remote backend's own logic (request body, load spreading, retries on another server, sampler_error, weight
sync, digest agreement) against `tests/fake_vllm_server.py`: a loopback HTTP server that STANDS IN FOR vLLM (the
main venv has no vLLM; tests/test_remote_backend.py runs the same backend on real vLLM servers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.outcomes import EpisodeEnd, outcome_metrics, usable_for_advantages
from agentrl.inference import make_policy_backend
from agentrl.inference.base import SamplingParams, weights_digest
from agentrl.inference.remote import RemotePolicy, RemoteRequestError, RemoteServerError
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.config import ConfigError, load_config
from agentrl.train.invariants import verify_weights
from tests.fake_vllm_server import FakeVLLMServer, closed_port_url


@pytest.fixture
def fakes():
    servers = [FakeVLLMServer(), FakeVLLMServer()]
    yield servers
    for s in servers:
        s.close()


def policy(urls, **kw) -> RemotePolicy:
    kw.setdefault("cooldown_s", 0.2)
    kw.setdefault("timeout_s", 5.0)
    return RemotePolicy(urls, pad_id=0, **kw)


def test_request_is_token_ids_in_and_out(fakes) -> None:
    p = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=5, seed=11, stop=("\n",), ignore_eos=True)
    with policy([fakes[0].url + "/v1/"]) as pol:  # a /v1 suffix is accepted
        (c,) = pol.generate([[5, 6, 7]], p)
    body = fakes[0].requests[0]
    assert body["prompt"] == [5, 6, 7]  # token ids, not text
    assert body["return_token_ids"] is True and body["logprobs"] == 0 and body["include_stop_str_in_output"] is True
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.7, 0.9, 5, 11)
    assert body["stop"] == ["\n"] and body["ignore_eos"] is True and body["add_special_tokens"] is False
    assert c.token_ids == [(18 + 11 + k) % 997 for k in range(5)] and c.logprobs == [-0.25 * (k + 1) for k in range(5)]
    assert c.finish_reason == "length" and c.error is None


def test_requests_go_to_the_server_with_fewest_in_flight(fakes) -> None:
    for f in fakes:
        f.delay = 0.3
    with policy([f.url for f in fakes]) as pol:
        out = pol.generate([[i] for i in range(8)], SamplingParams(max_new_tokens=2, seed=1))
    assert [c.token_ids[0] for c in out] == [(i + 1) % 997 for i in range(8)]  # input order kept
    assert [len(f.requests) for f in fakes] == [4, 4]
    assert all(f.max_in_flight >= 2 for f in fakes)  # concurrent, on the thread pool


@pytest.mark.parametrize("fault", ["500", "drop", "slow"])
def test_a_failed_server_is_retried_elsewhere_and_cooled_down(fakes, fault: str) -> None:
    bad, good = fakes
    bad.mode, bad.delay = fault, 3.0
    with policy([bad.url, good.url], timeout_s=1.0, cooldown_s=30.0, attempts=2) as pol:
        out = pol.generate([[i] for i in range(6)], SamplingParams(max_new_tokens=3, seed=0))
        assert all(c.finish_reason == "length" and len(c.token_ids) == 3 for c in out)
        assert pol.retries >= 1 and pol.errors == 0
        sent_to_bad = len(bad.requests)
        pol.generate([[9]] * 4, SamplingParams(max_new_tokens=1))  # bad is cooling down: not tried
        assert len(bad.requests) == sent_to_bad and len(good.requests) == 6 + 4


def test_a_refused_connection_is_retried_elsewhere(fakes) -> None:
    with policy([closed_port_url(), fakes[0].url]) as pol:
        out = pol.generate([[1], [2], [3]], SamplingParams(max_new_tokens=2))
    assert all(c.finish_reason == "length" for c in out) and len(fakes[0].requests) == 3


def test_attempts_run_out_into_error_completions_not_lost_requests(fakes) -> None:
    for f in fakes:
        f.mode = "500"
    with policy([f.url for f in fakes], attempts=3) as pol:
        out = pol.generate([[1], [2]], SamplingParams(max_new_tokens=4))
        assert pol.errors == 2
    assert [c.finish_reason for c in out] == ["error", "error"] and all(c.token_ids == [] for c in out)
    assert "3 attempt(s)" in out[0].error and "HTTP 500: engine dead" in out[0].error
    assert fakes[0].url in out[0].error and fakes[1].url in out[0].error
    assert sum(len(f.requests) for f in fakes) == 2 * 3  # exactly server_attempts tries per request


def test_a_bad_request_is_an_error_not_a_retry(fakes) -> None:
    fakes[0].mode = "400"
    with policy([fakes[0].url, fakes[1].url]) as pol, pytest.raises(RemoteRequestError, match="prompt too long"):
        pol.generate([[1]], SamplingParams(max_new_tokens=1))
    assert fakes[1].requests == []


def test_constrained_decoding_is_refused_with_the_reason(fakes) -> None:
    with policy([fakes[0].url]) as pol, pytest.raises(ValueError, match="constrained decoding.*one request per token"):
        pol.generate([[1]], SamplingParams(allowed=[[1, 2]]))


def test_weight_sync_reaches_every_server_and_the_digest_checks_all(fakes, tmp_path: Path) -> None:
    sd = {"model.embed_tokens.weight": torch.arange(6.0).reshape(3, 2), "lm_head.weight": torch.ones(3, 2)}
    with policy([f.url for f in fakes], weights_dir=tmp_path) as pol:
        pol.update_weights(sd)
        path = str(tmp_path / "policy.safetensors")
        assert all(f.rpc[-1] == {"method": "agentrl_load_weights", "args": [path]} and f.resets == 1 for f in fakes)
        assert [p.name for p in tmp_path.iterdir()] == ["policy.safetensors"]  # no temp file left
        assert pol.weights_digest() == weights_digest(sd.items())
        fakes[1].weights = {k: v + 1 for k, v in sd.items()}  # one server on other weights
        with pytest.raises(RemoteServerError, match=f"{fakes[1].url} holds other weights than {fakes[0].url}"):
            pol.weights_digest()
    assert not (tmp_path / "policy.safetensors").exists()  # removed on close; the given dir stays
    assert tmp_path.is_dir()


def test_default_weights_dir_is_fresh_and_removed_on_close(fakes) -> None:
    pol = policy([fakes[0].url])
    d = pol.weights_dir
    assert d.is_dir() and (str(d).startswith("/dev/shm/") or not os.path.isdir("/dev/shm"))
    pol.update_weights({"w": torch.zeros(2)})
    pol.close()
    assert not d.exists()


def test_a_server_the_sync_cannot_reach_leaves_the_rotation(fakes) -> None:
    dead = closed_port_url()
    with policy([dead, fakes[0].url], attempts=1) as pol:
        pol.update_weights({"w": torch.zeros(2)})
        assert pol.servers == [fakes[0].url] and pol.dropped == [dead]
        pol.generate([[1]] * 3, SamplingParams(max_new_tokens=1))
        assert len(fakes[0].requests) == 3
    with policy([closed_port_url()], attempts=1) as pol, pytest.raises(RemoteServerError, match="no policy server"):
        pol.update_weights({"w": torch.zeros(2)})


def test_factory_builds_from_config_and_pushes_the_trainers_weights(fakes, tiny, tmp_path: Path) -> None:
    """Every rollout.server* key reaches the backend (tests/test_config_wiring.py points here)."""
    model, tok = tiny
    cfg = load_config(
        None,
        [
            "rollout.backend=remote",
            f"rollout.servers=[{fakes[0].url}/,{fakes[1].url}]",
            "rollout.server_attempts=5",
            "rollout.server_timeout_s=30",
            f"rollout.remote_weights_dir={tmp_path / 'shared'}",
        ],
    )
    pol = make_policy_backend(cfg.rollout, model, tok)
    try:
        assert pol.pad_id == (tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        assert pol.servers == [fakes[0].url, fakes[1].url]
        assert pol.attempts == 5 and pol.timeout_s == 30
        assert list((tmp_path / "shared").glob("*.safetensors")), "the weights were written where the servers read"
        assert all(f.rpc and f.rpc[0]["method"] == "agentrl_load_weights" for f in fakes)
        assert verify_weights(pol, model.state_dict()) is not None  # every server holds the trainer's weights
    finally:
        pol.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rollout.backend=remote"], "give both, or neither"),
        (["rollout.servers=[http://127.0.0.1:8000]"], "give both, or neither"),
        (["rollout.backend=remote", "rollout.servers=[localhost:8000]"], "http\\(s\\)://host:port"),
        (["rollout.backend=remote", "rollout.servers=[http://a:1,http://a:1]"], "listed twice"),
        (["rollout.backend=remote", "rollout.servers=[http://a:1,http://a:1/]"], "listed twice"),
        (["rollout.remote_weights_dir=/tmp/x"], "is for rollout.backend=remote"),
        (["rollout.backend=remote", "rollout.servers=[http://a:1]", "rollout.server_attempts=0"], "server_attempts"),
    ],
)
def test_config_checks_the_servers(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_failed_sampling_ends_episodes_as_sampler_error(fakes, tiny, plain_env_cls) -> None:
    _, tok = tiny
    for f in fakes:
        f.mode = "500"
    with policy([f.url for f in fakes], attempts=2) as pol:
        runner = RolloutRunner(plain_env_cls, pol, ChatFormatter(tok), SamplingParams(max_new_tokens=4))
        eps = runner.collect([EpisodeSpec(seed=i, group_id=i // 2) for i in range(4)])
    assert all(e.end is EpisodeEnd.SAMPLER_ERROR and e.reward == 0.0 and e.turns == [] for e in eps)
    assert "no policy server answered in 2 attempt(s)" in eps[0].error and "HTTP 500" in eps[0].error
    assert outcome_metrics(eps)["episode/outcome/sampler_error"] == 4.0
    assert usable_for_advantages(eps) == [False] * 4 and EpisodeEnd.SAMPLER_ERROR.infra
    assert len(runner._pool) == 4  # the envs were not mid-step: reused


def test_a_server_failing_mid_rollout_ends_only_the_episodes_it_could_not_serve(fakes, tiny, plain_env_cls) -> None:
    """Episodes keep going on the server that answers; after both fail, the rest end as sampler_error."""
    _, tok = tiny
    with policy([f.url for f in fakes], attempts=2) as pol:
        runner = RolloutRunner(plain_env_cls, pol, ChatFormatter(tok), SamplingParams(max_new_tokens=4))
        fakes[0].mode = "drop"  # one server gone: every episode still finishes on the other
        eps = runner.collect([EpisodeSpec(seed=i, group_id=i) for i in range(3)])
        assert all(e.end is EpisodeEnd.TRUNCATED_TURNS and len(e.turns) == plain_env_cls.max_turns for e in eps)

        fakes[1].fail_after = len(fakes[1].requests) + 3  # the next round's 3 requests, then 500s
        eps = runner.collect([EpisodeSpec(seed=10 + i, group_id=i) for i in range(3)])
    assert all(e.end is EpisodeEnd.SAMPLER_ERROR and len(e.turns) == 1 for e in eps)
