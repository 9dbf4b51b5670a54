"""`agentrl serve-env ENV_ID --port P`: serve an agentrl env as an OpenEnv server (`server.py`).

Registered through the `agentrl.commands` entry point (`serve-env = "environments.openenv.cli:register"`);
`python -m environments.openenv.cli serve-env ...` runs the same command without the agentrl CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agentrl.core.errors import UsageError


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return v


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text!r}")
    return v


def cmd_serve_env(args: argparse.Namespace) -> int:
    try:
        kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--env-kwargs must be a JSON object: {exc}") from exc
    if not isinstance(kwargs, dict):
        raise UsageError(f"--env-kwargs must be a JSON object, got {type(kwargs).__name__}")
    from agentrl.core.registry import make_env

    make_env(args.env_id, **kwargs).close()  # a bad id or kwarg fails here, before openenv-core loads
    try:
        from environments.openenv.server import serve
    except ModuleNotFoundError as exc:
        raise UsageError(f"serve-env needs openenv-core: pip install 'agentrl[openenv]' ({exc})") from exc
    print(
        f"serving {args.env_id} as an OpenEnv server on http://{args.host}:{args.port} "
        f"(WebSocket /ws, at most {args.max_sessions} sessions); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    stopped_by = serve(
        args.env_id,
        host=args.host,
        port=args.port,
        env_kwargs=kwargs,
        max_sessions=args.max_sessions,
        session_timeout_s=args.session_timeout,
        log_level=args.log_level,
    )
    if stopped_by is not None:
        print(f"stopped by signal {stopped_by}: sessions closed", file=sys.stderr, flush=True)
    return 0


def register(subparsers: Any) -> None:
    """Add `serve-env` to an argparse sub-parser set (the agentrl CLI's)."""
    p = subparsers.add_parser(
        "serve-env", help="serve an agentrl env (shipped or module:Id) as an OpenEnv server (openenv-core)"
    )
    p.add_argument("env_id", help="an env id: agentrl/CreditChain-v0, my_module:MyEnv-v0, ...")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--max-sessions", type=_positive_int, default=8, help="concurrent sessions (default 8)")
    p.add_argument("--session-timeout", type=float, default=None, help="close sessions idle this many seconds")
    p.add_argument("--env-kwargs", default="{}", help="the env's constructor kwargs as a JSON object")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(fn=cmd_serve_env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m environments.openenv.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (UsageError, ValueError) as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
