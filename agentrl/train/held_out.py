"""Held-out evaluation while training (`train.eval_every`): greedy episodes of the current policy on an env made
with `env.kwargs` + `train.eval_env_kwargs` (e.g. `{split: test}`), logged as `eval/*` metrics.

It shares the trainer's policy backend (so it scores the weights just updated) but has its own `RolloutRunner`
(greedy, its own limits). Its episodes are keyed by what they are, ("eval", task seed, task id, trial)
(`evaluate.collect_outcomes`), so they sample the same whichever rank runs them and whatever training sampled
before; training seeds, keyed by step, never depend on them either. It serves the
training run's `SimulatorQueue` (its envs share the training envs' simulator, which joined that queue). Under
torchrun the tasks are split across ranks (`distributed.my_share`) and the outcomes gathered in task order: every
rank computes the whole list's numbers, each task run once (rank 0 logs them)."""

from __future__ import annotations

import time
from typing import Any

from agentrl.eval.evaluate import collect_outcomes, summarize_outcomes, task_list
from agentrl.inference.base import SamplingParams
from agentrl.rollout.build import ResolvedEnv, build_runner
from agentrl.sim.batching import SimulatorQueue
from agentrl.train import distributed

SEED_BASE = 1_000_000  # envs without a task list are evaluated on seeds from here (training seeds are hashed)


class HeldOutEval:
    def __init__(
        self,
        env: ResolvedEnv,
        policy: Any,
        formatter: Any,
        *,
        tasks: int | str | None,
        max_new_tokens: int,
        max_seq_len: int,
        seed: int = 0,
        constrained: bool = False,
        env_workers: int = 1,
        simulator_queue: SimulatorQueue | None = None,
        episode_timeout_s: float | None = None,
    ):
        self.tasks = task_list(env, tasks, SEED_BASE)  # a task file's ids are checked before any training
        self.runner = build_runner(
            env,
            policy,
            formatter,
            SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens),
            constrained=constrained,
            max_seq_len=max_seq_len,
            seed=seed,
            env_workers=env_workers,
            simulator_queue=simulator_queue,
            episode_timeout_s=episode_timeout_s,
        )

    @classmethod
    def for_training(
        cls,
        cfg: Any,
        policy: Any,
        formatter: Any,
        env: ResolvedEnv,
        simulator_queue: SimulatorQueue | None = None,
    ) -> HeldOutEval:
        """From a training `Config`: `env` is the run's env with train.eval_env_kwargs over env.kwargs
        (`ResolvedEnv.with_kwargs`); the rollout's limits, greedy; the training run's simulator queue."""
        t, r = cfg.train, cfg.rollout
        return cls(
            env,
            policy,
            formatter,
            tasks=t.eval_tasks,
            max_new_tokens=r.max_new_tokens,
            max_seq_len=r.max_seq_len,
            seed=t.seed,
            constrained=r.constrained,
            env_workers=r.env_workers,
            simulator_queue=simulator_queue,
            episode_timeout_s=r.episode_timeout_s,
        )

    def __call__(self) -> dict[str, float]:
        t0 = time.perf_counter()
        mine = distributed.my_share(len(self.tasks))  # under torchrun each rank runs its block; gathered in order
        outcomes = collect_outcomes(self.runner, self.tasks[mine.start : mine.stop], trials=1)
        outcomes = distributed.all_gather_lists(outcomes, "the held-out all-gather")
        s = summarize_outcomes(outcomes)
        return {
            "eval/success_rate": s["success_rate"],
            "eval/reward": s["mean_reward"],
            "eval/turns": s["mean_turns"],
            "eval/tasks": float(len(self.tasks)),
            "eval/failed": float(sum(o.failed for o in outcomes)),
            "time/eval": time.perf_counter() - t0,
        }
