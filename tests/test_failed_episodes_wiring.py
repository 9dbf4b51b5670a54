"""Episodes ended by infrastructure, end to end: `rollout.episode_timeout_s` reaches the trainer's and the held-out
runners, and `agentrl eval` counts the failed episodes it prints.

`FailingPick` is broken on purpose; other tests (tests/test_distributed.py) use it as
`test_failed_episodes_wiring:FailingPick-v0` (Gymnasium's `module:Id`), with tests/ on the path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import pytest

from agentrl.cli import main
from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.outcomes import EpisodeEnd
from agentrl.core.types import Message
from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer

ENV_ID = "test_failed_episodes_wiring:FailingPick-v0"


class FailingPick(MultiTurnEnv):
    """Reply "1" or "2", `turns` times; the reward is the fraction of "1"s. Tasks ok-0, fail-1, ok-2, ... Broken on
    purpose: fail="task" raises in every step of a fail-* task, fail="reply2" on a reply "2" after the first; every step
    sleeps `sleep_s` seconds. `simulator` (a chat model, config env.simulator) is kept, unused."""

    def __init__(
        self,
        turns: int = 2,
        tasks: int = 4,
        fail: str = "never",
        sleep_s: float = 0.0,
        simulator=None,
        render_mode=None,
    ):
        super().__init__(max_turns=turns, max_action_chars=50, render_mode=render_mode)
        self.turns, self.n_tasks, self.fail, self.sleep_s, self.simulator = turns, tasks, fail, sleep_s, simulator

    def task_ids(self) -> list[str]:
        return [f"{'fail' if i % 2 else 'ok'}-{i}" for i in range(self.n_tasks)]

    def setup(self, options):
        self.task_id = self.choose_task_id(options, self.task_ids())
        self.state = {"picks": []}
        return "Reply with one digit: 1 or 2.", "Pick one."

    def respond(self, text: str) -> EnvReply:
        time.sleep(self.sleep_s)
        pick = text.strip()
        if (self.fail == "task" and self.task_id.startswith("fail")) or (
            self.fail == "reply2" and pick == "2" and self.state["picks"]
        ):
            raise OSError(f"failing on purpose (task {self.task_id}, reply {pick!r})")
        self.state["picks"].append(pick)
        if len(self.state["picks"]) >= self.turns:
            return EnvReply(terminated=True)
        return EnvReply([Message("user", "Again.")])

    def compute_reward(self) -> RewardResult:
        ones = sum(p == "1" for p in self.state["picks"]) / self.turns
        return RewardResult(ones, {"ones": ones}, success=ones == 1.0)

    def allowed_replies(self) -> list[str]:
        return ["1", "2"]


if "FailingPick-v0" not in gym.registry:
    gym.register(id="FailingPick-v0", entry_point=FailingPick)

SMALL = [
    "model=tiny-random",
    f"env.id={ENV_ID}",
    "algorithm.name=grpo",
    "rollout.groups=2",
    "rollout.group_size=2",
    "rollout.constrained=true",
    "rollout.max_new_tokens=2",
    "train.updates=1",
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=2",
    "train.log_episodes=0",
]


def test_episode_timeout_reaches_the_trainers_and_held_out_runners(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            *SMALL,
            "env.kwargs={turns: 3, sleep_s: 0.05}",
            "rollout.episode_timeout_s=0.01",
            "train.eval_every=1",
            "train.eval_tasks=2",
            f"train.run_dir={tmp_path / 'run'}",
        ],
    )
    t = Trainer(cfg, console=False)
    assert t.runner.episode_timeout_s == 0.01 and t.held_out.runner.episode_timeout_s == 0.01
    eps = t.runner.collect(t._episode_specs(0))
    assert [ep.end for ep in eps] == [EpisodeEnd.TIMED_OUT] * 4  # each step sleeps past the limit: 1 turn, not 3
    assert all(len(ep.turns) == 1 and ep.reward == 0.0 for ep in eps)
    assert t.held_out()["eval/failed"] == 2.0  # both held-out tasks timed out too, and say so


def test_eval_prints_how_many_episodes_failed(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "eval",
        "--env",
        ENV_ID,
        "--model",
        "tiny-random",
        "--env-kwargs",
        '{"fail": "task"}',
        "--episodes",
        "4",
        "--trials",
        "2",
        "--max-new-tokens",
        "2",
        "--constrained",
    ]
    assert main(args) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("failed episodes"))
    assert line.split() == ["failed", "episodes", "4"]  # fail-1 and fail-3, 2 trials each
    assert main([*args, "--json", "--per-task"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["failed"] == 4 and [o["failed"] for o in d["outcomes"]] == [0, 2, 0, 2]
