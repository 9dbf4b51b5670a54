"""How an episode ended, as one explicit set (`EpisodeEnd`), and what the update does with each kind.

The rollout runner sets `Episode.end` on every episode it returns:

* terminated: the env ended the episode (the agent finished, or failed the task);
* truncated_turns: the env's `max_turns` ran out;
* truncated_context: the sequence reached the runner's `max_seq_len` (scored by `end_truncated()`);
* env_error: stepping the env raised (a bug or a broken resource in the env);
* simulator_error: a simulated user, patient or judge failed (`SimulatorError`, an HTTP backend that gave up,
  or any exception raised from inside a chat model's call);
* timed_out: the episode ran past the runner's `episode_timeout_s`;
* sampler_error: the policy's sampler could not produce the agent's turn (the remote backend's servers all failed
  for this request, `inference/remote.py`: a `Completion` with finish_reason "error").

The last four are infrastructure failures: the agent's tokens were not what went wrong, so by default they are
left out of the update (`usable_for_advantages(..., "exclude_infra")`) rather than scored 0, which would teach
the policy that whatever it said before a server hiccup was bad. "score_zero" keeps them, with reward 0.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentrl.core.types import Episode


class EpisodeEnd(str, Enum):
    """How an episode ended (`Episode.end`); the value is what an `EpisodeRecord` stores."""

    TERMINATED = "terminated"
    TRUNCATED_TURNS = "truncated_turns"
    TRUNCATED_CONTEXT = "truncated_context"
    ENV_ERROR = "env_error"
    SIMULATOR_ERROR = "simulator_error"
    TIMED_OUT = "timed_out"
    SAMPLER_ERROR = "sampler_error"

    @property
    def infra(self) -> bool:
        """An infrastructure failure: not the agent's doing."""
        return self in INFRA_ENDS


INFRA_ENDS = frozenset(
    {EpisodeEnd.ENV_ERROR, EpisodeEnd.SIMULATOR_ERROR, EpisodeEnd.TIMED_OUT, EpisodeEnd.SAMPLER_ERROR}
)
ADVANTAGE_POLICIES = ("exclude_infra", "score_zero")


class SimulatorError(RuntimeError):
    """A simulated user, patient or judge could not answer. Simulators raise it (or wrap their backend's error in
    it, `raise SimulatorError(...) from exc`) so the rollout ends that episode as `simulator_error`, not `env_error`."""


_SECRETS = [
    (re.compile(r"(?i)\b(bearer\s+)\S+"), r"\1***"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), "***"),
    (
        re.compile(r"(?i)\b(api[_-]?key|token|secret|password|authorization)(\s*[=:]\s*|\"\s*:\s*\")[^\s\"',;&]+"),
        r"\1\2***",
    ),
]


def error_text(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, credential-looking values replaced by ***, at most `limit` characters."""
    return scrubbed_line(f"{type(exc).__name__}: {exc}", limit)


def scrubbed_line(text: str, limit: int = 300) -> str:
    """`text` on one line, credential-looking values replaced by ***, at most `limit` characters."""
    text = " ".join(text.split())
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def outcome_metrics(episodes: list[Episode]) -> dict[str, float]:
    """`episode/outcome/<kind>`: how many episodes ended each way (every kind, zeros included); episodes with no
    `end` (not from a runner) count as `unknown` when there are any."""
    counts = Counter(e.end.value if e.end is not None else "unknown" for e in episodes)
    out = {f"episode/outcome/{k.value}": float(counts.pop(k.value, 0)) for k in EpisodeEnd}
    out.update({f"episode/outcome/{k}": float(n) for k, n in counts.items()})
    return out


def usable_for_advantages(episodes: list[Episode], policy: str = "exclude_infra") -> list[bool]:
    """Per episode, whether it enters the update: "exclude_infra" leaves out env_error, simulator_error,
    timed_out and sampler_error episodes; "score_zero" keeps every episode (the runner gave the failed ones reward 0)."""
    if policy not in ADVANTAGE_POLICIES:
        raise ValueError(f"unknown failed-episode policy {policy!r}; allowed: {', '.join(ADVANTAGE_POLICIES)}")
    if policy == "score_zero":
        return [True] * len(episodes)
    return [e.end is None or not e.end.infra for e in episodes]


@dataclass
class Kept:
    """What `drop_unusable` kept and left out, and the metrics that say so."""

    episodes: list[Episode]
    dropped: list[Episode] = field(default_factory=list)  # every episode left out, usable leftovers of small groups too
    small_groups: list[int] = field(default_factory=list)  # groups that lost episodes and fell under min_group_size

    def metrics(self) -> dict[str, float]:
        return {"episode/dropped": float(len(self.dropped)), "episode/dropped_groups": float(len(self.small_groups))}


def drop_unusable(episodes: list[Episode], policy: str = "exclude_infra", *, min_group_size: int = 2) -> Kept:
    """Leave out the episodes `usable_for_advantages` rejects, keeping groups consistent: a group that lost
    episodes and has fewer than `min_group_size` left is left out whole (a group baseline of one episode is that
    episode's own reward) and reported in `small_groups`. Groups that were small to begin with are kept as they are.
    Order is preserved."""
    ok = usable_for_advantages(episodes, policy)
    total: Counter[int] = Counter(e.group_id for e in episodes)
    left: Counter[int] = Counter(e.group_id for e, u in zip(episodes, ok) if u)
    small = sorted(g for g in total if left[g] < total[g] and left[g] < min_group_size)
    gone = set(small)
    kept: list[Episode] = []
    dropped: list[Episode] = []
    for e, u in zip(episodes, ok):
        (kept if u and e.group_id not in gone else dropped).append(e)
    return Kept(kept, dropped, small)
