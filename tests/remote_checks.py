"""Checks of the remote backend (`RemotePolicy`) on real vLLM OpenAI servers started by `launch_servers`, run in the
vLLM venv by tests/test_remote_backend.py, which asserts on the JSON this script writes.

    .venv-vllm/bin/python tests/remote_checks.py --out result.json

a. the servers sample what the in-process engine (`VLLMPolicy`) samples: same token ids for the same prompts
   (token ids) and seeds at temperature 1, logprobs within float32 kernel noise;
b. `update_weights` with perturbed weights: every server's digest equals the trainer's (`verify_weights`), a
   server left on other weights is named, and the samples change;
c. one server killed while a batch of 16 requests is in flight: every request comes back, finished on the other
   server or as finish_reason "error", none lost;
d. both servers killed: completions come back as errors, and a RolloutRunner ends those episodes as sampler_error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

LONG = 480  # new tokens of each request of check c (max_model_len 512)


def tiny_env_cls() -> Any:
    from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
    from agentrl.core.types import Message

    class Plain(MultiTurnEnv):
        """Says 'ok' until the agent says 'stop' (tests/conftest.py's PlainEnv)."""

        max_turns = 3

        def setup(self, options):
            self.state = {"n": 0}
            return "Plain.", "Talk."

        def respond(self, text):
            self.state["n"] += 1
            return EnvReply(terminated=True) if text == "stop" else EnvReply([Message("user", "ok")])

        def compute_reward(self):
            return RewardResult(1.0, {"n": float(self.state["n"])})

    return Plain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--base-port", type=int, default=18230)
    args = ap.parse_args()

    from agentrl.inference.base import SamplingParams
    from agentrl.inference.launch import launch_servers
    from agentrl.inference.models import load_model
    from agentrl.inference.remote import RemotePolicy, RemoteServerError
    from agentrl.inference.vllm import VLLMPolicy
    from agentrl.train.invariants import InvariantError, verify_weights

    res: dict[str, Any] = {}
    model, tok = load_model("tiny-random")
    model.eval()
    work = Path(tempfile.mkdtemp(prefix="agentrl-remote-checks-"))
    model_dir = work / "model"
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tok.save_pretrained(str(model_dir))
    from vllm_checks import TEXTS  # this script's folder is on sys.path

    prompts = [list(tok(t)["input_ids"]) for t in TEXTS]
    params = [
        SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens, seed=7 + i, ignore_eos=True)
        for i in range(len(prompts))
    ]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=args.new_tokens, ignore_eos=True)

    # the servers start in the background while the in-process engine makes the reference samples
    t0 = time.perf_counter()
    fleet = launch_servers(
        model_dir,
        2,
        base_port=args.base_port,
        max_model_len=512,
        memory_fraction=0.1,  # of the host memory, for the KV cache: minus what the process holds already
        log_dir=work / "logs",
        wait=False,
    )
    try:
        engine = VLLMPolicy.from_model(model, tok, gpu_memory_utilization=0.1, max_model_len=512)
        ref = engine.generate(prompts, params)
        ref_greedy = engine.generate(prompts, greedy)
        t1 = time.perf_counter()
        n_tok = sum(len(c.token_ids) for c in engine.generate(*_throughput_batch(prompts)))
        res["inprocess_tok_per_s"] = n_tok / (time.perf_counter() - t1)
        engine.close()
        del engine
        fleet.wait_ready(900)
        res["servers_start_s"] = time.perf_counter() - t0
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        remote = RemotePolicy(fleet.urls, pad_id=pad, attempts=3, timeout_s=60, cooldown_s=1.0)

        # a: same samples as the in-process engine
        outs = remote.generate(prompts, params)
        again = remote.generate(prompts, params)  # prefix-cache hits now
        res["a_same_tokens"] = sum(a.token_ids == b.token_ids for a, b in zip(outs, ref))
        res["a_prompts"] = len(prompts)
        res["a_repeat_equal"] = [o.token_ids for o in outs] == [o.token_ids for o in again]
        res["a_logprob_abs_diff_max"] = (
            max(
                abs(x - y)
                for a, b in zip(outs, ref)
                if a.token_ids == b.token_ids
                for x, y in zip(a.logprobs, b.logprobs)
            )
            if res["a_same_tokens"]
            else None
        )
        res["a_greedy_same"] = sum(
            a.token_ids == b.token_ids for a, b in zip(remote.generate(prompts, greedy), ref_greedy)
        )
        res["a_both_servers_used"] = all(v["sent"] > 0 for v in remote.stats()["servers"].values())
        res["a_n_tokens"] = [len(o.token_ids) for o in outs]

        # throughput: 32 requests of 64 tokens over the two servers
        t0 = time.perf_counter()
        n_tok = sum(len(c.token_ids) for c in remote.generate(*_throughput_batch(prompts)))
        res["throughput_tokens"] = n_tok
        res["throughput_tok_per_s"] = n_tok / (time.perf_counter() - t0)

        # b: weight sync
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # a copy: the update is in place
        res["b_digest_before_matches"] = verify_weights(remote, state) is not None
        g = torch.Generator().manual_seed(123)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * p.float().std().clamp(min=1e-3) * 0.5)
        t0 = time.perf_counter()
        remote.update_weights(model.state_dict())
        res["b_update_weights_s"] = time.perf_counter() - t0
        res["b_digest_tensors"] = len(remote.weights_digest())
        res["b_digest_verified"] = verify_weights(remote, model.state_dict()) is not None
        try:
            verify_weights(remote, state)  # the weights before the update: stale
            res["b_caught_stale"] = False
        except InvariantError:
            res["b_caught_stale"] = True
        after = remote.generate(prompts, params)
        res["b_changed"] = sum(a.token_ids != b.token_ids for a, b in zip(after, outs))
        # one server left on the old weights: the digest names it
        from safetensors.torch import save_file

        old = work / "old.safetensors"
        save_file({k: v.contiguous().clone() for k, v in state.items()}, str(old))
        remote._post(fleet.urls[1], "/collective_rpc", {"method": "agentrl_load_weights", "args": [str(old)]}, 300)
        try:
            remote.weights_digest()
            res["b_disagreement_named"] = False
        except RemoteServerError as exc:
            res["b_disagreement_named"] = fleet.urls[1] in str(exc)
            res["b_disagreement_error"] = str(exc)[:300]
        remote.update_weights(model.state_dict())
        res["b_resynced"] = verify_weights(remote, model.state_dict()) is not None

        # e: one training update through the servers equals one through the in-process engine (k = 0): the same
        # episodes' tokens and, after the update, the same weights (train.random_reward gives advantages whatever
        # tiny-random says; unconstrained, since the servers do not take constrained decoding)
        runs = {name: _one_update(model_dir, work / name, extra) for name, extra in _E_ARMS(fleet.urls).items()}
        (tok_v, w_v, moved), (tok_r, w_r, _) = runs["vllm"], runs["remote"]
        res["e_episodes"] = len(tok_v)
        res["e_same_tokens"] = sum(a == b for a, b in zip(tok_v, tok_r))
        res["e_weights_max_abs_diff"] = max(float((w_v[k] - w_r[k]).abs().max()) for k in w_v)
        res["e_moved"] = moved

        # c: kill server 0 while 16 requests are in flight
        before = remote.stats()
        batch = [prompts[i % len(prompts)] + [100 + i] for i in range(16)]
        # as long as max_model_len allows (prompts of ~10 tokens): the tiny model decodes ~1,500 tokens/s on a quiet
        # CPU, so 200-token requests could all be finished before the kill and nothing would be in flight
        long = SamplingParams(temperature=1.0, max_new_tokens=LONG, seed=3, ignore_eos=True)
        box: dict[str, Any] = {}
        th = threading.Thread(target=lambda: box.update(out=remote.generate(batch, long)))
        th.start()
        deadline = time.monotonic() + 60
        while remote.stats()["servers"][fleet.urls[0]]["in_flight"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)  # the server is decoding them
        res["c_in_flight_on_killed"] = remote.stats()["servers"][fleet.urls[0]]["in_flight"]
        fleet.kill(0)
        th.join(600)
        out = box.get("out", [])
        res["c_returned"] = len(out)
        res["c_finished"] = sum(c.finish_reason == "length" and len(c.token_ids) == LONG for c in out)
        res["c_errors"] = sum(c.finish_reason == "error" for c in out)
        res["c_retries"] = remote.retries - before["retries"]
        res["c_stats"] = remote.stats()
        failed = {u: res["c_stats"]["servers"][u]["failed"] - before["servers"][u]["failed"] for u in fleet.urls}
        res["c_failed_on_killed"], res["c_failed_on_other"] = failed[fleet.urls[0]], failed[fleet.urls[1]]

        # d: both killed -> errors, and the runner ends the episodes as sampler_error
        fleet.kill(1)
        errs = remote.generate(prompts[:2], params[:2])
        res["d_all_error"] = all(c.finish_reason == "error" and c.token_ids == [] for c in errs)
        res["d_error_text"] = errs[0].error
        from agentrl.core.chat_format import ChatFormatter
        from agentrl.core.outcomes import outcome_metrics, usable_for_advantages
        from agentrl.rollout.runner import EpisodeSpec, RolloutRunner

        env_cls = tiny_env_cls()
        runner = RolloutRunner(env_cls, remote, ChatFormatter(tok), SamplingParams(temperature=1.0, max_new_tokens=8))
        eps = runner.collect([EpisodeSpec(seed=i, group_id=i // 2) for i in range(4)])
        m = outcome_metrics(eps)
        res["d_sampler_error"] = m["episode/outcome/sampler_error"]
        res["d_usable"] = sum(usable_for_advantages(eps))
        res["d_episode_error"] = eps[0].error
        remote.close()
    finally:
        fleet.stop()
        res["orphans"] = _orphans(fleet)
        shutil.rmtree(work, ignore_errors=True)  # the saved model, the weights copy, the server logs
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


def _E_ARMS(urls: list[str]) -> dict[str, list[str]]:
    return {
        "vllm": ["rollout.backend=vllm"],
        "remote": ["rollout.backend=remote", f"rollout.servers=[{','.join(urls)}]"],
    }


def _one_update(model_dir: Path, run: Path, extra: list[str]) -> tuple[list[list[int]], dict[str, Any], float]:
    """The token ids of the episodes of one GRPO update, the weights after it, and how far the update moved them."""
    import time as _time

    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    cfg = load_config(
        None,
        [
            f"model={model_dir}",
            "algorithm.name=grpo",
            "rollout.groups=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=8",
            "rollout.max_seq_len=512",
            "rollout.vllm_gpu_memory_utilization=0.1",
            "train.random_reward=0.5",
            "ppo.minibatch_size=4",
            "ppo.micro_batch_size=4",
            "optim.lr=1e-3",
            "train.updates=1",
            "train.log_episodes=0",
            "train.eval_every=0",
            f"train.run_dir={run}",
            *extra,
        ],
    )
    t = Trainer(cfg, console=False)
    try:
        before = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
        c = t._collect(0, 0)
        t._learn(c, _time.perf_counter())
        after = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
        moved = max(float((after[k] - before[k]).abs().max()) for k in after)
        return [ep.input_ids for ep in c.collected], after, moved
    finally:
        t.close()


def _throughput_batch(prompts: list[list[int]]) -> tuple[list[list[int]], Any]:
    from agentrl.inference.base import SamplingParams

    many = [prompts[i % len(prompts)] + [i] for i in range(32)]
    return many, SamplingParams(temperature=1.0, max_new_tokens=64, seed=1, ignore_eos=True)


def _orphans(fleet: Any) -> int:
    """Processes still in the servers' process groups after stop (there must be none)."""
    n = 0
    for p in fleet.procs:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.getpgid(int(pid)) == p.pid:
                        n += 1
                except ProcessLookupError:
                    pass
    return n


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # vLLM's worker processes can keep a plain exit waiting
