"""Update throughput: the trainer's update step against a plain loop computing the same loss.

SmolLM2-135M, float32, CPU, a batch of 8 sequences x 256 tokens (half of each sequence sampled tokens).
The trainer's `ppo_update` (micro-batching, masked LM head, stats, clipping, finite checks) should add
under 10% over the plain 20-line loop below. Writes a section of BENCHMARKS.md.

    .venv/bin/python benchmarks/update_throughput.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import machine_line, write_section

from agentrl.config import PPOConfig
from agentrl.models import load_model
from agentrl.types import TrainBatch
from agentrl.update import ppo_update


def make_batch(B: int, T: int, vocab: int) -> TrainBatch:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (B, T), generator=g)
    mask = torch.zeros(B, T)
    mask[:, T // 2 :] = 1.0  # second half: sampled tokens
    return TrainBatch(ids, torch.ones_like(ids), mask, -torch.rand(B, T, generator=g) * 5 * mask, torch.randn(B, T, generator=g) * mask)


def plain_loop(model, opt, b: TrainBatch, clip: float = 0.2) -> None:
    """The reference: full logits, the same clipped surrogate, token-mean, one optimizer step."""
    opt.zero_grad()
    logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits[:, :-1].float()
    lp = torch.log_softmax(logits, -1).gather(-1, b.input_ids[:, 1:, None]).squeeze(-1)
    m, adv, old = b.action_mask[:, 1:], b.advantages[:, 1:], b.old_logprobs[:, 1:]
    ratio = torch.exp(lp - old)
    loss_tok = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    loss = (loss_tok * m).sum() / m.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model, _ = load_model(args.model)
    b = make_batch(args.batch, args.tokens, model.config.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    cfg = PPOConfig(epochs=1, minibatch_size=args.batch, micro_batch_size=args.batch)
    gen = torch.Generator().manual_seed(0)
    t_plain = timed(lambda: plain_loop(model, opt, b), args.repeats)
    t_ours = timed(lambda: ppo_update(model, None, opt, None, b, cfg, temperature=1.0, grad_clip=1.0, generator=gen), args.repeats)
    ntok = args.batch * args.tokens
    overhead = (t_ours / t_plain - 1) * 100
    print(f"plain {t_plain:.2f}s ({ntok / t_plain:.0f} tok/s), agentrl {t_ours:.2f}s ({ntok / t_ours:.0f} tok/s), overhead {overhead:+.1f}%")
    body = "\n".join([
        machine_line(),
        f"{args.model}, float32, batch {args.batch} x {args.tokens} tokens (half sampled), one optimizer step, median of {args.repeats}.",
        "Target: the trainer's update adds under 10% over a plain loop computing the same loss. "
        "It computes the LM head only on sampled positions (the plain loop on all), so it can be faster.",
        "",
        "| update | seconds | training tokens/s |",
        "|---|---|---|",
        f"| plain 20-line loop | {t_plain:.2f} | {ntok / t_plain:.0f} |",
        f"| agentrl `ppo_update` | {t_ours:.2f} | {ntok / t_ours:.0f} |",
        "",
        f"Overhead: {overhead:+.1f}%.",
    ])
    write_section("Update throughput", body)


if __name__ == "__main__":
    main()
