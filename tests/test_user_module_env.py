"""An env in the user's own file, not packaged: `env.id: my_module:MyEnv-v0` (Gymnasium's `module:id`
convention) imports `my_module`, whose import registers `MyEnv-v0`, and trains like a shipped env."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from agentrl.core.errors import UsageError
from agentrl.core.registry import check_env_kwargs, env_class, make_env

ENV_MODULE = '''
import gymnasium as gym

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.types import Message


class PickEnv(MultiTurnEnv):
    """Two turns; reply "1" or "2"; the reward is the fraction of "1"s."""

    def __init__(self, turns: int = 2, render_mode=None):
        super().__init__(max_turns=turns, max_action_chars=50, render_mode=render_mode)
        self.turns = turns

    def setup(self, options):
        self.state = {"picks": []}
        self.task_id = "pick"
        return "Reply with one digit: 1 or 2.", "Pick one."

    def respond(self, text):
        self.state["picks"].append(text.strip())
        if len(self.state["picks"]) >= self.turns:
            return EnvReply(terminated=True)
        return EnvReply([Message("user", "Again.")])

    def compute_reward(self):
        ones = sum(p == "1" for p in self.state["picks"]) / self.turns
        return RewardResult(ones, {"ones": ones}, success=ones == 1.0)

    def allowed_replies(self):
        return ["1", "2"]


if "{ID}" not in gym.registry:
    gym.register(id="{ID}", entry_point=PickEnv)
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(module name, env id): a module file in tmp_path, on sys.path, that registers the env when imported."""
    name = f"my_envs_{uuid.uuid4().hex[:8]}"  # unique: gymnasium's registry and sys.modules outlive the test
    env_id = f"{name.title().replace('_', '')}Pick-v0"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(ENV_MODULE.replace("{ID}", env_id))
    monkeypatch.syspath_prepend(str(src))
    yield name, env_id
    sys.modules.pop(name, None)


def test_module_colon_id_makes_and_checks_the_env(user_module: tuple[str, str]) -> None:
    module, env_id = user_module
    full = f"{module}:{env_id}"
    check_env_kwargs(full, {"turns": 3})
    assert env_class(full).__name__ == "PickEnv"
    env = make_env(full, turns=3).unwrapped
    env.reset(seed=0)
    assert env.prompt().opening == "Pick one."
    with pytest.raises(UsageError, match=f"unknown env kwarg 'bogus' for {full}; allowed: turns"):
        check_env_kwargs(full, {"bogus": 1})


def test_unknown_module_or_id_is_a_usage_error(user_module: tuple[str, str]) -> None:
    module, env_id = user_module
    with pytest.raises(
        UsageError, match="environment 'no_such_module_xyz:Foo-v0': no module 'no_such_module_xyz' to import"
    ):
        make_env("no_such_module_xyz:Foo-v0")
    with pytest.raises(
        UsageError,
        match=f"unknown environment 'Nope-v0': importing '{module}' did not register it \\(it registered {env_id};",
    ):
        make_env(f"{module}:Nope-v0")
    with pytest.raises(UsageError, match="must look like module:EnvId-v0"):
        make_env(f"{module}:")


def test_trains_one_update_on_an_env_from_a_user_module(user_module: tuple[str, str], tmp_path: Path) -> None:
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    module, env_id = user_module
    run = tmp_path / "run"
    cfg = load_config(
        None,
        [
            "model=tiny-random",
            f"env.id={module}:{env_id}",
            "env.kwargs.turns=2",
            "algorithm.name=grpo",
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


def test_unknown_module_in_the_train_cli_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentrl.cli import main

    rc = main(["train", "env.id=no_such_module_xyz:Foo-v0", f"train.run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and "no module 'no_such_module_xyz' to import" in err, err


def test_a_module_in_the_working_directory_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`agentrl train` next to one's env file: the console script's sys.path lacks the working directory."""
    name = f"cwd_envs_{uuid.uuid4().hex[:8]}"
    env_id = f"CwdPick{uuid.uuid4().hex[:6]}-v0"
    (tmp_path / f"{name}.py").write_text(ENV_MODULE.replace("{ID}", env_id))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])  # restored after the test
    monkeypatch.chdir(tmp_path)
    try:
        assert make_env(f"{name}:{env_id}").unwrapped.max_turns == 2
        assert sys.path[-1] == str(tmp_path), "the working directory is searched last"
    finally:
        sys.modules.pop(name, None)
