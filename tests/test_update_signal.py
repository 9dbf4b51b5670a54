"""Updates that carry signal at a step size you can see (issue 28, part 1):

* rows whose every agent token has advantage 0 (a group with no reward spread) skip the forward and backward,
  and the update is the same as with them (the others keep their weight in the whole minibatch);
* after the update, `policy/kl_step`, `policy/logprob_step` and `policy/greedy_flips` measure how far the policy
  moved on the batch: nonzero after a real step, hand-computed on small tensors."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from agentrl.core.types import TrainBatch
from agentrl.inference.models import load_model
from agentrl.train.config import PPOConfig
from agentrl.train.forward import forward
from agentrl.train.policy_shift import policy_shift
from agentrl.train.update import ppo_update

PAD = 2


@pytest.fixture(scope="module")
def model():
    m, _ = load_model("tiny-random")
    return m


def _batch(model, g: torch.Generator, zero_rows: list[int], B: int = 6, T: int = 14) -> TrainBatch:
    ids = torch.randint(3, 49152, (B, T), generator=g)
    attn = torch.ones(B, T, dtype=torch.long)
    amask = torch.zeros(B, T)
    amask[:, 6:] = 1.0  # a prompt of 6 tokens, then agent tokens
    with torch.no_grad():  # the sampler's log-probs: the same weights
        old = forward(model, None, ids, attn, 1.0, entropy=False, mask=amask).logprobs
    adv = torch.randn(B, 1, generator=g).expand(B, T).clone() * amask
    adv[zero_rows] = 0.0
    return TrainBatch(ids, attn, amask, old, adv)


def _update(model, batch: TrainBatch, fold_shift: bool = True, **cfg):
    m = copy.deepcopy(model)
    stats = ppo_update(
        m,
        None,
        torch.optim.SGD(m.parameters(), lr=0.5),
        None,
        batch,
        PPOConfig(**{"minibatch_size": 6, "micro_batch_size": 2, **cfg}),
        temperature=1.0,
        grad_clip=None,
        generator=torch.Generator().manual_seed(0),
        fold_shift=fold_shift,
    )
    return m, stats


def test_zero_advantage_rows_skip_the_backward_and_change_nothing(model) -> None:
    batch = _batch(model, torch.Generator().manual_seed(1), zero_rows=[0, 3, 4])
    skipped, s1 = _update(model, batch, skip_zero_advantage=True)
    full, s0 = _update(model, batch, skip_zero_advantage=False)
    assert s1["rows/skipped_zero_advantage"] == 3.0 and s0["rows/skipped_zero_advantage"] == 0.0
    moved = 0
    for (n, p1), p0, p in zip(skipped.named_parameters(), full.parameters(), model.parameters()):
        torch.testing.assert_close(p1, p0, atol=1e-6, rtol=1e-5, msg=lambda s: f"{n}: {s}")  # noqa: B023
        moved += int(not torch.equal(p1, p))
    assert moved > 0, "the update moved the weights"


def test_idle_rows_do_not_dilute_the_update_stats(model) -> None:
    """Rows left out for a zero advantage report no ratio, entropy or clip stats: the means are over the trained
    rows (the first step's ratio is 1, not the trained share of the minibatch), ratio_max is a maximum, and the loss
    stays the minibatch's own (the idle rows add 0 to it)."""
    batch = _batch(model, torch.Generator().manual_seed(1), zero_rows=[0, 3, 4])
    _, skipped = _update(model, batch, skip_zero_advantage=True)
    busy = [1, 2, 5]
    _, alone = _update(model, batch.select(busy), skip_zero_advantage=True)
    assert skipped["ratio_mean"] == pytest.approx(1.0, abs=1e-4), "before the step every ratio is 1"
    assert skipped["ratio_max"] == pytest.approx(1.0, abs=1e-4)
    assert skipped["approx_kl"] < 1e-6
    for k in ("entropy", "ratio_mean", "clip_fraction"):
        assert skipped[k] == pytest.approx(alone[k], rel=1e-4, abs=1e-6), k
    share = float(batch.action_mask[busy].sum() / batch.action_mask.sum())
    assert skipped["loss/policy"] == pytest.approx(alone["loss/policy"] * share, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("other_term", [{"entropy_coef": 0.01}, {"kl_coef": 0.1}])
def test_rows_another_loss_term_reads_are_kept(model, other_term) -> None:
    batch = _batch(model, torch.Generator().manual_seed(2), zero_rows=[1, 2])
    if "kl_coef" in other_term:
        batch.ref_logprobs = batch.old_logprobs + 0.1 * batch.action_mask
    _, stats = _update(model, batch, **other_term)
    assert stats["rows/skipped_zero_advantage"] == 0.0


def test_every_row_idle_takes_no_forward(model) -> None:
    batch = _batch(model, torch.Generator().manual_seed(3), zero_rows=list(range(6)))
    m, stats = _update(model, batch)
    assert stats["rows/skipped_zero_advantage"] == 6.0
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), model.parameters())), "no gradient, no move"


def test_the_step_size_is_measured_after_a_real_step(model) -> None:
    batch = _batch(model, torch.Generator().manual_seed(4), zero_rows=[])
    _, stats = _update(model, batch, shift_rows=6)
    assert stats["policy/kl_step"] > 0.0 and math.isfinite(stats["policy/kl_step"])
    assert stats["policy/logprob_step"] != 0.0
    assert 0.0 <= stats["policy/greedy_flips"] <= 1.0
    assert stats["approx_kl"] < 1e-6 < stats["policy/kl_step"], "approx_kl is taken before the step; kl_step after"
    _, off = _update(model, batch, shift_rows=0)
    assert "policy/kl_step" not in off


def test_policy_shift_by_hand() -> None:
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    batch = TrainBatch(
        torch.zeros(2, 3, dtype=torch.long),
        torch.ones(2, 3, dtype=torch.long),
        mask,
        torch.zeros(2, 3),
        torch.zeros(2, 3),
    )
    lp0 = torch.tensor([[0.0, -1.0, -2.0], [0.0, 0.0, -0.5]])
    lp1 = torch.tensor([[0.0, -0.5, -2.0], [0.0, 0.0, -1.5]])
    g0 = torch.tensor([[-1, 5, 6], [-1, -1, 7]])
    g1 = torch.tensor([[-1, 5, 9], [-1, -1, 7]])
    out = policy_shift((lp0, g0), (lp1, g1), batch, [0, 1])
    d = [0.5, 0.0, -1.0]  # log π_new − log π_before on the 3 agent tokens
    k3 = [math.exp(x) - 1 - x for x in d]  # (ρ − 1) − log ρ with ρ = π_new/π_before, tokens from π_before
    assert out["policy/kl_step"] == pytest.approx(sum(k3) / 3)
    assert out["policy/logprob_step"] == pytest.approx(sum(d) / 3)
    assert out["policy/greedy_flips"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("shared_prefix", [False, True])
def test_the_before_policy_of_one_step_is_read_off_the_updates_own_forward(model, monkeypatch, shared_prefix) -> None:
    """One optimizer step, every shift row trained: "before" comes from the update's own forward (its no-grad pass
    saved) and the policy/* metrics equal the separate pass's; an idle shift row or several steps keep the pass."""
    import agentrl.train.policy_shift as shift

    passes: list[int] = []
    real = shift.score_rows

    def counting(*a, **k):
        passes.append(len(a[2]))
        return real(*a, **k)

    monkeypatch.setattr(shift, "score_rows", counting)
    batch = _batch(model, torch.Generator().manual_seed(5), zero_rows=[])
    kw = {"shift_rows": 4, "shared_prefix": shared_prefix}
    m_fold, folded = _update(model, batch, **kw)
    assert passes == [4], "the after pass only"
    passes.clear()
    m_sep, separate = _update(model, batch, fold_shift=False, **kw)
    assert passes == [4, 4], "before and after"
    for p1, p0 in zip(m_fold.parameters(), m_sep.parameters()):
        assert torch.equal(p1, p0), "the fold changes no step"
    assert folded["policy/kl_step"] > 0.0
    for k in ("policy/kl_step", "policy/logprob_step", "policy/greedy_flips"):
        assert folded[k] == pytest.approx(separate[k], rel=1e-4, abs=1e-9), k
    passes.clear()
    _update(model, _batch(model, torch.Generator().manual_seed(5), zero_rows=[2]), shift_rows=6)
    assert passes == [6, 6], "an idle shift row is in no forward: its before needs the pass"
    passes.clear()
    _update(model, batch, shift_rows=4, epochs=2)
    assert passes == [4, 4], "two steps: the second forward is not the policy before the update"


def test_a_skipped_step_leaves_no_shift_row_without_its_before(model) -> None:
    """A non-finite micro-batch ends the minibatch before the later rows' forward, and the step is skipped: those
    shift rows' "before" comes from a pass of its own, so the metrics say what the unfolded update says (no move)."""
    batch = _batch(model, torch.Generator().manual_seed(6), zero_rows=[])
    batch.advantages = torch.where(batch.action_mask > 0, torch.full_like(batch.advantages, float("nan")), 0.0)
    _, folded = _update(model, batch, shift_rows=6)
    _, separate = _update(model, batch, fold_shift=False, shift_rows=6)
    assert folded["skipped_steps"] == 1.0 and folded["optimizer_steps"] == 0.0
    for k in ("policy/kl_step", "policy/logprob_step", "policy/greedy_flips"):
        assert folded[k] == separate[k] == 0.0, k
