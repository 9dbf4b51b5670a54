"""Update throughput: the trainer's update step against a plain loop computing the same loss.

SmolLM2-135M, float32, CPU, a batch of 8 sequences x 256 tokens (half of each sequence sampled tokens).
The trainer's `ppo_update` (micro-batching, masked LM head, stats, clipping, finite checks) should add
under 10% over the plain 20-line loop below. Writes a section of BENCHMARKS.md.

Second section, "Update throughput: shared prefix vs naive": a ToolUse-v0-shaped batch (one real ToolUse prompt,
~1,800 tokens, then G different ~150-token continuations of agent and env tokens), one `ppo_update` with
`shared_prefix` off and on (`agentrl/train/shared_prefix.py`: the prompt encoded once with gradients). Target >= 3x.

    .venv/bin/python benchmarks/update_throughput.py --repeats 3
    .venv/bin/python benchmarks/update_throughput.py --shared-prefix-only --repeats 2
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from _common import machine_line, write_section

from agentrl.core.types import TrainBatch
from agentrl.inference.models import load_model
from agentrl.train.config import PPOConfig
from agentrl.train.shared_prefix import plan
from agentrl.train.update import ppo_update


def make_batch(B: int, T: int, vocab: int) -> TrainBatch:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (B, T), generator=g)
    mask = torch.zeros(B, T)
    mask[:, T // 2 :] = 1.0  # second half: sampled tokens
    return TrainBatch(
        ids,
        torch.ones_like(ids),
        mask,
        -torch.rand(B, T, generator=g) * 5 * mask,
        torch.randn(B, T, generator=g) * mask,
    )


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


def tooluse_batch(tok, episodes: int, suffix: int, seed: int = 0) -> tuple[TrainBatch, int]:
    """One real ToolUse-v0 prompt, then `episodes` different random continuations of about `suffix` tokens:
    agent / env / agent / env / agent segments (action mask 1 on the agent ones), right-padded."""
    from agentrl.core.chat_format import ChatFormatter
    from agentrl.core.registry import make_env

    env = make_env("agentrl/ToolUse-v0")
    obs, info = env.reset(seed=seed)
    prompt = ChatFormatter(tok).prompt_ids([dict(m) for m in obs], info)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(episodes):
        n = suffix + int(torch.randint(-suffix // 5, suffix // 5 + 1, (1,), generator=g))
        cuts = [int(n * f) for f in (0.3, 0.25, 0.25, 0.1)]
        segs = cuts + [n - sum(cuts)]
        ids, mask = list(prompt), [0.0] * len(prompt)
        for k, m in enumerate(segs):
            ids += torch.randint(3, len(tok), (m,), generator=g).tolist()
            mask += [float(k % 2 == 0)] * m  # even segments: sampled agent tokens; odd: env tokens
        rows.append((ids, mask))
    T = max(len(r[0]) for r in rows)
    B = len(rows)
    ids_t = torch.full((B, T), tok.pad_token_id or 0, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.long)
    amask = torch.zeros((B, T))
    for b, (ids, mask) in enumerate(rows):
        ids_t[b, : len(ids)] = torch.tensor(ids)
        attn[b, : len(ids)] = 1
        amask[b, : len(ids)] = torch.tensor(mask)
    old = -torch.rand(B, T, generator=g) * 5 * amask
    adv = torch.randn(B, 1, generator=g) * amask  # GRPO: one advantage per episode
    return TrainBatch(ids_t, attn, amask, old, adv), len(prompt)


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def shared_prefix_section(args) -> None:
    model, tok = load_model(args.model)
    b, P = tooluse_batch(tok, args.episodes, args.suffix)
    G = args.episodes
    ntok = int(b.attention_mask.sum())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    gen = torch.Generator().manual_seed(0)

    def update(shared: bool, micro: int) -> None:
        cfg = PPOConfig(epochs=1, minibatch_size=G, micro_batch_size=micro, shared_prefix=shared)
        ppo_update(model, None, opt, None, b, cfg, temperature=1.0, grad_clip=1.0, generator=gen)

    def clock(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    # one shared-path update first (a warm-up, and the process's peak memory after it is its own); then the two
    # alternate, so load from other processes on a shared machine falls on both alike. The naive one runs
    # unwarmed: one SmolLM2 update of 8 x ~1,950 tokens takes minutes on 2 cores
    update(True, G)
    peak_shared = _peak_gib()
    ts_naive, ts_shared = [], []
    for _ in range(args.repeats):
        ts_naive.append(clock(lambda: update(False, args.naive_micro)))
        ts_shared.append(clock(lambda: update(True, G)))
    t_naive, t_shared = statistics.median(ts_naive), statistics.median(ts_shared)
    peak_all = _peak_gib()
    tree = plan(b.input_ids, b.attention_mask)
    cols = tree.tokens if tree is not None else b.input_ids.numel()
    speedup = t_naive / t_shared
    print(
        f"naive {t_naive:.1f}s ({ntok / t_naive:.0f} tok/s), shared prefix {t_shared:.1f}s ({ntok / t_shared:.0f} tok/s), "
        f"speed-up {speedup:.2f}x; peak RSS {peak_shared:.1f} GiB (shared) / {peak_all:.1f} GiB (both)"
    )
    body = "\n".join(
        [
            machine_line(),
            f"{args.model}, float32, a ToolUse-v0-shaped batch: one real ToolUse-v0 prompt ({P} tokens, `env.reset(seed=0)`) "
            f"then {G} different random continuations of ~{args.suffix} tokens (agent / env / agent / env / agent; "
            f"{int(b.action_mask.sum())} sampled tokens in all), {ntok} tokens in the batch. One `ppo_update` "
            f"(one minibatch of {G}, one optimizer step), median of {args.repeats}.",
            f"Naive: every row re-encodes the prompt, in micro-batches of {args.naive_micro} so its activations fit in "
            f"memory (the gradient is the same for any micro-batch size). Shared prefix (`PPOConfig.shared_prefix`, "
            f"`agentrl/train/shared_prefix.py`): the prompt is encoded once with gradients, its KV cache expanded to the {G} "
            f"continuations, in one micro-batch of {G}. Same gradient (tests/test_shared_prefix.py). Target: >= 3x.",
            "",
            "| update | micro-batch | seconds | training tokens/s |",
            "|---|---|---|---|",
            f"| naive (`shared_prefix: false`) | {args.naive_micro} | {t_naive:.1f} | {ntok / t_naive:.0f} |",
            f"| shared prefix (`shared_prefix: true`) | {G} | {t_shared:.1f} | {ntok / t_shared:.0f} |",
            "",
            f"Speed-up: {speedup:.2f}x. The decoder runs over {cols} token columns instead of {b.input_ids.numel()} "
            f"({b.input_ids.numel() / cols:.1f}x fewer; the LM head, loss and optimizer step cost the same on both paths). "
            f"Peak RSS of the process after one shared-prefix update {peak_shared:.1f} GiB, after the naive ones too "
            f"{peak_all:.1f} GiB.",
        ]
    )
    write_section("Update throughput: shared prefix vs naive", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared-prefix-only", action="store_true", help="only the shared-prefix section")
    ap.add_argument("--episodes", type=int, default=8, help="shared-prefix section: episodes (G) sharing the prompt")
    ap.add_argument(
        "--suffix", type=int, default=150, help="shared-prefix section: tokens after the prompt per episode"
    )
    ap.add_argument("--naive-micro", type=int, default=2, help="shared-prefix section: the naive update's micro-batch")
    args = ap.parse_args()
    if not args.shared_prefix_only:
        update_section(args)
    shared_prefix_section(args)


def update_section(args) -> None:
    model, _ = load_model(args.model)
    b = make_batch(args.batch, args.tokens, model.config.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    cfg = PPOConfig(epochs=1, minibatch_size=args.batch, micro_batch_size=args.batch)
    gen = torch.Generator().manual_seed(0)
    t_plain = timed(lambda: plain_loop(model, opt, b), args.repeats)
    t_ours = timed(
        lambda: ppo_update(model, None, opt, None, b, cfg, temperature=1.0, grad_clip=1.0, generator=gen), args.repeats
    )
    ntok = args.batch * args.tokens
    overhead = (t_ours / t_plain - 1) * 100
    print(
        f"plain {t_plain:.2f}s ({ntok / t_plain:.0f} tok/s), agentrl {t_ours:.2f}s ({ntok / t_ours:.0f} tok/s), overhead {overhead:+.1f}%"
    )
    body = "\n".join(
        [
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
        ]
    )
    write_section("Update throughput", body)


if __name__ == "__main__":
    main()
