"""Layer 7, training: the config, the RL loop and its pieces (branch values, reward shaping, the update,
shared-prefix forward), checkpoints and run directories, metrics, held-out evaluation, and SFT."""
