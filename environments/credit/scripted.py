"""The `scripted:gold` agent of CreditChain-v0: replies with the digit the rule maps the current cue to.
It reads the cue sequence from the env's state, so it is right on every turn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentrl.core.registry import ScriptedAgent, ScriptedFactory

if TYPE_CHECKING:
    from .env import CreditChainEnv


def gold_agent(env: CreditChainEnv) -> ScriptedAgent:
    def act(conversation: list[dict[str, str]]) -> str:
        st = env.state
        return env.replies[st["seq"][st["step"]]]

    return act


# found through the `agentrl.scripted` entry point named agentrl/CreditChain-v0 (agentrl.core.registry)
AGENTS: dict[str, ScriptedFactory] = {"gold": gold_agent}
