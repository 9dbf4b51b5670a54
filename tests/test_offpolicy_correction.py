"""The off-policy correction (issue 34 part 4): π_old recomputed by the trainer, each token's PPO loss weighed by
ρ = π_old / π_sampler truncated (tis) or masked (mis_token, mis_seq); hand computations, the config's `auto`, and
the no-op it must be when the sampler is the trainer's own forward at the same weights."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from run_helpers import TINY_GRPO

from agentrl.algo.losses import importance_weights, policy_loss
from agentrl.train.config import ConfigError, load_config, offpolicy_mode
from agentrl.train.trainer import Trainer

LOG = math.log


def _rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # row 0: ρ = 1.5, 3, 0.25 and a padding position; row 1: ρ = 4, 4 (geometric mean 4: out of [1/2, 2])
    old = torch.tensor([[LOG(1.5), LOG(3.0), LOG(0.25), 9.0], [LOG(4.0), LOG(4.0), 0.0, 0.0]])
    sampler = torch.zeros(2, 4)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    return old, sampler, mask


def test_tis_truncates_at_the_cap() -> None:
    w, st = importance_weights(*_rows(), mode="tis", cap=2.0)
    assert torch.allclose(w, torch.tensor([[1.5, 2.0, 0.25, 0.0], [2.0, 2.0, 0.0, 0.0]]))
    assert st["is/frac_truncated"] == pytest.approx(3 / 5) and st["is/frac_masked"] == 0.0
    rho = torch.tensor([1.5, 3.0, 0.25, 4.0, 4.0], dtype=torch.float64)
    assert st["logprob/mismatch_kl"] == pytest.approx(float((rho - 1 - rho.log()).mean()))
    assert st["is/ratio_p50"] == pytest.approx(3.0)


def test_mis_token_drops_tokens_outside_the_band() -> None:
    w, st = importance_weights(*_rows(), mode="mis_token", cap=2.0)
    assert torch.allclose(w, torch.tensor([[1.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert st["is/frac_masked"] == pytest.approx(4 / 5)


def test_mis_seq_drops_whole_episodes_on_their_geometric_mean() -> None:
    w, st = importance_weights(*_rows(), mode="mis_seq", cap=2.0)
    # row 0's geometric mean (1.5·3·0.25)^(1/3) = 1.04 is inside [1/2, 2]: its tokens keep ρ, even ρ = 3
    assert torch.allclose(w, torch.tensor([[1.5, 3.0, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert st["is/frac_masked"] == pytest.approx(2 / 5)


def test_bad_mode_and_cap_are_refused() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        importance_weights(*_rows(), mode="is")
    with pytest.raises(ValueError, match="cap must be > 1"):
        importance_weights(*_rows(), cap=1.0)


def test_policy_loss_weighs_each_token() -> None:
    # ratio 1 (new = old): ℓ_t = −A_t; weights 0.5 and 2 on advantages 1 and −1: token-mean of (−0.5, 2) = 0.75
    lp = torch.zeros(1, 2, requires_grad=True)
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    loss, _ = policy_loss(lp, torch.zeros(1, 2), adv, mask, is_weights=torch.tensor([[0.5, 2.0]]))
    assert float(loss.detach()) == pytest.approx(0.75)
    loss.backward()  # d/dlp of −A·w·exp(lp − old) at lp = old: −A·w, halved by the token mean
    assert torch.allclose(lp.grad, torch.tensor([[-0.25, 1.0]]))


BASE = [
    *TINY_GRPO,
    "ppo.minibatch_size=4",
    "ppo.micro_batch_size=4",
    "ppo.epochs=2",
    "optim.lr=1e-3",
    "train.updates=2",
    "train.eval_every=0",
]


def test_auto_is_on_only_where_the_sampler_is_not_the_trainers_forward() -> None:
    assert offpolicy_mode(load_config(None, BASE)) == "none"
    assert offpolicy_mode(load_config(None, [*BASE, "rollout.backend=vllm"])) == "tis"
    assert offpolicy_mode(load_config(None, [*BASE, "rollout.max_staleness=1"])) == "tis"
    assert offpolicy_mode(load_config(None, [*BASE, "rollout.max_staleness=1", "ppo.offpolicy_correction=none"])) == (
        "none"
    )
    with pytest.raises(ConfigError, match="fsdp2"):
        load_config(None, [*BASE, "ppo.offpolicy_correction=tis", "train.parallel=fsdp2"])
    with pytest.raises(ConfigError, match="is_cap"):
        load_config(None, [*BASE, "ppo.is_cap=0.5"])


def _train(tmp_path: Path, name: str, extra: list[str]) -> tuple[Trainer, list[dict]]:
    cfg = load_config(None, [*BASE, *extra, f"train.run_dir={tmp_path / name}"])
    t = Trainer(cfg, console=False)
    rows = []
    for _ in range(cfg.train.updates):
        rows.append(t.train_step())
        t.step += 1
    return t, rows


@pytest.mark.parametrize("mode", ["tis", "mis_token", "mis_seq"])
def test_the_correction_is_a_no_op_with_the_samplers_own_weights(tmp_path: Path, mode: str) -> None:
    """Same sampler, same weights: ρ = 1 to rounding, and the run ends with the weights of the uncorrected one."""
    plain, _ = _train(tmp_path, "plain", [])
    corrected, rows = _train(tmp_path, mode, [f"ppo.offpolicy_correction={mode}"])
    for r in rows:
        assert abs(r["is/ratio_p05"] - 1) < 1e-5 and abs(r["is/ratio_p95"] - 1) < 1e-5, r
        assert r["logprob/mismatch_kl"] < 1e-9 and r["is/frac_masked"] == 0.0
        assert r["logprob/max_abs_diff"] < 1e-5  # the sampler checked against the recompute
    for (name, a), b in zip(plain.model.named_parameters(), corrected.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name
    start = Trainer(load_config(None, [*BASE, f"train.run_dir={tmp_path / 'fresh'}"]), console=False).model
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), plain.model.parameters())), (
        "the updates moved the weights (the comparison is not between two untouched models)"
    )


def test_bfloat16_sampler_copy_is_synced_and_corrected(tmp_path: Path) -> None:
    """rollout.dtype=bfloat16: the sampler decodes with a bfloat16 copy of the float32 weights, the copy equals the
    trainer's weights cast after every update (the digest check passes), and auto resolves to tis with the gap
    between the two logged (nonzero: the copy is another precision) and every token weighed."""
    cfg = load_config(None, [*BASE, "rollout.dtype=bfloat16", "train.verify_weight_sync=true"])
    assert offpolicy_mode(cfg) == "tis"
    t, rows = _train(tmp_path, "bf16", ["rollout.dtype=bfloat16", "train.verify_weight_sync=true"])
    sampler = t.policy.model
    assert sampler is not t.model
    assert {p.dtype for p in sampler.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in t.model.parameters()} == {torch.float32}
    for (name, a), b in zip(t.model.state_dict().items(), sampler.state_dict().values()):
        assert torch.equal(a.to(torch.bfloat16), b), name  # synced after the last update
    for r in rows:
        assert r["logprob/mismatch_kl"] > 0 and r["is/weight_mean"] > 0, r
        assert r["optimizer_steps"] > 0
    start = Trainer(load_config(None, [*BASE, f"train.run_dir={tmp_path / 'fresh'}"]), console=False).model
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), t.model.parameters()))


def test_rollout_dtype_is_refused_where_it_cannot_apply() -> None:
    with pytest.raises(ConfigError, match="rollout.backend=hf"):
        load_config(None, [*BASE, "rollout.dtype=bfloat16", "rollout.backend=vllm"])
    with pytest.raises(ConfigError, match="fsdp2"):
        load_config(None, [*BASE, "rollout.dtype=bfloat16", "train.parallel=fsdp2"])
    with pytest.raises(ConfigError, match="rollout.dtype"):
        load_config(None, [*BASE, "rollout.dtype=float16"])
    # the trainer's weights already bfloat16: no copy, nothing to correct
    assert offpolicy_mode(load_config(None, [*BASE, "rollout.dtype=bfloat16", "train.dtype=bfloat16"])) == "none"


@pytest.mark.parametrize("mode", ["tis", "mis_token", "mis_seq"])
def test_one_step_takes_pi_old_from_its_own_forward(tmp_path: Path, mode: str) -> None:
    """With one optimizer step per update, ppo_update(offpolicy=mode) on the sampler's log-probs takes the same step
    as the batch corrected by correct_batch's pass of its own (hand-made sampler log-probs: ρ spread over the cap)."""
    from agentrl.train.offpolicy import correct_batch
    from agentrl.train.update import ppo_update

    cfg = load_config(None, [*BASE, "ppo.epochs=1", "ppo.minibatch_size=8", f"train.run_dir={tmp_path / 'r'}"])
    t = Trainer(cfg, console=False)
    c = t._collect(0, 0)
    batch = t._batch(c.episodes, c.returns, c.extra)
    g = torch.Generator().manual_seed(1)
    on = batch.action_mask > 0
    sampler = torch.where(on, batch.old_logprobs + 0.8 * torch.randn(batch.old_logprobs.shape, generator=g), 0.0)
    batch = dataclasses.replace(batch, old_logprobs=sampler)
    start = {k: v.clone() for k, v in t.model.state_dict().items()}
    opt_state = t.optimizer.state_dict()

    def step(b, **kw):
        t.model.load_state_dict(start)
        t.optimizer.load_state_dict(opt_state)
        out = ppo_update(
            t.model, None, t.optimizer, None, b, cfg.ppo, temperature=1.0, grad_clip=1.0,
            generator=torch.Generator().manual_seed(0), check_drift=False, **kw,
        )  # fmt: skip
        return out, {k: v.clone() for k, v in t.model.state_dict().items()}

    corrected, off = correct_batch(t.model, batch, cfg.ppo, mode=mode, temperature=1.0, same_weights=False)
    ref_stats, ref = step(corrected)
    fold_stats, fold = step(batch, offpolicy=mode)
    assert ref_stats["optimizer_steps"] == fold_stats["optimizer_steps"] == 1
    moved = False
    for k in ref:
        torch.testing.assert_close(fold[k], ref[k], rtol=1e-4, atol=1e-6)
        moved |= not torch.equal(ref[k], start[k])
    assert moved
    # micro-batches weighted by their share of the tokens: the batch's mean weight and mismatch
    assert fold_stats["is/weight_mean"] == pytest.approx(off["is/weight_mean"], rel=1e-4)
    assert fold_stats["logprob/mismatch_kl"] == pytest.approx(off["logprob/mismatch_kl"], rel=1e-3)
    assert off["is/weight_mean"] != pytest.approx(1.0, abs=1e-3)  # the weights did something
    with pytest.raises(ValueError, match="one optimizer step"):
        two = cfg.ppo.model_copy(update={"epochs": 2})
        ppo_update(
            t.model, None, t.optimizer, None, batch, two, temperature=1.0, grad_clip=1.0,
            generator=torch.Generator(), offpolicy=mode,
        )  # fmt: skip
