import gymnasium as gym

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.tools import ToolError, tool

WORDS = ("kiwi", "banana", "cherry", "dragonfruit")


@tool
def count_letters(word: str) -> int:
    """Count the letters in a word.

    Args:
        word: the word to measure, letters only
    """
    if not word.isalpha():
        raise ToolError(f"word must contain only letters, got {word[:40]!r}")  # shown to the agent as "Error: ..."
    return len(word)


class LetterCountEnv(MultiTurnEnv):
    tools = (count_letters,)
    max_turns = 4

    def task_ids(self):
        return list(WORDS)

    def setup(self, options):  # a new episode: the task, all mutable state in self.state, and the opening
        word = options.get("task_id") or WORDS[int(self.np_random.integers(len(WORDS)))]
        self.task_id = word
        self.state = {"word": word, "answer": None}
        return "Answer with a number.", f"How many letters are in '{word}'? Reply with just the number."

    def respond(self, text):  # a message without a tool call is the final answer
        self.state["answer"] = text.strip()
        return EnvReply(terminated=True)

    def compute_reward(self):  # called once, when the episode ends
        correct = self.state["answer"] == str(len(self.state["word"]))
        return RewardResult(float(correct), {"correct": float(correct)}, success=correct)


if "example/LetterCount-v0" not in gym.registry:
    gym.register(id="example/LetterCount-v0", entry_point=LetterCountEnv)
