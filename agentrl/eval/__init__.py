"""Layer 6, evaluation: success rate, mean reward and pass^k of a model or scripted agent on an env."""
