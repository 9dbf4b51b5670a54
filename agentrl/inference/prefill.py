"""Prefill: a batch's prompts encoded into one left-padded KV cache, ready for the decode loop.

A `PrefillPlan` says what each row runs through the model and where the KV of the rest of its prompt comes from:

* plain: every prompt is encoded whole;
* shared prefix: prompts that share a prefix of at least `min_shared_prefix` tokens (TRePO's branch
  continuations, a group's episodes) encode it once; its KV is copied to each of the group's rows, which then
  encode their own suffix;
* from the KV store: a prompt that extends a stored sequence (a simulator's next turn, `kv_store.py`) starts
  from its KV and encodes only the new tokens.

`Encoder.run(plan)` carries a plan out -> `Prefilled`. Rows are left-padded and position ids count real tokens
only, so a padded row computes exactly what it would alone. A row continuing from known KV is laid out
[pad | known | pad | suffix]: the attention mask hides both pads and the positions skip them. With
`row_prefill` (the CPU default) long runs of tokens are encoded one row at a time, unpadded and unmasked, and
laid out left-padded afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agentrl.inference.kv_cache import GrowingCache, RowKV, left_pad_rows
from agentrl.inference.kv_store import KVStore, common_prefix

RESERVE_CAP = 256  # positions reserved for replies up front; longer ones grow the cache by doubling
ROW_PREFILL_MIN = 128  # mean tokens per row from which `row_prefill` encodes one row at a time (`Encoder.by_rows`)


@dataclass
class PrefillPlan:
    """What one batch's prefill does. Row i encodes `suffixes[i]` after the KV of the rest of its prompt: its
    group's shared prefix (`prefixes[group[i]]`), or the KV store's `starts[i]`, or nothing."""

    suffixes: list[list[int]]  # per row: the tokens run through the model
    room: int  # cache positions reserved beyond the prompts, for the replies
    prefixes: list[list[int]] = field(default_factory=list)  # shared prefixes, each encoded once
    group: list[int] = field(default_factory=list)  # per row: the index of its shared prefix
    starts: list[RowKV | None] | None = None  # per row: the stored KV of its prompt before the suffix, or None
    continues: list[tuple[int, ...] | None] = field(default_factory=list)  # per row: the store entry the prompt
    # extends (the row's own entry replaces it when stored), or None


@dataclass
class Prefilled:
    """The state the decode loop starts from, one row per prompt."""

    cache: Any  # the KV cache (a `GrowingCache`, or transformers' own), rows left-padded
    logits: torch.Tensor  # [rows, vocab]: at each prompt's last token
    attention: torch.Tensor  # [rows, columns]: 1 over real tokens, 0 over pads
    next_pos: torch.Tensor  # [rows, 1]: the position id of each row's next token


def shared_prefixes(prompts: list[list[int]], min_shared: int) -> tuple[list[list[int]], list[int]] | None:
    """Group prompts that share a prefix of >= min_shared tokens: (the groups' prefixes, each prompt's group).
    Every prompt keeps at least one token after its prefix. None when nothing is shared."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    groups: list[list[int]] = []  # runs of indices in sorted order
    shared: list[int] = []  # each run's common prefix length
    for i in order:
        if groups:
            a, b = prompts[groups[-1][-1]], prompts[i]
            n = min(shared[-1], len(a), len(b))
            k = common_prefix(a[:n], b)
            if k >= min_shared:
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


def plan_prefill(
    prompts: list[list[int]], room: int, *, store: KVStore | None, prefix_reuse: bool, min_shared_prefix: int
) -> PrefillPlan:
    """Rows start from the KV store when any prompt extends a stored sequence; else prompts sharing a prefix
    encode it once (`prefix_reuse`); else every prompt is encoded whole."""
    hits = store.lookup(prompts) if store is not None else []
    continues = [key for key, _ in hits] or [None] * len(prompts)
    if store is not None and any(k for _, k in hits):
        starts = [store.get(key, k) if key is not None else None for key, k in hits]
        reused = [k if st is not None else 0 for (_, k), st in zip(hits, starts)]  # evicted meanwhile: a miss
        if any(reused):
            return PrefillPlan([p[k:] for p, k in zip(prompts, reused)], room, starts=starts, continues=continues)
        return PrefillPlan(list(prompts), room, continues=continues)
    groups = shared_prefixes(prompts, min_shared_prefix) if prefix_reuse else None
    if groups is None:
        return PrefillPlan(list(prompts), room, continues=continues)
    prefixes, member = groups
    suffixes = [p[len(prefixes[g]) :] for p, g in zip(prompts, member)]
    return PrefillPlan(suffixes, room, prefixes=prefixes, group=member, continues=continues)


def _dynamic_cache(layers: RowKV) -> Any:
    """A transformers `DynamicCache` holding these per-layer keys and values ([batch, heads, tokens, dim])."""
    from transformers import DynamicCache

    past = DynamicCache()
    for layer, (K, V) in enumerate(layers):
        past.update(K, V, layer)
    return past


class Encoder:
    """Carries out `PrefillPlan`s with one model; `encoded` counts the prompt tokens it ran through it."""

    def __init__(self, model: Any, device: torch.device, pad_id: int, *, row_prefill: bool, growing_cache: bool):
        """row_prefill: encode long runs one row at a time (`by_rows`). growing_cache: decode into a
        `GrowingCache` (full-attention models, `kv_cache.supports`) instead of transformers' default cache."""
        self.model = model
        self.device = device
        self.pad_id = pad_id
        self.row_prefill = row_prefill
        self.growing_cache = growing_cache
        self.encoded = 0

    def run(self, plan: PrefillPlan) -> Prefilled:
        if plan.prefixes:
            return self._shared(plan.prefixes, plan.group, plan.suffixes, plan.room)
        if plan.starts is not None:
            return self._continue(plan.starts, plan.suffixes, plan.room)
        if self.by_rows(plan.suffixes):
            return self._rows([None] * len(plan.suffixes), plan.suffixes, plan.room)
        return self._encode_after(self._new_cache(plan.room), self._no_columns(len(plan.suffixes)), plan.suffixes)

    def by_rows(self, seqs: list[list[int]]) -> bool:
        """Whether to encode these token runs one row at a time: with `row_prefill` when they average at least
        ROW_PREFILL_MIN tokens. Shorter runs go as one padded batch: a forward of a few tokens costs about a
        read of all the weights, and a turn's new question after the KV store's prefix is ~20 tokens."""
        return self.row_prefill and sum(len(q) for q in seqs) >= ROW_PREFILL_MIN * len(seqs)

    def _shared(self, prefixes: list[list[int]], member: list[int], sfx: list[list[int]], room: int) -> Prefilled:
        """Encode each group's prefix once, copy its KV to the group's rows, then encode the suffixes."""
        if self.by_rows(prefixes):  # each prefix alone, then the rows continue from their group's
            starts, _ = self.encode_rows([None] * len(prefixes), prefixes)
            return self._continue([starts[g] for g in member], sfx, room)
        cache = self._new_cache(max(len(q) for q in sfx) + room)
        pre = self._encode_after(cache, self._no_columns(len(prefixes)), prefixes)
        rows = torch.tensor(member, dtype=torch.long, device=self.device)
        pre.cache.batch_select_indices(rows)  # group rows -> prompt rows (repeats copy the shared prefix's KV)
        return self._encode_after(pre.cache, pre.attention[rows], sfx)

    def _continue(self, starts: list[RowKV | None], sfx: list[list[int]], room: int) -> Prefilled:
        """Rows that continue from known KV (`starts[i]`, at least one not None) with tokens `sfx[i]`: one row at
        a time (`by_rows`), or as one batch after the starts laid out left-padded."""
        if self.by_rows(sfx):
            return self._rows(starts, sfx, room)
        cache, attn, _ = self._left_padded(starts, max(len(q) for q in sfx) + room)  # room: suffixes, replies
        return self._encode_after(cache, attn, sfx)

    def _encode_after(self, cache: Any, pre_attn: torch.Tensor, sfx: list[list[int]]) -> Prefilled:
        """One forward of the left-padded `sfx` after the KV already in `cache` (its columns' mask `pre_attn`)."""
        S = max(len(q) for q in sfx)
        ids, sfx_attn = self._left_pad(sfx, S)
        attn = torch.cat([pre_attn, sfx_attn], dim=1)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)[:, -S:]
        # logits_to_keep=1: only the last position's logits are needed (the LM head over a whole prompt is the
        # largest cost of a prefill with a 49k vocabulary)
        out = self.model(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.encoded += sum(len(q) for q in sfx)
        return Prefilled(out.past_key_values, out.logits[:, -1, :], attn, pos[:, -1:] + 1)

    def _rows(self, starts: list[RowKV | None], sfx: list[list[int]], room: int) -> Prefilled:
        """Encode each row alone (`encode_rows`), then lay the rows out left-padded in one cache with `room`."""
        rows, logits = self.encode_rows(starts, sfx)
        cache, attn, lens = self._left_padded(rows, room)
        next_pos = torch.tensor(lens, dtype=torch.long, device=self.device).unsqueeze(-1)
        return Prefilled(cache, torch.cat(logits), attn, next_pos)

    def encode_rows(self, starts: list[RowKV | None], sfx: list[list[int]]) -> tuple[list[RowKV], list[torch.Tensor]]:
        """Encode row i's tokens `sfx[i]` alone (batch of one, no padding), after `starts[i]` (the KV of the
        tokens before them, or None) -> (each row's whole KV, each row's last logits [1, vocab])."""
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
            self.encoded += len(q)
        return rows, logits

    def _new_cache(self, room: int) -> Any:
        """An empty `GrowingCache` with `room` positions beyond its first update, or None (the model makes its
        default cache)."""
        return GrowingCache(room) if self.growing_cache else None

    def _no_columns(self, n: int) -> torch.Tensor:
        """The attention mask of an empty cache: n rows, no columns."""
        return torch.zeros((n, 0), dtype=torch.long, device=self.device)

    def _left_pad(self, seqs: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token runs right-aligned in [rows, width] -> (ids, attention mask)."""
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, q in enumerate(seqs):
            if q:
                ids[i, width - len(q) :] = torch.tensor(q, dtype=torch.long)
                attn[i, width - len(q) :] = 1
        return ids.to(self.device), attn.to(self.device)

    def _left_padded(self, rows: Sequence[RowKV | None], room: int) -> tuple[Any, torch.Tensor, list[int]]:
        """Rows' KV (or None) right-aligned in one cache with `room` positions to spare -> (cache, attention mask
        over its filled columns, each row's length)."""
        lens = [0 if r is None else r[0][0].shape[1] for r in rows]
        L = max(lens)
        if self.growing_cache:  # built in place
            cache = GrowingCache.left_padded(rows, L, room)
        else:
            cache = _dynamic_cache(left_pad_rows(rows, L))
        attn = torch.zeros((len(rows), L), dtype=torch.long, device=self.device)
        for i, n in enumerate(lens):
            if n:
                attn[i, L - n :] = 1
        return cache, attn, lens
