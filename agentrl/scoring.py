"""Re-scoring sequences: per-token logprobs of a model over full (right-padded) token sequences."""

from __future__ import annotations

from typing import Any

import torch

from agentrl.losses import entropy_from_logits, token_logprobs


def sequence_logprobs(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float | torch.Tensor = 1.0,
    *, return_entropy: bool = False, allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logprob[b, t] = log pi(input_ids[b, t] | input_ids[b, :t]) at `temperature` (position 0 gets 0).

    input_ids, attention_mask: [B, T]. temperature: scalar or [B] (per-episode sampling temperature).
    allowed: [B, T, A] from `types.allowed_tensor` — constrained positions are renormalised over their ids.
    Returns (logprobs [B, T], entropy [B, T] or None). Gradients flow when the caller has them on.
    """
    pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, use_cache=False).logits[:, :-1].float()
    if isinstance(temperature, torch.Tensor):
        logits = logits / temperature.to(logits.device).view(-1, 1, 1)
    elif temperature != 1.0:
        logits = logits / temperature
    allow = None if allowed is None else allowed[:, 1:]
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=logits.device)
    out[:, 1:] = token_logprobs(logits, input_ids[:, 1:], allowed=allow)
    ent = None
    if return_entropy:
        ent = torch.zeros_like(out)
        ent[:, 1:] = entropy_from_logits(logits, allow)
    return out, ent
