"""Agent learning that can decide (issue 28, part 4): does RL after SFT make SmolLM2-135M better on ToolUse-v0
(`--env tooluse`, the default) and Consultation-v0 (`--env consultation`), beyond noise? 100 held-out tasks (ToolUse:
tiers 1-2 of the test split; Consultation: the 100 test cases; one standard error <= 5 points), two RL seeds,
TRePO and GRPO at equal sampled tokens (TRePO's continuations counted), a random-reward control run (GRPO on
Bernoulli(0.4) returns: the noise floor of the whole pipeline), greedy and sampled held-out success, and each
checkpoint compared with the SFT one by paired per-task flips.

Stages, each saved as soon as it is done (benchmarks/results/rl_beyond_noise/<env>_<setting>.json), so the benchmark can be
stopped at any point and started again with the same command: the SFT checkpoint (shared with
benchmarks/agent_learning.py), its held-out evaluation, then per seed and arm an RL run that checkpoints every few
updates and resumes from its newest checkpoint (train.resume), then its held-out evaluation. Wall time per stage
is recorded; `--render` rewrites the BENCHMARKS.md section from what is there, marking what has not run.
Two arms may run in two processes (`--arms grpo` and `--arms control`, `--threads 1` each) only where memory
allows: each ToolUse update peaks at about 11.5 GiB, so on a 24 GiB machine run one arm at a time.

    .venv/bin/python benchmarks/rl_beyond_noise.py                        # everything, resuming
    .venv/bin/python benchmarks/rl_beyond_noise.py --arms grpo control --seeds 0
    .venv/bin/python benchmarks/rl_beyond_noise.py --env consultation --setting t07 --arms trepo grpo control
    .venv/bin/python benchmarks/rl_beyond_noise.py --render
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, machine_line, write_section

from agentrl.core.io import atomic_write_text

# What differs between the two envs. The SFT checkpoint of each is benchmarks/agent_learning.py's (same name).
ENVS: dict[str, dict[str, Any]] = {
    "tooluse": {
        "id": "agentrl/ToolUse-v0",
        "kwargs": {"tier": [1, 2], "schema": "compact", "max_turns": 5},
        "max_new": 64,
        "budget": 150_000,  # sampled tokens per RL run (continuations and refills counted): ~60 GRPO updates
        "title": "Agent learning beyond noise: ToolUse-v0, 100 held-out tasks, two seeds, a random-reward control",
        "train": "ToolUse-v0's train split (tiers 1-2, compact prompt)",
        "held_out": "the test split's tiers 1-2 (100 tasks)",
        "settings": ("strat", "band", "t07"),
    },
    "consultation": {
        "id": "agentrl/Consultation-v0",
        "kwargs": {"max_turns": 8},
        "max_new": 32,
        # a consultation episode samples far fewer tokens than a ToolUse one (the agent_learning runs: 380-1,000
        # a GRPO / TRePO update): 30,000 is about 60 TRePO updates of 16 episodes
        "budget": 30_000,
        "title": "Agent learning beyond noise: Consultation-v0, 100 held-out cases, two seeds, a random-reward control",
        "train": "Consultation-v0's train split (256 generated cases, rule-based patient, at most 8 messages)",
        "held_out": "the test split's 100 cases, success = the right diagnosis",
        "settings": ("t07",),
    },
}
ENV = "tooluse"
OUT = ROOT / "benchmarks" / "results" / "rl_beyond_noise" / "tooluse.json"
RUNS = ROOT / "runs" / "rl_beyond_noise" / "tooluse"
TITLE = ENVS[ENV]["title"]
ENV_ID = ENVS[ENV]["id"]
ENV_KWARGS: dict[str, Any] = ENVS[ENV]["kwargs"]
MAX_NEW = ENVS[ENV]["max_new"]
BUDGET = ENVS[ENV]["budget"]
SAMPLED_TRIALS = 1  # held-out episodes per task at temperature 1
SEEDS = (0, 1)
TASKS: int | None = None  # held-out tasks (None: all 100); --smoke uses 3
SMOKE = False

# One config for every arm; only the estimator (and the control's rewards) differ.
COMMON: dict[str, Any] = {
    "env": {"id": ENV_ID, "kwargs": {**ENV_KWARGS, "split": "train"}},
    "rollout": {
        "groups": 2,
        "group_size": 8,
        "temperature": 1.0,
        "max_new_tokens": MAX_NEW,
        "max_seq_len": 4096,
        "refill_rounds": 2,
    },
    "optim": {"lr": 5e-6, "warmup_steps": 5},  # the old benchmark's 1e-5 lost 12 points in 4 updates on random rewards
    "ppo": {"epochs": 1, "minibatch_size": 16, "micro_batch_size": 8},
    "train": {
        "updates": 400,
        "max_tokens": BUDGET,
        "checkpoint_every": 5,
        "keep_checkpoints": 1,
        # the weights of every 10th update kept (run_dir/snapshots): the held-out curve and the late mean (--curve);
        # 517 MB each (float32), so every 5th (the first t07 runs) filled the disk with four runs' worth
        "snapshot_every": 10,
        "log_episodes": 0,
        "eval_every": 0,
        "threads": 2,
    },
}
# What differs between the settings tried. `band` was the first (its results file and run directories keep their
# old names): success_band draws held the run on the same 3 of 200 train tasks for 10 updates, and
# the agent learned to stop after one tool call on them (held-out tier 2, two calls, fell from 24 of 50 solved to 0).
# `strat` changes only the draw: tasks stratified by family, every family in turn. The loss stays token-mean, the
# unbiased one (seq-mean-token-mean weighs a token by 1/length: a length bias, tests/test_length_bias.py).
SETTINGS: dict[str, dict[str, Any]] = {
    "strat": {"rollout": {"task_draw": "stratified"}, "ppo": {"loss_agg": "token-mean"}},
    "band": {"rollout": {"task_draw": "success_band"}, "ppo": {"loss_agg": "token-mean"}},
    # `strat` sampled at temperature 1 (the evaluation is greedy): held-out weeks_between fell from 7 of 7 to 0 and
    # population_millions from 3 to 0 while their one-call halves (days_between, population) were reinforced. At T=1
    # the SFT checkpoint solves weeks_between 1 time in 7, so its groups rarely spread; at 0.7 the samples stay near
    # the greedy policy and a group's spread comes from the decisions greedy takes, not from stray tokens.
    "t07": {"rollout": {"task_draw": "stratified", "temperature": 0.7}, "ppo": {"loss_agg": "token-mean"}},
}
SETTING_NOTES = {
    "strat": "task draws `stratified` (by family), loss `token-mean`",
    "band": "task draws `success_band`, loss `token-mean` (the first attempt)",
    "t07": "as `strat`, sampling (episodes and TRePO's continuations) at temperature 0.7 instead of 1",
}
SETTING = "strat"

ARMS: dict[str, dict[str, Any]] = {
    "grpo": {"algorithm": {"name": "grpo"}},
    # continuations at the policy's temperature (unbiased V-hat, and on-policy so they can be trained on)
    "trepo": {
        "algorithm": {
            "name": "trepo",
            "params": {"branch_m": 1, "branch_points": "turns", "branch_t_min": None, "train_continuations": True},
        }
    },
    "control": {"algorithm": {"name": "grpo"}, "train": {"random_reward": 0.4}},
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load(setting: str | None = None) -> dict[str, Any]:
    f = out_file(setting or SETTING)
    return json.loads(f.read_text()) if f.exists() else {}


def save(d: dict[str, Any], *keys: str) -> None:
    """Write `keys` of `d` (all of them when none are named) into the results file, under a lock and merged with
    what is there, so runs of different arms in parallel processes keep each other's results."""
    import fcntl

    out = out_file(SETTING)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = load()
        now.update({k: d[k] for k in (keys or d)})
        atomic_write_text(out, json.dumps(now, indent=1))
        d.update(now)


def held_out(model: str, modes: tuple[str, ...] = ("greedy", "sampled")) -> dict[str, Any]:
    """Greedy (one episode per task) and sampled (SAMPLED_TRIALS at temperature 1) held-out results, per task."""
    from agentrl.eval.evaluate import evaluate

    out: dict[str, Any] = {}
    for mode, temp, trials in (("greedy", 0.0, 1), ("sampled", 1.0, SAMPLED_TRIALS)):
        if mode not in modes:
            continue
        t0 = time.perf_counter()
        r = evaluate(
            ENV_ID,
            model,
            env_kwargs={**ENV_KWARGS, "split": "test"},
            tasks=TASKS,
            trials=trials,
            seed=0,
            temperature=temp,
            max_new_tokens=MAX_NEW,
        )
        out[mode] = {
            "success": r.success_rate,
            "tasks": r.tasks,
            "trials": trials,
            "seconds": time.perf_counter() - t0,
            "per_task": {o.task_id: sum(o.successes) / len(o.successes) for o in r.outcomes},
        }
        log(f"  {mode} held-out {model}: {r.success_rate:.3f} over {r.tasks} tasks ({out[mode]['seconds']:.0f}s)")
    return out


def stage_sft(d: dict[str, Any]) -> Path:
    """The SFT checkpoint of benchmarks/agent_learning.py (same data, settings and run directory)."""
    import agent_learning as al

    res = al.Results(ENV)
    run = al.stage_sft(ENV, al.ENVS[ENV], res, 0)
    d.setdefault("sft", {"seconds": res.data.get("sft", {}).get("seconds"), "run": str(run)})
    save(d, "sft")
    return run


def out_file(setting: str) -> Path:
    return OUT if setting == "band" else OUT.with_name(f"{OUT.stem}_{setting}.json")


def run_dir(setting: str, seed: int, arm: str) -> Path:
    return (RUNS if setting == "band" else RUNS / setting) / f"seed{seed}" / arm


def rl_config(arm: str, seed: int, sft: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(json.dumps(COMMON))
    for part in (SETTINGS[SETTING], ARMS[arm]):
        for k, v in part.items():
            cfg[k] = {**cfg.get(k, {}), **v}
    run = run_dir(SETTING, seed, arm)
    cfg["model"] = str(sft)
    # a run directory that holds this run resumes it, from its newest checkpoint or, killed before its first one
    # (the config and marker written, no checkpoint yet), from the start (the trainer clears what it logged)
    cfg["train"].update(seed=seed, run_dir=str(run), resume=(run / "config.yaml").exists())
    return cfg


def stage_rl(d: dict[str, Any], arm: str, seed: int, sft: Path) -> None:
    from agentrl.report import load_metrics
    from agentrl.train.config import Config
    from agentrl.train.trainer import Trainer

    key = f"rl/{arm}/seed{seed}"
    if d.get(key, {}).get("done"):
        return
    cfg = rl_config(arm, seed, sft)
    t0 = time.perf_counter()
    log(f"{key}: {'resuming' if cfg['train']['resume'] else 'starting'} ({cfg['train']['run_dir']})")
    trainer = Trainer(Config.model_validate(cfg), console=True)
    try:
        trainer.run()
    finally:
        trainer.close()
    rows = [r for r in load_metrics(Path(cfg["train"]["run_dir"]) / "metrics.jsonl") if r["step"] > 0]
    log(
        f"{key}: {len(rows)} updates, {trainer.tokens_cumulative:,} tokens ({time.perf_counter() - t0:.0f}s in this call)"
    )
    d[key] = {
        "done": False,
        "seconds_rl": sum(r.get("time/total", 0.0) for r in rows),  # every call's, resumed ones too
        "updates": len(rows),
        "tokens": trainer.tokens_cumulative,
        "train_reward": [r.get("reward/mean") for r in rows],
        "zero_std": [r.get("groups/frac_reward_zero_std") for r in rows],
        "kl_step": [r.get("policy/kl_step") for r in rows],
        "greedy_flips": [r.get("policy/greedy_flips") for r in rows],
    }
    save(d, key)
    t1 = time.perf_counter()
    d[key]["eval"] = held_out(cfg["train"]["run_dir"])
    d[key]["seconds_eval"] = time.perf_counter() - t1
    d[key]["done"] = True
    save(d, key)


def stage_partial_eval(d: dict[str, Any], arm: str, seed: int) -> None:
    """A run stopped before its budget (out of session time): its newest checkpoint evaluated, marked as such."""
    from agentrl.report import load_metrics

    key = f"rl/{arm}/seed{seed}"
    run = run_dir(SETTING, seed, arm)
    if d.get(key, {}).get("done") or not (run / "checkpoints").is_dir():
        return
    from agentrl.core.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(run)
    step = int(ckpt.name.split("_")[-1]) if ckpt else 0
    if d.get(key, {}).get("partial_step") == step:
        return
    rows = [r for r in load_metrics(run / "metrics.jsonl") if 0 < r["step"] <= step]
    t1 = time.perf_counter()
    ev = held_out(str(run))
    d[key] = {
        "done": False,
        "stopped_early": True,
        "partial_step": step,
        "updates": step,
        "tokens": int(rows[-1]["tokens/cumulative"]) if rows else 0,
        "seconds_rl": sum(r.get("time/total", 0.0) for r in rows),
        "eval": ev,
        "seconds_eval": time.perf_counter() - t1,
        "train_reward": [r.get("reward/mean") for r in rows],
        "kl_step": [r.get("policy/kl_step") for r in rows],
        "greedy_flips": [r.get("policy/greedy_flips") for r in rows],
    }
    save(d, key)


def stage_curve(d: dict[str, Any], arm: str, seed: int, snapshots: Path | None, steps: list[int] | None) -> None:
    """Greedy held-out success of a run's snapshots, each once: the held-out curve of the run. Without `snapshots`,
    the run's own (`train.snapshot_every`: run_dir/snapshots/step_N/model); with it, checkpoints copied aside
    during a run from before that option, as `<arm>_seed<seed>_step<N>/model` under `snapshots`. `steps`: only
    those updates."""
    from agentrl.core.checkpoint import checkpoint_step

    key = f"rl/{arm}/seed{seed}"
    curve = d.setdefault("curves", {}).setdefault(key, {})
    if snapshots is None:
        found = {checkpoint_step(p): p for p in (run_dir(SETTING, seed, arm) / "snapshots").glob("step_*")}
    else:
        found = {int(p.name.rsplit("step", 1)[1]): p for p in snapshots.glob(f"{arm}_seed{seed}_step*")}
    for step, snap in sorted(found.items()):
        if str(step) in curve or (steps and step not in steps) or not (snap / "model" / "config.json").exists():
            continue
        g = held_out(str(snap / "model"), modes=("greedy",))["greedy"]
        curve[str(step)] = {"success": g["success"], "tasks": g["tasks"], "per_task": g["per_task"]}
        save(d, "curves")


# -- report ---------------------------------------------------------------------------------------------------


LATE = 2 / 3  # the late mean: snapshots from this fraction of a run's updates on, and its end checkpoint


def late_points(d: dict[str, Any], key: str) -> dict[int, dict[str, Any]]:
    """A run's late checkpoints, update -> greedy held-out evaluation: the snapshots of updates >= LATE x its updates
    evaluated with --curve, and the end one; empty for a run not evaluated or stopped early."""
    r = d.get(key) or {}
    if not r.get("eval") or r.get("stopped_early"):
        return {}
    pts = {int(k): v for k, v in d.get("curves", {}).get(key, {}).items() if int(k) >= LATE * r["updates"]}
    pts[int(r["updates"])] = r["eval"]["greedy"]
    return pts


def late_mean(d: dict[str, Any], key: str) -> tuple[float, list[int]] | None:
    """Greedy held-out success averaged over a run's late checkpoints (`late_points`), and their updates; None before
    two of them are evaluated. One checkpoint's success moves by up to 19 points between snapshots 10 updates apart
    (setting t07, TRePO seed 0), so the end checkpoint alone is a noisy verdict; the late mean is the steadier one."""
    pts = late_points(d, key)
    if len(pts) < 2:
        return None
    return sum(v["success"] for v in pts.values()) / len(pts), sorted(pts)


def late_per_task(d: dict[str, Any], key: str) -> dict[str, float] | None:
    """Per held-out task, the fraction of a run's late checkpoints that solve it (greedy), over the tasks every one
    of them evaluated; None before two are evaluated. Two runs' late means are compared paired over these."""
    pts = late_points(d, key)
    if len(pts) < 2:
        return None
    tasks = set.intersection(*(set(v["per_task"]) for v in pts.values()))
    got = [solved(v["per_task"]) for v in pts.values()]
    return {t: sum(g[t] for g in got) / len(got) for t in sorted(tasks)}


def se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def flips(a: dict[str, float], b: dict[str, float]) -> tuple[int, int]:
    """Tasks the SFT checkpoint failed and the RL one solved, and the reverse (greedy: 0/1 per task)."""
    gained = sum(1 for t in a if a[t] < 0.5 <= b.get(t, 0.0))
    lost = sum(1 for t in a if a[t] >= 0.5 > b.get(t, 0.0))
    return gained, lost


def paired_mean(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    """(mean of a − b over the tasks both have, one standard error of that mean), in points, for per-task scores in
    [0, 1]. Pairing removes the spread between tasks that both share (easy tasks solved by both, hard ones by
    neither), so only where they differ counts."""
    tids = sorted(set(a) & set(b))
    d = [a[t] - b[t] for t in tids]
    if len(d) < 2:
        return (100 * d[0] if d else 0.0), float("nan")
    mean = sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
    return 100 * mean, 100 * math.sqrt(var / len(d))


def solved(per_task: dict[str, float]) -> dict[str, float]:
    """A checkpoint's greedy per-task success as solved (>= 0.5: 1.0) or not (0.0)."""
    return {t: float(v >= 0.5) for t, v in per_task.items()}


def paired(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    """`paired_mean` of two checkpoints' greedy per-task success, each task `solved` or not: only the flips count."""
    return paired_mean(solved(a), solved(b))


def task_groups() -> dict[str, tuple[int | str, str]]:
    """Held-out task id -> (tier, family): ToolUse's tier (1: one tool call, 2: two) and family; elsewhere the env's
    `task_family` (Consultation: the diagnosis) and no tier."""
    if ENV == "tooluse":
        from environments.tool_use.tasks import load_split

        return {t.id: (t.tier, t.family) for t in load_split("test")}
    from agentrl.core.registry import make_env  # loads the env plugins: `--render` alone registers nothing else

    env: Any = make_env(ENV_ID, **{**ENV_KWARGS, "split": "test"}).unwrapped
    return {t: ("—", env.task_family(t) or "—") for t in env.task_ids()}


def family_table(d: dict[str, Any]) -> list[str]:
    """Greedy held-out tasks solved per task family, SFT and each evaluated run: which kinds of task RL gained and
    which it lost."""
    sft_eval = d.get("sft_eval")
    runs = [(k, r["eval"]["greedy"]["per_task"]) for k, r in sorted(d.items()) if k.startswith("rl/") and r.get("eval")]
    if not sft_eval or not runs:
        return []
    task = task_groups()
    fams: dict[tuple[int | str, str], list[str]] = {}
    for tid in sft_eval["greedy"]["per_task"]:
        fams.setdefault(task[tid], []).append(tid)
    names = [k.removeprefix("rl/").replace("/seed", " s") for k, _ in runs]
    out = [
        "",
        "Greedy held-out tasks solved, per family:",
        "",
        "| tier | family | tasks | SFT | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for (tier, fam), tids in sorted(fams.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        solved = [
            sum(pt.get(t, 0.0) >= 0.5 for t in tids) for pt in [sft_eval["greedy"]["per_task"], *(p for _, p in runs)]
        ]
        out.append(f"| {tier} | {fam} | {len(tids)} | " + " | ".join(str(n) for n in solved) + " |")
    return out


def points(diff: float, err: float) -> str:
    """A paired difference and its standard error in points, to a tenth (a float sum's -1e-15 prints as +0.0)."""
    return f"{round(diff, 1) + 0.0:+.1f} ± {err:.1f}"


def late_pairs(d: dict[str, Any], sft: dict[str, float]) -> list[str]:
    """Late means compared paired over the held-out tasks (`late_per_task`: per task, the fraction of a run's late
    checkpoints that solve it): each run against SFT, TRePO against GRPO and each against the control, seed by
    seed."""
    late = {k: pt for k in sorted(d) if k.startswith("rl/") and (pt := late_per_task(d, k)) is not None}
    if not late:
        return []

    def name(k: str) -> str:
        return k.removeprefix("rl/").replace("/seed", " s")

    def pair(a_name: str, a: dict[str, float], b_name: str, b: dict[str, float]) -> str:
        return f"{a_name} − {b_name} {points(*paired_mean(a, b))}"

    parts = [pair(name(k), late[k], "SFT", solved(sft)) for k in late]
    for seed in SEEDS:
        for a, b in (("trepo", "grpo"), ("trepo", "control"), ("grpo", "control")):
            ka, kb = f"rl/{a}/seed{seed}", f"rl/{b}/seed{seed}"
            if ka in late and kb in late:
                parts.append(pair(name(ka), late[ka], name(kb), late[kb]))
    return [
        "",
        "Late means paired over the held-out tasks (per task, the fraction of the late checkpoints that solve it; "
        "points, ± one standard error): " + "; ".join(parts) + ".",
    ]


def render_setting(setting: str) -> list[str]:
    """The table, targets and note of one setting's results."""
    d = load(setting)
    sft_eval = d.get("sft_eval")
    lines = [
        "| run | updates | sampled tokens | greedy success | Δ vs SFT (points) | flips + / − | sampled success | RL time | eval time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if sft_eval:
        g, s = sft_eval["greedy"], sft_eval["sampled"]
        lines.append(
            f"| SFT checkpoint | — | — | {g['success']:.3f} ± {se(g['success'], g['tasks']):.3f} | — | — | "
            f"{s['success']:.3f} ± {se(s['success'], s['tasks'] * s['trials']):.3f} | — | "
            f"{(g['seconds'] + s['seconds']) / 60:.0f} min |"
        )
    verdicts = []
    for seed in SEEDS:
        for arm in ARMS:
            r = d.get(f"rl/{arm}/seed{seed}")
            name = f"{arm}, seed {seed}"
            if not r:
                lines.append(f"| {name} | not run | | | | | | | |")
                continue
            ev = r.get("eval")
            if not ev or not sft_eval:
                lines.append(
                    f"| {name} | {r['updates']} | {r['tokens']:,} | not evaluated | | | | {r['seconds_rl'] / 60:.0f} min | |"
                )
                continue
            g, s = ev["greedy"], ev["sampled"]
            if r.get("stopped_early"):
                name += f" (stopped early: checkpoint of update {r['partial_step']}, budget not spent)"
            gain = (g["success"] - sft_eval["greedy"]["success"]) * 100
            plus, minus = flips(sft_eval["greedy"]["per_task"], g["per_task"])
            _, gain_se = paired(g["per_task"], sft_eval["greedy"]["per_task"])
            lines.append(
                f"| {name} | {r['updates']} | {r['tokens']:,} | {g['success']:.3f} ± {se(g['success'], g['tasks']):.3f} | "
                f"{gain:+.0f} ± {gain_se:.1f} | +{plus} / −{minus} | {s['success']:.3f} ± {se(s['success'], s['tasks'] * s['trials']):.3f} | "
                f"{r['seconds_rl'] / 60:.0f} min | {r['seconds_eval'] / 60:.0f} min |"
            )
            if not r.get("stopped_early"):
                verdicts.append((arm, seed, gain, g["per_task"]))
    for key, curve in sorted(d.get("curves", {}).items()):
        if curve and sft_eval:
            pts = sorted(curve.items(), key=lambda kv: int(kv[0]))
            base = sft_eval["greedy"]
            lines += [
                "",
                f"Held-out curve of {key.removeprefix('rl/').replace('/', ', ')} (greedy, weights kept "
                "during the run): "
                + ", ".join(
                    "update {}: {:.2f} (+{} / −{})".format(k, v["success"], *flips(base["per_task"], v["per_task"]))
                    for k, v in pts
                )
                + f"; SFT {base['success']:.2f}.",
            ]
    late = {k: m for k in sorted(d) if k.startswith("rl/") and (m := late_mean(d, k)) is not None}
    if late and sft_eval:
        lines += [
            "",
            "Late mean (greedy held-out success over the snapshots of the last third and the end checkpoint, "
            f"the steadier verdict; SFT {sft_eval['greedy']['success']:.2f}): "
            + ", ".join(
                f"{k.removeprefix('rl/').replace('/', ', ')} {m:.3f} (updates {', '.join(map(str, ups))})"
                for k, (m, ups) in late.items()
            )
            + ".",
        ]
        lines += late_pairs(d, sft_eval["greedy"]["per_task"])
    lines += family_table(d)
    lines += ["", "Targets (issue 28):"]
    ctrl = [g for a, _, g, _ in verdicts if a == "control"]  # the noise floor: every control seed run to the budget
    per_task = {(a, s): pt for a, s, _, pt in verdicts}
    for arm in ("grpo", "trepo"):
        got = [(s, g) for a, s, g, _ in verdicts if a == arm]
        if len(got) < len(SEEDS):
            lines.append(
                f"- {arm}: RL >= +10 points over SFT in both seeds and above the control — **not measured yet** "
                f"({len(got)} of {len(SEEDS)} seeds run to the budget)."
            )
            continue
        plus10 = all(g >= 10 for _, g in got)
        gains = ", ".join(f"seed {s} {g:+.0f}" for s, g in got)
        if not ctrl:
            lines.append(
                f"- {arm}: RL >= +10 points over SFT in both seeds: {gains} — **{'met' if plus10 else 'missed'}**; "
                "above the random-reward control — **not measured yet** (no control run to the budget)."
            )
            continue
        ok = plus10 and all(g > max(ctrl) for _, g in got)
        pairs = [
            (s, c, *paired(per_task[(arm, s)], per_task[("control", c)]))
            for s, _ in got
            for c in sorted(c for a, c in per_task if a == "control")
        ]
        lines.append(
            f"- {arm}: RL >= +10 points over SFT in both seeds and above the control ("
            + ", ".join(f"{g:+.0f}" for g in ctrl)
            + ("" if len(ctrl) >= len(SEEDS) else f"; {len(ctrl)} of {len(SEEDS)} control seeds run so far")
            + f"): {gains} — **{'met' if ok else 'missed'}**. Paired against the control, greedy per task: "
            + ", ".join(f"seed {s} − control seed {c}: {d:+.0f} ± {e:.1f}" for s, c, d, e in pairs)
            + " points ("
            + ("every one" if all(d > 2 * e for *_, d, e in pairs) else "not every one")
            + " beyond two standard errors)."
        )
    tr = {s: g for a, s, g, _ in verdicts if a == "trepo"}
    gr = {s: g for a, s, g, _ in verdicts if a == "grpo"}
    both = sorted(set(tr) & set(gr))
    diffs = {s: paired(per_task[("trepo", s)], per_task[("grpo", s)]) for s in both}

    def late_diff(seed: int) -> str:
        a, b = late_per_task(d, f"rl/trepo/seed{seed}"), late_per_task(d, f"rl/grpo/seed{seed}")
        if a is None or b is None:
            return ""
        diff, err = paired_mean(a, b)
        return f"; on late means {points(diff, err)} ({verdict(diff, err)})"

    def verdict(diff: float, err: float) -> str:
        if math.isnan(err) or abs(diff) <= 2 * err:
            return "within two standard errors: not decided"
        return ("TRePO" if diff > 0 else "GRPO") + " ahead beyond two standard errors"

    lines.append(
        "- TRePO vs GRPO at equal sampled tokens: "
        + (
            "; ".join(
                f"seed {s}: {tr[s]:+.0f} vs {gr[s]:+.0f} points over SFT, paired TRePO − GRPO {diffs[s][0]:+.0f} ± "
                f"{diffs[s][1]:.1f} ({verdict(*diffs[s])}){late_diff(s)}"
                for s in both
            )
            + f" ({len(both)} of {len(SEEDS)} seeds of both run)"
            if both
            else "**not measured yet**"
        )
        + "."
    )
    if d.get("note"):
        lines += ["", d["note"]]
    return lines


def render() -> None:
    lines = [
        machine_line(),
        "",
        f"Written by `benchmarks/rl_beyond_noise.py --env {ENV}`. SmolLM2-135M-Instruct, float32, CPU. SFT on "
        f"{ENVS[ENV]['train']}, `benchmarks/agent_learning.py`'s checkpoint, then RL from it on the train "
        f"split: {COMMON['rollout']['groups']} groups x {COMMON['rollout']['group_size']} episodes per update at temperature 1 "
        "(0.7 where a setting says so), "
        f"dynamic sampling (refill_rounds {COMMON['rollout']['refill_rounds']}), lr "
        f"{COMMON['optim']['lr']:g} with {COMMON['optim']['warmup_steps']} warm-up updates, one optimizer step per update, "
        f"until {BUDGET:,} sampled tokens (refills and TRePO's continuations counted). TRePO: one continuation per agent "
        "turn at the policy's temperature, continuations trained on. Control: GRPO on Bernoulli(0.4) rewards. Held-out: "
        f"{ENVS[ENV]['held_out']}, greedy (1 episode per task) and sampled (temperature 1, {SAMPLED_TRIALS} "
        "per task); ± is one standard error (of Δ vs SFT: paired over the same tasks, `paired`). Flips: held-out tasks the SFT checkpoint failed and the RL one solves (+), "
        "and the reverse (−), greedy. Settings (`--setting`), each a section:",
    ]
    for setting in ENVS[ENV]["settings"]:
        lines += ["", f"### Setting `{setting}`: {SETTING_NOTES[setting]}", "", *render_setting(setting)]
    if SMOKE:
        print("\n".join(lines))
        return
    write_section(TITLE, "\n".join(lines))


def smoke() -> None:
    global OUT, RUNS, BUDGET, TASKS, SMOKE
    import agent_learning as al

    al.smoke()
    OUT, RUNS = Path(f"/tmp/agentrl_smoke/rbn_{ENV}.json"), Path(f"/tmp/agentrl_smoke/rbn_{ENV}")
    BUDGET, TASKS, SMOKE = 400, 3, True
    COMMON["train"].update(max_tokens=BUDGET, checkpoint_every=1)
    COMMON["rollout"].update(groups=1, group_size=2, max_new_tokens=8)


def set_setting(name: str) -> None:
    global SETTING
    SETTING = name


def set_env(name: str) -> None:
    """`--env`: the env's id, kwargs, token limits, results file and run directories (before --smoke shrinks them)."""
    global ENV, OUT, RUNS, TITLE, ENV_ID, ENV_KWARGS, MAX_NEW, BUDGET
    spec = ENVS[name]
    ENV, TITLE, ENV_ID, ENV_KWARGS, MAX_NEW, BUDGET = (
        name,
        spec["title"],
        spec["id"],
        spec["kwargs"],
        spec["max_new"],
        spec["budget"],
    )
    OUT, RUNS = OUT.with_name(f"{name}.json"), RUNS.with_name(name)
    COMMON["env"] = {"id": ENV_ID, "kwargs": {**ENV_KWARGS, "split": "train"}}
    COMMON["rollout"]["max_new_tokens"] = MAX_NEW
    COMMON["train"]["max_tokens"] = BUDGET


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    ap.add_argument("--env", default="tooluse", choices=list(ENVS), help="ToolUse-v0 or Consultation-v0")
    ap.add_argument(
        "--setting", default=None, choices=list(SETTINGS), help="task draws and temperature (default: the env's first)"
    )
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 each when two arms run side by side)")
    ap.add_argument(
        "--eval-now",
        action="store_true",
        help="evaluate the newest checkpoint of each unfinished run (stopped early), then render",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="tiny-random, a few tasks and tokens, results in /tmp: checks the pipeline"
    )
    ap.add_argument(
        "--curve",
        type=Path,
        nargs="?",
        const=Path(),
        default=None,
        metavar="DIR",
        help="greedy held-out success of each run's snapshots (run_dir/snapshots), or, given DIR, of checkpoints "
        "copied into DIR as <arm>_seed<seed>_step<N>; then render",
    )
    ap.add_argument("--curve-steps", type=int, nargs="*", default=None, help="--curve: only these updates")
    ap.add_argument("--note", default=None, help="a paragraph for BENCHMARKS.md (where the run stopped, what else ran)")
    args = ap.parse_args()
    if args.setting is not None and args.setting not in ENVS[args.env]["settings"]:
        ap.error(
            f"--setting {args.setting} is not run on {args.env}; its settings: {', '.join(ENVS[args.env]['settings'])}"
        )
    set_env(args.env)
    set_setting(args.setting or ENVS[args.env]["settings"][0])
    if args.smoke:
        smoke()
    d = load()
    if args.note is not None:
        d["note"] = args.note
        save(d, "note")
    if args.render:
        render()
        return
    import torch

    from agentrl.core.registry import load_env_plugins

    COMMON["train"]["threads"] = args.threads
    torch.set_num_threads(args.threads)
    load_env_plugins()
    if args.curve is not None:
        for seed in args.seeds:
            for arm in args.arms:
                stage_curve(d, arm, seed, None if args.curve == Path() else args.curve, args.curve_steps)
        render()
        return
    if args.eval_now:
        for seed in args.seeds:
            for arm in args.arms:
                stage_partial_eval(d, arm, seed)
        render()
        return
    sft = stage_sft(d)
    for other in ENVS[ENV]["settings"]:  # another setting's evaluation of the same checkpoint, evaluated the same way
        got = load(other).get("sft_eval") if "sft_eval" not in d and other != SETTING else None
        if got:
            d["sft_eval"] = got
            save(d, "sft_eval")
    if "sft_eval" not in d:
        t0 = time.perf_counter()
        d["sft_eval"] = held_out(str(sft))
        d["sft_eval"]["seconds"] = time.perf_counter() - t0
        save(d, "sft_eval")
    for seed in args.seeds:
        for arm in args.arms:
            stage_rl(d, arm, seed, sft)
            render()
    render()


if __name__ == "__main__":
    main()
