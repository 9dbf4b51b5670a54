"""Turn-level credit, side by side (issue 29 part 5): every estimator on CreditChain at equal sampled tokens.

TRePO at its default and at its cheapest unbiased setting, GiGPO, the turn-level critic (ppo_turn), GRPO, RLOO and
PPO-GAE, on CreditChain K = 6 and 12, with benchmarks/credit_assignment.py's settings (tiny-random, constrained
decoding, 4 tasks x 4 episodes per update, 4 PPO epochs x 2 minibatches, lr 5e-4; its `run_one` runs each one).
What is equal is the cost, not the number of updates: each run stops once it has sampled its token budget
(`train.max_tokens`; TRePO's branch continuations count), default 5,000 x K tokens (GRPO: 156 updates at 32 x K
tokens per update). Per run: updates and sampled tokens to reach the target (first update where the 5-update moving
average of reward >= 0.9; credit_assignment.first_reach), final reward (mean of the last 5 updates), wall time.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/credit_methods.py            # everything, resumable
    ... benchmarks/credit_methods.py --ks 6 --seeds 0 --methods grpo trepo_cheap          # a part
    ... benchmarks/credit_methods.py --smoke       # the pipeline at a tiny budget; results in /tmp/credit_methods
    ... benchmarks/credit_methods.py --render      # plots + the BENCHMARKS.md section from what is saved

A run writes the JSON and the plots and prints the section; only --render writes BENCHMARKS.md.

Resumable: each (K, method, seed) result is written to benchmarks/results/credit_methods.json as soon as it ends,
and a rerun of the same command skips the runs saved with the same budget and settings. A run in progress keeps its
run directory under --runs-dir (default /tmp/credit_methods_runs), checkpointed every 5 updates; killed, it goes on
from its last checkpoint when the same command runs again (the directory is removed once the run is saved).

`trepo_cheap` is the cheapest setting that stays unbiased (docs/DESIGN.md, "Cheaper branch points" and "Episode
length"): `divergence` branch points (a turn start counts only while another episode of the batch shares it, free
when one does, plus the first turn start where the episode is alone, which alone pays continuations), M = 1 at the
policy's temperature (`branch_t_min: null`; with M = 1 a greedy continuation would make every V̂ the greedy
policy's value), and the continuations trained on as rows (`train_continuations`: on-policy samples, baseline
independent of their own actions, no extra sampled tokens). `sample:q` pays M continuations at about q of the turns
whatever the batch shares, so it is cheaper only with q so small that few turns get a value of their own (q -> 0 is
RLOO-like credit); `random:k` and `interpolate` are biased when the agent sets the length.

How long it takes (2026-12-06, this machine: 2-core AMD EPYC, 1 torch thread). Per update at K = 6, from the smoke
(first updates, wall s, the machine shared with one 2-thread benchmark): grpo 1.4, rloo 1.4, gigpo 1.5, ppo_turn 1.9,
ppo_gae 2.4, trepo 2.3 (~480 tokens per update), trepo_cheap 3.3 (~330 tokens at the start, its continuations
trained as rows). At the default budget (30,000 tokens at K = 6) one run is then about: grpo, rloo, gigpo 156 updates,
~4 min; ppo_turn ~5 min; ppo_gae ~6 min; trepo ~63 updates, ~3 min; trepo_cheap ~90-120 updates, ~5-7 min; all seven
~30 min per seed on a core of its own. K = 12 has twice the tokens per update and twice the budget: the same number
of updates, each about twice as long, ~60 min per seed. The full comparison (7 methods x 2 K x 3 seeds = 42 runs) is
then ~4.5 hours of one core. At nice 19 beside a busy 2-core benchmark and other sessions' tests (load 7-9) the
runs got 2-5% of a core: an update took 60-130 s instead of 1.5-3 s, and no real run finished in an hour. Run it
when the cores are free, or with --methods / --ks / --seeds in parts.

The real-task setting of the agent-learning benchmark (SmolLM2-135M on ToolUse) is not run here: `--real` says why.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import credit_assignment
from _common import machine_line, write_section
from credit_assignment import first_reach, run_one

from agentrl.core.io import atomic_write_text

# method -> (estimator, overrides beyond credit_assignment.run_one's); every other parameter at its default
METHODS: dict[str, tuple[str, list[str]]] = {
    "trepo": ("trepo", []),
    "trepo_cheap": (
        "trepo",
        [
            "algorithm.params.branch_points=divergence",
            "algorithm.params.branch_m=1",
            "algorithm.params.branch_t_min=null",
            "algorithm.params.train_continuations=true",
        ],
    ),
    "gigpo": ("gigpo", []),
    "ppo_turn": ("ppo_turn", []),
    "grpo": ("grpo", []),
    "rloo": ("rloo", []),
    "ppo_gae": ("ppo_gae", []),
}
TOKENS_PER_TURN = 5000  # default budget: this x K sampled tokens per run (GRPO: 156 updates)
MAX_UPDATES = 100_000  # the token budget stops each run; this only has to be out of reach
CHECKPOINT_EVERY = 5  # updates between checkpoints of a run in progress (tiny-random: a few MB each)
LR = 5e-4
TARGET, WINDOW = 0.9, 5
SECTION = "Credit methods side by side (CreditChain, equal sampled tokens)"
REAL_SKIP = (
    "not run: the agent-learning benchmark's real-task setting (SmolLM2-135M on ToolUse, benchmarks/agent_learning.py) "
    "takes hours per run and several GB of memory on this 2-core CPU, beside other benchmarks; "
    "7 methods x 3 seeds there need a GPU machine"
)


def run_method(method: str, k: int, seed: int, budget: int, runs_dir: Path) -> dict:
    algo, extra = METHODS[method]
    run_dir = _run_dir(runs_dir, k, method, seed, budget)
    runs_dir.mkdir(parents=True, exist_ok=True)
    # CPU time per start of the run, beside its directory (the trainer resumes only a directory that holds its
    # own files): a start killed before it ended leaves None (its CPU time is not known)
    seg_path = run_dir.with_suffix(".segments.json")
    segments = json.loads(seg_path.read_text()) if seg_path.exists() else []
    segments.append(None)
    atomic_write_text(seg_path, json.dumps(segments))
    c0 = time.process_time()
    # checkpointed every few updates and resumed from there: a run killed midway goes on when the command runs again
    resume = [f"train.checkpoint_every={CHECKPOINT_EVERY}", "train.resume=true"]
    rows = run_one(
        algo, k, seed, MAX_UPDATES, LR, extra=[*extra, f"train.max_tokens={budget}", *resume], run_dir=run_dir
    )
    segments[-1] = time.process_time() - c0  # this process's CPU time (1 torch thread): the cost on an idle core
    res = {
        "k": k,
        "method": method,
        "seed": seed,
        "budget": budget,
        "settings": {"algo": algo, "overrides": extra, "lr": LR},
        "wall_s": sum(row["time/total"] for row in rows),  # the updates' own wall time, whatever the restarts
        "cpu_s": sum(x for x in segments if x is not None),
        "starts": len(segments),
        "cpu_s_complete": None not in segments,
        "rows": [{key: row[key] for key in ("step", "reward/mean", "tokens/cumulative", "time/total")} for row in rows],
    }
    return res


def _run_dir(runs_dir: Path, k: int, method: str, seed: int, budget: int) -> Path:
    return runs_dir / f"K{k}_{method}_seed{seed}_budget{budget}"


def _key(k: int, method: str, seed: int) -> str:
    return f"{k}/{method}/{seed}"


def _load(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def _finished(res: dict | None, method: str, budget: int) -> bool:
    algo, extra = METHODS[method]
    return (
        res is not None and res["budget"] == budget and res["settings"] == {"algo": algo, "overrides": extra, "lr": LR}
    )


def _budgets(args: argparse.Namespace) -> dict[int, int]:
    if args.budget is None:
        return {k: TOKENS_PER_TURN * k for k in args.ks}
    if len(args.budget) == 1:
        return dict.fromkeys(args.ks, args.budget[0])
    if len(args.budget) != len(args.ks):
        sys.exit(f"--budget: one value, or one per K ({len(args.ks)}), got {len(args.budget)}")
    return dict(zip(args.ks, args.budget))


def _summary(res: dict) -> dict:
    rows = res["rows"]
    step, tokens = first_reach(rows, TARGET, WINDOW)
    return {
        "updates_to_reach": step,
        "tokens_to_reach": tokens,
        "final": statistics.mean(r["reward/mean"] for r in rows[-5:]),
        "updates": len(rows),
        "tokens": rows[-1]["tokens/cumulative"],
        "wall_s": res["wall_s"],
        "cpu_s": res.get("cpu_s", float("nan")),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--ks", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--budget",
        type=int,
        nargs="+",
        help=f"sampled tokens per run: one for every K, or one per K (default {TOKENS_PER_TURN} x K)",
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny budget (300 tokens unless --budget), results in /tmp/credit_methods",
    )
    ap.add_argument("--out", type=Path, help="where the JSON and plots go (default benchmarks/results/, smoke /tmp)")
    ap.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("/tmp/credit_methods_runs"),
        help="run directories of the runs in progress (checkpoints to resume from; removed once a run is saved)",
    )
    ap.add_argument("--render", action="store_true", help="only the plots and the BENCHMARKS.md section, from the JSON")
    ap.add_argument("--real", action="store_true", help="the SmolLM2 / ToolUse setting: not run (says why)")
    args = ap.parse_args(argv)
    if args.real:
        sys.exit(f"--real: {REAL_SKIP}.")
    out = args.out or (Path("/tmp/credit_methods") if args.smoke else credit_assignment.OUT)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "credit_methods.json"
    runs_dir = args.runs_dir
    budgets = dict.fromkeys(args.ks, 300) if args.smoke and args.budget is None else _budgets(args)
    if not args.render:
        for k in args.ks:
            for seed in args.seeds:
                for method in args.methods:
                    results = _load(path)  # reread: a run may take minutes; keep whatever else wrote meanwhile
                    if _finished(results.get(_key(k, method, seed)), method, budgets[k]):
                        continue
                    res = run_method(method, k, seed, budgets[k], runs_dir)
                    results = _load(path)
                    results[_key(k, method, seed)] = res
                    atomic_write_text(path, json.dumps(results))
                    done = _run_dir(runs_dir, k, method, seed, budgets[k])  # saved: its checkpoints are not needed
                    shutil.rmtree(done)
                    done.with_suffix(".segments.json").unlink()
                    s = _summary(res)
                    print(
                        f"K={k} {method} seed={seed}: {s['updates']} updates, {s['tokens']:,.0f} tokens, "
                        f"final {s['final']:.3f}, reach {s['updates_to_reach']} updates / {s['tokens_to_reach']} "
                        f"tokens, {s['wall_s']:.0f} s wall, {s['cpu_s']:.0f} s CPU",
                        flush=True,
                    )
    results = _load(path)
    _plots(results, args, out, budgets)
    body = _section(results, args, budgets)
    if args.smoke:  # never BENCHMARKS.md
        atomic_write_text(out / "section.md", body)
        print(f"smoke: results, plots and the section in {out}")
    elif args.render:  # only on request: a partial run should not rewrite the published section by itself
        write_section(SECTION, body)
    else:
        print(body)


def _runs(results: dict, args: argparse.Namespace, budgets: dict[int, int], k: int, method: str) -> list[dict]:
    """The finished runs of (k, method) at this budget, in seed order."""
    got = [results.get(_key(k, method, s)) for s in args.seeds]
    return [r for r in got if _finished(r, method, budgets[k])]


def _plots(results: dict, args: argparse.Namespace, out: Path, budgets: dict[int, int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    for k in args.ks:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for i, method in enumerate(args.methods):
            runs = _runs(results, args, budgets, k, method)
            if not runs:
                continue
            color = f"C{i}"
            # seeds sample different tokens per update (TRePO's continuations): average on a common token grid
            first = max(r["rows"][0]["tokens/cumulative"] for r in runs)
            top = min(r["rows"][-1]["tokens/cumulative"] for r in runs)
            grid = np.linspace(first, max(first, top), 200)
            curves = []
            for r in runs:
                toks = [row["tokens/cumulative"] for row in r["rows"]]
                rew = [row["reward/mean"] for row in r["rows"]]
                axes[0].plot(toks, rew, color=color, alpha=0.2, lw=0.7)
                curves.append(np.interp(grid, toks, rew))
            axes[0].plot(grid, np.mean(curves, axis=0), color=color, label=f"{method} ({len(runs)} seeds)")
            n = min(len(r["rows"]) for r in runs)
            mean = [statistics.mean(r["rows"][j]["reward/mean"] for r in runs) for j in range(n)]
            axes[1].plot(range(1, n + 1), mean, color=color, label=method)
        axes[0].set_xlabel("sampled tokens (TRePO's branch continuations included)")
        axes[1].set_xlabel("update")
        for ax in axes:
            ax.set_ylabel("reward (mean over seeds; thin: each seed)" if ax is axes[0] else "reward (mean over seeds)")
            ax.axhline(TARGET, color="grey", ls=":")
            ax.legend(fontsize=8)
        fig.suptitle(f"CreditChain K={k}, tiny-random, constrained decoding, {budgets[k]:,} sampled tokens per run")
        fig.tight_layout()
        fig.savefig(out / f"credit_methods_K{k}.png", dpi=90)
        plt.close(fig)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("inf")


def _fmt(x: float, unit: str = "") -> str:
    return "—" if x == float("inf") else f"{x:,.0f}{unit}"


def _section(results: dict, args: argparse.Namespace, budgets: dict[int, int]) -> str:
    lines = [
        machine_line(threads=1),  # every run sets train.threads=1 (credit_assignment.run_one)
        "Issue 29 part 5, `benchmarks/credit_methods.py`: benchmarks/credit_assignment.py's settings (tiny-random, "
        f"constrained decoding, 4 tasks x 4 episodes per update, 4 PPO epochs x 2 minibatches, lr {LR}, 1 torch thread, "
        "each estimator's default parameters), but every run stops at a budget of sampled tokens instead of a number "
        f"of updates: {', '.join(f'K={k}: {b:,}' for k, b in budgets.items())} (TRePO's branch continuations count; a "
        f"run ends at the first update that crosses it). 'reach' = first update where the {WINDOW}-update moving "
        f"average of reward >= {TARGET} (— = not within the budget; medians count such runs as infinite). "
        "`trepo_cheap` = `branch_points=divergence`, `branch_m=1`, `branch_t_min=null`, `train_continuations=true` "
        "(the cheapest unbiased setting; why in the script's docstring). Wall time is one run on 1 thread at nice 19 "
        "beside other work on both cores (an upper bound, and noisy); CPU time is the run's own, what it takes on an "
        "idle core. Plots: benchmarks/results/credit_methods_K*.png.",
        "",
        "| K | method | runs done | reach: updates per seed | median updates | reach: tokens per seed | median tokens "
        "| final reward (last 5 updates, mean over seeds) | updates in budget | tokens per update | wall s per run | CPU s per run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    med_upd: dict[tuple[int, str], float] = {}
    med_tok: dict[tuple[int, str], float] = {}
    final: dict[tuple[int, str], float] = {}
    upd_run: dict[tuple[int, str], float] = {}
    missing: list[str] = []
    for k in args.ks:
        for method in args.methods:
            runs = _runs(results, args, budgets, k, method)
            missing += [
                f"K={k} {method} seed {s}"
                for s in args.seeds
                if not _finished(results.get(_key(k, method, s)), method, budgets[k])
            ]
            if not runs:
                lines.append(f"| {k} | {method} | 0/{len(args.seeds)} | not run | | | | | | | | |")
                continue
            sums = [_summary(r) for r in runs]
            inf = float("inf")
            upd = [s["updates_to_reach"] if s["updates_to_reach"] is not None else inf for s in sums]
            tok = [s["tokens_to_reach"] if s["tokens_to_reach"] is not None else inf for s in sums]
            key = (k, method)
            med_upd[key], med_tok[key] = _median(upd), _median(tok)
            final[key] = statistics.mean(s["final"] for s in sums)
            upd_run[key] = statistics.mean(s["updates"] for s in sums)
            tpu = statistics.mean(s["tokens"] / s["updates"] for s in sums)
            cpu = statistics.mean(s["cpu_s"] for s in sums)
            cpu_s = f"{cpu:,.0f}" if all(r.get("cpu_s_complete", True) for r in runs) else f">= {cpu:,.0f} (restarted)"
            lines.append(
                f"| {k} | {method} | {len(runs)}/{len(args.seeds)} | {' / '.join(_fmt(x) for x in upd)} "
                f"| {_fmt(med_upd[key])} | {' / '.join(_fmt(x) for x in tok)} | {_fmt(med_tok[key])} "
                f"| {final[key]:.3f} | {upd_run[key]:.0f} | {tpu:,.0f} "
                f"| {statistics.mean(s['wall_s'] for s in sums):,.0f} | {cpu_s} |"
            )
    lines.append("")
    if missing:
        lines.append(f"**Not done** ({len(missing)} runs): {', '.join(missing)}. Medians are over the seeds done.")
        lines.append("")
    for k in args.ks:
        gaps = sum(m.startswith(f"K={k} ") for m in missing)
        note = f"provisional, {gaps} of its runs not done: " if gaps else ""
        lines.append(f"K={k}: {note}" + _verdict(k, args, med_upd, med_tok, final, upd_run))
    lines.append("")
    lines.append(f"The real-task setting (SmolLM2-135M on ToolUse) the issue also asks for: {REAL_SKIP}.")
    return "\n".join(lines)


def _verdict(
    k: int,
    args: argparse.Namespace,
    med_upd: dict[tuple[int, str], float],
    med_tok: dict[tuple[int, str], float],
    final: dict[tuple[int, str], float],
    upd_run: dict[tuple[int, str], float],
) -> str:
    """Issue 29's target (TRePO reaches 0.9 with at most GRPO's sampled tokens and at most 0.5x GRPO's updates) for
    each TRePO setting, then who wins, all from the medians measured; a median that did not reach is censored."""
    inf = float("inf")
    out = []
    if (k, "grpo") not in med_upd:
        out.append("GRPO not run, so the target cannot be judged.")
    else:
        g_u, g_t, g_run = med_upd[(k, "grpo")], med_tok[(k, "grpo")], upd_run[(k, "grpo")]
        for m in ("trepo", "trepo_cheap"):
            if (k, m) not in med_upd:
                continue
            t_u, t_t = med_upd[(k, m)], med_tok[(k, m)]
            if t_u == inf:
                out.append(f"`{m}`: its median run does not reach {TARGET} within the budget; target **missed**.")
                continue
            if g_t == inf:  # GRPO's median needs more than the budget, so more than TRePO's tokens
                tok_ok, tok_txt = True, f"{t_t:,.0f} tokens against GRPO's more than the budget"
                u_bound = g_run  # GRPO's median needs more than the updates it ran
                upd_ok = True if t_u <= 0.5 * u_bound else None
                upd_txt = f"{t_u:.0f} updates against GRPO's more than {u_bound:.0f} (at most {t_u / u_bound:.2f}x)"
            else:
                tok_ok, tok_txt = t_t <= g_t, f"{t_t:,.0f} tokens against GRPO's {g_t:,.0f} ({t_t / g_t:.2f}x)"
                upd_ok = t_u <= 0.5 * g_u
                upd_txt = f"{t_u:.0f} updates against GRPO's {g_u:.0f} ({t_u / g_u:.2f}x)"
            word = {True: "met", False: "missed", None: "not shown (GRPO censored; needs a larger budget)"}
            out.append(
                f"`{m}`: tokens (at most GRPO's) **{word[tok_ok]}**, {tok_txt}; updates (at most 0.5x GRPO's) "
                f"**{word[upd_ok]}**, {upd_txt}."
            )
    here = [m for m in args.methods if (k, m) in med_upd]
    reached = [m for m in here if med_tok[(k, m)] < inf]
    if reached:
        by_tok = min(reached, key=lambda m: med_tok[(k, m)])
        by_upd = min(reached, key=lambda m: med_upd[(k, m)])
        out.append(
            f"Fewest sampled tokens to reach {TARGET} (median): **{by_tok}** ({med_tok[(k, by_tok)]:,.0f}); fewest "
            f"updates: **{by_upd}** ({med_upd[(k, by_upd)]:.0f})."
        )
    else:
        out.append(f"No method's median run reached {TARGET} within the budget.")
    if here:
        best = max(here, key=lambda m: final[(k, m)])
        out.append(f"Highest final reward at the budget: **{best}** ({final[(k, best)]:.3f}).")
    return " ".join(out)


if __name__ == "__main__":
    main()
