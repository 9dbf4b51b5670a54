"""verifiers in (the `verifiers` optional extra; nothing here imports `verifiers` until an env is made).

`VerifiersEnv` (`adapter.py`) drives a classic verifiers environment (`vf.Environment` subclasses built on
`vf.MultiTurnEnv`: `SingleTurnEnv`, `ToolEnv`, `StatefulToolEnv`, your own `env_response` env) as a `MultiTurnEnv`:
its dataset rows are the tasks, its `env_response` / stop conditions are the env, its rubric is the terminal reward.
Select it with `env.id: verifiers:NAME` (an installed verifiers environment package, `vf.load_environment(NAME)`;
its arguments in `env.kwargs.env_args`), `env.id: interop/Verifiers-v0` with `env.kwargs.env`, or from Python with
an environment object: `VerifiersEnv(my_vf_env)`.

The id lives outside the `agentrl/` namespace on purpose: it needs the `verifiers` package and an environment, so
the env-contract tests that build every `agentrl/*` env with its defaults do not list it.
"""

import gymnasium as gym

from agentrl.core.registry import register_id_prefix

ENV_ID = "interop/Verifiers-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="environments.verifiers.adapter:VerifiersEnv")
register_id_prefix("verifiers", ENV_ID, "env")
