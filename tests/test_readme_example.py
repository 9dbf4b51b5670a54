"""The README's custom-env example (examples/echo_env.py) works, and the README shows it verbatim."""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path

from gymnasium.utils.env_checker import check_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "echo_env.py"
README = ROOT / "README.md"
START, END = "<!-- example:echo_env -->", "<!-- /example -->"


def load_example():
    spec = importlib.util.spec_from_file_location("echo_env_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def call(name: str, **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def test_example_is_short_and_complete() -> None:
    lines = [ln for ln in EXAMPLE.read_text().splitlines() if ln.strip()]
    assert len(lines) <= 35, f"the README example should stay about 30 lines, has {len(lines)}"
    mod = load_example()
    from agentrl.core.env import MultiTurnEnv

    assert issubclass(mod.EchoEnv, MultiTurnEnv)
    assert [t.name for t in mod.EchoEnv.tools] == ["echo"]


def test_example_passes_check_env() -> None:
    env = load_example().EchoEnv()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render.*")
        check_env(env, skip_render_check=True)


def test_example_scripted_episodes() -> None:
    env = load_example().EchoEnv()
    obs, info = env.reset(seed=0)
    word = re.search(r"'(\w+)'", obs[1]["content"]).group(1)
    assert "echo" in obs[0]["content"] and info["tools"][0]["function"]["parameters"]["required"] == ["text"]

    obs, r, term, trunc, info = env.step("hello?")
    assert obs == ({"role": "user", "content": "Use the echo tool, then say DONE."},) and r == 0.0
    obs, r, term, trunc, info = env.step(call("echo", text=word, times=2))
    assert obs == ({"role": "tool", "content": f"{word} {word}"},) and r == 0.0 and not term
    obs, r, term, trunc, info = env.step(call("echo", text=3))
    assert obs[0]["content"].startswith("Error:") and info["errors"] == {"invalid_arguments": 1}
    obs, r, term, trunc, info = env.step("DONE")
    assert (r, term, trunc) == (1.0, True, False)
    assert info["reward_breakdown"] == {"echoed_word": 1.0} and info["success"] is True

    env.reset(seed=0)
    for _ in range(4):  # never echoes: truncated at max_turns, reward 0
        obs, r, term, trunc, info = env.step("no")
    assert (r, term, trunc) == (0.0, False, True) and info["reward_breakdown"] == {"echoed_word": 0.0}


def test_readme_shows_the_example_verbatim() -> None:
    text = README.read_text() if README.exists() else ""
    assert START in text and END in text, (
        f"README.md lacks the example markers: paste examples/echo_env.py into README.md as a ```python block "
        f"between the lines {START} and {END}"
    )
    section = text.split(START, 1)[1].split(END, 1)[0]
    m = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert m, f"no ```python code block between {START} and {END} in README.md"
    assert m.group(1) == EXAMPLE.read_text(), (
        "the README example differs from examples/echo_env.py: paste the file again"
    )
