"""The policy-backend contract: generate from token ids, return token ids + logprobs; take new weights; close.

Also what the `allowed` sequences of constrained decoding mean (`next_allowed`, `allowed_steps`); how a backend
picks among them is `sampling.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass
class SamplingParams:
    """How to sample one completion. temperature 0 = greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False  # generate exactly max_new_tokens (benchmarks compare equal token counts)
    # constrained decoding: token-id sequences (each ending with EOS) the completion must be one of
    allowed: list[list[int]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]  # log-prob of each sampled token under the policy at the sampling temperature (1.0 when greedy);
    # under constrained decoding (`allowed`), renormalised over the allowed tokens (`constrained_logprob`)
    finish_reason: str  # "stop" (EOS, stop string, or a complete allowed reply) | "length"


class PolicyBackend(Protocol):
    """What the trainer samples from: `HFPolicy` (transformers) and `VLLMPolicy` (vLLM)."""

    pad_id: int  # the token id that pads rows of a batch (the tokenizer's pad token, else an EOS)

    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams]) -> list[Completion]: ...

    def update_weights(self, state_dict: dict[str, torch.Tensor]) -> None: ...

    def close(self) -> None:
        """Release what the backend holds (engines, worker processes); a no-op where it holds nothing."""


def next_allowed(allowed: list[list[int]], so_far: list[int]) -> list[int]:
    """Constrained decoding: the tokens that extend `so_far` along one of the allowed sequences (ascending)."""
    n = len(so_far)
    return sorted({seq[n] for seq in allowed if len(seq) > n and seq[:n] == so_far})


def allowed_steps(allowed: list[list[int]], toks: list[int]) -> list[list[int]]:
    """The allowed set at each step of `toks` (what `next_allowed` offered before each token was picked)."""
    return [next_allowed(allowed, toks[:n]) for n in range(len(toks))]


def per_prompt(params: SamplingParams | list[SamplingParams], n: int) -> list[SamplingParams]:
    if isinstance(params, SamplingParams):
        return [params] * n
    if len(params) != n:
        raise ValueError(f"got {len(params)} SamplingParams for {n} prompts; pass one, or one per prompt")
    return list(params)
