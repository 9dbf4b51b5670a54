"""The policy-backend contract: generate from token ids, return token ids + logprobs; take new weights; close.

Also what the `allowed` sequences of constrained decoding mean (`next_allowed`, `allowed_steps`); how a backend
picks among them is `sampling.py`."""

from __future__ import annotations

import re
from collections.abc import Iterable
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
    logprobs: list[
        float
    ]  # log-prob of each sampled token under the policy at the sampling temperature (1.0 when greedy);
    # under constrained decoding (`allowed`), renormalised over the allowed tokens (`constrained_logprob`)
    finish_reason: str  # "stop" (EOS, stop string, or a complete allowed reply) | "length" | "error" (below)
    # finish_reason "error": a remote sampler failed for good (`remote.py`: every server attempt failed); no tokens,
    # and the rollout ends the episode as sampler_error with this text (`EpisodeEnd.SAMPLER_ERROR`)
    error: str | None = None


class PolicyBackend(Protocol):
    """What the trainer samples from: `HFPolicy` (transformers) and `VLLMPolicy` (vLLM)."""

    pad_id: int  # the token id that pads rows of a batch (the tokenizer's pad token, else an EOS)

    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams]) -> list[Completion]: ...

    def update_weights(self, state_dict: dict[str, torch.Tensor]) -> None: ...

    def weights_digest(self) -> WeightsDigest:
        """The digest (`weights_digest`) of the weights the backend samples with, to compare with the trainer's
        digest of the state dict it sent (`train.invariants.verify_weights`)."""
        ...

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


# -- weight digests: did the rollout engine get the trainer's weights? ----------------------------------------------
WeightsDigest = dict[str, tuple[float, float]]  # canonical tensor name -> (sum, sum of |x|), in float64

# vLLM loads q/k/v and gate/up projections into fused tensors; their sums add up, so both sides digest by the fused name
_FUSED = [(re.compile(r"\.(q|k|v)_proj\."), ".qkv_proj."), (re.compile(r"\.(gate|up)_proj\."), ".gate_up_proj.")]


def canonical_weight_name(name: str) -> str:
    for pattern, repl in _FUSED:
        name = pattern.sub(repl, name)
    return name


def weights_digest(named: Iterable[tuple[str, torch.Tensor]]) -> WeightsDigest:
    """Per tensor (fused names merged, see `canonical_weight_name`): the float64 sum of its elements and of their
    absolute values. Invariant to how a backend lays tensors out (fused q/k/v, zero-padded vocabulary rows, tensor-
    parallel shards), deterministic up to summation order, and one read of the weights (on their device). Tensors
    that share storage (tied embeddings) count once, under the first name; empty tensors (weights a backend packed
    into kernels of its own) are skipped."""
    out: dict[str, list[float]] = {}
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for name, t in named:
        t = t.detach()
        if t.numel() == 0 or t.is_meta or not t.is_floating_point():
            continue
        key = (t.data_ptr(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        acc = out.setdefault(canonical_weight_name(name), [0.0, 0.0])
        acc[0] += float(torch.sum(t, dtype=torch.float64))
        acc[1] += float(torch.linalg.vector_norm(t, ord=1, dtype=torch.float64))
    return {k: (v[0], v[1]) for k, v in out.items()}


def merge_shard_digests(digests: list[WeightsDigest]) -> WeightsDigest:
    """One digest from tensor-parallel workers' digests: a tensor every worker holds the same (replicated) counts
    once, a sharded one adds up over the shards."""
    out: WeightsDigest = {}
    for name in {k for d in digests for k in d}:
        parts = [d[name] for d in digests if name in d]
        same = all(p == parts[0] for p in parts)
        out[name] = parts[0] if same else (sum(p[0] for p in parts), sum(p[1] for p in parts))
    return out


def digest_summary(d: WeightsDigest) -> str:
    """A short fingerprint for messages: the total sum and abs-sum, and how many tensors."""
    return f"{sum(v[0] for v in d.values()):.10g}/{sum(v[1] for v in d.values()):.10g}/{len(d)}"


def digest_mismatch(engine: WeightsDigest, trainer: WeightsDigest, rtol: float = 1e-9) -> str | None:
    """The first tensor of `engine` whose digest differs from `trainer`'s (or that `trainer` lacks), None when they
    agree. Tensors only the trainer has are not compared (tied copies, weights the engine packed away). Sums of
    the same values in another order agree to far better than rtol (float64); one optimizer step does not."""
    if not engine:
        return "<the engine reported no tensors>"
    for name in sorted(engine):
        if name not in trainer:
            return f"{name} (not in the trainer's state dict)"
        (s_e, a_e), (s_t, a_t) = engine[name], trainer[name]
        tol = rtol * max(a_e, a_t) + 1e-12
        if abs(s_e - s_t) > tol or abs(a_e - a_t) > tol:
            return f"{name} (sum {s_e:.10g} != {s_t:.10g})"
    return None
