"""`KVStore`: the KV cache of finished sequences, kept so that a later prompt extending one of them encodes
only its new tokens.

A simulated user or patient re-sends its whole conversation every turn (system prompt, earlier turns, the
new question): with the store, turn n encodes the tokens added since turn n-1 instead of everything again.
Only for a model whose weights do not change between calls (simulators, judges): `HFPolicy.update_weights`
clears it, and a policy trained in place must not use it.

Entries are keyed by token sequence (prompt + completion, less the last sampled token, which was never fed
to the model) and evicted least recently used first. A lookup returns, per prompt, the longest stored
prefix (at least `min_tokens`, and always leaving one token to encode).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values, each [kv_heads, tokens, head_dim]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


class KVStore:
    def __init__(self, max_entries: int, min_tokens: int = 16):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = int(max_entries)
        self.min_tokens = max(1, int(min_tokens))
        self._entries: OrderedDict[tuple[int, ...], Layers] = OrderedDict()
        # BatchingChatModel may run two batches' generate calls at once (an overflow gets its own leader)
        self._lock = threading.Lock()
        self.hits = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def lookup(self, prompts: list[list[int]]) -> list[tuple[tuple[int, ...] | None, int]]:
        """Per prompt: (key of the stored sequence to start from, tokens to reuse), or (None, 0)."""
        with self._lock:
            return [self._lookup_one(p) for p in prompts]

    def _lookup_one(self, p: list[int]) -> tuple[tuple[int, ...] | None, int]:
        best: tuple[tuple[int, ...] | None, int] = (None, 0)
        head = tuple(p[: self.min_tokens])  # cheap first test before the token-by-token comparison
        for key in self._entries:
            if key[: self.min_tokens] != head:
                continue
            k = min(common_prefix(key, p), len(p) - 1)
            if k >= self.min_tokens and k > best[1]:
                best = (key, k)
        if best[0] is not None:
            self._entries.move_to_end(best[0])
            self.hits += 1
            self.reused_tokens += best[1]
        return best

    def get(self, key: tuple[int, ...], n: int) -> Layers | None:
        """The first n positions of a stored sequence's KV, per layer (None if it was evicted meanwhile)."""
        with self._lock:
            layers = self._entries.get(key)
        return None if layers is None else [(k[:, :n], v[:, :n]) for k, v in layers]

    def put(self, seq: list[int], layers: Layers, replaces: tuple[int, ...] | None = None) -> None:
        """Store one sequence's KV; drop the entry it grew from if that is now a prefix of it (a hit on another
        conversation that only shares a system prompt keeps that conversation's entry), and the oldest beyond
        max_entries."""
        with self._lock:
            if replaces is not None and len(replaces) < len(seq) and tuple(seq[: len(replaces)]) == replaces:
                self._entries.pop(replaces, None)
            self._entries[tuple(seq)] = layers
            self._entries.move_to_end(tuple(seq))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
