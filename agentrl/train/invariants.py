"""Runtime invariants of training that must fail loudly, never drift silently.

* `check_trained_equals_sampled`: the token sequence (and action mask) the update trains on is exactly what the
  rollout conditioned on and sampled: prompt, then per turn the sampled ids and the env's delta ids.
* `check_logprob_drift`: before any optimizer step the trainer's log-probs of the sampled tokens must equal the
  rollout's (same weights, same temperature); a gap means stale weights, a temperature or template mismatch, or
  numerics worse than expected.
* `verify_weights`: after a weight sync, the rollout engine's weights digest equals the digest of the state dict
  the trainer sent (`inference.base.weights_digest`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from agentrl.core.types import Episode
from agentrl.inference.base import digest_mismatch, digest_summary, weights_digest


class InvariantError(RuntimeError):
    """A training invariant was broken: the run would otherwise go on training on something wrong."""


def _first_diff(a: Sequence[Any], b: Sequence[Any]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _expected(episode: Episode) -> tuple[list[int], list[int]]:
    """The sequence and action mask rebuilt from the turns, checking each turn's bookkeeping on the way."""
    ids, mask = list(episode.prompt_ids), [0] * len(episode.prompt_ids)
    for k, t in enumerate(episode.turns):
        if t.start != len(ids):
            raise InvariantError(
                f"episode {episode.uid}: turn {k} starts at {t.start}, but its first sampled token "
                f"is at position {len(ids)} of the sequence"
            )
        if len(t.logprobs) != len(t.sampled_ids):
            raise InvariantError(
                f"episode {episode.uid}: turn {k} has {len(t.sampled_ids)} sampled ids but {len(t.logprobs)} logprobs"
            )
        if t.allowed is not None and len(t.allowed) != len(t.sampled_ids):
            raise InvariantError(
                f"episode {episode.uid}: turn {k} has {len(t.sampled_ids)} sampled ids but "
                f"{len(t.allowed)} allowed sets"
            )
        ids += list(t.sampled_ids) + list(t.env_ids)
        mask += [1] * len(t.sampled_ids) + [0] * len(t.env_ids)
    return ids, mask


def _as_list(x: Any) -> list[int]:
    return [int(v) for v in (x.tolist() if isinstance(x, torch.Tensor) else x)]


def check_trained_equals_sampled(episode: Episode, trained_ids: Any = None, trained_mask: Any = None) -> None:
    """Raise `InvariantError` (naming the episode's uid and the first mismatching position) unless the trained
    sequence is the prompt followed by each turn's sampled ids and env ids, with the action mask 1 on exactly the
    sampled ids. `trained_ids` / `trained_mask`: the row the update trains on (a list or 1-D tensor; padding past
    the episode's length is ignored); default: the episode's own `input_ids` / `action_mask`."""
    ids, mask = _expected(episode)
    got_ids = _as_list(episode.input_ids if trained_ids is None else trained_ids)
    got_mask = _as_list(episode.action_mask if trained_mask is None else trained_mask)
    got_ids = got_ids[: len(ids)] if trained_ids is not None else got_ids  # a batch row: padding past the episode
    if any(got_mask[len(ids) :]):
        raise InvariantError(f"episode {episode.uid}: the action mask marks padding after position {len(ids)}")
    got_mask = got_mask[: len(ids)]
    pos = _first_diff(got_ids, ids)
    if pos is not None:
        what = (
            f"trained {got_ids[pos]} != sampled {ids[pos]}"
            if pos < min(len(got_ids), len(ids))
            else f"trained length {len(got_ids)} != sampled length {len(ids)}"
        )
        raise InvariantError(
            f"episode {episode.uid}: the trained tokens differ from the sampled ones at position {pos} ({what})"
        )
    pos = _first_diff([1 if m else 0 for m in got_mask], mask)
    if pos is not None:
        raise InvariantError(
            f"episode {episode.uid}: the action mask differs from the sampled tokens at position {pos} "
            f"(mask {got_mask[pos] if pos < len(got_mask) else 'missing'}, expected {mask[pos] if pos < len(mask) else 'none'})"
        )


def logprob_drift(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(max, mean) of |new - old| over the positions where mask is set; (0, 0) when none is."""
    m = mask.to(torch.bool)
    if not bool(m.any()):
        return 0.0, 0.0
    diff = (new_logprobs.detach().float() - old_logprobs.detach().float()).abs()[m]
    return float(diff.max()), float(diff.mean())


def check_logprob_drift(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    warn_at: float | None = 1.0,
    error_at: float | None = None,
) -> dict[str, float]:
    """`logprob/max_abs_diff` and `logprob/mean_abs_diff` of `logprob_drift`; warns when the max is above
    `warn_at` and raises `InvariantError` above `error_at` (None: never). Meant for the trainer's re-scoring
    before its first optimizer step of an update, where new and old log-probs come from the same weights."""
    mx, mean = logprob_drift(new_logprobs, old_logprobs, mask)
    what = (
        f"the trainer's log-probs of the sampled tokens differ from the rollout's by up to {mx:.4g} "
        f"(mean {mean:.4g}) before any update"
    )
    if error_at is not None and mx > error_at:
        raise InvariantError(
            f"{what}, above logprob_drift_error_at={error_at}: stale weights in the rollout engine, "
            "a temperature or chat-template mismatch, or bad numerics"
        )
    if warn_at is not None and mx > warn_at:
        warnings.warn(f"{what}, above logprob_drift_warn_at={warn_at}", RuntimeWarning, stacklevel=2)
    return {"logprob/max_abs_diff": mx, "logprob/mean_abs_diff": mean}


def verify_weights(policy: Any, state_dict: dict[str, torch.Tensor], *, rtol: float = 1e-9) -> str | None:
    """Raise `InvariantError` unless the policy backend's `weights_digest()` equals the digest of `state_dict`
    (what the trainer just sent it). Returns the digest's summary, or None for a backend that cannot digest its
    weights (no `weights_digest`)."""
    digest = getattr(policy, "weights_digest", None)
    if digest is None:
        return None
    engine, trainer = digest(), weights_digest(state_dict.items())
    bad = digest_mismatch(engine, trainer, rtol)
    if bad is not None:
        raise InvariantError(
            f"rollout engine weights differ from the trainer's after sync (digest "
            f"{digest_summary(engine)} != {digest_summary(trainer)}; first differing tensor: {bad})"
        )
    return digest_summary(engine)
