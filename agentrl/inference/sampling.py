"""Picking the next token: logits at each row's temperature, greedy / top-p / seeded sampling, constrained
decoding, and when a row is finished.

Every row has its own `SamplingParams` and its own CPU generator (`seeded_generator`), so a row samples the same
tokens whatever else is in its batch. The constrained pick (`constrained_pick`) is shared by both backends: for
the same seed and logprobs the transformers and vLLM backends pick the same token and record the same logprob.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from agentrl.inference.base import SamplingParams, next_allowed


def seeded_generator(p: SamplingParams) -> torch.Generator:
    """The request's own CPU generator: seeded from `p.seed`, or from fresh entropy when it has none."""
    g = torch.Generator(device="cpu")
    if p.seed is None:
        g.seed()
    else:
        g.manual_seed(int(p.seed))
    return g


def constrained_logprob(sub_logprobs: torch.Tensor, k: int) -> float:
    """log pi_c(token k) of the constrained policy: the logprob renormalised over the allowed tokens alone.
    This is the behaviour policy that sampled the token, so it is what both backends record (the trainer's
    ratio and KL are over the same renormalised distribution; a forced token records log 1 = 0)."""
    return float(sub_logprobs[k] - torch.logsumexp(sub_logprobs, -1))


def pick_allowed(sub_logprobs: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
    """Index into the allowed tokens: argmax when greedy, else one draw from their renormalised distribution."""
    if temperature == 0:
        return int(torch.argmax(sub_logprobs))
    return int(torch.multinomial(torch.softmax(sub_logprobs, -1).cpu(), 1, generator=generator))


def constrained_pick(
    allowed: list[int], sub_logprobs: torch.Tensor, temperature: float, generator: torch.Generator
) -> tuple[int, float]:
    """One constrained step: among the `allowed` next tokens (their logprobs `sub_logprobs`, at the sampling
    temperature) pick one (`pick_allowed`) -> (the token, its constrained logprob)."""
    k = pick_allowed(sub_logprobs, temperature, generator)
    return allowed[k], constrained_logprob(sub_logprobs, k)


def temperature_logprobs(logits: torch.Tensor, temps: torch.Tensor) -> torch.Tensor:
    """[rows, vocab] log-softmax of the logits at each row's temperature (temperature 1 for greedy rows)."""
    logits = logits.float()
    scaled = logits / torch.where(temps > 0, temps, torch.ones_like(temps)).unsqueeze(-1)
    return torch.log_softmax(scaled, dim=-1)


def top_p_pick(logp_row: torch.Tensor, top_p: float, g: torch.Generator) -> int:
    """One draw from the smallest set of most likely tokens whose probability reaches `top_p`."""
    probs = torch.softmax(logp_row, dim=-1)
    sp, si = torch.sort(probs, descending=True)
    keep = (sp.cumsum(-1) - sp) < top_p
    probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
    return int(torch.multinomial(probs.cpu(), 1, generator=g))


def pick_tokens(
    logp: torch.Tensor,
    js: list[int],
    params: list[SamplingParams],
    so_far: list[list[int]],
    gens: list[torch.Generator],
    eos_ids: set[int],
) -> tuple[list[int], list[float]]:
    """The next token of tensor rows `js` and its logprob; row js[n] samples with params[n], has generated
    so_far[n] and draws from gens[n]. Greedy rows by one argmax, plain sampling rows by one inverse-CDF draw
    (each row's own generator gives its uniform); constrained and top-p rows one by one. A constrained row
    records its constrained logprob (`constrained_logprob`), the others the logprob in `logp`."""
    out: dict[int, int] = {}
    cons_lp: dict[int, float] = {}
    greedy, sample = [], []
    for j, p, toks, g in zip(js, params, so_far, gens):
        if p.allowed is not None:
            # cannot be empty when every allowed sequence ends with EOS; guard anyway
            nxt = next_allowed(p.allowed, toks) or sorted(eos_ids)
            sub = logp[j][torch.tensor(nxt, dtype=torch.long, device=logp.device)]
            out[j], cons_lp[j] = constrained_pick(nxt, sub, p.temperature, g)
        elif p.temperature > 0 and p.top_p < 1.0:
            out[j] = top_p_pick(logp[j], p.top_p, g)
        elif p.temperature == 0:
            greedy.append(j)
        else:
            sample.append((j, g))
    if greedy:
        out.update(zip(greedy, logp[greedy].argmax(-1).tolist()))
    if sample:
        rows = [j for j, _ in sample]
        u = torch.cat([torch.rand(1, generator=g) for _, g in sample]).to(logp.device)
        cdf = logp[rows].exp().cumsum(-1)
        pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
        out.update(zip(rows, pick.clamp(max=cdf.shape[-1] - 1).tolist()))
    picked = [out[j] for j in js]
    lps = logp[torch.tensor(js), torch.tensor(picked)].tolist()
    return picked, [cons_lp.get(j, lp) for j, lp in zip(js, lps)]


def finish_reason(
    toks: list[int], p: SamplingParams, eos_ids: set[int], decode: Callable[[list[int]], str]
) -> str | None:
    """Why a row with completion `toks` stops now ("stop": EOS, a complete allowed reply, a stop string in the
    decoded tail; "length"), or None while it goes on."""
    if toks[-1] in eos_ids and not p.ignore_eos:
        return "stop"
    if p.allowed is not None and toks in p.allowed:
        return "stop"
    if p.stop and any(s in decode(toks[-16:]) for s in p.stop):
        return "stop"
    if len(toks) >= p.max_new_tokens:
        return "length"
    return None
