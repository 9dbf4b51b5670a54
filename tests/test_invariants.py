"""Runtime invariants (train/invariants.py) fail loudly: a trained sequence that is not what was sampled, log-probs
that drifted from the rollout's before any update, and a weight sync that did not land in the rollout engine."""

from __future__ import annotations

import copy
import warnings

import gymnasium as gym
import pytest
import torch

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.registry import load_env_plugins
from agentrl.core.types import collate
from agentrl.inference.base import (
    SamplingParams,
    digest_mismatch,
    merge_shard_digests,
    weights_digest,
)
from agentrl.inference.hf import HFPolicy
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.forward import forward
from agentrl.train.invariants import (
    InvariantError,
    check_logprob_drift,
    check_trained_equals_sampled,
    logprob_drift,
    verify_weights,
)

load_env_plugins()


@pytest.fixture(scope="module")
def rollout(tiny):
    model, tok = tiny
    r = RolloutRunner(
        lambda: gym.make("agentrl/CreditChain-v0", turns=3),
        HFPolicy(model, tok),
        ChatFormatter(tok),
        SamplingParams(temperature=0.7, max_new_tokens=6),
    )
    return r.collect([EpisodeSpec(seed=i, group_id=i) for i in range(3)])


def test_trained_equals_sampled_on_real_batches(rollout) -> None:
    ids, attn, amask, _ = collate(rollout, pad_id=0)
    for i, ep in enumerate(rollout):
        check_trained_equals_sampled(ep)
        check_trained_equals_sampled(ep, ids[i], amask[i])  # the padded batch row


def test_trained_token_mismatch_names_uid_and_position(rollout) -> None:
    ep = rollout[0]
    ids, _, amask, _ = collate(rollout, pad_id=0)
    pos = ep.turns[1].start + 1
    bad = ids[0].clone()
    bad[pos] += 1
    with pytest.raises(InvariantError, match=f"episode {ep.uid}: .* at position {pos} "):
        check_trained_equals_sampled(ep, bad, amask[0])
    mask = amask[0].clone()
    mask[ep.turns[0].start - 1] = 1.0  # the assistant header is not a sampled token
    with pytest.raises(InvariantError, match=f"action mask differs .* position {ep.turns[0].start - 1}"):
        check_trained_equals_sampled(ep, ids[0], mask)
    short = ids[0][: len(ep.input_ids) - 1]
    with pytest.raises(InvariantError, match="trained length"):
        check_trained_equals_sampled(ep, short, amask[0])
    broken = copy.deepcopy(ep)
    broken.turns[1].start += 1
    with pytest.raises(InvariantError, match="turn 1 starts at"):
        check_trained_equals_sampled(broken)
    broken = copy.deepcopy(ep)
    broken.turns[0].logprobs.pop()
    with pytest.raises(InvariantError, match="logprobs"):
        check_trained_equals_sampled(broken)


def test_logprob_drift_on_the_sampling_weights_is_tiny(tiny, rollout) -> None:
    model, _ = tiny
    ids, attn, amask, old = collate(rollout, pad_id=0)
    with torch.no_grad():
        new = forward(model, None, ids, attn, 0.7, entropy=False, mask=amask).logprobs
    m = check_logprob_drift(new, old, amask, warn_at=1e-3, error_at=1e-2)
    assert m["logprob/max_abs_diff"] < 1e-3 and m["logprob/mean_abs_diff"] <= m["logprob/max_abs_diff"]
    with pytest.raises(InvariantError, match="logprob_drift_error_at"):
        check_logprob_drift(new, old + amask * 0.3, amask, error_at=0.2)  # e.g. scored at the wrong temperature


def test_logprob_drift_thresholds() -> None:
    new = torch.tensor([[0.0, -1.0, -2.0, -9.0]])
    old = torch.tensor([[5.0, -1.5, -2.0, -3.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    assert logprob_drift(new, old, mask) == (0.5, 0.25)
    assert logprob_drift(new, old, torch.zeros_like(mask)) == (0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_logprob_drift(new, old, mask, warn_at=1.0) == {
            "logprob/max_abs_diff": 0.5,
            "logprob/mean_abs_diff": 0.25,
        }
    with pytest.warns(RuntimeWarning, match="up to 0.5"):
        check_logprob_drift(new, old, mask, warn_at=0.4, error_at=0.6)
    with pytest.raises(InvariantError):
        check_logprob_drift(new, old, mask, warn_at=None, error_at=0.4)


def _perturbed(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}


def test_weight_sync_verified_and_broken_sync_caught(tiny, monkeypatch) -> None:
    model, tok = tiny
    trainer = copy.deepcopy(model)  # the policy holds its own copy, like a rollout engine
    policy = HFPolicy(copy.deepcopy(model), tok)
    with torch.no_grad():
        for k, v in _perturbed(trainer, 0).items():
            trainer.state_dict()[k].copy_(v)
    sd = trainer.state_dict()
    with pytest.raises(
        InvariantError, match=r"rollout engine weights differ from the trainer's after sync \(digest .* != "
    ):
        verify_weights(policy, sd)  # not synced yet
    policy.update_weights(sd)
    assert verify_weights(policy, sd)

    real = HFPolicy.update_weights
    skip = next(k for k in sd if k.endswith("mlp.down_proj.weight"))

    def skips_one(self, state_dict):
        real(self, {k: (self.model.state_dict()[k] if k == skip else v) for k, v in state_dict.items()})

    with torch.no_grad():
        for k, v in _perturbed(trainer, 1).items():
            trainer.state_dict()[k].copy_(v)
    monkeypatch.setattr(HFPolicy, "update_weights", skips_one)
    policy.update_weights(sd)
    with pytest.raises(InvariantError, match=f"first differing tensor: {skip}"):
        verify_weights(policy, sd)
    monkeypatch.setattr(HFPolicy, "update_weights", lambda self, s: real(self, _perturbed(self.model, 2)))
    policy.update_weights(sd)
    with pytest.raises(InvariantError):
        verify_weights(policy, sd)
    shared = HFPolicy(trainer, tok)  # one process: the policy samples with the trainer's very module
    assert verify_weights(shared, trainer.state_dict())
    assert verify_weights(object(), sd) is None  # a backend without weights_digest cannot be verified


def test_digest_matches_fused_padded_and_sharded_layouts() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(8, 4, generator=g) for _ in range(3))
    emb, norm = torch.randn(10, 4, generator=g), torch.randn(4, generator=g)
    hf = {
        "model.layers.0.self_attn.q_proj.weight": q,
        "model.layers.0.self_attn.k_proj.weight": k,
        "model.layers.0.self_attn.v_proj.weight": v,
        "model.embed_tokens.weight": emb,
        "lm_head.weight": emb,
        "model.norm.weight": norm,
    }
    qkv = torch.cat([q, k, v])
    engine = {
        "model.layers.0.self_attn.qkv_proj.weight": qkv,
        "model.embed_tokens.weight": torch.cat([emb, torch.zeros(6, 4)]),
        "model.norm.weight": norm,
        "model.layers.0.mlp.down_proj.weight": torch.empty(0),
    }  # packed away
    d_hf, d_engine = weights_digest(hf.items()), weights_digest(engine.items())
    assert "lm_head.weight" not in d_hf, "tied weights count once"
    assert digest_mismatch(d_engine, d_hf) is None
    shards = [
        weights_digest({"model.layers.0.self_attn.qkv_proj.weight": part, "model.norm.weight": norm}.items())
        for part in qkv.chunk(2)
    ]
    merged = merge_shard_digests(shards)
    assert digest_mismatch(merged, d_hf) is None
    stale = dict(engine, **{"model.norm.weight": norm + 1e-6})
    assert digest_mismatch(weights_digest(stale.items()), d_hf).startswith("model.norm.weight")
