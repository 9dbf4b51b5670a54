"""Run every benchmark and refresh BENCHMARKS.md (`make benchmarks`). Run on a quiet machine.

Scripts that write their own section are run as they are; the env-throughput scripts print their figures,
which are put into a section here. vLLM benchmarks run with the vLLM venv's python (`make setup-vllm`).

    .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--skip NAME ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from _common import ROOT, machine_line, write_section

HERE = Path(__file__).resolve().parent
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"

# name -> (args, python: "main" | "vllm", prints-only section title or None); "script:tag" runs script.py
BENCHMARKS: dict[str, tuple[list[str], str, str | None]] = {
    "tool_use_env": ([], "main", "ToolUse-v0 env throughput (scripted gold agent)"),
    "flight_env": ([], "main", "FlightBooking-v0 env throughput (rule-based user)"),
    "consultation_env": ([], "main", "Consultation-v0 env throughput (rule-based patient)"),
    "model_load": ([], "main", None),
    "rollout_throughput": ([], "main", None),
    "prefix_reuse": ([], "main", None),
    "simulator_batching": ([], "main", None),
    "update_throughput": ([], "main", None),
    "distributed_update": ([], "main", None),
    "http_backend": ([], "main", "HTTP chat backend overhead (loopback server, fault proxy)"),
    "hostile_inputs": ([], "main", None),
    "policy_kv_store": ([], "main", None),
    "rl_step": ([], "main", None),
    "flight_published": ([], "main", None),
    "credit_assignment": (
        ["--turns", "6", "12", "--seeds", "0", "1", "2", "--jobs", str(os.cpu_count() or 1)],
        "main",
        None,
    ),
    "model_success:tool_use-tiny": (["--env", "tool_use", "--model", "tiny-random", "--per-tier", "8"], "main", None),
    "model_success:tool_use-smollm2": (
        [
            "--env",
            "tool_use",
            "--model",
            "smollm2-135m",
            "--per-tier",
            "4",
            "--max-new-tokens",
            "128",
            "--max-turns",
            "6",
        ],
        "main",
        None,
    ),
    "model_success:flight-tiny": (["--env", "flight", "--model", "tiny-random", "--max-turns", "8"], "main", None),
    "model_success:flight-smollm2": (
        ["--env", "flight", "--model", "smollm2-135m", "--tasks", "8", "--max-new-tokens", "128", "--max-turns", "6"],
        "main",
        None,
    ),
    "vllm_throughput": ([], "vllm", None),
    "vllm_training": ([], "vllm", None),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(BENCHMARKS))
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(BENCHMARKS))
    args = ap.parse_args()
    failed = []
    for name, (extra, py, title) in BENCHMARKS.items():
        if (args.only is not None and name not in args.only) or name in args.skip:
            continue
        exe = str(VLLM_PY) if py == "vllm" else sys.executable
        if py == "vllm" and not VLLM_PY.exists():
            print(f"skip {name}: no vLLM venv at {VLLM_PY.parent.parent} (make setup-vllm)", file=sys.stderr)
            continue
        print(f"== {name}", flush=True)
        script = name.split(":", 1)[0]
        proc = subprocess.run(
            [exe, str(HERE / f"{script}.py"), *extra], cwd=ROOT, capture_output=title is not None, text=True
        )
        if proc.returncode != 0:
            failed.append(name)
            print(f"{name} failed (exit {proc.returncode})", file=sys.stderr)
            if title is not None:
                print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
            continue
        if title is not None:
            print(proc.stdout)
            cmd = f"python benchmarks/{script}.py {' '.join(extra)}".strip()
            write_section(title, f"{machine_line()}\n\n`{cmd}`:\n\n```\n{proc.stdout.strip()}\n```")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
