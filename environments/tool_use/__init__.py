"""ToolUse-v0: questions that need one to four chained tool calls (calculator, units, dates, geography,
text), answered with final_answer and scored by normalized exact match. See env.py; the pattern is
walked through in README_SECTION.md ("Define your own environment")."""

import gymnasium

ENV_ID = "agentrl/ToolUse-v0"

# Guarded: the package can be imported twice (the `agentrl.envs` entry point and a direct import), and
# gymnasium warns on re-registration.
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="environments.tool_use.env:ToolUseEnv")
