"""The one way `mock_patients` reaches a language model: a structural `ChatModel` protocol.

Any object with these two methods works (agentrl's HTTP / transformers chat models, a test stand-in);
this package never imports a model library. Messages are `{"role": ..., "content": ...}` dicts.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class ChatModel(Protocol):
    def complete(
        self, messages: list[dict], *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str: ...

    def complete_batch(
        self, batch: list[list[dict]], *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> list[str]: ...


def require_chat_model(obj: object, what: str) -> None:
    """Fail early, naming the role, when something that is not a chat model is passed in."""
    if not isinstance(obj, ChatModel):
        raise TypeError(
            f"{what} needs a chat model with complete(messages, ...) and complete_batch(batch, ...); got {type(obj).__name__}"
        )
