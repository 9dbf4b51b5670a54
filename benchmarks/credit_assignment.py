"""Credit assignment on CreditChain: updates and sampled tokens each estimator needs to reach a reward.

Same model (tiny-random, constrained decoding), batch, budget and seeds for every algorithm; K turns.
Writes plots (reward vs updates, reward vs sampled tokens incl. branch continuations) to
benchmarks/results/ and a table to BENCHMARKS.md.

    .venv/bin/python benchmarks/credit_assignment.py --turns 6 12 --seeds 0 1 2 --updates 80
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import statistics
import tempfile
from pathlib import Path

from _common import ROOT, machine_line, write_section

from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer

ALGOS = ["trepo", "grpo", "rloo", "ppo_gae", "reinforce"]
OUT = ROOT / "benchmarks" / "results"


def run_one(
    algo: str, turns: int, seed: int, updates: int, lr: float, *, extra: list[str] = (), run_dir: Path | None = None
) -> list[dict]:
    """One run's metrics rows; `extra` overrides go after these settings; `run_dir` (else a temporary directory)
    keeps the run, so a caller that adds train.resume=true resumes it."""
    ctx = tempfile.TemporaryDirectory() if run_dir is None else contextlib.nullcontext(str(run_dir))
    with ctx as d:
        cfg = load_config(
            None,
            [
                "model=tiny-random",
                f"env.kwargs.turns={turns}",
                f"algorithm.name={algo}",
                "rollout.groups=4",
                "rollout.group_size=4",
                "rollout.constrained=true",
                "rollout.max_new_tokens=4",
                f"train.updates={updates}",
                "train.checkpoint_every=100000",
                "train.log_episodes=0",
                "ppo.epochs=4",
                "ppo.minibatch_size=8",
                "ppo.micro_batch_size=8",
                f"optim.lr={lr}",
                f"train.seed={seed}",
                f"train.run_dir={d}",
                "train.threads=1",
                *extra,
            ],
        )
        Trainer(cfg, console=False).run()
        return [json.loads(line) for line in (Path(d) / "metrics.jsonl").read_text().splitlines()]


def first_reach(rows: list[dict], target: float, window: int) -> tuple[int | None, float | None]:
    """First update at which the moving average of reward over `window` updates reaches target."""
    r = [row["reward/mean"] for row in rows]
    for i in range(window - 1, len(r)):
        if sum(r[i - window + 1 : i + 1]) / window >= target:
            return rows[i]["step"], rows[i]["tokens/cumulative"]
    return None, None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--algos", nargs="+", default=ALGOS)
    ap.add_argument("--updates", type=int, default=80)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument(
        "--jobs", type=int, default=1, help="runs in parallel (each on one thread; use the number of cores)"
    )
    ap.add_argument(
        "--table-only", action="store_true", help="redo the plots and the table from the saved results JSON"
    )
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        results = json.loads((OUT / "credit_assignment.json").read_text())
        _plots(results, args)
        _table(results, args)
        return
    combos = [(algo, k, seed) for k in args.turns for algo in args.algos for seed in args.seeds]
    # longest runs first (K, then TRePO's branches) so the parallel jobs finish together
    order = sorted(combos, key=lambda c: (-c[1], c[0] != "trepo"))
    done: dict[tuple, list[dict]] = {}
    with multiprocessing.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        jobs = {c: pool.apply_async(run_one, (*c, args.updates, args.lr)) for c in order}
        for c in order:
            rows = done[c] = jobs[c].get()
            print(
                f"K={c[1]} {c[0]} seed={c[2]}: final reward {rows[-1]['reward/mean']:.3f} reach={first_reach(rows, args.target, args.window)}",
                flush=True,
            )
    results: dict[str, dict] = {}
    for k in args.turns:
        for algo in args.algos:
            results[f"{k}/{algo}"] = {"turns": k, "algo": algo, "runs": [done[(algo, k, seed)] for seed in args.seeds]}
    (OUT / "credit_assignment.json").write_text(json.dumps(results))
    _plots(results, args)
    _table(results, args)


def _plots(results: dict, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for k in args.turns:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for algo in args.algos:
            runs = results[f"{k}/{algo}"]["runs"]
            n = min(len(r) for r in runs)
            mean = [statistics.mean(r[i]["reward/mean"] for r in runs) for i in range(n)]
            toks = [statistics.mean(r[i]["tokens/cumulative"] for r in runs) for i in range(n)]
            axes[0].plot(range(1, n + 1), mean, label=algo)
            axes[1].plot(toks, mean, label=algo)
        axes[0].set_xlabel("update"), axes[1].set_xlabel("sampled tokens (incl. branch continuations)")
        for ax in axes:
            ax.set_ylabel(f"reward (mean of {len(args.seeds)} seeds)")
            ax.axhline(args.target, color="grey", ls=":")
            ax.legend()
        fig.suptitle(f"CreditChain K={k}, tiny-random, constrained decoding")
        fig.tight_layout()
        fig.savefig(OUT / f"credit_assignment_K{k}.png", dpi=90)
        plt.close(fig)


def _table(results: dict, args: argparse.Namespace) -> None:
    lines = [
        machine_line(),
        f"tiny-random (2 layers, SmolLM2 tokenizer), constrained decoding to the env's digits "
        f"(every algorithm trains the constrained policy that sampled: logprobs renormalised over the allowed tokens); 4 tasks x 4 episodes per update, "
        f"4 PPO epochs x 2 minibatches, lr {args.lr}, {args.updates} updates, seeds {args.seeds}. "
        f"'reach' = first update where the {args.window}-update moving average of reward >= {args.target}; a run that does not reach it counts as budget + 1 in the median; "
        "tokens count every sampled token, TRePO's branch continuations included. Plots: benchmarks/results/credit_assignment_K*.png.",
        "",
        "| K | algorithm | runs reaching target | updates to reach, per seed | median updates to reach | sampled tokens to reach (mean of those reaching) | final reward (mean of last 5, over seeds) | tokens per update |",
        "|---|---|---|---|---|---|---|---|",
    ]
    medians: dict[tuple[int, str], float] = {}
    per_update: dict[tuple[int, str], float] = {}
    to_reach: dict[tuple[int, str], float] = {}
    for _key, res in results.items():
        reach = [first_reach(r, args.target, args.window) for r in res["runs"]]
        hit = [x for x in reach if x[0] is not None]
        # a run that never reaches the target needs more than the budget: count it as budget + 1 (censored)
        med = statistics.median(x[0] if x[0] is not None else args.updates + 1 for x in reach)
        medians[(res["turns"], res["algo"])] = med
        med_s = f"{med:.0f}" if med <= args.updates else f"> {args.updates}"
        per_seed = " / ".join(str(x[0]) if x[0] is not None else "—" for x in reach)
        final = statistics.mean(statistics.mean(row["reward/mean"] for row in r[-5:]) for r in res["runs"])
        tpu = statistics.mean(r[-1]["tokens/cumulative"] / len(r) for r in res["runs"])
        tok = f"{statistics.mean(h[1] for h in hit):,.0f}" if hit else "—"
        per_update[(res["turns"], res["algo"])] = tpu
        if hit:
            to_reach[(res["turns"], res["algo"])] = statistics.mean(h[1] for h in hit)
        lines.append(
            f"| {res['turns']} | {res['algo']} | {len(hit)}/{len(reach)} | {per_seed} | {med_s} | {tok} | {final:.3f} | {tpu:,.0f} |"
        )
    lines.append("")
    tokens: dict[int, str] = {}
    for k in args.turns:  # the token cost, honestly: TRePO's continuations are paid for in sampled tokens
        if (k, "trepo") not in per_update or (k, "grpo") not in per_update:
            continue
        txt = f"Token cost: TRePO samples {per_update[(k, 'trepo')] / per_update[(k, 'grpo')]:.1f}x GRPO's tokens per update"
        others = {a: v for (kk, a), v in to_reach.items() if kk == k and a != "trepo"}
        if (k, "trepo") in to_reach and others:
            best = min(others, key=others.get)
            txt += (
                f"; to reach {args.target} it sampled {to_reach[(k, 'trepo')]:,.0f} tokens (mean of its runs) against "
                f"{others[best]:,.0f} for {best}'s runs that reached it ({to_reach[(k, 'trepo')] / others[best]:.1f}x)"
            )
        tokens[k] = txt + "."
    for k in args.turns:
        if (k, "trepo") in medians and (k, "grpo") in medians:
            t, g = medians[(k, "trepo")], medians[(k, "grpo")]
            g_s = f"{g:.0f}" if g <= args.updates else f"more than {args.updates}"
            if t > args.updates:
                lines.append(
                    f"K={k}: TRePO's median run does not reach {args.target} within {args.updates} updates; target **not met**."
                )
                continue
            if g > args.updates and 2 * t > args.updates:  # GRPO censored: only an upper bound on the ratio
                verdict = (
                    f"not shown: GRPO's median run does not reach it within the budget, so TRePO needs at most "
                    f"{t / (args.updates + 1):.2f}x of GRPO's updates; showing 0.5x needs a budget of {2 * t:.0f}+ updates"
                )
            elif g > args.updates:  # censored, but the bound already proves the target
                verdict = f"met (TRePO needs at most {t / (args.updates + 1):.2f}x of GRPO's updates)"
            else:
                verdict = ("met" if 2 * t <= g else "not met") + f" ({t / g:.2f}x)"
            lines.append(
                f"K={k}: TRePO's median {t:.0f} updates to reach {args.target} against GRPO's {g_s}; "
                f"target (at most half of GRPO's): **{verdict}**. {tokens[k]}"
            )
    write_section("Credit assignment (CreditChain)", "\n".join(lines))


if __name__ == "__main__":
    main()
