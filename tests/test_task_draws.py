"""Task draws (issue 28, part 1; `rollout.task_draw`, `agentrl/train/task_draws.py`): groups drawn stratified by
task family, or preferring tasks whose recent success is strictly between 0 and 1. Hand counts, determinism,
resume, config errors, and the trainer passing the chosen task to each group's episodes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.outcomes import EpisodeEnd
from agentrl.core.registry import load_env_plugins
from agentrl.core.types import Episode, Message
from agentrl.rollout.build import resolve_env
from agentrl.train.config import ConfigError, RolloutConfig, load_config
from agentrl.train.metrics import family_metrics
from agentrl.train.task_draws import (
    ONE_STRATUM,
    SeedDraws,
    StratifiedDraws,
    SuccessBandDraws,
    build_task_draws,
    group_scores,
)
from agentrl.train.trainer import Trainer

ENV_ID = "test_task_draws:Families-v0"
TASKS = ["a-0", "a-1", "b-0", "b-1", "b-2", "c-0"]
FAMILY = {t: t.split("-")[0] for t in TASKS}


class Families(MultiTurnEnv):
    """Reply "1" or "2", `turns` times; the reward is the fraction of "1"s. Six tasks in three families (a, b, c)."""

    def __init__(self, turns: int = 2, families: bool = True, render_mode=None):
        super().__init__(max_turns=turns, max_action_chars=50, render_mode=render_mode)
        self.turns, self.families = turns, families

    def task_ids(self) -> list[str]:
        return list(TASKS)

    def task_family(self, task_id: str) -> str | None:
        return FAMILY[task_id] if self.families else None

    def setup(self, options):
        self.task_id = self.choose_task_id(options, TASKS)
        self.state = {"picks": []}
        return "Reply with one digit: 1 or 2.", f"Task {self.task_id}. Pick one."

    def respond(self, text: str) -> EnvReply:
        self.state["picks"].append(text.strip())
        if len(self.state["picks"]) >= self.turns:
            return EnvReply(terminated=True)
        return EnvReply([Message("user", "Again.")])

    def compute_reward(self) -> RewardResult:
        ones = sum(p == "1" for p in self.state["picks"]) / self.turns
        return RewardResult(ones, {"ones": ones}, success=ones == 1.0)

    def allowed_replies(self) -> list[str]:
        return ["1", "2"]


load_env_plugins()
if "Families-v0" not in gym.registry:
    gym.register(id="Families-v0", entry_point=Families)


def _stratified(seed: int = 0) -> StratifiedDraws:
    return StratifiedDraws(TASKS, FAMILY, seed=seed)


# -- stratified ----------------------------------------------------------------------------------------------------
def test_stratified_covers_families_evenly_by_hand() -> None:
    d = _stratified()
    updates = [d.draw(2, step=s, round_=0) for s in range(6)]  # 12 draws over 3 families
    flat = [t for u in updates for t in u]
    fam = [FAMILY[t] for t in flat]
    assert Counter(fam) == {"a": 4, "b": 4, "c": 4}  # 12 draws / 3 families
    for cycle in range(4):  # every 3 consecutive draws of a cycle hold each family once
        assert sorted(fam[3 * cycle : 3 * cycle + 3]) == ["a", "b", "c"]
    # within a family, tasks come in passes: b's 3 tasks once each in its first 3 draws, a's 2 tasks twice in 4
    assert sorted([t for t in flat if FAMILY[t] == "b"][:3]) == ["b-0", "b-1", "b-2"]
    assert Counter(t for t in flat if FAMILY[t] == "a") == {"a-0": 2, "a-1": 2}
    assert Counter(t for t in flat if FAMILY[t] == "c") == {"c-0": 4}
    # an update of 4 groups (more than the 3 families) covers every family
    d4 = _stratified()
    for s in range(3):
        assert {FAMILY[t] for t in d4.draw(4, step=s, round_=0)} == {"a", "b", "c"}
        assert d4.metrics() == {"draw/strata": 3.0, "draw/strata_drawn": 3.0}


def test_one_stratum_without_a_family_hook() -> None:
    d = StratifiedDraws(TASKS, dict.fromkeys(TASKS), seed=1)
    assert d.names == [ONE_STRATUM]
    first = d.draw(6, step=0, round_=0)
    assert sorted(first) == sorted(TASKS), "one pass over every task before any repeats"
    assert d.metrics()["draw/strata"] == 1.0


# -- success band --------------------------------------------------------------------------------------------------
def _band(uniform: float = 0.0, window: int = 2, seed: int = 0) -> SuccessBandDraws:
    d = SuccessBandDraws(TASKS, seed=seed, window=window, uniform=uniform)
    # a-0, b-0 in the band; a-1 always solved, b-1 never; b-2, c-0 unseen
    d.observe([("a-0", 0.5), ("a-1", 1.0), ("b-0", 0.25), ("b-1", 0.0)])
    return d


def test_success_band_prefers_the_band_then_unseen_then_the_rest() -> None:
    d = _band()
    assert d.band() == ["a-0", "b-0"]
    assert sorted(d.draw(2, step=0, round_=0)) == ["a-0", "b-0"]
    assert d.metrics()["draw/band_tasks"] == 2.0 and d.metrics()["draw/from_band"] == 2.0
    assert sorted(d.draw(4, step=1, round_=0)) == ["a-0", "b-0", "b-2", "c-0"]  # then the unseen ones
    assert d.metrics()["draw/unseen_tasks"] == 2.0 and d.metrics()["draw/from_unseen"] == 2.0
    assert sorted(d.draw(6, step=2, round_=0)) == sorted(TASKS)  # then the rest, no task twice in an update
    # a refill round of the same update draws other tasks first
    d.draw(2, step=3, round_=0)
    assert not set(d.draw(2, step=3, round_=1)) & {"a-0", "b-0"}


def test_success_band_window_and_uniform_fraction() -> None:
    d = _band(window=2)
    d.observe([("a-0", 0.0), ("a-0", 0.0)])  # its last 2 groups all failed: out of the band
    assert d.band() == ["b-0"] and d.recent["a-0"] == [0.0, 0.0]
    d.observe([("b-0", 1.0)])  # [0.25, 1.0]: mean strictly inside (0, 1)
    assert d.band() == ["b-0"]
    u = _band(uniform=0.5)
    for s in range(20):  # ⌊0.5·2 + U⌋ = 1 uniform slot of 2, always
        u.draw(2, step=s, round_=0)
        assert u.metrics()["draw/from_uniform"] == 1.0 and u.metrics()["draw/from_band"] == 1.0
    u3 = _band(uniform=0.5)
    n_uniform = []
    for s in range(200):  # ⌊0.5·3 + U⌋: 1 or 2 slots, 1.5 on average
        u3.draw(3, step=s, round_=0)
        n_uniform.append(u3.metrics()["draw/from_uniform"])
    assert set(n_uniform) == {1.0, 2.0} and 1.3 < sum(n_uniform) / 200 < 1.7


def test_every_task_drawn_under_the_uniform_fraction() -> None:
    d = _band(uniform=0.25)
    seen = Counter(t for s in range(200) for t in d.draw(2, step=s, round_=0))
    assert set(seen) == set(TASKS), "no task is starved"
    assert seen["a-0"] + seen["b-0"] > 250  # the band still takes most slots


def test_group_scores_by_hand() -> None:
    def ep(g: int, task: str, success: bool | None, reward: float, end: EpisodeEnd = EpisodeEnd.TERMINATED) -> Episode:
        return Episode(prompt_ids=[1], task_id=task, group_id=g, success=success, reward=reward, end=end)

    eps = [
        ep(0, "a-0", True, 0.9),
        ep(0, "a-0", False, 0.2),
        ep(1, "b-0", None, 0.5),
        ep(1, "b-0", None, 0.0),
        ep(2, "c-0", True, 1.0),
        ep(2, "c-0", None, 0.0, EpisodeEnd.SIMULATOR_ERROR),
        ep(3, "b-1", None, 0.0, EpisodeEnd.ENV_ERROR),
    ]
    # success where the env says it, else the reward; infrastructure failures out; a group left empty skipped
    assert group_scores(eps) == [("a-0", 0.5), ("b-0", 0.25), ("c-0", 1.0)]


# -- determinism and resume ----------------------------------------------------------------------------------------
def _run(d, steps: range, scores: dict[str, float]) -> list[list[str | None]]:
    out = []
    for s in steps:
        tasks = d.draw(3, step=s, round_=0)
        out.append(tasks)
        d.observe([(t, scores[t]) for t in tasks if t is not None])
    return out


SCORES = {"a-0": 0.5, "a-1": 1.0, "b-0": 0.0, "b-1": 0.5, "b-2": 1.0, "c-0": 0.0}


@pytest.mark.parametrize(
    "make", [_stratified, lambda seed=0: SuccessBandDraws(TASKS, seed=seed, window=2, uniform=0.25)]
)
def test_draws_are_deterministic_by_seed_and_resume_exactly(make) -> None:
    assert _run(make(seed=3), range(8), SCORES) == _run(make(seed=3), range(8), SCORES)
    assert any(_run(make(seed=s), range(8), SCORES) != _run(make(seed=3), range(8), SCORES) for s in (4, 5, 6))
    whole = make(seed=3)
    want = _run(whole, range(8), SCORES)
    first = make(seed=3)
    head = _run(first, range(4), SCORES)
    resumed = make(seed=3)
    resumed.load_state_dict(first.state_dict())
    assert head + _run(resumed, range(4, 8), SCORES) == want
    assert resumed.state_dict() == whole.state_dict()


def test_seed_draws_choose_nothing() -> None:
    d = SeedDraws()
    assert d.draw(3, step=0, round_=0) == [None, None, None] and d.metrics() == {} and d.state_dict() == {}


# -- config --------------------------------------------------------------------------------------------------------
def test_config_validation() -> None:
    assert load_config(None, []).rollout.task_draw == "seed"
    with pytest.raises(ConfigError, match="task_draw"):
        load_config(None, ["rollout.task_draw=families"])
    with pytest.raises(ConfigError, match="draw_window"):
        load_config(None, ["rollout.task_draw=success_band", "rollout.draw_window=0"])
    with pytest.raises(ConfigError, match="draw_uniform"):
        load_config(None, ["rollout.task_draw=success_band", "rollout.draw_uniform=1.5"])
    with pytest.raises(ConfigError, match="rollout.draw_window sets rollout.task_draw=success_band"):
        load_config(None, ["rollout.draw_window=3"])  # a setting nothing would read
    with pytest.raises(ConfigError, match="rollout.draw_uniform"):
        load_config(None, ["rollout.task_draw=stratified", "rollout.draw_uniform=0.5"])
    cfg = load_config(None, ["rollout.task_draw=success_band", "rollout.draw_window=3", "rollout.draw_uniform=0.5"])
    assert (cfg.rollout.draw_window, cfg.rollout.draw_uniform) == (3, 0.5)


def test_an_env_without_a_task_list_is_refused() -> None:
    rollout = RolloutConfig(task_draw="stratified")
    with pytest.raises(ConfigError, match="no task list"):
        build_task_draws(rollout, 0, resolve_env("agentrl/CreditChain-v0", {}))
    d = build_task_draws(rollout, 0, resolve_env(ENV_ID, {}))
    assert isinstance(d, StratifiedDraws) and d.names == ["a", "b", "c"]
    d = build_task_draws(rollout, 0, resolve_env(ENV_ID, {"families": False}))
    assert d.names == [ONE_STRATUM]


def test_the_trainer_refuses_before_loading_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentrl.train.engine as engine_mod

    monkeypatch.setattr(engine_mod, "load_model", lambda *a, **k: pytest.fail("the model loaded first"))
    with pytest.raises(ConfigError, match="rollout.task_draw=success_band .* no task list"):
        Trainer(
            load_config(None, ["rollout.task_draw=success_band", f"train.run_dir={tmp_path / 'run'}"]), console=False
        )


# -- the trainer -----------------------------------------------------------------------------------------------------
BASE = [
    "model=tiny-random",
    f"env.id={ENV_ID}",
    "algorithm.name=grpo",
    "rollout.groups=3",
    "rollout.group_size=2",
    "rollout.max_new_tokens=2",
    "rollout.constrained=true",
    "train.checkpoint_every=1",
    "train.log_episodes=0",
    "ppo.minibatch_size=6",
    "ppo.micro_batch_size=6",
    "train.seed=1",
]


def _spy_collect(t: Trainer) -> list[list]:
    seen: list[list] = []
    collect = t.runner.collect

    def spy(specs):
        eps = collect(specs)
        seen.append([(s.task_id, ep.task_id, s.group_id) for s, ep in zip(specs, eps)])
        return eps

    t.runner.collect = spy  # type: ignore[method-assign]
    return seen


def test_seed_draw_keeps_the_specs_as_before(tmp_path: Path) -> None:
    t = Trainer(load_config(None, [*BASE, f"train.run_dir={tmp_path / 'run'}"]), console=False)
    specs = t._episode_specs(5)
    assert [(s.seed, s.task_id, s.group_id) for s in specs] == [
        ((1 * 1_000_003 + 5 * 1009 + g) & 0x7FFFFFFF, None, g) for g in range(3) for _ in range(2)
    ]


def test_the_trainer_runs_stratified_draws(tmp_path: Path) -> None:
    t = Trainer(
        load_config(None, [*BASE, "rollout.task_draw=stratified", f"train.run_dir={tmp_path / 'run'}"]), console=False
    )
    seen = _spy_collect(t)
    m = t.train_step()
    rows = seen[0]
    assert all(spec_task == ep_task for spec_task, ep_task, _ in rows), "each group ran the task drawn for it"
    assert {FAMILY[task] for task, _, _ in rows} == {"a", "b", "c"}
    assert len({task for task, _, g in rows if g == 0}) == 1, "a group's episodes share their task"
    assert m["draw/strata"] == 3.0 and m["draw/strata_drawn"] == 3.0


def test_family_metrics_by_hand() -> None:
    rows = [("a", 1.0, True), ("a", 0.0, True), ("b", 0.5, False), (None, 1.0, True), ("a", 0.5, False)]
    assert family_metrics(rows) == {
        "family/a/episodes": 3.0,
        "family/a/reward": 0.5,
        "family/a/spread": 2 / 3,
        "family/b/episodes": 1.0,
        "family/b/reward": 0.5,
        "family/b/spread": 0.0,
    }
    assert family_metrics([(None, 1.0, True)]) == {}


def test_the_trainer_logs_what_each_family_contributed(tmp_path: Path) -> None:
    t = Trainer(
        load_config(None, [*BASE, "rollout.task_draw=stratified", f"train.run_dir={tmp_path / 'run'}"]), console=False
    )
    seen = _spy_collect(t)
    m = t.train_step()
    counts = Counter(FAMILY[task] for task, _, _ in seen[0])
    assert {k: v for k, v in m.items() if k.endswith("/episodes")} == {
        f"family/{f}/episodes": float(n) for f, n in counts.items()
    }
    fams = sorted(counts)
    assert all(0.0 <= m[f"family/{f}/reward"] <= 1.0 and m[f"family/{f}/spread"] in (0.0, 1.0) for f in fams)
    # the families' rewards, weighted by their episodes, are the batch's mean reward
    total = sum(m[f"family/{f}/reward"] * m[f"family/{f}/episodes"] for f in fams)
    assert total / sum(counts.values()) == pytest.approx(m["reward/mean"])


def test_an_env_without_families_logs_none(tmp_path: Path) -> None:
    t = Trainer(
        load_config(None, [*BASE, "env.kwargs={families: false}", f"train.run_dir={tmp_path / 'run'}"]), console=False
    )
    assert not [k for k in t.train_step() if k.startswith("family/")]


def test_the_trainer_runs_success_band_draws_with_refills_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = [
        *BASE,
        "rollout.task_draw=success_band",
        "rollout.draw_uniform=0.0",
        "rollout.refill_rounds=2",
        "train.updates=2",
    ]
    t = Trainer(load_config(None, [*cfg, f"train.run_dir={run}"]), console=False)
    seen = _spy_collect(t)
    t.run()
    assert all(task is not None and task == ep_task for rows in seen for task, ep_task, _ in rows), (
        "the refill rounds' groups run drawn tasks too"
    )
    assert len(t.task_draws.recent) >= 3, "the collected groups' outcomes reached the draws"
    line = (run / "metrics.jsonl").read_text().splitlines()[-1]
    assert '"draw/band_tasks"' in line and '"draw/unseen_tasks"' in line
    r = Trainer(load_config(None, [*cfg, f"train.run_dir={run}", "train.resume=true"]), console=False)
    assert r.step == 2 and r.task_draws.state_dict() == t.task_draws.state_dict()


def test_two_ranks_draw_the_tasks_one_process_draws(tmp_path: Path) -> None:
    """Under torchrun every rank draws every group's task and observes every rank's outcomes: the draws, and so the
    episodes and the update, are one process's."""
    import json
    import os
    import subprocess
    import sys

    cfg = [
        *BASE,
        "rollout.groups=4",
        "rollout.task_draw=success_band",
        "train.updates=3",
        "ppo.minibatch_size=4",
        "ppo.micro_batch_size=2",
        "train.threads=1",
        "train.collective_timeout_s=20",
    ]
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "agentrl",
            "train",
            *cfg,
            f"train.run_dir={tmp_path / 'ddp'}",
            "train.parallel=ddp",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path},
    )
    one = Trainer(load_config(None, [*cfg, f"train.run_dir={tmp_path / 'one'}"]), console=False)
    one.run()
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out

    def rows(run: Path) -> list[dict]:
        return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]

    a, b = rows(tmp_path / "one"), rows(tmp_path / "ddp")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        for key in [k for k in x if k.startswith("draw/")] + ["reward/mean", "tokens/sampled", "adv/mean"]:
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (key, x[key], y[key])
    assert a[-1]["draw/unseen_tasks"] < len(TASKS), "outcomes reached the draws"
