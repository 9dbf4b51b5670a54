"""The update's logged stats: each micro-batch's stats weighted by its share of its minibatch, summed over
micro-batches and ranks, then averaged. A loss is the minibatch's own (idle rows add 0 to it), averaged over
minibatches; any other stat is a mean over the tokens (rows, for the seq-mean aggregations) of the rows that were
trained, whatever share of the minibatch the idle ones held; the `MAX_STATS` are maxima."""

from __future__ import annotations

import math

import torch

from agentrl.train import distributed

MAX_STATS = frozenset({"ratio_max"})  # reported as the maximum over micro-batches (and ranks), not a mean


class StatSums:
    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}  # per stat, the summed share of the rows that reported it
        self.highs: dict[str, float] = {}

    def add(self, stats: dict[str, float], weight: float) -> None:
        """One micro-batch's stats, `weight` its share of the global minibatch."""
        for k, v in stats.items():
            if k in MAX_STATS:
                self.highs[k] = max(self.highs.get(k, -math.inf), v)
                continue
            self.sums[k] = self.sums.get(k, 0.0) + v * weight
            self.weights[k] = self.weights.get(k, 0.0) + weight

    def reduce(self, minibatches: int) -> dict[str, float]:
        """Every rank's sums combined (a collective: every rank calls it), `minibatches` the attempts per rank."""
        # the union of every rank's stat names: a rank whose rows were all idle (zero advantage, skipped) has none,
        # and tensors of different lengths would leave the all-reduce waiting
        keys = sorted(set().union(*distributed.all_gather(sorted(self.sums), "the stats names all-gather")))
        vals = distributed.all_reduce_sum(
            torch.tensor(
                [self.sums.get(k, 0.0) for k in keys] + [self.weights.get(k, 0.0) for k in keys], dtype=torch.float64
            ),
            "the stats all-reduce",
        ).tolist()
        out = {
            k: v / max(minibatches, 1) if k.startswith("loss/") else (v / wt if wt > 0 else 0.0)
            for k, v, wt in zip(keys, vals[: len(keys)], vals[len(keys) :])
        }
        every_highs = distributed.all_gather(self.highs, "the stats max all-gather")  # one gather for all maxima
        for k in sorted(set().union(*every_highs)):
            out[k] = max(h.get(k, -math.inf) for h in every_highs)
        return out
