"""`EpisodeRecord`: one finished episode as a JSON line, the one shape every writer and reader of episodes uses.

Writers: the trainer's `episodes/step_N.jsonl` (a few episodes per update, with the per-token view and the
advantages the estimator gave them, for the report's credit heatmap) and `agentrl rollout --out` (transcripts).
Readers: `agentrl report`, and `agentrl sft --from FILE` (it reads the `messages` of any such line).

Every field but `reward` may be absent: a writer leaves out what it does not have (the trainer has no `model`
name, a rollout no advantages), and files written before this record existed lack the newer keys. Reading is
tolerant: a missing key is None (or empty), a value of the wrong type is dropped, and keys this version does not
know are kept in `extra` and written back, so a record survives a read-write round trip unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agentrl.core.bounded import iter_jsonl, loads_bounded
from agentrl.core.types import Episode


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def as_number(v: Any) -> float | None:
    """A finite number, also from the strings a logger writes for JSON's missing NaN/inf ("nan"); else None."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return None
    return float(v) if _finite(v) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _numbers(v: Any) -> dict[str, float]:
    if not isinstance(v, dict):
        return {}
    return {str(k): n for k, x in v.items() if (n := as_number(x)) is not None}


def _messages(v: Any) -> list[dict[str, str]]:
    if not isinstance(v, list):
        return []
    return [
        {"role": str(m["role"]), "content": str(m.get("content") or "")}
        for m in v
        if isinstance(m, dict) and "role" in m
    ]


@dataclass
class TurnRecord:
    """One agent turn: its text, how many tokens it sampled and the env appended, and the env's reply."""

    text: str = ""
    sampled_tokens: int | None = None
    env_tokens: int | None = None
    finish_reason: str | None = None
    env_messages: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any) -> TurnRecord:
        if not isinstance(d, dict):
            return cls(text=str(d))
        return cls(
            text=str(d.get("text", "")),
            sampled_tokens=_int(d.get("sampled_tokens")),
            env_tokens=_int(d.get("env_tokens")),
            finish_reason=_str(d.get("finish_reason")),
            env_messages=_messages(d.get("env_messages")),
        )


# how each JSON key is read back: the key's value -> the field's value (None or empty when unusable)
_READERS: dict[str, Callable[[Any], Any]] = {
    "env": _str,
    "model": _str,
    "step": _int,
    "uid": lambda v: v,
    "algorithm": _str,
    "seed": _int,
    "task_id": _str,
    "group_id": _int,
    "reward": as_number,
    "reward_breakdown": _numbers,
    "success": _bool,
    "terminated": _bool,
    "truncated": _bool,
    "end": _str,
    "error": _str,
    "prompt_tokens": _int,
    "turns": lambda v: [TurnRecord.from_dict(t) for t in v] if isinstance(v, list) else [],
    "messages": _messages,
    "metrics": _numbers,
    "tokens": lambda v: [str(t) for t in v] if isinstance(v, list) else None,
    "action_mask": lambda v: [1 if m else 0 for m in v] if isinstance(v, list) else None,
    "advantages": lambda v: [x if (x := as_number(a)) is not None else 0.0 for a in v] if isinstance(v, list) else None,
}


@dataclass
class EpisodeRecord:
    """A finished episode as written to JSONL. Field order is the key order of a written line."""

    # what ran: where it came from (each writer sets its own)
    env: str | None = None  # env id (rollout)
    model: str | None = None  # model name (rollout)
    step: int | None = None  # the update whose batch held it (trainer)
    uid: Any = None
    algorithm: str | None = None  # the advantage estimator (trainer)
    seed: int | None = None
    task_id: str | None = None
    group_id: int | None = None
    # how it ended
    reward: float | None = None  # None: unreadable in an old file (a NaN written as "nan")
    reward_breakdown: dict[str, float] = field(default_factory=dict)
    success: bool | None = None
    terminated: bool | None = None
    truncated: bool | None = None
    end: str | None = None  # an `EpisodeEnd` value: terminated, truncated_turns, ..., sampler_error, timed_out
    error: str | None = None  # an infrastructure end: the exception or the sampler's error, one scrubbed line
    # the conversation
    prompt_tokens: int | None = None
    turns: list[TurnRecord] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    # the per-token view (trainer): each token decoded alone, 1 on sampled (agent) tokens, the estimator's advantages
    tokens: list[str] | None = None
    action_mask: list[int] | None = None
    advantages: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept for the round trip

    @classmethod
    def from_episode(
        cls,
        ep: Episode,
        tokenizer: Any = None,
        *,
        advantages: Any = None,
        env: str | None = None,
        model: str | None = None,
        step: int | None = None,
        algorithm: str | None = None,
    ) -> EpisodeRecord:
        """tokenizer: given, the per-token view is recorded too (each id of `ep.input_ids` decoded on its own, and
        the action mask); advantages: one per token (rounded to 5 decimals), e.g. a row of the trainer's batch."""
        rec = cls(
            env=env,
            model=model,
            step=step,
            uid=ep.uid,
            algorithm=algorithm,
            seed=ep.seed,
            task_id=ep.task_id,
            group_id=ep.group_id,
            reward=ep.reward,
            reward_breakdown=dict(ep.reward_breakdown),
            success=ep.success,
            terminated=ep.terminated,
            truncated=ep.truncated,
            end=None if ep.end is None else ep.end.value,
            error=ep.error,
            prompt_tokens=len(ep.prompt_ids),
            turns=[
                TurnRecord(
                    t.text, len(t.sampled_ids), len(t.env_ids), t.finish_reason, [m.to_dict() for m in t.env_messages]
                )
                for t in ep.turns
            ],
            messages=ep.transcript(),
            metrics=dict(ep.metrics),
        )
        if tokenizer is not None:
            rec.tokens = [tokenizer.decode([t]) for t in ep.input_ids]
            rec.action_mask = ep.action_mask
        if advantages is not None:
            rec.advantages = [round(float(a), 5) for a in advantages]
        return rec

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: fields that are None are left out (a writer's missing ones), `extra` merged back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "turns":
                v = [{k: x for k, x in t.__dict__.items() if x is not None} for t in v]
            if f.name != "extra" and v is not None:
                out[f.name] = v
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeRecord:
        known = {k: _READERS[k](v) for k, v in d.items() if k in _READERS}
        return cls(**known, extra={k: v for k, v in d.items() if k not in _READERS})

    @classmethod
    def from_json(cls, line: str | bytes) -> EpisodeRecord:
        """Raises ValueError when the line is not a JSON object, is over `bounded.MAX_LINE_BYTES` or nests deeper
        than `bounded.MAX_JSON_DEPTH` (checked without recursion); anything else is read as far as it can be."""
        return cls._from_value(loads_bounded(line))  # BoundedInputError is a ValueError

    @classmethod
    def _from_value(cls, d: Any) -> EpisodeRecord:
        if not isinstance(d, dict):
            raise ValueError(f"an episode record is a JSON object, got {type(d).__name__}")
        return cls.from_dict(d)


def read_records(lines: list[str]) -> tuple[list[tuple[int, EpisodeRecord]], list[tuple[int, str]]]:
    """Records of a JSONL file's lines, with their line numbers, and the (line number, reason) of lines that are
    not records (bounded: too long, too deep, not JSON, not an object); blank lines are neither."""
    good, bad = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            good.append((i, EpisodeRecord.from_json(line)))
        except ValueError as exc:
            bad.append((i, str(exc)))
    return good, bad


def read_records_file(path: str | Path) -> tuple[list[tuple[int, EpisodeRecord]], list[tuple[int, str]]]:
    """`read_records` of a file, streamed (`bounded.iter_jsonl`): a line over the cap is skipped without being
    held whole, so one bad line costs that line only."""
    good, bad = [], []
    for i, value, why in iter_jsonl(path):
        if why is None:
            try:
                good.append((i, EpisodeRecord._from_value(value)))
                continue
            except ValueError as exc:
                why = str(exc)
        bad.append((i, why))
    return good, bad


def write_records(records: list[EpisodeRecord]) -> str:
    """The JSONL text of `records` (one line each, newline-terminated), for `atomic_write_text`."""
    return "".join(r.to_json() + "\n" for r in records)
