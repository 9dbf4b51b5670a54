"""Asynchronous rollouts on CreditChain (issue 34 part 6, its learning half): does k = 1 learn like the synchronous run?

GRPO on CreditChain K = 6 with `rollout.max_staleness=1` (batch s sampled with the weights of update s − 1 on a
producer thread while update s − 1 trains; the off-policy correction `tis` on by `auto`), at
benchmarks/credit_methods.py's settings and token budget, against credit_methods' own synchronous GRPO runs of the
same seeds (benchmarks/results/credit_methods.json; run those first). Per run: updates and sampled tokens to the
target, final reward, seconds per update, and how long the trainer waited for rollouts (its idle fraction).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/async_rollouts.py             # the k = 1 runs (resumable), table
    .venv/bin/python benchmarks/async_rollouts.py --render                      # the BENCHMARKS.md section

Resumable like credit_methods.py (a run saved in benchmarks/results/async_rollouts.json is skipped; one in progress
goes on from its last checkpoint).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import credit_assignment
import credit_methods
from _common import machine_line, write_section
from credit_methods import TARGET, TOKENS_PER_TURN, WINDOW, first_reach

from agentrl.core.io import atomic_write_text

ARMS = {"grpo_async1": ("grpo", ["rollout.max_staleness=1"])}
credit_methods.METHODS.update(ARMS)  # run_method looks arms up there
SYNC = {"grpo_async1": "grpo"}  # the synchronous arm each is compared with
SECTION = "Asynchronous rollouts (CreditChain K=6, max_staleness 1 against synchronous)"
KEEP = ("time/collect", "time/branch", "time/update", "time/wait_for_rollouts", "policy/staleness", "is/ratio_p95")


def _stats(res: dict, extra_rows: list[dict] | None = None) -> dict:
    rows = res["rows"]
    step, tokens = first_reach(rows, TARGET, WINDOW)
    out = {
        "reach_updates": step,
        "reach_tokens": tokens,
        "final": statistics.mean(r["reward/mean"] for r in rows[-5:]),
        "updates": len(rows),
        "s_per_update": statistics.mean(r["time/total"] for r in rows),
    }
    if extra_rows:
        wait = sum(r.get("time/wait_for_rollouts", 0.0) for r in extra_rows)
        out["trainer_idle"] = wait / sum(r["time/total"] for r in extra_rows)
        out["collect_s"] = statistics.mean(r["time/collect"] for r in extra_rows)
        out["update_s"] = statistics.mean(r["time/update"] for r in extra_rows)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--k", type=int, default=6, help="CreditChain turns")
    ap.add_argument("--budget", type=int, default=None, help=f"sampled tokens per run (default {TOKENS_PER_TURN} x K)")
    ap.add_argument("--runs-dir", type=Path, default=Path("/tmp/async_rollouts_runs"))
    ap.add_argument("--render", action="store_true", help="only the BENCHMARKS.md section, from the JSON")
    args = ap.parse_args(argv)
    budget = args.budget or TOKENS_PER_TURN * args.k
    out = credit_assignment.OUT
    path = out / "async_rollouts.json"
    if not args.render:
        for seed in args.seeds:
            for arm in ARMS:
                saved = json.loads(path.read_text()) if path.exists() else {}
                key = f"{args.k}/{arm}/{seed}"
                if credit_methods._finished(saved.get(key), arm, budget):
                    continue
                run_dir = credit_methods._run_dir(args.runs_dir, args.k, arm, seed, budget)
                res = credit_methods.run_method(arm, args.k, seed, budget, args.runs_dir)
                metrics = run_dir / "metrics.jsonl"
                res["timing_rows"] = [
                    {k: r[k] for k in ("step", "time/total", *KEEP) if k in r}
                    for r in map(json.loads, metrics.read_text().splitlines())
                ]
                saved = json.loads(path.read_text()) if path.exists() else {}
                saved[key] = res
                atomic_write_text(path, json.dumps(saved))
                shutil.rmtree(run_dir)
                run_dir.with_suffix(".segments.json").unlink()
                s = _stats(res, res["timing_rows"])
                print(f"K={args.k} {arm} seed={seed}: {json.dumps(s)}", flush=True)
    body = _section(path, args, budget)
    if args.render:
        write_section(SECTION, body)
    else:
        print(body)


def _section(path: Path, args: argparse.Namespace, budget: int) -> str:
    saved = json.loads(path.read_text()) if path.exists() else {}
    sync_all = credit_methods._load(credit_assignment.OUT / "credit_methods.json")
    lines = [
        machine_line(threads=1),  # every run sets train.threads=1 (credit_assignment.run_one)
        f"`benchmarks/async_rollouts.py`: GRPO on CreditChain K={args.k} at benchmarks/credit_methods.py's settings and "
        f"budget ({budget:,} sampled tokens per run), with `rollout.max_staleness=1` (batch s sampled with the weights "
        "of update s − 1 on a producer thread while update s − 1 trains; `ppo.offpolicy_correction=auto` = tis, cap 2) "
        "against credit_methods' synchronous GRPO runs of the same seeds. 'reach' = first update where the "
        f"{WINDOW}-update moving average of reward >= {TARGET}. Trainer idle = its time waiting for the next batch, "
        "over its wall time.",
        "",
        "| arm | seed | reach (updates) | reach (tokens) | final reward | s / update | trainer idle |",
        "|---|---|---|---|---|---|---|",
    ]
    finals: dict[str, list[float]] = {}
    for seed in args.seeds:
        for arm, sync in SYNC.items():
            for name, res, timing in (
                (sync, sync_all.get(f"{args.k}/{sync}/{seed}"), None),
                (arm, saved.get(f"{args.k}/{arm}/{seed}"), "timing_rows"),
            ):
                if res is None or res["budget"] != budget:
                    lines.append(f"| {name} | {seed} | not run | | | | |")
                    continue
                s = _stats(res, res.get(timing) if timing else None)
                finals.setdefault(name, []).append(s["final"])
                idle = f"{s['trainer_idle']:.0%}" if "trainer_idle" in s else "(synchronous)"
                reach_t = "—" if s["reach_tokens"] is None else f"{s['reach_tokens']:,.0f}"
                lines.append(
                    f"| {name} | {seed} | {s['reach_updates'] or '—'} | {reach_t} | {s['final']:.3f} | "
                    f"{s['s_per_update']:.2f} | {idle} |"
                )
    lines.append("")
    ses = {}
    for name, xs in finals.items():
        ses[name] = statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan")
        lines.append(
            f"- {name}: final reward {statistics.mean(xs):.3f} ± {ses[name]:.3f} (mean ± s.e. over {len(xs)} seeds)"
        )
    for arm, sync in SYNC.items():
        if len(finals.get(arm, [])) > 1 and len(finals.get(sync, [])) > 1:
            diff = statistics.mean(finals[arm]) - statistics.mean(finals[sync])
            se = (ses[arm] ** 2 + ses[sync] ** 2) ** 0.5
            verdict = "within" if abs(diff) <= 2 * se else "outside"
            lines.append(
                f"- {arm} − {sync}: {diff:+.3f} ± {se:.3f} (combined s.e.): {verdict} two standard errors, so k = 1 "
                f"{'learns within' if verdict == 'within' else 'does not learn within'} seed noise of the synchronous "
                "run on these seeds; 3 seeds cannot tell a difference smaller than about 0.25 apart."
            )
    lines.append(
        "- s / update here was measured with 2-3 other benchmarks on the 2 cores: not a speed comparison (the "
        "section 'Rollouts on inference servers' measures the overlap on a quiet machine)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
