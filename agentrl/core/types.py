"""Typed records passed between modules: messages, turns, episodes, and the padded training batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from agentrl.core.outcomes import EpisodeEnd


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        return cls(str(d["role"]), str(d["content"]))


@dataclass
class Turn:
    """One agent turn and the env's answer to it.

    `start` is the index in the episode's full token sequence of the turn's first sampled token.
    `env_ids` are the chat-template tokens appended after the turn (closing tokens of the agent message,
    the env's messages, and the next assistant header); empty after the last turn.
    """

    sampled_ids: list[int]
    logprobs: list[float]  # same length as sampled_ids: log pi_old(token) at sampling time
    text: str
    finish_reason: str  # "stop" | "length"
    start: int
    env_ids: list[int] = field(default_factory=list)
    env_messages: list[Message] = field(default_factory=list)
    temperature: float = 1.0
    # constrained decoding: the allowed token ids at each sampled position (None: the whole vocabulary);
    # `logprobs` are then renormalised over them, and so is the trainer's re-scoring (`allowed_tensor`)
    allowed: list[list[int]] | None = None
    # GiGPO's anchor state: a hash of the env's snapshot and the messages before this turn, equal exactly when two
    # turns start from the same state after the same conversation (`rollout/anchors.py`); None unless the runner
    # was asked for it (`anchor_turns`)
    anchor: str | None = None


@dataclass
class Episode:
    """A whole multi-turn episode, token-exact: prompt ids, then (sampled ids, env-delta ids) per turn."""

    prompt_ids: list[int]
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0
    reward_breakdown: dict[str, float] = field(default_factory=dict)
    success: bool | None = None
    end: EpisodeEnd | None = None  # how it ended (`core/outcomes.py`): the one record of it; the runner sets it
    error: str | None = None  # env_error / simulator_error: the exception, one scrubbed line (`outcomes.error_text`)
    metrics: dict[str, float] = field(default_factory=dict)
    task_id: str = ""
    group_id: int = 0
    seed: int = 0
    uid: int = 0
    messages: list[Message] = field(default_factory=list)  # the conversation, for transcripts and reports
    snapshots: dict[int, Any] = field(default_factory=dict)  # turn index -> env snapshot taken before that turn
    parent_uid: int | None = None  # set on branch continuations: the episode they branched from
    branch_pos: int | None = None  # token position the continuation branched at
    policy_version: int | None = None  # the trainer's weights that sampled it: updates done (asynchronous rollouts)

    @property
    def terminated(self) -> bool:
        """The env ended it (Gymnasium's `terminated`), read from `end`."""
        return self.end is EpisodeEnd.TERMINATED

    @property
    def truncated(self) -> bool:
        """A limit ended it (the env's turns, or the context: Gymnasium's `truncated`), read from `end`."""
        return self.end in (EpisodeEnd.TRUNCATED_TURNS, EpisodeEnd.TRUNCATED_CONTEXT)

    @property
    def input_ids(self) -> list[int]:
        ids = list(self.prompt_ids)
        for t in self.turns:
            ids += t.sampled_ids
            ids += t.env_ids
        return ids

    @property
    def action_mask(self) -> list[int]:
        mask = [0] * len(self.prompt_ids)
        for t in self.turns:
            mask += [1] * len(t.sampled_ids) + [0] * len(t.env_ids)
        return mask

    @property
    def old_logprobs(self) -> list[float]:
        lp = [0.0] * len(self.prompt_ids)
        for t in self.turns:
            lp += list(t.logprobs) + [0.0] * len(t.env_ids)
        return lp

    @property
    def allowed_ids(self) -> list[list[int] | None]:
        """Per position of `input_ids`: the allowed token ids at a constrained sampled position, else None."""
        out: list[list[int] | None] = [None] * len(self.prompt_ids)
        for t in self.turns:
            out += list(t.allowed) if t.allowed is not None else [None] * len(t.sampled_ids)
            out += [None] * len(t.env_ids)
        return out

    @property
    def turn_starts(self) -> list[int]:
        return [t.start for t in self.turns if t.sampled_ids]

    @property
    def turn_anchors(self) -> list[str | None]:
        """`Turn.anchor` of the turns in `turn_starts` (those with sampled tokens), in the same order."""
        return [t.anchor for t in self.turns if t.sampled_ids]

    @property
    def num_sampled(self) -> int:
        return sum(len(t.sampled_ids) for t in self.turns)

    def transcript(self) -> list[dict[str, str]]:
        return [m.to_dict() for m in self.messages]


@dataclass
class TrainBatch:
    """Episodes collated for the update, right-padded to the longest sequence T."""

    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long, 1 on real tokens
    action_mask: torch.Tensor  # [B, T] float, 1 on sampled (agent) tokens; env, prompt and pad tokens carry no loss
    old_logprobs: torch.Tensor  # [B, T] float, rollout logprob of token t (0 off the action mask)
    advantages: torch.Tensor  # [B, T] float
    returns: torch.Tensor | None = None  # [B, T] value targets (value-head estimators)
    old_values: torch.Tensor | None = None  # [B, T]
    ref_logprobs: torch.Tensor | None = None  # [B, T]
    allowed: torch.Tensor | None = (
        None  # [B, T, A] long: allowed ids at constrained positions, -1 padded (see allowed_tensor)
    )
    value_mask: torch.Tensor | None = None  # [B, T] float: where the value loss is taken; None: the action mask
    # off-policy correction (ppo.offpolicy_correction): the sampler's log-probs when old_logprobs were recomputed by
    # the trainer, and the per-token importance weights π_old / π_sampler the loss applies (`losses.importance_weights`)
    sampler_logprobs: torch.Tensor | None = None  # [B, T]
    is_weights: torch.Tensor | None = None  # [B, T]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: torch.Tensor | list[int]) -> TrainBatch:
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        kw: dict[str, Any] = {k: (None if v is None else v[idx_t]) for k, v in self.__dict__.items()}
        return TrainBatch(**kw)

    def to(self, device: torch.device | str) -> TrainBatch:
        kw: dict[str, Any] = {k: (None if v is None else v.to(device)) for k, v in self.__dict__.items()}
        return TrainBatch(**kw)


def collate(episodes: list[Episode], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad episodes into (input_ids [B,T], attention_mask [B,T], action_mask [B,T], old_logprobs [B,T])."""
    if not episodes:
        raise ValueError("collate() needs at least one episode")
    seqs = [e.input_ids for e in episodes]
    T = max(len(s) for s in seqs)
    B = len(seqs)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.long)
    amask = torch.zeros((B, T), dtype=torch.float32)
    oldlp = torch.zeros((B, T), dtype=torch.float32)
    for i, e in enumerate(episodes):
        n = len(seqs[i])
        ids[i, :n] = torch.tensor(seqs[i], dtype=torch.long)
        attn[i, :n] = 1
        amask[i, :n] = torch.tensor(e.action_mask, dtype=torch.float32)
        oldlp[i, :n] = torch.tensor(e.old_logprobs, dtype=torch.float32)
    return ids, attn, amask, oldlp


def allowed_tensor(episodes: list[Episode], T: int | None = None) -> torch.Tensor | None:
    """[B, T, A] long: at a constrained sampled position the allowed token ids (padded with -1), elsewhere all
    -1 (the whole vocabulary). None when no episode was sampled under constrained decoding."""
    per = [e.allowed_ids for e in episodes]
    A = max((len(a) for row in per for a in row if a is not None), default=0)
    if A == 0:
        return None
    T = T or max(len(row) for row in per)
    out = torch.full((len(episodes), T, A), -1, dtype=torch.long)
    for b, row in enumerate(per):
        for t, a in enumerate(row):
            if a is not None:
                out[b, t, : len(a)] = torch.tensor(a, dtype=torch.long)
    return out
