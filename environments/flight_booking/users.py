"""Simulated users: a rule-based one (the deterministic, offline default) and an LLM one over any ChatModel.

Both hold their whole conversation state in plain attributes, so the env's snapshot / restore (a deep copy
of the episode state) branches them; the task and the chat model are shared, never copied.

RuleUser reads each agent message with keyword rules (τ-bench's user rules, made mechanical):
  1. a confirmation request ("... do you confirm?", "shall I proceed?") for what the current goal wants —
     it mentions one string of every `confirm` group and none of `reject` — gets "yes"; any other
     proposal gets "no" and the goal restated. The user confirms what it *wants*, even when the policy
     forbids it: refusing is the agent's job, and the database comparison scores it;
  2. a question about known topics is answered from `known_info` only; about unknown topics it says it
     does not know; it never invents (flight choices: it names the flights it wants once the agent lists them);
  3. a refusal ("cannot", "not allowed", ...) is accepted after `insist` push-backs, and the next goal follows;
  4. an "answer" goal is met once the agent has said all its `answer` strings;
  5. anything else gets the current goal restated, or, once every goal is met or refused, ###STOP###.
It stops after `max_replies` replies whatever happens. It is a heuristic reader: fine for training signal
and CI, but the LLM user is the τ-bench-faithful one.
"""

from __future__ import annotations

import re
from typing import Any

from agentrl.core.chat import validate_messages

from .tasks import Goal, Task

STOP = "###STOP###"
EMPTY_REPLY = "..."  # said instead of an empty LLM user turn (an empty chat message would break the dialog)
EMPTY_REPLY_ERROR = "simulator_empty_reply"  # the error kind the env counts for it in info["errors"]

# topic -> phrases that show the agent asks about it (matched at word starts in lower-cased question sentences,
# so "update" does not ask about a "date")
TOPIC_KEYWORDS: dict[str, tuple[str, ...]] = {
    "user_id": ("user id", "user_id", "userid", "account id", "customer id", "member id", "your id"),
    "reservation_id": ("reservation id", "reservation_id", "reservation number", "reservation code", "confirmation number",
                       "confirmation code", "booking id", "booking number", "booking reference", "which reservation"),
    "reason": ("reason", "why"),
    "trip": ("origin", "destination", "where", "which city", "which airport", "flying from", "flying to", "travel from", "travel to"),
    "trip_type": ("one way", "one-way", "round trip", "round-trip", "trip type", "return flight"),
    "date": ("date", "when", "which day", "what day"),
    "cabin": ("cabin", "class", "fare type", "seat type"),
    "passengers": ("passenger", "traveler", "traveller", "who will", "who is flying", "full name", "names", "birth", "dob"),
    "bags": ("bag", "luggage", "suitcase"),
    "insurance": ("insurance",),
    "payment": ("payment", "pay", "which card", "credit card", "gift card", "certificate"),
    "flight": ("which flight", "which option", "which one", "prefer", "flight number", "choose", "select"),
}  # fmt: skip
TOPIC_LABELS = {"user_id": "user id", "reservation_id": "reservation id", "reason": "reason", "trip": "itinerary",
                "trip_type": "trip type", "date": "travel dates", "cabin": "cabin", "passengers": "passenger details",
                "bags": "bags", "insurance": "insurance", "payment": "payment method", "flight": "flight choice"}  # fmt: skip


def _words(*phrases: str, whole: bool = False) -> re.Pattern[str]:
    body = "|".join(re.escape(p) for p in phrases)
    return re.compile(rf"\b(?:{body})" + (r"(?:s|d|ed|ing)?\b" if whole else ""))


_TOPIC_RE = {topic: _words(*words) for topic, words in TOPIC_KEYWORDS.items()}
REQUEST_RE = _words(
    "please provide",
    "please tell",
    "please share",
    "please give",
    "please let me know",
    "please confirm your",
    "could you",
    "can you",
    "may i have",
    "i need your",
    "i'll need",
    "i will need",
    "what is your",
    "what's your",
)
CONFIRM_RE = _words(
    "confirm",
    "proceed",
    "go ahead",
    "shall i",
    "should i",
    "would you like me to",
    "do you want me to",
    "yes or no",
    "yes/no",
    "is that correct",
    "is this correct",
    "is that right",
    "do you agree",
    "okay to",
)
ACTION_RE = _words(
    "book",
    "cancel",
    "cancellation",
    "change",
    "update",
    "upgrade",
    "modify",
    "add",
    "send",
    "issue",
    "move",
    "switch",
    "replace",
    "reserve",
    "purchase",
    "charge",
    "refund",
    "certificate",
    whole=True,
)
REFUSAL_RE = _words(
    "cannot",
    "can't",
    "can not",
    "unable to",
    "not able to",
    "not allowed",
    "not eligible",
    "not permitted",
    "against our policy",
    "against the policy",
    "not possible",
    "i'm afraid",
    "i am afraid",
    "won't be able",
)

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def normalize(text: str) -> str:
    """Lower case, no thousands commas or dollar signs, '_' and '-' as spaces: '$1,234' ~ '1234',
    'basic_economy' ~ 'basic economy', '2024-05-20' ~ '2024 05 20' (applied to both sides of every match)."""
    return re.sub(r"\s+", " ", text.lower().replace(",", "").replace("$", "").replace("_", " ").replace("-", " "))


def requested_topics(text: str) -> list[str]:
    """Topics asked about in the question / request sentences of an agent message (lower-cased raw text)."""
    found: list[str] = []
    for m in _SENTENCE.finditer(text):
        s = m.group(0).strip()
        if not (s.endswith("?") or REQUEST_RE.search(s)):
            continue
        s = s.replace("dates of birth", "birth").replace("date of birth", "birth")  # passengers, not travel dates
        for topic, pattern in _TOPIC_RE.items():
            if topic not in found and pattern.search(s):
                found.append(topic)
    return found


class RuleUser:
    """Deterministic user for one task (module docstring). `reply(agent_text) -> user message`."""

    last_error: str | None = None  # never set: the rule user has no model that can fail (see LLMUser)

    def __init__(self, task: Task, max_replies: int = 15):
        self.task = task  # shared: Task.__deepcopy__ returns itself
        self.max_replies = max_replies
        self.status = ["pending"] * len(task.user.goals)  # pending | agreed | refused | answered
        self.pushbacks = [0] * len(task.user.goals)
        self.replies = 0
        self.stopped = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleUser):
            return NotImplemented
        return (self.task is other.task and self.status == other.status and self.pushbacks == other.pushbacks
                and self.replies == other.replies and self.stopped == other.stopped and self.max_replies == other.max_replies)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def opening(self) -> str:
        return self.task.user.reason

    # --- helpers ---
    def _current(self) -> int | None:
        return next((i for i, s in enumerate(self.status) if s == "pending"), None)

    def _goal(self, i: int) -> Goal:
        return self.task.user.goals[i]

    def _next_or_stop(self, prefix: str) -> str:
        i = self._current()
        if i is None:
            self.stopped = True
            return f"{prefix} That's all I needed, thank you. {STOP}".strip()
        return f"{prefix} {self._goal(i).request}".strip()

    @staticmethod
    def _matches(goal: Goal, t: str) -> bool:
        return all(any(normalize(alt) in t for alt in group) for group in goal.confirm) and not any(
            normalize(r) in t for r in goal.reject
        )

    @staticmethod
    def _mentions(goal: Goal, t: str) -> bool:
        return any(normalize(alt) in t for group in goal.confirm for alt in group)

    # --- the reply rules, in order ---
    def reply(self, agent_text: str) -> str:
        if self.stopped:
            return STOP
        self.replies += 1
        if self.replies > self.max_replies:
            self.stopped = True
            return f"Sorry, I have to go now. {STOP}"
        low = agent_text.lower()
        t = normalize(agent_text)
        topics = requested_topics(low)
        cur = self._current()
        # a proposal is about the current goal, or (when all are settled) the last one agreed to
        target = (
            cur
            if cur is not None
            else next((i for i in reversed(range(len(self.status))) if self.status[i] == "agreed"), None)
        )
        if target is not None and CONFIRM_RE.search(low) and ACTION_RE.search(low):
            goal = self._goal(target)
            if not topics or self._mentions(goal, t):
                if goal.outcome in ("do", "refuse") and goal.confirm and self._matches(goal, t):
                    self.status[target] = "agreed"
                    return "Yes, please go ahead."
                return f"No, that's not what I want. {goal.request}"
        if topics:
            return self._answer(topics, t, cur)
        if cur is not None:
            goal = self._goal(cur)
            if goal.outcome != "answer" and REFUSAL_RE.search(low):
                if self.pushbacks[cur] < goal.insist:
                    self.pushbacks[cur] += 1
                    return goal.pushback or "Are you sure? It is really important to me."
                self.status[cur] = "refused"
                return self._next_or_stop("I understand.")
            if goal.outcome == "answer" and goal.answer and all(normalize(a) in t for a in goal.answer):
                self.status[cur] = "answered"
                return self._next_or_stop("Great, thanks.")
            return goal.request
        self.stopped = True
        return f"No, that's all. Thank you! {STOP}"

    def _answer(self, topics: list[str], t: str, cur: int | None) -> str:
        known, unknown = self.task.user.known_info, self.task.user.unknown_info
        goal = self._goal(cur) if cur is not None else None
        parts: list[str] = []
        for topic in topics:
            if topic == "flight" and goal is not None and goal.choose and all(normalize(f) in t for f in goal.choose):
                parts.append(f"I'd like {' and '.join(goal.choose)}.")
            elif topic in known:
                parts.append(known[topic])
            elif topic in unknown:
                parts.append(f"Sorry, I don't know my {TOPIC_LABELS[topic]}.")
        if not parts:  # asked about nothing the user knows: steer back to what it wants
            return goal.request if goal is not None else "I don't know. I have nothing else to ask."
        return " ".join(dict.fromkeys(parts))


# ---- LLM user ------------------------------------------------------------------------------------------------

# τ-bench's user-simulation rules, in our words
USER_RULES = f"""Rules:
- Write one short message at a time, as the customer, to the airline agent.
- Do not give all the information at once: only what the current step needs. Pursue one request at a time, in the order given.
- Never make up information that is not in your instructions. If the agent asks for something you do not know (for example a reservation id you do not have), say you do not remember it.
- Do not repeat the instructions word for word; say things in your own words, in the persona's style.
- Confirm ("yes") only actions that match what you want.
- When all your requests are done, or the agent has told you they cannot be done and you have accepted it, write {STOP} alone as your message to end the conversation."""


def user_system_prompt(task: Task) -> str:
    s = task.user
    known = "\n".join(f"- {k}: {v}" for k, v in s.known_info.items()) or "- (nothing)"
    unknown = ", ".join(TOPIC_LABELS[t] for t in s.unknown_info) or "(nothing)"
    # the fixed text first, the scenario after it: every user's prompt starts with the same tokens, which a
    # prefix cache (the transformers backend's KV store, vLLM's prefix cache) encodes once for all conversations
    return (f"You are a customer calling an airline's customer service.\n\n{USER_RULES}\n\nPersona: {s.persona}\n\n"
            f"Instructions: {s.instructions}\n\nWhat you know:\n{known}\n\nWhat you do not know: {unknown}")  # fmt: skip


class LLMUser:
    """The user played by a ChatModel from the scenario and τ-bench's user rules. Its conversation is its own
    view: agent messages are "user" turns, its replies are "assistant" turns (as in τ-bench)."""

    def __init__(self, task: Any, model: Any, *, seed: int = 0, temperature: float = 0.0, max_tokens: int = 256, max_replies: int = 30,
                 system_prompt: str | None = None, stops: tuple[str, ...] = (STOP,)):  # fmt: skip
        """system_prompt: None for the env's own tasks (user_system_prompt); the benchmark's prompt for a published
        task (users_published.py). stops: the texts that end the conversation."""
        if not callable(getattr(model, "complete", None)):
            raise TypeError(
                f"user model must be a ChatModel (an object with complete(messages, ...)), got {type(model).__name__}"
            )
        self.task = task
        self.model = model
        self.seed, self.temperature, self.max_tokens, self.max_replies = seed, temperature, max_tokens, max_replies
        self.stops = tuple(stops)
        self.messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt or user_system_prompt(task)}]
        self.stopped = False
        self.last_error: str | None = None  # the simulator error of the last turn, for the env to count

    def __deepcopy__(self, memo: dict[int, Any]) -> LLMUser:
        new = object.__new__(LLMUser)
        new.__dict__.update(self.__dict__)
        new.messages = [dict(m) for m in self.messages]  # the conversation is copied; task and model are shared
        memo[id(self)] = new
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LLMUser):
            return NotImplemented
        return (
            self.task is other.task
            and self.model is other.model
            and self.messages == other.messages
            and self.stopped == other.stopped
        )

    __hash__ = None  # type: ignore[assignment]

    def _complete(self) -> str:
        # a per-turn seed: a sampled user is reproducible, and branches from a snapshot replay the same user
        out = self.model.complete(validate_messages(self.messages), temperature=self.temperature, max_tokens=self.max_tokens,
                                  seed=self.seed + len(self.messages))  # fmt: skip
        if not isinstance(out, str):
            raise TypeError(f"user model returned {type(out).__name__}, expected str")
        text = out.strip()
        # the dialog goes on with a stand-in, but an empty reply is a simulator failure, never silent
        self.last_error = None if text else EMPTY_REPLY_ERROR
        text = text or EMPTY_REPLY
        self.messages.append({"role": "assistant", "content": text})
        if any(s in text for s in self.stops):
            self.stopped = True
        return text

    def opening(self) -> str:
        self.messages.append({"role": "user", "content": "Hi! How can I help you today?"})
        return self._complete()

    def reply(self, agent_text: str) -> str:
        self.last_error = None
        if self.stopped:
            return STOP
        self.messages.append({"role": "user", "content": agent_text})
        if sum(m["role"] == "assistant" for m in self.messages) > self.max_replies:
            self.stopped = True
            self.messages.append({"role": "assistant", "content": STOP})
            return STOP
        return self._complete()
