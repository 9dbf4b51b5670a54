"""GPU-ready training options, checked on CPU: bfloat16 autocast with float32 master weights, gradient
checkpointing, the attention kernel, the device. The `gpu` test runs a short TRePO training on CUDA where
one exists (train.device=auto puts the model there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentrl.core.types import TrainBatch
from agentrl.inference.models import (
    activation_checkpointing,
    enable_activation_checkpointing,
    load_model,
)
from agentrl.train.config import ConfigError, load_config
from agentrl.train.forward import ValueHead, forward, head_logits
from agentrl.train.trainer import Trainer
from agentrl.train.update import ppo_update

SMALL = [
    "model=tiny-random",
    "env.kwargs.turns=3",
    "rollout.groups=2",
    "rollout.group_size=3",
    "rollout.constrained=true",
    "rollout.max_new_tokens=4",
    "train.updates=1",
    "ppo.minibatch_size=6",
    "ppo.micro_batch_size=3",
    "train.log_episodes=0",
]


def _batch(B: int = 3, T: int = 12) -> TrainBatch:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 200, (B, T), generator=g)
    mask = torch.zeros(B, T)
    mask[:, 4:] = 1.0
    adv = torch.randn(B, T, generator=g) * mask
    return TrainBatch(ids, torch.ones_like(ids), mask, torch.full((B, T), -5.0) * mask, adv)


def _grads(model: torch.nn.Module, batch: TrainBatch) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    out = forward(model, None, batch.input_ids, batch.attention_mask, 1.0, entropy=False, mask=batch.action_mask)
    (out.logprobs * batch.advantages).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    model, _ = load_model("tiny-random", seed=0)
    batch = _batch()
    plain = _grads(model, batch)
    enable_activation_checkpointing(model)
    assert activation_checkpointing(model)
    ckpt = _grads(model, batch)
    assert plain.keys() == ckpt.keys() and len(plain) > 0
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], rtol=1e-5, atol=1e-6, msg=n)


def test_the_trainer_turns_gradient_checkpointing_and_sdpa_on(tmp_path: Path) -> None:
    tr = Trainer(
        load_config(None, SMALL + ["train.gradient_checkpointing=true", f"train.run_dir={tmp_path}"]), console=False
    )
    assert activation_checkpointing(tr.model) and tr.model.config._attn_implementation == "sdpa"
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.run()
    assert any(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())


def test_sdpa_and_eager_attention_agree() -> None:
    batch = _batch()
    lps = []
    for attn in ("sdpa", "eager"):
        model, _ = load_model("tiny-random", seed=0, attn_implementation=attn)
        assert model.config._attn_implementation == attn
        with torch.no_grad():
            lps.append(forward(model.eval(), None, batch.input_ids, batch.attention_mask, 1.0, entropy=False).logprobs)
    torch.testing.assert_close(lps[0], lps[1], rtol=1e-4, atol=1e-4)


def test_bf16_autocast_keeps_float32_master_weights_and_optimizer_state(tmp_path: Path) -> None:
    tr = Trainer(load_config(None, SMALL + ["train.autocast=bfloat16", f"train.run_dir={tmp_path}"]), console=False)
    batch = _batch()
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    stats = {}
    for autocast in (False, True):
        stats[autocast] = ppo_update(
            tr.model,
            None,
            tr.optimizer,
            None,
            batch,
            tr.cfg.ppo,
            temperature=1.0,
            grad_clip=1.0,
            generator=torch.Generator().manual_seed(0),
            autocast=autocast,
        )
    assert stats[True]["optimizer_steps"] == 1 and stats[True]["loss/policy"] == stats[True]["loss/policy"]
    assert all(p.dtype == torch.float32 for p in tr.model.parameters())
    assert all(v.dtype == torch.float32 for s in tr.optimizer.state.values() for v in s.values() if v.dim() > 0)
    assert any(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())
    # the forward really ran in bfloat16: its log-probs are close to float32's but not equal
    tr.model.eval()
    with torch.no_grad():
        fp32 = forward(tr.model, None, batch.input_ids, batch.attention_mask, 1.0, entropy=False).logprobs
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = forward(tr.model, None, batch.input_ids, batch.attention_mask, 1.0, entropy=False).logprobs.float()
    diff = (fp32 - bf16).abs().max().item()
    assert 0 < diff < 0.5, diff


def test_under_autocast_the_lm_head_and_value_head_stay_float32() -> None:
    """The decoder runs in bfloat16; the logits and values the loss uses are computed in float32, the precision
    the rollout sampled with (a bfloat16 head rounds logits of ~20 to steps of 0.06)."""
    head, vh = torch.nn.Linear(16, 50), ValueHead(16)
    h = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head(h).dtype == torch.bfloat16  # what a plain call would give
        assert head_logits(head, h.bfloat16()).dtype == torch.float32
        assert vh(h.bfloat16()).dtype == torch.float32
    torch.testing.assert_close(head_logits(head, h), head(h))


def test_autocast_needs_float32_weights() -> None:
    with pytest.raises(ConfigError, match="train.autocast=bfloat16 keeps float32 master weights"):
        load_config(None, SMALL + ["train.autocast=bfloat16", "train.dtype=bfloat16"])
    with pytest.raises(ConfigError, match="attn_implementation"):
        load_config(None, SMALL + ["train.attn_implementation=flash"])
    with pytest.raises(ConfigError, match="train.device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        load_config(None, SMALL + ["train.device=gpu"])


def test_cuda_device_without_a_gpu_is_refused_by_name(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the refusal is for machines without one")
    with pytest.raises(RuntimeError, match="train.device=cuda but torch sees no CUDA GPU here"):
        Trainer(load_config(None, SMALL + ["train.device=cuda", f"train.run_dir={tmp_path}"]), console=False)


@pytest.mark.gpu
def test_short_training_on_cuda(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine: the trainer's CUDA path is not exercised here")
    tr = Trainer(
        load_config(
            None,
            SMALL
            + [
                "train.autocast=bfloat16",
                "train.gradient_checkpointing=true",
                "algorithm.name=trepo",
                f"train.run_dir={tmp_path}",
            ],
        ),
        console=False,
    )
    assert next(tr.model.parameters()).device.type == "cuda"
    tr.run()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert row["optimizer_steps"] >= 1
