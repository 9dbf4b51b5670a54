"""Simulated users for the benchmarks' own tasks (published.py), which give the user an instruction in words, not
the structured goals of the env's own tasks.

  * `InstructionUser` (user="rule"): offline and deterministic, for tests and CI. It answers from the instruction
    only: the user id and reservation ids it states, and otherwise the instruction's sentences about what the
    agent asks (bags, cabin, dates, payment, ...), turned into the first person; it says yes to a confirmation
    request, "I don't know" to what the instruction does not say, and ###STOP### when the agent asks whether
    there is anything else (or after `max_replies`). It does not negotiate: it is a reader of the instruction,
    enough for a scripted agent to be driven end to end and for plumbing tests, not a stand-in for τ-bench's user.
    The gold agent (scripted.py) replays the answer key and closes; with this user it scores 1.0 on every task
    whose gold replay meets the benchmark's own checks (benchmarks/flight_published.py measures it).
  * the LLM user (user="llm", users.LLMUser) with the benchmark's own user prompt: τ-bench's
    (tau_bench/envs/user.py, LLMUserSimulationEnv.build_system_prompt) or τ²'s (its simulation guidelines and the
    scenario in <scenario> tags, tau2/user/user_simulator.py), and the benchmark's stop rule: "###STOP###" ends
    the episode (τ² also ends on ###TRANSFER### and ###OUT-OF-SCOPE###).
"""

from __future__ import annotations

import re
from typing import Any

from .published import PublishedTask
from .users import ACTION_RE, CONFIRM_RE, STOP, TOPIC_KEYWORDS, requested_topics

TAU2_STOPS = (STOP, "###TRANSFER###", "###OUT-OF-SCOPE###")
CLOSING_RE = re.compile(r"\banything else\b|\bis there (?:something|anything) (?:more|else)\b", re.I)

# τ-bench (MIT licence, Sierra): tau_bench/envs/user.py, LLMUserSimulationEnv.build_system_prompt, verbatim
TAU_BENCH_USER_PROMPT = """You are a user interacting with an agent.{instruction_display}
Rules:
- Just generate one line at a time to simulate the user's message.
- Do not give away all the instruction at once. Only provide the information that is necessary for the current step.
- Do not hallucinate information that is not provided in the instruction. For example, if the agent asks for the order id but it is not mentioned in the instruction, do not make up an order id, just say you do not remember or have it.
- If the instruction goal is satisified, generate '###STOP###' as a standalone message without anything else to end the conversation.
- Do not repeat the exact instruction in the conversation. Instead, use your own words to convey the same information.
- Try to make the conversation as natural as possible, and stick to the personalities in the instruction."""

# τ²-bench (MIT licence, Sierra): data/tau2/user_simulator/simulation_guidelines.md, verbatim
TAU2_USER_GUIDELINES = """# User Simulation Guidelines
You are playing the role of a customer contacting a customer service representative. 
Your goal is to simulate realistic customer interactions while following specific scenario instructions.

## Core Principles
- Generate one message at a time, maintaining natural conversation flow.
- Strictly follow the scenario instructions you have received.
- Never make up or hallucinate information not provided in the scenario instructions. Information that is not provided in the scenario instructions should be considered unknown or unavailable.
- Avoid repeating the exact instructions verbatim. Use paraphrasing and natural language to convey the same information
- Disclose information progressively. Wait for the agent to ask for specific information before providing it.

## Task Completion
- The goal is to continue the conversation until the task is complete.
- If the instruction goal is satisified, generate the '###STOP###' token to end the conversation.
- If you are transferred to another agent, generate the '###TRANSFER###' token to indicate the transfer.
- If you find yourself in a situation in which the scenario does not provide enough information for you to continue the conversation, generate the '###OUT-OF-SCOPE###' token to end the conversation.
Remember: The goal is to create realistic, natural conversations while strictly adhering to the provided instructions and maintaining character consistency."""


def published_user_prompt(task: PublishedTask) -> str:
    """The benchmark's user system prompt for the task."""
    if task.source == "tau2":
        # tau2/user/user_simulator.py SYSTEM_PROMPT: guidelines (no persona guidelines), then the scenario
        return f"{TAU2_USER_GUIDELINES.replace('<PERSONA_GUIDELINES>', '')}\n\n<scenario>\n{task.instruction}\n</scenario>".strip()
    return TAU_BENCH_USER_PROMPT.format(instruction_display=f"\n\nInstruction: {task.instruction}\n")


def stop_tokens(task: PublishedTask) -> tuple[str, ...]:
    return TAU2_STOPS if task.source == "tau2" else (STOP,)


# ---- the offline user ----------------------------------------------------------------------------------------------

_SENT = re.compile(r"[^.!?\n]+[.!?]?")
_RID = re.compile(r"\b(?=[A-Z0-9]{6}\b)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{6}\b")
_UID = re.compile(r"\buser id is '?([A-Za-z]+_[A-Za-z]+_\d+)")
_PERSON = [(r"\byou are\b", "I am"), (r"\byou're\b", "I'm"), (r"\byou were\b", "I was"), (r"\byou have\b", "I have"),
           (r"\byourself\b", "myself"), (r"\byours\b", "mine"), (r"\byour\b", "my"), (r"\byou\b", "I")]  # fmt: skip
_TOPIC_WORDS = {**{k: tuple(v) for k, v in TOPIC_KEYWORDS.items()},
                "bags": ("bag", "baggage", "luggage", "suitcase"), "cabin": ("cabin", "economy", "business", "class"),
                "payment": ("pay", "card", "certificate", "gift", "credit"), "insurance": ("insurance",),
                "date": ("may ", "date", "day", "morning", "evening", "am ", "pm "), "passengers": ("passenger", "name", "birth", "dob")}  # fmt: skip


def first_person(sentence: str) -> str:
    out = sentence
    for pat, rep in _PERSON:
        out = re.sub(
            pat, lambda m, rep=rep: rep if m.group(0)[0].islower() else rep[0].upper() + rep[1:], out, flags=re.I
        )
    return out.strip()


def _instruction_text(task: PublishedTask) -> str:
    if task.source == "tau2" and task.scenario:
        ins = task.scenario.get("instructions")
        if isinstance(ins, dict):
            return "\n".join(str(ins.get(k) or "") for k in ("reason_for_call", "known_info", "task_instructions"))
    return task.instruction


class InstructionUser:
    """Deterministic user for a published task (module docstring). `reply(agent_text) -> user message`."""

    last_error: str | None = None  # never set: no model that can fail

    def __init__(self, task: PublishedTask, max_replies: int = 15):
        self.task = task  # shared
        self.max_replies = max_replies
        self.replies = 0
        self.stopped = False
        self.told: list[str] = []  # the instruction sentences already said, so the user does not repeat itself

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InstructionUser):
            return NotImplemented
        return (self.task is other.task, self.replies, self.stopped, self.told, self.max_replies) == (
            other.task, other.replies, other.stopped, other.told, other.max_replies)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    # --- what the instruction says ---
    def _sentences(self) -> list[str]:
        return [m.group(0).strip() for m in _SENT.finditer(_instruction_text(self.task)) if m.group(0).strip()]

    def user_id(self) -> str | None:
        m = _UID.search(_instruction_text(self.task))
        return m.group(1) if m else self.task.user_id

    def reservation_ids(self) -> list[str]:
        return list(dict.fromkeys(_RID.findall(_instruction_text(self.task))))

    def opening(self) -> str:
        """The first sentence that says what the user wants (not the one giving the user id)."""
        for s in self._sentences():
            if _UID.search(s) or re.match(r"(?i)you are [A-Z]", s) and len(s) < 40:
                continue
            if re.search(r"(?i)\b(want|would like|need|wish|wonder|contact|call|complain|looking)", s):
                self.told.append(s)
                return f"Hi! {first_person(s)}"
        return "Hi! I need help with my reservation."

    def reply(self, agent_text: str) -> str:
        if self.stopped:
            return STOP
        self.replies += 1
        if self.replies > self.max_replies:
            self.stopped = True
            return f"Sorry, I have to go now. {STOP}"
        low = agent_text.lower()
        if CLOSING_RE.search(agent_text) and not requested_topics(low):
            self.stopped = True
            return f"No, that's all. Thank you! {STOP}"
        if CONFIRM_RE.search(low) and ACTION_RE.search(low):
            return "Yes, please go ahead."
        topics = requested_topics(low)
        if not topics:
            return "Okay."
        parts: list[str] = []
        for topic in topics:
            if topic == "user_id":
                uid = self.user_id()
                parts.append(f"My user id is {uid}." if uid else "Sorry, I don't remember my user id.")
            elif topic == "reservation_id":
                rids = self.reservation_ids()
                parts.append(f"It's {' and '.join(rids)}." if rids else "Sorry, I don't remember my reservation id.")
            else:
                words = _TOPIC_WORDS.get(topic, ())
                found = [s for s in self._sentences() if s not in self.told and any(w in s.lower() for w in words)]
                if found:
                    self.told.append(found[0])
                    parts.append(first_person(found[0]))
        return " ".join(dict.fromkeys(parts)) if parts else "I don't know."


def make_published_user(task: PublishedTask, simulator: Any, *, seed: int, max_replies: int) -> Any:
    """The user for a published task: the offline InstructionUser (simulator None) or the LLM user with the
    benchmark's prompt."""
    if simulator is None:
        return InstructionUser(task, max_replies=max_replies)
    from .users import LLMUser

    return LLMUser(task, simulator, seed=seed, system_prompt=published_user_prompt(task), stops=stop_tokens(task))  # type: ignore[arg-type]
