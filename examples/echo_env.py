"""Echo: get the env to echo a secret word with its one tool, then say DONE. Reward 1 if it was echoed."""

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.tools import tool
from agentrl.core.types import Message


@tool
def echo(text: str, times: int = 1, state=None) -> str:
    """Repeat text back.

    Args:
        text: What to repeat.
        times: How many times to repeat it.
    """
    state["echoed"].append(text)  # `state` is injected: the episode's own state, never shown to the model
    return " ".join([text] * times)


class EchoEnv(MultiTurnEnv):
    tools = (echo,)
    max_turns = 4

    def setup(self, options):
        word = ["apple", "river", "stone"][int(self.np_random.integers(3))]
        self.state = {"word": word, "echoed": []}
        return "You can echo text with a tool.", f"Echo the word '{word}', then say DONE."

    def respond(self, text):  # any agent message that is not a tool call
        if text.strip() == "DONE":
            return EnvReply(terminated=True)
        return EnvReply([Message("user", "Use the echo tool, then say DONE.")])

    def compute_reward(self):  # called once, at the end
        hit = float(self.state["word"] in self.state["echoed"])
        return RewardResult(hit, {"echoed_word": hit}, success=hit == 1.0)
