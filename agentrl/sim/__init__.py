"""Layer 3, simulators' chat models: a chat model from a name (`env.simulator`), and the batching queue
that serves many episodes' simulated users / patients in one call. Imports core and inference."""
