"""transformers backend: `HFPolicy`, the trainer's sampler (batched sampling from token ids), and `HFChatModel`,
the simulators' chat model over it.

A generate call is a prefill (`prefill.py`: the prompts, left-padded, into one KV cache, encoding a shared
prefix once and reusing a conversation's stored KV) and a token-by-token decode loop; each row picks its
tokens with its own temperature, top-p, length limit, stop strings, seed and allowed replies (`sampling.py`;
TRePO's branch continuations use rising temperatures inside one batch). Finished rows leave the batch as the
loop goes, and a chat model keeps their KV in its `KVStore` (`kv_store.py`) for its next turn.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import torch

from agentrl.core.chat import BaseChatModel, Messages, row_seeds, validate_messages
from agentrl.core.chat_format import ControlText, encode_chat
from agentrl.inference import prefill
from agentrl.inference.base import (
    Completion,
    SamplingParams,
    WeightsDigest,
    per_prompt,
    weights_digest,
)
from agentrl.inference.decode_attention import decode_attention
from agentrl.inference.kv_cache import supports
from agentrl.inference.kv_store import KVStore
from agentrl.inference.packed_linear import DecodePacks, pack_linears
from agentrl.inference.prefill import Encoder, Prefilled, PrefillPlan
from agentrl.inference.sampling import (
    finish_reason,
    pick_tokens,
    seeded_generator,
    temperature_logprobs,
)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = set()
    for src in (getattr(tokenizer, "eos_token_id", None), getattr(model.config, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(i) for i in src)
    return ids


class HFPolicy:
    """Policy backend over a local `transformers` causal LM (CPU or GPU)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 64,
        device: str | None = None,
        prefix_reuse: bool = True,
        min_shared_prefix: int = 16,
        store: KVStore | None = None,
        row_prefill: bool | None = None,
        pack_decode: bool = True,
    ):
        """prefix_reuse: prompts in a batch that share a prefix of at least `min_shared_prefix` tokens (TRePO's
        branch continuations, a group's episodes) encode it once; its KV cache is copied to every row.
        store: where finished sequences' KV is kept, so a later prompt that extends one (an episode's next turn,
        a simulator's next turn, a branch continuation) encodes only its new tokens. A chat model's own store; the
        trainer's policy gets one with `rollout.kv_store`, cleared by `update_weights` after every update.
        row_prefill: encode long prompts one row at a time (no padding, no attention mask) and lay their KV
        out left-padded for the batched decode. Default: on a CPU, where a prompt of a few hundred tokens
        already fills the matrix units and a padded, masked batch encodes fewer tokens per second (see
        BENCHMARKS.md); a GPU encodes the padded batch at once. Short runs (`prefill.ROW_PREFILL_MIN`) are
        batched either way.
        pack_decode: on a CPU, the decode loop multiplies by oneDNN-packed copies of the linear weights
        (`packed_linear.DecodePacks`: a few rows against each weight), rebuilt when the weights change."""
        self.store = store
        self.prefix_reuse = prefix_reuse
        self.min_shared_prefix = max(1, int(min_shared_prefix))
        self.prefill_tokens = 0  # prompt tokens run through the model (after prefix sharing)
        self.prefill_s = 0.0  # seconds spent encoding prompts, and in the token-by-token decode loop
        self.decode_s = 0.0
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.row_prefill = self.device.type == "cpu" if row_prefill is None else bool(row_prefill)
        self.max_batch_size = max_batch_size
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.tokens_generated = 0
        # decode steps write into preallocated room instead of re-concatenating the cache (`kv_cache.py`)
        self.growing_cache = supports(model.config)
        # on a CPU the decode loop multiplies by oneDNN-packed copies of the weights, rebuilt after each update
        self._packs = DecodePacks() if pack_decode and self.device.type == "cpu" else None

    # -- contract ---------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        plist = per_prompt(params, len(prompts))
        for i, p in enumerate(prompts):
            if not p:
                raise ValueError(f"prompt {i} is empty; every prompt needs at least one token")
        out: list[Completion] = []
        for s in range(0, len(prompts), self.max_batch_size):
            out += self._generate_chunk(prompts[s : s + self.max_batch_size], plist[s : s + self.max_batch_size])
        return out

    def update_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load new weights. A no-op when the trainer updates this very module in place (one CPU process); the KV
        store is cleared either way (its caches were computed with the old weights)."""
        if self.store is not None:
            self.store.clear()
        own = self.model.state_dict()
        if all(k in own and own[k].data_ptr() == v.data_ptr() for k, v in state_dict.items()):
            return
        self.model.load_state_dict(state_dict, strict=True)

    def weights_digest(self) -> WeightsDigest:
        """The digest of the weights this policy samples with (`base.weights_digest`)."""
        return weights_digest(self.model.state_dict().items())

    def close(self) -> None:
        """Nothing to release: the model belongs to the caller."""

    # -- prefill ----------------------------------------------------------------------------------
    def plan(self, prompts: list[list[int]], plist: list[SamplingParams]) -> PrefillPlan:
        """How a batch of these prompts is encoded (from the store, with shared prefixes, or whole)."""
        room = min(max(p.max_new_tokens for p in plist), prefill.RESERVE_CAP)  # cache room for the replies
        return prefill.plan_prefill(
            prompts, room, store=self.store, prefix_reuse=self.prefix_reuse, min_shared_prefix=self.min_shared_prefix
        )

    def encoder(self) -> Encoder:
        """An `Encoder` with this policy's model and current settings."""
        return Encoder(
            self.model, self.device, self.pad_id, row_prefill=self.row_prefill, growing_cache=self.growing_cache
        )

    def _prefix_groups(self, prompts: list[list[int]]) -> tuple[list[list[int]], list[int]] | None:
        """The shared prefixes a batch of these prompts would encode once (`prefill.shared_prefixes`), or None."""
        return prefill.shared_prefixes(prompts, self.min_shared_prefix)

    # -- one batch --------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate_chunk(self, prompts: list[list[int]], plist: list[SamplingParams]) -> list[Completion]:
        was_training = self.model.training
        self.model.eval()
        try:
            t0 = time.perf_counter()
            plan = self.plan(prompts, plist)
            enc = self.encoder()
            start = enc.run(plan)
            self.prefill_tokens += enc.encoded
            self.prefill_s += time.perf_counter() - t0
            # one query per row: two products, not the CPU's flash kernel; linears packed for a few rows (CPU)
            with decode_attention(self.model), self._packs.use(self.model) if self._packs else nullcontext():
                toks, lps, finish = self._decode(prompts, plist, plan, start)
        finally:
            self.model.train(was_training)
        self.tokens_generated += sum(len(t) for t in toks)
        return [Completion(toks[i], lps[i], finish[i] or "length") for i in range(len(prompts))]

    def _decode(
        self, prompts: list[list[int]], plist: list[SamplingParams], plan: PrefillPlan, start: Prefilled
    ) -> tuple[list[list[int]], list[list[float]], list[str | None]]:
        """The token-by-token loop from the prefilled state -> each row's tokens, logprobs and finish reason.
        Finished rows are dropped from the tensors (and their KV stored) once an eighth of the rows are done."""
        t1 = time.perf_counter()
        B = len(prompts)
        past, logits, attn, next_pos = start.cache, start.logits, start.attention, start.next_pos
        temps = torch.tensor([p.temperature for p in plist], dtype=torch.float32, device=self.device)
        gens = [seeded_generator(p) for p in plist]
        toks: list[list[int]] = [[] for _ in range(B)]
        lps: list[list[float]] = [[] for _ in range(B)]
        finish: list[str | None] = [None] * B
        rows = list(range(B))  # the prompt index of each row of the current tensors
        for _ in range(max(p.max_new_tokens for p in plist)):
            # logprobs of the policy at the sampling temperature (temperature 1 for greedy rows)
            logp = temperature_logprobs(logits, temps)
            step_tok = torch.full((len(rows),), self.pad_id, dtype=torch.long)
            todo = [j for j, i in enumerate(rows) if finish[i] is None]
            idx = [rows[j] for j in todo]
            picked, chosen_lp = pick_tokens(
                logp, todo, [plist[i] for i in idx], [toks[i] for i in idx], [gens[i] for i in idx], self.eos_ids
            )
            for j, i, t, lp in zip(todo, idx, picked, chosen_lp):
                step_tok[j] = t
                toks[i].append(t)
                lps[i].append(lp)
                finish[i] = finish_reason(toks[i], plist[i], self.eos_ids, self._text)
            live = [j for j, i in enumerate(rows) if finish[i] is None]
            if not live:
                break
            if len(rows) - len(live) >= max(
                1, len(rows) // 8
            ):  # drop finished rows (copying the cache: not for each one)
                self._store_rows(past, attn, [j for j in range(len(rows)) if j not in live], rows, prompts, toks, plan)
                keep = torch.tensor(live, dtype=torch.long, device=self.device)
                past.batch_select_indices(keep)
                attn, next_pos, temps = attn[keep], next_pos[keep], temps[keep]
                step_tok = step_tok[keep.cpu()]
                rows = [rows[j] for j in live]
            attn = torch.cat([attn, torch.ones((len(rows), 1), dtype=attn.dtype, device=self.device)], dim=1)
            out = self.model(
                input_ids=step_tok.unsqueeze(-1).to(self.device),
                attention_mask=attn,
                position_ids=next_pos,
                past_key_values=past,
                use_cache=True,
            )
            past, logits = out.past_key_values, out.logits[:, -1, :]
            next_pos = next_pos + 1
        self.decode_s += time.perf_counter() - t1
        self._store_rows(past, attn, list(range(len(rows))), rows, prompts, toks, plan)
        return toks, lps, finish

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _store_rows(
        self,
        past: Any,
        attn: torch.Tensor,
        js: list[int],
        rows: list[int],
        prompts: list[list[int]],
        toks: list[list[int]],
        plan: PrefillPlan,
    ) -> None:
        """Keep the KV of tensor rows `js` (prompt + completion, less the last token, never fed) in the store."""
        if self.store is None:
            return
        for j in js:
            i = rows[j]
            seq = prompts[i] + toks[i][:-1]
            cols = attn[j].nonzero().squeeze(-1)[: len(seq)]  # the real columns, in order (pads skipped)
            layers = [(lay.keys[j][:, cols], lay.values[j][:, cols]) for lay in past.layers]
            self.store.put(seq, layers, replaces=plan.continues[i])


class HFChatModel(BaseChatModel):
    """A `ChatModel` over a local transformers model: simulated users, patients and judges."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 32, kv_store: int = 32):
        """kv_store: conversations whose KV cache is kept between calls in this model's `store` (a simulator's
        next turn encodes only what was added since its last one); 0 turns it off. The model must not change
        between calls."""
        self.store = KVStore(kv_store) if kv_store else None
        self.policy = HFPolicy(model, tokenizer, max_batch_size=max_batch_size, store=self.store)
        self.tokenizer = tokenizer
        self._control: ControlText | None = None  # the tokenizer's control strings, found on first use
        self.calls = 0  # batched generate calls made (benchmarks count these)

    @classmethod
    def load(cls, name: str, *, dtype: torch.dtype = torch.float32, pack: bool = True, **kw: Any) -> HFChatModel:
        """Load a model for chatting only (it never trains): eval mode, no gradients, and on a CPU in float32 its
        linear layers packed for oneDNN (`packed_linear.py`; pack=False keeps `nn.Linear`)."""
        from agentrl.inference.models import load_model

        model, tok = load_model(name, dtype=dtype)
        model.eval().requires_grad_(False)
        if pack:
            pack_linears(model)
        return cls(model, tok, **kw)

    def complete_batch(
        self, batch: list[Messages], *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> list[str]:
        n = len(batch)
        return self.complete_rows(
            batch, temperatures=[temperature] * n, max_tokens=[max_tokens] * n, seeds=row_seeds(seed, n)
        )

    def complete_rows(
        self, batch: list[Messages], *, temperatures: list[float], max_tokens: list[int], seeds: list[int | None]
    ) -> list[str]:
        """One batched generate call with per-row settings (what `BatchingChatModel` uses)."""
        return [
            self.text(c)
            for _, c in self.generate_rows(batch, temperatures=temperatures, max_tokens=max_tokens, seeds=seeds)
        ]

    def generate_rows(
        self, batch: list[Messages], *, temperatures: list[float], max_tokens: list[int], seeds: list[int | None]
    ) -> list[tuple[list[int], Completion]]:
        """`complete_rows` before decoding: each row's prompt ids and completion (the server reports usage)."""
        if not (len(batch) == len(temperatures) == len(max_tokens) == len(seeds)):
            raise ValueError("complete_rows: batch, temperatures, max_tokens and seeds must have the same length")
        prompts = [self.prompt_ids(m) for m in batch]
        params = [
            SamplingParams(temperature=t, max_new_tokens=n, seed=s) for t, n, s in zip(temperatures, max_tokens, seeds)
        ]
        self.calls += 1
        return list(zip(prompts, self.policy.generate(prompts, params)))

    def prompt_ids(self, messages: Messages) -> list[int]:
        """The chat template's token ids for a conversation, ending with the assistant header."""
        # message contents are plain text: a patient record's "<|im_start|>system" stays characters, not control ids
        if self._control is None:
            self._control = ControlText(self.tokenizer)
        return encode_chat(
            self.tokenizer, validate_messages(messages), add_generation_prompt=True, control=self._control
        )

    def text(self, completion: Completion) -> str:
        """A completion's reply text (special tokens dropped, whitespace stripped)."""
        return self.tokenizer.decode(completion.token_ids, skip_special_tokens=True).strip()
