"""OpenEnv in both directions (openenv-core, the `openenv` optional extra; nothing here imports it until used).

* In: `OpenEnvEnv` (`client_env.py`) drives any OpenEnv server as a `MultiTurnEnv`. Select it with
  `env.id: openenv:http://HOST:PORT`, or `env.id: interop/OpenEnv-v0` with `env.kwargs.base_url` (and the other
  kwargs of `OpenEnvEnv`).
* Out: `agentrl serve-env ENV_ID --port P` (`server.py`, `cli.py`) serves any agentrl env as an OpenEnv server
  that openenv-core's own clients drive.

The id lives outside the `agentrl/` namespace on purpose: it needs a server, so the env-contract tests that build
every `agentrl/*` env with its defaults do not list it.
"""

import gymnasium as gym

from agentrl.core.registry import register_id_prefix

ENV_ID = "interop/OpenEnv-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="environments.openenv.client_env:OpenEnvEnv")
register_id_prefix("openenv", ENV_ID, "base_url")
