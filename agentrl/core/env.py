"""`MultiTurnEnv`: the Gymnasium contract every agentrl environment honours (see DESIGN.md, "Environment").

A subclass implements three hooks (`setup`, `respond`, `compute_reward`; `on_tool_result`, `task_ids`,
`task_family`, `allowed_replies`, `template_tools` and `tool_kwargs` are optional); the base class does
everything else:

    class Echo(MultiTurnEnv):
        tools = (my_tool,)                                   # optional @tool functions
        def setup(self, options):                            # new episode: fill self.state, return opening
            self.state = {"word": "hello"}
            return "You repeat words.", "Say hello."         # (system prompt, first user message)
        def respond(self, text):                             # agent text that is not a tool call
            return EnvReply(terminated=True)                 # or EnvReply([user message], terminated=False)
        def compute_reward(self):                            # called once, when the episode ends
            return RewardResult(1.0, {"said_it": 1.0}, success=True)

What the base class guarantees:
  * observations are tuples of fresh `{"role", "content"}` dicts in a `ChatSpace`; actions are strings
    in a `TextSpace`; the first observation is the system prompt (with the tool block when the env
    has tools) and the opening user message;
  * reward is 0.0 on every step but the last one; on the terminal (or truncating) step it is the
    response-level reward, and `outcome()` (an `Outcome`) explains it; `end_truncated()` ends a running
    episode from outside (a rollout out of context) with the same bookkeeping;
  * `prompt()` is the episode's opening as a typed `EnvPrompt` (system prompt, tool block and JSON schemas
    kept apart), for a chat formatter; the first observation is its text;
  * `info` repeats these for Gymnasium users and logs (`tools`, `system_without_tools`, `reward_breakdown`,
    `success`, `errors`); agentrl's own code reads the typed methods, never `info`;
  * `max_turns` truncates; stepping a finished episode raises (a caller bug, not an agent error);
  * bad agent output — not a string, empty, over `max_action_chars`, malformed or unknown tool call,
    wrong argument types, too many calls in one turn — never raises: the agent gets an
    "Error: ..." message and `info["errors"]` counts it by kind;
  * `snapshot()` / `restore()` return to any earlier point of an episode. They deep-copy `self.state`
    (keep ALL mutable episode state there, simulators included) plus the base bookkeeping and the RNG.
    Objects that must be shared rather than copied (a chat model, a read-only world) are skipped:
    either they define `__deepcopy__` returning self (agentrl's chat models do), or their attribute
    names on the env are listed in `shared_state` (those env attributes are then never copied).
"""

from __future__ import annotations

import copy
import reprlib
from collections import Counter
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym

from agentrl.core.spaces import ChatSpace, TextSpace
from agentrl.core.tools import (
    Tool,
    ToolCall,
    ToolCallParseError,
    ToolResult,
    ToolSet,
    parse_tool_calls,
)
from agentrl.core.types import Message


@dataclass
class EnvReply:
    """The env's answer to one agent turn: new messages, and whether the episode is over."""

    messages: list[Message] = field(default_factory=list)
    terminated: bool = False
    error: str | None = None  # an error kind to count in info["errors"] (e.g. "no_tool_call" for a nudge)


@dataclass
class RewardResult:
    """The one response-level reward of an episode, with its itemization."""

    reward: float
    breakdown: dict[str, float] = field(default_factory=dict)
    success: bool | None = None


@dataclass(frozen=True)
class EnvPrompt:
    """An episode's opening, typed: what the first observation shows, with the tool schemas kept apart so a
    chat template with `tools=` support can render them in place of the env's own tool block."""

    system: str  # the system prompt as `setup()` returned it, without the tool block
    opening: str  # the first user message
    tool_block: str = ""  # the tool text the first observation appends to the system prompt ("" without tools)
    tools: tuple[dict[str, Any], ...] | None = ()  # JSON schemas; None: the tool block must stay as text

    @property
    def system_text(self) -> str:
        """The system message of the first observation."""
        return f"{self.system}\n\n{self.tool_block}" if self.tool_block else self.system

    def messages(self) -> list[Message]:
        return [Message("system", self.system_text), Message("user", self.opening)]


@dataclass(frozen=True)
class Outcome:
    """How an episode ended: its one response-level reward, the reward's itemization, success, the error
    counts by kind, and whether it terminated or was truncated (by `max_turns` or `end_truncated()`)."""

    reward: float
    breakdown: dict[str, float]
    success: bool | None
    errors: dict[str, int]
    terminated: bool
    truncated: bool


@dataclass(frozen=True)
class EnvSnapshot:
    """Opaque copy of an episode's state at one point (see MultiTurnEnv.snapshot)."""

    data: dict[str, Any]


class MultiTurnEnv(gym.Env):
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}  # gym.Env declares it per instance

    # --- class-level settings a subclass may override ---------------------------------------
    tools: ClassVar[tuple[Tool, ...]] = ()
    max_turns: int = 8
    max_action_chars: int = 8000
    max_tool_calls_per_turn: int = 1
    max_observation_chars: int = 20_000
    error_role: str = "user"
    shared_state: ClassVar[tuple[str, ...]] = ()  # env attributes that snapshots share, never copy

    # one episode's bookkeeping, set by `_reset_bookkeeping` (and `restore`)
    errors: Counter[str]
    _transcript: list[Message]
    _prompt: EnvPrompt | None
    _outcome: Outcome | None

    def __init__(
        self, *, max_turns: int | None = None, max_action_chars: int | None = None, render_mode: str | None = None
    ):
        if max_turns is not None:
            if not isinstance(max_turns, int) or max_turns < 1:
                raise ValueError(f"max_turns must be a positive int, got {max_turns!r}")
            self.max_turns = max_turns
        if max_action_chars is not None:
            if not isinstance(max_action_chars, int) or max_action_chars < 1:
                raise ValueError(f"max_action_chars must be a positive int, got {max_action_chars!r}")
            self.max_action_chars = max_action_chars
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not supported (allowed: {self.metadata['render_modes']})")
        self.render_mode = render_mode
        self.toolset = ToolSet(self.tools)
        self.action_space = TextSpace(self.max_action_chars)
        self.observation_space = ChatSpace(max_messages=16, max_content=max(self.max_observation_chars, 100_000))
        self.state: Any = None
        self._started = False  # step() before the first reset() is a caller bug, like stepping a finished episode
        self._reset_bookkeeping()

    # --- hooks ---------------------------------------------------------------------------------
    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        """Start an episode: set `self.state`, return (system prompt, opening user message).
        Use `self.np_random` for any randomness so a seeded reset is reproducible."""
        raise NotImplementedError

    def respond(self, text: str) -> EnvReply:
        """Answer an agent message that holds no tool call."""
        raise NotImplementedError

    def on_tool_result(self, call: ToolCall, result: ToolResult) -> EnvReply | None:
        """After a tool call ran: return an EnvReply to add messages or end the episode, else None."""
        return None

    def compute_reward(self) -> RewardResult:
        """The response-level reward; called once when the episode terminates or is truncated."""
        raise NotImplementedError

    def task_ids(self) -> list[str] | None:
        """Envs with a fixed task list return its ids; `reset(options={"task_id": id})` must then start
        that task, and a reset without it draws one with `self.np_random`. Set `self.task_id` in setup."""
        return None

    def task_family(self, task_id: str) -> str | None:
        """Optional, for envs with a task list: the family (stratum) a task belongs to, e.g. ToolUse's task family or
        a Consultation case's diagnosis. `rollout.task_draw=stratified` cycles over families so each update's groups
        cover them evenly (`train/task_draws.py`); None (the default) puts every task in one stratum."""
        return None

    def choose_task_id(
        self, options: dict[str, Any], ids: Sequence[str], known: Container[str] | None = None, what: str = "tasks"
    ) -> str:
        """For `setup`: validate the reset options (only `task_id` is allowed) and return the requested
        task id (checked against `known`, default `ids`), or one drawn with `self.np_random` when none
        was given. Errors name what is allowed."""
        unknown = set(options) - {"task_id"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: task_id")
        if not ids:
            raise ValueError(f"{type(self).__name__} has no {what} to choose from")
        tid = options.get("task_id")
        if tid is None:
            return ids[int(self.np_random.integers(len(ids)))]
        if tid not in (ids if known is None else known):
            raise ValueError(f"unknown task_id {tid!r}: {len(ids)} {what} here (e.g. {ids[0]!r})")
        return tid

    def allowed_replies(self) -> list[str] | None:
        """Optional: the exact replies that make sense now, for constrained decoding in tests and
        benchmarks with tiny models (DESIGN.md, "Learning tests on a CPU"). None = unconstrained."""
        return None

    def template_tools(self) -> list[dict[str, Any]] | None:
        """The JSON schemas a chat template may render through its `tools=` argument in place of the system
        prompt's tool block; None keeps the block as text (e.g. a compact block that the schemas would undo)."""
        return self.toolset.schemas()

    def tool_kwargs(self) -> dict[str, Any]:
        """What injected tool parameters (`state`, `env`) receive."""
        return {"state": self.state, "env": self}

    # --- Gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._reset_bookkeeping()
        self._started = True
        system, opening = self.setup(dict(options or {}))
        tools = self.template_tools() if self.toolset else []
        block = self.toolset.prompt_block() if self.toolset else ""
        self._prompt = EnvPrompt(system, opening, block, None if tools is None else tuple(tools))
        msgs = self._prompt.messages()
        self._transcript.extend(msgs)
        info: dict[str, Any] = {"turn": 0, "task_id": self.task_id}
        if tools is not None:  # for Gymnasium users and logs; agentrl reads prompt()
            info.update(tools=self.toolset.schemas() if self.toolset else [], system_without_tools=system)
        return self._obs(msgs), info

    def step(self, action: Any):
        self._check_running("step()")
        self.turn += 1
        error, reply = self._run_action(action)
        error = error or reply.error
        if error:
            self.errors[error] += 1
        # reprlib: bounded in depth and length (a deeply nested non-str action must not raise RecursionError)
        self._transcript.append(Message("assistant", action if isinstance(action, str) else reprlib.repr(action)))
        self._transcript.extend(reply.messages)
        terminated = bool(reply.terminated)
        truncated = not terminated and self.turn >= self.max_turns
        info: dict[str, Any] = {"turn": self.turn, "error": error, "errors": dict(self.errors)}
        reward = 0.0
        if terminated or truncated:
            out = self._end(terminated, truncated)
            reward = out.reward
            info["reward_breakdown"] = dict(out.breakdown)
            info["success"] = out.success
        return self._obs(reply.messages), reward, terminated, truncated, info

    # --- typed access for the rollout (info repeats it for Gymnasium users) --------------------------
    def prompt(self) -> EnvPrompt:
        """The running (or last) episode's opening; reset() first."""
        if self._prompt is None:
            raise RuntimeError("prompt() called before reset(); call reset() first")
        return self._prompt

    def outcome(self) -> Outcome | None:
        """How the episode ended; None while it runs (or before reset)."""
        return self._outcome

    def end_truncated(self) -> Outcome:
        """End the running episode as truncated without an agent turn (e.g. the rollout ran out of context):
        the bookkeeping of a truncating step — the episode is over, `compute_reward()` runs once — and its
        outcome. Stepping or ending it again raises, as after any end."""
        self._check_running("end_truncated()")
        return self._end(terminated=False, truncated=True)

    @property
    def last_result(self) -> RewardResult | None:
        """The ended episode's reward as a RewardResult (`outcome()` has more); None while it runs."""
        o = self._outcome
        return None if o is None else RewardResult(o.reward, dict(o.breakdown), o.success)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"[{m.role}] {m.content}" for m in self._transcript)

    # --- snapshots ---------------------------------------------------------------------------------
    def snapshot(self) -> EnvSnapshot:
        """Everything an episode changed, so `restore` can branch from here."""
        memo = self._shared_memo()
        data = {
            "state": copy.deepcopy(self.state, memo),
            "turn": self.turn,
            "task_id": self.task_id,
            "errors": Counter(self.errors),
            "done": self._done,
            "transcript": list(self._transcript),
            "rng": copy.deepcopy(self._np_random),
            "prompt": self._prompt,
            "outcome": self._outcome,
        }
        return EnvSnapshot(data)

    def restore(self, snap: EnvSnapshot) -> None:
        if not isinstance(snap, EnvSnapshot):
            raise TypeError(f"restore() takes an EnvSnapshot from snapshot(), got {type(snap).__name__}")
        d = snap.data
        memo = self._shared_memo()
        self.state = copy.deepcopy(d["state"], memo)  # copy again: one snapshot can seed many branches
        self.turn = d["turn"]
        self.task_id = d["task_id"]
        self.errors = Counter(d["errors"])
        self._done = d["done"]
        self._transcript = list(d["transcript"])
        self._np_random = copy.deepcopy(d["rng"])
        self._prompt = d["prompt"]
        self._outcome = d["outcome"]
        self._started = True

    @property
    def transcript(self) -> list[Message]:
        return list(self._transcript)

    @property
    def done(self) -> bool:
        return self._done

    # --- internals -----------------------------------------------------------------------------------
    def _reset_bookkeeping(self) -> None:
        self.task_id = ""
        self.turn = 0
        self.errors = Counter()
        self._done = False
        self._transcript = []
        self._prompt = None
        self._outcome = None

    def _check_running(self, what: str) -> None:
        if not self._started:
            raise RuntimeError(f"{what} called before reset(); call reset() first")
        if self._done:
            raise RuntimeError(f"{what} called after the episode ended; call reset() first")

    def _end(self, terminated: bool, truncated: bool) -> Outcome:
        self._done = True
        errors = dict(self.errors)
        result = self.compute_reward()
        self._outcome = Outcome(
            float(result.reward), dict(result.breakdown), result.success, errors, terminated, truncated
        )
        return self._outcome

    def _shared_memo(self) -> dict[int, Any]:
        return {id(getattr(self, name)): getattr(self, name) for name in self.shared_state if hasattr(self, name)}

    def _obs(self, msgs: list[Message]) -> tuple[dict[str, str], ...]:
        return tuple({"role": m.role, "content": m.content} for m in msgs)

    def _error(self, kind: str, text: str, role: str | None = None) -> tuple[str, EnvReply]:
        return kind, EnvReply([Message(role or self.error_role, f"Error: {text}")])

    def _run_action(self, action: Any) -> tuple[str | None, EnvReply]:
        if not isinstance(action, str):
            return self._error("invalid_action", f"the action must be text (str), got {type(action).__name__}")
        if not action.strip():
            return self._error("empty_action", "your message was empty; reply with text or a tool call")
        if len(action) > self.max_action_chars:
            return self._error(
                "action_too_long",
                f"your message has {len(action)} characters; at most {self.max_action_chars} are allowed",
            )
        if not self.toolset:
            return None, self.respond(action)
        try:
            calls = parse_tool_calls(action)
        except ToolCallParseError as exc:
            return self._error("malformed_call", str(exc), "tool")
        if not calls:
            return None, self.respond(action)
        if len(calls) > self.max_tool_calls_per_turn:
            return self._error(
                "too_many_calls",
                f"{len(calls)} tool calls in one message; at most {self.max_tool_calls_per_turn} per turn",
                "tool",
            )
        messages: list[Message] = []
        error = None
        terminated = False
        for call in calls:
            result = self.toolset.dispatch(call, **self.tool_kwargs())
            content = result.content
            if len(content) > self.max_observation_chars:
                content = content[: self.max_observation_chars] + f"... [truncated: {len(result.content)} characters]"
            messages.append(Message("tool", content))
            error = error or result.error_kind
            extra = self.on_tool_result(call, result)
            if extra is not None:
                messages.extend(extra.messages)
                terminated = terminated or extra.terminated
        return error, EnvReply(messages, terminated)
