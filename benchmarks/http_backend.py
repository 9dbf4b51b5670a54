"""HTTP chat backend overhead: the same N completions from an HFChatModel directly, over HTTP through
`tests/chat_server.py` (loopback), and through the fault-injecting proxy (tests/fault_proxy.py).

    .venv/bin/python benchmarks/http_backend.py [--n 32] [--max-tokens 16] [--model tiny-random]

Prints one JSON line per setting: wall seconds, completions/s, retries, and whether the texts equal the
direct ones (they must: same seeds, and the server runs one request at a time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from chat_server import ChatServer  # noqa: E402  (tests/, on the path above)

from agentrl.inference.hf import HFChatModel  # noqa: E402
from agentrl.inference.http import HTTPChatModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--model", default="tiny-random")
    args = ap.parse_args()
    from fault_proxy import FaultProxy

    batch = [[{"role": "user", "content": f"Question {i}: how are you feeling today?"}] for i in range(args.n)]
    kw = {"temperature": 1.0, "max_tokens": args.max_tokens, "seed": 0}
    hf = HFChatModel.load(args.model)
    hf.complete(batch[0], **kw)  # warm up

    def row(name: str, fn, model=None, compare: bool = True) -> list[str]:
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        rec = {
            "setting": name,
            "n": args.n,
            "max_tokens": args.max_tokens,
            "wall_s": round(dt, 3),
            "completions_per_s": round(args.n / dt, 1),
        }
        if model is not None:
            rec["retries"] = model.stats.retries
        if compare:
            rec["same_as_direct"] = out == direct
        print(json.dumps(rec), flush=True)
        return out

    direct: list[str] = []
    direct = row(
        "direct, one at a time",
        lambda: [hf.complete(m, **{**kw, "seed": i}) for i, m in enumerate(batch)],
        compare=False,
    )
    row("direct, one padded batch", lambda: hf.complete_batch(batch, **kw))
    with ChatServer(hf, model_name=args.model) as srv:
        for conc in (1, 8):
            with HTTPChatModel(srv.url, args.model, api_key_env=None, max_concurrency=conc) as m:
                row(f"http, max_concurrency={conc}", lambda: m.complete_batch(batch, **kw), m)
        with (
            FaultProxy(srv.url, seed=1, max_faults=3) as proxy,
            HTTPChatModel(
                proxy.url,
                args.model,
                api_key_env=None,
                max_concurrency=8,
                backoff_base=0.05,
                backoff_max=0.5,
                max_retries=6,
            ) as m,
        ):
            row("http via fault proxy (429/500/drop), max_concurrency=8", lambda: m.complete_batch(batch, **kw), m)


if __name__ == "__main__":
    main()
