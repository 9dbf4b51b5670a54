"""The training engine: what `agentrl train` (trainer.py) and `agentrl sft` (sft.py) do alike, each step once.

The loops stay in their own modules, read top to bottom; they call these in this order:

1. the run directory checked (`run_dir.check_run_dir`) before any model loads, and on resume the saved config
   compared with this one (`same_config`);
2. `seed_everything`, then `load_trainable`: the model (`train.dtype`, `train.attn_implementation`, activation
   checkpointing) and, with `lora`, its peft adapters (only they train; checkpoints hold them and the base's name,
   so `agentrl eval --model RUN_DIR` and `agentrl train model=RUN_DIR` load the merged model);
3. `place`: on `train.device` (`inference.devices.pick_device`), equal on every rank;
4. `make_optimizer` (AdamW from `optim`) and `make_scheduler` (warmup, then constant / linear / cosine,
   `lr_schedule.lr_factor`, stepped once per optimizer step: one RL update, one SFT batch);
5. the forward under `forward.bf16_autocast` (`train.autocast`; float32 weights, gradients and AdamW state);
6. `prepare_run_dir`, then checkpoints with `checkpoint.save_checkpoint` and, on resume, `resume_point` + `restore`
   (weights, optimizer, scheduler, RNG states, the step; each loop restores its own extras);
7. metrics through `metrics.MetricsLogger` (metrics.jsonl, trackers of `train.report_to`).

What only RL has stays in trainer.py: the value head, the KL reference, FSDP2 sharding and its optimizer shards,
the sampler and its sync. Under torchrun both split each batch by rank (RL whole groups, `distributed.my_groups`; SFT
its demonstrations, `distributed.my_share`) and sum gradients over ranks; only RL has FSDP2.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrl.core.checkpoint import CheckpointError, checkpoint_dirs, latest_checkpoint
from agentrl.core.io import atomic_write_text
from agentrl.inference.models import enable_activation_checkpointing, load_model
from agentrl.train import distributed
from agentrl.train.checkpoint import clean_interrupted_writes, load_model_weights, set_rng_state
from agentrl.train.config import ConfigError, OptimConfig
from agentrl.train.lora import LoRAConfig, apply_lora, is_lora, trainable_parameters
from agentrl.train.lr_schedule import lr_factor
from agentrl.train.run_dir import clear_run_dir, start_run


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_trainable(name: str, run: Any, lora: LoRAConfig | None) -> tuple[Any, Any]:
    """(model, tokenizer) as `run` (a `train` section: seed, dtype, attn_implementation, gradient_checkpointing)
    says, wrapped in LoRA adapters when `lora` is set (only they train; the base stays as loaded)."""
    dtype = torch.bfloat16 if run.dtype == "bfloat16" else torch.float32
    model, tokenizer = load_model(name, dtype=dtype, seed=run.seed, attn_implementation=run.attn_implementation)
    if run.gradient_checkpointing:  # recompute each layer's activations in backward (training mode only)
        enable_activation_checkpointing(model)
    if lora is not None:
        model = apply_lora(model, lora, base=name, seed=run.seed)
    return model, tokenizer


def place(modules: Iterable[torch.nn.Module | None], device: torch.device) -> None:
    """Each module on `device`, with rank 0's weights on every rank (a no-op in one process)."""
    for module in modules:
        if module is not None:
            module.to(device)
            distributed.broadcast_params(module)


def trainable(model: Any) -> list[torch.nn.Parameter]:
    """The parameters the optimizer steps: a LoRA model's adapters, else every weight."""
    return trainable_parameters(model) if is_lora(model) else list(model.parameters())


def make_optimizer(params: list[torch.nn.Parameter], optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `params` with `optim`'s settings. FSDP2-sharded parameters (DTensors) and replicated ones go in
    two groups: foreach kernels take one kind at a time."""
    from agentrl.train.fsdp import is_dtensor

    groups: Any = params
    if any(is_dtensor(p) for p in params):
        groups = [
            {"params": g} for g in ([p for p in params if is_dtensor(p)], [p for p in params if not is_dtensor(p)]) if g
        ]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, total_steps: int) -> Any:
    """`optim.warmup_steps` of linear warmup, then `optim.schedule` to the last of `total_steps` optimizer steps."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total=total_steps, schedule=optim.schedule, warmup_steps=optim.warmup_steps)
    )


def prepare_run_dir(run_dir: Path, kind: str, config_text: str, *, overwrite: bool, resume: bool) -> None:
    """Clear (overwrite: only what the kit wrote) the run directory `check_run_dir` accepted, or on resume remove
    interrupted checkpoint writes; mark it a running run of `kind` (`run_dir.start_run`) and write its config."""
    if overwrite:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        for tmp in clean_interrupted_writes(run_dir):
            print(f"removed {tmp}: a checkpoint write that was interrupted", file=sys.stderr)
    start_run(run_dir, kind)
    atomic_write_text(run_dir / "config.yaml", config_text)


def same_config(saved: dict[str, Any], now: dict[str, Any], may_change: set[str], where: str, hint: str) -> None:
    """Refuse to resume with settings other than the run's own (dotted keys; `may_change` aside), naming each
    difference. One model directory reached through two paths (a symlink, a relative path) is one model."""
    a, b = flat(saved), flat(now)
    for d in (a, b):
        if isinstance(d.get("model"), str) and Path(d["model"]).exists():
            d["model"] = str(Path(d["model"]).resolve())
    diffs = [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(a.keys() | b.keys())
        if k not in may_change and a.get(k) != b.get(k)
    ]
    if diffs:
        raise ConfigError(f"{where} ({'; '.join(diffs)}); {hint}")


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1} (an empty mapping stays a value)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def resume_point(run_dir: Path, hint: str) -> Path | None:
    """The newest intact checkpoint to resume from; None when none was written yet (the run starts over). A run
    whose every checkpoint is damaged is refused (`hint`: how to start over)."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None and checkpoint_dirs(run_dir):
        raise CheckpointError(
            f"resume: no intact checkpoint in {run_dir / 'checkpoints'} (see the warnings above); start over with {hint}"
        )
    return ckpt


def restore(
    ckpt: Path, state: dict[str, Any], model: Any, optimizer: torch.optim.Optimizer | None, scheduler: Any
) -> int:
    """Load checkpoint `ckpt` (its trainer state `state`) into model, optimizer (None: the caller loads its own,
    e.g. FSDP2's shards) and scheduler, and set the RNG states; return the steps done."""
    load_model_weights(model, ckpt)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])
