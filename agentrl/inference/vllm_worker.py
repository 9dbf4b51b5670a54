"""Runs inside vLLM's worker processes (`worker_extension_cls`): loads new weights from a safetensors file.

The trainer writes its state dict to one file (in /dev/shm when there is one) and sends only the path over
vLLM's RPC; each worker reads the file and reloads it in place through vLLM's `reload_weights`, which runs the
model's own `load_weights` (fused q/k/v and gate/up layouts) and then re-does the kernel post-processing (the
CPU build repacks linear weights after loading, so a bare `load_weights` on a running engine fails). Sending
the tensors themselves would pickle hundreds of MB per update.
"""

from __future__ import annotations


class WeightLoader:
    def agentrl_load_weights(self, path: str) -> int:
        from safetensors.torch import load_file

        weights = load_file(path)
        self.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)  # type: ignore[attr-defined]
        return len(weights)
