"""ToolUse-v0 env throughput with the scripted gold agent: `python benchmarks/tool_use_env.py [--repeats N]`.

Measures env steps per second (agent time included: the gold agent re-reads the conversation every turn,
as a scripted agent under `agentrl eval` does), episodes per second, snapshot+restore cost, and the
gold success rate per tier as a sanity check. One-time loading (pint registry, geography data) is done
before timing and reported separately.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from agentrl.core.registry import scripted_factory
from agentrl.eval.evaluate import play_scripted
from environments.tool_use import ENV_ID
from environments.tool_use.env import ToolUseEnv

make_gold = scripted_factory(ENV_ID, "gold")  # the agent `agentrl eval --model scripted:gold` plays


def run_episode(env: ToolUseEnv, task_id: str) -> tuple[float, int]:
    """One gold episode as `agentrl eval --model scripted:gold` plays it (the one scripted-episode loop)."""
    ep = play_scripted(env, make_gold, seed=None, task=task_id)
    return ep.reward, len(ep.turns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    env = ToolUseEnv(split=args.split)
    run_episode(env, env.task_ids()[-1])  # loads pint and the geography data
    print(f"first episode incl. library loading: {time.perf_counter() - t0:.2f} s")

    rates, by_tier = [], {}
    for _ in range(args.repeats):
        steps, start = 0, time.perf_counter()
        for tid in env.task_ids():
            reward, n = run_episode(env, tid)
            steps += n
            by_tier.setdefault(env.state.task.tier, []).append(reward)
        elapsed = time.perf_counter() - start
        rates.append((steps / elapsed, len(env.task_ids()) / elapsed))
    step_rates = [r[0] for r in rates]
    print(
        f"python {platform.python_version()} on {platform.machine()}, split={args.split}, {len(env.task_ids())} tasks x {args.repeats}"
    )
    print(
        f"env steps/s (gold agent): median {statistics.median(step_rates):,.0f}  (min {min(step_rates):,.0f}, max {max(step_rates):,.0f})"
    )
    print(f"episodes/s: median {statistics.median(r[1] for r in rates):,.0f}")
    print(
        "gold success by tier: " + ", ".join(f"tier {k}: {statistics.mean(v):.3f}" for k, v in sorted(by_tier.items()))
    )

    env.reset(options={"task_id": env.task_ids()[-1]})
    env.step(make_gold(env)([m.to_dict() for m in env.transcript]))  # one call in: a snapshot mid-episode
    n, start = 2000, time.perf_counter()
    for _ in range(n):
        env.restore(env.snapshot())
    print(f"snapshot+restore: {(time.perf_counter() - start) / n * 1e6:.0f} us")


if __name__ == "__main__":
    main()
