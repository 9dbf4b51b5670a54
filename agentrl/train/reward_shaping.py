"""KL in the reward: an episode's return is RM − β·Σ_t KL_t(π_old ‖ π_ref) over its agent tokens.

Shaped once per episode, for every episode an estimator sees (the sampled episodes, TRePO's branch
continuations, ReMax's greedy baselines), before any estimator runs. A branch continuation's sum runs over
its whole sequence, prefix included, so V̂(t) estimates the same shaped return the episode itself is scored
by, and the differences V̂(t_b) − V̂(t_a) charge each segment its own KL.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from agentrl.algo.losses import kl_estimate
from agentrl.core.types import Episode, allowed_tensor, collate

Returns = Callable[[list[Episode]], list[float]]


def kl_shaped_rewards(
    rewards: Tensor, logprobs: Tensor, ref_logprobs: Tensor, action_mask: Tensor, beta: float
) -> Tensor:
    """rewards [B] − beta · Σ_t k1(logprobs, ref_logprobs) over the agent tokens (action_mask [B, T]) → [B].

    k1 = log π_old − log π_ref: its sum over a sampled sequence is the unbiased single-sample estimate of
    KL(π_old ‖ π_ref) of the whole response (Schulman 2020, "Approximating KL divergence").
    """
    return rewards - beta * (kl_estimate(logprobs, ref_logprobs, "k1") * action_mask).sum(-1)


def raw_rewards(episodes: list[Episode]) -> list[float]:
    return [float(ep.reward) for ep in episodes]


class RandomReturns:
    """The noise floor of a learning claim (`train.random_reward: p`): every return an estimator sees is a
    Bernoulli(p) draw that ignores what the episode did, so a run trained on it shows what the same settings do
    to held-out success with no signal at all. A draw depends only on (seed, episode uid), never on the order
    episodes are scored in; the uid is a hash of what the episode is (its key: step, group, index; a continuation's
    parent, point and j), so a resumed run, or a rank, draws what the uninterrupted single process did. The
    episodes' own rewards, and so `reward/mean` and the held-out evaluation, stay the real ones."""

    def __init__(self, p: float, seed: int):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random_reward must be a probability in [0, 1], got {p}")
        self.p, self.seed = p, seed

    def __call__(self, episodes: list[Episode]) -> list[float]:
        return [
            float(random.Random(f"agentrl-random-reward:{self.seed}:{ep.uid}").random() < self.p) for ep in episodes
        ]


class KLShapedReturns:
    """Callable episodes → shaped returns: scores each episode under the frozen reference model."""

    def __init__(self, ref_model: Any, beta: float, *, temperature: float, pad_id: int, micro_batch_size: int):
        self.ref_model, self.beta, self.temperature = ref_model, beta, temperature
        self.pad_id, self.micro_batch_size = pad_id, micro_batch_size
        self.kl_sum = 0.0  # Σ over scored episodes of their KL estimate, for the update's metrics
        self.scored = 0

    def __call__(self, episodes: list[Episode]) -> list[float]:
        from agentrl.train.forward import forward

        out: list[float] = []
        for i in range(0, len(episodes), self.micro_batch_size):
            chunk = episodes[i : i + self.micro_batch_size]
            ids, attn, amask, old_lp = collate(chunk, self.pad_id)
            with torch.no_grad():
                ref_lp = forward(
                    self.ref_model,
                    None,
                    ids,
                    attn,
                    self.temperature,
                    entropy=False,
                    mask=amask,
                    allowed=allowed_tensor(chunk, ids.shape[1]),
                ).logprobs
            rm = torch.tensor(raw_rewards(chunk), dtype=torch.float32)
            shaped = kl_shaped_rewards(rm, old_lp, ref_lp, amask, self.beta)
            self.kl_sum += float(((rm - shaped) / self.beta).sum()) if self.beta else 0.0
            self.scored += len(chunk)
            out += shaped.tolist()
        return out

    def take_mean_kl(self) -> float:
        """Mean KL estimate per scored episode since the last call (then reset)."""
        mean = self.kl_sum / self.scored if self.scored else float("nan")
        self.kl_sum, self.scored = 0.0, 0
        return mean
