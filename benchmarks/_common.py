"""Shared helpers for benchmarks: the machine line and writing one section of BENCHMARKS.md atomically."""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentrl.core.io import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "BENCHMARKS.md"


def machine_line(threads: int | None = None) -> str:
    """The machine and software a section was measured on; `threads`: the torch threads the measured runs used
    (default: this process's, right when the script measured in the process that renders)."""
    import torch

    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # the same model name covers hosts with and without AVX512 (bfloat16 matmuls differ several-fold between them)
    cpu += f" ({torch.backends.cpu.get_cpu_capability()})"
    return (
        f"Measured {datetime.date.today().isoformat()} on {cpu}, {os.cpu_count()} cores{mem}, no GPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"{threads if threads is not None else torch.get_num_threads()} threads."
    )


def write_section(title: str, body: str) -> None:
    """Replace (or append) the `## title` section of BENCHMARKS.md."""
    text = (
        BENCH.read_text()
        if BENCH.exists()
        else "# Benchmarks\n\nEach section is written by the script named in it; re-run it to refresh.\n"
    )
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    atomic_write_text(BENCH, text)
