"""One RL step on the agent-learning ToolUse setting, phase by phase, this tree against an earlier commit side by
side (issue 28, part 3): the same config, the same machine, one process per tree run one after the other.

Each tree runs `--updates` TRePO updates (the agent-learning ToolUse setting: 2 groups x 8 episodes, M=1 branch
continuation per agent turn at the policy's temperature, 64 new tokens per turn) from the same model, and reports
per update: seconds in collection, branch continuations and the update; tokens sampled, prompt tokens encoded,
decode steps, tokens trained; the peak RSS of the update (the kernel's high-water mark, reset before each update).
The first update is left out of the means (allocations, caches warming up).

Physical limits (measured here, at the same thread count): decoding reads every weight once per step, so a
decode step cannot be faster than weight bytes / memory bandwidth (the KV cache is extra traffic, not counted:
the limit is optimistic); prefill and the update are matrix products, so they cannot be faster than their FLOPs
(2 x params per prompt token, 6 x params per trained token) at the measured matmul rate.

This tree runs twice or more: with its defaults, then with each speed setting of `VARIANTS` (`--variants`): the
same RL setting, sampled and computed another way (a bfloat16 sampler copy with its gap corrected by tis, bfloat16
autocast in the update).

    .venv/bin/python benchmarks/rl_step.py --baseline 57bddba --model runs/agent_learning/tooluse/sft
    .venv/bin/python benchmarks/rl_step.py --render        # BENCHMARKS.md from the saved results only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, machine_line, write_section

from agentrl.core.io import atomic_write_text

OUT = ROOT / "benchmarks" / "results" / "rl_step.json"
TITLE = "RL step: phase by phase against the commit before issue 28"

# Keys that exist at both commits; everything else is each tree's default.
CONFIG: dict[str, Any] = {
    "env": {
        "id": "agentrl/ToolUse-v0",
        "kwargs": {"tier": [1, 2], "schema": "compact", "max_turns": 5, "split": "train"},
    },
    "algorithm": {"name": "trepo", "params": {"branch_m": 1, "branch_points": "turns", "branch_t_min": 1.0}},
    "rollout": {"groups": 2, "group_size": 8, "temperature": 1.0, "max_new_tokens": 64, "max_seq_len": 4096},
    "optim": {"lr": 1e-5},
    "ppo": {"epochs": 1, "minibatch_size": 16, "micro_batch_size": 8},
    "train": {"seed": 0, "checkpoint_every": 10_000, "keep_checkpoints": 1, "log_episodes": 0},
}

# This tree's speed settings, each run as its own row after the plain one (the same RL setting; only how it samples
# and computes): a bfloat16 copy of the weights for sampling (its log-prob gap corrected by tis and logged) and
# bfloat16 autocast for the update's forward (float32 weights, gradients and AdamW).
VARIANTS: dict[str, dict[str, Any]] = {
    "bf16": {"rollout": {"dtype": "bfloat16"}, "train": {"autocast": "bfloat16"}},
}

CHILD = r"""
import json, sys, time
sys.path.insert(0, {tree!r})
import torch
torch.set_num_threads({threads})
from agentrl.core.registry import load_env_plugins
from agentrl.train import trainer as T
from agentrl.train.config import Config
load_env_plugins()
cfg = json.loads({cfg!r})
trained = {{}}
orig = T.ppo_update
def counting(model, vh, opt, sched, batch, *a, **k):
    trained["tokens"] = float(batch.attention_mask.sum())
    trained["agent"] = float((batch.action_mask > 0).sum())
    trained["rows"] = int(batch.input_ids.shape[0])
    root, n = {{}}, 0  # positions after prefix sharing (ppo.shared_prefix encodes a common prefix once): trie nodes
    for ids, am in zip(batch.input_ids.tolist(), batch.attention_mask.tolist()):
        node = root
        for t, on in zip(ids, am):
            if on:
                if t not in node:
                    node[t] = {{}}
                    n += 1
                node = node[t]
    trained["unique"] = n
    return orig(model, vh, opt, sched, batch, *a, **k)
T.ppo_update = counting
tr = T.Trainer(Config.model_validate(cfg), console=False)
steps = {{"decode": 0, "rows": 0}}
def hook(mod, args, kwargs):
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is not None and not torch.is_grad_enabled() and ids.shape[-1] == 1:
        steps["decode"] += 1
        steps["rows"] += int(ids.shape[0])
tr.policy.model.register_forward_pre_hook(hook, with_kwargs=True)
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
for u in range({updates}):
    try:
        open("/proc/self/clear_refs", "w").write("5")  # the peak RSS from here on
    except OSError:
        pass
    p = tr.policy
    before = (p.prefill_tokens, p.prefill_s, p.decode_s, steps["decode"], steps["rows"])
    t0 = time.perf_counter()
    m = tr.train_step()
    tr.step += 1
    row = {{k: m[k] for k in ("time/collect", "time/branch", "time/update", "time/total", "tokens/sampled", "tokens/branch")}}
    row.update(wall=time.perf_counter() - t0, peak_rss_mib=hwm(), prefill_tokens=p.prefill_tokens - before[0],
               prefill_s=p.prefill_s - before[1], decode_s=p.decode_s - before[2], decode_steps=steps["decode"] - before[3],
               decode_rows=steps["rows"] - before[4], trained_tokens=trained["tokens"], agent_tokens=trained["agent"],
               unique_tokens=trained["unique"],
               rows=trained["rows"], reward=m.get("reward/mean"), mismatch_kl=m.get("logprob/mismatch_kl"),
               is_truncated=m.get("is/frac_truncated"))
    print("ROW " + json.dumps(row), flush=True)
tr.close()
"""


def limits(threads: int) -> dict[str, float]:
    """Memory bandwidth (a 1 GiB copy: bytes read + written per second) and the float32 matmul rate at the MLP's
    shape (1024 x 576 @ 576 x 1536), at `threads`."""
    import torch

    torch.set_num_threads(threads)
    a = torch.ones(2**28)
    b = torch.empty_like(a)
    b.copy_(a)
    t0 = time.perf_counter()
    for _ in range(3):
        b.copy_(a)
    bw = 3 * 2 * a.numel() * 4 / (time.perf_counter() - t0)
    del a, b
    x, w = torch.randn(1024, 576), torch.randn(576, 1536)
    torch.mm(x, w)
    t0 = time.perf_counter()
    for _ in range(50):
        torch.mm(x, w)
    flops = 50 * 2 * 1024 * 576 * 1536 / (time.perf_counter() - t0)
    x, w = x.bfloat16(), w.bfloat16()
    torch.mm(x, w)
    t0 = time.perf_counter()
    for _ in range(50):
        torch.mm(x, w)
    bf16 = 50 * 2 * 1024 * 576 * 1536 / (time.perf_counter() - t0)
    return {"bandwidth_gbs": bw / 1e9, "matmul_gflops": flops / 1e9, "matmul_gflops_bf16": bf16 / 1e9}


def model_sizes(model: str) -> dict[str, float]:
    """Parameter counts: all, without the (tied) embedding, and the output head's."""
    from agentrl.inference.models import load_model

    m, _ = load_model(model)
    total = sum(p.numel() for p in m.parameters())
    head = m.get_output_embeddings().weight.numel()
    return {"params": total, "params_no_embed": total - head, "head": head}


def tree_of(commit: str) -> Path:
    """The commit's files in a temporary directory (git archive: no worktree bookkeeping)."""
    d = Path(tempfile.mkdtemp(prefix=f"agentrl_{commit}_"))
    with tempfile.TemporaryFile() as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", commit], stdout=f, check=True)
        f.seek(0)
        tarfile.open(fileobj=f).extractall(d)
    return d


def run_tree(
    tree: Path, model: str, threads: int, updates: int, run_dir: Path, extra: dict[str, Any] | None = None
) -> list[dict[str, float]]:
    cfg = {**CONFIG, "model": model, "train": {**CONFIG["train"], "run_dir": str(run_dir), "updates": updates}}
    for section, keys in (extra or {}).items():
        cfg[section] = {**cfg.get(section, {}), **keys}
    code = CHILD.format(tree=str(tree), threads=threads, cfg=json.dumps(cfg), updates=updates)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{tree}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("ROW ")]


def summary(
    rows: list[dict[str, float]], lim: dict[str, float], sizes: dict[str, float], extra: dict[str, Any] | None = None
) -> dict[str, float]:
    """Means over the updates after the first; each phase's tokens/s and its fraction of the physical limit (at the
    variant's precision: a bfloat16 sampler reads 2 bytes a weight, a bfloat16-autocast update runs bfloat16
    products)."""
    rs = rows[1:] or rows
    mean = {
        k: sum(r[k] for r in rs) / len(rs) for k in rs[0] if isinstance(rs[0][k], (int, float)) and rs[0][k] is not None
    }
    extra = extra or {}
    bf16_sampler = extra.get("rollout", {}).get("dtype") == "bfloat16"
    bf16_update = extra.get("train", {}).get("autocast") == "bfloat16"
    bw, fl32 = lim["bandwidth_gbs"] * 1e9, lim["matmul_gflops"] * 1e9
    fl16 = lim.get("matmul_gflops_bf16", lim["matmul_gflops"]) * 1e9
    sfl = fl16 if bf16_sampler else fl32
    fl = fl16 if bf16_update else fl32
    w_bytes = (2 if bf16_sampler else 4) * (sizes["params_no_embed"] + sizes["head"])  # per decode step (tied: once)
    decode_limit = mean["decode_steps"] * w_bytes / bw
    prefill_limit = mean["prefill_tokens"] * 2 * sizes["params"] / sfl
    # the update computes each position once after prefix sharing, the output head only where a token is scored
    update_limit = (
        mean["unique_tokens"] * 6 * sizes["params_no_embed"] / fl + mean["agent_tokens"] * 6 * sizes["head"] / fl
        if "unique_tokens" in mean
        else None
    )
    gen = mean["time/collect"] + mean["time/branch"]
    return {
        **mean,
        "sampling_limit_s": decode_limit + prefill_limit,
        "update_limit_s": update_limit,
        "sampling_fraction": (decode_limit + prefill_limit) / gen if gen else 0.0,
        "update_fraction": update_limit / mean["time/update"] if update_limit and mean["time/update"] else None,
        "sampled_per_s": (mean["tokens/sampled"] + mean["tokens/branch"]) / gen if gen else 0.0,
        "trained_per_s": mean["trained_tokens"] / mean["time/update"] if mean["time/update"] else 0.0,
    }


def _describe(extra: dict[str, Any]) -> str:
    return ", ".join(f"`{sec}.{k}={v}`" for sec, keys in extra.items() for k, v in keys.items())


def _limit(s: dict[str, Any]) -> str:
    if s.get("update_limit_s") is None:
        return "— (positions after prefix sharing not recorded)"
    return f"{s['update_limit_s']:.1f} ({s['update_fraction']:.0%})"


def render(res: dict[str, Any]) -> None:
    lim, runs = res["limits"], res["runs"]
    head = (
        "| tree | threads | s / update | collect s | branch s | update s | sampled + branch tokens | tokens/s sampling "
        "| sampling: limit s (fraction) | decode steps | prompt tokens encoded | trained tokens | tokens/s update "
        "| update: limit s (fraction) | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = []
    for r in runs:
        s = r["summary"]
        lines.append(
            f"| {r['label']} | {r['threads']} | {s['time/total']:.1f} | {s['time/collect']:.1f} | {s['time/branch']:.1f} | "
            f"{s['time/update']:.1f} | {s['tokens/sampled'] + s['tokens/branch']:,.0f} | {s['sampled_per_s']:.1f} | "
            f"{s['sampling_limit_s']:.1f} ({s['sampling_fraction']:.0%}) | {s['decode_steps']:.0f} | {s['prefill_tokens']:,.0f} | "
            f"{s['trained_tokens']:,.0f} | {s['trained_per_s']:.0f} | {_limit(s)} | "
            f"{s['peak_rss_mib']:,.0f} |"
        )
    base = runs[0]["summary"]
    per_tok = lambda s: s["time/total"] / max(s["tokens/sampled"] + s["tokens/branch"], 1)  # noqa: E731
    best = min(runs[1:], key=lambda r: r["summary"]["time/total"])
    ratios = []
    for r in runs[1:]:
        s = r["summary"]
        gap = (
            f"; sampler/trainer mismatch KL {s['mismatch_kl']:.2e} per agent token"
            + (f", {s['is_truncated']:.2%} of tokens truncated by tis" if s.get("is_truncated") is not None else "")
            if s.get("mismatch_kl") is not None
            else ""
        )
        ratios.append(
            f"- {r['label']}: {base['time/total'] / s['time/total']:.2f}x faster per update ({base['time/total']:.1f} s -> "
            f"{s['time/total']:.1f} s); per sampled token {per_tok(base) / per_tok(s):.2f}x{gap}; seconds per update in "
            f"order: {', '.join(format(x['wall'], '.0f') for x in r['rows'])}"
        )
    b_rows = ", ".join(f"{x['wall']:.0f}" for x in runs[0]["rows"])
    fast = base["time/total"] / best["summary"]["time/total"]
    body = f"""{res["machine"]}
Written by `benchmarks/rl_step.py` ({res["date"]}): TRePO on agentrl/ToolUse-v0 (tiers 1-2, compact prompt, train split),
the agent-learning setting (2 groups x 8 episodes, M=1 continuation per agent turn at temperature 1, 64 new tokens
per turn, one optimizer step per update) from `{res["model"]}`; {res["updates"]} updates per run, the first left out of
the means; each run in its own process, one after the other. Baseline: commit `{res["baseline"]}` (the tree issue 28
was measured on), run with the same config and threads; this tree as it is by default, then with each speed setting.
Limits measured here: memory bandwidth {lim["bandwidth_gbs"]:.1f} GB/s (copy), matmul {lim["matmul_gflops"]:.0f} GFLOP/s
float32 and {lim.get("matmul_gflops_bf16", float("nan")):.0f} GFLOP/s bfloat16 at {res["threads"]} thread(s); the
sampling limit is decode steps x weight bytes (4 or 2 a weight) / bandwidth + prompt tokens x 2 x params / matmul rate
(KV-cache traffic not counted, so it is optimistic), the update limit 6 x params x positions computed (each shared
prefix once) / matmul rate, plus the output head at the scored tokens.

{head}
{chr(10).join(lines)}

Against the baseline (seconds per update of the baseline in order: {b_rows}):
{chr(10).join(ratios)}

Target: 3x — **{"met" if fast >= 3 else "missed"}** ({fast:.2f}x, {best["label"]}).
{res.get("note", "")}
"""
    write_section(TITLE, body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="57bddba")
    ap.add_argument("--model", default="smollm2-135m", help="a model name or an SFT run directory")
    ap.add_argument(
        "--arch", default="smollm2-135m", help="the model whose parameters the limits count (an SFT run's base)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument(
        "--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS), help="this tree's speed settings"
    )
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--note", default="", help="a line for BENCHMARKS.md: what else ran on the machine")
    args = ap.parse_args()
    if args.render:
        render(json.loads(OUT.read_text()))
        return
    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    lim = limits(args.threads)
    sizes = model_sizes(args.arch)
    print("limits", lim, "sizes", sizes, flush=True)
    res: dict[str, Any] = {
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%d"),
        "model": args.model,
        "baseline": args.baseline,
        "updates": args.updates,
        "threads": args.threads,
        "limits": lim,
        "sizes": sizes,
        "runs": [],
        "note": args.note,
    }
    plan: list[tuple[str, Path, dict[str, Any]]] = [(f"`{args.baseline}`", tree_of(args.baseline), {})]
    plan.append(("this tree", ROOT, {}))
    plan += [(f"this tree, {v}: {_describe(VARIANTS[v])}", ROOT, VARIANTS[v]) for v in args.variants]
    with tempfile.TemporaryDirectory() as runs:
        for i, (label, tree, extra) in enumerate(plan):
            t0 = time.perf_counter()
            rows = run_tree(tree, model, args.threads, args.updates, Path(runs) / f"run{i}", extra)
            res["runs"].append(
                {
                    "label": label,
                    "threads": args.threads,
                    "extra": extra,
                    "rows": rows,
                    "summary": summary(rows, lim, sizes, extra),
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(label, json.dumps(res["runs"][-1]["summary"]), flush=True)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(OUT, json.dumps(res, indent=1))
    render(res)


if __name__ == "__main__":
    main()
