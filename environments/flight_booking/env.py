"""`FlightBookingEnv` (agentrl/FlightBooking-v0): an airline customer-service agent helps a simulated user
book, change and cancel flights under a written policy — τ-bench's airline domain, made deterministic
and offline, with a train / test split.

Episode: the first observation is the policy (system prompt, with the tool schemas and a fixed clock) and
the user's opening message. Each agent message is either one tool call — its result comes back as a
"tool" message, with no user turn — or text to the user, answered by the simulated user. The episode
ends (terminated) when the user says ###STOP### or after a transfer_to_human_agents call, and is truncated
at `max_turns`. The one reward, at the end, is reward.py's (database hash + required outputs + ending + no
policy rule broken, policy_rules.py); info["policy_violations"] names the rules broken.

Parity: `parity="tau2"` (default) or `"tau_bench_v1"` picks which τ-bench the tools' outputs, error strings,
seat accounting and cabin write follow; `seats=None|"none"|"book"|"full"` overrides the seat accounting
(parity.py, README's FlightBooking table).

State: everything an episode changes lives in `self.state` (an EpisodeState: the copy-on-write
database, the user simulator, the agent's messages), so snapshot() / restore() branch it; the world and
the task are read-only and shared, never copied (World.__deepcopy__ / Task.__deepcopy__ return self).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.tools import ToolCall, ToolResult, ToolSet
from agentrl.core.types import Message

from . import reward
from .parity import Rules
from .policy import policy_text
from .policy_rules import Violation, check_episode
from .tasks import Task, read_tasks, shipped_tasks
from .taubench_loader import cached_world, default_world
from .tools import TOOLS, WRITE_TOOLS
from .users import STOP, LLMUser, RuleUser
from .world import Database, World

USER_KINDS = ("rule", "llm")


class _CachedToolSet(ToolSet):
    """The tool block and schemas never change, but the base reset() builds the block once and the schemas
    twice per episode (~0.6 ms, more than a short episode's steps): build them once per env."""

    def __init__(self, tools: tuple) -> None:
        super().__init__(tools)
        self._block = super().prompt_block()
        self._schemas_json = json.dumps(super().schemas())

    def prompt_block(self) -> str:
        return self._block

    def schemas(self) -> list[dict[str, Any]]:
        return json.loads(self._schemas_json)  # fresh copies, as ToolSet.schemas() promises


def _user_simulator(user: Any, simulator: Any) -> Any:
    """The chat model that plays the user (None: the rule-based user), from the constructor's `user` and
    `simulator`; `user=<a ChatModel>` is the deprecated spelling of `user="llm", simulator=<it>`."""
    if not isinstance(user, str) and callable(getattr(user, "complete", None)):
        warnings.warn("FlightBookingEnv(user=<chat model>) is deprecated; pass user='llm', simulator=<chat model>",
                      DeprecationWarning, stacklevel=3)
        if simulator is not None:
            raise ValueError("user=<chat model> and simulator=... both give the user's model; pass user='llm', simulator=...")
        user, simulator = "llm", user
    if user not in USER_KINDS:
        raise ValueError(f"user must be 'rule' or 'llm' (played by simulator=<chat model>), got {user!r}")
    if simulator is not None and not callable(getattr(simulator, "complete", None)):
        raise ValueError(f"simulator must be a chat model (an object with complete(messages, ...)), got {type(simulator).__name__}")
    if user == "llm" and simulator is None:
        raise ValueError("user='llm' needs simulator=<chat model> to play the user (in a config: env.simulator.model=NAME)")
    if user == "rule" and simulator is not None:
        raise ValueError("simulator is given but user='rule' does not use it; set user='llm' for the model to play the user "
                         "(in a config: env.kwargs.user=llm)")
    return simulator


@dataclass
class EpisodeState:
    task: Task  # shared (immutable)
    db: Database  # the episode's copy-on-write database: tools act on it
    user: RuleUser | LLMUser
    rules: Rules  # the parity the tools follow (read by the tools through `state.rules`)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # the successful write calls, in order
    violations: list[Violation] = field(default_factory=list)  # policy rules broken, once the episode is scored
    agent_texts: list[str] = field(default_factory=list)  # the agent's messages to the user (required outputs)
    ended_by: str | None = None  # "user_stop" | "transfer" once the episode has ended that way


class FlightBookingEnv(MultiTurnEnv):
    """split: "train", "test" or "all"; user: "rule" (deterministic, offline) or "llm" (the user played by
    `simulator`, a ChatModel: any object with complete(messages, ...)); world: None (the shipped world and
    tasks), a directory in τ-bench's airline layout (its tasks.jsonl if it has one, else tasks generated from
    it), or a World; max_turns: agent messages before truncation; user_max_replies: the rule-based user's
    patience; tasks: explicit tasks for `world` (a World); parity: "tau2" or "tau_bench_v1" (which τ-bench the
    tools follow); seats: None (the parity's), "none", "book" or "full" (seat accounting)."""

    tools = TOOLS
    max_turns = 30
    max_observation_chars = 50_000  # one-stop searches on busy routes are long JSON; truncating breaks it

    def __init__(self, split: str = "train", user: str = "rule", world: str | Path | World | None = None,
                 max_turns: int = 30, render_mode: str | None = None, user_max_replies: int = 15, tasks: list[Task] | None = None,
                 *, simulator: Any = None, parity: str = "tau2", seats: str | None = None):  # fmt: skip
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.rules = Rules(parity, seats)  # raises ValueError naming the allowed values
        self.toolset = _CachedToolSet(self.tools)
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.split = split
        self.simulator = _user_simulator(user, simulator)
        self.user_max_replies = user_max_replies
        if tasks is not None:  # explicit tasks (the generator's self-check, tests): the world must be given too
            if world is None or not isinstance(world, World):
                raise ValueError("tasks=... needs world=<the World they were made for>")
            self.world = world
        else:
            self.world, tasks = self._load(world)
        self._tasks = [t for t in tasks if split == "all" or t.split == split]
        if not self._tasks:
            raise ValueError(f"no FlightBooking tasks in split {split!r} ({len(tasks)} tasks in all splits)")
        self._by_id = {t.id: t for t in self._tasks}
        self.system_prompt = policy_text(self.world.clock)
        self.state: EpisodeState | None = None

    @staticmethod
    def _load(world: str | Path | World | None) -> tuple[World, list[Task]]:
        if world is None:
            return default_world(), shipped_tasks("all")
        from .taskgen import generate_tasks  # only custom worlds need the generator

        if isinstance(world, World):
            return world, generate_tasks(world, seed=0)
        path = Path(world)
        w = cached_world(path)
        if (path / "tasks.jsonl").is_file():
            return w, read_tasks(path / "tasks.jsonl")
        cached = w.memo.get("generated_tasks")
        if cached is None:
            cached = w.memo["generated_tasks"] = generate_tasks(w, seed=0)
        return w, cached

    # --- hooks ---------------------------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        return [t.id for t in self._tasks]

    @property
    def task(self) -> Task:
        if self.state is None:
            raise RuntimeError("no task yet: call reset() first")
        return self.state.task

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        ids = [t.id for t in self._tasks]
        task = self._by_id[self.choose_task_id(options, ids, self._by_id, what=f"tasks in split {self.split!r}")]
        self.task_id = task.id
        if self.simulator is None:
            user: RuleUser | LLMUser = RuleUser(task, max_replies=self.user_max_replies)
        else:
            user = LLMUser(task, self.simulator, seed=int(self.np_random.integers(2**31)))
        self.state = EpisodeState(task=task, db=Database(self.world), user=user, rules=self.rules)
        opening = user.opening()
        if user.last_error:  # reset() has no EnvReply: count it here; step()'s info["errors"] reports it
            self.errors[user.last_error] += 1
        return self.system_prompt, opening

    def respond(self, text: str) -> EnvReply:
        s = self.state
        s.agent_texts.append(text)
        reply = s.user.reply(text)
        if STOP in reply:
            s.ended_by = "user_stop"
        return EnvReply([Message("user", reply)], terminated=s.ended_by is not None, error=s.user.last_error)

    def on_tool_result(self, call: ToolCall, result: ToolResult) -> EnvReply | None:
        if call.name in WRITE_TOOLS and result.ok:
            self.state.writes.append((call.name, json.loads(json.dumps(call.arguments))))  # a copy, as JSON holds it
        if call.name == "transfer_to_human_agents" and result.ok:
            self.state.ended_by = "transfer"
            return EnvReply(terminated=True)
        return None

    def compute_reward(self) -> RewardResult:
        s = self.state
        s.violations = check_episode(self.world, s.writes, self.rules)
        return reward.compute(s.task, s.db, s.agent_texts, s.ended_by, expected_hash=reward.gold_hash(self.world, s.task, self.rules),
                              violations=s.violations)  # fmt: skip

    def step(self, action: Any):
        obs, r, terminated, truncated, info = super().step(action)
        if "reward_breakdown" in info:
            info["policy_violations"] = [f"{v.rule}: {v.detail}" for v in self.state.violations]
        return obs, r, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        info["family"] = self.state.task.family
        return obs, info
