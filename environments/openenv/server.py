"""Any agentrl env served as an OpenEnv server (openenv-core's FastAPI app), for OpenEnv's own clients.

    agentrl serve-env agentrl/CreditChain-v0 --port 8000 [--max-sessions 8] [--env-kwargs '{"turns": 4}']

    from openenv import GenericEnvClient
    with GenericEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
        r = env.reset(seed=0)                  # r.observation["text"]: the system prompt and opening message
        r = env.step({"message": "3"})         # r.observation["messages"], r.reward (at the end), r.done

The protocol. Action: `{"message": str}`, the agent's whole message (tool calls inside it as the env reads them).
Observation: `text` (the new messages' contents), `messages` (the new `{role, content}` messages; at reset the
system prompt and the opening), `info` (turn, error kind, error counts, task id, and at the end the reward
breakdown and success; at reset the tool schemas). Reward: 0 on every step but the last, then the env's
response-level reward (agentrl's contract). Reset takes `seed`, and `task_id` for envs with a task list.
State: episode id, step count, task id, turn, done and the transcript.

Sessions. Each WebSocket connection gets its own env instance (`make_env`), so sessions share nothing; at most
`max_sessions` at once (one more is refused with CAPACITY_REACHED), idle ones are closed after
`session_timeout_s` when set. openenv-core's HTTP `/reset` and `/step` build a fresh env per request, as on any
OpenEnv server: multi-turn episodes need the WebSocket (what its clients use).

Errors. Bad agent text never raises (the env answers "Error: ..." and counts it, `info.errors`); an action that
does not fit the schema is a VALIDATION_ERROR; stepping before reset or after the end, an unknown reset argument
or a task id the env does not have is an EXECUTION_ERROR. The session stays open after any of them.
"""

from __future__ import annotations

import functools
from typing import Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from pydantic import Field

from agentrl.core.registry import env_class, make_env

MAX_MESSAGE_CHARS = 200_000  # an action's text; the env's own max_action_chars answers longer ones with an error


class AgentAction(Action):
    """The agent's whole message."""

    message: str = Field(..., max_length=MAX_MESSAGE_CHARS, description="the agent's message (text)")


class AgentObservation(Observation):
    """The env's new messages since the last action."""

    text: str = Field(default="", description="the new messages' contents, one after another")
    messages: list[dict[str, str]] = Field(default_factory=list, description="the new {role, content} messages")
    info: dict[str, Any] = Field(default_factory=dict, description="turn, error kinds, task id, reward breakdown")


class AgentrlEnvironment(Environment):
    """One session's agentrl env behind OpenEnv's `reset` / `step` / `state`."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # one env instance per session, nothing shared

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None):
        super().__init__()
        self.env_id = env_id
        self.env = make_env(env_id, **(env_kwargs or {})).unwrapped
        self._episode_id: str | None = None
        self._steps = 0
        self._started = False

    def reset(
        self, seed: int | None = None, episode_id: str | None = None, task_id: str | None = None, **kwargs: Any
    ) -> AgentObservation:
        if kwargs:
            raise ValueError(f"unknown reset arguments {sorted(kwargs)}; allowed: seed, episode_id, task_id")
        options = {} if task_id is None else {"task_id": task_id}
        obs, info = self.env.reset(seed=seed, options=options)
        self._episode_id, self._steps, self._started = episode_id, 0, True
        extra = {"task_id": self.env.task_id, "turn": 0, "tools": info.get("tools") or []}
        allowed = self.env.allowed_replies()
        if allowed is not None:
            extra["allowed_replies"] = list(allowed)
        return _observation(obs, 0.0, False, extra)

    def step(self, action: AgentAction, timeout_s: float | None = None, **kwargs: Any) -> AgentObservation:
        if not self._started:
            raise RuntimeError("step before reset: reset the session first")
        if self.env.done:
            raise RuntimeError("the episode has ended: reset the session to start another")
        obs, reward, terminated, truncated, info = self.env.step(action.message)
        self._steps += 1
        done = bool(terminated or truncated)
        extra: dict[str, Any] = {
            "turn": info.get("turn"),
            "error": info.get("error"),
            "errors": info.get("errors", {}),
            "task_id": self.env.task_id,
        }
        if done:
            out = self.env.outcome()
            extra.update(
                reward_breakdown=dict(out.breakdown), success=out.success, terminated=out.terminated,
                truncated=out.truncated,
            )  # fmt: skip
        else:
            allowed = self.env.allowed_replies()
            if allowed is not None:
                extra["allowed_replies"] = list(allowed)
        return _observation(obs, float(reward), done, extra)

    @property
    def state(self) -> State:
        return State(
            episode_id=self._episode_id,
            step_count=self._steps,
            env_id=self.env_id,
            task_id=self.env.task_id,
            turn=self.env.turn,
            done=self.env.done,
            transcript=[{"role": m.role, "content": m.content} for m in self.env.transcript],
        )

    def get_metadata(self) -> EnvironmentMetadata:
        cls = env_class(self.env_id)
        doc = (cls.__doc__ or "").strip().splitlines()
        return EnvironmentMetadata(name=self.env_id, description=doc[0] if doc else f"agentrl env {self.env_id}")

    def close(self) -> None:
        self.env.close()


def _observation(obs: Any, reward: float, done: bool, info: dict[str, Any]) -> AgentObservation:
    messages = [{"role": m["role"], "content": m["content"]} for m in obs]
    text = "\n\n".join(m["content"] for m in messages)
    return AgentObservation(text=text, messages=messages, info=info, reward=reward, done=done)


def make_app(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    max_sessions: int = 8,
    session_timeout_s: float | None = None,
):
    """openenv-core's FastAPI app serving `env_id`. The env is built once here, so a bad id or kwarg fails
    before the server starts."""
    from openenv.core.env_server.http_server import create_fastapi_app
    from openenv.core.env_server.types import ConcurrencyConfig

    make_env(env_id, **(env_kwargs or {})).close()
    factory = functools.partial(AgentrlEnvironment, env_id, dict(env_kwargs or {}))
    config = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=session_timeout_s)
    return create_fastapi_app(factory, AgentAction, AgentObservation, concurrency_config=config)


def serve(
    env_id: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    env_kwargs: dict[str, Any] | None = None,
    max_sessions: int = 8,
    session_timeout_s: float | None = None,
    log_level: str = "warning",
) -> int | None:
    """Serve until SIGINT / SIGTERM; uvicorn then closes the open sessions (each env's `close()`) and this
    returns, so the command exits 0. Returns the signal that stopped it (None if none did)."""
    import signal
    import threading

    import uvicorn

    app = make_app(env_id, env_kwargs, max_sessions=max_sessions, session_timeout_s=session_timeout_s)
    # a client that never answers the close frame must not hold the shutdown forever
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, ws="websockets", timeout_graceful_shutdown=10
    )
    server = uvicorn.Server(config)
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return None
    # uvicorn shuts down gracefully on these signals, then re-raises them to the handlers it found in place: with
    # Python's defaults the process would die by SIGTERM (or raise KeyboardInterrupt) after a clean shutdown.
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda n, _frame: caught.append(n)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return caught[0] if caught else None
