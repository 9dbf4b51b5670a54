"""Shared fixtures: the tiny-random model (loaded once per session) and a small env with tools."""

from __future__ import annotations

import os
from typing import Any, Literal

import pytest
import torch

from agentrl.core.chat import BaseChatModel
from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.tools import ToolError, tool
from agentrl.core.types import Message

# One intra-op thread: token-by-token decoding is many tiny ops, and on a shared, loaded CPU every op's thread
# barrier can wait a whole scheduler slice (measured here: SmolLM2 decoding 15x slower with 2 threads than 1).
torch.set_num_threads(int(os.environ.get("AGENTRL_TEST_THREADS", "1")))


class EchoModel(BaseChatModel):
    """A stand-in simulator model: shared by snapshots (its __deepcopy__ returns self), never copied."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None) -> str:
        self.calls += 1
        return messages[-1]["content"][::-1]


@tool
def put(key: str, value: str, state) -> str:
    """Store a note.

    Args:
        key: Name of the note.
        value: Text of the note.
    """
    if len(state["notes"]) >= 4 and key not in state["notes"]:
        raise ToolError("at most 4 notes")
    state["notes"][key] = value
    return f"stored {key}"


@tool
def get(key: str, state) -> str:
    """Read a note.

    Args:
        key: Name of the note.
    """
    if key not in state["notes"]:
        raise ToolError(f"no note {key!r}")
    return state["notes"][key]


@tool
def add(numbers: list[int], mode: Literal["sum", "max"] = "sum", state=None) -> int:
    """Combine numbers into the running total.

    Args:
        numbers: The numbers.
        mode: How to combine them.
    """
    v = sum(numbers) if mode == "sum" else max(numbers)  # max([]) raises: an unexpected tool failure
    state["total"] += v
    return state["total"]


@tool
def boom(state) -> str:
    """A tool with a bug."""
    raise RuntimeError("kaboom")


class NotesEnv(MultiTurnEnv):
    """Notes: the agent stores and reads notes with tools, then says DONE; reward = notes stored / 4."""

    tools = (put, get, add, boom)
    max_turns = 6
    max_action_chars = 2000

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.sim = EchoModel()

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        target = int(self.np_random.integers(0, 100))
        self.state = {"notes": {}, "total": 0, "said": [], "target": target, "sim": self.sim}
        self.task_id = f"t{target}"
        return "You keep notes.", f"Store up to 4 notes, then say DONE. Target {target}."

    def respond(self, text: str) -> EnvReply:
        self.state["said"].append(text)
        if text.strip() == "DONE":
            return EnvReply(terminated=True)
        return EnvReply([Message("user", self.state["sim"].complete([{"role": "user", "content": text[:200]}]))])

    def compute_reward(self) -> RewardResult:
        n = len(self.state["notes"])
        return RewardResult(n / 4, {"notes": float(n), "total": float(self.state["total"])}, success=n == 4)


class PlainEnv(MultiTurnEnv):
    """No tools: says 'ok' until the agent says 'stop'."""

    max_turns = 4

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        self.state = {"n": 0}
        return "Plain.", "Talk."

    def respond(self, text: str) -> EnvReply:
        self.state["n"] += 1
        return EnvReply(terminated=text == "stop") if text == "stop" else EnvReply([Message("user", "ok")])

    def compute_reward(self) -> RewardResult:
        return RewardResult(1.0, {"n": float(self.state["n"])})


@pytest.fixture
def notes_env() -> NotesEnv:
    return NotesEnv()


@pytest.fixture
def notes_env_cls() -> type[NotesEnv]:
    return NotesEnv


@pytest.fixture
def plain_env_cls() -> type[PlainEnv]:
    return PlainEnv


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the 2-layer random model, loaded once per session."""
    from agentrl.inference.models import load_model

    model, tok = load_model("tiny-random")
    model.eval()
    return model, tok


def call(name: str, **arguments: Any) -> str:
    import json

    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


@pytest.fixture
def tool_call():
    """tool_call(name, **arguments) -> the agent text of one well-formed call."""
    return call
