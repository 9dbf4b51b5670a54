"""The `scripted:gold` agent: plays a task's gold actions the way the policy asks.

Per goal (tasks/): its read actions, then
  * "do": the gold proposal (which mentions what the user must hear to confirm), then — the user having
    said yes — the one write, then the gold reply ("done ..., anything else?");
  * "refuse" / "answer": the gold reply (the refusal, repeated for each push-back; or the answer, which
    holds the required outputs);
  * "transfer": transfer_to_human_agents, which ends the episode.
It first asks for the user id when the user knows it. The script is fixed per task; the agent's position in
it is the number of assistant messages in the conversation it is handed, so it is stateless and works
after snapshot() / restore().

On a benchmark's own task (published.py) it replays the answer key: every gold action in order (a transfer
last), then one message stating the required outputs and asking whether there is anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentrl.core.registry import ScriptedFactory
from agentrl.core.tools import format_tool_call

from .published import PublishedTask
from .tasks import Action, Task
from .tools import WRITE_TOOLS

if TYPE_CHECKING:
    from .env import FlightBookingEnv

ASK_USER_ID = "Hello! I can help with that. Could you please tell me your user id?"
CLOSING = "Is there anything else I can help you with?"


def call(action: Action) -> str:
    return format_tool_call(action.name, action.arguments)


def gold_script(task: Task, actions: list[Action] | None = None) -> list[str]:
    """The gold agent's messages in order. `actions` (same length as the task's gold actions) replaces the
    calls made, for tests that play a wrong write through the same conversation."""
    acts = list(task.gold_actions if actions is None else actions)
    if len(acts) != len(task.gold_actions):
        raise ValueError(
            f"actions must match the task's {len(task.gold_actions)} gold actions one to one, got {len(acts)}"
        )
    script: list[str] = [ASK_USER_ID] if "user_id" in task.user.known_info else []
    i = 0
    for goal in task.user.goals:
        mine = acts[i : i + goal.actions]
        i += goal.actions
        if goal.outcome == "do":
            k = next(j for j, a in enumerate(task.gold_actions[i - goal.actions : i]) if a.name in WRITE_TOOLS)
            script += [call(a) for a in mine[:k]]
            script.append(goal.gold_proposal)
            script += [call(a) for a in mine[k:]]
            script.append(goal.gold_reply)
        elif goal.outcome == "transfer":
            script += [call(a) for a in mine]
        else:
            script += [call(a) for a in mine]
            script += [goal.gold_reply] * (1 + (goal.insist if goal.outcome == "refuse" else 0))
    return script


def published_gold_script(task: PublishedTask) -> list[str]:
    acts = [a for a in task.gold_actions if a.name != "transfer_to_human_agents"]
    transfer = [a for a in task.gold_actions if a.name == "transfer_to_human_agents"][:1]
    said = f"Here is the result: {'; '.join(task.outputs)}." if task.outputs else ""
    script = [call(a) for a in acts]
    if transfer:
        return script + ([said] if said else []) + [call(transfer[0])]
    return script + [f"{said} {CLOSING}".strip()]


class GoldAgent:
    """`(conversation) -> next agent message`, bound to the env's current task (read at each call)."""

    def __init__(self, env: FlightBookingEnv, actions: list[Action] | None = None, skip: set[int] | None = None):
        self.env = env
        self.actions = actions
        self.skip = skip or set()  # script positions to leave out (tests: an agent that skips a write)
        self._script: tuple[str, list[str]] | None = None

    def script(self) -> list[str]:
        task = self.env.task
        if self._script is None or self._script[0] != task.id:
            full = published_gold_script(task) if isinstance(task, PublishedTask) else gold_script(task, self.actions)
            self._script = (task.id, [m for j, m in enumerate(full) if j not in self.skip])
        return self._script[1]

    def __call__(self, conversation: list[dict[str, str]]) -> str:
        script = self.script()
        n = sum(1 for m in conversation if m.get("role") == "assistant")
        return script[n] if n < len(script) else CLOSING


# found through the `agentrl.scripted` entry point named agentrl/FlightBooking-v0 (agentrl.core.registry)
AGENTS: dict[str, ScriptedFactory] = {"gold": GoldAgent}
