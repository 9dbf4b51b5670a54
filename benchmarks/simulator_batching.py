"""LLM-patient turns, batched vs one by one: 16 Consultation-v0 episodes whose patients share one model.

One by one: each env's step calls the patient model in turn (16 generate calls per round). Batched: the
envs step on 16 threads and the patients' calls go through `BatchingChatModel`, one batched generate call
per round. The doctor asks the same questions in both runs and the patient answers greedily, so both runs
produce the same answers (checked). Writes a section of BENCHMARKS.md.

    .venv/bin/python benchmarks/simulator_batching.py --model smollm2-135m --episodes 16 --rounds 2
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from _common import machine_line, write_section

from agentrl.backends.hf import HFChatModel
from agentrl.batching import BatchingChatModel
from agentrl.models import load_model
from agentrl.registry import make_env

QUESTIONS = ["Do you have a fever?", "When did this start, and has it got worse?", "Any chest pain or shortness of breath?"]


def run(chat_model, episodes: int, rounds: int, threads: int) -> tuple[float, list[list[str]]]:
    envs = [make_env("agentrl/Consultation-v0", patient="llm", chat_model=chat_model, split="test").unwrapped for _ in range(episodes)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    answers: list[list[str]] = [[] for _ in envs]

    def step(i: int, q: str) -> None:
        obs, *_ = envs[i].step(q)
        answers[i].append(obs[-1]["content"])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for r in range(rounds):
            list(pool.map(lambda i: step(i, QUESTIONS[r % len(QUESTIONS)]), range(episodes)))
    return time.perf_counter() - t0, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    model, tok = load_model(args.model)
    plain = HFChatModel(model, tok, max_batch_size=args.episodes)
    run(plain, 2, 1, 1)  # warm-up
    plain.calls = 0
    p1 = plain.policy
    p1.prefill_s = p1.decode_s = 0.0
    p1.prefill_tokens = p1.tokens_generated = 0
    t_one, a_one = run(plain, args.episodes, args.rounds, threads=1)
    calls_one = plain.calls
    inner = HFChatModel(model, tok, max_batch_size=args.episodes)
    batched = BatchingChatModel(inner, max_batch=args.episodes, max_wait_s=0.05)
    t_bat, a_bat = run(batched, args.episodes, args.rounds, threads=args.episodes)
    pb = inner.policy
    same = a_one == a_bat
    print(f"one by one {t_one:.1f} s ({calls_one} calls), batched {t_bat:.1f} s ({batched.calls} calls), same answers: {same}", flush=True)
    print(f"prefill {p1.prefill_s:.1f} vs {pb.prefill_s:.1f} s, decode {p1.decode_s:.1f} vs {pb.decode_s:.1f} s", flush=True)
    body = "\n".join([
        machine_line(),
        f"{args.model} plays the patient (greedy, up to 96 tokens) for {args.episodes} Consultation-v0 episodes, "
        f"{args.rounds} doctor questions each. Same answers in both runs: {'yes' if same else 'NO'}. Target: at least 4x.",
        "",
        "| patient calls | seconds | generate calls | prompt tokens encoded | prefill s | tokens generated | decode s |",
        "|---|---|---|---|---|---|---|",
        f"| one by one | {t_one:.1f} | {calls_one} | {p1.prefill_tokens:,} | {p1.prefill_s:.1f} | {p1.tokens_generated:,} | {p1.decode_s:.1f} |",
        f"| batched (`BatchingChatModel`, envs on {args.episodes} threads) | {t_bat:.1f} | {batched.calls} | "
        f"{pb.prefill_tokens:,} | {pb.prefill_s:.1f} | {pb.tokens_generated:,} | {pb.decode_s:.1f} |",
        "",
        f"Speed-up: **{t_one / t_bat:.1f}x** overall; decode phase {p1.decode_s / max(pb.decode_s, 1e-9):.1f}x, prefill phase "
        f"{p1.prefill_s / max(pb.prefill_s, 1e-9):.1f}x. Batching amortises the per-step cost of decoding (reading the "
        "weights once per step for all rows); encoding the prompts is compute-bound on a CPU, so the same tokens cost "
        "about the same batched or not, and the prompts here (the patient's facts and rules, ~500 tokens) are long next "
        "to the replies. That prefill share is what keeps the overall figure under the 4x target on this machine.",
    ])
    write_section("Simulated patients: batched vs one-by-one turns", body)


if __name__ == "__main__":
    main()
