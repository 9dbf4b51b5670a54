"""`agentrl` command line: envs, rollout, train, eval, report (+ commands that env packages register)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from agentrl.config import atomic_write_text


def _json_arg(text: str) -> dict[str, Any]:
    try:
        v = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"turns\": 6}'")
    return v


def cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from agentrl.registry import env_ids

    for env_id in env_ids():
        spec = gym.registry[env_id]
        doc = ""
        try:
            cls = spec.entry_point if not isinstance(spec.entry_point, str) else _load(spec.entry_point)
            doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        except Exception as exc:  # a broken env still gets listed, with the reason
            doc = f"(cannot import: {exc})"
        print(f"{env_id:32s} {doc}")
    return 0


def _load(entry: str) -> Any:
    import importlib

    mod, _, attr = entry.partition(":")
    return getattr(importlib.import_module(mod), attr)


def cmd_rollout(args: argparse.Namespace) -> int:
    from agentrl.backends.base import SamplingParams
    from agentrl.backends.hf import HFPolicy
    from agentrl.chat_format import ChatFormatter
    from agentrl.models import load_model
    from agentrl.registry import make_env
    from agentrl.rollout import EpisodeSpec, RolloutRunner

    make_env(args.env, **args.env_kwargs).close()  # validate before the model loads
    t0 = time.perf_counter()
    model, tok = load_model(args.model)
    print(f"loaded {args.model} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    runner = RolloutRunner(
        lambda: make_env(args.env, **args.env_kwargs), HFPolicy(model, tok), ChatFormatter(tok),
        SamplingParams(temperature=args.temperature, max_new_tokens=args.max_new_tokens),
        constrained=args.constrained, seed=args.seed, progress=True,
    )
    eps = runner.collect([EpisodeSpec(seed=args.seed + i, group_id=i) for i in range(args.episodes)])
    lines = []
    for ep in sorted(eps, key=lambda e: e.uid):
        lines.append(json.dumps({
            "env": args.env, "model": args.model, "seed": ep.seed, "task_id": ep.task_id,
            "reward": ep.reward, "reward_breakdown": ep.reward_breakdown, "success": ep.success,
            "terminated": ep.terminated, "truncated": ep.truncated, "prompt_tokens": len(ep.prompt_ids),
            "turns": [{"text": t.text, "sampled_tokens": len(t.sampled_ids), "env_tokens": len(t.env_ids),
                       "finish_reason": t.finish_reason, "env_messages": [m.to_dict() for m in t.env_messages]} for t in ep.turns],
            "messages": ep.transcript(), "metrics": ep.metrics,
        }))
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    mean = sum(e.reward for e in eps) / len(eps)
    print(f"wrote {len(eps)} transcripts to {args.out} (mean reward {mean:.3f})", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from agentrl.config import load_config
    from agentrl.trainer import Trainer

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # no config file given: the first positional is an override
        config, overrides = None, [config, *overrides]
    cfg = load_config(config, overrides)
    trainer = Trainer(cfg)
    try:
        run_dir = trainer.run()
    finally:
        trainer.close()
    print(f"run directory: {run_dir}", file=sys.stderr)
    if args.report:
        from agentrl.report import write_report

        print(f"report: {write_report(run_dir)}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from agentrl.evaluate import evaluate

    kwargs = dict(args.env_kwargs)
    if args.split:
        kwargs["split"] = args.split
    res = evaluate(
        args.env, args.model, env_kwargs=kwargs, tasks=args.episodes, k=args.k, trials=args.trials, seed=args.seed,
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, constrained=args.constrained,
    )
    if args.json:
        d = res.to_dict()
        if not args.per_task:
            d.pop("outcomes")
        print(json.dumps(d, indent=2))
    else:
        print(res.table())
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from agentrl.sft import config_from_args, run_sft

    cfg = config_from_args(args)
    run_dir = run_sft(cfg, overwrite=args.overwrite)
    print(f"run directory: {run_dir} (train from it with `agentrl train model={run_dir}`, "
          f"evaluate with `agentrl eval --model {run_dir}`)", file=sys.stderr)
    if args.report:
        from agentrl.report import write_report

        print(f"report: {write_report(run_dir)}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from agentrl.report import write_report

    print(write_report(args.run_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentrl", description="Train LLM agents with RL in multi-turn environments.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("envs", help="list registered environments")
    s.set_defaults(fn=cmd_envs)

    s = sub.add_parser("rollout", help="run a model through an env and write transcripts")
    s.add_argument("--env", required=True)
    s.add_argument("--model", default="smollm2-135m")
    s.add_argument("--episodes", type=int, default=4)
    s.add_argument("--out", required=True)
    s.add_argument("--env-kwargs", type=_json_arg, default={})
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--constrained", action="store_true", help="decode only the env's allowed replies")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_rollout)

    s = sub.add_parser("train", help="train with a config file and key=value overrides")
    s.add_argument("config", nargs="?", help="YAML config (see examples/)")
    s.add_argument("overrides", nargs="*", help="section.key=value")
    s.add_argument("--report", action="store_true", help="write the HTML report at the end")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("sft", help="supervised warm start on demonstrations (scripted agents or transcript JSONL)")
    s.add_argument("--from", dest="source", required=True,
                   help="scripted:NAME (an env's scripted agent, with --env) or a JSONL file of {\"messages\": [...]} dialogs")
    s.add_argument("--env", default=None, help="env id for scripted:NAME")
    s.add_argument("--env-kwargs", type=_json_arg, default=None)
    s.add_argument("--split", default=None, help="the env's split for scripted demonstrations (default: train)")
    s.add_argument("--episodes", type=int, default=None, help="scripted: number of tasks (default: the whole split)")
    s.add_argument("--keep", choices=["success", "all"], default=None, help="scripted: keep only successful episodes (default)")
    s.add_argument("--model", default=None, help="model to fine-tune (default: smollm2-135m)")
    s.add_argument("--out", default="runs/sft", help="run directory (must be empty or new; see --overwrite)")
    s.add_argument("--overwrite", action="store_true", help="clear a non-empty run directory first")
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--lr", type=float, default=None)
    s.add_argument("--schedule", choices=["constant", "linear", "cosine"], default=None)
    s.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=None)
    s.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="demonstrations per optimizer step")
    s.add_argument("--micro-batch-size", dest="micro_batch_size", type=int, default=None,
                   help="demonstrations per forward/backward (gradient accumulation)")
    s.add_argument("--max-seq-len", dest="max_seq_len", type=int, default=None)
    s.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, default=None, help="optimizer steps (default: each epoch)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--eval-every", dest="eval_every", type=int, default=None,
                   help="greedy held-out evaluation every N optimizer steps (and before the first); needs --env")
    s.add_argument("--eval-tasks", dest="eval_tasks", type=int, default=None, help="held-out tasks (default: all)")
    s.add_argument("--eval-env-kwargs", dest="eval_env_kwargs", type=_json_arg, default=None,
                   help='held-out env kwargs over --env-kwargs (default: {"split": "test"} when --split is given)')
    s.add_argument("--eval-max-new-tokens", dest="eval_max_new_tokens", type=int, default=None)
    s.add_argument("--report", action="store_true", help="write the HTML report (loss and held-out curves) at the end")
    s.set_defaults(fn=cmd_sft)

    s = sub.add_parser("eval", help="success rate, mean reward, pass^k")
    s.add_argument("--env", required=True)
    s.add_argument("--model", required=True, help="model name, HF dir, run dir, or scripted:NAME")
    s.add_argument("--episodes", type=int, default=None, help="number of tasks (default: all of the split, or 10)")
    s.add_argument("--k", type=int, default=1)
    s.add_argument("--trials", type=int, default=None, help="trials per task (default k)")
    s.add_argument("--split", default=None)
    s.add_argument("--env-kwargs", type=_json_arg, default={})
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--max-new-tokens", type=int, default=256)
    s.add_argument("--constrained", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.add_argument("--per-task", action="store_true", help="with --json: include per-task outcomes")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("report", help="plots and an HTML report of a run directory")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_report)

    for ep in entry_points(group="agentrl.commands"):  # env packages add commands (e.g. `consult`)
        ep.load()(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"agentrl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
