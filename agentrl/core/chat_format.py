"""Token-exact chat formatting: the prompt's ids, and the ids appended after each agent turn.

History is never decoded and re-tokenized. After an agent turn the sequence grows by
  closing ids (what the template puts after an assistant message, minus an EOS already sampled)
  + the env's new messages rendered as a template *delta* + the next assistant header.
The delta is found by rendering a fixed stand-in conversation with and without the new messages and
taking the suffix (the approach of verl's multi-turn rollouts), so it is exactly what the template
would produce, while the tokens before it are exactly the ones the policy sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentrl.core.env import EnvPrompt

_BASE = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "U"},
    {"role": "assistant", "content": "A"},
]
_PROBE_TOOL = {"type": "function", "function": {"name": "probe_tool_xyz", "description": "d", "parameters": {"type": "object", "properties": {}}}}


class ChatFormatter:
    def __init__(self, tokenizer: Any):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; agentrl needs one to format multi-turn episodes")
        self.tok = tokenizer
        full = self._render(_BASE, add_generation_prompt=False)
        before = self._render(_BASE[:2], add_generation_prompt=True)
        if not full.startswith(before + "A"):
            raise ValueError("the chat template does not render an assistant message as a plain suffix; token-exact deltas need that")
        self._base_text = full
        self.close_ids = self.encode(full[len(before) + 1 :])  # e.g. "<|im_end|>\n"
        self.supports_tools = self._template_uses_tools()

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool, tools: list[dict] | None = None) -> str:
        kw = {"tools": tools} if tools else {}
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kw)

    def _template_uses_tools(self) -> bool:
        try:
            with_tools = self._render(_BASE[:2], True, [_PROBE_TOOL])
        except Exception:
            return False
        return "probe_tool_xyz" in with_tools

    def prompt_ids(self, prompt: EnvPrompt | Sequence[dict[str, str]], info: dict[str, Any] | None = None) -> list[int]:
        """Ids of an episode's opening plus the assistant header. `prompt` is the env's `prompt()`: its tool
        schemas go through the template's `tools=` when the template supports it, and the system message then
        drops the env's own tool block. Plain messages are rendered as they are; with a Gymnasium reset
        `info` (`tools`, `system_without_tools`), as the env's prompt would be."""
        if not isinstance(prompt, EnvPrompt):
            return self._messages_prompt_ids([dict(m) for m in prompt], info or {})
        if prompt.tools and self.supports_tools:
            return self.encode(self._render([{"role": "system", "content": prompt.system},
                                             {"role": "user", "content": prompt.opening}], True, list(prompt.tools)))
        return self.encode(self._render([m.to_dict() for m in prompt.messages()], True))

    def _messages_prompt_ids(self, msgs: list[dict[str, str]], info: dict[str, Any]) -> list[int]:
        tools = info.get("tools")
        if tools and self.supports_tools and msgs and msgs[0]["role"] == "system" and "system_without_tools" in info:
            msgs[0]["content"] = info["system_without_tools"]
            return self.encode(self._render(msgs, True, tools))
        return self.encode(self._render(msgs, True))

    def delta_ids(self, new_messages: list[dict[str, str]], last_sampled: list[int]) -> list[int]:
        """Ids to append after an agent turn whose sampled ids were `last_sampled`."""
        full = self._render(_BASE + [dict(m) for m in new_messages], add_generation_prompt=True)
        if not full.startswith(self._base_text):
            raise ValueError("chat template re-renders earlier turns differently when messages are added; cannot form a token-exact delta")
        close = self.close_ids
        if last_sampled and close and last_sampled[-1] == close[0]:
            close = close[1:]  # the policy already sampled the end-of-turn token
        return list(close) + self.encode(full[len(self._base_text) :])
