"""Shared-prefix training forward: encode tokens that several rows share once, with gradients.

The idea of "Prefix Grouper" (Liu et al. 2025, "Prefix Grouper: Efficient GRPO Training through Shared-Prefix
Forward"): the rows of a training micro-batch often begin with the same tokens -- every ToolUse-v0 episode starts
with the same ~1,800-token system prompt, a GRPO group's episodes share their whole prompt, TRePO branch
continuations share their parent's tokens up to the branch point. The naive forward re-encodes that prefix in
every row. Here the rows are laid out as a small tree of token segments:

    level 0 (root):   tokens [0, P) shared by every row                     -- one copy
    level 1 (groups): tokens [P, P_g) shared by a group of rows (optional)  -- one copy per group
    leaves:           each row's remaining tokens [P_g, L_b)                -- one copy per row

Each level is one decoder call over its nodes (right-padded), continuing from its parent's KV cache: the parent's
keys/values are expanded (a view when the parent level has one node) or index-selected to the child nodes, so
backward sums every child's gradient into the one copy -- exactly the gradient of the naive batch, where each
row's copy of the prefix gets its own share. Attention masks cover [parent's columns | own columns] (padding
columns are masked, so they change no real position's result), position ids continue the row's real positions.

Log-probs: token t+1 is predicted from the hidden state at column t. Where t and t+1 lie in the same shared
segment (a TRePO sibling's shared agent tokens), the LM head, log-prob and entropy are computed once and the result
is broadcast to every row that needs it (each row then weights it with its own advantage); where t is a
segment's last column (the prefix's last hidden state predicting a row's first own token) it is computed per row.

`shared_prefix_forward` returns what `forward.forward` returns (to float rounding) and falls back to it where the
tree does not pay or does not apply (see `plan`). Positions past a row's last real token read 0 (the naive path
fills them from padding queries; they never carry loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from agentrl.algo.losses import entropy_from_logits, token_logprobs
from agentrl.train.forward import ForwardOut, ValueHead, allowed_argmax, forward, head_logits, on_model_device

MIN_SHARED = 16  # shared tokens below which a segment is not worth its own decoder call (root or group)
# Head post-processing that `model(...)` applies and `get_output_embeddings()` alone does not: without a `mask`
# the naive path runs the whole model, so such models keep it.
_HEAD_EXTRAS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


@dataclass
class Level:
    """One decoder call of the tree: N nodes, node n holding columns [start[n], end[n]) of row rep[n]."""

    rep: Tensor  # [N] long: a row whose tokens the node holds (every row under the node has the same ones there)
    start: Tensor  # [N] long: first column
    end: Tensor  # [N] long: one past the last column (end == start only for a lone row's node under a root)
    parent: Tensor | None  # [N] long: the node of the previous level it continues; None on the first level


@dataclass
class Plan:
    levels: list[Level]  # the last level has one node per row (node b = row b)
    tokens: int  # token columns the decoder runs over, padding included (the naive batch: B * T)


def _lcp_adjacent(ids: Tensor, attn: Tensor, allowed: Tensor | None) -> Tensor:
    """[B-1]: common-prefix length of consecutive rows of ids [B, T] (real tokens, equal allowed ids only)."""
    eq = (ids[:-1] == ids[1:]) & (attn[:-1] > 0) & (attn[1:] > 0)  # [B-1, T]
    if allowed is not None:
        eq &= (allowed[:-1] == allowed[1:]).all(-1)
    return eq.long().cumprod(-1).sum(-1)


def plan(ids: Tensor, attn: Tensor, allowed: Tensor | None = None, *, two_level: bool = True) -> Plan | None:
    """The segment tree for a right-padded batch ids [B, T] / attn [B, T], or None when the naive forward is as
    cheap or the batch does not fit (one row, rows not right-padded, a row under 2 tokens).

    Rows are sorted by their tokens so that rows sharing a prefix are neighbours; the root is the common prefix of
    all rows, groups are runs of neighbours sharing >= MIN_SHARED more tokens. Every row keeps >= 1 own token.
    Among naive, root + leaves and root + groups + leaves, the one running the fewest token columns
    (padding included) wins; the tree is only used when it beats the naive B * T.
    """
    B, T = ids.shape
    if B < 2:
        return None
    lens = attn.sum(-1)  # [B]
    if not torch.equal(attn > 0, torch.arange(T, device=ids.device) < lens[:, None]) or int(lens.min()) < 2:
        return None  # left padding or holes: positions would need the general mask path; keep the naive one
    L = lens.tolist()
    order = sorted(range(B), key=lambda b: ids[b, : L[b]].tolist())
    o = torch.tensor(order, device=ids.device)
    lcp = _lcp_adjacent(ids[o], attn[o], None if allowed is None else allowed[o]).tolist()  # [B-1]
    root = min(min(lcp), min(L) - 1)
    R = root if root >= MIN_SHARED else 0
    dev = ids.device

    def t(x: list[int]) -> Tensor:
        return torch.tensor(x, dtype=torch.long, device=dev)

    best: tuple[int, list[Level]] = (B * T, [])
    if R:
        leaves = Level(t(list(range(B))), t([R] * B), t(L), t([0] * B))
        best = min(
            best, (R + B * (max(L) - R), [Level(t([order[0]]), t([0]), t([R]), None), leaves]), key=lambda c: c[0]
        )
    if two_level:
        runs: list[list[int]] = [[order[0]]]  # runs of sorted rows sharing >= R + MIN_SHARED tokens
        shared: list[int] = [T]
        for i in range(1, B):
            if lcp[i - 1] >= R + MIN_SHARED:
                runs[-1].append(order[i])
                shared[-1] = min(shared[-1], lcp[i - 1])
            else:
                runs.append([order[i]])
                shared.append(T)
        ends = [min(k, min(L[b] for b in run) - 1) if len(run) > 1 else 0 for run, k in zip(runs, shared)]
        groups = [g for g, run in enumerate(runs) if len(run) > 1 and ends[g] - R >= MIN_SHARED]
        if groups:
            M = max(ends[g] for g in groups) - R  # width of the group level
            rep: list[int] = []  # per node: a row holding its tokens
            start, end, node_of = [], [], [0] * B
            for g, run in enumerate(runs):
                if g in groups:
                    members, e = [run], ends[g]
                else:  # a row in no group: a node of its own, holding its own next tokens (so, with no root
                    # above it, no node is all padding: every query attends to >= 1 real key)
                    members, e = [[b] for b in run], None
                for m in members:
                    for b in m:
                        node_of[b] = len(rep)
                    rep.append(m[0])
                    start.append(R)
                    end.append(e if e is not None else min(R + M, L[m[0]] - 1))
            S = max(L[b] - end[node_of[b]] for b in range(B))
            cost = R + len(rep) * M + B * S
            levels = [
                Level(t(rep), t(start), t(end), t([0] * len(rep)) if R else None),
                Level(t(list(range(B))), t([end[node_of[b]] for b in range(B)]), t(L), t(node_of)),
            ]
            if R:
                levels.insert(0, Level(t([order[0]]), t([0]), t([R]), None))
            best = min(best, (cost, levels), key=lambda c: c[0])
    return Plan(best[1], best[0]) if best[1] else None


def _supported(model: Any, value_head: ValueHead | None, mask: Tensor | None) -> bool:
    """A plain decoder + linear head whose every layer is full attention and keeps a KV cache in training."""
    from agentrl.inference.kv_cache import supports

    decoder = getattr(model, "get_decoder", lambda: None)()
    head = getattr(model, "get_output_embeddings", lambda: None)()
    if decoder is None or head is None or not supports(model.config):
        return False
    if any(getattr(m, "gradient_checkpointing", False) for m in model.modules()):
        return False  # checkpointed layers drop the cache in training (transformers' GradientCheckpointingLayer)
    if mask is None:  # the naive path then scores with model(...), which may post-process the head's logits
        cfg = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
        if value_head is not None or any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in _HEAD_EXTRAS):
            return False
    return True


def _child_cache(cache: Any, parent: Tensor, n_parent: int) -> Any:
    """The level's cache: each node gets its parent node's keys/values. From one parent node an expand (a view:
    backward sums the children's gradients into it); otherwise an index_select (backward index_adds them)."""
    for layer in cache.layers:
        if n_parent == 1:
            layer.keys = layer.keys.expand(len(parent), -1, -1, -1)
            layer.values = layer.values.expand(len(parent), -1, -1, -1)
        else:
            layer.keys = layer.keys.index_select(0, parent)
            layer.values = layer.values.index_select(0, parent)
    return cache


def shared_prefix_forward(
    model: Any,
    value_head: ValueHead | None,
    ids: Tensor,
    attn: Tensor,
    temperature: float,
    *,
    entropy: bool,
    mask: Tensor | None = None,
    allowed: Tensor | None = None,
    two_level: bool = True,
    argmax: bool = False,
) -> ForwardOut:
    """`forward.forward(model, value_head, ids, attn, temperature, entropy=..., mask=..., allowed=...)` with every
    shared prefix encoded once (module docstring). ids / attn / mask [B, T] (right-padded), allowed [B, T, A]; like
    it, run where the model is and answered on `ids`' device.
    Falls back to the naive forward when `plan` finds nothing worth sharing or the model does not fit (not a
    plain decoder with get_decoder()/get_output_embeddings(), sliding-window layers, gradient checkpointing,
    or no mask with a value head or post-processed logits)."""
    from transformers import DynamicCache

    moved = on_model_device(
        shared_prefix_forward,
        model,
        value_head,
        ids,
        attn,
        temperature,
        entropy=entropy,
        mask=mask,
        allowed=allowed,
        two_level=two_level,
        argmax=argmax,
    )
    if moved is not None:
        return moved
    tree = plan(ids, attn, allowed, two_level=two_level) if _supported(model, value_head, mask) else None
    if tree is None:
        return forward(
            model, value_head, ids, attn, temperature, entropy=entropy, mask=mask, allowed=allowed, argmax=argmax
        )
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    B, T = ids.shape
    dev = ids.device
    pos_full = (attn.cumsum(-1) - 1).clamp(min=0)  # [B, T]: the naive path's position ids

    # -- the decoder calls, one per level -------------------------------------------------------------------
    cache, acc, hiddens, widths = None, None, [], []
    for lv in tree.levels:
        W = max(int((lv.end - lv.start).max()), 1)
        cols = lv.start[:, None] + torch.arange(W, device=dev)  # [N, W]: the node's columns in its row
        real = cols < lv.end[:, None]  # [N, W]; the rest is right padding
        cols = cols.clamp(max=T - 1)
        seg_ids = ids[lv.rep[:, None], cols]  # [N, W] (padding columns hold some real id: masked out)
        seg_pos = pos_full[lv.rep[:, None], cols]  # [N, W]
        seg_attn = real.to(attn.dtype)
        if cache is None:
            cache, acc = DynamicCache(), seg_attn
        else:
            assert acc is not None and lv.parent is not None, "a level after the first continues the one before it"
            cache = _child_cache(cache, lv.parent, acc.shape[0])
            acc = torch.cat([acc[lv.parent], seg_attn], dim=1)  # [N, C + W]: parent's columns, then its own
        out = decoder(
            input_ids=seg_ids, attention_mask=acc, position_ids=seg_pos, past_key_values=cache, use_cache=True
        )
        hiddens.append(out.last_hidden_state)  # [N, W, H]
        widths.append(W)
    flat = torch.cat([h.reshape(-1, h.shape[-1]) for h in hiddens])  # [U, H]: every encoded column once

    # -- where each (row, column)'s hidden state lives: src [B, T] into flat, node [B, T] (-1: past the row) --
    col = torch.arange(T, device=dev)[None, :]  # [1, T]
    src = torch.full((B, T), -1, dtype=torch.long, device=dev)
    node = torch.full((B, T), -1, dtype=torch.long, device=dev)
    anc = torch.arange(B, device=dev)  # each row's node on the current level, walking up from the leaves
    off, node_off = [0], [0]
    for lv, W in zip(tree.levels, widths):
        off.append(off[-1] + len(lv.rep) * W)
        node_off.append(node_off[-1] + len(lv.rep))
    for d in range(len(tree.levels) - 1, -1, -1):
        lv, W = tree.levels[d], widths[d]
        st, en = lv.start[anc][:, None], lv.end[anc][:, None]  # [B, 1]
        inside = (col >= st) & (col < en)  # [B, T]
        src = torch.where(inside, off[d] + anc[:, None] * W + (col - st), src)
        node = torch.where(inside, node_off[d] + anc[:, None], node)
        if lv.parent is not None:
            anc = lv.parent[anc]

    # -- the LM head once per distinct (hidden state, target): shared when both lie in one shared segment ----
    lens = attn.sum(-1)  # [B]
    sel = (col[:, :-1] + 1 < lens[:, None]).expand(B, T - 1)  # [B, T-1]: target column t+1 is a real token
    if mask is not None:
        sel = sel & (mask[:, 1:] > 0)
    bb, jj = sel.nonzero(as_tuple=True)  # [n]: selected (row, column t) pairs
    same = node[bb, jj] == node[bb, jj + 1]
    key = torch.where(same, src[bb, jj], flat.shape[0] + bb * T + jj)  # [n]
    uniq, inv = torch.unique(key, return_inverse=True)  # [u], [n]
    first = torch.empty(len(uniq), dtype=torch.long, device=dev).scatter_(0, inv, torch.arange(len(key), device=dev))
    hb, hj = bb[first], jj[first]  # [u]: one representative pair per distinct item
    logits = head_logits(head, flat[src[hb, hj]]).float() / temperature  # [u, V]
    sub_allowed = None if allowed is None else allowed[hb, hj + 1]  # [u, A]
    lp_u = token_logprobs(logits, ids[hb, hj + 1], allowed=sub_allowed)  # [u]
    zeros = torch.zeros((B, T), dtype=torch.float32, device=dev)
    lp = zeros.index_put((bb, jj + 1), lp_u[inv])  # [B, T]
    ent = zeros.index_put((bb, jj + 1), entropy_from_logits(logits, sub_allowed)[inv]) if entropy else None
    values = None
    if value_head is not None:  # V before token t+1 from the hidden state at column t, for every real column
        vb, vj = (src[:, :-1] >= 0).nonzero(as_tuple=True)
        values = zeros.index_put((vb, vj + 1), value_head(flat)[src[vb, vj]])
    top = None
    if argmax:  # the greedy token, as the naive path picks it (constrained positions: the likeliest allowed id)
        if sub_allowed is not None and sub_allowed.shape[-1] > 0:
            best = allowed_argmax(logits, sub_allowed)  # [u]
        else:
            best = logits.argmax(-1)
        top = torch.full((B, T), -1, dtype=torch.long, device=dev).index_put((bb, jj + 1), best[inv])
    return ForwardOut(lp, ent, values, top)
