"""transformers policy backend: batched sampling from token ids with a KV cache, and a ChatModel over it.

Prompts of different lengths are left-padded into one batch (on a CPU each prompt is encoded alone and its
KV laid out left-padded, `row_prefill`); position ids are counted over real tokens only, so a padded row
computes exactly what it would alone. Each row may have its own temperature,
top-p, length limit, stop strings, seed and allowed replies (TRePO's branch continuations use rising
temperatures inside one batch).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from agentrl.core.chat import BaseChatModel, validate_messages
from agentrl.inference.base import (
    Completion,
    SamplingParams,
    constrained_logprob,
    next_allowed,
    per_prompt,
    pick_allowed,
    seeded_generator,
)
from agentrl.inference.kv_cache import GrowingCache, left_pad_rows, supports
from agentrl.inference.kv_store import KVStore, common_prefix
from agentrl.inference.packed_linear import pack_linears


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = set()
    for src in (getattr(tokenizer, "eos_token_id", None), getattr(model.config, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(i) for i in src)
    return ids


def _dynamic_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """A transformers `DynamicCache` holding these per-layer keys and values ([batch, heads, tokens, dim])."""
    from transformers import DynamicCache

    past = DynamicCache()
    for layer, (K, V) in enumerate(layers):
        past.update(K, V, layer)
    return past


RESERVE_CAP = 256  # positions reserved for replies up front; longer ones grow the cache by doubling
ROW_PREFILL_MIN = 128  # mean tokens per row from which a CPU encodes prompts one row at a time (`_by_rows`)


class HFPolicy:
    """Policy backend over a local `transformers` causal LM (CPU or GPU)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 64, device: str | None = None,
                 prefix_reuse: bool = True, min_shared_prefix: int = 16, kv_store: int = 0,
                 row_prefill: bool | None = None):
        """prefix_reuse: prompts in a batch that share a prefix of at least `min_shared_prefix` tokens (TRePO's
        branch continuations, a group's episodes) encode it once; its KV cache is copied to every row.
        kv_store: keep the KV cache of the last `kv_store` finished sequences, so a later prompt that extends
        one (a simulator's next turn) encodes only its new tokens (`kv_store.py`; frozen models only).
        row_prefill: encode long prompts one row at a time (no padding, no attention mask) and lay their KV
        out left-padded for the batched decode. Default: on a CPU, where a prompt of a few hundred tokens
        already fills the matrix units and a padded, masked batch encoded ~25% fewer tokens per second
        (SmolLM2, 16 x ~480 tokens); a GPU encodes the padded batch at once. Short runs (`ROW_PREFILL_MIN`)
        are batched either way."""
        self.store = KVStore(kv_store, min_shared_prefix) if kv_store else None
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
        """Load new weights. A no-op when the trainer updates this very module in place (one CPU process)."""
        own = self.model.state_dict()
        if all(k in own and own[k].data_ptr() == v.data_ptr() for k, v in state_dict.items()):
            return
        self.model.load_state_dict(state_dict, strict=True)
        if self.store is not None:
            self.store.clear()  # computed with the old weights

    # -- internals ------------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate_chunk(self, prompts: list[list[int]], plist: list[SamplingParams]) -> list[Completion]:
        B = len(prompts)
        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        try:
            hits = self.store.lookup(prompts) if self.store is not None else []
            from_store = any(k for _, k in hits)
            groups = self._prefix_groups(prompts) if self.prefix_reuse and not from_store else None
            extra = min(max(p.max_new_tokens for p in plist), RESERVE_CAP)  # cache room for the replies
            if from_store:
                past, logits, attn, next_pos = self._prefill_stored(prompts, hits, extra)
            elif groups is None:
                past, logits, attn, next_pos = self._prefill(prompts, extra)
            else:
                past, logits, attn, next_pos = self._prefill_shared(prompts, *groups, extra)
            t1 = time.perf_counter()
            self.prefill_s += t1 - t0

            temps = torch.tensor([p.temperature for p in plist], dtype=torch.float32, device=self.device)
            gens = [seeded_generator(p) for p in plist]
            max_new = [p.max_new_tokens for p in plist]
            toks: list[list[int]] = [[] for _ in range(B)]
            lps: list[list[float]] = [[] for _ in range(B)]
            finish: list[str | None] = [None] * B
            rows = list(range(B))  # the prompt index of each row of the current tensors
            for _ in range(max(max_new)):
                logits = logits.float()
                # logprobs of the policy at the sampling temperature (temperature 1 for greedy rows)
                scaled = logits / torch.where(temps > 0, temps, torch.ones_like(temps)).unsqueeze(-1)
                logp = torch.log_softmax(scaled, dim=-1)
                step_tok = torch.full((len(rows),), self.pad_id, dtype=torch.long)
                todo = [j for j, i in enumerate(rows) if finish[i] is None]
                picked, cons_lp = self._pick_rows(logp, todo, [rows[j] for j in todo], plist, toks, gens)
                chosen_lp = logp[torch.tensor(todo), torch.tensor(picked)].tolist()
                chosen_lp = [cons_lp.get(j, lp) for j, lp in zip(todo, chosen_lp)]
                for j, t, lp in zip(todo, picked, chosen_lp):
                    i = rows[j]
                    step_tok[j] = t
                    toks[i].append(t)
                    lps[i].append(lp)
                    finish[i] = self._finished(toks[i], plist[i], max_new[i])
                live = [j for j, i in enumerate(rows) if finish[i] is None]
                if not live:
                    break
                if len(rows) - len(live) >= max(1, len(rows) // 8):  # drop finished rows (copying the cache: not for each one)
                    self._store_rows(past, attn, [j for j in range(len(rows)) if j not in live], rows, prompts, toks, hits)
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
            self._store_rows(past, attn, list(range(len(rows))), rows, prompts, toks, hits)
        finally:
            self.model.train(was_training)
        self.tokens_generated += sum(len(t) for t in toks)
        return [Completion(toks[i], lps[i], finish[i] or "length") for i in range(B)]

    def _new_cache(self, room: int) -> Any:
        """An empty `GrowingCache` for a prefill, allocated with `room` positions beyond the prompt, or None
        (the model makes its default cache)."""
        return GrowingCache(room) if self.growing_cache else None

    def _left_pad(self, seqs: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, q in enumerate(seqs):
            if q:
                ids[i, width - len(q):] = torch.tensor(q, dtype=torch.long)
                attn[i, width - len(q):] = 1
        return ids.to(self.device), attn.to(self.device)

    def _prefill(self, prompts: list[list[int]], extra: int):
        """Left-padded prompts in one forward -> (KV cache, last logits, attention mask, next positions)."""
        if self._by_rows(prompts):
            return self._prefill_rows([None] * len(prompts), prompts, extra)
        ids, attn = self._left_pad(prompts, max(len(p) for p in prompts))
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        # logits_to_keep=1: only the last position's logits are needed (the LM head over a whole
        # prompt is the largest cost of a prefill with a 49k vocabulary)
        out = self.model(input_ids=ids, attention_mask=attn, position_ids=pos, past_key_values=self._new_cache(extra),
                         use_cache=True, logits_to_keep=1)
        self.prefill_tokens += sum(len(p) for p in prompts)
        return out.past_key_values, out.logits[:, -1, :], attn, pos[:, -1:] + 1

    def _prefix_groups(self, prompts: list[list[int]]) -> tuple[list[list[int]], list[int]] | None:
        """Group prompts that share a prefix of >= min_shared_prefix tokens: (the groups' prefixes, each
        prompt's group). Every prompt keeps at least one token after its prefix. None when nothing is shared."""
        order = sorted(range(len(prompts)), key=lambda i: prompts[i])
        groups: list[list[int]] = []  # runs of indices in sorted order
        shared: list[int] = []  # each run's common prefix length
        for i in order:
            if groups:
                a, b = prompts[groups[-1][-1]], prompts[i]
                n = min(shared[-1], len(a), len(b))
                k = common_prefix(a[:n], b)
                if k >= self.min_shared_prefix:
                    groups[-1].append(i)
                    shared[-1] = k
                    continue
            groups.append([i])
            shared.append(len(prompts[i]))
        if all(len(g) == 1 for g in groups) or min(len(p) for p in prompts) < 2:
            return None  # nothing shared, or a one-token prompt (it would leave an all-pad prefix row)
        prefixes, member = [], [0] * len(prompts)
        for g, (idx, k) in enumerate(zip(groups, shared)):
            k = min(k, min(len(prompts[i]) for i in idx) - 1)  # leave >= 1 suffix token per prompt
            prefixes.append(prompts[idx[0]][:k])
            for i in idx:
                member[i] = g
        return prefixes, member

    def _prefill_shared(self, prompts: list[list[int]], prefixes: list[list[int]], member: list[int], extra: int):
        """Encode each group's prefix once, copy its KV cache to the group's rows, then encode the suffixes.
        Row layout: [pad | prefix | pad | suffix]; the attention mask hides both pads, positions skip them."""
        sfx = [p[len(prefixes[g]):] for p, g in zip(prompts, member)]
        if self._by_rows(prefixes):  # each prefix alone, then the rows continue from their group's
            starts, _ = self._encode_rows([None] * len(prefixes), prefixes)
            return self._prefill_from([starts[g] for g in member], sfx, extra)
        C = max(len(q) for q in prefixes)
        rows = torch.tensor(member, dtype=torch.long, device=self.device)
        pre_ids, pre_attn = self._left_pad(prefixes, C)
        pre_pos = (pre_attn.cumsum(-1) - 1).clamp(min=0)
        past = self.model(input_ids=pre_ids, attention_mask=pre_attn, position_ids=pre_pos,
                          past_key_values=self._new_cache(max(len(q) for q in sfx) + extra), use_cache=True,
                          logits_to_keep=1).past_key_values
        past.batch_select_indices(rows)  # group rows -> prompt rows (repeats copy the shared prefix's KV)
        self.prefill_tokens += sum(len(q) for q in prefixes)
        return self._prefill_suffix(past, pre_attn[rows], sfx)

    def _prefill_suffix(self, past: Any, pre_attn: torch.Tensor, sfx: list[list[int]]):
        """Encode each row's suffix after the prefix KV already in `past` (columns `pre_attn`)."""
        S = max(len(q) for q in sfx)
        sfx_ids, sfx_attn = self._left_pad(sfx, S)
        attn = torch.cat([pre_attn, sfx_attn], dim=1)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)[:, -S:]
        out = self.model(input_ids=sfx_ids, attention_mask=attn, position_ids=pos, past_key_values=past,
                         use_cache=True, logits_to_keep=1)
        self.prefill_tokens += sum(len(q) for q in sfx)
        return out.past_key_values, out.logits[:, -1, :], attn, pos[:, -1:] + 1

    def _prefill_stored(self, prompts: list[list[int]], hits: list[tuple[tuple[int, ...] | None, int]], extra: int):
        """Start rows from the KV store: row i's first hits[i][1] tokens come from a stored sequence, the rest
        are encoded."""
        assert self.store is not None
        stored = [self.store.get(key, k) if key is not None else None for key, k in hits]
        hits = [(key, k) if st is not None else (None, 0) for (key, k), st in zip(hits, stored)]  # evicted meanwhile: miss
        if not any(k for _, k in hits):
            return self._prefill(prompts, extra)
        return self._prefill_from(stored, [p[k:] for p, (_, k) in zip(prompts, hits)], extra)

    def _prefill_from(self, starts: list[Any], sfx: list[list[int]], extra: int):
        """Rows that continue from known KV (`starts[i]`, per layer [heads, tokens, dim], at least one not None)
        with tokens `sfx[i]`: one row at a time (`_by_rows`), or as one batch laid out [pad | start | pad |
        suffix] (the attention mask hides both pads, positions skip them)."""
        if self._by_rows(sfx):
            return self._prefill_rows(starts, sfx, extra)
        past, pre_attn, _ = self._left_padded(starts, max(len(q) for q in sfx) + extra)  # room: suffixes, replies
        return self._prefill_suffix(past, pre_attn, sfx)

    def _left_padded(self, rows: list[Any], room: int) -> tuple[Any, torch.Tensor, list[int]]:
        """Rows' KV (per layer [heads, tokens, dim], or None) right-aligned in one cache with `room` positions to
        spare -> (cache, attention mask over its filled columns, each row's length)."""
        lens = [0 if r is None else r[0][0].shape[1] for r in rows]
        L = max(lens)
        if self.growing_cache:  # built in place
            past = GrowingCache.left_padded(rows, L, room)
        else:
            past = _dynamic_cache(left_pad_rows(rows, L))
        attn = torch.zeros((len(rows), L), dtype=torch.long, device=self.device)
        for i, n in enumerate(lens):
            if n:
                attn[i, L - n:] = 1
        return past, attn, lens

    def _by_rows(self, seqs: list[list[int]]) -> bool:
        """Whether to encode these token runs one row at a time: on a CPU (`row_prefill`) when they average at
        least ROW_PREFILL_MIN tokens. Shorter runs go as one padded batch: a forward of a few tokens costs about
        a read of all the weights, and a turn's new question after the KV store's prefix is ~20 tokens."""
        return self.row_prefill and sum(len(q) for q in seqs) >= ROW_PREFILL_MIN * len(seqs)

    def _prefill_rows(self, starts: list[Any], sfx: list[list[int]], extra: int):
        """Encode each row alone (`_encode_rows`), then lay the rows out left-padded in one cache with `extra`
        positions of room. Returns what `_prefill` returns."""
        rows, logits = self._encode_rows(starts, sfx)
        past, attn, lens = self._left_padded(rows, extra)
        next_pos = torch.tensor(lens, dtype=torch.long, device=self.device).unsqueeze(-1)
        return past, torch.cat(logits), attn, next_pos

    def _encode_rows(self, starts: list[Any], sfx: list[list[int]]) -> tuple[list[Any], list[torch.Tensor]]:
        """Encode row i's tokens `sfx[i]` alone (batch of one, no padding), after `starts[i]` (the KV of the
        tokens before them, per layer [heads, tokens, dim], or None) -> (each row's whole KV in that form, each
        row's last logits [1, vocab])."""
        rows, logits = [], []
        for start, q in zip(starts, sfx):
            n = 0 if start is None else start[0][0].shape[1]
            # the model's update concatenates onto the start's tensors: they are read, never written
            past = _dynamic_cache([(K.unsqueeze(0), V.unsqueeze(0)) for K, V in start or []])
            ids = torch.tensor([q], dtype=torch.long, device=self.device)
            pos = torch.arange(n, n + len(q), device=self.device).unsqueeze(0)
            out = self.model(input_ids=ids, position_ids=pos, past_key_values=past, use_cache=True, logits_to_keep=1)
            rows.append([(lay.keys[0], lay.values[0]) for lay in out.past_key_values.layers])
            logits.append(out.logits[:, -1, :])
            self.prefill_tokens += len(q)
        return rows, logits

    def _store_rows(self, past: Any, attn: torch.Tensor, js: list[int], rows: list[int], prompts: list[list[int]],
                    toks: list[list[int]], hits: list[tuple[tuple[int, ...] | None, int]]) -> None:
        """Keep the KV of tensor rows `js` (prompt + completion, less the last token, never fed) in the store."""
        if self.store is None:
            return
        for j in js:
            i = rows[j]
            seq = prompts[i] + toks[i][:-1]
            cols = attn[j].nonzero().squeeze(-1)[: len(seq)]  # the real columns, in order (pads skipped)
            layers = [(lay.keys[j][:, cols], lay.values[j][:, cols]) for lay in past.layers]
            self.store.put(seq, layers, replaces=hits[i][0] if hits else None)

    def _pick_rows(self, logp: torch.Tensor, js: list[int], idx: list[int], plist: list[SamplingParams],
                   toks: list[list[int]], gens: list[torch.Generator]) -> tuple[list[int], dict[int, float]]:
        """Next token of tensor rows `js` (prompts `idx`): greedy rows by one argmax, plain sampling rows by one
        inverse-CDF draw (each row's own seeded generator gives its uniform, so a row samples the same token
        whatever else is in the batch); constrained and top-p rows one by one. Also returns the constrained
        rows' logprobs (renormalised over their allowed tokens), by row."""
        out: dict[int, int] = {}
        cons_lp: dict[int, float] = {}
        greedy, sample = [], []
        for j, i in zip(js, idx):
            p = plist[i]
            if p.allowed is not None:
                # cannot be empty when every allowed sequence ends with EOS; guard anyway
                nxt = next_allowed(p.allowed, toks[i]) or sorted(self.eos_ids)
                sub = logp[j][torch.tensor(nxt, dtype=torch.long, device=logp.device)]
                k = pick_allowed(sub, p.temperature, gens[i])  # among the allowed tokens only (renormalised)
                out[j], cons_lp[j] = nxt[k], constrained_logprob(sub, k)
            elif p.temperature > 0 and p.top_p < 1.0:
                out[j] = self._pick(logp[j], p, gens[i])
            elif p.temperature == 0:
                greedy.append(j)
            else:
                sample.append((j, i))
        if greedy:
            out.update(zip(greedy, logp[greedy].argmax(-1).tolist()))
        if sample:
            rows = [j for j, _ in sample]
            u = torch.cat([torch.rand(1, generator=gens[i]) for _, i in sample]).to(logp.device)
            cdf = logp[rows].exp().cumsum(-1)
            pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
            out.update(zip(rows, pick.clamp(max=cdf.shape[-1] - 1).tolist()))
        return [out[j] for j in js], cons_lp

    def _pick(self, logp_row: torch.Tensor, p: SamplingParams, g: torch.Generator) -> int:
        row = logp_row
        if p.temperature == 0:
            return int(torch.argmax(row))
        probs = torch.softmax(row, dim=-1)
        if p.top_p < 1.0:
            sp, si = torch.sort(probs, descending=True)
            keep = (sp.cumsum(-1) - sp) < p.top_p
            probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
        return int(torch.multinomial(probs.cpu(), 1, generator=g))

    def _finished(self, toks: list[int], p: SamplingParams, max_new: int) -> str | None:
        if toks[-1] in self.eos_ids and not p.ignore_eos:
            return "stop"
        if p.allowed is not None and toks in p.allowed:
            return "stop"
        if p.stop:
            tail = self.tokenizer.decode(toks[-16:], skip_special_tokens=False)
            if any(s in tail for s in p.stop):
                return "stop"
        if len(toks) >= max_new:
            return "length"
        return None


class HFChatModel(BaseChatModel):
    """A `ChatModel` over a local transformers model: simulated users, patients and judges."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 32, kv_store: int = 32):
        """kv_store: conversations whose KV cache is kept between calls (a simulator's next turn encodes only
        what was added since its last one); 0 turns it off. The model must not change between calls."""
        self.policy = HFPolicy(model, tokenizer, max_batch_size=max_batch_size, kv_store=kv_store)
        self.tokenizer = tokenizer
        self.calls = 0  # batched generate calls made (benchmarks count these)

    @classmethod
    def load(cls, name: str, *, dtype: torch.dtype = torch.float32, pack: bool = True, **kw: Any) -> "HFChatModel":
        """Load a model for chatting only (it never trains): eval mode, no gradients, and on a CPU in float32 its
        linear layers packed for oneDNN (`packed_linear.py`; pack=False keeps `nn.Linear`)."""
        from agentrl.inference.models import load_model

        model, tok = load_model(name, dtype=dtype)
        model.eval().requires_grad_(False)
        if pack:
            pack_linears(model)
        return cls(model, tok, **kw)

    def complete_batch(
        self,
        batch: list[list[dict[str, str]]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> list[str]:
        seeds = [None if seed is None else seed + i for i in range(len(batch))]
        return self.complete_rows(batch, temperatures=[temperature] * len(batch), max_tokens=[max_tokens] * len(batch), seeds=seeds)

    def complete_rows(self, batch: list[list[dict[str, str]]], *, temperatures: list[float], max_tokens: list[int],
                      seeds: list[int | None]) -> list[str]:
        """One batched generate call with per-row settings (what `BatchingChatModel` uses)."""
        if not (len(batch) == len(temperatures) == len(max_tokens) == len(seeds)):
            raise ValueError("complete_rows: batch, temperatures, max_tokens and seeds must have the same length")
        prompts = [
            self.tokenizer.apply_chat_template(validate_messages(m), tokenize=True, add_generation_prompt=True)
            for m in batch
        ]
        prompts = [list(p["input_ids"]) if isinstance(p, dict) or hasattr(p, "keys") else list(p) for p in prompts]
        params = [SamplingParams(temperature=t, max_new_tokens=n, seed=s) for t, n, s in zip(temperatures, max_tokens, seeds)]
        self.calls += 1
        outs = self.policy.generate(prompts, params)
        return [self.tokenizer.decode(o.token_ids, skip_special_tokens=True).strip() for o in outs]
