"""Checks of the vLLM backend against the transformers model, run in the vLLM venv (`.venv-vllm`, made by
`make setup-vllm`) by tests/test_vllm_backend.py, which asserts on the JSON this script writes.

    .venv-vllm/bin/python tests/vllm_checks.py --model tiny-random --out result.json

vLLM starts worker processes, so the engine is created under `if __name__ == "__main__":`.

1. generation from token ids: token ids and per-token logprobs for a batch of prompts (seeded sampling);
2. the transformers model re-scores vLLM's sampled tokens: |logprob difference| per token;
4. constrained decoding (allowed replies, as `rollout.constrained=true`): vLLM and the transformers backend
   pick the same replies for the same seeds, each one an allowed sequence, with the same logprobs (the
   constrained policy's: renormalised over the allowed tokens);
3. update_weights: the HF weights are perturbed (seeded noise), pushed into the running engine, and the
   engine's greedy output is compared with the HF model's greedy output under the same new weights; the
   engine's weights digest (computed in its workers) equals the trainer's, and differs from a stale one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

# the prompts both engine checks sample (tests/remote_checks.py imports them)
TEXTS = [
    "Hello, how are you today?",
    "List three colours:",
    "The capital of France is",
    "def add(a, b):\n    return",
    "Once upon a time, in a small village,",
]


def hf_greedy(model, prompt: list[int], n: int) -> tuple[list[int], list[float]]:
    """Greedy continuation by full re-encoding (no cache: the simplest reference), with the top-2 logit gap
    at each step (a near-tie may flip under a different kernel's rounding)."""
    ids, gaps = list(prompt), []
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            top = torch.topk(logits, 2)
            gaps.append(float(top.values[0] - top.values[1]))
            ids.append(int(top.indices[0]))
    return ids[len(prompt) :], gaps


def rescore(model, prompt: list[int], sampled: list[int], temperature: float) -> list[float]:
    with torch.no_grad():
        ids = torch.tensor([prompt + sampled])
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float() / temperature
        lp = torch.log_softmax(logits, -1)
        return [float(lp[i, t]) for i, t in enumerate(sampled)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-tokens", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))

    from agentrl.inference.base import SamplingParams
    from agentrl.inference.models import load_model
    from agentrl.inference.vllm import VLLMPolicy

    res: dict = {"model": args.model}
    model, tok = load_model(args.model)
    model.eval()
    prompts = [list(tok(t)["input_ids"]) for t in TEXTS]
    t0 = time.perf_counter()
    engine = VLLMPolicy.from_model(model, tok, gpu_memory_utilization=0.2, max_model_len=512)
    res["engine_start_s"] = time.perf_counter() - t0
    res["weights_dir_removed"] = engine.started_from is not None and not engine.started_from.exists()

    # 1 + 2: seeded sampling at temperature 1, then re-scoring with the transformers model
    temp = 1.0
    params = [
        SamplingParams(temperature=temp, max_new_tokens=args.new_tokens, seed=7 + i, ignore_eos=True)
        for i in range(len(prompts))
    ]
    outs = engine.generate(prompts, params)
    again = engine.generate(prompts, params)
    res["n_tokens"] = [len(o.token_ids) for o in outs]
    res["seeded_repeat_equal"] = [o.token_ids for o in outs] == [o.token_ids for o in again]
    diffs = []
    for p, o in zip(prompts, outs):
        ref = rescore(model, p, o.token_ids, temp)
        diffs += [abs(a - b) for a, b in zip(o.logprobs, ref)]
    res["logprob_abs_diff_max"] = max(diffs)
    res["logprob_abs_diff_mean"] = sum(diffs) / len(diffs)
    res["sampled_logprob_mean"] = sum(sum(o.logprobs) for o in outs) / sum(len(o.logprobs) for o in outs)

    # 4: constrained decoding against the transformers backend with the same weights and seeds
    from agentrl.inference.hf import HFPolicy

    hf = HFPolicy(model, tok, prefix_reuse=False)
    eos = tok.eos_token_id
    allowed = [list(tok(d, add_special_tokens=False)["input_ids"]) + [eos] for d in ("1", "2", "3", "4", "hello there")]
    cparams = [
        SamplingParams(temperature=t, max_new_tokens=8, seed=100 + i, allowed=allowed)
        for i in range(4)
        for t in (1.0, 0.0)
    ]
    cprompts = [prompts[i % len(prompts)] for i in range(len(cparams))]
    v_out, h_out = engine.generate(cprompts, cparams), hf.generate(cprompts, cparams)
    res["constrained_all_allowed"] = all(o.token_ids in allowed for o in v_out)
    res["constrained_same_tokens"] = sum(a.token_ids == b.token_ids for a, b in zip(v_out, h_out))
    res["constrained_n"] = len(cparams)
    res["constrained_logprob_abs_diff_max"] = max(
        abs(x - y) for a, b in zip(v_out, h_out) if a.token_ids == b.token_ids for x, y in zip(a.logprobs, b.logprobs)
    )

    # 3: update_weights, then greedy agreement with the transformers model under the same weights
    greedy = SamplingParams(temperature=0.0, max_new_tokens=args.new_tokens, ignore_eos=True)
    before = [o.token_ids for o in engine.generate(prompts, greedy)]
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * p.float().std().clamp(min=1e-3) * 0.5)
    t0 = time.perf_counter()
    engine.update_weights(model.state_dict())
    res["update_weights_s"] = time.perf_counter() - t0
    # the weights digest: computed in the workers, equal to the trainer's digest of what it sent; a sync that
    # never happened (the engine still on older weights) is caught
    from agentrl.train.invariants import InvariantError, verify_weights

    t0 = time.perf_counter()
    res["digest_tensors"] = len(engine.weights_digest())
    res["digest_verified"] = verify_weights(engine, model.state_dict()) is not None
    res["digest_s"] = time.perf_counter() - t0
    try:
        verify_weights(engine, {k: v + 1e-3 for k, v in model.state_dict().items()})
        res["digest_caught_stale"] = False
    except InvariantError:
        res["digest_caught_stale"] = True
    after = [o.token_ids for o in engine.generate(prompts, greedy)]
    res["greedy_changed_by_update"] = sum(a != b for a, b in zip(after, before))
    exact, tie_flips, mismatches = 0, 0, 0
    min_gap_at_mismatch = None
    for p, v in zip(prompts, after):
        ref, gaps = hf_greedy(model, p, args.new_tokens)
        if ref == v:
            exact += 1
            continue
        j = next(i for i, (a, b) in enumerate(zip(ref, v)) if a != b)
        gap = gaps[j]
        min_gap_at_mismatch = gap if min_gap_at_mismatch is None else min(min_gap_at_mismatch, gap)
        if gap < 1e-3:
            tie_flips += 1  # the two backends disagree only where HF's top-2 logits are within 1e-3
        else:
            mismatches += 1
    res.update(
        greedy_prompts=len(prompts),
        greedy_exact=exact,
        greedy_tie_flips=tie_flips,
        greedy_mismatches=mismatches,
        greedy_min_gap_at_mismatch=min_gap_at_mismatch,
    )
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    engine.close()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # vLLM's worker processes can keep a plain exit waiting
