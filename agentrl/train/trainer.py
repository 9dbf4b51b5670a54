"""The training loop: collect -> extra sampling -> advantages -> update -> sync weights -> log -> checkpoint.

Reads top to bottom. The algorithm is looked up once in `advantages.REGISTRY`; what it needs (value
head, branch values, greedy baseline) comes from its EstimatorSpec, never from its name.
"""

from __future__ import annotations

import copy
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrl.algo.advantages import REGISTRY, AdvantageInputs, estimator_kwargs, whiten
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.checkpoint import (
    CheckpointError,
    checkpoint_dirs,
    clean_interrupted_writes,
    latest_checkpoint,
    load_model_weights,
    load_trainer_state,
    save_checkpoint,
    set_rng_state,
)
from agentrl.core.io import atomic_write_text
from agentrl.core.records import EpisodeRecord, write_records
from agentrl.core.registry import check_env_kwargs
from agentrl.core.types import Episode, TrainBatch, allowed_tensor, collate
from agentrl.inference import make_policy_backend
from agentrl.inference.base import SamplingParams
from agentrl.inference.models import load_model
from agentrl.rollout.build import build_runner, prepare_env_kwargs
from agentrl.rollout.runner import EpisodeSpec
from agentrl.sim.batching import SimulatorQueue
from agentrl.train.branch_values import estimate_branch_values, greedy_baselines
from agentrl.train.config import Config, ConfigError, dump_config, load_config
from agentrl.train.held_out import HeldOutEval
from agentrl.train.lr_schedule import lr_factor
from agentrl.train.metrics import MetricsLogger
from agentrl.train.reward_shaping import KLShapedReturns, raw_rewards
from agentrl.train.run_dir import check_run_dir, clear_run_dir
from agentrl.train.update import ValueHead, forward, ppo_update


class Trainer:
    def __init__(self, cfg: Config, *, console: bool = True):
        self.cfg = cfg
        self.spec = REGISTRY[cfg.algorithm.name]
        self.params = cfg.algorithm.estimator_params()  # validated when the config loaded
        self.run_dir = Path(cfg.train.run_dir)
        check_run_dir(self.run_dir, resume=cfg.train.resume, overwrite=cfg.train.overwrite, option="train.run_dir",
                      resume_hint="train.resume=true", overwrite_hint="train.overwrite=true")  # before loading a model
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self._seed_everything(cfg.train.seed)
        check_env_kwargs(cfg.env.id, {**cfg.env.kwargs, **cfg.train.eval_env_kwargs})  # names, before any model loads
        self.simulator_queue = SimulatorQueue()  # this run's: the simulator joins it, the runners serve it
        env_kwargs = prepare_env_kwargs(cfg.env.id, cfg.env.kwargs, cfg.env.simulator,  # values, before the policy loads
                                        self.simulator_queue)
        dtype = torch.bfloat16 if cfg.train.dtype == "bfloat16" else torch.float32
        self.model, self.tokenizer = load_model(cfg.model, dtype=dtype, seed=cfg.train.seed)
        self.value_head = ValueHead(self.model.config.hidden_size) if self.spec.needs_value_head else None
        self.ref_model = self._frozen_copy() if cfg.ppo.kl_coef > 0 else None
        params = list(self.model.parameters()) + (list(self.value_head.parameters()) if self.value_head else [])
        self.optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda)
        self.policy = make_policy_backend(cfg.rollout, self.model, self.tokenizer)
        self.sampling = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, max_new_tokens=cfg.rollout.max_new_tokens)
        self.runner = build_runner(  # env_kwargs hold the simulator's model already
            cfg.env.id, env_kwargs, self.policy, ChatFormatter(self.tokenizer), self.sampling,
            constrained=cfg.rollout.constrained, snapshot_turns=self.spec.needs_branches,
            max_seq_len=cfg.rollout.max_seq_len, seed=cfg.train.seed, progress=False, env_workers=cfg.rollout.env_workers,
            simulator_queue=self.simulator_queue,
        )
        self.returns = (KLShapedReturns(self.ref_model, cfg.ppo.kl_coef, temperature=cfg.rollout.temperature,
                                        pad_id=self.policy.pad_id, micro_batch_size=cfg.ppo.micro_batch_size)
                        if self.ref_model is not None and cfg.ppo.kl_in_reward else raw_rewards)  # what every estimator sees as RM
        self.held_out = (HeldOutEval.for_training(cfg, self.policy, self.runner.fmt, env_kwargs, self.simulator_queue)
                         if cfg.train.eval_every else None)
        self.rng = random.Random(cfg.train.seed)
        self.torch_gen = torch.Generator().manual_seed(cfg.train.seed)
        self.step = 0
        self.tokens_cumulative = 0
        self._prepare_run_dir()
        self.logger = MetricsLogger(self.run_dir, tensorboard=cfg.train.tensorboard, console=console)
        if cfg.train.resume:
            self._resume()

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.cfg.train
        if self.held_out is not None and self.step == 0 and cfg.eval_before_train:
            self.logger.log(0, self.held_out(), cfg.updates)  # the starting point of the held-out curve
        while self.step < cfg.updates and not self.out_of_tokens():
            metrics = self.train_step()
            self.step += 1
            last = self.step == cfg.updates or self.out_of_tokens()
            if self.held_out is not None and (self.step % cfg.eval_every == 0 or last):
                metrics.update(self.held_out())
            self.logger.log(self.step, metrics, cfg.updates)
            if self.step % cfg.checkpoint_every == 0 or last:
                self.save()
        self.logger.close()
        return self.run_dir

    def out_of_tokens(self) -> bool:
        cap = self.cfg.train.max_tokens
        return cap is not None and self.tokens_cumulative >= cap

    def close(self) -> None:
        """Release the rollout backend (a vLLM engine's worker processes and memory); the model stays usable."""
        self.policy.close()

    def train_step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        specs = self._episode_specs(self.step)
        episodes = self.runner.collect(specs)
        t_collect = time.perf_counter() - t0
        returns = self.returns(episodes)  # shaped once, before any estimator runs
        extra = self._extra_sampling(episodes, specs, returns)
        t_branch = time.perf_counter() - t0 - t_collect
        batch = self._batch(episodes, returns, extra)
        update_stats = ppo_update(
            self.model, self.value_head, self.optimizer, self.scheduler, batch, self.cfg.ppo,
            temperature=self.cfg.rollout.temperature, grad_clip=self.cfg.optim.grad_clip, generator=self.torch_gen,
        )
        self.policy.update_weights(self.model.state_dict())
        t_update = time.perf_counter() - t0 - t_collect - t_branch
        self._log_episodes(episodes, batch)
        sampled = sum(ep.num_sampled for ep in episodes)
        self.tokens_cumulative += sampled + extra["tokens"]
        return {
            **self._episode_metrics(episodes),
            **self._advantage_metrics(batch),
            **update_stats,
            **extra["metrics"],
            "tokens/sampled": float(sampled),
            "tokens/branch": float(extra["tokens"]),
            "tokens/cumulative": float(self.tokens_cumulative),
            "time/collect": t_collect,
            "time/branch": t_branch,
            "time/update": t_update,
            "time/total": time.perf_counter() - t0,
        }

    # -- pieces -------------------------------------------------------------------------------------------
    def _episode_specs(self, step: int) -> list[EpisodeSpec]:
        r = self.cfg.rollout
        specs = []
        for g in range(r.groups):
            seed = (self.cfg.train.seed * 1_000_003 + step * 1009 + g) & 0x7FFFFFFF  # G episodes of a task share it
            specs += [EpisodeSpec(seed=seed, group_id=g) for _ in range(r.group_size)]
        return specs

    def _extra_sampling(self, episodes: list[Episode], specs: list[EpisodeSpec], returns: list[float]) -> dict[str, Any]:
        out: dict[str, Any] = {"tokens": 0, "metrics": {}, "branch": None, "baseline": None}
        a = self.params
        if self.spec.needs_branches:
            bv = estimate_branch_values(
                self.runner, episodes, spec=a.branch_points, m=a.branch_m, t_min=a.branch_t_min,
                t_max=self.cfg.rollout.temperature, rng=self.rng, common_random_numbers=a.branch_crn,
                episode_returns=returns, returns=self.returns,
            )
            out["branch"] = bv
            out["tokens"] += bv.tokens
            out["metrics"]["branch/continuations"] = float(bv.continuations)
            out["metrics"]["branch/points"] = float(sum(len(p) for p in bv.positions))
        if self.spec.needs_greedy_baseline:
            out["baseline"], tokens = greedy_baselines(self.runner, episodes, specs, returns=self.returns)
            out["tokens"] += tokens
        if isinstance(self.returns, KLShapedReturns):
            out["metrics"]["kl/in_reward"] = self.returns.take_mean_kl()  # per episode scored (branches too)
        return out

    def _batch(self, episodes: list[Episode], returns: list[float], extra: dict[str, Any]) -> TrainBatch:
        ids, attn, amask, old_lp = collate(episodes, self.policy.pad_id)
        allowed = allowed_tensor(episodes, ids.shape[1])  # constrained decoding: train the policy that sampled
        rewards = torch.tensor(returns, dtype=torch.float32)
        ref_lp = old_values = None
        with torch.no_grad():
            if self.ref_model is not None and not self.cfg.ppo.kl_in_reward:  # the KL loss term's reference
                ref_lp = forward(self.ref_model, None, ids, attn, self.cfg.rollout.temperature, entropy=False, mask=amask,
                                 allowed=allowed).logprobs
            if self.value_head is not None:
                old_values = forward(self.model, self.value_head, ids, attn, self.cfg.rollout.temperature, entropy=False, mask=amask).values
        bv = extra["branch"]
        inp = AdvantageInputs(
            rewards=rewards, action_mask=amask, group_ids=torch.tensor([ep.group_id for ep in episodes]),
            turn_starts=[ep.turn_starts for ep in episodes], values=old_values,
            baseline_rewards=None if extra["baseline"] is None else torch.tensor(extra["baseline"], dtype=torch.float32),
            branch_positions=bv.positions if bv else None, branch_values=bv.values if bv else None,
        )
        out = self.spec.fn(inp, **estimator_kwargs(self.spec.fn, self.params))
        adv = out.advantages
        do_whiten = self.spec.default_whiten if self.cfg.algorithm.whiten is None else self.cfg.algorithm.whiten
        if do_whiten:
            adv = whiten(adv, amask)
        return TrainBatch(ids, attn, amask, old_lp, adv, returns=out.returns, old_values=old_values, ref_logprobs=ref_lp,
                          allowed=allowed)

    @staticmethod
    def _episode_metrics(episodes: list[Episode]) -> dict[str, float]:
        r = np.array([ep.reward for ep in episodes], dtype=np.float64)
        succ = [ep.success for ep in episodes if ep.success is not None]
        errors = sum(v for ep in episodes for k, v in ep.metrics.items() if k.startswith("errors/"))
        return {
            "reward/mean": float(r.mean()), "reward/std": float(r.std()), "reward/max": float(r.max()), "reward/min": float(r.min()),
            "success_rate": float(np.mean(succ)) if succ else float("nan"),
            "episode/turns": float(np.mean([len(ep.turns) for ep in episodes])),
            "episode/env_errors": float(errors),
            "episode/truncated": float(np.mean([ep.truncated for ep in episodes])),
        }

    @staticmethod
    def _advantage_metrics(batch: TrainBatch) -> dict[str, float]:
        a = batch.advantages[batch.action_mask > 0]
        if a.numel() == 0:
            return {}
        return {"adv/mean": float(a.mean()), "adv/std": float(a.std(unbiased=False)), "adv/abs_max": float(a.abs().max())}

    def _log_episodes(self, episodes: list[Episode], batch: TrainBatch) -> None:
        n = self.cfg.train.log_episodes
        if n <= 0:
            return
        order = sorted(range(len(episodes)), key=lambda i: episodes[i].reward)
        pick = sorted(set(order[-(n - n // 2):] + order[: n // 2]))
        records = []
        for i in pick:  # with the per-token view and advantages: the report's credit heatmap
            adv = batch.advantages[i, :len(episodes[i].input_ids)].tolist()
            records.append(EpisodeRecord.from_episode(episodes[i], self.tokenizer, advantages=adv, step=self.step + 1,
                                                      algorithm=self.cfg.algorithm.name))
        atomic_write_text(self.run_dir / "episodes" / f"step_{self.step + 1:06d}.jsonl", write_records(records))

    # -- lifecycle -------------------------------------------------------------------------------------------
    def save(self) -> Path:
        state = {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "value_head": self.value_head.state_dict() if self.value_head else None,
            "trainer_rng": self.rng.getstate(), "torch_gen": self.torch_gen.get_state(),
            "tokens_cumulative": self.tokens_cumulative, "config": dump_config(self.cfg), "runner": self.runner.state_dict(),
        }
        return save_checkpoint(self.run_dir, self.step, model=self.model, tokenizer=self.tokenizer, trainer_state=state, keep=self.cfg.train.keep_checkpoints)

    def _resume(self) -> None:
        ckpt = latest_checkpoint(self.run_dir)  # the newest intact one
        if ckpt is None:
            if checkpoint_dirs(self.run_dir):
                raise CheckpointError(f"resume: no intact checkpoint in {self.run_dir / 'checkpoints'} (see the warnings above); "
                                      "start over with train.overwrite=true")
            self._drop_logs_after(-1)  # killed before its first checkpoint: start from scratch
            return
        load_model_weights(self.model, ckpt)
        st = load_trainer_state(ckpt)
        self.optimizer.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        if self.value_head is not None and st.get("value_head") is not None:
            self.value_head.load_state_dict(st["value_head"])
        self.rng.setstate(st["trainer_rng"])
        self.torch_gen.set_state(st["torch_gen"])
        set_rng_state(st["rng"])
        if "runner" in st:
            self.runner.load_state_dict(st["runner"])
        self.tokens_cumulative = st.get("tokens_cumulative", 0)
        self.step = int(st["step"])
        self.policy.update_weights(self.model.state_dict())
        self._drop_logs_after(self.step)

    def _drop_logs_after(self, step: int) -> None:
        """Forget what was logged after `step` (it will be logged again): metrics lines and episode files."""
        self.logger.truncate_after(step)
        for f in (self.run_dir / "episodes").glob("step_*.jsonl"):
            if int(f.stem.split("_")[1]) > step:
                f.unlink()

    def _prepare_run_dir(self) -> None:
        if self.cfg.train.overwrite:
            clear_run_dir(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "config.yaml"
        if self.cfg.train.resume:
            for tmp in clean_interrupted_writes(self.run_dir):
                print(f"removed {tmp}: a checkpoint write that was interrupted", file=sys.stderr)
            if path.exists():
                _same_run(load_config(path), self.cfg, path)
        atomic_write_text(path, dump_config(self.cfg))

    def _frozen_copy(self) -> torch.nn.Module:
        ref = copy.deepcopy(self.model)
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    def _lr_lambda(self, step: int) -> float:
        o = self.cfg.optim
        return lr_factor(step, self.cfg.train.updates, schedule=o.schedule, warmup_steps=o.warmup_steps)

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)


# settings a resumed run may change: how long it runs, and the switches that chose to resume
_RESUME_MAY_CHANGE = {"train.updates", "train.max_tokens", "train.resume", "train.overwrite"}


def _same_run(saved: Config, now: Config, path: Path) -> None:
    """Refuse to resume with settings other than the run's own, naming each difference."""
    a, b = _flat(saved.model_dump(mode="json")), _flat(now.model_dump(mode="json"))
    diffs = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a.keys() | b.keys())
             if k not in _RESUME_MAY_CHANGE and a.get(k) != b.get(k)]
    if diffs:
        raise ConfigError(f"resume: the config differs from the one saved in {path} ({'; '.join(diffs)}); resume with the same config")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out
