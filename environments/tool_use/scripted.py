"""The `scripted:gold` agent: replays the task's gold tool chain, then calls final_answer.

It reads the task from env.state and the tool outputs from the conversation it is handed, so later calls
get their arguments from what the tools actually returned (the same "${k}" / {"$ref": k} references the
generator used), not from the pinned outputs. It is stateless: the conversation alone says how far the
chain has got, so it works after snapshot()/restore() and on conversations with other messages mixed in.
A gold step that fails is a bug or a library drift, and raises instead of being papered over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentrl.core.registry import ScriptedFactory
from agentrl.core.tools import (
    ToolCall,
    ToolCallParseError,
    format_tool_call,
    parse_tool_calls,
)

from .tasks import render_answer, resolve_arguments

if TYPE_CHECKING:
    from .env import ToolUseEnv


class GoldAgent:
    def __init__(self, env: ToolUseEnv):
        self.env = env

    def __call__(self, conversation: list[dict[str, str]]) -> str:
        task = self.env.state.task
        outputs: list[str] = []
        # Walk the agent's messages: one that made gold step k, answered by a tool message, completes step k.
        for i, msg in enumerate(conversation):
            if msg["role"] != "assistant" or len(outputs) == len(task.gold):
                continue
            step = task.gold[len(outputs)]
            expected = ToolCall(step.name, resolve_arguments(step.arguments, outputs))
            try:
                made = parse_tool_calls(msg["content"])
            except ToolCallParseError:
                continue
            if made != [expected]:
                continue
            reply = conversation[i + 1] if i + 1 < len(conversation) else None
            if reply is None or reply["role"] != "tool":
                continue
            if reply["content"].startswith("Error:"):
                raise RuntimeError(f"gold step {len(outputs)} of task {task.id} failed: {reply['content']}")
            outputs.append(reply["content"])
        if len(outputs) < len(task.gold):
            step = task.gold[len(outputs)]
            return format_tool_call(step.name, resolve_arguments(step.arguments, outputs))
        return format_tool_call("final_answer", {"answer": render_answer(task.answer_type, task.decimals, outputs[-1])})


# found through the `agentrl.scripted` entry point named agentrl/ToolUse-v0 (agentrl.core.registry)
AGENTS: dict[str, ScriptedFactory] = {"gold": GoldAgent}
