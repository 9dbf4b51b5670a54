"""Training configuration: pydantic models, loaded from YAML plus `key=value` overrides, validated once.

Unknown keys are errors that list the valid keys of their section; the resolved config is saved in
the run directory (`config.yaml`) so a run can be resumed or reproduced exactly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agentrl.core.errors import UsageError
from agentrl.core.finite import short_repr
from agentrl.train.lora import LoRAConfig

# A float that must be finite: NaN and ±inf pass `gt=0` / `ge=0` bounds (inf > 0) and would train with every step
# skipped or write NaN weights. Every section below refuses them for all its float fields (FINITE in its
# model_config; SFTConfig's sections are `_Strict` too); other models use the same: `model_config =
# ConfigDict(..., **FINITE)` or a `Finite` field. The error reads "'optim.lr': must be a finite number (got inf)".
FINITE = ConfigDict(allow_inf_nan=False)
Finite = Annotated[float, AllowInfNan(False)]

MAX_CONFIG_BYTES = 1 << 20  # a config file (or one override's value) larger than 1 MiB is refused before parsing
# YAML aliases make a small file describe a huge value (a "billion laughs" bomb: 9 lists of 9 aliases of the
# previous one, 9^9 leaves in ~300 bytes); any full walk of it (repr, model_dump, the saved config.yaml) costs the
# expanded size. So the values are counted as if every alias were a copy, and capped: a config holds a few
# hundred; 100,000 leaves room for inline data in env.kwargs (a file of that many takes ~2 s to load and dump).
MAX_CONFIG_NODES = 100_000
MAX_CONFIG_DEPTH = 100  # nesting levels (libyaml itself stops at 1000; Python's repr and recursion near there)


def plain_message(err: Any) -> str:
    """One pydantic error's message (an item of `ValidationError.errors()`), said plainer where pydantic's is
    vague: "must be a finite number" for NaN / inf, our validators' text without "Value error, "."""
    if err["type"] == "finite_number":
        return "must be a finite number"
    return str(err["msg"]).removeprefix("Value error, ")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, **FINITE)


class SimulatorConfig(_Strict):
    """A shared chat model for the env's simulated users / patients (agentrl/sim/models.py): the env constructor's
    `simulator` argument (FlightBooking with env.kwargs.user=llm; Consultation with patient / diagnoser=llm)."""

    model: str = Field(
        description="the simulator's chat model: smollm2-135m | tiny-random | a local HF dir | "
        "MODEL@http(s)://HOST/v1 (an OpenAI-compatible endpoint)"
    )
    batch: bool = Field(
        True, description="gather the envs' calls into one batched call per round (needs rollout.env_workers > 1)"
    )
    max_batch: int = Field(64, ge=1, description="the most calls in one batched call")
    # a longer wait is a hang (and overflows a thread wait)
    max_wait_s: float = Field(0.02, ge=0.0, le=60.0, description="how long a batch waits for more calls before it runs")
    kv_store: int = Field(
        64, ge=0, description="local models: conversations whose KV cache is kept between turns (0 = off)"
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="local models' weights; bfloat16 halves the weights read per step"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_kwarg(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kwarg" in data:
            raise ValueError(
                "env.simulator.kwarg is gone: every env takes its simulator as `simulator` (drop kwarg; "
                "FlightBooking-v0 also needs env.kwargs.user=llm, Consultation-v0 patient=llm or diagnoser=llm)"
            )
        return data


class EnvConfig(_Strict):
    """The environment: a registered Gymnasium id and its constructor's keyword arguments."""

    id: str = Field(
        "agentrl/CreditChain-v0",
        description="the env's Gymnasium id (agentrl/CreditChain-v0, "
        "agentrl/ToolUse-v0, agentrl/FlightBooking-v0, "
        "agentrl/Consultation-v0, or my_module:MyEnv-v0: "
        "Gymnasium's module:id, importing my_module first)",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the env's constructor (e.g. {turns: 6}, {split: train})"
    )
    simulator: SimulatorConfig | None = Field(
        None,
        description="a chat model for the env's simulated users / patients, given to the env as `simulator` "
        "(null: none)",
    )


class AlgorithmConfig(_Strict):
    """The advantage estimator (agentrl/algo/advantages/) and its parameters."""

    name: str = Field("trepo", description="the advantage estimator, a key of agentrl.algo.advantages.REGISTRY")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the estimator's parameters, checked against its model in advantages/params.py and completed with "
        "its defaults (e.g. trepo: mode, branch_points, branch_m, branch_t_min, branch_crn; ppo_gae: "
        "gamma, lam)",
    )
    whiten: Literal["center_scale", "scale", "none"] | None = Field(
        None,
        description="advantage whitening over the batch: center_scale ((A − mean)/std), scale (A/std: signs and zeros "
        "kept), none; null = the estimator's default (trepo: scale, ppo_gae: center_scale, the others: "
        "none); true/false read as center_scale/none",
    )

    @field_validator("whiten", mode="before")
    @classmethod
    def _whiten_bool(cls, v: Any) -> Any:
        return {True: "center_scale", False: "none"}.get(v, v) if isinstance(v, bool) else v

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        moved = [k for k in data if k.startswith("branch_")] if isinstance(data, dict) else []
        if moved:
            raise ValueError(
                f"algorithm.{moved[0]:.60} is now algorithm.params.{moved[0]:.60} (trepo's branch settings are "
                "its parameters)"
            )
        return data

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from agentrl.algo.advantages import REGISTRY

        if v not in REGISTRY:
            raise ValueError(f"unknown algorithm {short_repr(v)}; allowed: {', '.join(sorted(REGISTRY))}")
        return v

    @model_validator(mode="after")
    def _params_fit(self) -> AlgorithmConfig:
        from agentrl.algo.advantages import REGISTRY

        model = REGISTRY[self.name].params
        try:
            full = model.model_validate(self.params).model_dump(mode="json")
        except ValidationError as exc:
            allowed = ", ".join(model.model_fields) or "none"
            problems = "; ".join(
                f"{'.'.join(f'{p:.60}' for p in map(str, e['loc'])) or 'params'}: "
                + ("unknown" if e["type"] == "extra_forbidden" else plain_message(e))
                for e in exc.errors()
            )
            raise ValueError(f"algorithm.params for {self.name}: {problems} (allowed: {allowed})") from None
        if full != self.params:
            object.__setattr__(self, "params", full)  # completed with defaults (no re-validation loop)
        return self

    def estimator_params(self) -> Any:
        from agentrl.algo.advantages import REGISTRY

        return REGISTRY[self.name].params.model_validate(self.params)


class RolloutConfig(_Strict):
    """Sampling the episodes of each update (agentrl/rollout/)."""

    backend: Literal["hf", "vllm", "remote"] = Field(
        "hf",
        description="the sampling engine: transformers (hf), an in-process vLLM engine (vllm), or the OpenAI-"
        "compatible vLLM servers of rollout.servers (remote)",
    )
    servers: list[str] = Field(
        default_factory=list,
        description="remote backend: base URLs of the vLLM servers (`agentrl serve-policy` starts them on one machine)",
    )
    remote_weights_dir: str | None = Field(
        None,
        description="remote backend: a directory the trainer and every server can read, where each update's weights "
        "are written for the servers to reload (null: a fresh directory in /dev/shm, for servers on this machine)",
    )
    server_attempts: int = Field(
        3,
        ge=1,
        le=32,
        description="remote backend: servers tried for one request before its episode ends as sampler_error (counted)",
    )
    server_timeout_s: float = Field(
        120.0, gt=0.0, description="remote backend: the most seconds one request may take on one server"
    )
    max_staleness: int = Field(
        0,
        ge=0,
        le=8,
        description="asynchronous rollouts: collection for updates t+1..t+k runs while update t trains, with the "
        "weights of update t-k at the oldest (never older, so nothing is dropped; `policy/staleness` logs it); "
        "0 = synchronous (collect, then train)",
    )
    groups: int = Field(4, ge=1, description="tasks per update")
    group_size: int = Field(4, ge=1, description="episodes per task (G)")
    refill_rounds: int = Field(
        0,
        ge=0,
        le=16,
        description="dynamic sampling (DAPO): groups whose returns are all equal (no signal for group-relative "
        "estimators) are replaced by groups of fresh tasks in up to this many extra collection rounds; "
        "0 = off (train/dynamic_sampling.py)",
    )
    task_draw: Literal["seed", "stratified", "success_band"] = Field(
        "seed",
        description="which task each group runs (train/task_draws.py): seed = the env draws from the group's seed; "
        "stratified = the least drawn task family first (MultiTurnEnv.task_family), so each update covers "
        "them evenly; success_band = prefer tasks whose recent success is strictly between 0 and 1, "
        "explore unseen ones, and draw a fraction draw_uniform uniformly. stratified and success_band need "
        "an env with a task list (task_ids())",
    )
    draw_window: int = Field(
        2, ge=1, description="success_band: a task's recent success = the mean of its last this-many groups"
    )
    draw_uniform: float = Field(
        0.25, ge=0.0, le=1.0, description="success_band: the fraction of groups drawn uniformly"
    )
    temperature: float = Field(1.0, gt=0.0, description="the policy's sampling temperature")
    top_p: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="nucleus sampling: the smallest set of tokens whose probabilities add up to this (1 = off)",
    )
    max_new_tokens: int = Field(32, ge=1, description="the most tokens of one agent turn")
    max_seq_len: int = Field(2048, ge=16, description="the most tokens of one episode (prompt, agent and env turns)")
    constrained: bool = Field(False, description="decode only env.allowed_replies() (tiny-model tests)")
    prefix_reuse: bool = Field(
        True, description="hf backend: prompts sharing a prefix (branches, groups) encode it once"
    )
    # Memory: ~46 KB per token per entry for SmolLM2-135M (BENCHMARKS.md, "Policy KV store")
    kv_store: int | None = Field(
        None,
        ge=0,
        description="hf backend: finished sequences whose KV cache is kept within an update, so an episode's next turn "
        "(and a branch continuation) encodes only its new tokens; null = one per episode of an update "
        "(groups x group_size), 0 = off",
    )
    # BENCHMARKS.md, "RL step": on this CPU a decode step of the 135M model reads its weights once, and oneDNN's
    # bfloat16 products read half the bytes
    dtype: Literal["bfloat16"] | None = Field(
        None,
        description="hf backend: the weights the sampler decodes with; null = the trainer's own model (train.dtype); "
        "bfloat16 = a bfloat16 copy of the trainer's float32 weights, synced after every update, with the "
        "sampler/trainer log-prob gap corrected (ppo.offpolicy_correction auto: tis) and logged (logprob/mismatch_kl)",
    )
    env_workers: int = Field(
        1, ge=1, description="threads stepping envs; > 1 lets a batched env.simulator serve a round at once"
    )
    episode_timeout_s: float | None = Field(
        None, gt=0.0, description="an episode running longer ends as timed_out (null: no limit)"
    )
    failed_episodes: Literal["exclude_infra", "score_zero"] = Field(
        "exclude_infra",
        description="episodes that ended by an env error, a simulator error or a timeout: left out of the advantage "
        "groups (exclude_infra; a group left with one episode goes too) or kept with reward 0 (score_zero)",
    )

    @field_validator("servers")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for u in v:
            if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", u):
                raise ValueError(f"a server URL is http(s)://host:port[/path], got {short_repr(u, 60)}")
        urls = [u.rstrip("/") for u in v]
        if len(set(urls)) != len(urls):
            raise ValueError("a server is listed twice")
        return urls

    vllm_gpu_memory_utilization: float = Field(
        0.5, gt=0.0, le=1.0, description="vllm backend: the fraction of GPU memory the engine may take"
    )
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="vllm backend: GPUs one engine spans")


def _eval_tasks(v: int | str | None) -> int | str | None:
    if isinstance(v, int) and v < 1:
        raise ValueError(f"a number of tasks >= 1, or a file naming them, got {v}")
    if isinstance(v, str) and not v.strip():
        raise ValueError("a file naming the task ids, got an empty path")
    return v


# held-out tasks: how many of the env's list, or a file naming them (eval/task_files.py); train and sft alike
EvalTasks = Annotated[int | str | None, AfterValidator(_eval_tasks)]
_Beta = Annotated[float, Field(ge=0.0, lt=1.0)]  # AdamW's range for each moment's decay


def _device(v: str) -> str:
    from agentrl.inference.devices import DEVICE_PATTERN

    if not re.fullmatch(DEVICE_PATTERN, v):
        raise ValueError(f"train.device must be auto, cpu, cuda or cuda:N, got {short_repr(v)}")
    return v


def _once(v: list[str]) -> list[str]:
    return list(dict.fromkeys(v))


# The keys `train` (RL) and SFT's `train` share, each declared once with what it means (train/sft_config.py)
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="the run's seed (numpy's seed range)")]
WeightsDtype = Annotated[Literal["float32", "bfloat16"], Field(description="the trained model's weights")]
KeepCheckpoints = Annotated[int, Field(ge=1, description="the newest checkpoints kept; older ones are deleted")]
Resume = Annotated[bool, Field(description="continue the run saved in run_dir (from its newest intact checkpoint)")]
Overwrite = Annotated[
    bool,
    Field(description="clear a non-empty run_dir first; without this or resume, a non-empty run_dir is refused"),
]
ReportTo = Annotated[
    list[Literal["tensorboard", "wandb", "mlflow", "trackio"]],
    AfterValidator(_once),
    Field(
        description="experiment trackers that get every metric, the config as hyperparameters and the HTML report "
        "(train/trackers.py), any of tensorboard (run_dir/tb), wandb (offline, run_dir/wandb), mlflow (a file "
        "store in run_dir/mlruns) and trackio (its local store); each needs its extra: pip install "
        "'agentrl[wandb]'"
    ),
]
CollectiveTimeout = Annotated[  # at most a week: longer is a hang
    float, Field(gt=0.0, le=604800.0, description="a rank that waits longer on the others fails, naming itself")
]
Threads = Annotated[int | None, Field(ge=1, description="torch CPU threads (null: torch's default)")]
EvalTasksField = Annotated[
    EvalTasks,
    Field(
        description="tasks of the eval env's list (null: all), or seeds without a list; or a file naming the task "
        "ids (JSONL, Parquet or a datasets directory with a 'task_id' column)"
    ),
]
EvalEnvKwargs = Annotated[
    dict[str, Any], Field(description="env.kwargs overrides of the held-out env (e.g. {split: test})")
]
Autocast = Annotated[
    Literal["none", "bfloat16"],
    Field(
        description="bfloat16 autocast of the training forward with "
        "float32 weights, gradients and AdamW state "
        "(needs train.dtype=float32)"
    ),
]
Device = Annotated[
    str,
    AfterValidator(_device),
    Field(
        description="where the trainer's model lives: auto (cuda:LOCAL_RANK where CUDA exists, "
        "else cpu) | cpu | cuda | cuda:N"
    ),
]
GradientCheckpointing = Annotated[
    bool, Field(description="activation recomputation in backward (less memory, more compute)")
]
AttnImplementation = Annotated[
    Literal["auto", "sdpa", "eager"],
    Field(description="the attention kernel; auto: transformers' choice (sdpa where the model has it)"),
]


LoRASection = Annotated[
    LoRAConfig | None,
    Field(description="LoRA adapters (peft) instead of full fine-tuning: lora.r=16 turns it on (null: off)"),
]


def check_autocast(autocast: str, dtype: str) -> None:
    """Autocast keeps float32 master weights: RL's and SFT's configs refuse it with bfloat16 weights."""
    if autocast != "none" and dtype != "float32":
        raise ValueError(
            f"train.autocast={autocast} keeps float32 master weights: it needs train.dtype=float32 "
            f"(got {dtype}); use one of them"
        )


class OptimConfig(_Strict):
    """The optimizer (AdamW) and its learning-rate schedule."""

    lr: float = Field(1e-5, gt=0.0, description="AdamW's learning rate (the peak, after warmup)")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW's decoupled weight decay")
    betas: tuple[_Beta, _Beta] = Field(
        (0.9, 0.999), description="AdamW's decay rates of the first and second moment estimates"
    )
    grad_clip: float | None = Field(
        1.0, gt=0.0, description="clip the gradient's global norm to this (null: no clipping)"
    )
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant",
        description="the learning rate after "
        "warmup: constant, or a linear "
        "or cosine decay to 0 at the "
        "last optimizer step",
    )
    warmup_steps: int = Field(0, ge=0, description="optimizer steps of linear warmup from 0 to lr")


class PPOConfig(_Strict):
    """The policy update: PPO's clipped surrogate over the batch's agent tokens (agentrl/train/update.py)."""

    epochs: int = Field(1, ge=1, description="passes over each update's batch")
    minibatch_size: int = Field(16, ge=1, description="episodes per optimizer step")
    micro_batch_size: int = Field(
        8, ge=1, description="episodes per forward/backward (gradient accumulation); at most minibatch_size"
    )
    clip_low: float = Field(0.2, ge=0.0, description="the ratio's lower clip: 1 − clip_low")
    clip_high: float = Field(
        0.2, ge=0.0, description="the ratio's upper clip: 1 + clip_high (DAPO's clip-higher when larger than clip_low)"
    )
    dual_clip: float | None = Field(
        None,
        gt=1.0,
        description="dual-clip PPO: bound the loss of negative-advantage "
        "tokens at this times the advantage (null: off)",
    )
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = Field(
        "token-mean",
        description="how token losses make the loss: the mean over all agent tokens, the mean of each "
        "episode's token mean, or the mean of each episode's token sum (Dr. GRPO)",
    )
    offpolicy_correction: Literal["auto", "none", "tis", "mis_token", "mis_seq"] = Field(
        "auto",
        description="correct for the sampler not being the trainer's own forward (algo/losses.importance_weights): "
        "π_old is recomputed by the trainer and each token's loss weighted by ρ = π_old/π_sampler truncated at "
        "is_cap (tis), or ρ with tokens (mis_token) or episodes (mis_seq, geometric mean) outside [1/is_cap, is_cap] "
        "masked; auto = tis when rollout.max_staleness > 0, the backend is vllm or remote, or rollout.dtype gives "
        "the sampler a copy in another precision, else none",
    )
    is_cap: float = Field(2.0, gt=1.0, description="the importance ratio's cap C (tis) or band [1/C, C] (mis_*)")
    kl_coef: float = Field(0.0, ge=0.0, description="weight of the KL to the frozen starting model (0 = off)")
    kl_kind: Literal["k1", "k2", "k3"] = Field("k3", description="the per-token KL estimator (Schulman's k1, k2, k3)")
    kl_in_reward: bool = Field(False, description="fold -kl_coef * KL into RM instead of a loss term")
    entropy_coef: float = Field(0.0, ge=0.0, description="weight of the entropy bonus (0 = off)")
    vf_coef: float = Field(
        0.5, ge=0.0, description="weight of the value loss (estimators with a value head: ppo_gae, ppo_turn)"
    )
    vf_clip: float | None = Field(
        0.2, gt=0.0, description="clip the value prediction's change to this around the old value (null: no clipping)"
    )
    shared_prefix: bool = Field(
        True, description="encode tokens the rows of a micro-batch share once (`shared_prefix.py`)"
    )
    skip_zero_advantage: bool = Field(
        True,
        description="rows whose every agent token has advantage 0 (a group with no reward spread) add exactly 0 to the "
        "gradient when no entropy, KL-loss or value term reads them: leave them out of the forward and "
        "backward (`update.py`)",
    )
    shift_rows: int = Field(
        8,
        ge=0,
        description="after the update, how far the policy moved on up to this many of the batch's rows: "
        "KL(π_sampled ‖ π_new) per agent token and the fraction of agent positions whose greedy token "
        "changed (policy/* metrics); 0 = off",
    )
    # same weights, so ~1e-5 in float32
    logprob_drift_warn_at: float | None = Field(
        1.0,
        gt=0.0,
        description="the trainer's log-probs of the sampled tokens, before the update's first step, against the "
        "rollout's (metric logprob/max_abs_diff): warn above this (null: never)",
    )
    logprob_drift_error_at: float | None = Field(
        None, gt=0.0, description="as logprob_drift_warn_at, but fail the run above this (null: never)"
    )


class TrainConfig(_Strict):
    """The run: how long, where it is written, checkpoints, held-out evaluation, processes and devices."""

    updates: int = Field(20, ge=1, description="updates to train (each: collect, estimate advantages, update)")
    seed: Seed = 0
    run_dir: str = Field(
        "runs/default", description="the run directory: config.yaml, metrics.jsonl, episodes/, checkpoints/"
    )
    dtype: WeightsDtype = "float32"
    checkpoint_every: int = Field(
        10, ge=1, description="updates between checkpoints (the last update always saves one)"
    )
    keep_checkpoints: KeepCheckpoints = 2
    snapshot_every: int = Field(
        0,
        ge=0,
        description="every N updates (a multiple of checkpoint_every), the checkpoint's model weights are also kept "
        "in run_dir/snapshots/step_N, which keep_checkpoints never deletes: a held-out curve of the run "
        "(`agentrl eval --model run_dir/snapshots/step_N/model`); 0: none",
    )
    resume: Resume = False
    overwrite: Overwrite = False
    log_episodes: int = Field(4, ge=0, description="episodes with per-token advantages saved per update for the report")
    report_to: ReportTo = Field(default_factory=list)
    threads: Threads = None
    eval_every: int = Field(
        0,
        ge=0,
        description="held-out evaluation while training: greedy episodes on an env made with env.kwargs + "
        "eval_env_kwargs, before the first update and every this-many updates, logged as eval/* metrics; "
        "0 = off",
    )
    eval_tasks: EvalTasksField = None
    eval_env_kwargs: EvalEnvKwargs = Field(default_factory=dict)

    eval_before_train: bool = Field(
        True, description="evaluate the starting model too (update 0); off when it was just evaluated"
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="stop once this many tokens were sampled (policy + branch continuations + baselines), even before "
        "`updates`: compares algorithms at equal sampling cost (null: no cap)",
    )
    random_reward: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="a control run: every return the estimator sees is a Bernoulli(p) draw, whatever the episode did "
        "(the noise floor of a learning claim; `reward/mean` and held-out evaluation stay real); null = "
        "the env's rewards",
    )
    parallel: Literal["none", "ddp", "fsdp2"] = Field(
        "none",
        description="several processes (torchrun --nproc-per-node N -m agentrl train ..., or `agentrl train --nproc "
        "N`): each rank collects rollout.groups / N groups; ddp = every rank holds the whole model, "
        "gradients summed over ranks; fsdp2 = decoder layers sharded with fully_shard (weights, gradients, "
        "AdamW state 1/N each), sampling from a full copy synced after every update (train/fsdp.py)",
    )
    # at most a week: longer is a hang
    collective_timeout_s: CollectiveTimeout = 300.0
    max_skipped_updates: int = Field(
        3,
        ge=1,
        description="stop the run (NonFiniteTrainingError) after this many updates in a row in which every optimizer "
        "step was skipped for a NaN/inf loss or gradient (update.SkipGuard): such a run only samples and "
        "never learns",
    )
    check_invariants: bool = Field(
        True, description="check that each trained row equals what was sampled (train/invariants.py)"
    )
    verify_weight_sync: bool = Field(
        True, description="after each sync, check that the rollout engine's weight digest equals the trainer's"
    )
    # GPU-ready training (all run on CPU too): autocast, gradient_checkpointing, attn_implementation
    autocast: Autocast = "none"
    device: Device = "auto"
    gradient_checkpointing: GradientCheckpointing = False
    attn_implementation: AttnImplementation = "auto"

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        """train.tensorboard (before report_to) still reads, so runs saved with it resume: true adds tensorboard."""
        if isinstance(data, dict) and "tensorboard" in data:
            import warnings

            data = dict(data)
            on = data.pop("tensorboard")
            if not isinstance(on, bool):
                raise ValueError(
                    "train.tensorboard is now train.report_to: [tensorboard] (beside wandb, mlflow, trackio)"
                )
            if on:
                warnings.warn(
                    "train.tensorboard=true is now train.report_to: [tensorboard]", FutureWarning, stacklevel=2
                )
                data["report_to"] = [*data.get("report_to", []), "tensorboard"]
        return data

    @model_validator(mode="after")
    def _snapshots_at_checkpoints(self) -> TrainConfig:
        if self.snapshot_every and self.snapshot_every % self.checkpoint_every:
            raise ValueError(
                f"train.snapshot_every={self.snapshot_every} keeps the weights of checkpoints, which are saved every "
                f"train.checkpoint_every={self.checkpoint_every} updates: use a multiple of it (or 0: no snapshots)"
            )
        return self


class Config(_Strict):
    """A training run's whole config: `agentrl train CONFIG.yaml section.key=value ...`."""

    model: str = Field(
        "tiny-random",
        description="the policy to train: smollm2-135m | tiny-random | a local HF "
        "directory | a run directory (its latest checkpoint)",
    )
    env: EnvConfig = Field(default_factory=EnvConfig, description="the environment")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="the advantage estimator")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="sampling the episodes")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="the optimizer and its schedule")
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="the policy update")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the run")
    lora: LoRASection = None

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.ppo.micro_batch_size > self.ppo.minibatch_size:
            raise ValueError("ppo.micro_batch_size must be <= ppo.minibatch_size")
        check_autocast(self.train.autocast, self.train.dtype)
        if self.train.parallel == "fsdp2" and self.lora is not None:
            raise ValueError(
                "train.parallel=fsdp2 does not shard LoRA adapters (they are small): use train.parallel=ddp with lora"
            )
        from agentrl.algo.advantages import REGISTRY

        if self.rollout.refill_rounds and self.rollout.group_size < 2:
            raise ValueError(
                f"rollout.refill_rounds={self.rollout.refill_rounds} replaces groups whose returns are all "
                "equal, and a group of one episode always is: use rollout.group_size >= 2, or refill_rounds=0"
            )
        r, default = self.rollout, RolloutConfig()
        if (r.backend == "remote") != bool(r.servers):
            raise ValueError(
                "rollout.backend=remote samples on the servers of rollout.servers: give both, or neither "
                f"(got backend={r.backend}, {len(r.servers)} servers)"
            )
        if r.remote_weights_dir is not None and r.backend != "remote":
            raise ValueError(f"rollout.remote_weights_dir is for rollout.backend=remote (got {r.backend}): drop it")
        if r.dtype is not None and r.backend != "hf":
            raise ValueError(
                f"rollout.dtype={r.dtype} sets the transformers sampler's weights; rollout.backend={r.backend} "
                "samples in an engine of its own: drop rollout.dtype, or use rollout.backend=hf"
            )
        if sampler_copy_dtype(self) is not None and self.train.parallel == "fsdp2":
            raise ValueError(
                f"rollout.dtype={r.dtype} samples from a copy of the weights, corrected by recomputing π_old outside "
                "the update's lock-step passes, which train.parallel=fsdp2 needs on every rank: use "
                "train.parallel=ddp or none, or drop rollout.dtype"
            )
        if self.ppo.offpolicy_correction not in ("auto", "none") and self.train.parallel == "fsdp2":
            raise ValueError(
                f"ppo.offpolicy_correction={self.ppo.offpolicy_correction} recomputes π_old outside the update's "
                "lock-step passes, which train.parallel=fsdp2 needs on every rank: use train.parallel=ddp or none"
            )
        if r.max_staleness and self.train.parallel != "none":
            raise ValueError(
                f"rollout.max_staleness={r.max_staleness} (asynchronous rollouts) runs in one process: it needs "
                f"train.parallel=none (got {self.train.parallel})"
            )
        ignored = [k for k in ("draw_window", "draw_uniform") if getattr(r, k) != getattr(default, k)]
        if ignored and r.task_draw != "success_band":  # a setting nothing would read
            raise ValueError(
                f"rollout.{ignored[0]} sets rollout.task_draw=success_band's draws, but rollout.task_draw is "
                f"{r.task_draw}: drop it, or use rollout.task_draw=success_band"
            )
        spec, g = REGISTRY[self.algorithm.name], self.rollout.group_size
        if g < spec.min_group_size:  # the estimator's own need, declared on its registry spec
            fit = ", ".join(n for n, s in REGISTRY.items() if s.min_group_size <= g)
            raise ValueError(
                f"rollout.group_size={g} gives {self.algorithm.name} nothing to learn from: {spec.group_reason}; "
                f"use rollout.group_size >= {spec.min_group_size}, or an estimator that works with {g}: {fit}"
            )
        return self


def sampler_copy_dtype(cfg: Config) -> str | None:
    """The precision of the transformers sampler's own copy of the weights (`rollout.dtype`), or None when it
    samples with the trainer's model as it is (no rollout.dtype, or one equal to train.dtype)."""
    r = cfg.rollout
    return r.dtype if r.backend == "hf" and r.dtype is not None and r.dtype != cfg.train.dtype else None


def offpolicy_mode(cfg: Config) -> str:
    """The correction `ppo.offpolicy_correction` stands for: auto is tis when the sampler is not the trainer's own
    forward at the weights being trained (asynchronous rollouts, a vLLM engine, remote servers, a bfloat16 copy of
    float32 weights: rollout.dtype), else none."""
    mode = cfg.ppo.offpolicy_correction
    if mode != "auto":
        return mode
    r = cfg.rollout
    off = r.max_staleness > 0 or r.backend in ("vllm", "remote") or sampler_copy_dtype(cfg) is not None
    return "tis" if off else "none"


class ConfigError(UsageError):
    """A config file, key or value the user gave is wrong (the CLI exits 2 with the message)."""


def _section_fields(path: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    model: Any = root
    for p in path:
        f = model.model_fields.get(str(p)) if hasattr(model, "model_fields") else None
        if f is None or not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)):
            return sorted(model.model_fields) if hasattr(model, "model_fields") else []
        model = f.annotation
    return sorted(model.model_fields)


def _explain(exc: ValidationError, root: type[BaseModel] | None = None, flags: dict[str, str] | None = None) -> str:
    """One line per problem, each naming its key, and the flag that set it where `flags` has one (`'optim.lr'
    (--lr)`); `root`: the config model (default `Config`), whose sections list the valid keys."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(f"{p:.60}" if isinstance(p, str) else str(p) for p in loc)  # keys are user text too
        shown = f"'{key}'" + (f" ({flags[key]})" if flags and key in flags else "")
        if err["type"] == "extra_forbidden":
            lines.append(
                f"unknown key {shown}; valid keys here: {', '.join(_section_fields(loc[:-1], root or Config))}"
            )
        elif not loc:  # a check across sections (Config._consistent): its message names the keys
            lines.append(plain_message(err))
        elif err["type"] == "value_error":  # our validators' messages say what was given, as far as it matters
            lines.append(f"{shown}: {plain_message(err)}")
        else:  # the value cut before its repr is built: never the whole of a huge (or alias-bombed) value
            lines.append(f"{shown}: {plain_message(err)} (got {short_repr(err.get('input'), 60)})")
    head = "invalid config:" if len(lines) == 1 else f"invalid config ({len(lines)} problems):"
    return head + "\n  " + "\n  ".join(lines)


class _BoundedLoader(yaml.SafeLoader):
    """yaml.safe_load's loader (PyYAML's own parser: its messages) that refuses, before constructing any Python object, a document whose value
    expanded (every alias counted as a copy) has more than MAX_CONFIG_NODES values or nests deeper than
    MAX_CONFIG_DEPTH, or that refers to itself: a few hundred bytes of aliases must not become gigabytes."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)


def _too_many() -> yaml.YAMLError:
    return yaml.YAMLError(
        f"it holds more than {MAX_CONFIG_NODES:,} values, counting each alias as a copy of what "
        "it names (an alias bomb?); a config holds a few hundred"
    )


def _check_expansion(root: yaml.Node) -> None:
    """Expanded size and depth of the node graph, each shared (aliased) node computed once: O(distinct nodes)."""
    size: dict[int, int] = {}  # collections only; a scalar counts 1
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            n, d = 1, 0
            for kid in _children(node):
                n += size.get(id(kid), 1)
                d = max(d, depth.get(id(kid), 1))
            size[key], depth[key] = n, d + 1
            if n > MAX_CONFIG_NODES:
                raise _too_many()
            if d + 1 > MAX_CONFIG_DEPTH:
                raise yaml.YAMLError(f"it nests deeper than {MAX_CONFIG_DEPTH} levels")
            continue
        if key in size or not isinstance(node, yaml.CollectionNode):
            continue
        if key in on_path:
            raise yaml.YAMLError("an alias refers to a value that contains it (a recursive alias)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if isinstance(kid, yaml.CollectionNode))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _count_events(text: str) -> None:
    """Count values and nesting in libyaml's event stream first (fast, stops at a cap): PyYAML's own parser takes
    seconds to build the nodes of a megabyte of `[1,1,1,...]`, and recurses once per nesting level. A syntax error
    is left to PyYAML's parser, whose messages say more."""
    parser = getattr(yaml, "CSafeLoader", None)
    if parser is None:  # PyYAML built without libyaml: the node cap after composing still holds
        return
    values = depth = 0
    try:
        for event in yaml.parse(text, Loader=parser):
            if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
                values += 1
                if values > MAX_CONFIG_NODES:
                    raise _too_many()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_CONFIG_DEPTH:
                    raise yaml.YAMLError(f"it nests deeper than {MAX_CONFIG_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError:
        return


def _load_yaml(text: str) -> Any:
    """yaml.safe_load with the size, alias and depth bounds; every failure is a yaml.YAMLError."""
    if len(text) > MAX_CONFIG_BYTES:  # characters >= bytes / 4; callers with bytes check those first
        raise yaml.YAMLError(f"it is larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        _count_events(text)
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError:
        raise
    except (ValueError, RecursionError, OverflowError) as exc:  # e.g. an int of more than 4,300 digits
        raise yaml.YAMLError(f"a value cannot be read ({short_repr(str(exc), 120)})") from None


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`a.b=1 c=x` -> {"a": {"b": 1}, "c": "x"}; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in overrides:
        shown = short_repr(item)
        if "=" not in item:
            raise ConfigError(f"override {shown} must look like section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {shown} has an empty key part")
        try:
            value = _load_yaml(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {shown}: value is not valid YAML ({_yaml_problem(exc)})") from None
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {shown} conflicts with another override of '{p:.60}'")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    return validate_config(Config, read_config_data(path, overrides))


def read_config_data(
    path: str | Path | None, overrides: list[str] | None, between: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The YAML file's mapping (empty without one), then `between` (SFT's flags, as nested keys), then the
    `a.b=v` overrides, each merged over the one before."""
    data = _read_config_file(Path(path)) if path is not None else {}
    return _merge(_merge(data, between or {}), parse_overrides(overrides or []))


M = TypeVar("M", bound=BaseModel)


def validate_config(model: type[M], data: dict[str, Any], flags: dict[str, str] | None = None) -> M:
    """`model` validated once from `data`; a ConfigError naming every bad key (and its flag, in `flags`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, model, flags)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own message spans several, quoting the text)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc)[:300].split())


def _read_config_file(p: Path) -> dict[str, Any]:
    """The mapping a YAML config file holds; every problem is a ConfigError that names the file."""
    if not p.exists():
        hint = "" if p.suffix in (".yaml", ".yml") else " (an override looks like section.key=value)"
        raise ConfigError(f"config file {p} does not exist{hint}")
    if p.is_dir():
        raise ConfigError(f"config file {p} is a directory; give a YAML file (e.g. examples/grpo.yaml)")
    try:
        with open(p, "rb") as f:  # read at most one byte past the cap: a huge file or a device is never read whole
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"config file {p} is larger than {MAX_CONFIG_BYTES:,} bytes; a config is a few kilobytes "
                "(put large data in files the env reads)"
            )
        loaded = _load_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {p} is not UTF-8 text (byte {exc.start}: {exc.reason}); give a YAML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {_yaml_problem(exc)}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return loaded or {}


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
