"""`HTTPTextPolicy`, for tests: a served model as a text-level agent -- full conversations in, the agent's next
message texts out, over any `ChatModel` (usually an `HTTPChatModel` in front of `chat_server.ChatServer`)."""

from __future__ import annotations

import threading

from agentrl.core.chat import ChatModel, Messages


class HTTPTextPolicy:
    """A text-level agent for evaluation: full conversations in, the agent's next message texts out.

    Wraps any `ChatModel` (usually an `HTTPChatModel` in front of a served policy). With a seed, the rows
    of successive `act` calls get consecutive seeds (``seed``, ``seed + 1``, ... over all rows ever asked
    for), so repeated calls do not replay the same random stream yet a run is reproducible. With
    temperature 0 the seed does not matter.
    """

    def __init__(self, chat: ChatModel, *, temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None):
        self.chat = chat
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self._offset = 0
        self._lock = threading.Lock()

    def act(self, conversations: list[Messages]) -> list[str]:
        seed = None
        if self.seed is not None:
            with self._lock:
                seed = self.seed + self._offset
                self._offset += len(conversations)
        return self.chat.complete_batch(
            conversations, temperature=self.temperature, max_tokens=self.max_tokens, seed=seed
        )

    def close(self) -> None:
        close = getattr(self.chat, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"HTTPTextPolicy({self.chat!r}, temperature={self.temperature}, max_tokens={self.max_tokens}, seed={self.seed})"
