"""TRePO branch continuations with and without prefix reuse (transformers backend).

Collects episodes, then runs TRePO's branch continuations (M per agent turn, as the trainer does with
`branch_points=turns`) twice with identical seeds: once with `HFPolicy(prefix_reuse=True)` (each shared
prefix encoded once, its KV cache copied to the continuations) and once encoding every prompt in full.
Both produce the same tokens; the table reports seconds and prompt tokens run through the model.
Writes a section of BENCHMARKS.md.

    .venv/bin/python benchmarks/prefix_reuse.py --model smollm2-135m --episodes 4 --m 4
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--env", default="agentrl/ToolUse-v0")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--m", type=int, default=4, help="continuations per branch point")
    ap.add_argument("--tokens", type=int, default=24, help="tokens per turn (EOS ignored)")
    ap.add_argument("--max-turns", type=int, default=3)
    args = ap.parse_args()

    model, tok = load_model(args.model)
    sp = SamplingParams(temperature=1.0, max_new_tokens=args.tokens, ignore_eos=True)
    results = {}
    for reuse in (True, False):
        policy = HFPolicy(model, tok, prefix_reuse=reuse)
        runner = RolloutRunner(
            lambda: make_env(args.env, max_turns=args.max_turns),
            policy,
            ChatFormatter(tok),
            sp,
            snapshot_turns=True,
            seed=0,
        )
        eps = runner.collect([EpisodeSpec(seed=i, group_id=i) for i in range(args.episodes)])
        requests = [
            (e, t.start, [1.0] * args.m) for e in eps for t in e.turns[1:]
        ]  # turn 0's value comes from the group
        policy.prefill_tokens, policy.tokens_generated = 0, 0
        t0 = time.perf_counter()
        branches = runner.branch_many(requests)
        dt = time.perf_counter() - t0
        results[reuse] = dict(
            seconds=dt,
            prefill=policy.prefill_tokens,
            generated=policy.tokens_generated,
            ids=[tuple(b.input_ids) for b in branches],
            base=[tuple(e.input_ids) for e in eps],
            points=len(requests),
            prefix=sum(r[1] for r in requests) / max(1, len(requests)),
        )
        print(
            ("with" if reuse else "without"),
            "prefix reuse:",
            {k: v for k, v in results[reuse].items() if k not in ("ids", "base")},
            flush=True,
        )
    # a row's float32 sums run in a different order when its prefix is encoded apart from its suffix, so a
    # sampled token whose uniform draw falls near a CDF boundary can flip (and the rest of its sequence differ)
    equal = sum(a == b for a, b in zip(results[True]["ids"], results[False]["ids"]))
    base_equal = sum(a == b for a, b in zip(results[True]["base"], results[False]["base"]))
    same = (
        f"{equal}/{len(results[True]['ids'])} continuations and {base_equal}/{len(results[True]['base'])} episodes "
        "they branch from are token-identical"
    )
    speedup = results[False]["seconds"] / results[True]["seconds"]
    r1, r0 = results[True], results[False]
    body = "\n".join(
        [
            machine_line(),
            f"{args.model} on {args.env}: {args.episodes} episodes, {r1['points']} branch points (agent turns after the first; "
            f"mean prefix {r1['prefix']:.0f} tokens), M={args.m} continuations each, {args.tokens} tokens per turn (EOS ignored).",
            f"Same samples in both runs (same seeds): {same}. Target: at least 2x faster with reuse.",
            "",
            "| prefix reuse | seconds | prompt tokens encoded | tokens generated |",
            "|---|---|---|---|",
            f"| on | {r1['seconds']:.1f} | {r1['prefill']} | {r1['generated']} |",
            f"| off | {r0['seconds']:.1f} | {r0['prefill']} | {r0['generated']} |",
            "",
            f"Speed-up with reuse: **{speedup:.1f}x**.",
        ]
    )
    write_section("TRePO branch continuations: prefix reuse (transformers backend)", body)


if __name__ == "__main__":
    main()
