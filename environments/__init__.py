"""Concrete agentrl environments. Importing this package registers them with Gymnasium
(`gymnasium.make("agentrl/<Name>-v0")`); the `agentrl` CLI imports it through the `agentrl.envs`
entry point, so `agentrl` itself never imports `environments`."""

import importlib

ENV_PACKAGES = ("credit", "tool_use", "flight_booking", "consultation", "openenv", "verifiers")

for _name in ENV_PACKAGES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # a package not written yet; any other import error is raised
        if _exc.name != f"{__name__}.{_name}":
            raise
