"""Does the quickstart's RL stage add to its SFT stage (issue 28, part 5)? `make quickstart` as it ships, timed from
a clean run directory, and RL variants from the same SFT checkpoint, each with the held-out curve on the quickstart's
25 test tasks (greedy). Target: the RL stage ends at least two tasks of 25 above SFT (beyond one task), and the
whole quickstart takes at most 10 minutes here. Each variant is saved as soon as it is done
(benchmarks/results/quickstart_rl.json) and skipped when the command is run again; run on a quiet machine.

    .venv/bin/python benchmarks/quickstart_rl.py              # the shipped quickstart, then each variant
    .venv/bin/python benchmarks/quickstart_rl.py --render
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import ROOT, machine_line, write_section

from agentrl.core.io import atomic_write_text

OUT = ROOT / "benchmarks" / "results" / "quickstart_rl.json"
RUNS = ROOT / "runs" / "quickstart_rl"
TITLE = "Quickstart: does its RL stage add to SFT?"
EXTRA: list[str] = []  # overrides for every stage (--smoke: a tiny random model, 2 tasks, 1 update)
# RL stages run from the shipped quickstart's SFT checkpoint (config overrides of examples/quickstart.yaml)
VARIANTS: dict[str, list[str]] = {
    # the rl_beyond_noise `t07` setting at quickstart scale: sampling at 0.7, stratified draws, one refill round
    "t07, 2x8 episodes, 8 updates": [
        "rollout.temperature=0.7",
        "rollout.task_draw=stratified",
        "rollout.refill_rounds=1",
        "rollout.group_size=8",
        "ppo.minibatch_size=16",
        "train.updates=8",
        "train.eval_every=4",
        "train.checkpoint_every=8",
    ],
}


def curve(run: Path) -> list[tuple[int, float]]:
    """(update, held-out success) of a run directory, as the quickstart reads it (`report.series`)."""
    from agentrl.report import load_metrics, series

    steps, rates = series(load_metrics(run / "metrics.jsonl"), "eval/success_rate")
    return [(int(u), r) for u, r in zip(steps, rates)]


def load() -> dict[str, Any]:
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def save(d: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT, json.dumps(d, indent=1))


def shipped(d: dict[str, Any]) -> Path:
    """`make quickstart` as it ships (its own process's work: SFT, RL, evaluations, report), timed."""
    from agentrl import quickstart

    run = RUNS / "shipped"
    if "shipped" not in d:
        t0 = time.perf_counter()
        quickstart.main([*EXTRA, f"train.run_dir={run}"])
        sft = run.with_name(run.name + "-sft")
        d["shipped"] = {"seconds": time.perf_counter() - t0, "sft": curve(sft), "rl": curve(run)}
        save(d)
    return run.with_name(run.name + "-sft")


def variant(d: dict[str, Any], name: str, overrides: list[str], sft: Path) -> None:
    from agentrl import quickstart
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    if name in d.get("variants", {}):
        return
    run = RUNS / f"variant{list(VARIANTS).index(name)}"
    cfg = load_config(
        quickstart.CONFIG,
        [
            *overrides,
            *EXTRA,
            f"model={sft}",
            f"train.run_dir={run}",
            "train.eval_before_train=false",
            "train.overwrite=true",
        ],
    )
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    try:
        trainer.run()
    finally:
        trainer.close()
    d.setdefault("variants", {})[name] = {"seconds_rl": time.perf_counter() - t0, "rl": curve(run)}
    save(d)


def render() -> None:
    d = load()
    s = d.get("shipped")
    if not s:
        return
    sft = s["sft"][-1][1]
    rows = [
        "| RL stage | held-out curve (update: success) | after RL − after SFT (tasks of 25) | time |",
        "|---|---|---|---|",
    ]

    def tasks_gained(rl: list[tuple[int, float]]) -> int:
        return round((rl[-1][1] - sft) * 25) if rl else 0

    def row(name: str, rl: list[tuple[int, float]], secs: str) -> str:
        gain = tasks_gained(rl)
        pts = ", ".join(f"{u}: {v:.2f}" for u, v in rl)
        return f"| {name} | SFT {sft:.2f}; {pts} | {gain:+d} | {secs} |"

    rows.append(row("shipped (examples/quickstart.yaml)", s["rl"], f"whole quickstart {s['seconds'] / 60:.1f} min"))
    for name, v in d.get("variants", {}).items():
        rows.append(row(name, v["rl"], f"RL stage {v['seconds_rl'] / 60:.1f} min"))
    gain = tasks_gained(s["rl"])
    ok = gain >= 2 and s["seconds"] <= 600
    body = [
        machine_line(),
        "",
        "Written by `benchmarks/quickstart_rl.py`: `make quickstart` as it ships (SFT on 80 ToolUse-v0 tier-1 "
        "demonstrations, then TRePO), and RL variants from its SFT checkpoint. Held-out: the first 25 test tasks, "
        f"greedy; one task is 0.04, one standard error about 0.10. Base model {s['sft'][0][1]:.2f}.",
        "",
        *rows,
        "",
        f"Target: the shipped RL stage at least 2 tasks above SFT within 10 minutes — **{'met' if ok else 'missed'}** "
        f"({gain:+d} tasks, {s['seconds'] / 60:.1f} min).",
    ]
    if d.get("note"):
        body += ["", d["note"]]
    if OUT.parts[1] == "tmp":  # --smoke
        print("\n".join(body))
        return
    write_section(TITLE, "\n".join(body))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--note", default=None, help="a paragraph for BENCHMARKS.md")
    ap.add_argument("--smoke", action="store_true", help="a tiny random model, results in /tmp: checks the pipeline")
    args = ap.parse_args()
    if args.smoke:
        global OUT, RUNS
        OUT, RUNS = Path("/tmp/agentrl_smoke/quickstart_rl.json"), Path("/tmp/agentrl_smoke/quickstart_rl")
        EXTRA.extend(["model=tiny-random", "train.eval_tasks=2", "train.updates=2", "train.eval_every=1"])
    d = load()
    if args.note is not None:
        d["note"] = args.note
        save(d)
    if not args.render:
        from agentrl.core.registry import load_env_plugins

        load_env_plugins()
        sft = shipped(d)
        for name, overrides in VARIANTS.items():
            variant(d, name, overrides, sft)
    render()


if __name__ == "__main__":
    main()
