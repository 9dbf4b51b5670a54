"""Losses against hand computations (DESIGN.md step 4)."""

from __future__ import annotations

import math

import pytest
import torch

from agentrl.algo.losses import (
    aggregate,
    entropy_from_logits,
    kl_estimate,
    policy_loss,
    token_logprobs,
    value_loss,
)


def close(a, b, tol: float = 1e-5) -> bool:
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol)


# ------------------------------------------------------------------ aggregate


def test_aggregate_modes_by_hand() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    mask = torch.tensor([[1.0, 1, 0], [1, 0, 0], [0, 0, 0]])  # row 3: no token -> left out of the seq means
    assert close(aggregate(x, mask, "token-mean"), (1 + 2 + 4) / 3)
    assert close(aggregate(x, mask, "seq-mean-token-mean"), (1.5 + 4) / 2)
    assert close(aggregate(x, mask, "seq-mean-token-sum"), (3 + 4) / 2)


def test_aggregate_empty_mask_and_off_mask_nan() -> None:
    x = torch.tensor([[1.0, float("nan")]], requires_grad=True)
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"):
        assert close(aggregate(x, torch.zeros(1, 2), mode), 0.0)
        out = aggregate(x, torch.tensor([[1.0, 0.0]]), mode)
        assert close(out, 1.0)
        (g,) = torch.autograd.grad(out, x)
        assert torch.isfinite(g).all()


def test_aggregate_bad_mode() -> None:
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "mean")


# ------------------------------------------------------------------ policy loss


def _pl_case():
    # ratios 1.5, 0.5, 1.1, 0.7 (old logprobs 0) with A = +1, +1, -1, -1, plus one padding token (logprob -inf).
    ratios = [1.5, 0.5, 1.1, 0.7]
    lp = torch.tensor([[math.log(r) for r in ratios] + [float("-inf")]], requires_grad=True)
    old = torch.zeros(1, 5)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1, 1, 0]])
    return ratios, lp, old, adv, mask


def test_policy_loss_by_hand() -> None:
    ratios, lp, old, adv, mask = _pl_case()
    loss, stats = policy_loss(lp, old, adv, mask)
    # per token: max(-1.5, -1.2) = -1.2 (clipped) | max(-0.5, -0.8) = -0.5 | max(1.1, 1.1) = 1.1 | max(0.7, 0.8) = 0.8 (clipped)
    assert close(loss, (-1.2 - 0.5 + 1.1 + 0.8) / 4)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    assert stats["ratio_mean"] == pytest.approx(sum(ratios) / 4)
    assert stats["ratio_max"] == pytest.approx(1.5)
    assert stats["approx_kl"] == pytest.approx(sum((r - 1) - math.log(r) for r in ratios) / 4, abs=1e-6)
    (g,) = torch.autograd.grad(loss, lp)
    # d/dlogπ of -A·ρ is -A·ρ; clipped tokens get 0; padding gets 0 (and no NaN from the -inf logprob).
    assert close(g, [[0.0, -0.5 / 4, 1.1 / 4, 0.0, 0.0]])


def test_policy_loss_gradient_sign() -> None:
    # Inside the trust region, gradient descent raises logπ of positive-advantage tokens and lowers negative ones.
    lp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    old = lp.detach() + torch.tensor([[0.05, -0.05, 0.0]])
    adv = torch.tensor([[2.0, -1.0, 0.0]])
    loss, _ = policy_loss(lp, old, adv, torch.ones(1, 3))
    (g,) = torch.autograd.grad(loss, lp)
    assert g[0, 0] < 0 and g[0, 1] > 0 and g[0, 2] == 0
    # One SGD step in that direction improves the surrogate objective.
    with torch.no_grad():
        lp2 = lp - 0.1 * g
    loss2, _ = policy_loss(lp2, old, adv, torch.ones(1, 3))
    assert loss2 < loss


def test_policy_loss_dual_clip() -> None:
    # A = -1: ratio 5 -> plain PPO loss max(5, 1.2) = 5, dual-clip caps it at c·|A| = 3 (no gradient);
    # ratio 2 stays 2 (below the cap). A = +1, ratio 5: max(-5, -1.2) = -1.2 either way.
    lp = torch.tensor([[math.log(5.0), math.log(2.0), math.log(5.0)]], requires_grad=True)
    old = torch.zeros(1, 3)
    adv = torch.tensor([[-1.0, -1.0, 1.0]])
    mask = torch.ones(1, 3)
    plain, _ = policy_loss(lp, old, adv, mask)
    assert close(plain, (5 + 2 - 1.2) / 3)
    loss, stats = policy_loss(lp, old, adv, mask, dual_clip=3.0)
    assert close(loss, (3 + 2 - 1.2) / 3)
    assert stats["dual_clip_fraction"] == pytest.approx(1 / 3)
    (g,) = torch.autograd.grad(loss, lp)
    assert close(g, [[0.0, 2.0 / 3, 0.0]])
    with pytest.raises(ValueError, match="dual_clip"):
        policy_loss(lp, old, adv, mask, dual_clip=0.9)


def test_policy_loss_asymmetric_clip_and_agg() -> None:
    lp = torch.tensor([[math.log(1.25), 0.0], [0.0, 0.0]])
    old = torch.zeros(2, 2)
    adv = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # clip_high 0.28: ratio 1.25 is inside, loss -1.25 (with 0.2 it would be -1.2).
    loss, stats = policy_loss(lp, old, adv, mask, clip_high=0.28)
    assert close(loss, (-1.25 - 1 - 2) / 3) and stats["clip_fraction"] == 0.0
    loss, stats = policy_loss(lp, old, adv, mask)
    assert close(loss, (-1.2 - 1 - 2) / 3) and stats["clip_fraction"] == pytest.approx(1 / 3)
    loss, _ = policy_loss(lp, old, adv, mask, agg="seq-mean-token-sum")
    assert close(loss, ((-1.2 - 1) + (-2)) / 2)
    with pytest.raises(ValueError):
        policy_loss(lp, old, adv, mask, agg="sum")


# ------------------------------------------------------------------ value loss


def test_value_loss_by_hand() -> None:
    values = torch.tensor([[1.0, 0.5, 7.0]], requires_grad=True)
    old = torch.tensor([[0.8, 0.5, 0.0]])
    returns = torch.tensor([[2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, stats = value_loss(values, old, returns, mask, clip=0.1)
    # token 0: max((1-2)², (0.9-2)²) = 1.21 -> 0.605 (clipped branch); token 1: 0.25 -> 0.125.
    assert close(loss, (0.605 + 0.125) / 2)
    assert stats["vf_clip_fraction"] == pytest.approx(0.5)
    (g,) = torch.autograd.grad(loss, values)
    assert close(g, [[0.0, 0.5 / 2, 0.0]])  # d/dV ½(V-R)² = V-R = 0.5; clipped token gets 0
    loss_nc, _ = value_loss(values, old, returns, mask, clip=None)
    assert close(loss_nc, 0.5 * (1.0 + 0.25) / 2)
    # explained variance: R = [2, 0], V = [1, 0.5] -> 1 - Var[1, -0.5] / Var[2, 0] = 1 - 0.5625 / 1
    assert stats["explained_variance"] == pytest.approx(1 - 0.5625)


# ------------------------------------------------------------------ KL, entropy, token logprobs


def test_kl_estimators_by_hand() -> None:
    lp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])  # log r = log 0.5
    assert close(kl_estimate(lp, ref, "k1"), [[math.log(2)]])
    assert close(kl_estimate(lp, ref, "k2"), [[0.5 * math.log(2) ** 2]])
    assert close(kl_estimate(lp, ref, "k3"), [[(0.5 - 1) + math.log(2)]])
    with pytest.raises(ValueError, match="k3"):
        kl_estimate(lp, ref, "k4")


def test_kl_estimators_exact_expectation() -> None:
    # Over the whole vocabulary, E_p[k1] = E_p[k3] = KL(p‖q) exactly (joschu.net/blog/kl-approx.html); k2, k3 >= 0.
    g = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(50, generator=g, dtype=torch.float64), -1)
    logq = torch.log_softmax(torch.randn(50, generator=g, dtype=torch.float64), -1)
    kl = float((logp.exp() * (logp - logq)).sum())
    for kind in ("k1", "k3"):
        est = float((logp.exp() * kl_estimate(logp, logq, kind)).sum())
        assert est == pytest.approx(kl, rel=1e-9)
    assert (kl_estimate(logp, logq, "k2") >= 0).all() and (kl_estimate(logp, logq, "k3") >= 0).all()


def test_entropy_from_logits() -> None:
    assert close(entropy_from_logits(torch.zeros(2, 3, 4)), torch.full((2, 3), math.log(4)))
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 7, generator=g)
    assert close(entropy_from_logits(logits), torch.distributions.Categorical(logits=logits).entropy())
    # Masked vocabulary (-inf) and huge logits: finite value and gradient.
    masked = torch.tensor([[0.0, float("-inf"), 0.0, float("-inf")], [1e4, 0.0, -1e4, 3.0]], requires_grad=True)
    h = entropy_from_logits(masked)
    assert close(h, [math.log(2), 0.0])
    (grad,) = torch.autograd.grad(h.sum(), masked)
    assert torch.isfinite(grad).all()


def test_token_logprobs() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 5, 11, generator=g)
    logits[0, 0, 3] = float("-inf")  # a masked, non-target entry
    ids = torch.randint(0, 11, (2, 5), generator=g)
    ids[0, 0] = 4
    ref = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1)
    assert close(token_logprobs(logits, ids), ref)
    assert close(token_logprobs(logits, ids, chunk_rows=3), ref)  # chunking changes nothing
    out_bf16 = token_logprobs(logits.bfloat16(), ids)
    assert out_bf16.dtype == torch.float32 and close(out_bf16, ref, tol=0.1)
    lg = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(token_logprobs(lg, ids).sum(), lg)
    assert torch.isfinite(grad).all()
    with pytest.raises(ValueError):
        token_logprobs(logits, ids[:, :4])


def test_constrained_token_logprobs_and_entropy_by_hand() -> None:
    # position 0: allowed {1, 3}; position 1: forced to {2}; position 2: the whole vocabulary (all -1)
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0], [0.3, -1.0, 0.5, 4.0], [0.0, 1.0, 2.0, 3.0]], requires_grad=True)
    ids = torch.tensor([3, 2, 0])
    allowed = torch.tensor([[1, 3], [2, -1], [-1, -1]])
    lp = token_logprobs(logits, ids, allowed=allowed)
    want0 = 2.0 - math.log(math.exp(1.0) + math.exp(2.0))  # renormalised over {1, 3}; token 2's logit 5 is masked
    want2 = 0.0 - math.log(sum(math.exp(v) for v in (0.0, 1.0, 2.0, 3.0)))
    assert close(lp, [want0, 0.0, want2])
    (grad,) = torch.autograd.grad(lp.sum(), logits)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[1], torch.zeros(4)), "a forced token (one allowed id) carries no gradient"
    assert grad[0, 0] == 0 and grad[0, 2] == 0, "tokens outside the allowed set get no gradient"
    assert close(token_logprobs(logits, ids, allowed=allowed, chunk_rows=1), lp)
    q = torch.softmax(torch.tensor([1.0, 2.0]), -1)
    h = entropy_from_logits(logits, allowed)
    assert close(h, [float(-(q * q.log()).sum()), 0.0, float(entropy_from_logits(logits[2:].detach()))])
    with pytest.raises(ValueError, match="allowed"):
        token_logprobs(logits, ids, allowed=allowed[:2])
