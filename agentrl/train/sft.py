"""`agentrl sft`: supervised warm start from demonstrations, the stage users run before RL.

Demonstrations come from an env's scripted agents (`scripted:gold` on a split's tasks; found by env id through
`agentrl.core.registry.scripted_agents`) or from a JSONL file of chat transcripts (the `agentrl consult` dialog
format, or any OpenAI-style `{"messages": [...]}` list).
They are tokenized exactly as a rollout would hold them (`ChatFormatter`: the opening prompt, each agent
turn's text + the end-of-turn token the policy samples to stop, then the env's chat-template delta), so the
model is trained on the sequences RL will later sample and score. The loss is the mean negative log-likelihood
of the assistant tokens; prompt, env, user and tool tokens carry no loss.

Batches are length-bucketed (rows of similar length, shuffled between buckets) with gradient accumulation
over micro-batches; rows that share a prefix (every ToolUse episode shares its system prompt) forward it
once (`shared_prefix.shared_prefix_forward`). The output is a normal run directory: the run marker
`agentrl_run.json` (kind sft, running until the last step is done, then finished: `train.run_dir`), `metrics.jsonl`
(one line per optimizer step, plotted by `agentrl report`), `config.yaml`, and checkpoints that
`agentrl train model=RUN_DIR` and `agentrl eval --model RUN_DIR` load. Each file is written whole (a temp file
renamed, checkpoints a temp directory renamed); a killed run resumes with `--resume`.

The config is `sft_config.SFTConfig` (nested, YAML plus `a.b=v` overrides, the flags shorthands for its keys). Device,
precision (`train.autocast`), LoRA, AdamW and its schedule, the run directory, checkpoints and resume are the
training engine's (`train/engine.py`), as for `agentrl train`; this module holds the data and the loop.

Transcript files are untrusted input, read bounded (`read_transcripts`): a bad line is skipped with its reason.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from agentrl.core.bounded import MAX_JSON_DEPTH, MAX_LINE_BYTES
from agentrl.core.chat_format import ChatFormatter
from agentrl.train.sft_config import FLAGS, SFTConfig, load_sft_config, saved_sft_config

ASSISTANT_ROLES = {"assistant", "doctor"}
ENV_ROLES = {"user": "user", "patient": "user", "tool": "tool", "system": "system"}


@dataclass
class Demo:
    """One demonstration, token-exact: `input_ids` as a rollout holds them, `loss_mask` 1 on assistant tokens."""

    input_ids: list[int]
    loss_mask: list[int]
    source: str = ""

    @property
    def assistant_tokens(self) -> int:
        return sum(self.loss_mask)


def end_of_turn_id(fmt: ChatFormatter) -> int:
    """The token the policy samples to end its turn: the tokenizer's EOS (the backends stop on it)."""
    eos = getattr(fmt.tok, "eos_token_id", None)
    if not isinstance(eos, int):
        raise ValueError("the tokenizer has no eos_token_id; agentrl needs one to end agent turns")
    return eos


def encode_dialog(
    fmt: ChatFormatter,
    opening: list[dict[str, str]],
    turns: list[tuple[str, list[dict[str, str]]]],
    info: dict[str, Any] | None = None,
    source: str = "",
) -> Demo:
    """Token ids of a dialog exactly as `RolloutRunner` builds them when the policy samples these turns.

    opening: the env's first observation (system + user); turns: (agent text, env messages after it).
    Each agent turn is its text's tokens + EOS (the policy's stop token; `ChatFormatter.delta_ids` then
    drops the template's duplicate of it); the env messages follow as a chat-template delta.
    """
    if not turns:
        raise ValueError("a demonstration needs at least one assistant turn")
    eos = end_of_turn_id(fmt)
    ids = fmt.prompt_ids(opening, info)
    mask = [0] * len(ids)
    for k, (text, env_msgs) in enumerate(turns):
        sampled = fmt.encode(text) + [eos]
        ids += sampled
        mask += [1] * len(sampled)
        if k < len(turns) - 1:
            delta = fmt.delta_ids(env_msgs, sampled)
            ids += delta
            mask += [0] * len(delta)
    return Demo(ids, mask, source)


def split_messages(
    messages: list[dict[str, Any]], where: str
) -> tuple[list[dict[str, str]], list[tuple[str, list[dict[str, str]]]]]:
    """A transcript -> (opening messages, [(assistant text, env messages after it)]). Roles: assistant/doctor
    are the agent; user/patient/tool/system are the env side (the consult format's names are mapped)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list")
    opening: list[dict[str, str]] = []
    turns: list[tuple[str, list[dict[str, str]]]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ValueError(f"{where}: message {i} must be an object with 'role' and 'content'")
        role, content = m["role"], m.get("content")
        if not isinstance(role, str):  # a list or dict here is unhashable: the role lookups below would raise TypeError
            raise ValueError(
                f"{where}: message {i} has a role of type {type(role).__name__}; a role is a string, one of "
                f"{', '.join(sorted(ASSISTANT_ROLES | set(ENV_ROLES)))}"
            )
        if not isinstance(content, str):
            raise ValueError(
                f"{where}: message {i} ({role}) has no text content (tool calls must be written in the "
                "text, as <tool_call>{...}</tool_call>)"
            )
        if role in ASSISTANT_ROLES:
            if not opening:
                raise ValueError(
                    f"{where}: the first message is the assistant's; a dialog opens with system/user messages"
                )
            turns.append((content, []))
        elif role in ENV_ROLES:
            msg = {"role": ENV_ROLES[role], "content": content}
            (turns[-1][1] if turns else opening).append(msg)
        else:
            raise ValueError(
                f"{where}: message {i} has role {role!r}; allowed: "
                f"{', '.join(sorted(ASSISTANT_ROLES | set(ENV_ROLES)))}"
            )
    if not turns:
        raise ValueError(f"{where}: no assistant message to learn from")
    return opening, turns


def demos_from_jsonl(path: str | Path, fmt: ChatFormatter) -> list[Demo]:
    """Demonstrations from a JSONL file: one dialog per line, `{"messages": [...]}` (extra keys are ignored).
    Bad lines are skipped with their reason (`read_transcripts`)."""
    return read_transcripts(path, fmt)[0]


class DemoTooLong(ValueError):
    """A demonstration longer than max_seq_len: the run is refused (cut ones would teach half turns), not the line skipped."""


def _check_fits(
    opening: list[dict[str, str]],
    turns: list[tuple[str, list[dict[str, str]]]],
    per_token: int,
    max_tokens: int,
    where: str,
) -> None:
    """Raise DemoTooLong when the dialog's text cannot fit in max_tokens however it tokenizes: every token covers at
    most the tokenizer's longest token's bytes, so text bytes / that is a lower bound on the tokens (edges stripped:
    a template may trim them)."""
    texts = [m["content"] for m in opening]
    for agent_text, env_msgs in turns:
        texts += [agent_text, *(m["content"] for m in env_msgs)]
    n = sum(len(t.strip().encode("utf-8", errors="surrogatepass")) for t in texts)
    if n > max_tokens * per_token:
        raise DemoTooLong(
            f"{where}: the dialog's text is {n:,} bytes, at least {n // per_token:,} tokens: longer than "
            f"max_seq_len={max_tokens}; raise --max-seq-len or drop the line"
        )


def longest_token_bytes(tok: Any) -> int:
    """An upper bound on the bytes one token stands for: its longest vocabulary entry in UTF-8 (byte-level BPE writes
    a byte as a 1-2 byte character, so this over-counts, which keeps the bound safe); at least 16."""
    return max([len(t.encode("utf-8", errors="surrogatepass")) for t in tok.get_vocab()] + [16])


MAX_WARNED_LINES = 20  # skipped lines named one by one on stderr; the rest are counted


def read_transcripts(
    path: str | Path,
    fmt: ChatFormatter,
    *,
    max_tokens: int | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> tuple[list[Demo], dict[str, float]]:
    """Demonstrations from a JSONL transcript file, a Parquet file or a `save_to_disk` dataset directory
    (train/sft_data.py: a `messages` column, tool calls as text or OpenAI's `tool_calls`) and their counts
    (`demos/run` lines, `demos/kept`, `demos/skipped`).

    Untrusted input, bounded (`agentrl.core.bounded`): a line over `max_line_bytes` is skipped before it is parsed
    or tokenized (it is never held whole), one nested deeper than `max_depth` is skipped, and so is a line that is
    not a dialog (not an object with a `messages` list of string roles and texts). Each skip is named on stderr
    with its line number and reason; the good lines load. A file with no good line is a ValueError naming the
    first reasons. The line cap bounds tokenizing too: a dialog's text is at most `max_line_bytes` bytes (4 MiB:
    at worst about 11 s and 1.1 GB to tokenize, measured with SmolLM2's tokenizer). max_tokens (sft's max_seq_len):
    a dialog whose text is too long to fit however it tokenizes (more bytes than max_tokens times the tokenizer's
    longest token) is refused before it is tokenized, as a longer demonstration is (`run_sft`).
    """
    from agentrl.core.table_rows import iter_rows
    from agentrl.train.sft_data import normalize_messages, row_tools

    p = Path(path)
    demos: list[Demo] = []
    skipped: list[tuple[str, str]] = []
    per_token = longest_token_bytes(fmt.tok) if max_tokens is not None else 0
    for where, rec, why in iter_rows(path, max_line_bytes=max_line_bytes, max_depth=max_depth):
        if why is None:
            try:
                if not isinstance(rec, dict) or "messages" not in rec:
                    raise ValueError(f"{where}: each line must be an object with a 'messages' list")
                opening, turns = split_messages(normalize_messages(rec["messages"], where), where)
                tools = row_tools(rec, where)
                info = (
                    {"tools": tools, "system_without_tools": opening[0]["content"]}
                    if tools and opening[0]["role"] == "system"
                    else None
                )
                if max_tokens is not None:
                    _check_fits(opening, turns, per_token, max_tokens, where)
                demos.append(encode_dialog(fmt, opening, turns, info, source=where))
                continue
            except DemoTooLong:
                raise
            except ValueError as exc:
                why = str(exc).removeprefix(f"{where}: ")
        skipped.append((where.removeprefix(f"{p}:"), why))
        if len(skipped) <= MAX_WARNED_LINES:
            print(f"warning: {where}: {why}; line skipped", file=sys.stderr)
    if len(skipped) > MAX_WARNED_LINES:
        print(f"warning: {p}: {len(skipped) - MAX_WARNED_LINES} more lines skipped", file=sys.stderr)
    if not demos:
        if not skipped:
            raise ValueError(f"{p} holds no dialogs")
        first = "; ".join(f"{'line ' if n.isdigit() else ''}{n}: {why}" for n, why in skipped[:2])
        raise ValueError(f"{p} holds no usable dialog ({len(skipped)} line(s) skipped; {first})")
    stats = {
        "demos/run": float(len(demos) + len(skipped)),
        "demos/kept": float(len(demos)),
        "demos/skipped": float(len(skipped)),
    }
    return demos, stats


def demos_from_scripted(
    env_id: str,
    env_kwargs: dict[str, Any],
    agent: str,
    fmt: ChatFormatter,
    *,
    episodes: int | None,
    seed: int,
    keep: str = "success",
    resolved: Any = None,
) -> tuple[list[Demo], dict[str, float]]:
    """Run an env's scripted agent on the env's tasks (or on `episodes` seeds when it has no task list) and
    tokenize each episode as the rollout would. Returns the demos and counts (run, kept, mean reward).
    resolved: the run's `ResolvedEnv` of `env_id` with `env_kwargs` (its probe is the env played here; None: built
    here from `env_id` and `env_kwargs`)."""
    from agentrl.core.registry import make_env, scripted_factory
    from agentrl.eval.evaluate import play_scripted

    make_agent = scripted_factory(env_id, agent)
    built = resolved.make() if resolved is not None else make_env(env_id, **env_kwargs)
    env: Any = built.unwrapped  # an env with task_ids() (MultiTurnEnv's), like play_scripted's
    ids = env.task_ids()
    tasks: list[tuple[int, str | None]] = (
        [(seed + i, t) for i, t in enumerate(ids[:episodes] if episodes else ids)]
        if ids
        else [(seed + i, None) for i in range(episodes or 100)]
    )
    demos, rewards = [], []
    for s, task in tasks:
        ep = play_scripted(env, make_agent, seed=s, task=task)
        rewards.append(ep.reward)
        if keep == "all" or ep.success:
            demos.append(encode_dialog(fmt, ep.opening, ep.turns, ep.info, source=f"{env_id}:{task or s}"))
    env.close()
    stats = {
        "demos/run": float(len(tasks)),
        "demos/kept": float(len(demos)),
        "demos/mean_reward": sum(rewards) / max(1, len(rewards)),
    }
    if not demos:
        raise ValueError(
            f"scripted:{agent} on {env_id} produced no {'successful ' if keep == 'success' else ''}"
            f"demonstrations in {len(tasks)} episodes"
        )
    return demos, stats


def sft_loss(logprobs: torch.Tensor, loss_mask: torch.Tensor, n_tokens: int | float) -> torch.Tensor:
    """Negative log-likelihood of the masked tokens, summed and divided by `n_tokens` (the assistant tokens of
    the whole optimizer batch, so accumulated micro-batches add up to the batch's token mean).
    logprobs, loss_mask: [B, T]."""
    m = loss_mask > 0
    return -torch.where(m, logprobs, torch.zeros((), dtype=logprobs.dtype)).sum() / max(float(n_tokens), 1.0)


def make_batches(lengths: list[int], batch_size: int, rng: random.Random, bucket: bool) -> list[list[int]]:
    """Index batches for one epoch. Bucketing: shuffle, sort each window of 16 batches by length, cut
    batches, shuffle their order (so lengths are mixed across steps, similar within one)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if bucket:
        win = batch_size * 16
        order = [i for s in range(0, len(order), win) for i in sorted(order[s : s + win], key=lambda j: lengths[j])]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if bucket:
        rng.shuffle(batches)
    return batches


def collate_demos(demos: list[Demo], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids [B,T] long, attention_mask [B,T] long, loss_mask [B,T] float)."""
    T = max(len(d.input_ids) for d in demos)
    ids = torch.full((len(demos), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(demos), T), dtype=torch.long)
    lm = torch.zeros((len(demos), T), dtype=torch.float32)
    for i, d in enumerate(demos):
        n = len(d.input_ids)
        ids[i, :n] = torch.tensor(d.input_ids)
        attn[i, :n] = 1
        lm[i, :n] = torch.tensor(d.loss_mask, dtype=torch.float32)
    return ids, attn, lm


def sft_env_kwargs(cfg: SFTConfig) -> dict[str, Any]:
    """The kwargs of the env that demonstrates: `env.kwargs` plus `data.split` (when set)."""
    kwargs = dict(cfg.env.kwargs)
    if cfg.data.split is not None:
        kwargs["split"] = cfg.data.split
    return kwargs


def resolve_sft_env(cfg: SFTConfig) -> Any:
    """The run's env, resolved once (`rollout.build.resolve_env`: id, kwargs' names with `train.eval_env_kwargs`'
    too, values) before any model loads; its probe plays the first demonstrations. None without `env.id`."""
    if cfg.env.id is None:
        return None
    from agentrl.rollout.build import resolve_env

    return resolve_env(cfg.env.id, sft_env_kwargs(cfg), check_also=cfg.train.eval_env_kwargs)


def load_demos(cfg: SFTConfig, fmt: ChatFormatter, env: Any = None) -> tuple[list[Demo], dict[str, float]]:
    """The demonstrations `data.source` names. env: the run's resolved env (`resolve_sft_env`; None: built here)."""
    d = cfg.data
    if d.source.startswith("scripted:"):
        assert cfg.env.id is not None, "SFTConfig refuses a scripted source without env.id"
        return demos_from_scripted(
            cfg.env.id,
            sft_env_kwargs(cfg),
            d.source.split(":", 1)[1],
            fmt,
            episodes=d.episodes,
            seed=cfg.train.seed,
            keep=d.keep,
            resolved=env,
        )
    return read_transcripts(d.source, fmt, max_tokens=d.max_seq_len)


def run_sft(
    cfg: SFTConfig,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    model: Any = None,
    tokenizer: Any = None,
    report: Any = None,
    env: Any = None,
) -> Path:
    """Train `cfg.model` on the demonstrations; return the run directory (its latest checkpoint is the result).

    The engine (`train/engine.py`) does what RL's trainer does alike: the model loaded as `train.dtype`,
    `train.attn_implementation` and `lora` say, placed on `train.device`, AdamW and the schedule of `optim`, the
    forward under `train.autocast`, checkpoints and resume. overwrite / resume: as `train.overwrite` /
    `train.resume` (either turns it on). model / tokenizer: a model already loaded (used as given: no LoRA wrapping).

    env: the run's env resolved once (`resolve_sft_env`, which the CLI calls to check its input before this); None:
    resolved here, before the model loads. The demonstrations and the held-out evaluation are built from it.

    report: a function of the run directory that writes the HTML report (the CLI passes
    agentrl.report.write_report); it runs at the end, and the trackers of `train.report_to` get the report.

    The run directory is marked (`run_dir.start_run`) as a running sft run and as finished at the end, so a killed
    run reads as unfinished. resume: continue the run in `train.run_dir` from its newest intact checkpoint
    (weights, optimizer, scheduler, step, RNG states; the batches of the epochs already begun are replayed from the
    seed and the steps done skipped), refusing a config other than the run's own (`_SFT_RESUME_MAY_CHANGE` aside)
    or other demonstrations; a run killed before its first checkpoint starts over.
    """
    from agentrl.train import distributed, engine
    from agentrl.train.checkpoint import check_saveable, save_checkpoint
    from agentrl.train.config import dump_config
    from agentrl.train.metrics import MetricsLogger, NullLogger
    from agentrl.train.run_dir import check_run_dir, finish_run

    run = cfg.train
    overwrite, resume = overwrite or run.overwrite, resume or run.resume
    distributed.init_from_env(run.parallel, run.collective_timeout_s, run.device)  # no-op without torchrun
    main = distributed.is_main()  # rank 0 alone writes the run directory
    if run.threads:
        torch.set_num_threads(run.threads)
    if main:
        check_run_dir(
            run.run_dir,
            resume=resume,
            overwrite=overwrite,
            option="--out",
            kind="sft",
            resume_hint="--resume",
            overwrite_hint="--overwrite",
        )  # before loading
    run_dir = Path(run.run_dir)
    if resume:
        _same_sft_run(run_dir, cfg)
    if env is None:
        env = resolve_sft_env(cfg)  # before the model loads: a bad env id or kwarg costs nothing
    engine.seed_everything(run.seed)
    if model is None:
        model, tokenizer = engine.load_trainable(cfg.model, run, cfg.lora)
    device = distributed.train_device(run.device)
    engine.place([model], device)
    fmt = ChatFormatter(tokenizer)
    t0 = time.perf_counter()
    demos, data_stats = load_demos(cfg, fmt, env)
    too_long = [d for d in demos if len(d.input_ids) > cfg.data.max_seq_len]
    if too_long:
        raise ValueError(
            f"{len(too_long)} of {len(demos)} demonstrations are longer than max_seq_len={cfg.data.max_seq_len} "
            f"(longest {max(len(d.input_ids) for d in too_long)} tokens, e.g. {too_long[0].source}); raise it"
        )
    held_out = _held_out(cfg, model, tokenizer, fmt, env)
    if main:  # only now: bad input must not clear an existing run
        engine.prepare_run_dir(run_dir, "sft", dump_config(cfg), overwrite=overwrite, resume=resume)
    distributed.barrier("waiting for rank 0 to prepare the run directory")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_of_turn_id(fmt)
    rng = random.Random(run.seed)
    lengths = [len(d.input_ids) for d in demos]
    steps_per_epoch = math.ceil(len(demos) / cfg.sft.batch_size)
    total = steps_per_epoch * cfg.sft.epochs
    opt = engine.make_optimizer(engine.trainable(model), cfg.optim)
    sched = engine.make_scheduler(opt, cfg.optim, total)
    logger = (
        MetricsLogger(
            run_dir, report_to=run.report_to, config=cfg.model_dump(mode="json"), resume=resume, console=False
        )
        if main
        else NullLogger()
    )
    logger.report = report
    digest = _data_digest(demos)
    done, tokens_seen = _resume_sft(run_dir, model, opt, sched, digest, logger) if resume else (0, 0)
    ckpt_every = run.checkpoint_every or steps_per_epoch
    summary = (
        f"sft: {len(demos)} demonstrations ({sum(lengths):,} tokens, {sum(d.assistant_tokens for d in demos):,} "
        f"assistant) from {cfg.data.source}, {cfg.sft.epochs} epochs x {steps_per_epoch} steps on {device}, data in "
        f"{time.perf_counter() - t0:.1f}s" + (f"; resumed after step {done}" if done else "")
    )
    if main:
        print(summary, file=sys.stderr)
    bar = None
    if progress and main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=min(done, total), desc="sft", unit="step", file=sys.stderr)
    if held_out is not None and done == 0:
        logger.log(0, _evaluate(held_out, model))
    model.train()
    step = 0
    for epoch in range(cfg.sft.epochs):
        for batch in make_batches(lengths, cfg.sft.batch_size, rng, cfg.data.bucket):  # every epoch's: `rng` replays
            if step < done:  # resumed: this step is in the checkpoint already
                step += 1
                continue
            ts = time.perf_counter()
            n_tok = sum(demos[i].assistant_tokens for i in batch)
            loss_sum, gnorm = sft_step(
                model, opt, [demos[i] for i in batch], n_tok, cfg, pad_id, where=f"sft step {step + 1}"
            )
            sched.step()
            step += 1
            tokens_seen += sum(lengths[i] for i in batch)
            evals = (
                _evaluate(held_out, model)
                if held_out is not None and (step % run.eval_every == 0 or step == total)
                else {}
            )
            logger.log(
                step,
                {
                    "loss/sft": loss_sum,
                    "epoch": epoch + 1,
                    "lr": float(opt.param_groups[0]["lr"]),
                    "grad_norm": gnorm,
                    "tokens/assistant": float(n_tok),
                    "tokens/cumulative": float(tokens_seen),
                    "time/total": time.perf_counter() - ts,
                    **(data_stats if step == 1 else {}),
                    **evals,
                },
            )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum:.3f}", epoch=epoch + 1)
            if step % ckpt_every == 0 or step == total:
                check_saveable(model, {}, step)  # every rank: equal weights, so all stop together on NaN
                if main:
                    save_checkpoint(
                        run_dir,
                        step,
                        model=model,
                        tokenizer=tokenizer,
                        keep=run.keep_checkpoints,
                        trainer_state={
                            "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(),
                            "kind": "sft",
                            "tokens_seen": tokens_seen,
                            "data_digest": digest,
                        },
                        checked=True,
                    )
    if bar is not None:
        bar.close()
    logger.close()
    if main:  # only now: a run killed before this reads as unfinished
        finish_run(run_dir, step=step)
    distributed.barrier("the end of the sft run")
    return run_dir


# settings a resumed sft run may change: how long it runs, where and with how many threads, not what a step computes
_SFT_RESUME_MAY_CHANGE = {
    "sft.epochs",
    "train.threads",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.report_to",
    "train.resume",
    "train.overwrite",
    "train.run_dir",
    "train.device",
    "train.gradient_checkpointing",
}


def _same_sft_run(run_dir: Path, cfg: SFTConfig) -> None:
    """--resume: refuse settings other than the run's own (config.yaml), naming each difference."""
    from agentrl.core.checkpoint import CheckpointError
    from agentrl.train.engine import same_config

    path = run_dir / "config.yaml"
    if not path.is_file():
        return  # killed before its config was written (or a new directory): starts over
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"--resume: {path} is unreadable ({exc}); start over with --overwrite") from None
    saved = saved_sft_config(saved) if isinstance(saved, dict) else None
    if not isinstance(saved, dict) or not isinstance(saved.get("data"), dict):
        raise CheckpointError(f"--resume: {path} holds no sft config; start over with --overwrite")
    same_config(
        saved,
        cfg.model_dump(mode="json"),
        _SFT_RESUME_MAY_CHANGE,
        f"--resume: the options differ from the ones saved in {path}",
        "resume with the same options",
    )


def _resume_sft(
    run_dir: Path, model: Any, opt: torch.optim.Optimizer, sched: Any, digest: str, logger: Any
) -> tuple[int, int]:
    """Load the newest intact checkpoint into model, optimizer and scheduler, and the RNG states; return (steps
    done, tokens seen). No checkpoint yet: (0, 0), and what was logged is dropped (it is logged again)."""
    from agentrl.core.checkpoint import CheckpointError
    from agentrl.train.checkpoint import load_trainer_state
    from agentrl.train.engine import restore, resume_point

    ckpt = resume_point(run_dir, "--overwrite")
    if ckpt is None:
        logger.truncate_after(-1)
        return 0, 0
    st = load_trainer_state(ckpt)
    if st.get("kind") != "sft" or "optimizer" not in st or "scheduler" not in st:
        raise CheckpointError(
            f"--resume: {ckpt} is not an sft checkpoint with optimizer state; start over with --overwrite"
        )
    if st.get("data_digest") not in (None, digest):
        raise CheckpointError(
            f"--resume: the demonstrations differ from the ones {run_dir} was trained on (did --from or "
            "the env change?); resume with the same data, or start over with --overwrite"
        )
    step = restore(ckpt, st, model, opt, sched)
    logger.truncate_after(step)
    return step, int(st.get("tokens_seen", 0))


def _data_digest(demos: list[Demo]) -> str:
    """sha256 of the demonstrations' ids and masks, in order: a resumed run must see the same data."""
    import hashlib
    from array import array

    h = hashlib.sha256()
    for d in demos:
        h.update(array("q", [len(d.input_ids)]).tobytes())
        h.update(array("q", d.input_ids).tobytes())
        h.update(array("b", d.loss_mask).tobytes())
    return h.hexdigest()


def sft_step(
    model: Any, opt: torch.optim.Optimizer, batch: list[Demo], n_tok: int, cfg: SFTConfig, pad_id: int, *, where: str
) -> tuple[float, float]:
    """One optimizer step on `batch`: gradients accumulated over micro-batches (each loss divided by the batch's
    `n_tok` assistant tokens; the forward on the model's device, under `train.autocast`), clipped, applied. Under
    torchrun each rank forwards its contiguous share of the batch (`distributed.my_share`) and the gradients and the
    loss are summed over ranks, so every rank takes one process's step. Returns (loss, grad norm); a non-finite one
    raises, naming `where`."""
    from agentrl.train import distributed
    from agentrl.train.forward import bf16_autocast, device_of, forward
    from agentrl.train.shared_prefix import shared_prefix_forward

    fwd = shared_prefix_forward if cfg.sft.shared_prefix else forward
    dev = device_of(model)
    opt.zero_grad(set_to_none=True)
    loss_sum = 0.0
    mine = [batch[i] for i in distributed.my_share(len(batch))]  # the whole batch in one process
    for m0 in range(0, len(mine), cfg.sft.micro_batch_size):
        ids, attn, lm = (t.to(dev) for t in collate_demos(mine[m0 : m0 + cfg.sft.micro_batch_size], pad_id))
        with bf16_autocast(dev, cfg.train.autocast == "bfloat16"):
            lp = fwd(model, None, ids, attn, 1.0, entropy=False, mask=lm).logprobs
        loss = sft_loss(lp.float(), lm, n_tok)  # the loss in float32, also under autocast
        loss.backward()
        loss_sum += float(loss.detach())
    if distributed.world() > 1:  # summed over ranks: n_tok is the whole batch's, so the sum is its mean
        distributed.reduce_grads([p for p in model.parameters() if p.requires_grad], True)
        loss_sum = float(distributed.all_reduce_sum(torch.tensor([loss_sum], dtype=torch.float64), "the sft loss"))
    gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf")))
    if not math.isfinite(gnorm) or not math.isfinite(loss_sum):
        raise FloatingPointError(
            f"{where}: non-finite loss or gradient (loss {loss_sum}, grad norm {gnorm}); lower --lr (optim.lr)"
        )
    opt.step()
    return loss_sum, gnorm


def _held_out(cfg: SFTConfig, model: Any, tokenizer: Any, fmt: ChatFormatter, env: Any) -> Any:
    """The held-out evaluation (None without `train.eval_every`), its env the run's with the held-out kwargs."""
    run = cfg.train
    if not run.eval_every:
        return None
    from agentrl.inference.hf import HFPolicy
    from agentrl.train.held_out import HeldOutEval

    assert env is not None, "SFTConfig refuses train.eval_every without env.id"
    # held out = the test split when training on another split and eval_env_kwargs does not name one
    split = {"split": "test"} if cfg.data.split not in (None, "test") else {}
    return HeldOutEval(
        env.with_kwargs({**split, **run.eval_env_kwargs}),
        HFPolicy(model, tokenizer),
        fmt,
        tasks=run.eval_tasks,
        max_new_tokens=run.eval_max_new_tokens,
        max_seq_len=cfg.data.max_seq_len,
        seed=run.seed,
    )


def _evaluate(held_out: Any, model: Any) -> dict[str, float]:
    model.eval()
    try:
        out = held_out()
    finally:
        model.train()
    from agentrl.train import distributed

    if not distributed.is_main():
        return out
    print(
        f"held-out success {out['eval/success_rate']:.3f}, reward {out['eval/reward']:.3f} "
        f"({out['eval/tasks']:.0f} tasks, {out['time/eval']:.0f}s)",
        file=sys.stderr,
    )
    return out


def config_from_args(args: Any) -> SFTConfig:
    """The validated config of `agentrl sft [CONFIG.yaml] [a.b=v ...] [--flags]`: the file, then the flags given
    (shorthands for keys, `sft_config.FLAGS`), then the overrides; errors name the key and its flag."""
    flags = {k: getattr(args, k, None) for k in FLAGS}
    flags.update({k: True if getattr(args, k, False) else None for k in ("resume", "overwrite")})  # store_true
    return load_sft_config(getattr(args, "config", None), getattr(args, "overrides", None), flags)
