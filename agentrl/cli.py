"""`agentrl` command line: envs, rollout, train, eval, report (+ commands that env packages register)."""

from __future__ import annotations

import argparse
import errno
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from agentrl.core.errors import UsageError, usage_errors
from agentrl.core.io import atomic_write_text


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block above them)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _json_arg(text: str) -> dict[str, Any]:
    try:
        v = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"turns\": 6}'")
    return v


def _int_at_least(lo: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        bad = argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}")
        try:
            v = int(text)
        except ValueError:
            raise bad from None
        if v < lo:
            raise bad
        return v

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _int_or_path(text: str) -> int | str:
    """A count (an integer >= 1) or a file's path (anything that is not an integer)."""
    try:
        int(text)
    except ValueError:
        return text
    return _positive_int(text)


def _tracker_list(text: str) -> list[str]:
    from agentrl.train.trackers import TRACKERS

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in TRACKERS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown tracker {bad[0]!r}; choose from {', '.join(TRACKERS)}")
    return names


def _temperature(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (0 = greedy), got {text!r}")
    return v


def cmd_envs(args: argparse.Namespace) -> int:
    from agentrl.core.registry import env_class, env_ids

    for env_id in env_ids():
        doc = ""
        try:
            cls = env_class(env_id)
            doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        except Exception as exc:  # a broken env still gets listed, with the reason
            doc = f"(cannot import: {exc})"
        print(f"{env_id:32s} {doc}")
    return 0


def _check_out_file(path: str) -> None:
    """--out must be a file path that can be written, checked before a model loads."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"--out {p} is a directory; give a file path, e.g. {p / 'transcripts.jsonl'}")
    above = next(a for a in p.absolute().parents if a.exists())  # the directory atomic_write_text creates it in
    if not above.is_dir():
        raise UsageError(f"--out {p}: {above} is a file, not a directory")


def _simulator(args: argparse.Namespace) -> Any:
    """--simulator MODEL as training's `env.simulator` setting (one model, unbatched: these commands step one env
    at a time), or None."""
    if args.simulator is None:
        return None
    from agentrl.train.config import SimulatorConfig

    return SimulatorConfig(model=args.simulator, batch=False)


def cmd_rollout(args: argparse.Namespace) -> int:
    from agentrl.core.chat_format import ChatFormatter
    from agentrl.core.records import EpisodeRecord, write_records
    from agentrl.inference import sampling_policy
    from agentrl.inference.base import SamplingParams
    from agentrl.inference.models import load_model
    from agentrl.rollout.build import build_runner, resolve_env
    from agentrl.rollout.runner import EpisodeSpec

    _check_out_file(args.out)
    env = resolve_env(args.env, args.env_kwargs, _simulator(args))  # checked (and the simulator loaded) first
    t0 = time.perf_counter()
    with usage_errors():  # a ValueError here is about --model, --backend or --device
        model, tok = load_model(args.model)
        policy = sampling_policy(model, tok, backend=args.backend, device=args.device)
    print(f"loaded {args.model} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    runner = build_runner(
        env,
        policy,
        ChatFormatter(tok),
        SamplingParams(temperature=args.temperature, max_new_tokens=args.max_new_tokens),
        constrained=args.constrained,
        seed=args.seed,
        progress=True,
    )
    try:
        eps = runner.collect([EpisodeSpec(seed=args.seed + i, group_id=i) for i in range(args.episodes)])
    finally:
        policy.close()  # a vLLM engine's worker processes
    records = [
        EpisodeRecord.from_episode(ep, env=args.env, model=args.model)
        for ep in sorted(eps, key=lambda e: e.group_id)  # episode i is group i: the order asked for (uids are hashes)
    ]
    atomic_write_text(args.out, write_records(records))
    mean = sum(e.reward for e in eps) / len(eps)
    print(f"wrote {len(eps)} transcripts to {args.out} (mean reward {mean:.3f})", file=sys.stderr)
    return 0


def _exec_torchrun(args: argparse.Namespace) -> NoReturn:
    """`agentrl train --nproc N ...` = `torchrun --standalone --nproc-per-node N -m agentrl train ...` (same arguments)."""
    import os

    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.nproc}",
        "-m",
        "agentrl",
        "train",
        *([args.config] if args.config else []),
        *args.overrides,
        *(["--report"] if args.report else []),
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from agentrl.train import distributed
    from agentrl.train.config import load_config
    from agentrl.train.trackers import check_trackers
    from agentrl.train.trainer import Trainer

    cfg = load_config(*_config_and_overrides(args))
    check_trackers(cfg.train.report_to)  # a missing tracker library: before torchrun, before any model loads
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # the config is checked before torchrun starts N processes
        _exec_torchrun(args)
    try:
        with _os_errors(f"train.run_dir {cfg.train.run_dir}"):
            with (
                usage_errors()
            ):  # setting up checks (run dir, env kwargs, simulator) and then loads what the config names
                trainer = Trainer(cfg)
            main_rank = distributed.is_main()
            if args.report or cfg.train.report_to:  # written as the logger closes: the trackers get it as an artifact
                from agentrl.report import write_report

                trainer.logger.report = write_report
            try:
                run_dir = trainer.run()
            finally:
                trainer.close()
    finally:
        distributed.shutdown()
    if not main_rank:
        return 0
    print(f"run directory: {run_dir}", file=sys.stderr)
    if trainer.logger.report_path is not None:
        print(f"report: {trainer.logger.report_path}", file=sys.stderr)
    return 0


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """`train` / `sft`'s positionals: an optional YAML file, then `a.b=v` overrides."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # no config file given: the first positional is an override
        config, overrides = None, [config, *overrides]
    return config, overrides


def _with_split(env_id: str, kwargs: dict[str, Any], split: str | None) -> dict[str, Any]:
    """kwargs plus the --split; an env whose constructor takes no `split` has none to choose."""
    from agentrl.core.registry import env_kwarg_names

    if split is None:
        return kwargs
    names = env_kwarg_names(env_id)
    if names is not None and "split" not in names:
        raise UsageError(f"--split {split!r}: {env_id} has no splits (it takes no 'split' argument); drop --split")
    return {**kwargs, "split": split}


def cmd_eval(args: argparse.Namespace) -> int:
    from agentrl.eval.evaluate import evaluate

    kwargs = _with_split(args.env, dict(args.env_kwargs), args.split)
    k, trials = args.k, args.trials
    if args.samples is not None:  # --samples K: K samples per task, pass@j / pass^j for j up to K (or --k)
        if trials is not None and trials != args.samples:
            raise UsageError(f"--samples {args.samples} and --trials {trials}: both set the samples per task; give one")
        trials, k = args.samples, k if k is not None else args.samples
    if args.tasks is not None and args.episodes is not None:
        raise UsageError(f"--tasks {args.tasks} and --episodes {args.episodes} both choose the tasks; give one")
    res = evaluate(
        args.env,
        args.model,
        env_kwargs=kwargs,
        tasks=args.tasks if args.tasks is not None else args.episodes,
        k=k if k is not None else 1,
        trials=trials,
        seed=args.seed,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        constrained=args.constrained,
        simulator=_simulator(args),
        backend=args.backend,
        device=args.device,
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
    from agentrl.train import distributed
    from agentrl.train.sft import config_from_args, run_sft

    args.config, args.overrides = _config_and_overrides(args)
    with usage_errors():  # sft's checks of its flags, sources and demonstrations raise ValueError
        cfg = config_from_args(args)
        env = _check_sft_inputs(cfg)
        report = None
        if args.report or cfg.train.report_to:  # written at the end, before the trackers close: they get it too
            from agentrl.report import write_report

            report = write_report
        try:
            with _os_errors(f"--out {cfg.train.run_dir}"):
                run_dir = run_sft(cfg, report=report, env=env)
            main_rank = distributed.is_main()
        finally:
            distributed.shutdown()
    if not main_rank:
        return 0
    print(
        f"run directory: {run_dir} (train from it with `agentrl train model={run_dir}`, "
        f"evaluate with `agentrl eval --model {run_dir}`)",
        file=sys.stderr,
    )
    if args.report:
        print(f"report: {Path(run_dir) / 'report' / 'report.html'}", file=sys.stderr)
    return 0


def _check_sft_inputs(cfg: Any) -> Any:
    """The transcript file, or the demonstrating env (id, kwargs, split), and the held-out kwargs: before the
    model loads. Returns the run's env resolved once (`sft.resolve_sft_env`; None without one)."""
    from agentrl.core.registry import scripted_factory
    from agentrl.train.sft import resolve_sft_env
    from agentrl.train.sft_data import check_source
    from agentrl.train.trackers import check_trackers

    source, env = cfg.data.source, cfg.env.id
    if not source.startswith("scripted:"):
        check_source(source)
    check_trackers(cfg.train.report_to, "--report-to")
    if env is None:
        return None
    if source.startswith("scripted:"):  # an unknown name fails here, listing the env's scripted agents
        scripted_factory(env, source.split(":", 1)[1])
    _with_split(env, cfg.env.kwargs, cfg.data.split)  # a --split the env has none of: said in --split's words
    return resolve_sft_env(cfg)


def cmd_report(args: argparse.Namespace) -> int:
    from agentrl.report import write_report

    with usage_errors(), _os_errors(f"the report of {args.run_dir}"):  # ValueError: a directory without metrics.jsonl
        print(write_report(args.run_dir))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """All or nothing (`export_merged`): a failure leaves no OUT and is one line naming it."""
    from safetensors import SafetensorError

    from agentrl.train.lora import export_merged

    if not args.merge:
        raise UsageError(
            "export: pass --merge (the one export there is: the latest checkpoint as a plain model, "
            "LoRA adapters merged into the base)"
        )
    if not str(args.out).strip():
        raise UsageError("export: OUT is empty; give a directory path for the exported model")
    out = Path(args.out)
    if out.name in ("", ".", "..") or out.resolve() == Path.cwd().resolve():
        raise UsageError(f"export: OUT {out} is the working directory or above it; give a new directory path")
    if out.is_symlink():
        raise UsageError(f"export: {out} is a symbolic link; give a new directory path")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"export: {out} exists and is not an empty directory; choose another OUT")
    with _os_errors(f"export to {out}"):
        try:
            export_merged(args.run_dir, out)
        except SafetensorError as exc:  # its own type for an I/O error (a full disk), not an OSError
            raise UsageError(f"export to {out}: writing the weights failed: {_first_line(str(exc))}") from exc
    print(f"exported {out} (loads with AutoModelForCausalLM.from_pretrained)", file=sys.stderr)
    return 0


# OS errors that are the machine's or the user's, not agentrl's: one line naming the path (exit 2), no traceback
_ENVIRONMENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ELOOP,
    errno.ENAMETOOLONG,
    errno.EFBIG,
    errno.EEXIST,
    errno.ENOTEMPTY,
    errno.ENOTDIR,
    errno.EISDIR,
}


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


@contextmanager
def _os_errors(where: str) -> Iterator[None]:
    """An OSError of `_ENVIRONMENT_ERRNOS` (read-only, no space, permission, symlink loop) as a UsageError naming
    its path, or `where` when the OS gave none (a write that hit a full disk)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        what = (exc.strerror or str(exc)).lower()
        raise UsageError(f"{where}: {what}" + (f": {exc.filename}" if exc.filename is not None else "")) from exc


def _add_episode_args(s: argparse.ArgumentParser, *, max_new_tokens: int) -> None:
    """What `rollout` and `eval` share: the env's kwargs and simulator, and how the policy samples."""
    s.add_argument("--env-kwargs", type=_json_arg, default={})
    s.add_argument(
        "--simulator",
        default=None,
        metavar="MODEL",
        help="chat model for the env's simulated user / patient, as config env.simulator.model: "
        "tiny-random, smollm2-135m, an HF dir or MODEL@http://HOST/v1 (e.g. with "
        '--env-kwargs \'{"user": "llm"}\' on FlightBooking-v0, \'{"patient": "llm"}\' on Consultation-v0)',
    )
    s.add_argument("--temperature", type=_temperature, default=1.0)
    s.add_argument("--max-new-tokens", type=_positive_int, default=max_new_tokens)
    s.add_argument("--constrained", action="store_true", help="decode only the env's allowed replies")
    s.add_argument("--seed", type=_non_negative_int, default=0)
    s.add_argument(
        "--backend",
        choices=["hf", "vllm"],
        default="hf",
        help="sampling engine: transformers (hf) or an in-process vLLM engine (vllm)",
    )
    s.add_argument("--device", default="auto", help="hf backend: auto (cuda when there is one), cpu, cuda, cuda:N")


def _add_rollout(sub: Any) -> None:
    s = sub.add_parser("rollout", help="run a model through an env and write transcripts")
    s.add_argument("--env", required=True)
    s.add_argument("--model", default="smollm2-135m")
    s.add_argument("--episodes", type=_positive_int, default=4)
    s.add_argument("--out", required=True)
    _add_episode_args(s, max_new_tokens=64)
    s.set_defaults(fn=cmd_rollout)


def _add_train(sub: Any) -> None:
    s = sub.add_parser("train", help="train with a config file and key=value overrides")
    s.add_argument("config", nargs="?", help="YAML config (see examples/)")
    s.add_argument("overrides", nargs="*", help="section.key=value")
    s.add_argument("--report", action="store_true", help="write the HTML report at the end")
    s.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        help="processes on this machine: runs torchrun --standalone --nproc-per-node N (needs train.parallel=ddp or fsdp2)",
    )
    s.set_defaults(fn=cmd_train)


def _add_sft(sub: Any) -> None:
    s = sub.add_parser(
        "sft",
        help="supervised warm start on demonstrations (scripted agents or transcript JSONL); a YAML config and "
        "a.b=v overrides like train's, the flags below shorthands for its keys (docs/CONFIG.md, SFT)",
    )
    s.add_argument("config", nargs="?", help="YAML config (the sft keys of docs/CONFIG.md)")
    s.add_argument("overrides", nargs="*", help="section.key=value, over the config and the flags")
    s.add_argument(
        "--from",
        dest="source",
        default=None,
        help='data.source: scripted:NAME (an env\'s scripted agent, with --env) or a JSONL file of {"messages": [...]} '
        "dialogs",
    )
    s.add_argument("--env", default=None, help="env id for scripted:NAME")
    s.add_argument("--env-kwargs", type=_json_arg, default=None)
    s.add_argument("--split", default=None, help="the env's split for scripted demonstrations (default: train)")
    s.add_argument("--episodes", type=int, default=None, help="scripted: number of tasks (default: the whole split)")
    s.add_argument(
        "--keep", choices=["success", "all"], default=None, help="scripted: keep only successful episodes (default)"
    )
    s.add_argument("--model", default=None, help="model to fine-tune (default: smollm2-135m)")
    s.add_argument(
        "--out", default=None, help="train.run_dir: the run directory (must be empty or new; see --overwrite)"
    )
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="clear the agentrl run in --out first (only what agentrl wrote; a directory that is not a run is refused)",
    )
    s.add_argument(
        "--resume",
        action="store_true",
        help="continue the sft run in --out from its latest intact checkpoint (same options and data)",
    )
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--lr", type=float, default=None)
    s.add_argument("--schedule", choices=["constant", "linear", "cosine"], default=None)
    s.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=None)
    s.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="demonstrations per optimizer step")
    s.add_argument(
        "--micro-batch-size",
        dest="micro_batch_size",
        type=int,
        default=None,
        help="demonstrations per forward/backward (gradient accumulation)",
    )
    s.add_argument("--max-seq-len", dest="max_seq_len", type=int, default=None)
    s.add_argument(
        "--checkpoint-every",
        dest="checkpoint_every",
        type=int,
        default=None,
        help="optimizer steps (default: each epoch)",
    )
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument(
        "--eval-every",
        dest="eval_every",
        type=int,
        default=None,
        help="greedy held-out evaluation every N optimizer steps (and before the first); needs --env",
    )
    s.add_argument(
        "--eval-tasks",
        dest="eval_tasks",
        type=_int_or_path,
        default=None,
        help="held-out tasks: how many (default: all), or a file naming their ids (a task_id column)",
    )
    s.add_argument(
        "--eval-env-kwargs",
        dest="eval_env_kwargs",
        type=_json_arg,
        default=None,
        help='held-out env kwargs over --env-kwargs (default: {"split": "test"} when --split is given)',
    )
    s.add_argument("--eval-max-new-tokens", dest="eval_max_new_tokens", type=int, default=None)
    s.add_argument("--report", action="store_true", help="write the HTML report (loss and held-out curves) at the end")
    s.add_argument(
        "--report-to",
        dest="report_to",
        type=_tracker_list,
        default=None,
        help="experiment trackers, comma-separated: tensorboard,wandb,mlflow,trackio (offline; as train.report_to)",
    )
    s.set_defaults(fn=cmd_sft)


def _add_eval(sub: Any) -> None:
    s = sub.add_parser("eval", help="success rate, mean reward, pass@k, avg@k, pass^k")
    s.add_argument("--env", required=True)
    s.add_argument(
        "--model",
        required=True,
        help="model name, HF dir, run dir (a token policy, as in training), scripted:NAME, or MODEL@http(s)://HOST/v1 "
        "(a chat endpoint, played at the text level)",
    )
    s.add_argument(
        "--episodes", type=_positive_int, default=None, help="number of tasks (default: all of the split, or 10)"
    )
    s.add_argument(
        "--tasks",
        default=None,
        metavar="FILE",
        help="evaluate the task ids a file names: JSONL, Parquet or a datasets directory with a 'task_id' column",
    )
    s.add_argument(
        "--k", type=_positive_int, default=None, help="report pass@j and pass^j for j = 1..k (default 1, or --samples)"
    )
    s.add_argument("--trials", type=_positive_int, default=None, help="trials per task (default k)")
    s.add_argument(
        "--samples",
        type=_positive_int,
        default=None,
        help="samples per task: pass@k, avg@k and pass^k from them, k up to this (unbiased estimators; "
        "sample with --temperature > 0)",
    )
    s.add_argument("--split", default=None)
    _add_episode_args(s, max_new_tokens=256)
    s.add_argument("--json", action="store_true")
    s.add_argument("--per-task", action="store_true", help="with --json: include per-task outcomes")
    s.set_defaults(fn=cmd_eval)


def cmd_serve_policy(args: argparse.Namespace) -> int:
    """Start N vLLM servers of MODEL_DIR for rollout.backend=remote, print the config line, run until Ctrl-C or
    SIGTERM (or until a server dies: exit 1), then stop them all."""
    import shlex
    import signal

    from agentrl.inference.launch import launch_servers

    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        raise UsageError(
            f"{model_dir} is not a Hugging Face model directory (no config.json); `agentrl export RUN_DIR OUT` "
            "makes one from a run"
        )
    if args.port + args.servers - 1 > 65535:
        raise UsageError(f"--port {args.port} with --servers {args.servers} runs past port 65535")

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the servers the way Ctrl-C does

    previous = signal.signal(signal.SIGTERM, stop)
    print(f"starting {args.servers} vLLM server(s) of {model_dir} (logs in the directory below)", file=sys.stderr)
    try:
        fleet = launch_servers(
            model_dir,
            args.servers,
            host=args.host,
            base_port=args.port,
            python=args.python,
            max_model_len=args.max_model_len,
            memory_fraction=args.memory_fraction,
            extra_args=shlex.split(args.vllm_args),
            wait=False,
        )
        with fleet:
            print(f"logs: {fleet.log_dir}", file=sys.stderr, flush=True)
            fleet.wait_ready(args.startup_timeout)
            print(f"rollout.backend=remote rollout.servers=[{','.join(fleet.urls)}]", flush=True)
            print("serving; Ctrl-C (or SIGTERM) stops every server", file=sys.stderr, flush=True)
            while all(fleet.alive()):
                time.sleep(1.0)
            dead = [u for u, ok in zip(fleet.urls, fleet.alive()) if not ok]
            print(f"server(s) {', '.join(dead)} exited; stopping the rest (see {fleet.log_dir})", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("stopped: every server's process group ended", file=sys.stderr)
        return 0
    except RuntimeError as exc:  # a server that did not start: its log tail is in the message
        raise UsageError(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _add_serve_policy(sub: Any) -> None:
    s = sub.add_parser(
        "serve-policy", help="start N vLLM OpenAI servers of a model for rollout.backend=remote (Ctrl-C stops them)"
    )
    s.add_argument("model_dir", help="a Hugging Face model directory (agentrl export makes one from a run)")
    s.add_argument("--servers", type=_positive_int, default=1, help="how many servers (ports --port, --port+1, ...)")
    s.add_argument("--port", type=_int_at_least(1), default=8000)
    s.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; 0.0.0.0 serves trainers on other machines")
    s.add_argument("--python", default=None, help="the interpreter that has vLLM (default: this one)")
    s.add_argument("--max-model-len", type=_positive_int, default=2048, help="at least the run's rollout.max_seq_len")
    s.add_argument(
        "--memory-fraction",
        type=float,
        default=None,
        help="--gpu-memory-utilization per server (on a CPU: share of host memory for its KV cache; default 0.5/N)",
    )
    s.add_argument("--vllm-args", default="", help="more vLLM server flags, one quoted string")
    s.add_argument("--startup-timeout", type=float, default=900.0, help="seconds for every server to answer /health")
    s.set_defaults(fn=cmd_serve_policy)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="agentrl", description="Train LLM agents with RL in multi-turn environments.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("envs", help="list registered environments").set_defaults(fn=cmd_envs)
    _add_rollout(sub)
    _add_train(sub)
    _add_sft(sub)
    _add_eval(sub)
    s = sub.add_parser("export", help="a run's latest checkpoint as a plain HF model (LoRA merged)")
    s.add_argument("run_dir")
    s.add_argument("out")
    s.add_argument("--merge", action="store_true", help="merge LoRA adapters into the base (a full run is copied)")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("report", help="plots and an HTML report of a run directory")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_report)
    _add_serve_policy(sub)

    builtin = set(sub.choices)
    for ep in entry_points(group="agentrl.commands"):  # env packages add commands (e.g. `consult`)
        ep.load()(sub)
    for name in set(sub.choices) - builtin:
        sub.choices[name].set_defaults(plugin_command=True)
    return p


def _one_line(message: str) -> str:
    """A header with a single indented item ("invalid config:\\n  'x': ...") reads as one line."""
    lines = message.splitlines()
    if len(lines) == 2 and lines[0].endswith(":") and lines[1].startswith(" "):
        return f"{lines[0]} {lines[1].strip()}"
    return message


def _path_problem(exc: OSError) -> str:
    """`[Errno 2] No such file or directory: 'x'` -> `no such file or directory: x`; our own messages as they are."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    return f"{exc.strerror[0].lower()}{exc.strerror[1:]}: {exc.filename}"


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """parse_args, except that `train`'s and `sft`'s overrides may also follow their flags (`train CONFIG --nproc 2
    a.b=1`): argparse stops filling a positional list at the first flag and would call the rest unrecognized."""
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) in ("train", "sft") and not any(a.startswith("-") for a in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Bad input (UsageError, ConfigError, a missing named file) exits 2 with one line on stderr; any other
    exception is a bug and keeps its traceback. Commands from env packages keep exiting 2 on a ValueError."""
    args = _parse(build_parser(), argv)
    try:
        return int(args.fn(args) or 0)
    except UsageError as exc:
        message = str(exc)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        message = _path_problem(exc)
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        message = _path_problem(exc)
    except ValueError as exc:
        if not getattr(args, "plugin_command", False):
            raise
        message = str(exc)
    print(f"agentrl {args.command}: error: {_one_line(message)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
