"""The README's "Define your own environment" example is real code: it is environments/tool_use/example.py
verbatim, and it works."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

from environments.tool_use import example

SECTION = Path(example.__file__).with_name("README_SECTION.md")


def test_readme_code_block_is_example_py_verbatim():
    blocks = re.findall(r"```python\n(.*?)```", SECTION.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks, "README_SECTION.md has no python code block"
    assert blocks[0] == Path(example.__file__).read_text(encoding="utf-8")


def test_example_env_passes_check_env():
    check_env(example.LetterCountEnv(), skip_render_check=True)


def test_example_env_episode():
    env = gym.make("example/LetterCount-v0", disable_env_checker=True).unwrapped
    obs, info = env.reset(options={"task_id": "banana"})
    assert "'banana'" in obs[1]["content"] and info["task_id"] == "banana"
    obs, r, term, trunc, info = env.step(
        '<tool_call>{"name": "count_letters", "arguments": {"word": "banana"}}</tool_call>'
    )
    assert obs[0] == {"role": "tool", "content": "6"} and r == 0.0 and not term
    obs, r, term, trunc, info = env.step(
        '<tool_call>{"name": "count_letters", "arguments": {"word": "b4n"}}</tool_call>'
    )
    assert obs[0]["content"].startswith("Error: word must contain only letters") and info["errors"] == {"tool_error": 1}
    obs, r, term, trunc, info = env.step("6")
    assert term and r == 1.0 and info["reward_breakdown"] == {"correct": 1.0}


def test_example_env_wrong_answer():
    env = example.LetterCountEnv()
    env.reset(options={"task_id": "kiwi"})
    assert env.step("5")[1] == 0.0
