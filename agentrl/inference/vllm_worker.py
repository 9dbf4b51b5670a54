"""Runs inside vLLM's worker processes (`worker_extension_cls`): loads new weights from a safetensors file, and
digests the weights the worker holds.

The trainer writes its state dict to one file (in /dev/shm when there is one) and sends only the path over
vLLM's RPC; each worker reads the file and reloads it in place through vLLM's `reload_weights`, which runs the
model's own `load_weights` (fused q/k/v and gate/up layouts) and then re-does the kernel post-processing (the
CPU build repacks linear weights after loading, so a bare `load_weights` on a running engine fails). Sending
the tensors themselves would pickle hundreds of MB per update.

`agentrl_weights_digest` digests the running model's parameters (`inference.base.weights_digest`: per tensor
two float64 sums, which fused and padded layouts preserve), so the trainer can check a sync really landed.
"""

from __future__ import annotations


class WeightLoader:
    def agentrl_load_weights(self, path: str) -> int:
        from safetensors.torch import load_file

        weights = load_file(path)
        self.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)  # type: ignore[attr-defined]
        return len(weights)

    def agentrl_weights_digest(self) -> dict[str, tuple[float, float]]:
        from agentrl.inference.base import weights_digest

        model = self.get_model()  # type: ignore[attr-defined]
        return weights_digest(model.named_parameters())
