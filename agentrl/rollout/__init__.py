"""Layer 4, rollouts: many episodes of an env at once against a policy backend, token-exact, with
snapshots to branch from. Imports core, inference and sim."""
