"""Token-exact chat formatting: the prompt's ids, and the ids appended after each agent turn.

History is never decoded and re-tokenized. After an agent turn the sequence grows by
  closing ids (what the template puts after an assistant message, minus an EOS already sampled)
  + the env's new messages rendered as a template *delta* + the next assistant header.
The delta is found by rendering a fixed stand-in conversation with and without the new messages and
taking the suffix (the approach of verl's multi-turn rollouts), so it is exactly what the template
would produce, while the tokens before it are exactly the ones the policy sampled.

Text is text: a message's content (from an env, a simulator, a tool, a case file or a dataset) never becomes a
control token. A tool result holding `<|im_end|>\n<|im_start|>assistant` is encoded as those characters, not
as ids 2 and 1; control ids appear only where the chat template puts them (`encode_chat`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agentrl.core.env import EnvPrompt

_BASE = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "U"},
    {"role": "assistant", "content": "A"},
]
_PROBE_TOOL = {
    "type": "function",
    "function": {"name": "probe_tool_xyz", "description": "d", "parameters": {"type": "object", "properties": {}}},
}


_SHIELD_RE = re.compile("\ue000(\\d+)\ue001")  # a content span set aside while the template renders


class ControlText:
    """A tokenizer's control strings (its special tokens: `<|im_start|>`, `<|im_end|>`, `<|endoftext|>`,
    `<|eot_id|>`, ...) and how to keep them out of message contents: each occurrence in a content is set aside
    as a placeholder (private-use characters) while the template renders, and encoded as plain text afterwards.
    Added tokens that are not special (Qwen's `<tool_call>`) are vocabulary the policy samples, and stay so."""

    def __init__(self, tokenizer: Any):
        self.tok = tokenizer
        decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
        special = {t.content for t in decoder.values() if getattr(t, "special", False)}
        special |= set(getattr(tokenizer, "all_special_tokens", []) or [])
        self.strings = sorted((s for s in special if s), key=len, reverse=True)  # longest first: no prefix wins
        # a content holding U+E000 is set aside too, so a placeholder can never be forged
        alternatives = [re.escape(a) for a in self.strings] + ["\ue000"]
        self._in_content = re.compile("|".join(alternatives))
        self._split = re.compile("(" + "|".join(re.escape(a) for a in self.strings) + ")") if self.strings else None

    def shield(self, value: Any, table: list[str]) -> Any:
        """`value` (a message list, a tool schema, a string) with every control string inside its strings
        replaced by a placeholder indexing `table`."""
        if isinstance(value, str):

            def put(m: re.Match[str]) -> str:
                table.append(m.group(0))
                return f"\ue000{len(table) - 1}\ue001"

            return self._in_content.sub(put, value)
        if isinstance(value, dict):
            return {k: self.shield(v, table) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.shield(v, table) for v in value]
        return value

    def encode_rendered(self, text: str, table: list[str]) -> list[int]:
        """Ids of template-rendered `text`: its control strings are control ids (the template put them there),
        the placeholders' text is plain text. Without placeholders, exactly `tok(text)`."""
        if not table:
            return list(self.tok(text, add_special_tokens=False)["input_ids"])
        ids: list[int] = []
        pieces = self._split.split(text) if self._split is not None else [text]
        for i, piece in enumerate(pieces):  # odd pieces are the template's control strings
            if i % 2:
                ids.append(self.tok.convert_tokens_to_ids(piece))
            elif piece:
                plain = _SHIELD_RE.sub(lambda m: table[int(m.group(1))], piece)
                ids += self.encode_text(plain)
        return ids

    def encode_text(self, text: str) -> list[int]:
        """Ids of `text` as plain text: a control string in it is spelled out, never its control id."""
        return list(self.tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def encode_chat(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool,
    tools: list[dict] | None = None,
    control: ControlText | None = None,
) -> list[int]:
    """`tokenizer.apply_chat_template(messages, tokenize=True)`, except that message contents (and tool
    schemas) are plain text: control strings in them do not become control ids."""
    control = control or ControlText(tokenizer)
    table: list[str] = []
    msgs = control.shield([dict(m) for m in messages], table)
    kw = {"tools": control.shield(list(tools), table)} if tools else {}
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt, **kw)
    return control.encode_rendered(text, table)


class ChatFormatter:
    def __init__(self, tokenizer: Any):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; agentrl needs one to format multi-turn episodes")
        self.tok = tokenizer
        self.control = ControlText(tokenizer)
        full = self._render(_BASE, add_generation_prompt=False)
        before = self._render(_BASE[:2], add_generation_prompt=True)
        if not full.startswith(before + "A"):
            raise ValueError(
                "the chat template does not render an assistant message as a plain suffix; token-exact deltas need that"
            )
        self._base_text = full
        self.close_ids = self.control.encode_rendered(
            full[len(before) + 1 :], []
        )  # the template's, e.g. "<|im_end|>\n"
        self.supports_tools = self._template_uses_tools()

    def encode(self, text: str) -> list[int]:
        """Ids of `text` as plain text (an agent turn's text, a constrained reply): control strings in it are
        spelled out, never control ids."""
        return self.control.encode_text(text)

    def _render(
        self, messages: list[dict[str, str]], add_generation_prompt: bool, tools: list[dict] | None = None
    ) -> str:
        kw = {"tools": tools} if tools else {}
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kw)

    def _chat_ids(self, messages: list[dict[str, Any]], tools: list[dict] | None = None) -> list[int]:
        return encode_chat(self.tok, messages, add_generation_prompt=True, tools=tools, control=self.control)

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
            return self._chat_ids(
                [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.opening}],
                list(prompt.tools),
            )
        return self._chat_ids([m.to_dict() for m in prompt.messages()])

    def _messages_prompt_ids(self, msgs: list[dict[str, str]], info: dict[str, Any]) -> list[int]:
        tools = info.get("tools")
        if tools and self.supports_tools and msgs and msgs[0]["role"] == "system" and "system_without_tools" in info:
            msgs[0]["content"] = info["system_without_tools"]
            return self._chat_ids(msgs, tools)
        return self._chat_ids(msgs)

    def delta_ids(self, new_messages: list[dict[str, str]], last_sampled: list[int]) -> list[int]:
        """Ids to append after an agent turn whose sampled ids were `last_sampled`."""
        table: list[str] = []
        shielded = self.control.shield([dict(m) for m in new_messages], table)
        full = self._render(_BASE + shielded, add_generation_prompt=True)
        if not full.startswith(self._base_text):
            raise ValueError(
                "chat template re-renders earlier turns differently when messages are added; cannot form a token-exact delta"
            )
        close = self.close_ids
        if last_sampled and close and last_sampled[-1] == close[0]:
            close = close[1:]  # the policy already sampled the end-of-turn token
        return list(close) + self.control.encode_rendered(full[len(self._base_text) :], table)
