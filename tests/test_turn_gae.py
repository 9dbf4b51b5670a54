"""Turn-PPO's turn-level GAE (`ppo_turn`, arXiv:2512.17008) against hand computations, and its value mask: the
value head is trained only at each turn's first agent token."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from agentrl.algo.advantages import REGISTRY, AdvantageInputs
from agentrl.algo.advantages.gae import gae
from agentrl.algo.advantages.params import TurnGAEParams
from agentrl.algo.advantages.turn_gae import turn_gae
from agentrl.core.types import TrainBatch
from agentrl.inference.models import load_model
from agentrl.train import trainer as trainer_mod
from agentrl.train.config import ConfigError, PPOConfig, load_config
from agentrl.train.forward import ValueHead, forward
from agentrl.train.trainer import Trainer
from agentrl.train.update import ppo_update

# Episode 0, three turns, T = 12: prompt 2 | agent 3 | env 2 | agent 2 | env 1 | agent 2
#   index:  0 1 | 2 3 4 | 5 6 | 7 8 | 9 | 10 11
# Episode 1, one turn then padding: prompt 1 | agent 3 | pad 8
MASKS = [[0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1], [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]]
STARTS = [[2, 7, 10], [1]]


def _inputs(rewards=(1.0, 0.5)) -> AdvantageInputs:
    values = torch.full((2, 12), 9.0)  # read only at turn starts: anything else must not matter
    values[0, [2, 7, 10]] = torch.tensor([0.5, 0.25, 0.75])
    values[1, 1] = 0.2
    return AdvantageInputs(
        rewards=torch.tensor(rewards),
        action_mask=torch.tensor(MASKS, dtype=torch.float32),
        group_ids=torch.tensor([0, 1]),
        turn_starts=[list(s) for s in STARTS],
        values=values,
    )


def _per_turn(a0: list[float], a1: float) -> list[list[float]]:
    """Turn advantages spread on the agent tokens of each turn."""
    e0 = [0, 0, a0[0], a0[0], a0[0], 0, 0, a0[1], a0[1], 0, a0[2], a0[2]]
    e1 = [0, a1, a1, a1] + [0] * 8
    return [e0, e1]


def _close(t: torch.Tensor, expected: list) -> None:
    assert torch.allclose(t.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6), (t.tolist(), expected)


def test_by_hand_two_episodes() -> None:
    # γ = λ = 0.5 (γλ = 0.25). Episode 0: V = 0.5, 0.25, 0.75, R = 1.
    #   δ2 = 1 − 0.75 = 0.25;  δ1 = 0.5·0.75 − 0.25 = 0.125;  δ0 = 0.5·0.25 − 0.5 = −0.375
    #   A2 = 0.25;  A1 = 0.125 + 0.25·0.25 = 0.1875;  A0 = −0.375 + 0.25·0.1875 = −0.328125
    #   returns at the starts: 0.5 − 0.328125 = 0.171875, 0.25 + 0.1875 = 0.4375, 0.75 + 0.25 = 1.0
    # Episode 1: V = 0.2, R = 0.5: A0 = 0.3, return 0.5.
    out = turn_gae(_inputs(), gamma=0.5, lam=0.5)
    _close(out.advantages, _per_turn([-0.328125, 0.1875, 0.25], 0.3))
    ret = torch.zeros(2, 12)
    ret[0, [2, 7, 10]] = torch.tensor([0.171875, 0.4375, 1.0])
    ret[1, 1] = 0.5
    _close(out.returns, ret.tolist())
    vm = torch.zeros(2, 12)
    vm[0, [2, 7, 10]] = 1.0
    vm[1, 1] = 1.0
    assert torch.equal(out.value_mask, vm)


def test_gamma_one_lambda_one_is_return_minus_turn_value() -> None:
    # GAE(γ=1, λ=1) telescopes: A_k = R − V_k, and every turn's value target is R (Monte Carlo)
    out = turn_gae(_inputs(), gamma=1.0, lam=1.0)
    _close(out.advantages, _per_turn([0.5, 0.75, 0.25], 0.3))
    assert out.returns[0, [2, 7, 10]].tolist() == [1.0, 1.0, 1.0] and float(out.returns[1, 1]) == 0.5


def test_lambda_zero_is_one_step_td_over_turns() -> None:
    # λ = 0: A_k = δ_k = γ V_{k+1} − V_k (+ R on the last turn); γ = 1: −0.25, 0.5, 0.25
    out = turn_gae(_inputs(), gamma=1.0, lam=0.0)
    _close(out.advantages, _per_turn([-0.25, 0.5, 0.25], 0.3))
    # γ = 0: only the last turn sees the reward, the others get −V_k
    out = turn_gae(_inputs(), gamma=0.0, lam=1.0)
    _close(out.advantages, _per_turn([-0.5, -0.25, 0.25], 0.3))


def test_one_token_turns_equal_token_level_gae() -> None:
    # when every turn is one agent token, turns and agent tokens are the same steps: ppo_gae's GAE exactly
    mask = [[0, 1, 0, 1, 0, 0, 1], [0, 0, 1, 0, 1, 0, 0]]
    g = torch.Generator().manual_seed(0)
    inp = AdvantageInputs(
        rewards=torch.tensor([1.0, -0.5]),
        action_mask=torch.tensor(mask, dtype=torch.float32),
        group_ids=torch.tensor([0, 0]),
        turn_starts=[[1, 3, 6], [2, 4]],
        values=torch.randn(2, 7, generator=g),
    )
    a, b = turn_gae(inp, gamma=0.9, lam=0.7), gae(inp, gamma=0.9, lam=0.7)
    assert torch.allclose(a.advantages, b.advantages, atol=1e-6) and torch.allclose(a.returns, b.returns, atol=1e-6)


def test_episode_without_turns_gets_nothing_and_bad_inputs_raise() -> None:
    inp = _inputs()
    inp.action_mask[1] = 0.0
    inp.turn_starts[1] = []
    out = turn_gae(inp)
    assert (out.advantages[1] == 0).all() and (out.returns[1] == 0).all() and (out.value_mask[1] == 0).all()
    with pytest.raises(ValueError, match="needs values"):
        turn_gae(AdvantageInputs(**{**_inputs().__dict__, "values": None}))
    with pytest.raises(ValueError, match="must be an agent token"):
        turn_gae(AdvantageInputs(**{**_inputs().__dict__, "turn_starts": [[2, 6, 10], [1]]}))
    with pytest.raises(ValueError, match="ascending"):
        turn_gae(AdvantageInputs(**{**_inputs().__dict__, "turn_starts": [[7, 2, 10], [1]]}))


# ------------------------------------------------------------------ the value loss only at turn starts


@pytest.fixture(scope="module")
def model():
    m, _ = load_model("tiny-random")
    return m


def _value_batch(model, value_mask: torch.Tensor | None, returns_off: float = 0.0) -> TrainBatch:
    g = torch.Generator().manual_seed(5)
    B, T = 4, 10
    ids = torch.randint(3, 1000, (B, T), generator=g)
    attn = torch.ones(B, T, dtype=torch.long)
    amask = torch.zeros(B, T)
    amask[:, 3:] = 1.0
    with torch.no_grad():
        old = forward(model, None, ids, attn, 1.0, entropy=False, mask=amask).logprobs
    returns = torch.full((B, T), returns_off) * amask
    returns[:, 3] = 1.0  # the turn-start targets
    return TrainBatch(
        ids, attn, amask, old, torch.zeros(B, T), returns=returns, old_values=torch.zeros(B, T), value_mask=value_mask
    )


def _value_update(model, batch: TrainBatch) -> tuple[ValueHead, dict[str, float]]:
    m = copy.deepcopy(model)
    head = ValueHead(m.config.hidden_size)
    opt = torch.optim.SGD(list(m.parameters()) + list(head.parameters()), lr=0.1)
    stats = ppo_update(
        m,
        head,
        opt,
        None,
        batch,
        PPOConfig(minibatch_size=4, micro_batch_size=2, vf_clip=None),
        temperature=1.0,
        grad_clip=None,
        generator=torch.Generator().manual_seed(0),
    )
    return head, stats


def test_value_mask_zero_gives_the_value_head_no_gradient(model) -> None:
    # advantages 0 (no policy term), entropy and KL off: the value loss is the only term, and its mask is empty
    head, _ = _value_update(model, _value_batch(model, torch.zeros(4, 10)))
    assert all((p == 0).all() for p in head.parameters()), "no value-mask position, no value gradient"
    head, _ = _value_update(model, _value_batch(model, None))  # no value_mask: the action mask, as before
    assert any((p != 0).any() for p in head.parameters())


def test_value_head_trains_only_from_value_mask_positions(model) -> None:
    vm = torch.zeros(4, 10)
    vm[:, 3] = 1.0
    a, sa = _value_update(model, _value_batch(model, vm, returns_off=0.0))
    b, sb = _value_update(model, _value_batch(model, vm, returns_off=-7.0))  # targets off the mask changed
    assert any((p != 0).any() for p in a.parameters())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb), "targets off the value mask must not reach the value head"
    assert sa["returns_mean"] == pytest.approx(1.0) and sb["returns_mean"] == pytest.approx(1.0)
    _, sc = _value_update(model, _value_batch(model, None, returns_off=-7.0))
    assert sc["returns_mean"] == pytest.approx((1.0 - 7.0 * 6) / 7)  # without the mask: every agent token


def test_train_batch_select_and_to_carry_value_mask() -> None:
    vm = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z = torch.zeros(3, 2)
    b = TrainBatch(torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 2, dtype=torch.long), z, z, z, value_mask=vm)
    assert torch.equal(b.select([2, 0]).value_mask, vm[[2, 0]])
    assert torch.equal(b.to("cpu").value_mask, vm)
    assert TrainBatch(b.input_ids, b.attention_mask, z, z, z).select([1]).value_mask is None


# ------------------------------------------------------------------ registry, config, trainer


def test_registry_spec_and_params() -> None:
    spec = REGISTRY["ppo_turn"]
    assert spec.fn is turn_gae and spec.params is TurnGAEParams and spec.needs_value_head
    assert spec.default_whiten == "center_scale" and not spec.needs_branches and spec.min_group_size == 1
    assert TurnGAEParams().gamma == 0.99 and TurnGAEParams().lam == 0.9


def test_config_loads_ppo_turn_and_its_params() -> None:
    cfg = load_config(None, ["algorithm.name=ppo_turn", "algorithm.params.lam=0.5"])
    assert cfg.algorithm.params == {"gamma": 0.99, "lam": 0.5}
    assert cfg.algorithm.estimator_params().lam == 0.5
    for bad in ("algorithm.params.lam=1.5", "algorithm.params.gamma=-0.1", "algorithm.params.mode=x"):
        with pytest.raises(ConfigError):
            load_config(None, ["algorithm.name=ppo_turn", bad])


def test_the_trainer_hands_the_value_mask_to_the_update(tmp_path: Path, monkeypatch) -> None:
    seen: list[TrainBatch] = []

    def spy(model, value_head, optimizer, scheduler, batch, *a, **kw):
        seen.append(batch)
        return ppo_update(model, value_head, optimizer, scheduler, batch, *a, **kw)

    monkeypatch.setattr(trainer_mod, "ppo_update", spy)
    cfg = load_config(
        None,
        [
            "model=tiny-random",
            "env.kwargs.turns=3",
            "rollout.groups=2",
            "rollout.group_size=2",
            "rollout.constrained=true",
            "rollout.max_new_tokens=4",
            "train.updates=1",
            "ppo.minibatch_size=4",
            "ppo.micro_batch_size=2",
            "train.log_episodes=0",
            "algorithm.name=ppo_turn",
            f"train.run_dir={tmp_path}",
        ],
    )
    tr = Trainer(cfg, console=False)
    assert tr.value_head is not None
    tr.run()
    (batch,) = seen
    assert batch.value_mask is not None
    assert batch.value_mask.sum(-1).tolist() == [3.0] * 4, "one value target per turn"
    assert ((batch.value_mask > 0) <= (batch.action_mask > 0)).all()
    assert (batch.returns[batch.value_mask == 0] == 0).all()
