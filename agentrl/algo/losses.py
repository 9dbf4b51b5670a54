"""Losses of the update step (DESIGN.md step 4): token aggregation, PPO clipped policy loss, clipped value
loss, KL estimators, entropy and token log-probs. One pure function each; masks are [B, T] floats, 1 on
sampled agent tokens (the only tokens that carry loss)."""

from __future__ import annotations

import torch
from torch import Tensor

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
KL_KINDS = ("k1", "k2", "k3")
IS_MODES = ("tis", "mis_token", "mis_seq")


def aggregate(x: Tensor, mask: Tensor, mode: str = "token-mean") -> Tensor:
    """Reduce per-token x [B, T] to a scalar over mask > 0.

    token-mean:           Σ x·m / Σ m  (every token weighs the same; long episodes weigh more)
    seq-mean-token-mean:  mean over sequences of (Σ_t x·m / Σ_t m)  (every episode weighs the same)
    seq-mean-token-sum:   mean over sequences of Σ_t x·m  (Dr. GRPO-style, no length normalisation)
    Sequences with no masked token are left out of the sequence means (an all-padding or failed row must not
    dilute the batch). With no masked token at all the result is a differentiable 0.
    """
    if mode not in AGG_MODES:
        raise ValueError(f"aggregate: mode must be one of {AGG_MODES}, got {mode!r}")
    m = (mask > 0).to(x.dtype)
    xm = torch.where(mask > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))  # NaN/inf off-mask can't leak
    if mode == "token-mean":
        return xm.sum() / m.sum().clamp(min=1)
    per_seq_n = m.sum(dim=-1)  # [B]
    per_seq = xm.sum(dim=-1)  # [B]
    if mode == "seq-mean-token-mean":
        per_seq = per_seq / per_seq_n.clamp(min=1)
    has = (per_seq_n > 0).to(x.dtype)
    return (per_seq * has).sum() / has.sum().clamp(min=1)


def importance_weights(
    old_logprobs: Tensor, sampler_logprobs: Tensor, mask: Tensor, *, mode: str = "tis", cap: float = 2.0
) -> tuple[Tensor, dict[str, float]]:
    """Per-token weights [B, T] that correct PPO's loss for tokens drawn from a sampler π_s that is not π_old
    (another engine's kernels or precision, or weights some updates older: asynchronous rollouts).

    ρ_t = π_old(w_t) / π_s(w_t), computed from the log-probs of the sampled tokens; weights are constants (no
    gradient) multiplying each token's PPO loss, whose own ratio stays π_θ / π_old:
      tis        w_t = min(ρ_t, C)                                  truncated IS (Ionides 2008; Yao et al. 2025,
                                                                    "Your efficient RL framework secretly brings
                                                                    you off-policy RL training")
      mis_token  w_t = ρ_t if 1/C ≤ ρ_t ≤ C else 0                   masked IS: a token whose engines disagree by
                                                                    more than C is dropped (IcePop, Ring-1T 2025)
      mis_seq    w_t = ρ_t if 1/C ≤ ρ̄_b ≤ C else 0, ρ̄_b = exp(mean_t log ρ_t over row b's agent tokens)
                                                                    the whole episode dropped on its geometric-mean
                                                                    ratio (verl's "geometric" rejection)
    With the same weights in the same engine ρ = 1 up to rounding, and every mode is a no-op.
    stats (agent tokens only): is/ratio_p05, is/ratio_p50, is/ratio_p95, is/frac_truncated (tis: ρ > C),
    is/frac_masked (mis_*: weight 0), is/weight_mean, and logprob/mismatch_kl, KL(π_s ‖ π_old) per token by
    Schulman's k3, (ρ − 1) − log ρ (the tokens were drawn from π_s).
    """
    if mode not in IS_MODES:
        raise ValueError(f"importance_weights: mode must be one of {IS_MODES}, got {mode!r}")
    if not cap > 1.0:
        raise ValueError(f"importance_weights: cap must be > 1, got {cap}")
    on = mask > 0
    zero = torch.zeros((), dtype=torch.float32, device=old_logprobs.device)
    log_rho = torch.where(on, (old_logprobs - sampler_logprobs).float(), zero)  # [B, T]; 0 off the mask
    rho = torch.exp(log_rho)
    lo, hi = 1.0 / cap, cap
    if mode == "tis":
        w = torch.clamp(rho, max=cap)
        dropped = torch.zeros_like(on)
    elif mode == "mis_token":
        dropped = on & ((rho < lo) | (rho > hi))
        w = torch.where(dropped, zero, rho)
    else:
        n = on.sum(-1).clamp(min=1)
        geo = torch.exp(log_rho.sum(-1) / n)  # [B]
        out_of_band = (geo < lo) | (geo > hi)
        dropped = on & out_of_band.unsqueeze(-1)
        w = torch.where(dropped, zero, rho)
    w = torch.where(on, w, zero).detach()
    with torch.no_grad():
        r = rho[on].double()
        stats: dict[str, float] = {}
        if r.numel():
            q = torch.quantile(r, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
            stats = {"is/ratio_p05": float(q[0]), "is/ratio_p50": float(q[1]), "is/ratio_p95": float(q[2])}
            lr = log_rho[on].double()
            stats["logprob/mismatch_kl"] = float((torch.expm1(lr) - lr).mean())
            stats["is/weight_mean"] = float(w[on].double().mean())
        stats["is/frac_truncated"] = _masked_mean(((rho > cap) & on).float(), mask) if mode == "tis" else 0.0
        stats["is/frac_masked"] = _masked_mean(dropped.float(), mask)
    return w, stats


def _masked_mean(x: Tensor, mask: Tensor) -> float:
    m = mask > 0
    return float(x[m].float().mean()) if m.any() else 0.0


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    agg: str = "token-mean",
    is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate on token log-ratios (Schulman et al. 2017, eq. 7), as a loss to minimise:

        ρ_t = exp(logπ(w_t) − logπ_old(w_t)),  ℓ_t = max(−A_t ρ_t, −A_t clip(ρ_t, 1−clip_low, 1+clip_high))

    clip_low / clip_high may differ (DAPO's "clip-higher", Yu et al. 2025). dual_clip = c > 1 (Ye et al. 2020,
    "Mastering Complex Control in MOBA Games", eq. 5) additionally caps ℓ_t at −c·A_t for A_t < 0, so a token
    whose ratio exploded cannot dominate the update. is_weights [B, T] (`importance_weights`, constants) multiply
    each token's ℓ_t: the off-policy correction for a sampler that is not π_old. All inputs [B, T]; the loss is
    aggregated with `agg`.
    stats: clip_fraction (tokens where the clipped term was taken), dual_clip_fraction, approx_kl
    (k3 estimate of KL(π_old ‖ π) from the rollout's samples), ratio_mean, ratio_max.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"policy_loss: dual_clip must be > 1 (or None), got {dual_clip}")
    on = mask > 0
    zero = torch.zeros((), dtype=logprobs.dtype, device=logprobs.device)
    # Off-mask log-ratios are forced to 0 so padding logprobs (possibly −inf) can't make inf/NaN.
    log_ratio = torch.where(on, logprobs - old_logprobs, zero)  # [B, T]
    ratio = torch.exp(log_ratio)  # [B, T]
    adv = torch.where(on, advantages.detach(), zero)  # off-mask NaN advantages would poison gradients
    surr_unclipped = -adv * ratio
    surr_clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss_tok = torch.maximum(surr_unclipped, surr_clipped)  # pessimistic bound
    dual_active = torch.zeros_like(on)
    if dual_clip is not None:
        cap = -adv * dual_clip  # > 0 where adv < 0
        dual_active = (adv < 0) & (loss_tok > cap)
        loss_tok = torch.where(adv < 0, torch.minimum(loss_tok, cap), loss_tok)
    if is_weights is not None:
        loss_tok = loss_tok * torch.where(on, is_weights.detach().to(loss_tok.dtype), zero)
    loss = aggregate(loss_tok, mask, agg)
    with torch.no_grad():
        clipped = (surr_clipped > surr_unclipped) & on
        k3 = (ratio - 1.0) - log_ratio  # KL(old ‖ new) sampled from old: E_old[(ρ−1) − log ρ]
        stats = {
            "clip_fraction": _masked_mean(clipped.float(), mask),
            "dual_clip_fraction": _masked_mean((dual_active & on).float(), mask),
            "approx_kl": _masked_mean(k3, mask),
            "ratio_mean": _masked_mean(ratio, mask),
            "ratio_max": float(ratio[on].max()) if on.any() else 1.0,
        }
    return loss, stats


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    clip: float | None = 0.2,
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, float]]:
    """Clipped value loss (PPO2 / OpenAI baselines): ℓ_t = ½ max((V − R)², (V_old + clip(V − V_old, ±clip) − R)²);
    clip=None gives ½ (V − R)². All inputs [B, T]. stats: vf_clip_fraction, values_mean, returns_mean,
    explained_variance (1 − Var[R − V] / Var[R] over masked tokens; 0 when Var[R] = 0)."""
    returns = returns.detach()
    old_values = old_values.detach()
    unclipped = (values - returns) ** 2
    if clip is None:
        loss_tok = 0.5 * unclipped
        clipped_taken = torch.zeros_like(mask, dtype=torch.bool)
    else:
        v_clip = old_values + torch.clamp(values - old_values, -clip, clip)
        clipped_sq = (v_clip - returns) ** 2
        loss_tok = 0.5 * torch.maximum(unclipped, clipped_sq)
        clipped_taken = clipped_sq > unclipped
    loss = aggregate(loss_tok, mask, agg)
    with torch.no_grad():
        on = mask > 0
        r, v = returns[on].float(), values[on].float()
        var_r = r.var(unbiased=False) if r.numel() else torch.tensor(0.0)
        ev = float(1.0 - (r - v).var(unbiased=False) / var_r) if var_r > 0 else 0.0
        stats = {
            "vf_clip_fraction": _masked_mean((clipped_taken & on).float(), mask),
            "values_mean": _masked_mean(values, mask),
            "returns_mean": _masked_mean(returns, mask),
            "explained_variance": ev,
        }
    return loss, stats


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, kind: str = "k1") -> Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from tokens sampled from π, with log r = log π_ref − log π
    (Schulman, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html):
      k1 = −log r                 unbiased, high variance, can be negative
      k2 = ½ (log r)²             biased, low variance, ≥ 0
      k3 = (r − 1) − log r        unbiased, low variance, ≥ 0
    Returns [B, T] (same shape as the inputs); the caller masks and aggregates.
    """
    if kind not in KL_KINDS:
        raise ValueError(f"kl_estimate: kind must be one of {KL_KINDS}, got {kind!r}")
    log_r = ref_logprobs - logprobs
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    return torch.expm1(log_r) - log_r  # expm1: exact near r = 1, where k3 ≈ ½ (log r)²


def _allowed_logits(logits: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
    """(sub [..., A], constrained [...]): the logits of each position's allowed ids (-inf on the -1 pads; 0
    everywhere on unconstrained positions, so no row is all -inf), and which positions are constrained."""
    on = allowed >= 0
    cons = on.any(-1)
    sub = logits.gather(-1, allowed.clamp(min=0).long()).masked_fill(~on, float("-inf"))
    return torch.where(cons.unsqueeze(-1), sub, torch.zeros_like(sub)), cons


def entropy_from_logits(logits: Tensor, allowed: Tensor | None = None) -> Tensor:
    """Entropy H = −Σ_v p_v log p_v of softmax(logits) over the last dim -> shape logits.shape[:-1].

    Computed from log_softmax (logsumexp inside, float32), so large logits don't overflow; logits of −inf
    (a constrained-decoding mask) contribute exactly 0, with finite gradients (0·log 0 := 0).
    allowed [..., A] (-1 padded): constrained positions take the entropy of the renormalised distribution
    over their allowed ids (see `token_logprobs`).
    """
    logits = logits.float()
    if not torch.isneginf(logits).any():  # the common case, with two [..., V] temporaries instead of three
        h = torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(dim=-1)
    else:
        logp = torch.log_softmax(logits, dim=-1)  # [..., V]
        logp_safe = logp.masked_fill(~torch.isfinite(logp), 0.0)  # avoids 0·(−inf) = NaN in value and gradient
        h = -(logp.exp() * logp_safe).sum(dim=-1)
    if allowed is None or allowed.shape[-1] == 0:
        return h
    sub, cons = _allowed_logits(logits, allowed)
    return torch.where(cons, entropy_from_logits(sub), h)


def token_logprobs(
    logits: Tensor, target_ids: Tensor, *, allowed: Tensor | None = None, chunk_rows: int = 4096
) -> Tensor:
    """log softmax(logits)[target] for logits [..., V] and target_ids [...] -> float32 [...].

    Uses logit[target] − logsumexp(logits) so the full [..., V] log-softmax is never stored; half-precision
    logits are upcast to float32 chunk by chunk (chunk_rows rows of V at a time), never all at once.
    allowed [..., A] long, -1 padded (`types.allowed_tensor`): a position with allowed ids is scored by the
    constrained policy that sampled it, renormalised over those ids (a forced token: log 1 = 0, no gradient);
    a position whose ids are all -1 by the whole vocabulary.
    Note: positions are not shifted here -- pass the logits that predict target_ids.
    """
    if logits.shape[:-1] != target_ids.shape or (allowed is not None and allowed.shape[:-1] != target_ids.shape):
        raise ValueError(
            f"token_logprobs: logits {tuple(logits.shape)}, target_ids {tuple(target_ids.shape)}"
            f"{'' if allowed is None else f' and allowed {tuple(allowed.shape)}'} disagree"
        )
    lead = target_ids.shape
    flat = logits.reshape(-1, logits.shape[-1])  # [N, V]
    ids = target_ids.reshape(-1, 1).long()  # [N, 1]
    allow = None if allowed is None or allowed.shape[-1] == 0 else allowed.reshape(-1, allowed.shape[-1])
    outs = []
    for s in range(0, flat.shape[0], chunk_rows):
        chunk = flat[s : s + chunk_rows].float()
        logz = torch.logsumexp(chunk, dim=-1)
        if allow is not None:
            sub, cons = _allowed_logits(chunk, allow[s : s + chunk_rows])
            logz = torch.where(cons, torch.logsumexp(sub, dim=-1), logz)
        outs.append(chunk.gather(-1, ids[s : s + chunk_rows]).squeeze(-1) - logz)
    if not outs:
        return torch.zeros(lead, dtype=torch.float32, device=logits.device)
    return torch.cat(outs).reshape(lead)
