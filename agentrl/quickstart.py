"""`make quickstart`: the SFT -> RL path with the embedded default model, on a real agent task.

1. `agentrl sft` on ToolUse-v0 demonstrations (tier 1, compact prompt), evaluating held-out test tasks before
   the first step and at the end;
2. TRePO from that checkpoint (examples/quickstart.yaml), evaluating the same held-out tasks along the way;
3. the HTML report, which opens with the held-out curve of both stages, and a before / after line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from agentrl.report import load_metrics, series, write_report
from agentrl.train.config import load_config
from agentrl.train.run_dir import check_run_dir, clear_run_dir
from agentrl.train.sft import run_sft
from agentrl.train.sft_config import from_flags
from agentrl.train.trainer import Trainer

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"
# the supervised stage: the env and held-out tasks are those of the RL config
SFT: dict[str, Any] = {  # `agentrl sft` flags (sft_config.FLAGS)
    "source": "scripted:gold",
    "split": "train",
    "episodes": 80,
    "epochs": 1,
    "lr": 5e-5,
    "batch_size": 8,
    "micro_batch_size": 8,
    "warmup_steps": 2,
    "schedule": "cosine",
}


def _held_out(run_dir: Path) -> tuple[list[float], list[float]]:
    """(steps, held-out success rates) of a run directory."""
    return series(load_metrics(run_dir / "metrics.jsonl"), "eval/success_rate")


def main(argv: list[str] | None = None) -> int:
    cfg = load_config(CONFIG, list(argv if argv is not None else sys.argv[1:]))
    run_dir = Path(cfg.train.run_dir)
    sft_dir = run_dir.parent / (run_dir.name + "-sft")
    dirs = [d for d in (run_dir, sft_dir) if d.exists() and not cfg.train.resume]
    for d in dirs:  # the quickstart's own run directories: a re-run starts clean; anything else is refused
        check_run_dir(
            str(d), resume=False, overwrite=True, option="train.run_dir", overwrite_hint="a quickstart re-run"
        )
    for d in dirs:  # both checked before either is cleared
        clear_run_dir(d)
    t0 = time.perf_counter()
    env_kwargs = {k: v for k, v in cfg.env.kwargs.items() if k != "split"}
    print(
        f"agentrl quickstart: SFT then {cfg.algorithm.name} on {cfg.env.id} {env_kwargs} with {cfg.model}",
        file=sys.stderr,
    )
    sft = from_flags(
        model=cfg.model,
        env=cfg.env.id,
        env_kwargs=env_kwargs,
        run_dir=str(sft_dir),
        seed=cfg.train.seed,
        eval_every=10_000,
        eval_tasks=cfg.train.eval_tasks,
        eval_env_kwargs=cfg.train.eval_env_kwargs,
        eval_max_new_tokens=cfg.rollout.max_new_tokens,
        **SFT,
    )
    if not (cfg.train.resume and (sft_dir / "checkpoints").is_dir()):
        run_sft(sft, overwrite=True)
    cfg.model = str(sft_dir)
    cfg.train.eval_before_train = False  # the SFT run's last evaluation is this run's starting point
    trainer = Trainer(cfg)
    try:
        trainer.run()
    finally:
        trainer.close()
    report = write_report(run_dir)
    _, sft_curve = _held_out(sft_dir)
    steps, rl_curve = _held_out(run_dir)
    base, after_sft = sft_curve[0], sft_curve[-1]
    after_rl, updates = (rl_curve[-1], steps[-1]) if rl_curve else (after_sft, 0)
    print(
        f"held-out success ({updates:.0f} RL updates, {cfg.train.eval_tasks or 'all'} test tasks, greedy): "
        f"base model {base:.2f} -> after SFT {after_sft:.2f} -> after {cfg.algorithm.name} {after_rl:.2f}"
    )
    print(
        f"done in {time.perf_counter() - t0:.0f}s\nrun directories: {sft_dir.resolve()} (SFT), {run_dir.resolve()} (RL)\n"
        f"report: {Path(report).resolve()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
