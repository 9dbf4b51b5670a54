"""Layer 6, evaluation: success rate, mean reward, pass@k, avg@k and pass^k of a model or scripted agent on an env."""
