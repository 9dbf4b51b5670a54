"""`agentrl sft`'s config: nested like `agentrl train`'s (`train/config.py`), loaded the same way (a YAML file plus
`a.b=v` overrides, validated once), sharing its sections where they mean the same thing.

    model: smollm2-135m
    data:  {source, split, episodes, keep, max_seq_len, bucket}      the demonstrations
    env:   {id, kwargs}                                               the env that demonstrates and is evaluated on
    optim: {lr, weight_decay, betas, grad_clip, schedule, warmup_steps}   RL's `optim`, other defaults (below)
    sft:   {epochs, batch_size, micro_batch_size, shared_prefix}     the loop
    train: {seed, run_dir, dtype, device, autocast, checkpoints, held-out evaluation, trackers, ...}
    lora:  null | RL's `lora` section

The `agentrl sft` flags are shorthands for keys (`FLAGS`); `config.yaml` of a run directory holds this config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from agentrl.train.config import (
    AttnImplementation,
    Autocast,
    CollectiveTimeout,
    ConfigError,
    Device,
    EvalEnvKwargs,
    EvalTasksField,
    GradientCheckpointing,
    KeepCheckpoints,
    LoRASection,
    OptimConfig,
    Overwrite,
    ReportTo,
    Resume,
    Seed,
    Threads,
    WeightsDtype,
    _Strict,
    check_autocast,
    read_config_data,
    validate_config,
)


class SFTDataConfig(_Strict):
    """The demonstrations (train/sft.py): an env's scripted agent on its tasks, or a file of dialogs."""

    source: str = Field(
        description="scripted:NAME (env.id's scripted agent, e.g. scripted:gold) or a file of dialogs: JSONL "
        "({messages: [...]} per line), Parquet, or a datasets save_to_disk directory"
    )
    split: str | None = Field(
        None,
        description="scripted sources: the env's split kwarg (null: the env's default); held-out evaluation then "
        "runs on split test unless train.eval_env_kwargs names one",
    )
    episodes: int | None = Field(
        None, ge=1, description="scripted sources: tasks to demonstrate (null: every task of the split)"
    )
    keep: Literal["success", "all"] = Field(
        "success", description="scripted sources: keep only the successful demonstrations, or all"
    )
    max_seq_len: int = Field(
        4096, ge=16, description="longer demonstrations are refused, not cut (cut ones would teach half turns)"
    )
    bucket: bool = Field(True, description="length-bucketing: rows of similar length share a batch (less padding)")


class SFTEnvConfig(_Strict):
    """The env whose scripted agent demonstrates (`data.source: scripted:NAME`) and whose tasks held-out evaluation
    (`train.eval_every`) runs; a file source without evaluation needs none."""

    id: str | None = Field(None, description="the env's Gymnasium id, as RL's env.id (null: none)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the env's constructor")


class SFTOptimConfig(OptimConfig):
    """RL's optimizer section (AdamW and its schedule), with SFT's defaults for the learning rate and schedule."""

    lr: float = Field(
        5e-5,
        gt=0.0,
        description="AdamW's learning rate (the peak, after warmup); 5e-5 where RL's default is 1e-5: a supervised "
        "target is fixed and clean, so larger steps are safe where a policy-gradient estimate is noisy",
    )
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "cosine",
        description="the learning rate after warmup: constant, or a linear or cosine decay to 0 at the last optimizer "
        "step; cosine where RL's default is constant: SFT knows its length (epochs over a fixed data set) and ends "
        "annealed, while an RL run is often extended (train.updates may grow on resume) and a decay tied to its "
        "length would change under it",
    )


class SFTLoopConfig(_Strict):
    """The supervised loop: epochs over the demonstrations, batches, gradient accumulation."""

    epochs: int = Field(2, ge=1, description="passes over the demonstrations")
    batch_size: int = Field(8, ge=1, description="demonstrations per optimizer step")
    micro_batch_size: int = Field(
        4, ge=1, description="demonstrations per forward/backward (gradient accumulation); at most batch_size"
    )
    shared_prefix: bool = Field(True, description="forward the prefix a micro-batch's rows share once")


class SFTTrainConfig(_Strict):
    """The run: where it is written, checkpoints, devices and precision, held-out evaluation, trackers."""

    seed: Seed = 0
    run_dir: str = Field("runs/sft", description="the run directory: config.yaml, metrics.jsonl, checkpoints/")
    dtype: WeightsDtype = "float32"
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="optimizer steps between checkpoints (null: at the end of every epoch); the last "
        "step always saves one",
    )
    keep_checkpoints: KeepCheckpoints = 2
    resume: Resume = False
    overwrite: Overwrite = False
    report_to: ReportTo = Field(default_factory=list)
    threads: Threads = None
    eval_every: int = Field(
        0,
        ge=0,
        description="held-out evaluation: greedy episodes on env.kwargs + eval_env_kwargs before the first step, "
        "every this-many optimizer steps and at the end, logged as eval/* metrics (needs env.id); 0 = off",
    )
    eval_tasks: EvalTasksField = None
    eval_env_kwargs: EvalEnvKwargs = Field(default_factory=dict)
    eval_max_new_tokens: int = Field(64, ge=1, description="the most tokens of one agent turn in held-out episodes")
    autocast: Autocast = "none"
    device: Device = "auto"
    gradient_checkpointing: GradientCheckpointing = False
    attn_implementation: AttnImplementation = "auto"
    parallel: Literal["none", "ddp"] = Field(
        "none",
        description="several processes (torchrun --nproc-per-node N -m agentrl sft ...): every rank holds the whole "
        "model and forwards its share of each batch, gradients summed over ranks (one process's step, to float "
        "rounding); rank 0 writes the run directory",
    )
    collective_timeout_s: CollectiveTimeout = 300.0


class SFTConfig(_Strict):
    """A supervised run's whole config: `agentrl sft [CONFIG.yaml] [a.b=v ...] [--flags]`."""

    model: str = Field(
        "smollm2-135m",
        description="the model to fine-tune: smollm2-135m | tiny-random | a local HF directory | a run directory",
    )
    data: SFTDataConfig = Field(description="the demonstrations")
    env: SFTEnvConfig = Field(default_factory=SFTEnvConfig, description="the env of scripted sources and evaluation")
    optim: SFTOptimConfig = Field(default_factory=SFTOptimConfig, description="the optimizer and its schedule")
    sft: SFTLoopConfig = Field(default_factory=SFTLoopConfig, description="the supervised loop")
    train: SFTTrainConfig = Field(default_factory=SFTTrainConfig, description="the run")
    lora: LoRASection = None

    @model_validator(mode="before")
    @classmethod
    def _has_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and not (isinstance(data.get("data"), dict) and "source" in data["data"]):
            raise ValueError(
                "no demonstrations named: give --from scripted:NAME (with --env ID) or --from FILE (JSONL, Parquet, "
                "a datasets directory), or data.source in the config"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SFTConfig:
        if self.sft.micro_batch_size > self.sft.batch_size:
            raise ValueError(
                f"sft.micro_batch_size ({self.sft.micro_batch_size}) must be <= sft.batch_size ({self.sft.batch_size})"
            )
        if self.data.source.startswith("scripted:") and not self.env.id:
            raise ValueError(
                "a scripted:NAME source needs --env ID (env.id: the env whose scripted agent demonstrates)"
            )
        if self.train.eval_every and not self.env.id:
            raise ValueError(
                "held-out evaluation (train.eval_every) needs --env (env.id): the env whose tasks are evaluated"
            )
        check_autocast(self.train.autocast, self.train.dtype)
        return self


# `agentrl sft` flags (their argparse dest) -> the keys they set. The same names were SFTConfig's flat fields before
# the config was nested, so `from_flags` also reads a run directory's config.yaml written then.
FLAGS: dict[str, str] = {
    "model": "model",
    "source": "data.source",
    "split": "data.split",
    "episodes": "data.episodes",
    "keep": "data.keep",
    "max_seq_len": "data.max_seq_len",
    "bucket": "data.bucket",
    "env": "env.id",
    "env_kwargs": "env.kwargs",
    "lr": "optim.lr",
    "weight_decay": "optim.weight_decay",
    "grad_clip": "optim.grad_clip",
    "schedule": "optim.schedule",
    "warmup_steps": "optim.warmup_steps",
    "epochs": "sft.epochs",
    "batch_size": "sft.batch_size",
    "micro_batch_size": "sft.micro_batch_size",
    "shared_prefix": "sft.shared_prefix",
    "seed": "train.seed",
    "out": "train.run_dir",
    "run_dir": "train.run_dir",
    "checkpoint_every": "train.checkpoint_every",
    "keep_checkpoints": "train.keep_checkpoints",
    "resume": "train.resume",
    "overwrite": "train.overwrite",
    "threads": "train.threads",
    "eval_every": "train.eval_every",
    "eval_tasks": "train.eval_tasks",
    "eval_env_kwargs": "train.eval_env_kwargs",
    "eval_max_new_tokens": "train.eval_max_new_tokens",
    "report_to": "train.report_to",
}
_FLAG_NAMES = {"source": "--from"}  # argparse dests whose flag is not --dest-with-dashes


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"optim.lr": 1e-4} -> {"optim": {"lr": 1e-4}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, leaf = key.split(".")
        node = out
        for s in sections:
            node = node.setdefault(s, {})
        node[leaf] = value
    return out


def from_flags(**flags: Any) -> SFTConfig:
    """The config the `agentrl sft` flags (or SFTConfig's flat fields from before it was nested) describe, the rest
    defaulted: `from_flags(source="scripted:gold", env=ID, lr=1e-4)`. An unknown name is a ConfigError."""
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise ConfigError(f"unknown sft option(s) {unknown}; known: {', '.join(FLAGS)}")
    return validate_config(SFTConfig, nest({FLAGS[k]: v for k, v in flags.items()}), _flag_names(flags))


def load_sft_config(
    path: str | Path | None = None, overrides: list[str] | None = None, flags: dict[str, Any] | None = None
) -> SFTConfig:
    """A YAML file, then the flags given (None: not given), then `a.b=v` overrides, each over the one before;
    validated once. Errors name the key and, for a key a flag set, the flag."""
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - set(FLAGS))
    if unknown:
        raise ConfigError(f"unknown sft option(s) {unknown}; known: {', '.join(FLAGS)}")
    data = read_config_data(path, overrides, nest({FLAGS[k]: v for k, v in given.items()}))
    return validate_config(SFTConfig, data, _flag_names(given))


def _flag_names(flags: dict[str, Any]) -> dict[str, str]:
    return {FLAGS[k]: _FLAG_NAMES.get(k, "--" + k.replace("_", "-")) for k in flags}


def saved_sft_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A run directory's config.yaml as this config's mapping: as written now, or by an agentrl whose SFTConfig
    was flat (`{sft: {source: ..., lr: ...}}`), converted through FLAGS."""
    old = saved.get("sft") if set(saved) == {"sft"} else None
    if isinstance(old, dict) and "source" in old:
        return from_flags(**{k: v for k, v in old.items() if k in FLAGS}).model_dump(mode="json")
    return saved
