"""Re-scoring sequences: per-token logprobs of a model over full (right-padded) token sequences."""

from __future__ import annotations

from typing import Any

import torch


def sequence_logprobs(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float | torch.Tensor = 1.0,
    *, return_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logprob[b, t] = log pi(input_ids[b, t] | input_ids[b, :t]) at `temperature` (position 0 gets 0).

    input_ids, attention_mask: [B, T]. temperature: scalar or [B] (per-episode sampling temperature).
    Returns (logprobs [B, T], entropy [B, T] or None). Gradients flow when the caller has them on.
    """
    pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, use_cache=False).logits[:, :-1].float()
    if isinstance(temperature, torch.Tensor):
        logits = logits / temperature.to(logits.device).view(-1, 1, 1)
    elif temperature != 1.0:
        logits = logits / temperature
    logz = torch.logsumexp(logits, dim=-1)  # [B, T-1]
    target = input_ids[:, 1:].unsqueeze(-1)
    lp = logits.gather(-1, target).squeeze(-1) - logz
    out = torch.zeros(input_ids.shape, dtype=lp.dtype, device=lp.device)
    out[:, 1:] = lp
    ent = None
    if return_entropy:
        p = torch.softmax(logits, dim=-1)
        e = logz - (p * logits).sum(-1)
        ent = torch.zeros_like(out)
        ent[:, 1:] = e
    return out, ent
