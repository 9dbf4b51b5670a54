"""CreditChain: K turns; each turn shows a cue and the right reply follows from the cue by a rule the
system prompt states. The env never says whether a turn was right; the only reward is terminal —
the fraction of right turns (or 1/0 with `all_or_nothing`). Which turns earned it is exactly the
credit-assignment question TRePO answers with per-turn values.

Replies are single tokens ("1".."N"), so a tiny random model can hit them under constrained
decoding (`allowed_replies`), and learn the rule on a CPU in minutes.
"""

from __future__ import annotations

from typing import Any

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.types import Message

CUES = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")


class CreditChainEnv(MultiTurnEnv):
    def __init__(self, turns: int = 6, n_cues: int = 4, all_or_nothing: bool = False, render_mode: str | None = None):
        if not isinstance(turns, int) or turns < 1:
            raise ValueError(f"turns must be a positive int, got {turns!r}")
        if not isinstance(n_cues, int) or not 2 <= n_cues <= len(CUES):
            raise ValueError(f"n_cues must be an int in [2, {len(CUES)}], got {n_cues!r}")
        super().__init__(max_turns=turns + 2, max_action_chars=200, render_mode=render_mode)
        self.turns = turns
        self.cues = CUES[:n_cues]
        self.replies = tuple(str(i + 1) for i in range(n_cues))
        self.all_or_nothing = all_or_nothing

    def _rule(self) -> str:
        pairs = ", ".join(f"{r} for {c}" for c, r in zip(self.cues, self.replies))
        return f"Each turn the user names a colour. Reply with one digit only: {pairs}."

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        seq = [int(i) for i in self.np_random.integers(0, len(self.cues), size=self.turns)]
        self.state = {"seq": seq, "step": 0, "right": []}
        self.task_id = "".join(self.replies[i] for i in seq)
        return self._rule(), f"Colour 1 of {self.turns}: {self.cues[seq[0]]}"

    def respond(self, text: str) -> EnvReply:
        st = self.state
        want = self.replies[st["seq"][st["step"]]]
        st["right"].append(text.strip() == want)
        st["step"] += 1
        if st["step"] >= self.turns:
            return EnvReply(terminated=True)
        cue = self.cues[st["seq"][st["step"]]]
        return EnvReply([Message("user", f"Colour {st['step'] + 1} of {self.turns}: {cue}")])

    def compute_reward(self) -> RewardResult:
        right = self.state["right"]
        frac = sum(right) / self.turns
        reward = float(frac == 1.0) if self.all_or_nothing else frac
        return RewardResult(reward, {"right_turns": float(sum(right)), "turns": float(self.turns)}, success=frac == 1.0)

    def allowed_replies(self) -> list[str]:
        return list(self.replies)
