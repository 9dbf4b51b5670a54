"""Rollout throughput: a batched rollout of N episodes against the same episodes run one at a time.

Same model, env, seeds and token counts (every turn generates exactly --tokens tokens, EOS ignored),
so the ratio is the speed-up of batching alone. Writes a section of BENCHMARKS.md.

    .venv/bin/python benchmarks/rollout_throughput.py --models tiny-random smollm2-135m --episodes 16
"""

from __future__ import annotations

import argparse
import time

from _common import machine_line, write_section

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.registry import make_env
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.inference.models import load_model
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner


def run(model_name: str, episodes: int, tokens: int, turns: int) -> dict[str, float]:
    model, tok = load_model(model_name)
    sp = SamplingParams(temperature=1.0, max_new_tokens=tokens, ignore_eos=True)
    runner = RolloutRunner(
        lambda: make_env("agentrl/CreditChain-v0", turns=turns), HFPolicy(model, tok), ChatFormatter(tok), sp, seed=0
    )
    specs = [EpisodeSpec(seed=i, group_id=i) for i in range(episodes)]
    runner.collect(specs[:2])  # warm-up
    t = time.perf_counter()
    batched = runner.collect(specs)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    single = [runner.collect([s])[0] for s in specs]
    t_single = time.perf_counter() - t
    n_b = sum(e.num_sampled for e in batched)
    n_s = sum(e.num_sampled for e in single)
    assert n_b == n_s, (n_b, n_s)
    return {
        "tokens": n_b,
        "batched_tok_s": n_b / t_batched,
        "single_tok_s": n_s / t_single,
        "speedup": t_single / t_batched,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["tiny-random", "smollm2-135m"])
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=16, help="tokens generated per turn")
    ap.add_argument("--turns", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for m in args.models:
        r = run(m, args.episodes, args.tokens, args.turns)
        print(m, r, flush=True)
        rows.append(
            f"| {m} | {args.episodes} | {r['tokens']} | {r['single_tok_s']:.0f} | {r['batched_tok_s']:.0f} | {r['speedup']:.1f}x |"
        )
    body = "\n".join(
        [
            machine_line(),
            f"CreditChain, {args.turns} turns x {args.tokens} tokens per turn (EOS ignored so both runs sample the same tokens), temperature 1.",
            "Target: batched at least 4x faster than one episode at a time.",
            "",
            "| model | episodes | sampled tokens | one-at-a-time tok/s | batched tok/s | speed-up |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section("Rollout throughput (transformers backend)", body)


if __name__ == "__main__":
    main()
