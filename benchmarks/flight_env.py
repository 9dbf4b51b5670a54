"""FlightBooking-v0 env throughput with the rule-based user: `python benchmarks/flight_env.py [--repeats N]`.

Measures env steps per second over whole gold episodes (the gold agent's time included, as under
`agentrl eval --model scripted:gold`; it is a list lookup), the same with the agent's actions precomputed
(env + user only), episodes per second, and snapshot() / restore() cost at every turn of the episodes
(TRePO branches at every turn). Loading the world (once per process) is timed separately. Target: at least
5,000 steps/s, so the env is never what a rollout waits on.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentrl.core.registry import scripted_factory  # noqa: E402
from agentrl.eval.evaluate import play_scripted  # noqa: E402
from environments.flight_booking import ENV_ID  # noqa: E402
from environments.flight_booking.env import FlightBookingEnv  # noqa: E402

make_gold = scripted_factory(ENV_ID, "gold")  # the agent `agentrl eval --model scripted:gold` plays


def gold_actions(env: FlightBookingEnv, task_id: str) -> list[str]:
    ep = play_scripted(env, make_gold, seed=None, task=task_id)
    assert ep.reward == 1.0, (task_id, ep.reward)
    return [action for action, _ in ep.turns]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    env = FlightBookingEnv(split=args.split)
    print(
        f"world + tasks loaded in {time.perf_counter() - t0:.2f} s ({env.world!r}, {len(env.task_ids())} {args.split} tasks)"
    )
    t0 = time.perf_counter()
    scripts = {tid: gold_actions(env, tid) for tid in env.task_ids()}  # also computes every gold hash once
    print(f"first pass (gold hashes, world digest): {time.perf_counter() - t0:.2f} s")

    rates, ep_rates, raw_rates = [], [], []
    for _ in range(args.repeats):
        steps, start = 0, time.perf_counter()
        for tid in env.task_ids():  # the gold agent as `agentrl eval` plays it (the one scripted-episode loop)
            steps += len(play_scripted(env, make_gold, seed=None, task=tid).turns)
        elapsed = time.perf_counter() - start
        rates.append(steps / elapsed)
        ep_rates.append(len(scripts) / elapsed)
        steps, start = 0, time.perf_counter()
        for tid, actions in scripts.items():
            env.reset(options={"task_id": tid})
            for a in actions:
                env.step(a)
            steps += len(actions)
        raw_rates.append(steps / (time.perf_counter() - start))
    n_steps = sum(len(a) for a in scripts.values())
    print(
        f"python {platform.python_version()} on {platform.machine()}, split={args.split}, {len(scripts)} episodes ({n_steps} steps) x {args.repeats}"
    )
    print(
        f"env steps/s (gold agent + rule-based user): median {statistics.median(rates):,.0f}  (min {min(rates):,.0f}, max {max(rates):,.0f})"
    )
    print(f"env steps/s (actions precomputed):          median {statistics.median(raw_rates):,.0f}")
    print(f"episodes/s (resets and rewards included):   median {statistics.median(ep_rates):,.0f}")

    snap_us, restore_us = [], []
    for tid, actions in scripts.items():
        env.reset(options={"task_id": tid})
        for a in actions[:-1]:
            env.step(a)
            t = time.perf_counter()
            s = env.snapshot()
            snap_us.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            env.restore(s)
            restore_us.append((time.perf_counter() - t) * 1e6)
    print(f"snapshot(): median {statistics.median(snap_us):.0f} us (p90 {sorted(snap_us)[int(0.9 * len(snap_us))]:.0f} us); "
          f"restore(): median {statistics.median(restore_us):.0f} us — over {len(snap_us)} mid-episode points")  # fmt: skip


if __name__ == "__main__":
    main()
