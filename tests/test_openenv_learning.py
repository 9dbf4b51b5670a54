"""A tiny model learns on an env served by openenv-core: GRPO with `tiny-random` on the PickServer
(tests/openenv_servers.py, a real openenv-core server on loopback, reached as `env.id: openenv:URL`).

Each episode is 2 rounds; each round the agent picks 1, 2 or 3 (constrained decoding to the Action's Literal,
read from the server's schema), and the server pays the fraction of 1s at the end: a random policy scores 1/3.
The test asserts the rise (the last updates' mean reward beats the first ones' by a margin and passes a
threshold), never a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openenv", reason="openenv-core is not installed (pip install 'agentrl[openenv]')")

from openenv_servers import pick_server  # noqa: E402

from agentrl.train.config import load_config  # noqa: E402
from agentrl.train.trainer import Trainer  # noqa: E402

UPDATES = 30


@pytest.mark.slow
def test_reward_rises_on_an_openenv_server(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    with pick_server(tmp_path / "server") as url:
        run = tmp_path / "run"
        cfg = load_config(
            None,
            [
                "model=tiny-random",
                f"env.id=openenv:{url}",
                "algorithm.name=grpo",
                "rollout.groups=4",
                "rollout.group_size=4",
                "rollout.constrained=true",
                "rollout.max_new_tokens=4",
                f"train.updates={UPDATES}",
                "train.checkpoint_every=1000",
                "train.log_episodes=0",
                "ppo.epochs=4",
                "ppo.minibatch_size=8",
                "ppo.micro_batch_size=8",
                "optim.lr=1e-3",
                "train.seed=1",
                f"train.run_dir={run}",
            ],
        )
        Trainer(cfg, console=False).run()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    r = [row["reward/mean"] for row in rows]
    assert len(r) == UPDATES
    assert sum(row.get("episode/outcome/env_error", 0) for row in rows) == 0
    first, last = sum(r[:5]) / 5, sum(r[-5:]) / 5
    print(f"openenv PickServer, grpo: first 5 updates {first:.3f}, last 5 updates {last:.3f} (random: 0.333)")
    assert last > first + 0.15, f"no rise: {first:.3f} -> {last:.3f}"
    assert last >= 0.6, f"reached only {last:.3f}"
