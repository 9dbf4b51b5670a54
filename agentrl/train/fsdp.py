"""FSDP2 (`train.parallel=fsdp2`): the policy's decoder layers sharded over the ranks with
`torch.distributed.fsdp.fully_shard`, so each rank holds 1/N of their weights, gradients and AdamW state.

What is sharded and what is not:
* every decoder layer is its own FSDP unit (all-gathered for its forward, its gradients reduce-scattered in
  backward, summed: the loss is already normalised by the GLOBAL token count, as with ddp);
* the root's own parameters (embeddings tied to the LM head, the final norm) and the value head stay
  replicated; their gradients are summed by `distributed.reduce_grads`, as with ddp. Leaving the root unsharded
  is what lets `forward.forward` call the decoder and the head separately (the head only on the tokens that
  need logits);
* sampling runs on a full, unsharded copy of the weights on every rank (`rollout copy`): a rank's episodes
  take as many forward passes as they take, and a sharded model would need every rank in every forward. After
  each update the full weights are gathered (`full_state_dict`) and loaded into it -- the weight sync that
  `train.verify_weight_sync` checks -- and checkpoints are written from it (safetensors, as one process
  writes). The optimizer state is saved as each rank's shard (`local_optimizer_state`), so resuming needs the
  same number of ranks (refused otherwise, as with ddp).

Every forward and backward of the sharded model is a collective: ranks must make the same calls in the same
order. `update.ppo_update` therefore runs the same number of micro-batches on every rank (a rank short of rows
runs a zero-weight one), and the shared-prefix forward (a data-dependent number of decoder calls) is not used.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributed.tensor import DTensor

from agentrl.train.config import ConfigError


def is_sharded(model: torch.nn.Module) -> bool:
    return any(isinstance(p, DTensor) for p in model.parameters())


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    decoder = getattr(model, "get_decoder", lambda: None)()
    layers = getattr(decoder, "layers", None)
    if decoder is None or layers is None or not len(layers):
        raise ConfigError(
            f"train.parallel=fsdp2 shards a decoder's layers, and {type(model).__name__} has no "
            "get_decoder().layers; use train.parallel=ddp"
        )
    return list(layers)


def shard(model: torch.nn.Module, device: torch.device) -> None:
    """Make each decoder layer an FSDP2 unit whose gradients are summed over ranks (not averaged), on a mesh of
    `device`'s type (the trainer's: the layers stay where the embeddings and norm are)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for layer in decoder_layers(model):
        unit = fully_shard(layer, mesh=mesh, reshard_after_forward=True)  # the same module, now an FSDPModule
        unit.set_gradient_divide_factor(1.0)  # a sum: the loss is normalised by the global token count
        unit.set_force_sum_reduction_for_comms(True)  # SUM, which gloo supports (not PREMUL_SUM or AVG)


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on every rank (a collective: every rank must call it)."""
    return {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach() for k, v in model.state_dict().items()}


def load_full_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy full tensors into the sharded model: each rank keeps its own shard (no communication)."""
    from torch.distributed.tensor import distribute_tensor

    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"load_full_state_dict: {len(missing)} weights missing, e.g. {missing[:3]}")
    with torch.no_grad():
        for k, t in own.items():
            src = state[k].to(dtype=t.dtype, device=t.device)
            if isinstance(t, DTensor):
                # src_data_rank=None: every rank already holds the full tensor, so no broadcast is needed
                t.to_local().copy_(distribute_tensor(src, t.device_mesh, t.placements, src_data_rank=None).to_local())
            else:
                t.copy_(src)


def grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The global L2 norm of the gradients: sharded ones summed over ranks, replicated ones counted once."""
    from agentrl.train import distributed

    dev = next((p.grad.device for p in params if p.grad is not None), torch.device("cpu"))
    sharded = torch.zeros((), dtype=torch.float64, device=dev)
    replicated = torch.zeros((), dtype=torch.float64, device=dev)
    for p in params:
        if p.grad is None:
            continue
        g = p.grad
        if isinstance(g, DTensor):
            sharded += g.to_local().double().pow(2).sum()
        else:
            replicated += g.double().pow(2).sum()
    sharded = distributed.all_reduce_sum(sharded.reshape(1), "the gradient-norm all-reduce")[0]
    return (sharded + replicated).sqrt().float()


def clip_grad_norm_(params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` over a mix of sharded and replicated gradients."""
    total = grad_norm(params)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    if torch.isfinite(total) and float(coef) < 1.0:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef.to(p.grad.device))
    return total


def local_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """This rank's optimizer state with every DTensor replaced by its local shard (picklable, no device mesh)."""
    sd = optimizer.state_dict()
    sharded: list[tuple[int, str]] = []
    state: dict[int, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        state[idx] = {}
        for key, v in st.items():
            if isinstance(v, DTensor):
                sharded.append((idx, key))
                v = v.to_local()
            state[idx][key] = v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v
    return {"state": state, "param_groups": sd["param_groups"], "sharded": sharded}


def load_local_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Inverse of `local_optimizer_state`: the shards become DTensors laid out like their parameters."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    optimizer.load_state_dict({"state": saved["state"], "param_groups": saved["param_groups"]})
    for idx, key in saved["sharded"]:
        p = params[idx]
        st = optimizer.state[p]
        st[key] = DTensor.from_local(
            st[key].to(p.device), p.device_mesh, p.placements, shape=p.shape, stride=p.stride()
        )


def local_numel(module: torch.nn.Module) -> tuple[int, int]:
    """(parameters this rank holds, parameters of `module`): a DTensor counts its local shard."""
    local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in module.parameters())
    return local, sum(p.numel() for p in module.parameters())


def held_bytes(modules: list[torch.nn.Module], optimizer: torch.optim.Optimizer) -> int:
    """Bytes this rank holds for `modules`' weights and gradients and `optimizer`'s state (local shards of
    DTensors; a tensor shared by several modules counted once)."""
    seen: set[int] = set()
    total = 0

    def add(t: Any) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor):
            t = t.to_local() if isinstance(t, DTensor) else t
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()

    for m in modules:
        for p in m.parameters():
            add(p)
            add(p.grad)
    for state in optimizer.state.values():
        for v in state.values():
            add(v)
    return total


def is_dtensor(t: torch.Tensor) -> bool:
    return isinstance(t, DTensor)
