"""`VerifiersEnv`: a classic verifiers environment (`vf.MultiTurnEnv` and its subclasses) as an agentrl `MultiTurnEnv`.

    env.id: verifiers:wordle                  # vf.load_environment("wordle", **env.kwargs.env_args)
    VerifiersEnv(my_vf_env, split="eval")     # from Python, with an environment object

Which verifiers. The classic (v0) environment API: `verifiers` 0.2.x at the top level, 0.3.x as `verifiers.legacy`
(also reachable as `import verifiers as vf`). verifiers 0.4 ships only the v1 stack (tasksets run by harness
programs), which this adapter does not drive (see DESIGN.md, "verifiers in").

Tasks. The rows of the env's dataset (`split="train"`, `get_dataset()`) or eval dataset (`split="eval"`,
`get_eval_dataset()`), as verifiers formats them (its `prompt` column built from `question` with the system prompt and
few-shot examples; `answer`, `info`, `example_id` kept). Task ids are the row indices as strings ("0", "1", ...).

The loop. verifiers' `MultiTurnEnv.rollout` is one coroutine that calls the model; agentrl's env is stepped by the
policy. So the adapter runs the same steps as `rollout` one agent turn at a time, with the env's own methods:
`init_state`, `setup_state`, `is_completed` (every `@vf.stop` condition), `get_prompt_messages` (which calls
`env_response`), `get_model_response` (through a private client that answers with the agent's text) and
`add_model_response`; at the end `cleanup` (which renders `state["completion"]`) and the rubric's `score_rollout`.
Its coroutines run on one private event loop in a daemon thread, so they work from any caller, async or not.

Observation. The first observation is the row's prompt: its system message and its last user message (agentrl's
opening is one system and one user message; earlier messages, e.g. few-shot examples, are folded into the opening as
text with `prompt_messages="fold"`, or refused with `"strict"`). After each agent turn the observation is the
messages `env_response` added (a `final_env_response` included).

Tools. A row with tool definitions (`ToolEnv`, `StatefulToolEnv`, `info["tool_defs"]`) shows them as JSON schemas
(`prompt().tools`, for a chat template's `tools=`, else a text block in the system prompt). verifiers expects the
model's tool calls as structured OpenAI `tool_calls`, which a serving engine's parser extracts from the text; here
the agent's `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks (Hermes format, `agentrl.core.tools`,
what vLLM's `hermes` parser reads) become those `tool_calls`, and the text around them the message content. Text
whose tags do not parse stays plain text (as with vLLM), and counts as the error kind `malformed_call`.

Reward. The rubric's weighted sum (`state["reward"]`) is the terminal reward; each reward function's and metric's
score (`state["metrics"]`) is in the outcome's breakdown; success is reward >= the env's `pass_threshold`. An episode
that agentrl truncates (its `max_turns`, a rollout out of context) is scored as verifiers scores a truncated rollout.

Failures. A verifiers error that ends the rollout (`state["error"]`: a tool that raised one of `stop_errors`, an
`InfraError`, ...), any exception from the env's methods, a reward function that raised (verifiers logs it and
scores 0; with `strict_rubric=True`, the default, it is an error here), or a rubric that raised: the step raises
`VerifiersEnvError` and the rollout counts the episode as env_error.

Snapshots. `snapshot()` deep-copies the verifiers state (the client is shared, the token-usage tracker rebuilt),
so TRePO's branches work wherever the env keeps its episode state in `state`. An env that keeps per-rollout state
elsewhere (on `self`, in a sandbox or a process) cannot be branched faithfully.

Not adaptable: envs that are not `vf.MultiTurnEnv` subclasses (their own `rollout`, `EnvGroup` routing aside),
rubrics with group reward functions (they score a whole group at once; an agentrl episode ends alone), and
`get_prompt_messages` overrides that rewrite earlier messages (agentrl's token stream only appends). These raise
`ValueError` (at construction) or `VerifiersEnvError` (when the history is rewritten).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import logging
import re
import signal
import threading
import time
import uuid
from typing import Any

from agentrl.core.env import EnvPrompt, EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.tools import TOOL_CALL_FORMAT, ToolCallParseError, parse_tool_calls
from agentrl.core.types import Message

PROMPT_MODES = ("fold", "strict")
SPLITS = ("train", "eval")
_TOOL_BLOCK_RE = re.compile(r"<tool_call>.*?</tool_call>", re.DOTALL)


class VerifiersEnvError(RuntimeError):
    """The verifiers env or its rubric failed: the episode ends as env_error."""


def import_verifiers():
    """The classic verifiers API (`verifiers.legacy` in 0.3.x, the top level before), or an ImportError that says
    what to install."""
    try:
        import verifiers
    except ImportError as exc:
        raise ImportError(
            "the verifiers adapter needs the `verifiers` package: pip install 'agentrl[verifiers]'"
        ) from exc
    try:
        import verifiers.legacy as vf  # 0.3.x
    except ImportError:
        vf = verifiers
    if not hasattr(vf, "MultiTurnEnv"):
        raise ImportError(
            f"verifiers {getattr(verifiers, '__version__', '?')} has no classic environment API (vf.MultiTurnEnv); "
            "the adapter drives verifiers 0.2.x-0.3.x environments (0.4 ships only the v1 taskset/harness stack)"
        )
    return vf


# --- one private event loop for every adapter ----------------------------------------------------------------------
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _run(coro):
    """Run a coroutine on the adapter's event loop (a daemon thread) and return its result, from any thread."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="agentrl-verifiers-loop", daemon=True).start()
        loop = _loop
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


# --- loading environments by name ------------------------------------------------------------------------------------
_loaded: dict[str, Any] = {}


def load_vf_env(name: str, env_args: dict[str, Any] | None = None):
    """`vf.load_environment(name, **env_args)`, once per (name, args) in a process: verifiers envs keep per-rollout
    state in the rollout's `state`, so one object serves every episode (as in verifiers' own concurrent rollouts).
    verifiers installs SIGINT/SIGTERM handlers when an env is built; the ones in place before are put back."""
    vf = import_verifiers()
    key = json.dumps([name, env_args or {}], sort_keys=True, default=repr)
    if key not in _loaded:
        main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            _loaded[key] = vf.load_environment(name, **(env_args or {}))
        finally:
            for s, handler in saved.items():
                if handler is not None:
                    signal.signal(s, handler)
    return _loaded[key]


# --- message conversion ------------------------------------------------------------------------------------------------
def _dump(msg: Any) -> dict[str, Any]:
    if isinstance(msg, dict):
        return dict(msg)
    if hasattr(msg, "model_dump"):
        return msg.model_dump(exclude_none=True)
    raise VerifiersEnvError(f"not a message: {type(msg).__name__}")


def _text(content: Any) -> str:
    """A message's content as text: a string, or a list of text parts. Other parts (images, audio) are refused: the
    kit's envs are text envs."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            d = _dump(part)
            if d.get("type") != "text":
                raise VerifiersEnvError(f"a message part of type {d.get('type')!r}: only text parts can be adapted")
            out.append(str(d.get("text", "")))
        return "".join(out)
    raise VerifiersEnvError(f"message content of type {type(content).__name__}")


def _as_message(msg: Any) -> Message:
    d = _dump(msg)
    role = str(d.get("role"))
    text = _text(d.get("content"))
    if role == "assistant" and d.get("tool_calls"):  # an env that speaks as the assistant, with calls: keep them
        calls = [{"name": c["name"], "arguments": c.get("arguments")} for c in d["tool_calls"]]
        text = "\n".join([text] * bool(text) + [f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls])
    return Message(role, text)


def _tool_schema(tool: Any) -> dict[str, Any]:
    d = _dump(tool)
    fn = {"name": d["name"], "description": d.get("description", ""), "parameters": d.get("parameters", {})}
    return {"type": "function", "function": fn}


def _copy_state(state: Any, shared: dict[int, Any]) -> Any:
    """A deep copy of a verifiers rollout state. Its token-usage tracker holds a read-only mapping view (which does
    not deep-copy): it is rebuilt with the same totals."""
    tracker = state.get("usage_tracker") if isinstance(state, dict) else None
    if tracker is None or not hasattr(tracker, "_usage_totals"):
        return copy.deepcopy(state, dict(shared))
    memo = dict(shared)
    memo[id(tracker)] = tracker  # taken over below
    usage = state.get("usage")
    if usage is not None:
        memo[id(usage)] = usage
    new = copy.deepcopy(state, memo)
    fresh = type(tracker)()
    fresh._usage_seen = tracker._usage_seen
    fresh._usage_totals.update(tracker._usage_totals)
    dict.__setitem__(new, "usage_tracker", fresh)
    if usage is not None:
        dict.__setitem__(new, "usage", fresh.usage)
    return new


class _ErrorLogs(logging.Handler):
    """Collects the error records verifiers logs while a rubric scores (a reward function that raised)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _make_client_class(vf):
    """A verifiers `Client` that answers the model call with the agent's text (set in `pending` before the call)."""
    types = importlib.import_module(f"{vf.__name__}.types")
    Response, ResponseMessage, ToolCall = types.Response, types.ResponseMessage, types.ToolCall

    class AgentTextClient(vf.Client):
        def __init__(self):
            super().__init__(None)
            self.pending: str | None = None
            self.parse_errors = 0

        def __deepcopy__(self, memo):  # shared by snapshots
            return self

        def setup_client(self, config):
            return None

        async def to_native_tool(self, tool):
            return tool

        async def to_native_prompt(self, messages):
            return messages, {}

        async def get_native_response(self, prompt, model, sampling_args, tools=None, **kwargs):
            raise NotImplementedError

        async def raise_from_native_response(self, response):
            return None

        async def from_native_response(self, response):
            return response

        async def close(self):
            return None

        async def get_response(self, prompt, model, sampling_args, tools=None, **kwargs):
            text = self.pending
            if text is None:
                raise VerifiersEnvError("the env asked the model for a reply outside an agent turn")
            self.pending = None
            content: str | None = text
            calls = None
            if tools:
                try:
                    parsed = parse_tool_calls(text)
                except ToolCallParseError:
                    parsed = []
                    self.parse_errors += 1
                if parsed:
                    calls = [
                        ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=c.name, arguments=json.dumps(c.arguments))
                        for c in parsed
                    ]
                    content = _TOOL_BLOCK_RE.sub("", text).strip() or None
            message = ResponseMessage(
                role="assistant",
                content=content,
                tool_calls=calls,
                finish_reason="tool_calls" if calls else "stop",
                is_truncated=False,
            )
            return Response(
                id=f"agentrl-{uuid.uuid4().hex[:16]}", created=int(time.time()), model=model, message=message
            )

    return AgentTextClient


class VerifiersEnv(MultiTurnEnv):
    """A classic verifiers environment as an agentrl env (see the module docstring)."""

    max_turns = 64  # verifiers' own max_turns (a stop condition) ends an episode first where it is set
    max_action_chars = 1_000_000  # verifiers passes any reply to the env; agentrl's length check stays out of the way

    def __init__(
        self,
        env: Any,
        env_args: dict[str, Any] | None = None,
        split: str = "train",
        num_examples: int = -1,
        model: str = "agentrl-policy",
        prompt_messages: str = "fold",
        strict_rubric: bool = True,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        vf = import_verifiers()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if prompt_messages not in PROMPT_MODES:
            raise ValueError(f"prompt_messages must be one of {', '.join(PROMPT_MODES)}, got {prompt_messages!r}")
        if isinstance(env, str):
            env = load_vf_env(env, env_args)
        elif env_args:
            raise ValueError("env_args is for an environment loaded by name; this one is already built")
        if not isinstance(env, vf.MultiTurnEnv):
            raise ValueError(
                f"{type(env).__name__} is not a verifiers MultiTurnEnv: the adapter steps MultiTurnEnv's rollout loop "
                "one agent turn at a time; an env with its own rollout() has no per-turn hook to drive"
            )
        if env.rubric.has_group_rewards:
            raise ValueError(
                f"{type(env).__name__}'s rubric has group reward functions: they score a whole group of rollouts at "
                "once, and an agentrl episode pays its reward when it ends, alone"
            )
        self.vf = vf
        self._normalize = importlib.import_module(f"{vf.__name__}.utils.message_utils").maybe_normalize_messages
        self.vf_env = env
        self.split = split
        self.model = model
        self.prompt_messages = prompt_messages
        self.strict_rubric = strict_rubric
        self.dataset = env.get_dataset() if split == "train" else env.get_eval_dataset()
        if num_examples > 0:
            self.dataset = self.dataset.select(range(min(num_examples, len(self.dataset))))
        if max_turns is None and getattr(env, "max_turns", -1) > 0:
            max_turns = int(env.max_turns) + 1  # verifiers' stop condition fires first
        self.client = _make_client_class(vf)()
        super().__init__(max_turns=max_turns, render_mode=render_mode)

    # --- the contract's hooks -------------------------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        return [str(i) for i in range(len(self.dataset))]

    def row(self, task_id: str) -> dict[str, Any]:
        """The dataset row behind a task id."""
        return dict(self.dataset[int(task_id)])

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        self.task_id = self.choose_task_id(options, self.task_ids(), what="dataset rows")
        env = self.vf_env
        state = _run(env.init_state(self.row(self.task_id), self.client, self.model, None))
        self.state = {"vf": state, "prompt": None, "ended": False, "tool_defs": list(state.get("tool_defs") or [])}
        state["timing"].generation.start = time.time()
        try:
            new = _run(env.setup_state(state))
            if new is not None:
                self.state["vf"] = state = new
        except self.vf.Error as exc:
            state["error"] = exc
        self._advance()
        if self.state["ended"]:
            self._raise_if_failed()
            raise VerifiersEnvError(f"the verifiers env ended the rollout before the first turn ({self._stop()})")
        return self._opening(self.state["prompt"])

    def respond(self, text: str) -> EnvReply:
        env, state = self.vf_env, self.state["vf"]
        prompt = self.state["prompt"]
        errors_before = self.client.parse_errors
        self.client.pending = text
        try:
            response = _run(env.get_model_response(state, prompt))
            _run(env.add_model_response(state, prompt, response))
        except self.vf.Error as exc:
            if isinstance(exc, self.vf.OverlongPromptError):
                state["prompt_too_long"] = True
                state["is_truncated"] = True
            else:
                state["error"] = exc
        finally:
            self.client.pending = None
        seen = [_dump(m) for m in prompt] + [_dump(m) for m in (state["trajectory"][-1]["completion"] or [])]
        self._advance()
        self._raise_if_failed()
        error = "malformed_call" if self.client.parse_errors > errors_before else None
        if self.state["ended"]:
            final = state.get("final_env_response")
            msgs = self._normalize(final, field_name="final_env_response") if final else []
            return EnvReply([_as_message(m) for m in msgs], terminated=True, error=error)
        new = self.state["prompt"]
        head = [_dump(m) for m in new[: len(seen)]]
        if head != seen:
            raise VerifiersEnvError(
                "the env's get_prompt_messages rewrote earlier messages: agentrl's episodes only append, so this env "
                "cannot be adapted faithfully"
            )
        return EnvReply([_as_message(m) for m in new[len(seen) :]], error=error)

    def compute_reward(self) -> RewardResult:
        env, state = self.vf_env, self.state["vf"]
        if not self.state["ended"]:  # agentrl truncated it (max_turns, out of context): verifiers' truncated rollout
            state["is_completed"] = True
            state["is_truncated"] = True
            state["stop_condition"] = "agentrl_truncated"
        logs = _ErrorLogs()
        root = logging.getLogger("verifiers")
        root.addHandler(logs)
        try:
            _run(env.cleanup(state))
            state["timing"].scoring.start = time.time()
            if env.score_rollouts:
                _run(env.rubric.score_rollout(state))
            else:
                _run(env.rubric.dummy_score_rollout(state))
            state["timing"].scoring.end = time.time()
            _run(env.rubric.cleanup(state))
        except Exception as exc:
            raise VerifiersEnvError(f"the verifiers rubric failed: {type(exc).__name__}: {exc}") from exc
        finally:
            root.removeHandler(logs)
        failed = [m for m in logs.messages if m.startswith("Error calling reward function")]
        if self.strict_rubric and failed:
            raise VerifiersEnvError(f"the verifiers rubric failed: {failed[0]}")
        reward = float(state["reward"] or 0.0)
        breakdown = {str(k): float(v) for k, v in (state.get("metrics") or {}).items()}
        return RewardResult(reward, breakdown, success=reward >= float(getattr(env, "pass_threshold", 0.5)))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        tool_defs = self.state["tool_defs"]
        if tool_defs:  # the row's tools: schemas for a chat template's tools=, else a block in the system prompt
            schemas = tuple(_tool_schema(t) for t in tool_defs)
            lines = [
                "You can call tools. To call one, reply with a block of this form:",
                TOOL_CALL_FORMAT,
                "Available tools (JSON schemas):",
            ] + [json.dumps(s["function"], separators=(",", ":")) for s in schemas]
            p = self._prompt
            self._prompt = EnvPrompt(p.system, p.opening, "\n".join(lines), schemas)
            msgs = self._prompt.messages()
            self._transcript[-2:] = msgs
            info.update(tools=[dict(s) for s in schemas], system_without_tools=p.system)
            obs = self._obs(msgs)
        return obs, info

    def _run_action(self, action: Any):
        if not isinstance(action, str):
            return self._error("invalid_action", f"the action must be text (str), got {type(action).__name__}")
        return None, self.respond(action)  # any text goes to verifiers, as a model's reply would

    # --- verifiers' rollout loop, one agent turn at a time ------------------------------------------------------------
    def _advance(self) -> None:
        """MultiTurnEnv.rollout's loop up to the next model call: stop conditions, then the next prompt (which runs
        env_response). Sets state["prompt"], or state["ended"]."""
        env, state = self.vf_env, self.state["vf"]
        norm = self._normalize
        timeout = getattr(env, "timeout_seconds", None)
        while True:
            if timeout and time.time() - state["timing"].generation.start > timeout:
                env.mark_timed_out(state)
            if _run(env.is_completed(state)):
                self.state["ended"] = True
                self.state["prompt"] = None
                return
            try:
                prompt = norm(_run(env.get_prompt_messages(state)), field_name="prompt_messages")
            except self.vf.Error as exc:
                if isinstance(exc, self.vf.OverlongPromptError):
                    state["prompt_too_long"] = True
                    state["is_truncated"] = True
                else:
                    state["error"] = exc
                continue
            if state.get("final_env_response") is not None:
                continue
            self.state["prompt"] = prompt
            return

    def _stop(self) -> str:
        return str(self.state["vf"].get("stop_condition"))

    def _raise_if_failed(self) -> None:
        err = self.state["vf"].get("error")
        if err is not None and self.state["ended"]:
            cause = err.__cause__ or err
            raise VerifiersEnvError(f"the verifiers env failed: {type(err).__name__}: {cause}") from err

    def _opening(self, prompt: list[Any]) -> tuple[str, str]:
        msgs = [_as_message(m) for m in prompt]
        system = ""
        if msgs and msgs[0].role == "system":
            system, msgs = msgs[0].content, msgs[1:]
        if not msgs or msgs[-1].role != "user":
            raise VerifiersEnvError("the row's prompt does not end with a user message")
        if len(msgs) > 1:
            if self.prompt_messages == "strict":
                raise VerifiersEnvError(
                    f"the row's prompt has {len(msgs) - 1} message(s) between the system prompt and the last user "
                    "message (few-shot examples?); agentrl's opening is one system and one user message: "
                    "prompt_messages='fold' puts them into the opening as text"
                )
            before = "\n\n".join(f"[{m.role}]\n{m.content}" for m in msgs[:-1])
            return system, f"{before}\n\n[user]\n{msgs[-1].content}"
        return system, msgs[-1].content

    # --- snapshots ---------------------------------------------------------------------------------------------------
    def _shared_memo(self) -> dict[int, Any]:
        memo = super()._shared_memo()
        memo[id(self.client)] = self.client
        return memo

    def snapshot(self):
        vf_state = self.state["vf"] if isinstance(self.state, dict) else None
        if vf_state is None:
            return super().snapshot()
        self.state["vf"] = None  # copied by _copy_state below
        try:
            snap = super().snapshot()
        finally:
            self.state["vf"] = vf_state
        snap.data["vf"] = _copy_state(vf_state, self._shared_memo())
        return snap

    def restore(self, snap) -> None:
        super().restore(snap)
        if "vf" in snap.data and isinstance(self.state, dict):
            self.state["vf"] = _copy_state(snap.data["vf"], self._shared_memo())
