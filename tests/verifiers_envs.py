"""Small verifiers environments for tests/test_verifiers_in.py, written against verifiers' classic API (a
`MultiTurnEnv` with `env_response` and a stop condition, a `SingleTurnEnv` with an exact-match rubric, a `ToolEnv`).
Importing this module needs `verifiers` (and `datasets`); the test skips without them."""

from __future__ import annotations

from datasets import Dataset

from environments.verifiers.adapter import import_verifiers

vf = import_verifiers()

GUESS_SYSTEM = "Guess the secret number between 1 and 10. Reply with the number only."


def guess_rows() -> list[dict]:
    return [
        {"question": "Guess the number.", "answer": "7", "info": {"secret": 7}},
        {"question": "Guess the number.", "answer": "3", "info": {"secret": 3}},
        {"question": "Guess the number.", "answer": "10", "info": {"secret": 10}},
    ]


def guess_correct(state, **kwargs) -> float:
    return 1.0 if state.get("solved") else 0.0


def guess_speed(state, **kwargs) -> float:
    return 1.0 / max(1, len(state["trajectory"]))


def guess_rubric():
    return vf.Rubric(funcs=[guess_correct, guess_speed], weights=[1.0, 0.5])


class GuessEnv(vf.MultiTurnEnv):
    """The agent guesses; the env answers "higher" / "lower"; a right guess ends the episode. `fail_on` makes
    env_response raise on a guess (for env_error tests)."""

    def __init__(self, fail_on: str | None = None, **kwargs):
        kwargs.setdefault("max_turns", 5)
        super().__init__(
            dataset=Dataset.from_list(guess_rows()), system_prompt=GUESS_SYSTEM, rubric=guess_rubric(), **kwargs
        )
        self.fail_on = fail_on

    async def setup_state(self, state, **kwargs):
        state["solved"] = False
        state["guesses"] = []
        return state

    @vf.stop
    async def solved(self, state, **kwargs) -> bool:
        return bool(state.get("solved"))

    async def env_response(self, messages, state, **kwargs):
        guess = (messages[-1].content or "").strip()
        if self.fail_on is not None and guess == self.fail_on:
            raise RuntimeError(f"the guessing game broke on {guess!r}")
        state["guesses"].append(guess)
        secret = int(state["info"]["secret"])
        try:
            value = int(guess)
        except ValueError:
            return [vf.UserMessage(content="Not a number. Guess again.")]
        if value == secret:
            state["solved"] = True
            state["final_env_response"] = [vf.UserMessage(content="Correct!")]
            return state["final_env_response"]
        return [vf.UserMessage(content="higher" if value < secret else "lower")]


def bisect_guess(text: str) -> str:
    """The binary-search guess after the feedback ("higher" / "lower") found in `text`, in order."""
    import re

    lo, hi = 1, 10
    for word in re.findall(r"\b(higher|lower)\b", text):
        g = (lo + hi) // 2
        lo, hi = (g + 1, hi) if word == "higher" else (lo, g - 1)
    return str((lo + hi) // 2)


def exact_match(completion, answer, **kwargs) -> float:
    text = completion[-1].content if completion else ""
    return 1.0 if (text or "").strip() == str(answer).strip() else 0.0


def capital_env(**kwargs):
    rows = [
        {"question": "Capital of France?", "answer": "Paris"},
        {"question": "Capital of Japan?", "answer": "Tokyo"},
    ]
    return vf.SingleTurnEnv(
        dataset=Dataset.from_list(rows),
        system_prompt="Answer with one word.",
        rubric=vf.Rubric(funcs=[exact_match], weights=[1.0]),
        **kwargs,
    )


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first integer
        b: the second integer
    """
    return a + b


def sum_answer(completion, answer, **kwargs) -> float:
    text = completion[-1].content if completion else ""
    return 1.0 if (text or "").strip() == str(answer) else 0.0


def adder_env(**kwargs):
    rows = [{"question": "What is 2 + 3? Use the add tool, then reply with the number.", "answer": "5"}]
    return vf.ToolEnv(
        tools=[add],
        dataset=Dataset.from_list(rows),
        rubric=vf.Rubric(funcs=[sum_answer], weights=[1.0]),
        max_turns=4,
        **kwargs,
    )


def broken_reward(completion, **kwargs) -> float:
    raise ValueError("the reward function broke")


def broken_rubric_env():
    rows = [{"question": "Say hi.", "answer": "hi"}]
    return vf.SingleTurnEnv(dataset=Dataset.from_list(rows), rubric=vf.Rubric(funcs=[broken_reward], weights=[1.0]))


def load_environment(**kwargs):
    """What `vf.load_environment("verifiers_envs")` finds when this module is importable (tests put it on the path)."""
    return GuessEnv(**kwargs)
