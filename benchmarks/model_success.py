"""Success of small models as agents: ToolUse-v0 by tier and FlightBooking-v0 pass^1 (rule-based user).

Greedy decoding (temperature 0, so pass^1 is the success rate of one deterministic trial), the test split,
the transformers backend with prefix reuse (every episode shares the env's long system prompt). Each run
adds its row to benchmarks/results/model_success.json; the BENCHMARKS.md section shows all rows.

    .venv/bin/python benchmarks/model_success.py --env tool_use --model smollm2-135m
    .venv/bin/python benchmarks/model_success.py --env flight --model tiny-random --max-turns 10
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from _common import ROOT, machine_line, write_section

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.io import atomic_write_text
from agentrl.core.registry import make_env
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.inference.models import load_model
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner

ENVS = {"tool_use": "agentrl/ToolUse-v0", "flight": "agentrl/FlightBooking-v0"}
RESULTS = ROOT / "benchmarks" / "results" / "model_success.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", choices=sorted(ENVS), required=True)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tasks", type=int, default=None, help="first N test tasks (default: all)")
    ap.add_argument("--per-tier", type=int, default=None, help="tool_use: the first N test tasks of each tier instead")
    ap.add_argument("--max-turns", type=int, default=None, help="agent turns before truncation (default: the env's)")
    ap.add_argument("--max-new-tokens", type=int, default=192)
    ap.add_argument("--batch", type=int, default=16, help="episodes per generate call (bounds KV-cache memory)")
    args = ap.parse_args()

    env_id = ENVS[args.env]
    kwargs = {"split": "test", **({"max_turns": args.max_turns} if args.max_turns else {})}
    probe = make_env(env_id, **kwargs).unwrapped
    ids = probe.task_ids()[: args.tasks] if args.tasks else probe.task_ids()
    tier = {t.id: t.tier for t in probe._tasks} if args.env == "tool_use" else {}
    if args.per_tier and tier:
        ids = [t for k in sorted(set(tier.values())) for t in [i for i in ids if tier[i] == k][: args.per_tier]]
    max_turns = probe.max_turns
    model, tok = load_model(args.model)
    runner = RolloutRunner(
        lambda: make_env(env_id, **kwargs),
        HFPolicy(model, tok, max_batch_size=args.batch),
        ChatFormatter(tok),
        SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens),
        seed=0,
        progress=True,
        max_seq_len=int(getattr(model.config, "max_position_embeddings", 4096)),
    )
    t0 = time.perf_counter()
    eps = []
    for s in range(0, len(ids), args.batch):
        eps += runner.collect(
            [EpisodeSpec(seed=0, task_id=t, group_id=i) for i, t in enumerate(ids[s : s + args.batch], s)]
        )
    secs = time.perf_counter() - t0
    ok = {e.task_id: bool(e.success) if e.success is not None else e.reward >= 1.0 for e in eps}
    by_tier: dict[int, list[bool]] = defaultdict(list)
    for t, s in ok.items():
        by_tier[tier.get(t, 0)].append(s)
    row = {
        "env": env_id,
        "model": args.model,
        "tasks": len(ok),
        "pass1": sum(ok.values()) / len(ok),
        "mean_reward": sum(e.reward for e in eps) / len(eps),
        "mean_turns": sum(len(e.turns) for e in eps) / len(eps),
        "by_tier": {str(k): f"{sum(v)}/{len(v)}" for k, v in sorted(by_tier.items()) if k},
        "max_turns": max_turns,
        "max_new_tokens": args.max_new_tokens,
        "seconds": round(secs),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(row), flush=True)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = [r for r in rows if (r["env"], r["model"]) != (env_id, args.model)] + [row]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(rows, indent=1))
    lines = [
        machine_line(),
        "Test split, greedy decoding, one trial per task (pass^1 = success rate). Tool-use tiers = tool calls needed.",
        "",
        "| env | model | tasks | pass^1 | mean reward | by tier (solved/total) | mean turns | max turns | max new tokens | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["env"], r["model"])):
        tiers = ", ".join(f"{k}: {v}" for k, v in r["by_tier"].items()) or "—"
        lines.append(
            f"| {r['env']} | {r['model']} | {r['tasks']} | {r['pass1']:.3f} | {r['mean_reward']:.3f} | {tiers} | "
            f"{r['mean_turns']:.1f} | {r['max_turns']} | {r['max_new_tokens']} | {r['seconds']} |"
        )
    write_section("Small models as agents: ToolUse-v0 by tier, FlightBooking-v0 pass^1", "\n".join(lines))


if __name__ == "__main__":
    main()
