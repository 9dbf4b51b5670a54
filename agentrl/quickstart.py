"""`make quickstart`: a short TRePO run with the embedded default model, then its HTML report."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from agentrl.config import load_config
from agentrl.report import write_report
from agentrl.trainer import Trainer

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"


def main(argv: list[str] | None = None) -> int:
    cfg = load_config(CONFIG, list(argv if argv is not None else sys.argv[1:]))
    run_dir = Path(cfg.train.run_dir)
    if run_dir.exists() and not cfg.train.resume:
        shutil.rmtree(run_dir)  # the quickstart's own directory: a re-run starts clean
    t0 = time.perf_counter()
    print(f"agentrl quickstart: {cfg.algorithm.name} on {cfg.env.id} with {cfg.model}, {cfg.train.updates} updates", file=sys.stderr)
    trainer = Trainer(cfg)
    try:
        trainer.run()
    finally:
        trainer.close()
    report = write_report(run_dir)
    print(f"done in {time.perf_counter() - t0:.0f}s\nrun directory: {run_dir.resolve()}\nreport: {Path(report).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
