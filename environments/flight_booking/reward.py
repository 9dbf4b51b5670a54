"""The reward, τ-bench's way, with one fix.

  * database: replay the task's gold actions on a fresh copy of the world and compare a canonical hash of
    the whole final database with the agent's (world.py, `Database.hash`);
  * outputs: every required output must appear in the agent's messages to the user (case-insensitive,
    commas and "$" ignored, as τ-bench ignores commas);
  * ending: 0 unless the episode ended with the user's ###STOP### or a transfer_to_human_agents call
    (truncation at max_turns scores 0);
  * transfer (the fix): the agent must transfer exactly when the gold actions do. In τ-bench a transfer
    on a task whose gold is "refuse" leaves the database untouched and scores 1, which rewards
    transferring every hard request; here it scores 0;
  * policy: no write call of the episode broke a rule of the written policy (policy_rules.py). The tools
    perform what the policy forbids, as τ-bench's do; this check names the rule.
The reward is 1 if all of these hold, else 0; `breakdown` has one 0/1 entry per check (outputs: the
fraction said) so a failure says which part failed, plus "policy_violations" (how many) and one
"policy/<rule>" entry (1.0) per rule broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentrl.core.env import RewardResult

from .parity import DEFAULT_RULES, Rules
from .policy_rules import Violation
from .tasks import Task
from .tools import TOOLS_BY_NAME
from .users import normalize
from .world import Database, World


@dataclass
class ReplayState:
    """What the tools need (`state.db`, `state.rules`) to run outside an episode."""

    db: Database
    rules: Rules = DEFAULT_RULES


def replay(world: World, task: Task, rules: Rules = DEFAULT_RULES) -> Database:
    """Run the gold actions on a fresh database. A failing gold action is a bug in the task or the world,
    and raises (it is never scored as 0)."""
    state = ReplayState(Database(world), rules)
    for i, action in enumerate(task.gold_actions):
        result = TOOLS_BY_NAME[action.name].invoke(action.arguments, state=state)
        if not result.ok:
            raise RuntimeError(
                f"task {task.id}: gold action {i} ({action.name}) failed on world {world.name!r}: {result.content}"
            )
    return state.db


def gold_hash(world: World, task: Task, rules: Rules = DEFAULT_RULES) -> str:
    """Cached per (world, task, rules): the gold replay is deterministic."""
    key = ("gold_hash", task.id, id(task), rules)
    hit = world.memo.get(key)
    if hit is None or hit[0] is not task:
        hit = world.memo[key] = (task, replay(world, task, rules).hash())  # the task is kept, so its id() is not reused
    return hit[1]


def outputs_said(outputs: list[str], agent_texts: list[str]) -> list[bool]:
    said = normalize(" ".join(agent_texts))
    return [normalize(o) in said for o in outputs]


def compute(
    task: Task,
    db: Database,
    agent_texts: list[str],
    ended_by: str | None,
    *,
    expected_hash: str,
    violations: list[Violation] | None = None,
) -> RewardResult:
    violations = violations or []
    policy = 0.0 if violations else 1.0
    ended = 1.0 if ended_by in ("user_stop", "transfer") else 0.0
    transfer_ok = 1.0 if (ended_by == "transfer") == task.expects_transfer else 0.0
    database = 1.0 if db.hash() == expected_hash else 0.0
    said = outputs_said(task.outputs, agent_texts)
    outputs = sum(said) / len(said) if said else 1.0
    reward = 1.0 if ended and transfer_ok and database and outputs == 1.0 and policy else 0.0
    breakdown: dict[str, Any] = {"ended": ended, "transfer": transfer_ok, "database": database, "outputs": outputs, "policy": policy,
                                 "policy_violations": float(len(violations))}  # fmt: skip
    breakdown.update({f"policy/{v.rule}": 1.0 for v in violations})
    breakdown["reward"] = reward
    return RewardResult(reward, breakdown, success=reward == 1.0)


def compute_published(
    task: Any,
    db: Database,
    agent_texts: list[str],
    ended_by: str | None,
    *,
    world: World,
    rules: Rules,
    violations: list[Violation],
    charged: list[Violation],
) -> RewardResult:
    """The benchmark's reward for one of its own tasks (published.py): 1 if the episode ended (the user's stop
    token or a transfer; truncation scores 0, as a τ-bench run that never ends), the final database equals the
    gold replay's, every required output is in one agent message (lower-cased, commas removed), and no policy
    violation is `charged` (env policy="score", benchmark-error tasks exempt); else 0. Unlike the env's own
    tasks, a transfer is not required to match the gold's (the benchmarks do not check it)."""
    from .published import outputs_found, published_gold_hash

    ended = 1.0 if ended_by in ("user_stop", "transfer") else 0.0
    database = 1.0 if db.hash() == published_gold_hash(world, task, rules) else 0.0
    found = outputs_found(task.outputs, agent_texts)
    outputs = sum(found) / len(found) if found else 1.0
    policy = 0.0 if charged else 1.0
    reward = 1.0 if ended and database and outputs == 1.0 and policy else 0.0
    breakdown: dict[str, Any] = {"ended": ended, "database": database, "outputs": outputs, "policy": policy,
                                 "policy_violations": float(len(violations)), "policy_charged": float(len(charged)),
                                 "nl_assertions_unscored": float(len(task.nl_assertions)),
                                 "unscored_basis": float(len(task.unscored_basis))}  # fmt: skip
    breakdown.update({f"policy/{v.rule}": 1.0 for v in violations})
    breakdown["reward"] = reward
    return RewardResult(reward, breakdown, success=reward == 1.0)
