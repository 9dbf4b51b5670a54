"""FlightBooking-v0: an airline customer-service agent books, changes and cancels flights for a simulated
user under a written policy — τ-bench's airline domain (Sierra, 2024), deterministic and offline, with a
train / test split. See env.py; the world, tools, policy, tasks, users and reward each have their module."""

import gymnasium

ENV_ID = "agentrl/FlightBooking-v0"

# Guarded: the package can be imported twice (the `agentrl.envs` entry point and a direct import), and
# gymnasium warns on re-registration.
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="environments.flight_booking.env:FlightBookingEnv")
