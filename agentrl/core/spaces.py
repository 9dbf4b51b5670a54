"""Gymnasium spaces for chat text: an agent action is one string, an observation a tuple of messages.

Gymnasium's own `Text` space only admits a fixed character set (alphanumerics by default), which
no real chat message fits, so these spaces accept any `str` up to a length and sample printable text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

ROLES = ("system", "user", "assistant", "tool")
_SAMPLE_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!?'\"{}[]<>_-/\n"))


def _sample_text(rng: np.random.Generator, max_len: int) -> str:
    n = int(rng.integers(0, min(max_len, 64) + 1))
    return "".join(rng.choice(_SAMPLE_CHARS, size=n).tolist())


class TextSpace(spaces.Space[str]):
    """Any string of at most `max_length` characters (the agent's whole message)."""

    def __init__(self, max_length: int = 8000, seed: int | np.random.Generator | None = None):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _sample_text(self.np_random, self.max_length)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TextSpace) and other.max_length == self.max_length


class ChatSpace(spaces.Space[tuple]):
    """A tuple of messages `{"role": one of ROLES, "content": str}`: the env's new messages for one step."""

    def __init__(
        self, max_messages: int = 16, max_content: int = 100_000, seed: int | np.random.Generator | None = None
    ):
        self.max_messages = max_messages
        self.max_content = max_content
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[dict[str, str], ...]:
        n = int(self.np_random.integers(1, min(self.max_messages, 3) + 1))
        return tuple(
            {"role": str(self.np_random.choice(ROLES)), "content": _sample_text(self.np_random, self.max_content)}
            for _ in range(n)
        )

    def contains(self, x: Any) -> bool:
        if not isinstance(x, (tuple, list)) or len(x) > self.max_messages:
            return False
        return all(_is_message(m, self.max_content) for m in x)

    def __repr__(self) -> str:
        return f"ChatSpace(max_messages={self.max_messages}, max_content={self.max_content})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatSpace) and (other.max_messages, other.max_content) == (
            self.max_messages,
            self.max_content,
        )


def _is_message(m: Any, max_content: int) -> bool:
    return (
        isinstance(m, dict)
        and set(m) == {"role", "content"}
        and m["role"] in ROLES
        and isinstance(m["content"], str)
        and len(m["content"]) <= max_content
    )
