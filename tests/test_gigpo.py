"""GiGPO (Feng et al. 2025): its advantages against hand computations, its registry and params wiring, the anchor
keys the runner computes (equal exactly for the same env state after the same messages), and that it learns
CreditChain with the tiny model under constrained decoding."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from test_learning import test_reward_rises_on_credit_chain as reward_rises_on_credit_chain

from agentrl.algo.advantages import REGISTRY, AdvantageInputs, gigpo, grpo
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.registry import load_env_plugins
from agentrl.core.types import Message
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.rollout.anchors import anchor_key, canonical, env_anchor_key
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.config import ConfigError, load_config
from agentrl.train.trainer import Trainer

load_env_plugins()

# T = 8: prompt 1 | turn 0: agent 2 | env 1 | turn 1: agent 2 | pad 2
MASK2 = [0, 1, 1, 0, 1, 1, 0, 0]
MASK1 = [0, 1, 1, 0, 0, 0, 0, 0]  # one turn, then padding
EPS = 1e-6


def inputs(rewards, masks, groups, starts, anchors) -> AdvantageInputs:
    return AdvantageInputs(
        rewards=torch.tensor(rewards, dtype=torch.float32),
        action_mask=torch.tensor(masks, dtype=torch.float32),
        group_ids=torch.tensor(groups, dtype=torch.long),
        turn_starts=starts,
        turn_anchors=anchors,
    )


def batch() -> AdvantageInputs:
    """Group 0: three 2-turn episodes; all start from s0, e0 and e1 reach the same state "a" for turn 1, e2 reaches
    "b" alone. Group 1: a 2-turn and a 1-turn episode, whose first anchor has the same key "s0" as group 0's (anchor
    groups never cross task groups); e3's turn 1 is alone."""
    return inputs(
        [1.0, 0.0, 0.5, 1.0, 0.0],
        [MASK2, MASK2, MASK2, MASK2, MASK1],
        [0, 0, 0, 1, 1],
        [[1, 4], [1, 4], [1, 4], [1, 4], [1]],
        [["s0", "a"], ["s0", "a"], ["s0", "b"], ["s0", "c"], ["s0"]],
    )


def row(t0: float, t1: float = 0.0) -> list[float]:
    return [0, t0, t0, 0, t1, t1, 0, 0]


def approx(t: torch.Tensor, expected: list, tol: float = 1e-6) -> None:
    assert torch.allclose(t.double(), torch.tensor(expected, dtype=torch.float64), atol=tol), (t.tolist(), expected)


# ------------------------------------------------------------------ the estimator, by hand


def test_gigpo_by_hand_with_std() -> None:
    out = gigpo(batch(), step_weight=0.5, gamma=0.5, scale_std=True, eps=EPS)
    s2 = 2**0.5
    # group 0, episode level: R = 1, 0, 0.5; mean 0.5, unbiased std 0.5 -> 1, -1, 0
    # turn 0 (anchor s0, n - k - 1 = 1): returns 0.5·R = 0.5, 0, 0.25; mean 0.25, std 0.25 -> 1, -1, 0
    # turn 1 (k = n - 1: return R): anchor a holds e0, e1: 1, 0; mean 0.5, std 1/√2 -> ±1/√2; e2 alone in b -> 0
    e = [(1 - 0.5) / (0.5 + EPS), (0 - 0.5) / (0.5 + EPS), 0.0]
    t0 = [0.25 / (0.25 + EPS), -0.25 / (0.25 + EPS), 0.0]
    t1 = [0.5 / (1 / s2 + EPS), -0.5 / (1 / s2 + EPS), 0.0]
    # group 1: R = 1, 0 -> ±1/√2 (std √0.5); turn 0 of both (s0 in group 1): 0.5·1 = 0.5 and 0 (e4's only turn is
    # its last: return R = 0) -> ±0.25 / (√0.125) = ±1/√2; e3's turn 1 (c) alone -> 0
    e1 = 0.5 / (0.5**0.5 + EPS)
    s1 = 0.25 / (0.125**0.5 + EPS)
    approx(
        out.advantages,
        [
            row(e[0] + 0.5 * t0[0], e[0] + 0.5 * t1[0]),
            row(e[1] + 0.5 * t0[1], e[1] + 0.5 * t1[1]),
            row(e[2] + 0.5 * t0[2], e[2] + 0.5 * t1[2]),
            row(e1 + 0.5 * s1, e1),
            row(-e1 - 0.5 * s1),
        ],
    )
    assert out.returns is None
    approx(out.advantages[0], row(1.5, 1 + 0.5 / s2), tol=1e-4)  # the same numbers, rounded


def test_gigpo_by_hand_without_std() -> None:
    out = gigpo(batch(), step_weight=1.0, gamma=0.5, scale_std=False)
    # group 0: episode 0.5, -0.5, 0; turn 0: 0.25, -0.25, 0; turn 1: 0.5, -0.5, (alone) 0
    # group 1: episode 0.5, -0.5; turn 0: 0.25, -0.25; e3's turn 1 alone: 0
    approx(out.advantages, [row(0.75, 1.0), row(-0.75, -1.0), row(0.0, 0.0), row(0.75, 0.5), row(-0.75)])


def test_step_weight_zero_is_grpo_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    inp = batch()
    inp.rewards = torch.rand(5, generator=g)
    for scale_std in (True, False):
        assert torch.equal(
            gigpo(inp, step_weight=0.0, scale_std=scale_std).advantages, grpo(inp, scale_std=scale_std).advantages
        )


def test_gamma_one_and_a_shared_first_state_doubles_the_first_turn() -> None:
    # gamma = 1: every step return is R; the first turn's anchor group is the whole task group, so its step
    # advantage is the episode advantage
    inp = batch()
    out = gigpo(inp, step_weight=1.0, gamma=1.0).advantages
    ref = grpo(inp).advantages
    assert torch.allclose(out[:, 1:3], 2 * ref[:, 1:3], atol=1e-6)


def test_unshared_anchors_give_grpo_and_nothing_leaks_off_the_mask() -> None:
    inp = batch()
    inp.turn_anchors = [[f"e{i}t{k}" for k in range(len(s))] for i, s in enumerate(inp.turn_starts)]
    out = gigpo(inp, step_weight=3.0).advantages
    assert torch.equal(out, grpo(inp).advantages)  # every anchor group has one member: A_step = 0
    shared = gigpo(batch()).advantages
    assert (shared[inp.action_mask == 0] == 0).all() and torch.isfinite(shared).all()


def test_a_group_of_one_episode_gets_zero() -> None:
    inp = inputs([1.0], [MASK2], [0], [[1, 4]], [["s0", "a"]])
    assert (gigpo(inp).advantages == 0).all()


@pytest.mark.parametrize(
    "anchors,match",
    [
        (None, "needs turn_anchors"),
        ([["s0"]], "one list per episode"),
        ([["s0"], ["s0", "a"]], "episode 0: turn_anchors must hold one str key per turn start"),
        ([["s0", None], ["s0", "a"]], "episode 0"),
    ],
)
def test_missing_or_malformed_anchors_raise(anchors, match) -> None:
    inp = inputs([1.0, 0.0], [MASK2, MASK2], [0, 0], [[1, 4], [1, 4]], anchors)
    with pytest.raises(ValueError, match=match):
        gigpo(inp)


# ------------------------------------------------------------------ registry and params


def test_registry_spec() -> None:
    spec = REGISTRY["gigpo"]
    assert spec.fn is gigpo and spec.needs_anchor_states and not spec.needs_branches and not spec.needs_value_head
    assert spec.min_group_size == 2 and spec.group_reason and spec.default_whiten == "none"
    assert not any(s.needs_anchor_states for n, s in REGISTRY.items() if n != "gigpo")


def test_config_loads_gigpo_and_its_params() -> None:
    cfg = load_config(None, ["algorithm.name=gigpo", "algorithm.params.step_weight=0.5"])
    assert cfg.algorithm.params == {"step_weight": 0.5, "gamma": 0.95, "scale_std": True, "eps": 1e-6}
    assert cfg.algorithm.estimator_params().step_weight == 0.5


@pytest.mark.parametrize(
    "override,message",
    [
        ("algorithm.params.step_weight=-1", "step_weight: Input should be greater than or equal to 0"),
        ("algorithm.params.gamma=1.5", "gamma: Input should be less than or equal to 1"),
        ("algorithm.params.eps=0", "eps: Input should be greater than 0"),
        ("algorithm.params.mode=mean_norm", "gigpo: mode: unknown (allowed: step_weight, gamma, scale_std, eps)"),
        ("rollout.group_size=1", "rollout.group_size=1 gives gigpo nothing to learn from"),
    ],
)
def test_bad_params_are_refused_when_the_config_loads(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["algorithm.name=gigpo", override])
    assert message in str(exc.value), str(exc.value)


def test_one_update_passes_the_runners_anchors_to_the_estimator(tmp_path: Path, monkeypatch) -> None:
    seen: list[AdvantageInputs] = []

    @functools.wraps(gigpo)
    def spy(inp, **kw):
        seen.append(inp)
        return gigpo(inp, **kw)

    monkeypatch.setitem(REGISTRY, "gigpo", dataclasses.replace(REGISTRY["gigpo"], fn=spy))
    cfg = load_config(
        None,
        [
            "model=tiny-random",
            "env.kwargs.turns=3",
            "rollout.groups=2",
            "rollout.group_size=3",
            "rollout.constrained=true",
            "rollout.max_new_tokens=4",
            "train.updates=1",
            "ppo.minibatch_size=6",
            "ppo.micro_batch_size=3",
            "train.log_episodes=0",
            "algorithm.name=gigpo",
            f"train.run_dir={tmp_path}",
        ],
    )
    tr = Trainer(cfg, console=False)
    assert tr.runner.anchor_turns and not tr.runner.snapshot_turns
    tr.run()
    (inp,) = seen
    assert [len(a) for a in inp.turn_anchors] == [len(s) for s in inp.turn_starts] == [3] * 6
    firsts: dict[int, set[str]] = {}
    for gid, keys in zip(inp.group_ids.tolist(), inp.turn_anchors):
        firsts.setdefault(gid, set()).add(keys[0])
    # a group's episodes share the task, so their first turns share one anchor; two tasks, two first states
    assert len(firsts) == 2 and all(len(k) == 1 for k in firsts.values()) and len(set.union(*firsts.values())) == 2
    assert "adv/mean" in json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])


# ------------------------------------------------------------------ anchor keys


def _credit_runner(tiny, **kw) -> RolloutRunner:
    model, tok = tiny
    return RolloutRunner(
        lambda: gym.make("agentrl/CreditChain-v0", turns=3, n_cues=2),
        HFPolicy(model, tok),
        ChatFormatter(tok),
        SamplingParams(temperature=1.0, max_new_tokens=4),
        constrained=True,
        seed=3,
        **kw,
    )


def _before(ep, k: int, *, observations_only: bool = True) -> list[tuple[str, str]]:
    """The messages before turn k: the opening, then per earlier turn the agent's message (unless
    observations_only) and the env's reply."""
    n_open = len(ep.messages) - sum(1 + len(t.env_messages) for t in ep.turns)
    return [
        (m.role, m.content)
        for m in ep.messages[: n_open + sum(1 + len(t.env_messages) for t in ep.turns[:k])]
        if not (observations_only and m.role == "assistant")
    ]


def test_runner_keys_are_equal_exactly_when_state_and_messages_are(tiny) -> None:
    # 2 cues, 3 turns, 8 episodes of one task: the sampled replies collide often, and often not
    specs = [EpisodeSpec(seed=5, group_id=0) for _ in range(8)] + [EpisodeSpec(seed=6, group_id=1) for _ in range(4)]
    eps = _credit_runner(tiny, anchor_turns=True).collect(specs)
    assert all(
        ep.turn_anchors == [t.anchor for t in ep.turns] and len(ep.turn_anchors) == len(ep.turn_starts) == 3
        for ep in eps
    )
    assert all(isinstance(a, str) and len(a) == 64 for ep in eps for a in ep.turn_anchors)
    same = differ = 0
    for a in eps:
        for b in eps:
            for k in range(3):
                # CreditChain: the seed and the replies so far fix the state, so the same conversation is the same
                # anchor; an anchor needs the same observations (the agent's words are not part of the key, but
                # the state they led to is: two wrong answers in other words may meet, a right and a wrong never)
                key_same = a.turn_anchors[k] == b.turn_anchors[k]
                if a.seed == b.seed and _before(a, k, observations_only=False) == _before(
                    b, k, observations_only=False
                ):
                    assert key_same
                if key_same:
                    assert a.seed == b.seed and _before(a, k) == _before(b, k)
                same += key_same and a is not b
                differ += not key_same
    assert same and differ  # both cases occurred
    # with snapshots kept (TRePO's), the key is computed from the kept snapshot: the same keys
    again = _credit_runner(tiny, anchor_turns=True, snapshot_turns=True).collect(specs)
    assert [ep.turn_anchors for ep in again] == [ep.turn_anchors for ep in eps]
    # without the flag, no key and no cost
    assert all(t.anchor is None for ep in _credit_runner(tiny).collect(specs[:2]) for t in ep.turns)


def _play(env: MultiTurnEnv, seed: int, actions: list[str]) -> tuple[list[str], list[Message]]:
    obs, _ = env.reset(seed=seed)
    msgs = [Message.from_dict(m) for m in obs]
    keys = []
    for a in actions:
        keys.append(env_anchor_key(env, msgs))
        obs, *_ = env.step(a)
        msgs += [Message("assistant", a)] + [Message.from_dict(m) for m in obs]
    return keys, msgs


@pytest.mark.parametrize(
    "env_id,actions",
    [
        ("agentrl/CreditChain-v0", ["1", "2", "1"]),
        (
            "agentrl/ToolUse-v0",
            ['<tool_call>{"name": "calculate", "arguments": {"expression": "2+3"}}</tool_call>', "thinking", "done"],
        ),
    ],
)
def test_two_envs_reaching_one_state_by_the_same_messages_share_keys(env_id: str, actions: list[str]) -> None:
    a, b = gym.make(env_id).unwrapped, gym.make(env_id).unwrapped
    b.reset(seed=123)  # another instance of the pool, used before
    ka, _ = _play(a, 7, actions)
    kb, _ = _play(b, 7, actions)
    assert ka == kb and len(set(ka)) == len(actions)
    kc, _ = _play(a, 7, actions[:1] + ["3", "1"])  # another reply at turn 1: turn 2's state differs
    assert kc[:2] == ka[:2] and kc[2] != ka[2]


def test_a_hidden_state_difference_changes_the_key() -> None:
    env = gym.make("agentrl/CreditChain-v0", turns=3).unwrapped
    _, msgs = _play(env, 7, ["1"])
    key = env_anchor_key(env, msgs)
    env.state["right"][0] = not env.state["right"][0]  # the same messages, another state
    assert env_anchor_key(env, msgs) != key
    env.state["right"][0] = not env.state["right"][0]
    assert env_anchor_key(env, msgs) == key


def test_shared_objects_count_by_type_only(notes_env_cls) -> None:
    # NotesEnv's state holds its own EchoModel (shared by snapshots: __deepcopy__ returns self), whose call count
    # differs between env instances; it is not episode state
    a, b = notes_env_cls(), notes_env_cls()
    b.sim.calls = 41
    assert _play(a, 3, ["hi", "DONE"])[0] == _play(b, 3, ["hi", "DONE"])[0]


def test_canonical_form_ignores_order_and_addresses() -> None:
    class Box:
        def __init__(self, items):
            self.items = items

    x = {"b": {3, 1, 2}, "a": [Box({"z": 1, "y": (1.5, None)})]}
    y = {"a": [Box({"y": (1.5, None), "z": 1})], "b": {2, 3, 1}}
    assert canonical(x) == canonical(y)
    assert canonical(x) != canonical({**y, "b": {1, 2}})
    assert canonical([1, 2]) != canonical((1, 2))
    assert canonical(Decimal("1.5")) != canonical(Decimal("2"))  # a value, though its __deepcopy__ returns self


class OpaqueEnv(MultiTurnEnv):
    """A state holding a bare object(): no attributes, a repr with its address, so no canonical form; the keys use
    the messages alone."""

    max_turns = 3

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        self.state = {"token": object(), "n": 0}
        return "Locked.", "Talk."

    def respond(self, text: str) -> EnvReply:
        self.state["n"] += 1
        return EnvReply([Message("user", "ok")])

    def compute_reward(self) -> RewardResult:
        return RewardResult(0.0, {})


def test_an_unhashable_snapshot_falls_back_to_the_messages(caplog) -> None:
    env = OpaqueEnv()
    with caplog.at_level(logging.WARNING, logger="agentrl.rollout.anchors"):
        keys, msgs = _play(env, 0, ["a", "b"])
    assert keys[0] == anchor_key(None, msgs[:2])
    assert keys[1] == anchor_key(None, msgs[:4]) != keys[0]
    assert sum("cannot be hashed" in r.message for r in caplog.records) <= 1  # once per env class and process


# ------------------------------------------------------------------ learning


@pytest.mark.slow
def test_gigpo_reward_rises_on_credit_chain(tmp_path: Path) -> None:
    """tests/test_learning.py's run, budget and assertions, for gigpo with its default params."""
    reward_rises_on_credit_chain("gigpo", tmp_path)
