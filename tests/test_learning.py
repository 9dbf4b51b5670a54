"""Learning tests on CPU: TRePO, GRPO and PPO-GAE each raise CreditChain's reward with a tiny random model.

The tiny model samples under constrained decoding (the env's allowed replies, DESIGN.md "Learning tests
on a CPU"), so a random policy scores about 1/4 per turn. Each test asserts the rise — the mean reward
of the last updates beats the first updates' by a margin and passes a threshold — never a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer

UPDATES = 80
BASE = [
    "model=tiny-random",
    "env.kwargs.turns=4",
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
]
THRESHOLD = 0.45  # random policy: 0.25


def _rewards(run_dir: Path) -> list[float]:
    return [json.loads(line)["reward/mean"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["trepo", "grpo", "ppo_gae"])
def test_reward_rises_on_credit_chain(algorithm: str, tmp_path: Path) -> None:
    cfg = load_config(None, BASE + [f"algorithm.name={algorithm}", f"train.run_dir={tmp_path}"])
    Trainer(cfg, console=False).run()
    r = _rewards(tmp_path)
    assert len(r) == UPDATES
    first, last = sum(r[:5]) / 5, sum(r[-10:]) / 10
    print(f"{algorithm}: first 5 updates {first:.3f}, last 10 updates {last:.3f}")
    assert last > first + 0.1, f"{algorithm} did not learn: {first:.3f} -> {last:.3f}"
    assert last >= THRESHOLD, f"{algorithm} reached only {last:.3f} (threshold {THRESHOLD})"
