"""`ChatModel`: the small protocol simulated users, patients and judges talk through (messages -> text).

Implementations: `agentrl.inference.hf.HFChatModel` (local transformers), `agentrl.inference.http.HTTPChatModel`
(any OpenAI-compatible endpoint), and rule-based ones inside each environment.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]  # one conversation: {"role", "content"} dicts, oldest first


@runtime_checkable
class ChatModel(Protocol):
    """`complete_batch` answers each conversation of a batch as `complete` would. The local and HTTP models
    seed row i with seed + i (`row_seeds`), so that sampled rows differ."""

    def complete(
        self, messages: Messages, *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str: ...

    def complete_batch(
        self, batch: list[Messages], *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> list[str]: ...


class BaseChatModel:
    """Base for chat models: a shared, stateless resource. A subclass implements `complete` or `complete_batch`
    (each defaults to the other).

    `__deepcopy__` returns self, so an env snapshot that holds a simulator holding a model copies the
    simulator's conversation but shares the model (copying weights per snapshot would be absurd).
    """

    def complete(
        self, messages: Messages, *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        return self.complete_batch([messages], temperature=temperature, max_tokens=max_tokens, seed=seed)[0]

    def complete_batch(
        self, batch: list[Messages], *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> list[str]:
        return [self.complete(m, temperature=temperature, max_tokens=max_tokens, seed=seed) for m in batch]

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseChatModel:
        return self


def validate_messages(messages: Any) -> list[dict[str, str]]:
    """Check a chat message list; raise ValueError naming the bad item and what is allowed."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}] must be a dict with str 'role' and 'content', got {m!r:.80}")
        if m["role"] not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"messages[{i}]['role'] is {m['role']!r}; allowed: system, user, assistant, tool")
    return messages


def row_seeds(seed: int | None, n: int) -> list[int | None]:
    """The seed of each of a batch's n rows: seed + i for row i (so rows differ), or None for all."""
    return [None if seed is None else seed + i for i in range(n)]
