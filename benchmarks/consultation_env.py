"""Consultation-v0 throughput with the rule-based patient: `python benchmarks/consultation_env.py [--repeats N]`.

Times env.step (patient answer, test lookup, and the terminal reward with the Bayesian diagnoser),
resets included, driven by a fixed round of doctor turns that costs next to nothing to produce: seven
questions across topics, two test requests, a repeat and a small-talk line, then a diagnosis. Also
reports episodes/s with scripted:good (its information-gain search included) and the cost of
snapshot + restore. Prints results only; writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentrl.core.registry import scripted_factory  # noqa: E402
from agentrl.eval.evaluate import play_scripted  # noqa: E402
from environments.consultation.env import ConsultationEnv  # noqa: E402

TURNS = [
    "What brings you in today?",
    "When did it start?",
    "Do you have a fever?",
    "Any chest pain or shortness of breath?",
    "Do you smoke?",
    "Any medical history?",
    "REQUEST TEST: complete blood count",
    "Does your belly hurt?",
    "Do you have a fever?",
    "REQUEST TEST: chest X-ray",
    "How was your weekend?",
    "DIAGNOSIS: community-acquired pneumonia",
]


def fixed_round(env: ConsultationEnv, ids: list[str]) -> int:
    steps = 0
    for tid in ids:
        env.reset(options={"task_id": tid})
        for a in TURNS:
            _, _, term, trunc, _ = env.step(a)
            steps += 1
            if term or trunc:
                break
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="train")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    env = ConsultationEnv(split=args.split)
    ids = env.task_ids()
    fixed_round(env, ids)  # warm: builds each case's fact index once (cached, as in training)
    rates = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        n = fixed_round(env, ids)
        rates.append(n / (time.perf_counter() - t))
    t = time.perf_counter()
    good_steps = 0
    make_good = scripted_factory("agentrl/Consultation-v0", "good")
    for tid in ids:  # the scripted doctor as `agentrl eval` plays it (the one scripted-episode loop)
        good_steps += len(play_scripted(env, make_good, seed=None, task=tid).turns)
    good_eps = len(ids) / (time.perf_counter() - t)
    env.reset(options={"task_id": ids[0]})
    for a in TURNS[:6]:
        env.step(a)
    k = 2000
    t = time.perf_counter()
    for _ in range(k):
        env.restore(env.snapshot())
    snap_us = (time.perf_counter() - t) / k * 1e6
    print(
        f"consultation env steps/s (rule-based patient, {len(ids)} {args.split} cases x {args.repeats}): "
        f"median {statistics.median(rates):,.0f} (min {min(rates):,.0f}, max {max(rates):,.0f}); "
        f"scripted:good episodes/s {good_eps:,.1f} ({good_steps / len(ids):.1f} steps each); snapshot+restore {snap_us:.0f} us"
    )


if __name__ == "__main__":
    main()
