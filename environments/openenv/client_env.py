"""`OpenEnvEnv`: any OpenEnv server (openenv-core's `reset` / `step` / `state` protocol) as a `MultiTurnEnv`.

    env.id: openenv:http://127.0.0.1:8000           # or: env.id: interop/OpenEnv-v0, env.kwargs.base_url: ...

Transport. openenv-core keeps an episode's env alive only on its WebSocket (`/ws`: one env instance per
connection); its HTTP `/reset` and `/step` build a fresh env per request. So `transport="auto"` (the default) uses
the WebSocket and falls back to HTTP only where the server has no `/ws`; `transport="http"` forces HTTP, which suits
servers whose env keeps its state elsewhere, or one-step envs.

Action. The agent's text becomes the server's Action: `{action_field: text}` when the Action has one text field
(read from the server's `/schema`, or named with `action_field`), otherwise the text must be one JSON object with
the Action's fields (`action_format="json"`). `action_defaults` adds fixed fields. Text the server rejects (a
validation error) is answered with an "Error: ..." message and counted as `invalid_action`, as for any env.
An Action field declared as a string enum (`Literal[...]`) gives `allowed_replies()` for constrained decoding.

Observation. Each step's observation (its fields other than reward / done / metadata) becomes one user message:
`observation_field`, else its only text field, else the whole observation as JSON.

Reward. The server's reward of the step that ended the episode (`reward="last"`), or the sum over the episode
(`reward="sum"`). A step that ends the episode without a reward is counted as the error kind `no_reward` (and pays
0). `state` (where the server has it) is fetched when the episode ends and kept in `self.state["server_state"]`.

Failures. A dropped connection, a timeout, a refused connection or a full server (`CAPACITY_REACHED`) is retried,
with backoff, for at most `retry_s` seconds per call; the WebSocket session is then re-opened and the episode
replayed (reset with the same seed, the same actions). Past the budget, or when the server's env raises while
stepping, an `OpenEnvError` ends the episode (the rollout counts it as `env_error`).

Snapshots. A server session cannot be copied, so `snapshot()` keeps the reset arguments and the actions, and an
env restored from one replays them on a fresh session before its next step, checking that the server answers
as it did (TRePO's branches need a server that is deterministic given the reset seed; one that is not is an
`OpenEnvError`, never a silently different branch).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.types import Message

TRANSPORTS = ("auto", "ws", "http")
REWARDS = ("last", "sum")
_RETRYABLE_CODES = {"CAPACITY_REACHED"}  # a full server frees sessions; a wrong action or a crashing env does not


class OpenEnvError(RuntimeError):
    """The server failed (or could not be reached within the retry budget): the episode ends as env_error."""


class _Transient(Exception):
    """A failure worth retrying: the connection, a timeout, a full server."""


class _Rejected(Exception):
    """The server rejected the action (validation): the agent's fault, answered as an error message."""


class _WSSession:
    """One WebSocket session on `/ws` (one env instance on the server), driven synchronously."""

    def __init__(self, base_url: str, timeout_s: float, max_message_bytes: int):
        url = base_url.rstrip("/")
        for a, b in (("http://", "ws://"), ("https://", "wss://")):
            if url.startswith(a):
                url = b + url[len(a) :]
        self.url = url + "/ws"
        self.timeout_s = timeout_s
        self.max_message_bytes = max_message_bytes
        self._ws: Any = None

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        try:
            if self._ws is None:
                ws = connect(self.url, open_timeout=self.timeout_s, max_size=self.max_message_bytes)
                # a connection kept across calls: entered by hand (websockets >= 17 warns otherwise), closed in close()
                self._ws = ws.__enter__()
            self._ws.send(json.dumps(message))
            reply = json.loads(self._ws.recv(timeout=self.timeout_s))
        except InvalidStatus:
            self.close()
            raise
        except (OSError, TimeoutError, ConnectionClosed, WebSocketException) as exc:
            self.close()
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(reply, dict):
            raise OpenEnvError(f"the server answered {message['type']} with {type(reply).__name__}, not an object")
        if reply.get("type") == "error":
            data = reply.get("data") or {}
            code, text = str(data.get("code", "UNKNOWN")), str(data.get("message", ""))
            if code in _RETRYABLE_CODES:
                self.close()  # the server closes a refused session
                raise _Transient(f"{code}: {text}")
            if code == "VALIDATION_ERROR" and message["type"] == "step":
                raise _Rejected(_validation_text(data.get("errors"), text))
            raise OpenEnvError(f"the server failed on {message['type']}: {text} (code {code})")
        return reply.get("data") or {}

    def reset(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.request({"type": "reset", "data": kwargs})

    def step(self, action: dict[str, Any]) -> dict[str, Any]:
        return self.request({"type": "step", "data": action})

    def state(self) -> dict[str, Any] | None:
        return self.request({"type": "state"})

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.send(json.dumps({"type": "close"}))
            except Exception:  # noqa: S110 - best effort: the socket may be gone already
                pass
            ws.close()


class _HTTPSession:
    """openenv-core's HTTP endpoints (stateless on its own servers: each request gets a fresh env)."""

    def __init__(self, base_url: str, timeout_s: float):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s)

    def _post(self, path: str, body: dict[str, Any], step: bool = False) -> dict[str, Any]:
        try:
            r = self._http.post(self.base_url + path, json=body)
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code == 422 and step:
            detail = (
                r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else None
            )
            raise _Rejected(_validation_text(detail, r.text[:500]))
        if r.status_code in (408, 429, 502, 503, 504):  # 500: the env raised, not worth a retry
            raise _Transient(f"HTTP {r.status_code}")
        if r.status_code != 200:
            raise OpenEnvError(f"POST {path}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json()

    def reset(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self._post("/reset", kwargs)

    def step(self, action: dict[str, Any]) -> dict[str, Any]:
        return self._post("/step", {"action": action}, step=True)

    def state(self) -> dict[str, Any] | None:
        try:
            r = self._http.get(self.base_url + "/state")
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        return r.json() if r.status_code == 200 else None

    def close(self) -> None:
        self._http.close()


def _validation_text(errors: Any, fallback: str) -> str:
    if isinstance(errors, list) and errors:
        parts = []
        for e in errors[:5]:
            if isinstance(e, dict):
                loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "action"))
                parts.append(f"{loc or 'action'}: {e.get('msg', '')}")
        if parts:
            return "; ".join(parts)
    return fallback or "the server rejected the action"


class OpenEnvEnv(MultiTurnEnv):
    """Any OpenEnv server as a multi-turn text env (module docstring: transport, action, observation, reward)."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: str = "auto",
        action_field: str | None = None,
        action_format: str | None = None,
        action_defaults: dict[str, Any] | None = None,
        observation_field: str | None = None,
        system_prompt: str | None = None,
        reset_kwargs: dict[str, Any] | None = None,
        tasks: dict[str, dict[str, Any]] | None = None,
        reward: str = "last",
        success_threshold: float | None = None,
        allowed_replies: list[str] | None = None,
        fetch_state: bool = True,
        timeout_s: float = 30.0,
        retry_s: float = 30.0,
        max_message_mb: float = 16.0,
        max_turns: int = 8,
        max_action_chars: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, max_action_chars=max_action_chars, render_mode=render_mode)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"base_url must be an http(s):// or ws(s):// URL, got {base_url!r}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if action_format not in (None, "field", "json"):
            raise ValueError(f"action_format must be field or json, got {action_format!r}")
        if not (timeout_s > 0 and retry_s >= 0):
            raise ValueError(f"timeout_s must be > 0 and retry_s >= 0, got {timeout_s}, {retry_s}")
        self.base_url = base_url.rstrip("/")
        if self.base_url.startswith(("ws://", "wss://")):
            self.base_url = "http" + self.base_url[2:]
        self.transport = transport
        self.action_field = action_field
        self.action_format = action_format
        self.action_defaults = dict(action_defaults or {})
        self.observation_field = observation_field
        self.system_prompt = system_prompt
        self.reset_kwargs = dict(reset_kwargs or {})
        self.tasks = {str(k): dict(v) for k, v in (tasks or {}).items()}
        self.reward_mode = reward
        self.success_threshold = success_threshold
        self._allowed = list(allowed_replies) if allowed_replies is not None else None
        self.fetch_state = fetch_state
        self.timeout_s = float(timeout_s)
        self.retry_s = float(retry_s)
        self.max_message_bytes = int(max_message_mb * 2**20)
        self._session: _WSSession | _HTTPSession | None = None
        self._synced = False  # whether the server session is at the episode's current step
        self._described: dict[str, Any] | None = None  # /schema and /metadata, fetched once

    # --- the server's description ------------------------------------------------------------------
    def _describe(self) -> dict[str, Any]:
        if self._described is None:
            schema, meta = {}, {}
            deadline = time.monotonic() + self.retry_s
            with httpx.Client(timeout=self.timeout_s) as http:
                for path in ("/schema", "/metadata"):
                    while True:
                        try:
                            r = http.get(self.base_url + path)
                            break
                        except httpx.TransportError as exc:
                            if time.monotonic() > deadline:
                                raise OpenEnvError(f"GET {self.base_url}{path}: {exc}") from exc
                            time.sleep(0.2)
                    if r.status_code == 200:
                        (schema if path == "/schema" else meta).update(r.json())
            action = schema.get("action") or {}
            props = {k: v for k, v in (action.get("properties") or {}).items() if k != "metadata"}
            field, fmt = self.action_field, self.action_format
            if fmt is None:
                if field is None:
                    texts = [k for k, v in props.items() if _is_text(v, action)]
                    field = texts[0] if len(texts) == 1 else None
                fmt = "field" if field else "json"
            if fmt == "field" and field is None:
                raise ValueError(
                    f"{self.base_url}: action_format=field needs action_field (the Action has {list(props)})"
                )
            if fmt == "field" and props and field not in props:
                raise ValueError(f"{self.base_url}: the Action has no field {field!r}; it has {', '.join(props)}")
            enum = _enum(props.get(field, {}), action) if fmt == "field" else None
            self._described = {"schema": schema, "meta": meta, "props": props, "field": field, "format": fmt,
                               "enum": enum}  # fmt: skip
        return self._described

    def _default_system(self) -> str:
        d = self._describe()
        name = d["meta"].get("name") or "an OpenEnv environment"
        about = d["meta"].get("description") or ""
        head = f"You act in {name}" + (f": {about}" if about and about != f"{name} environment" else "")
        head = head.rstrip() if head.rstrip().endswith((".", "!", "?")) else head.rstrip() + "."
        if d["format"] == "field":
            how = f"Each of your messages is sent as the action's `{d['field']}`."
            if d["enum"]:
                how += f" Reply with exactly one of: {', '.join(d['enum'])}."
        else:
            how = "Reply with one JSON object, the action, with these fields: " + json.dumps(d["props"])
        return f"{head}\n{how}"

    # --- transport with bounded retries ------------------------------------------------------------
    def _new_session(self) -> _WSSession | _HTTPSession:
        if self.transport == "http":
            return _HTTPSession(self.base_url, self.timeout_s)
        return _WSSession(self.base_url, self.timeout_s, self.max_message_bytes)

    def _call(self, what: str, fn):
        """fn(session) with retries of transient failures for at most `retry_s` seconds (capped backoff)."""
        from websockets.exceptions import InvalidStatus

        deadline, delay = time.monotonic() + self.retry_s, 0.1
        while True:
            if self._session is None:
                self._session = self._new_session()
            try:
                return fn(self._session)
            except InvalidStatus as exc:  # no /ws here: HTTP, where "auto" allows it
                status = exc.response.status_code
                if self.transport == "auto" and status in (403, 404):
                    self._session.close()
                    self.transport, self._session, self._synced = "http", None, False
                    continue
                raise OpenEnvError(f"{what}: the server refused the WebSocket (HTTP {status})") from exc
            except _Transient as exc:
                self._synced = False
                if time.monotonic() + delay > deadline:
                    raise OpenEnvError(
                        f"{what} at {self.base_url}: gave up after {self.retry_s:g} s of retries: {exc}"
                    ) from exc
                time.sleep(delay)
                delay = min(2 * delay, 2.0)

    def _sync(self, session) -> None:
        """Bring the server session to the episode's current step: reset with the same arguments, replay the
        actions, and check that each answer is the one recorded (else branching would be silently wrong)."""
        if self._synced or isinstance(session, _HTTPSession):
            return
        st = self.state
        first = session.reset(st["reset"])
        if _canon(first) != st["results"][0]:
            raise OpenEnvError("replaying the episode: the server's reset answered differently (not deterministic)")
        for i, action in enumerate(st["actions"]):
            if _canon(session.step(action)) != st["results"][i + 1]:
                raise OpenEnvError(f"replaying the episode: step {i + 1} answered differently (not deterministic)")
        self._synced = True

    # --- MultiTurnEnv hooks ------------------------------------------------------------------------
    def task_ids(self) -> list[str] | None:
        return sorted(self.tasks) or None

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        task_kwargs: dict[str, Any] = {}
        if self.tasks:
            self.task_id = self.choose_task_id(options, sorted(self.tasks))
            task_kwargs = self.tasks[self.task_id]
        elif options:
            raise ValueError(f"unknown reset options {sorted(options)}; this OpenEnv env has no task list")
        # the server's seed derives from ours, so a seeded reset (and a replay) is reproducible
        seed = int(self.np_random.integers(0, 2**31 - 1))
        kwargs = {"seed": seed, **self.reset_kwargs, **task_kwargs}
        system = self.system_prompt if self.system_prompt is not None else self._default_system()

        def reset(session):
            return session.reset(kwargs)

        result = self._call("reset", reset)
        self.state = {"reset": kwargs, "actions": [], "results": [_canon(result)], "rewards": [],
                      "server_state": None}  # fmt: skip
        self._synced = True
        if result.get("done"):
            raise OpenEnvError("the server ended the episode at reset")
        return system, self._text(result)

    def respond(self, text: str) -> EnvReply:
        d = self._describe()
        if d["format"] == "field":
            action = {**self.action_defaults, d["field"]: text}
        else:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                return EnvReply(
                    [Message("user", f"Error: the action must be one JSON object ({exc})")], error="invalid_action"
                )
            if not isinstance(parsed, dict):
                return EnvReply([Message("user", "Error: the action must be one JSON object")], error="invalid_action")
            action = {**self.action_defaults, **parsed}

        def step(session):
            self._sync(session)
            return session.step(action)

        try:
            result = self._call("step", step)
        except _Rejected as exc:  # the session did not step: nothing to record
            return EnvReply(
                [Message("user", f"Error: the environment rejected the action: {exc}")], error="invalid_action"
            )
        self.state["actions"].append(action)
        self.state["results"].append(_canon(result))
        reward = result.get("reward")
        self.state["rewards"].append(None if reward is None else float(reward))
        done = bool(result.get("done"))
        error = None
        if done:
            if reward is None:
                error = "no_reward"
            if self.fetch_state:
                self.state["server_state"] = self.server_state()
        return EnvReply([Message("user", self._text(result))], terminated=done, error=error)

    def compute_reward(self) -> RewardResult:
        rewards = [r for r in self.state["rewards"] if r is not None]
        last = self.state["rewards"][-1] if self.state["rewards"] else None
        value = sum(rewards) if self.reward_mode == "sum" else (last if last is not None else 0.0)
        success = None if self.success_threshold is None else value >= self.success_threshold
        breakdown = {"server_reward_sum": float(sum(rewards)), "server_steps": float(len(self.state["rewards"]))}
        return RewardResult(float(value), breakdown, success)

    def allowed_replies(self) -> list[str] | None:
        if self._allowed is not None:
            return list(self._allowed)
        return list(self._describe()["enum"] or []) or None

    def server_state(self) -> dict[str, Any] | None:
        """The server's `state` for the running episode (None where the server has none)."""

        def state(session):
            self._sync(session)
            return session.state()

        return self._call("state", state)

    def restore(self, snap) -> None:
        super().restore(snap)
        self._synced = False  # the server session is elsewhere: replay before the next step

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        super().close()

    # --- observations -------------------------------------------------------------------------------
    def _text(self, result: dict[str, Any]) -> str:
        obs = result.get("observation") or {}
        if self.observation_field is not None:
            if self.observation_field not in obs:
                raise OpenEnvError(f"the observation has no field {self.observation_field!r}; it has {sorted(obs)}")
            value = obs[self.observation_field]
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        texts = [v for v in obs.values() if isinstance(v, str)]
        if len(texts) == 1:
            return texts[0]
        return json.dumps(obs, sort_keys=True)


def _canon(result: dict[str, Any]) -> str:
    """A step's answer as canonical JSON: what a replay must reproduce."""
    return json.dumps(
        {"observation": result.get("observation"), "reward": result.get("reward"), "done": result.get("done")},
        sort_keys=True,
    )


def _deref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return (root.get("$defs") or {}).get(ref.split("/")[-1], {})
    return schema


def _is_text(prop: dict[str, Any], root: dict[str, Any]) -> bool:
    prop = _deref(prop, root)
    return prop.get("type") == "string" or ("enum" in prop and all(isinstance(v, str) for v in prop["enum"]))


def _enum(prop: dict[str, Any], root: dict[str, Any]) -> list[str] | None:
    prop = _deref(prop, root)
    values = prop.get("enum")
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        return list(values)
    return None
