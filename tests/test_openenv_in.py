"""OpenEnv in: `openenv:URL` drives a real openenv-core server (an env written against openenv-core's own API in
tests/openenv_servers.py, run by uvicorn on loopback) as a MultiTurnEnv: the action from the server's schema,
observations as messages, the terminal reward, state, rejected actions as agent errors, server failures as
env_error after retries bounded in time, and snapshots that branch by replaying the episode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("openenv", reason="openenv-core is not installed (pip install 'agentrl[openenv]')")

from openenv_servers import TCPRelay, free_port, pick_server  # noqa: E402

from agentrl.core.errors import UsageError  # noqa: E402
from agentrl.core.outcomes import EpisodeEnd  # noqa: E402
from agentrl.core.registry import check_env_kwargs, env_kwarg_names, make_env  # noqa: E402
from agentrl.rollout.runner import failure_kind  # noqa: E402
from environments.openenv.client_env import OpenEnvEnv, OpenEnvError  # noqa: E402


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pick_server(tmp_path_factory.mktemp("pick")) as base:
        yield base


def _env(url: str, **kwargs) -> OpenEnvEnv:
    return make_env(f"openenv:{url}", **kwargs).unwrapped


def test_plays_an_episode_through_the_id_prefix(url: str) -> None:
    env = _env(url)
    obs, _ = env.reset(seed=3)
    assert obs[1]["content"].startswith("Round 1 of 2 (code ")
    assert "PickServer" in env.prompt().system and "`choice`" in env.prompt().system
    assert env.allowed_replies() == ["1", "2", "3"]  # the Action's Literal, from /schema
    obs, reward, terminated, _, _ = env.step("1")
    assert obs[0]["content"].startswith("Round 2 of 2") and reward == 0.0 and not terminated
    obs, reward, terminated, truncated, info = env.step("2")
    assert (obs[0]["content"], reward, terminated, truncated) == ("Done.", 0.5, True, False)
    assert info["reward_breakdown"] == {"server_reward_sum": 0.5, "server_steps": 2.0}
    server = env.state["server_state"]
    assert server["picks"] == ["1", "2"] and server["step_count"] == 2
    # the same seed gives the same server episode (the server's seed derives from ours)
    again = _env(url)
    assert again.reset(seed=3)[0][1]["content"] == env.prompt().opening
    assert _env(url).reset(seed=4)[0][1]["content"] != env.prompt().opening
    env.close()
    again.close()


def test_rejected_action_is_an_agent_error_not_a_failure(url: str) -> None:
    env = _env(url)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("7")
    assert obs[0]["content"].startswith("Error: the environment rejected the action: choice:")
    assert info["error"] == "invalid_action" and not terminated
    env.step("1")
    _, reward, terminated, _, info = env.step("1")
    assert terminated and reward == 1.0 and info["errors"] == {"invalid_action": 1}
    assert env.state["server_state"]["picks"] == ["1", "1"]  # the rejected action never reached the env
    env.close()


def test_server_failure_is_env_error(url: str) -> None:
    env = _env(url, reset_kwargs={"explode_on": "3"})
    env.reset(seed=0)
    with pytest.raises(OpenEnvError, match="the server env broke on 3") as exc:
        env.step("3")
    assert failure_kind(exc.value) is EpisodeEnd.ENV_ERROR
    env.close()


def test_unreachable_server_gives_up_within_the_retry_budget() -> None:
    env = OpenEnvEnv(f"http://127.0.0.1:{free_port()}", retry_s=1.0, timeout_s=2.0)
    start = time.monotonic()
    with pytest.raises(OpenEnvError, match="gave up after|GET http"):
        env.reset(seed=0)
    assert time.monotonic() - start < 30  # bounded: it gives up instead of hanging


def test_dropped_connection_reconnects_and_replays(url: str) -> None:
    relay = TCPRelay(int(url.rsplit(":", 1)[1]))
    try:
        env = OpenEnvEnv(relay.url, retry_s=20.0)
        env.reset(seed=5)
        env.step("1")
        relay.cut()  # the session is gone on the server; the client replays reset + "1" on a new one
        _, reward, terminated, _, _ = env.step("1")
        assert relay.cuts == 1 and terminated and reward == 1.0
        assert env.state["server_state"]["picks"] == ["1", "1"]
        env.close()
    finally:
        relay.close()


def test_snapshot_branches_by_replaying_the_episode(url: str) -> None:
    env = _env(url)
    env.reset(seed=11)
    env.step("1")
    snap = env.snapshot()
    assert env.step("1")[1] == 1.0
    other = _env(url)  # another env instance, another server session
    other.restore(snap)
    _, reward, terminated, _, _ = other.step("2")
    assert terminated and reward == 0.5 and other.state["server_state"]["picks"] == ["1", "2"]
    env.restore(snap)
    assert env.step("3")[1] == 0.5
    env.close()
    other.close()


def test_a_server_that_is_not_deterministic_cannot_branch(url: str) -> None:
    env = _env(url, reset_kwargs={"nondeterministic": True})
    env.reset(seed=0)
    snap = env.snapshot()
    other = _env(url, reset_kwargs={"nondeterministic": True})
    other.restore(snap)
    with pytest.raises(OpenEnvError, match="not deterministic"):
        other.step("1")
    env.close()
    other.close()


def test_json_actions_and_http_transport(url: str) -> None:
    env = _env(url, action_format="json", transport="http", observation_field="prompt")
    obs, _ = env.reset(seed=2)
    assert obs[1]["content"].startswith("Round 1 of 2") and "JSON object" in env.prompt().system
    obs, *_, info = env.step("not json")
    assert info["error"] == "invalid_action" and "one JSON object" in obs[0]["content"]
    # openenv-core's HTTP /step builds a fresh env per request: the step is answered, the episode not kept
    obs, reward, terminated, _, info = env.step('{"choice": "1"}')
    assert info["error"] is None and obs[0]["content"].startswith("Round 2 of 2") and not terminated
    env.close()


def test_the_id_sets_base_url_and_unknown_kwargs_are_usage_errors(url: str) -> None:
    names = env_kwarg_names(f"openenv:{url}")
    assert "base_url" not in names and "action_field" in names
    with pytest.raises(UsageError, match="already sets base_url"):
        make_env(f"openenv:{url}", base_url=url)
    with pytest.raises(UsageError, match="unknown env kwarg 'bogus'"):
        check_env_kwargs(f"openenv:{url}", {"bogus": 1})
    with pytest.raises(UsageError, match="give a value after openenv:"):
        make_env("openenv:")
    # the config-block form: the registered id with base_url in the kwargs
    env = make_env("interop/OpenEnv-v0", base_url=url, max_turns=1).unwrapped
    env.reset(seed=0)
    _, reward, terminated, truncated, _ = env.step("1")
    assert truncated and not terminated and reward == 0.0  # max_turns=1 ends before the server's 2 rounds
    env.close()


def test_trains_one_update_on_an_openenv_server(url: str, tmp_path: Path) -> None:
    import json

    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    run = tmp_path / "run"
    cfg = load_config(
        None,
        [
            "model=tiny-random",
            f"env.id=openenv:{url}",
            "algorithm.name=trepo",
            "algorithm.params.branch_m=1",
            "rollout.groups=1",
            "rollout.group_size=2",
            "rollout.constrained=true",
            "rollout.max_new_tokens=4",
            "train.updates=1",
            "ppo.minibatch_size=2",
            "ppo.micro_batch_size=2",
            f"train.run_dir={run}",
        ],
    )
    Trainer(cfg, console=False).run()
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert row["tokens/sampled"] > 0 and 0.0 <= row["reward/mean"] <= 1.0
    assert row.get("episode/outcome/env_error", 0) == 0
