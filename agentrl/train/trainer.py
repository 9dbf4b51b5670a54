"""The training loop: collect -> extra sampling -> advantages -> update -> sync weights -> log -> checkpoint.

Reads top to bottom. The algorithm is looked up once in `advantages.REGISTRY`; what it needs (value
head, branch values, greedy baseline) comes from its EstimatorSpec, never from its name.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from agentrl.algo.advantages import (
    REGISTRY,
    AdvantageInputs,
    continuation_rows,
    estimator_kwargs,
    whiten,
)
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.checkpoint import CheckpointError
from agentrl.core.io import atomic_write_text
from agentrl.core.outcomes import drop_unusable, outcome_metrics
from agentrl.core.records import EpisodeRecord, write_records
from agentrl.core.types import Episode, TrainBatch, allowed_tensor, collate
from agentrl.inference import make_policy_backend
from agentrl.inference.base import SamplingParams
from agentrl.rollout.build import build_runner, resolve_env
from agentrl.rollout.runner import EpisodeSpec
from agentrl.sim.batching import SimulatorQueue
from agentrl.train import distributed, engine, fsdp
from agentrl.train.async_rollouts import Collected, RolloutPipeline
from agentrl.train.batch_metrics import advantage_metrics, best_and_worst, episode_metrics, family_rows
from agentrl.train.branch_values import (
    BranchValues,
    estimate_branch_values,
    greedy_baselines,
)
from agentrl.train.checkpoint import (
    check_saveable,
    keep_snapshot,
    load_trainer_state,
    save_checkpoint,
)
from agentrl.train.config import (
    Config,
    ConfigError,
    dump_config,
    load_config,
    offpolicy_mode,
    sampler_copy_dtype,
)
from agentrl.train.dynamic_sampling import Refill, refill_specs, swap_groups, zero_spread_groups
from agentrl.train.forward import ValueHead, forward
from agentrl.train.held_out import HeldOutEval
from agentrl.train.invariants import check_trained_equals_sampled, verify_weights
from agentrl.train.lora import (
    ReferenceView,
    merged_state_dict,
)
from agentrl.train.metrics import MetricsLogger, NullLogger, family_metrics, frac_zero_spread
from agentrl.train.offpolicy import correct_batch
from agentrl.train.reward_shaping import KLShapedReturns, RandomReturns, raw_rewards
from agentrl.train.run_dir import check_run_dir, finish_run
from agentrl.train.task_draws import build_task_draws, group_scores
from agentrl.train.update import SkipGuard, one_step, ppo_update


class Trainer:
    def __init__(self, cfg: Config, *, console: bool = True):
        self.cfg = cfg
        self.spec = REGISTRY[cfg.algorithm.name]
        self.params = cfg.algorithm.estimator_params()  # validated when the config loaded
        self.run_dir = Path(cfg.train.run_dir)
        distributed.init_from_env(
            cfg.train.parallel, cfg.train.collective_timeout_s, cfg.train.device
        )  # no-op without torchrun
        if cfg.rollout.refill_rounds and distributed.world() > 1:  # refills would make the ranks' batches differ
            raise ConfigError(
                "rollout.refill_rounds (dynamic sampling) runs in one process for now; "
                "use rollout.refill_rounds=0 under torchrun"
            )
        self.groups = distributed.my_groups(cfg.rollout.groups)  # this rank's share of every update's groups
        if distributed.is_main():  # the others never touch the run directory before rank 0 prepared it
            check_run_dir(
                cfg.train.run_dir,
                resume=cfg.train.resume,
                overwrite=cfg.train.overwrite,
                option="train.run_dir",
                kind="train",
                resume_hint="train.resume=true",
                overwrite_hint="train.overwrite=true",
            )  # before loading a model
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        engine.seed_everything(cfg.train.seed)
        self.simulator_queue = SimulatorQueue()  # this run's: the simulator joins it, the runners serve it
        # the env, once for the whole run (rollout/build.py): id, kwargs (train.eval_env_kwargs' names too) and values
        # checked, the simulator loaded, the task list read: all before the policy loads
        self.env = resolve_env(
            cfg.env.id,
            cfg.env.kwargs,
            cfg.env.simulator,
            self.simulator_queue,
            check_also=cfg.train.eval_env_kwargs,
        )
        self.eval_env = self.env.with_kwargs(cfg.train.eval_env_kwargs) if cfg.train.eval_every else None
        # which task each group runs (rollout.task_draw): an env without a task list fails here, before any model loads
        self.task_draws = build_task_draws(cfg.rollout, cfg.train.seed, self.env)
        self.model, self.tokenizer = engine.load_trainable(cfg.model, cfg.train, cfg.lora)  # with lora: adapters
        self.value_head = ValueHead(self.model.config.hidden_size) if self.spec.needs_value_head else None
        self.device = distributed.train_device(cfg.train.device)
        engine.place((self.model, self.value_head), self.device)
        self.ref_model = self._reference() if cfg.ppo.kl_coef > 0 else None
        # fsdp2: the trainer's decoder layers sharded; sampling and checkpoints use a full copy synced each update
        self.rollout_model = self._shard() if cfg.train.parallel == "fsdp2" and distributed.world() > 1 else self.model
        self.optimizer = engine.make_optimizer(
            engine.trainable(self.model) + (list(self.value_head.parameters()) if self.value_head else []), cfg.optim
        )
        self.scheduler = engine.make_scheduler(self.optimizer, cfg.optim, cfg.train.updates)  # one step per update
        # asynchronous rollouts sample while the trainer updates: the transformers backend gets a copy of its own
        # rollout.dtype=bfloat16: a bfloat16 copy of its own, synced after every update (tokens corrected by TIS)
        self.sampler_dtype = sampler_copy_dtype(cfg)
        self.sampler_model = (
            self._frozen_copy(self.rollout_model, dtype=self.sampler_dtype)
            if (cfg.rollout.max_staleness and cfg.rollout.backend == "hf") or self.sampler_dtype
            else self.rollout_model
        )
        self.policy = make_policy_backend(cfg.rollout, self.sampler_model, self.tokenizer)
        self.pipeline: RolloutPipeline[Collected] | None = None  # rollout.max_staleness > 0, while run() runs
        self.sampling = SamplingParams(
            temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, max_new_tokens=cfg.rollout.max_new_tokens
        )
        self.runner = build_runner(
            self.env,
            self.policy,
            ChatFormatter(self.tokenizer),
            self.sampling,
            constrained=cfg.rollout.constrained,
            snapshot_turns=self.spec.needs_branches,
            anchor_turns=self.spec.needs_anchor_states,
            max_seq_len=cfg.rollout.max_seq_len,
            seed=cfg.train.seed,
            progress=False,
            env_workers=cfg.rollout.env_workers,
            simulator_queue=self.simulator_queue,
            episode_timeout_s=cfg.rollout.episode_timeout_s,
        )
        self.returns = (
            KLShapedReturns(
                self.ref_model,
                cfg.ppo.kl_coef,
                temperature=cfg.rollout.temperature,
                pad_id=self.policy.pad_id,
                micro_batch_size=cfg.ppo.micro_batch_size,
            )
            if self.ref_model is not None and cfg.ppo.kl_in_reward
            else raw_rewards
        )  # what every estimator sees as RM
        if cfg.train.random_reward is not None:  # the control run: returns that carry no signal
            self.returns = RandomReturns(cfg.train.random_reward, cfg.train.seed)
        self.held_out = (
            HeldOutEval.for_training(cfg, self.policy, self.runner.fmt, self.eval_env, self.simulator_queue)
            if self.eval_env is not None
            else None
        )
        self.torch_gen = torch.Generator().manual_seed(cfg.train.seed)
        self.step = 0
        self.tokens_cumulative = 0
        self.skip_guard = SkipGuard(cfg.train.max_skipped_updates)
        self.offpolicy = offpolicy_mode(cfg)  # ppo.offpolicy_correction, auto resolved
        if distributed.is_main():
            self._prepare_run_dir()
        distributed.barrier("waiting for rank 0 to prepare the run directory")
        self.logger = (
            MetricsLogger(
                self.run_dir,
                report_to=cfg.train.report_to,
                config=cfg.model_dump(mode="json"),
                resume=cfg.train.resume,
                console=console,
            )
            if distributed.is_main()
            else NullLogger()
        )  # rank 0 alone logs and writes
        if cfg.train.resume:
            self._resume()

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.cfg.train
        if self.held_out is not None and self.step == 0 and cfg.eval_before_train:
            self.logger.log(0, self.held_out(), cfg.updates)  # the starting point of the held-out curve
        k = self.cfg.rollout.max_staleness
        if k:  # collection for the next k updates runs while this one trains (train/async_rollouts.py)
            self.pipeline = RolloutPipeline(self._collect, self._sync_weights, k=k, start=self.step, stop=cfg.updates)
        try:
            while self.step < cfg.updates and not self.out_of_tokens():
                if self.pipeline is None:
                    metrics = self.train_step()
                else:
                    t0 = time.perf_counter()
                    metrics = self._learn(self.pipeline.take(self.step), t0)
                self.step += 1
                last = self.step == cfg.updates or self.out_of_tokens()
                if self.held_out is not None and (self.step % cfg.eval_every == 0 or last):
                    with self._sampler(fresh=True):  # the trainer's newest weights, no collection meanwhile
                        metrics.update(self.held_out())
                self.logger.log(self.step, metrics, cfg.updates)
                self.skip_guard.observe(metrics, self.step)  # every step of N updates in a row skipped: stop, say why
                if self.step % cfg.checkpoint_every == 0 or last:
                    self.save()
        finally:
            if self.pipeline is not None:
                self.pipeline.close()  # after the collection in progress: the sampler is closed only then
                self.pipeline = None
        self.logger.close()
        if distributed.is_main():  # only now: a run killed before this reads as unfinished (run_dir.run_status)
            finish_run(self.run_dir, step=self.step)
        distributed.barrier("the end of the run")
        return self.run_dir

    def out_of_tokens(self) -> bool:
        cap = self.cfg.train.max_tokens
        return cap is not None and self.tokens_cumulative >= cap

    def close(self) -> None:
        """Release the rollout backend (a vLLM engine's worker processes and memory); the model stays usable."""
        self.policy.close()

    def train_step(self) -> dict[str, float]:
        """One synchronous update: collect with the current weights, train, send the new weights to the sampler."""
        t0 = time.perf_counter()
        return self._learn(self._collect(self.step, self.step), t0)

    def _collect(self, step: int, version: int) -> Collected:
        """Everything sampled for update `step` (episodes, refills, branch continuations, greedy baselines) and what
        is computed from it alone, with the sampler's weights at `version` (= step unless asynchronous)."""
        t0 = time.perf_counter()
        if getattr(self.policy, "store", None) is not None:  # each update's collection starts from an empty KV
            self.policy.store.clear()  # store (a held-out evaluation since the sync may have filled it): resumable
        specs = self._episode_specs(step)
        collected = self.runner.collect(specs)
        self._observe_draws(collected)
        refill = None
        if self.cfg.rollout.refill_rounds:  # dynamic sampling: groups with no reward spread swapped for fresh ones
            refill, specs, batch_eps = self._refill(collected, specs, step)
            collected = [*refill.first_draw, *refill.extra]  # every episode sampled counts (tokens, outcomes)
        t_collect = time.perf_counter() - t0
        episodes, dropped = self._drop_failed(collected if refill is None else batch_eps, step)
        outcomes = distributed.sum_metrics({**outcome_metrics(collected), **dropped}, "the outcome all-gather")
        returns = self.returns(episodes)  # shaped once, before any estimator runs
        extra = self._extra_sampling(episodes, specs, returns)
        for ep in [*collected, *(extra["branch"].episodes if extra["branch"] else [])]:
            ep.policy_version = version
        return Collected(
            step=step,
            version=version,
            collected=collected,
            episodes=episodes,
            returns=returns,
            extra=extra,
            refill=refill,
            outcomes=outcomes,
            draws=self.task_draws.metrics(),
            t_collect=t_collect,
            t_branch=time.perf_counter() - t0 - t_collect,
        )

    def _learn(self, c: Collected, t0: float) -> dict[str, float]:
        """Update `self.step` on the collected batch `c`: advantages, the off-policy correction, PPO, the weights sent
        to the sampler (synchronous runs; asynchronous ones publish them to the pipeline instead)."""
        t_learn = time.perf_counter()
        episodes, returns, extra, refill, collected = c.episodes, c.returns, c.extra, c.refill, c.collected
        batch = self._batch(episodes, returns, extra)
        off_stats: dict[str, float] = {}
        offset, total = distributed.row_span(len(batch))  # this rank's rows of one process's batch, failures left out
        # one optimizer step on the weights that sampled (a synchronous update): π_old is the update's own forward,
        # so the correction needs no pass of its own (update.ppo_update's offpolicy); else π_old is recomputed
        fold = self.offpolicy != "none" and self.step == c.version and one_step(self.cfg.ppo, total)
        if self.offpolicy != "none" and not fold:  # π_old recomputed by the trainer, tokens weighed by π_old/π_sampler
            batch, off_stats = correct_batch(
                self.model,
                batch,
                self.cfg.ppo,
                mode=self.offpolicy,
                temperature=self.cfg.rollout.temperature,
                # the drift check is for the same weights in another engine; a cast copy differs by design
                same_weights=self.step == c.version and self.sampler_dtype is None,
                autocast=self.cfg.train.autocast == "bfloat16",
            )
        update_stats = ppo_update(
            self.model,
            self.value_head,
            self.optimizer,
            self.scheduler,
            batch,
            self.cfg.ppo,
            temperature=self.cfg.rollout.temperature,
            grad_clip=self.cfg.optim.grad_clip,
            generator=self.torch_gen,
            offset=offset,
            total=total,
            autocast=self.cfg.train.autocast == "bfloat16",
            offpolicy=self.offpolicy if fold else None,
            check_drift=self.sampler_dtype is None,  # a cast copy differs from the trainer by design
        )
        if self.pipeline is None:
            self._sync_weights()
        else:  # the producer syncs the sampler to the version each batch needs
            self.pipeline.publish(self.step + 1, self._state_to_send())
        t_update = time.perf_counter() - t_learn
        self._log_episodes(episodes, batch)
        sampled, extra_tokens = distributed.all_reduce_sum(
            torch.tensor([float(sum(ep.num_sampled for ep in collected)), float(extra["tokens"])], dtype=torch.float64),
            "the token-count all-reduce",
        ).tolist()
        self.tokens_cumulative += int(sampled + extra_tokens)
        asynchronous = {}
        if self.pipeline is not None:
            asynchronous = {
                "policy/staleness": float(self.step - c.version),
                "time/wait_for_rollouts": t_learn - t0,
                **self.pipeline.metrics(),
            }
        flat = set(zero_spread_groups(episodes))  # the batch's groups whose rewards are all equal
        return {
            **episode_metrics(episodes),
            **self._family_metrics(episodes, flat),
            **(refill.metrics(len(flat)) if refill is not None else {}),
            **({} if refill is not None else {"groups/frac_reward_zero_std": frac_zero_spread(episodes, flat)}),
            **advantage_metrics(batch),
            **update_stats,
            **off_stats,
            **reduce_extra_metrics(extra["metrics"]),
            **c.draws,
            **c.outcomes,
            **asynchronous,
            "tokens/sampled": float(sampled),
            "tokens/branch": float(extra_tokens),
            "tokens/cumulative": float(self.tokens_cumulative),
            "time/collect": c.t_collect,
            "time/branch": c.t_branch,
            "time/update": t_update,
            "time/total": time.perf_counter() - t0,
            "memory/model_state_mib": self._state_mib(),
        }

    def _state_mib(self) -> float:
        """This rank's weights, gradients and optimizer state (plus the rollout copy under fsdp2), in MiB."""
        mods = [
            self.model,
            *([self.rollout_model] if self.sharded else []),
            *([self.value_head] if self.value_head else []),
        ]
        return fsdp.held_bytes(mods, self.optimizer) / 2**20

    # -- pieces -------------------------------------------------------------------------------------------
    def _episode_specs(self, step: int) -> list[EpisodeSpec]:
        r = self.cfg.rollout
        tasks = self.task_draws.draw(r.groups, step=step, round_=0)  # every group's, on every rank alike (None: seed)
        specs = []
        for g in self.groups:  # global group indices: seeds and group ids as one process would give them
            seed = (self.cfg.train.seed * 1_000_003 + step * 1009 + g) & 0x7FFFFFFF  # G episodes of a task share it
            # episode i of group g is ("train", step, g, i): what it samples depends on nothing else in the batch
            specs += [
                EpisodeSpec(seed=seed, task_id=tasks[g], group_id=g, key=("train", step, g, i))
                for i in range(r.group_size)
            ]
        return specs

    def _observe_draws(self, episodes: list[Episode]) -> None:
        """Feed the task draws every rank's group outcomes (in rank order), so every rank holds the same state."""
        if not self.task_draws.observes:
            return
        scores = group_scores(episodes)
        if distributed.world() > 1:
            scores = distributed.all_gather_lists(scores, "the task-outcome all-gather")
        self.task_draws.observe(scores)

    def _refill(
        self, first: list[Episode], specs: list[EpisodeSpec], step: int
    ) -> tuple[Refill, list[EpisodeSpec], list[Episode]]:
        """Dynamic sampling (`dynamic_sampling.py`): replace the groups whose returns are all equal with groups of
        fresh tasks, in up to `rollout.refill_rounds` extra collections; returns what happened, the batch's specs
        and its episodes (the batch keeps `rollout.groups` groups)."""
        r = self.cfg.rollout
        refill = Refill(first_draw=first, groups=r.groups)
        episodes, zero = first, zero_spread_groups(first)
        refill.zero_spread_first = len(zero)
        next_id = r.groups
        for round_ in range(r.refill_rounds):
            if not zero:
                break
            fresh_specs = refill_specs(
                seed=self.cfg.train.seed,
                step=step,
                round_=round_,
                n_groups=len(zero),
                group_size=r.group_size,
                first_id=next_id,
            )
            tasks = self.task_draws.draw(len(zero), step=step, round_=round_ + 1)  # None (seed): as before
            fresh_specs = [replace(s, task_id=tasks[s.group_id - next_id]) for s in fresh_specs]
            next_id += len(zero)
            fresh = self.runner.collect(fresh_specs)
            self._observe_draws(fresh)
            refill.extra += fresh
            refill.rounds += 1
            before = len(episodes)
            episodes, specs = swap_groups(episodes, specs, zero, fresh, fresh_specs)
            assert len(episodes) == before, "a swap keeps the batch's size"
            zero = zero_spread_groups(episodes)
        return refill, specs, episodes

    def _branch_values(self, episodes: list[Episode], returns: list[float]) -> BranchValues:
        """TRePO's values. Each rank branches its own episodes: a continuation's seeds derive from its parent's uid,
        the point and j (`RolloutRunner.branch_many`), so no rank needs to know what the others sample."""
        a = self.params
        return estimate_branch_values(
            self.runner,
            episodes,
            spec=a.branch_points,
            m=a.branch_m,
            t_min=a.branch_t_min,
            t_max=self.cfg.rollout.temperature,
            point_seed=self.cfg.train.seed,
            common_random_numbers=a.branch_crn,
            episode_returns=returns,
            returns=self.returns,
        )

    def _extra_sampling(
        self, episodes: list[Episode], specs: list[EpisodeSpec], returns: list[float]
    ) -> dict[str, Any]:
        """What the estimator samples beyond the episodes: TRePO's branch continuations, ReMax's greedy baselines."""
        out: dict[str, Any] = {"tokens": 0, "metrics": {}, "branch": None, "baseline": None, "continuations": []}
        if self.spec.needs_branches:
            bv = self._branch_values(episodes, returns)
            out["branch"] = bv
            out["tokens"] += bv.tokens
            out["metrics"]["branch/continuations"] = float(bv.continuations)
            out["metrics"]["branch/points"] = float(sum(len(p) for p in bv.positions))
            out["metrics"]["branch/failed"] = float(bv.failed)
            if self.params.train_continuations:  # TRePO's params (needs_branches): continuations as training rows
                keep, off_temperature = bv.trainable(self.cfg.rollout.temperature)
                out["continuations"] = keep
                out["metrics"]["branch/trained"] = float(len(keep))
                out["metrics"]["branch/untrained_temperature"] = float(off_temperature)
        if self.spec.needs_greedy_baseline:
            out["baseline"], tokens = greedy_baselines(self.runner, episodes, specs, returns=self.returns)
            out["tokens"] += tokens
        if isinstance(self.returns, KLShapedReturns):
            out["metrics"]["kl/in_reward"] = self.returns.take_mean_kl()  # per episode scored (branches too)
        return out

    def _batch(self, episodes: list[Episode], returns: list[float], extra: dict[str, Any]) -> TrainBatch:
        """The update's rows: the episodes, then (`params.train_continuations`) the continuations `extra` keeps."""
        bv, keep = extra["branch"], extra.get("continuations") or []
        conts = [bv.episodes[k] for k in keep]
        rows = [*episodes, *conts]
        n = len(episodes)
        ids, attn, amask, old_lp = collate(rows, self.policy.pad_id)
        if self.cfg.train.check_invariants:  # the trained row is exactly what was sampled, mask included
            for i, ep in enumerate(rows):
                check_trained_equals_sampled(ep, ids[i], amask[i])
        allowed = allowed_tensor(rows, ids.shape[1])  # constrained decoding: train the policy that sampled
        cont_adv = None
        if conts:  # the parent's prefix carries no loss; the rest R(C) − B̂₋C (trepo.continuation_rows)
            cont_mask, cont_adv = continuation_rows(
                amask[n:],
                [c.branch_pos for c in conts],
                [bv.returns[k] for k in keep],
                [bv.others[k] for k in keep],
                mode=self.params.mode,
            )
            amask = torch.cat([amask[:n], cont_mask])
        rewards = torch.tensor(returns, dtype=torch.float32)
        ref_lp = old_values = None
        with torch.no_grad():
            if self.ref_model is not None and not self.cfg.ppo.kl_in_reward:  # the KL loss term's reference
                ref_lp = forward(
                    self.ref_model,
                    None,
                    ids,
                    attn,
                    self.cfg.rollout.temperature,
                    entropy=False,
                    mask=amask,
                    allowed=allowed,
                ).logprobs
            if self.value_head is not None:
                old_values = forward(
                    self.model, self.value_head, ids, attn, self.cfg.rollout.temperature, entropy=False, mask=amask
                ).values
        inp = AdvantageInputs(  # the estimator sees the episodes' rows only
            rewards=rewards,
            action_mask=amask[:n],
            group_ids=torch.tensor([ep.group_id for ep in episodes]),
            turn_starts=[ep.turn_starts for ep in episodes],
            values=None if old_values is None else old_values[:n],
            baseline_rewards=None
            if extra["baseline"] is None
            else torch.tensor(extra["baseline"], dtype=torch.float32),
            branch_positions=bv.positions if bv else None,
            branch_values=bv.values if bv else None,
            branch_baselines=bv.baselines if bv else None,
            turn_anchors=[ep.turn_anchors for ep in episodes] if self.spec.needs_anchor_states else None,
        )
        out = self.spec.fn(inp, **estimator_kwargs(self.spec.fn, self.params))
        adv = out.advantages
        value_targets, value_mask = out.returns, out.value_mask
        if cont_adv is not None:  # whitened with the episodes' rows below: one scale over every trained token
            adv = torch.cat([adv, cont_adv])
            value_targets, value_mask = (
                None if t is None else torch.cat([t, torch.zeros_like(cont_adv)]) for t in (value_targets, value_mask)
            )
        mode = self.spec.default_whiten if self.cfg.algorithm.whiten is None else self.cfg.algorithm.whiten
        if mode != "none":
            center = mode == "center_scale"
            adv = whiten(
                adv, amask, center=center, sum_all=partial(distributed.all_reduce_sum, what="the whitening all-reduce")
            )
        return TrainBatch(
            ids,
            attn,
            amask,
            old_lp,
            adv,
            returns=value_targets,
            old_values=old_values,
            ref_logprobs=ref_lp,
            allowed=allowed,
            value_mask=value_mask,
        )

    def _family_metrics(self, episodes: list[Episode], flat: set[int]) -> dict[str, float]:
        """Per task family (`batch_metrics.family_rows`), nothing for an env without families."""
        families = self.env.task_families
        return family_metrics(family_rows(episodes, families, flat)) if any(families.values()) else {}

    def _log_episodes(self, episodes: list[Episode], batch: TrainBatch) -> None:
        n = self.cfg.train.log_episodes
        if n <= 0:
            return
        records = [
            EpisodeRecord.from_episode(
                episodes[i],
                self.tokenizer,
                advantages=batch.advantages[i, : len(episodes[i].input_ids)].tolist(),  # the report's credit heatmap
                step=self.step + 1,
                algorithm=self.cfg.algorithm.name,
            )
            for i in best_and_worst([ep.reward for ep in episodes], n)
        ]
        if distributed.world() > 1:  # each rank's best and worst; rank 0 picks over all of them
            records = distributed.all_gather_lists(records, "the episode all-gather")
            records = [records[i] for i in best_and_worst([r.reward for r in records], n)]
        if not distributed.is_main():
            return
        atomic_write_text(self.run_dir / "episodes" / f"step_{self.step + 1:06d}.jsonl", write_records(records))

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def sharded(self) -> bool:
        return self.rollout_model is not self.model

    def _shard(self) -> torch.nn.Module:
        """FSDP2 (`fsdp.py`): a full copy to sample from and checkpoint, then the trainer's layers sharded."""
        full = copy.deepcopy(self.model)
        full.eval()
        for p in full.parameters():
            p.requires_grad_(False)
        fsdp.shard(self.model, self.device)
        if distributed.is_main():
            layers = torch.nn.ModuleList(fsdp.decoder_layers(self.model))
            (held, n), (model_held, model_n) = fsdp.local_numel(layers), fsdp.local_numel(self.model)
            print(
                f"fsdp2: rank 0 holds {held} of {n} decoder-layer parameters ({len(layers)} layers over "
                f"{distributed.world()} ranks); {model_held} of {model_n} in all (embeddings and norm replicated)",
                flush=True,
            )
        return full

    def save(self) -> Path:
        # every rank refuses non-finite weights before any writes (rank 0 alone would leave the others at a barrier)
        check_saveable(
            self.rollout_model, {"value_head": self.value_head.state_dict() if self.value_head else None}, self.step
        )
        shards = self._write_optimizer_shard() if self.sharded else None
        with self._sampler():  # asynchronous rollouts: the producer's state between two collections
            sampling_state = {"task_draws": self.task_draws.state_dict()}  # seeds come from the step: no counter
        state = {
            "optimizer": None if self.sharded else self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "value_head": self.value_head.state_dict() if self.value_head else None,
            **sampling_state,
            "torch_gen": self.torch_gen.get_state(),
            "tokens_cumulative": self.tokens_cumulative,
            "config": dump_config(self.cfg),
            "world_size": distributed.world(),
        }
        if not distributed.is_main():  # the ranks' weights and optimizer states are equal: rank 0 writes them
            return self.run_dir / "checkpoints"
        try:
            final = save_checkpoint(
                self.run_dir,
                self.step,
                model=self.rollout_model,
                tokenizer=self.tokenizer,
                trainer_state=state,
                keep=self.cfg.train.keep_checkpoints,  # fsdp2: the synced full copy
                extra={OPTIMIZER_SHARDS: shards} if shards else None,
                checked=True,
            )
            every = self.cfg.train.snapshot_every
            if every and self.step % every == 0:
                keep_snapshot(final, self.run_dir)
            return final
        finally:
            if shards is not None and shards.exists():  # a failed save leaves no staging directory behind
                shutil.rmtree(shards, ignore_errors=True)

    def _write_optimizer_shard(self) -> Path:
        """fsdp2: every rank writes its own optimizer shard (no gather: rank 0 would hold N shards, pickled) to a
        staging directory beside the checkpoints (a filesystem every rank sees), which rank 0 moves in."""
        stage = self.run_dir / "checkpoints" / f".step_{self.step:06d}.{OPTIMIZER_SHARDS}"  # cleaned like a .step_ temp
        stage.mkdir(parents=True, exist_ok=True)
        part = stage / _shard_name(distributed.rank())
        torch.save(fsdp.local_optimizer_state(self.optimizer), part.with_suffix(".tmp"))
        os.replace(part.with_suffix(".tmp"), part)
        distributed.barrier("waiting for every rank's optimizer shard")
        missing = _missing_shards(stage)
        if missing:  # every rank sees the same directory, so every rank stops here
            raise CheckpointError(
                f"fsdp2 checkpoint: {', '.join(missing)} not in {stage} after every rank wrote its "
                "shard; train.run_dir must be on a filesystem every rank sees"
            )
        return stage

    def _resume(self) -> None:
        ckpt = engine.resume_point(self.run_dir, "train.overwrite=true")  # the newest intact one
        if ckpt is None:
            self._drop_logs_after(-1)  # killed before its first checkpoint: start from scratch
            return
        st = load_trainer_state(ckpt)
        if int(st.get("world_size", 1)) != distributed.world():
            raise ConfigError(
                f"resume: {ckpt} was saved by {st.get('world_size', 1)} process(es), this run has "
                f"{distributed.world()}; resume with the same number (torchrun --nproc-per-node)"
            )
        if self.sharded:  # every rank checks every shard before any collective: none waits on a rank that failed
            missing = _missing_shards(ckpt / OPTIMIZER_SHARDS)
            if missing:
                raise CheckpointError(
                    f"resume: {ckpt / OPTIMIZER_SHARDS} lacks {', '.join(missing)} (fsdp2 optimizer "
                    "shards); was it written with train.parallel=fsdp2 on a filesystem every rank sees?"
                )
        self.step = engine.restore(
            ckpt, st, self.rollout_model, None if self.sharded else self.optimizer, self.scheduler
        )
        if self.sharded:  # the full weights into this rank's shards, and this rank's optimizer shard
            fsdp.load_full_state_dict(self.model, self.rollout_model.state_dict())
            part = ckpt / OPTIMIZER_SHARDS / _shard_name(distributed.rank())
            fsdp.load_local_optimizer_state(self.optimizer, torch.load(part, map_location="cpu", weights_only=True))
        if self.value_head is not None and st.get("value_head") is not None:
            self.value_head.load_state_dict(st["value_head"])
        self.torch_gen.set_state(st["torch_gen"])
        # checkpoints written before seeds were data also hold "runner" (its uid counter) and "trainer_rng" (branch
        # points): ignored, since what a step samples now derives from the step itself (DESIGN.md, "Seeds are data")
        if "task_draws" in st:  # where the draws stood (strata counters, recent success): the next draws as before
            self.task_draws.load_state_dict(st["task_draws"])
        self.tokens_cumulative = st.get("tokens_cumulative", 0)
        self._sync_weights()
        self._drop_logs_after(self.step)

    def _drop_logs_after(self, step: int) -> None:
        """Forget what was logged after `step` (it will be logged again): metrics lines and episode files."""
        self.logger.truncate_after(step)
        if not distributed.is_main():
            return
        for f in (self.run_dir / "episodes").glob("step_*.jsonl"):
            m = re.fullmatch(r"step_(\d+)\.jsonl", f.name)  # the names _log_episodes writes, nothing else
            if m and int(m.group(1)) > step:
                f.unlink()

    def _prepare_run_dir(self) -> None:
        """Check (resume: the saved config is this one) the run directory `check_run_dir` accepted, clear it
        (overwrite: only what the kit wrote), mark it as a running train run and write the config."""
        path = self.run_dir / "config.yaml"
        if self.cfg.train.resume and path.exists():
            engine.same_config(
                load_config(path).model_dump(mode="json"),
                self.cfg.model_dump(mode="json"),
                _RESUME_MAY_CHANGE,
                f"resume: the config differs from the one saved in {path}",
                "resume with the same config",
            )
        engine.prepare_run_dir(
            self.run_dir,
            "train",
            dump_config(self.cfg),
            overwrite=self.cfg.train.overwrite,
            resume=self.cfg.train.resume,
        )

    def _drop_failed(self, episodes: list[Episode], step: int) -> tuple[list[Episode], dict[str, float]]:
        """The episodes that enter the advantage groups, and the drop metrics. Episodes ended by infrastructure
        (env error, simulator error, timeout) leave the groups (`rollout.failed_episodes=exclude_infra`) rather
        than being scored 0. Under torchrun each rank drops within its own groups (a group never spans ranks, so
        it drops what one process would), and `ppo_update` places the rows kept by every rank (`row_span`).
        fsdp2 keeps them (scored 0), and says so: its lock-step micro-batch count assumes equal rows per rank."""
        if self.cfg.rollout.failed_episodes != "exclude_infra":
            return episodes, {}
        if self.sharded:
            n = sum(1 for ep in episodes if ep.end is not None and ep.end.infra)
            if n:
                print(
                    f"update {step + 1}: {n} episode(s) ended by an infrastructure failure are kept with reward 0 "
                    "(train.parallel=fsdp2 cannot leave them out yet)",
                    file=sys.stderr,
                )
            return episodes, {}
        kept = drop_unusable(episodes, "exclude_infra")
        left = distributed.all_gather(len(kept.episodes), "the kept-episode all-gather")  # every rank decides alike
        if not sum(left):
            raise RuntimeError(
                f"update {step + 1}: every episode ended by an infrastructure failure "
                f"({sorted({ep.error for ep in episodes if ep.error})[:2]}); nothing to train on"
            )
        if not all(left):
            raise RuntimeError(
                f"update {step + 1}: rank(s) {[r for r, n in enumerate(left) if not n]} have no "
                "episode left after leaving out infrastructure failures, and every rank needs one; use "
                "more rollout.groups per rank, or rollout.failed_episodes=score_zero"
            )
        return kept.episodes, kept.metrics()

    def _state_to_send(self) -> dict[str, torch.Tensor]:
        """The weights the sampler needs: the trainer's (a LoRA model's merged into the base for an engine of its
        own: vLLM, remote servers)."""
        lora_merged = self.cfg.lora is not None and self.cfg.rollout.backend in ("vllm", "remote")
        return merged_state_dict(self.model) if lora_merged else self.model.state_dict()

    @contextmanager
    def _sampler(self, fresh: bool = False) -> Iterator[None]:
        """Hold the sampler (asynchronous rollouts: no collection runs meanwhile); `fresh`: synced to the trainer's
        newest weights first. Synchronous runs hold it already."""
        if self.pipeline is None:
            yield
            return
        with self.pipeline.using(self._state_to_send if fresh else None, version=self.step):
            yield

    def _sync_weights(self, sd: dict[str, torch.Tensor] | None = None) -> None:
        """Send the trainer's weights (or `sd`: a version the asynchronous pipeline kept) to the rollout engine and
        check they arrived (`train.verify_weight_sync`: a digest of the engine's weights against the sent ones)."""
        if self.sharded:  # a collective: every rank gathers the full weights for its own rollout copy
            sd = fsdp.full_state_dict(self.model)
            if getattr(self.policy, "model", None) is not self.rollout_model:  # vLLM samples: the copy is what
                self.rollout_model.load_state_dict(sd, strict=True)  # checkpoints are written from
        elif sd is None:
            sd = self._state_to_send()
        self.policy.update_weights(sd)
        if self.cfg.train.verify_weight_sync:
            verify_weights(self.policy, sd if self.sampler_dtype is None else cast_floats(sd, self.sampler_dtype))

    def _reference(self) -> Any:
        """The KL reference: the base with the adapters switched off (LoRA, no second copy), else a frozen copy."""
        return ReferenceView(self.model) if self.cfg.lora is not None else self._frozen_copy()

    def _frozen_copy(self, model: torch.nn.Module | None = None, dtype: str | None = None) -> torch.nn.Module:
        ref = copy.deepcopy(self.model if model is None else model)
        if dtype is not None:
            ref.to(getattr(torch, dtype))
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref


def cast_floats(sd: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """`sd` with its floating-point tensors in `dtype` (what loading it into a model of that precision stores)."""
    dt = getattr(torch, dtype)
    return {k: v.to(dt) if v.is_floating_point() else v for k, v in sd.items()}


OPTIMIZER_SHARDS = "optimizer_shards"  # fsdp2: a checkpoint's directory of rank_NNN.pt optimizer shards


def _shard_name(rank: int) -> str:
    return f"rank_{rank:03d}.pt"


def _missing_shards(folder: Path) -> list[str]:
    """The optimizer shards of this run's ranks that `folder` lacks."""
    return [_shard_name(r) for r in range(distributed.world()) if not (folder / _shard_name(r)).is_file()]


# settings a resumed run may change: how long it runs, and the switches that chose to resume
_RESUME_MAY_CHANGE = {
    "train.updates",
    "train.max_tokens",
    "train.resume",
    "train.overwrite",
    "train.collective_timeout_s",
    "train.device",
    "train.gradient_checkpointing",
    "train.threads",  # CPU threads: a run started on one core count may go on with another
    "train.run_dir",  # a run directory moved (or reached through another path) resumes where it now is
    "train.report_to",  # experiment trackers only log
    "train.keep_checkpoints",  # what is kept on disk, not what is trained
    "train.snapshot_every",
}  # where and how, not what, is computed


def reduce_extra_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Branch counts summed over ranks; the in-reward KL averaged over them (each rank's is a mean over as many)."""
    keys = sorted(metrics)
    vals = distributed.all_reduce_sum(
        torch.tensor([metrics[k] for k in keys], dtype=torch.float64), "the metrics all-reduce"
    )
    w = distributed.world()
    return {k: float(v) / (w if k == "kl/in_reward" else 1) for k, v in zip(keys, vals.tolist())}
