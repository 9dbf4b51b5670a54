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
(parity.py, README's FlightBooking table). `hints` adds, after a benchmark error string, what was wrong and what
is allowed: on for the env's own tasks, off (byte parity) for the benchmarks' tasks.

The benchmarks' own tasks: `tasks="path/to/tasks_test.py"` (τ-bench) or `"path/to/tasks.json"` (τ²-bench, with
split_tasks.json beside it; `split="train"|"test"|"base"`) on `world=` the benchmark's world (τ-bench's data
directory or τ²'s db.json; found beside the task file when left out). Their reward is the benchmark's (database
equal to the gold replay's, required outputs said, reward.compute_published), plus the policy check
(`policy="score"`, or `"report"` to only report violations; `benchmark_errors="exempt"|"score"` for the tasks whose
gold breaks the written policy, published.BENCHMARK_ERRORS).

State: everything an episode changes lives in `self.state` (an EpisodeState: the copy-on-write
database, the user simulator, the agent's messages), so snapshot() / restore() branch it; the world and
the task are read-only and shared, never copied (World.__deepcopy__ / Task.__deepcopy__ return self).
"""

from __future__ import annotations

import json
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
from .published import (
    BENCHMARK_ERROR_MODES,
    PublishedTask,
    benchmark_policy,
    default_world_for,
    exempt_rules,
    load_published_tasks,
)
from .tasks import Task, read_tasks, shipped_tasks
from .taubench_loader import cached_world, default_world
from .tools import TOOLS, WRITE_TOOLS
from .users import STOP, LLMUser, RuleUser
from .users_published import InstructionUser, make_published_user, stop_tokens
from .world import Database, World

USER_KINDS = ("rule", "llm")
POLICY_MODES = ("score", "report")
PUBLISHED_WITHOUT = {"tau_bench_v1": "get_flight_status", "tau2": "think"}  # the one tool each benchmark lacks
OWN_SPLITS = ("train", "test", "all")


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
    `simulator`; `user=<a ChatModel>`, the spelling before 0.1, is refused naming its replacement."""
    if not isinstance(user, str) and callable(getattr(user, "complete", None)):
        raise ValueError(
            "FlightBookingEnv(user=<chat model>) was removed in 0.1; pass user='llm', simulator=<chat model>"
        )
    if user not in USER_KINDS:
        raise ValueError(f"user must be 'rule' or 'llm' (played by simulator=<chat model>), got {user!r}")
    if simulator is not None and not callable(getattr(simulator, "complete", None)):
        raise ValueError(
            f"simulator must be a chat model (an object with complete(messages, ...)), got {type(simulator).__name__}"
        )
    if user == "llm" and simulator is None:
        raise ValueError(
            "user='llm' needs simulator=<chat model> to play the user (in a config: env.simulator.model=NAME)"
        )
    if user == "rule" and simulator is not None:
        raise ValueError(
            "simulator is given but user='rule' does not use it; set user='llm' for the model to play the user "
            "(in a config: env.kwargs.user=llm)"
        )
    return simulator


def _splits(t: Task | PublishedTask) -> tuple[str, ...]:
    return t.splits if isinstance(t, PublishedTask) else (t.split,)


@dataclass
class EpisodeState:
    task: Task | PublishedTask  # shared (immutable)
    db: Database  # the episode's copy-on-write database: tools act on it
    user: RuleUser | LLMUser | InstructionUser
    rules: Rules  # the parity the tools follow (read by the tools through `state.rules`)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # the successful write calls, in order
    violations: list[Violation] = field(default_factory=list)  # policy rules broken, once the episode is scored
    agent_texts: list[str] = field(default_factory=list)  # the agent's messages to the user (required outputs)
    ended_by: str | None = None  # "user_stop" | "transfer" once the episode has ended that way


class FlightBookingEnv(MultiTurnEnv):
    """split: "train", "test" or "all" (None: "train"; for a published task file, every task; τ² also has
    "base"); user: "rule" (deterministic, offline) or "llm" (the user played by `simulator`, a ChatModel: any
    object with complete(messages, ...)); world: None (the shipped world and tasks), a directory in τ-bench's
    airline layout (its tasks.jsonl if it has one, else tasks generated from it), τ²-bench's db.json, or a World;
    max_turns: agent messages before truncation; user_max_replies: the rule-based user's patience; tasks:
    explicit tasks for `world` (a World), or a published task file (module docstring); parity: "tau2" or
    "tau_bench_v1" (None: "tau_bench_v1" for τ-bench's task files, else "tau2"); seats: None (the parity's),
    "none", "book" or "full" (seat accounting); hints: explanations after error strings (None: on for the env's
    own tasks, off for published ones); policy: "score" or "report"; benchmark_errors: "exempt" or "score"."""

    tools = TOOLS
    max_turns = 30
    max_observation_chars = 50_000  # one-stop searches on busy routes are long JSON; truncating breaks it

    def __init__(self, split: str | None = None, user: str = "rule", world: str | Path | World | None = None,
                 max_turns: int = 30, render_mode: str | None = None, user_max_replies: int = 15,
                 tasks: list[Task] | str | Path | None = None, *, simulator: Any = None, parity: str | None = None,
                 seats: str | None = None, hints: bool | None = None, policy: str = "score", benchmark_errors: str = "exempt"):  # fmt: skip
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        # validate every argument before loading anything
        published = isinstance(tasks, (str, Path))
        if policy not in POLICY_MODES:
            raise ValueError(f"policy must be one of {', '.join(map(repr, POLICY_MODES))}, got {policy!r}")
        if benchmark_errors not in BENCHMARK_ERROR_MODES:
            raise ValueError(
                f"benchmark_errors must be one of {', '.join(map(repr, BENCHMARK_ERROR_MODES))}, got {benchmark_errors!r}"
            )
        if hints is not None and not isinstance(hints, bool):
            raise ValueError(f"hints must be None, True or False, got {hints!r}")
        if split is not None and not isinstance(split, str):
            raise ValueError(f"split must be a text such as 'train', 'test' or 'all', got {type(split).__name__}")
        if not published and split not in (None, *OWN_SPLITS):
            raise ValueError(
                f"split must be 'train', 'test' or 'all', got {split!r} (τ²'s 'base' split needs tasks=<its tasks.json>)"
            )
        Rules(parity or "tau2", seats)  # a bad parity or seats value fails here, naming the allowed values
        if tasks is not None and not published and not isinstance(tasks, list):
            raise ValueError(
                f"tasks must be a list of Task, or a published task file (τ-bench's tasks_test.py, τ²'s tasks.json), "
                f"got {type(tasks).__name__}"
            )
        self.simulator = _user_simulator(user, simulator)
        self.user_max_replies = user_max_replies
        self.policy, self.benchmark_errors = policy, benchmark_errors
        if published:
            tasks_file = Path(tasks)  # type: ignore[arg-type]
            loaded = load_published_tasks(tasks_file)  # TaskFileError (a ValueError) names the file and the task
            if parity is None:
                parity = "tau_bench_v1" if loaded and loaded[0].source == "tau_bench_v1" else "tau2"
            if world is None:
                world = default_world_for(tasks_file)
                if world is None:
                    raise ValueError(
                        f"tasks={tasks_file} needs world=<the benchmark's world>: τ-bench's data directory "
                        "(flights.json, users.json, reservations.json) or τ²'s db.json; none found beside it"
                    )
            self.world = world if isinstance(world, World) else cached_world(world)
            tasks = loaded
        self.rules = Rules(
            parity or "tau2", seats, hints=(not published) if hints is None else hints
        )  # ValueError names the allowed values
        if published:  # the benchmark's own tool set: τ-bench has no get_flight_status, τ² no think
            missing = PUBLISHED_WITHOUT[tasks[0].source if tasks else "tau2"]  # type: ignore[index,union-attr]
            self.tools = tuple(t for t in TOOLS if t.name != missing)
        self.toolset = _CachedToolSet(self.tools)
        if published:
            pass  # world and tasks loaded above
        elif tasks is not None:  # explicit tasks (the generator's self-check, tests): the world must be given too
            if world is None or not isinstance(world, World):
                raise ValueError("tasks=... needs world=<the World they were made for>")
            self.world = world
        else:
            self.world, tasks = self._load(world)
        self.published = published
        split = split or ("all" if published else "train")
        self.split = split
        self._tasks = [t for t in tasks if split == "all" or split in _splits(t)]
        if not self._tasks:
            have = sorted({s for t in tasks for s in _splits(t)})
            raise ValueError(
                f"no FlightBooking tasks in split {split!r} ({len(tasks)} tasks in all splits; splits: {', '.join(have + ['all'])})"
            )
        self._by_id = {t.id: t for t in self._tasks}
        # the benchmark's own written policy where it lies beside its task file (τ-bench's wiki.md, τ²'s policy.md;
        # read, never shipped), else the env's (the same rules in τ-bench's words, with the clock)
        own = benchmark_policy(Path(tasks_file)) if published else None
        self.system_prompt = own if own is not None else policy_text(self.world.clock)
        self.state: EpisodeState | None = None

    @property
    def skipped_tasks(self) -> list[tuple[str, str]]:
        """Generated tasks the gold agent could not solve on this world, skipped: (task id, reason)."""
        return list(self.world.memo.get("skipped_tasks", []))

    @staticmethod
    def _load(world: str | Path | World | None) -> tuple[World, list[Task]]:
        if world is None:
            return default_world(), shipped_tasks("all")
        from .tasks.generator import generate_tasks  # only custom worlds need the generator

        if isinstance(world, World):
            return world, generate_tasks(world, seed=0)
        path = Path(world)
        w = cached_world(path)
        if path.is_dir() and (path / "tasks.jsonl").is_file():
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
        if isinstance(task, PublishedTask):
            seed = int(self.np_random.integers(2**31)) if self.simulator is not None else 0
            user: RuleUser | LLMUser | InstructionUser = make_published_user(
                task, self.simulator, seed=seed, max_replies=self.user_max_replies
            )
        elif self.simulator is None:
            user = RuleUser(task, max_replies=self.user_max_replies)
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
        stops = stop_tokens(s.task) if isinstance(s.task, PublishedTask) else (STOP,)
        if any(t in reply for t in stops):
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
        if isinstance(s.task, PublishedTask):
            exempt = exempt_rules(s.task, self.benchmark_errors)
            charged = [v for v in s.violations if v.rule not in exempt] if self.policy == "score" else []
            return reward.compute_published(s.task, s.db, s.agent_texts, s.ended_by, world=self.world, rules=self.rules,
                                            violations=s.violations, charged=charged)  # fmt: skip
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
        if isinstance(self.state.task, PublishedTask):
            info["source"] = self.state.task.source
            info["nl_assertions"] = list(
                self.state.task.nl_assertions
            )  # judged by an LLM in τ²; not scored here (published.py)
        return obs, info
