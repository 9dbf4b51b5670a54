"""The policy's KV store within an update (issue 28, a faster RL step): an episode's next turn encodes only the
tokens added since its last one. The episodes are what they are without it (greedy: token for token), far fewer
prompt tokens are encoded, and every weight update empties the store (its caches belong to the old weights)."""

from __future__ import annotations

import gymnasium as gym
import torch

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.registry import load_env_plugins
from agentrl.inference import make_policy_backend
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.inference.kv_store import KVStore
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.config import load_config

load_env_plugins()


def _collect(tiny, store: KVStore | None, temperature: float = 0.0):
    model, tok = tiny
    policy = HFPolicy(model, tok, store=store)
    r = RolloutRunner(
        lambda: gym.make("agentrl/CreditChain-v0", turns=4),
        policy,
        ChatFormatter(tok),
        SamplingParams(temperature=temperature, max_new_tokens=5),
        seed=0,
    )
    eps = r.collect([EpisodeSpec(seed=g, group_id=g) for g in range(2) for _ in range(3)])
    return eps, policy


def test_greedy_episodes_are_the_same_with_fewer_prompt_tokens(tiny) -> None:
    plain, p0 = _collect(tiny, None)
    stored, p1 = _collect(tiny, KVStore(16))
    assert [e.input_ids for e in stored] == [e.input_ids for e in plain]
    for a, b in zip(stored, plain):
        for ta, tb in zip(a.turns, b.turns):
            torch.testing.assert_close(torch.tensor(ta.logprobs), torch.tensor(tb.logprobs), atol=1e-4, rtol=0)
    assert p1.prefill_tokens < p0.prefill_tokens / 2, (p1.prefill_tokens, p0.prefill_tokens)


def test_a_weight_update_empties_the_store(tiny) -> None:
    _, policy = _collect(tiny, KVStore(16), temperature=1.0)
    assert len(policy.store._entries) > 0
    policy.update_weights(policy.model.state_dict())  # the trainer's in-place sync: the same tensors
    assert len(policy.store._entries) == 0


def test_the_trainer_policy_gets_one_entry_per_episode_by_default(tiny) -> None:
    model, tok = tiny
    cfg = load_config(None, ["rollout.groups=3", "rollout.group_size=4"])
    assert make_policy_backend(cfg.rollout, model, tok).store.max_entries == 12
    off = load_config(None, ["rollout.kv_store=0"])
    assert make_policy_backend(off.rollout, model, tok).store is None
