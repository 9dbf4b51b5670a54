"""Seeds as data (issue 32, item 4): every episode's and continuation's sampling seeds derive from what it is (its key:
the trainer's ("train", step, group, index); a refill's round; a continuation's parent, point and j), never from a
counter, so an episode samples the same tokens whatever else is sampled beside it, in any run, rank or resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.checkpoint import MANIFEST, write_manifest
from agentrl.core.registry import load_env_plugins
from agentrl.core.types import Episode
from agentrl.eval.evaluate import collect_outcomes
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner, key_uid
from agentrl.train.branch_values import estimate_branch_values
from agentrl.train.checkpoint import load_trainer_state
from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer

load_env_plugins()


def _tokens(ep: Episode) -> tuple[int, ...]:
    return tuple(ep.input_ids)


def _by_uid(eps: list[Episode]) -> dict[int, tuple[int, ...]]:
    return {ep.uid: _tokens(ep) for ep in eps}


def _runner(tiny: Any, *, snapshot_turns: bool = False) -> RolloutRunner:
    model, tok = tiny
    return RolloutRunner(
        lambda: gym.make("agentrl/CreditChain-v0", turns=3),
        HFPolicy(model, tok),
        ChatFormatter(tok),
        SamplingParams(temperature=1.0, max_new_tokens=6),
        seed=3,
        snapshot_turns=snapshot_turns,
    )


def test_a_key_samples_the_same_tokens_in_any_call(tiny: Any) -> None:
    r = _runner(tiny)
    specs = [EpisodeSpec(seed=g, group_id=g, key=("k", g, i)) for g in range(3) for i in range(2)]
    whole = {ep.uid: _tokens(ep) for ep in r.collect(specs)}
    assert len(set(whole.values())) > 1, "the keys differ, so do the samples"
    assert set(whole) == {key_uid(s.key) for s in specs if s.key is not None}, "the uid is the key's"
    part = {ep.uid: _tokens(ep) for ep in r.collect(specs[::-1][:3])}  # fewer, other order, a runner used before
    assert all(whole[u] == t for u, t in part.items())
    with pytest.raises(ValueError, match="key"):
        r.collect([EpisodeSpec(seed=0, key=("same",)), EpisodeSpec(seed=1, key=("same",))])


def test_a_continuation_samples_the_same_whatever_else_branches(tiny: Any) -> None:
    r = _runner(tiny, snapshot_turns=True)
    a, b = r.collect([EpisodeSpec(seed=0, key=("a",)), EpisodeSpec(seed=1, key=("b",))])
    both = _by_uid(r.branch_many([(a, a.turns[1].start, [1.0, 1.0]), (b, b.turns[0].start, [1.0])]))
    alone = _by_uid(r.branch_many([(a, a.turns[1].start, [1.0, 1.0])]))
    assert set(alone) == {key_uid(("branch", a.uid, a.turns[1].start, j)) for j in range(2)}
    assert len(both) == 3 and all(both[u] == t for u, t in alone.items())


def test_evaluation_trials_are_keyed_by_task_and_trial(tiny: Any) -> None:
    """`collect_outcomes` (held-out and `agentrl eval`): a task's trials sample the same in a rank's share of the
    task list as in the whole list, and each trial its own tokens."""
    r = _runner(tiny)
    runs: list[dict[int, tuple[int, ...]]] = []
    collect = r.collect

    def spy(specs: list[EpisodeSpec]) -> list[Episode]:
        eps = collect(specs)
        runs.append(_by_uid(eps))
        return eps

    r.collect = spy  # type: ignore[method-assign]
    tasks: list[tuple[int, str | None]] = [(1000 + i, None) for i in range(4)]
    collect_outcomes(r, tasks, trials=2)
    collect_outcomes(r, tasks[2:], trials=2)
    whole, share = runs
    assert len(whole) == 8 and len(share) == 4 and all(whole[u] == t for u, t in share.items())
    assert len(set(whole.values())) > 4, "trials of one task sample apart"


def test_random_branch_points_are_the_episodes_own(tiny: Any) -> None:
    """`sample:q` draws an episode's points from (point_seed, its uid): the same whatever the batch holds before it
    (a rank's share, or one process's whole batch)."""
    r = _runner(tiny, snapshot_turns=True)
    eps = r.collect([EpisodeSpec(seed=g, group_id=g, key=("p", g)) for g in range(4)])
    kw: dict[str, Any] = dict(spec="sample:0.5", m=1, t_min=None, t_max=1.0, point_seed=5)
    whole = estimate_branch_values(r, eps, **kw).positions
    assert estimate_branch_values(r, eps[2:], **kw).positions == whole[2:]
    assert whole != estimate_branch_values(r, eps, **{**kw, "point_seed": 6}).positions, "the seed does enter"


TINY = [
    "model=tiny-random",
    "env.id=agentrl/CreditChain-v0",
    "env.kwargs={turns: 3}",
    "rollout.group_size=2",
    "rollout.max_new_tokens=4",
    "rollout.constrained=true",
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=4",
    "train.log_episodes=0",
    "train.seed=7",
]


def _trainer(tmp_path: Path, name: str, *extra: str) -> Trainer:
    return Trainer(load_config(None, [*TINY, *extra, f"train.run_dir={tmp_path / name}"]), console=False)


def test_a_group_samples_the_same_whatever_the_other_groups(tmp_path: Path) -> None:
    """Group 1's episodes, and their TRePO continuations, are token for token the same with 2 groups or 3, and with
    the same config twice; group 2 (there only with 3 groups) adds episodes without moving any."""
    trepo = ["algorithm.name=trepo", "algorithm.params.branch_t_min=null"]
    t2, t3 = (
        _trainer(tmp_path, "two", "rollout.groups=2", *trepo),
        _trainer(tmp_path, "three", "rollout.groups=3", *trepo),
    )
    two, three = t2._collect(0, 0), t3._collect(0, 0)
    again = _trainer(tmp_path, "again", "rollout.groups=2", *trepo)._collect(0, 0)
    # the next update's batch (same weights: no update between) after a first batch of 4 or 6 episodes and their
    # continuations: a counter would have moved by different amounts, keys by step do not
    nxt2, nxt3 = (_by_uid([ep for ep in t._collect(1, 0).collected if ep.group_id == 1]) for t in (t2, t3))
    assert len(nxt2) == 2 and nxt2 == nxt3
    conts = {name: c.extra["branch"].episodes for name, c in (("two", two), ("again", again), ("three", three))}
    assert conts["two"], "TRePO branched: the continuations are compared too"
    assert _by_uid(two.collected) == _by_uid(again.collected) and _by_uid(conts["two"]) == _by_uid(conts["again"])
    g1 = {ep.uid for ep in two.collected if ep.group_id == 1}
    assert len(g1) == 2
    eps3 = _by_uid(three.collected)
    assert {u: eps3[u] for u in g1} == {u: t for u, t in _by_uid(two.collected).items() if u in g1}
    c2 = _by_uid(conts["two"])
    c3 = _by_uid(conts["three"])
    # which points branch depends on the batch (a prefix other episodes share needs fewer continuations); a
    # continuation sampled in both batches is the same
    common = [c.uid for c in conts["two"] if c.parent_uid in g1 and c.uid in c3]
    assert common and all(c3[u] == c2[u] for u in common)
    assert len(three.collected) == 6 and len(set(eps3)) == 6


def _seeds_spy(t: Trainer) -> list[int]:
    seeds: list[int] = []
    generate = t.policy.generate

    def spy(prompts: Any, params: Any) -> Any:
        seeds.extend(p.seed for p in params)
        return generate(prompts, params)

    t.policy.generate = spy  # type: ignore[method-assign]
    return seeds


def test_refills_and_continuations_get_their_own_seeds(tmp_path: Path) -> None:
    """Every episode of an update (the first draw, each refill round's, each continuation) has its own uid, and no two
    of its sampled turns share a sampling seed (common random numbers off)."""
    t = _trainer(
        tmp_path,
        "run",
        "rollout.groups=4",
        "algorithm.name=trepo",
        "algorithm.params.branch_t_min=null",
        "rollout.refill_rounds=3",
        "rollout.temperature=1.0",
    )
    keys: list[Any] = []
    collect = t.runner.collect
    t.runner.collect = lambda specs: keys.extend(s.key for s in specs) or collect(specs)  # type: ignore[method-assign]
    seeds = _seeds_spy(t)
    c = t._collect(0, 0)
    assert c.refill is not None and c.refill.rounds >= 1, "a refill round ran (train.seed=7 gives zero-spread groups)"
    assert any(k[0] == "refill" for k in keys) and len(set(keys)) == len(keys)
    conts = c.extra["branch"].episodes
    uids = [ep.uid for ep in [*c.collected, *conts]]
    assert conts and len(set(uids)) == len(uids)
    assert len(set(seeds)) == len(seeds), "each turn of each episode and continuation samples with a seed of its own"


def test_resume_samples_what_the_uninterrupted_run_did(tmp_path: Path) -> None:
    """A run resumed at update 1 (from a checkpoint that also holds an old runner uid counter and trainer rng, as
    checkpoints written before seeds were data did: ignored) samples update 2 as the uninterrupted run did, and ends
    with its weights."""
    cfg = ["rollout.groups=2", "algorithm.name=trepo", "train.checkpoint_every=1", "optim.lr=1e-3"]
    seen: dict[str, list[dict[int, tuple[int, ...]]]] = {"whole": [], "resumed": []}

    def watch(t: Trainer, into: list[dict[int, tuple[int, ...]]]) -> None:
        collect = t._collect

        def spy(step: int, version: int) -> Any:
            c = collect(step, version)
            into.append(_by_uid(c.collected))
            return c

        t._collect = spy  # type: ignore[method-assign]

    whole = _trainer(tmp_path, "whole", *cfg, "train.updates=2")
    watch(whole, seen["whole"])
    whole.run()
    _trainer(tmp_path, "part", *cfg, "train.updates=1").run()
    state_path = tmp_path / "part" / "checkpoints" / "step_000001" / "trainer_state.pt"
    st = load_trainer_state(state_path.parent)
    torch.save({**st, "runner": {"uid": 12345}, "trainer_rng": (3, tuple(range(625)), None)}, state_path)
    (state_path.parent / MANIFEST).unlink()
    write_manifest(state_path.parent, 1)  # as an older agentrl wrote it: intact
    resumed = _trainer(tmp_path, "part", *cfg, "train.updates=2", "train.resume=true")
    assert resumed.step == 1
    watch(resumed, seen["resumed"])
    resumed.run()
    assert seen["resumed"] == seen["whole"][1:]
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
