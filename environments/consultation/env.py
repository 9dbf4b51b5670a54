"""ConsultationEnv: the doctor (the agent) interviews a simulated patient, may order exams and tests,
and ends with a diagnosis; the reward is paid at the end (see reward.py).

Agent messages (parsed by `mock_patients.consultation.parse_turn`, at the start of a line):
    DIAGNOSIS: <name>       ends the episode
    REQUEST TEST: <name>    an exam or test (REQUEST EXAM: too); the case's result or "normal"
    anything else           a question to the patient, answered from the case's key facts only

A question listing many symptoms gains nothing: the patient states at most 3 facts per answer
(`mock_patients.lexicon.MAX_FACTS_PER_ANSWER`), and the question budget charges a question once per
distinct finding it names (`mock_patients.consultation.question_cost`), so a 45-symptom checklist spends
45 inquiries. Messages over `MAX_MESSAGE_CHARS` (2000) characters are rejected as bad actions.

Episode state lives entirely in `self.state["consult"]` (a `Consultation`: patient conversation, disclosed
facts, evidence), so `snapshot()` / `restore()` branch the whole consultation; cases, the lexicon and chat
models are shared, never copied.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

from agentrl.core.env import EnvReply, MultiTurnEnv, RewardResult
from agentrl.core.types import Message
from mock_patients.cases import PatientCase, shipped_cases
from mock_patients.chat import ChatModel
from mock_patients.consultation import MAX_MESSAGE_CHARS, Consultation
from mock_patients.diagnoser import (
    DIAGNOSER_KINDS,
    BayesianDiagnoser,
    LLMDiagnoser,
    MatchDiagnoser,
)
from mock_patients.knowledge import default_table
from mock_patients.lexicon import default_lexicon
from mock_patients.loaders import load_file
from mock_patients.patient import LLMPatient, RuleBasedPatient

from .reward import RewardConfig, consultation_reward

SYSTEM_PROMPT = """You are a doctor seeing a patient. Find the diagnosis by asking questions, then state it.
Each of your messages is exactly one of:
- a question to the patient, in plain words (one topic per question: a question naming several symptoms
  counts as one question per symptom, and the patient answers only a few of them);
- REQUEST TEST: <exam or test name>   (e.g. "REQUEST TEST: chest X-ray", "REQUEST TEST: abdominal examination");
- DIAGNOSIS: <diagnosis name>   — this ends the consultation.
You have at most {max_turns} messages. Asking more than {budget} questions and tests in total, repeating a
question, or asking about things unrelated to the patient costs reward; the reward is highest when the
information you gather points to the correct diagnosis and you state it."""


def _simulator(
    patient: str,
    diagnoser: str,
    simulator: ChatModel | None,
    chat_model: object,
    diagnoser_model: ChatModel | None = None,
) -> ChatModel | None:
    """Check the constructor's patient / diagnoser kinds against `simulator` (the model that plays whatever is
    "llm", unless `diagnoser_model` judges); `chat_model=`, its name before 0.1, is refused naming it."""
    if chat_model is not None:
        raise ValueError("ConsultationEnv(chat_model=...) was removed in 0.1; pass simulator=<chat model>")
    if patient not in ("rule", "llm"):
        raise ValueError(f"patient must be 'rule' or 'llm', got {patient!r}")
    if diagnoser not in DIAGNOSER_KINDS:
        raise ValueError(f"diagnoser must be one of {', '.join(DIAGNOSER_KINDS)}, got {diagnoser!r}")
    for name, m in (("simulator", simulator), ("diagnoser_model", diagnoser_model)):
        if m is not None and not isinstance(m, ChatModel):
            raise ValueError(
                f"{name} must be a chat model (an object with complete and complete_batch), got {type(m).__name__}"
            )
    if diagnoser_model is not None and diagnoser != "llm":
        raise ValueError(f"diagnoser_model is given but diagnoser={diagnoser!r} does not use it; set diagnoser='llm'")
    uses = patient == "llm" or (diagnoser == "llm" and diagnoser_model is None)
    if uses and simulator is None:
        raise ValueError(
            f"patient={patient!r}, diagnoser={diagnoser!r} needs simulator=<chat model> "
            "(in a config: env.simulator.model=NAME)"
        )
    if simulator is not None and not uses:
        raise ValueError(
            "simulator is given but patient='rule' and diagnoser='bayes' do not use it; "
            "set patient='llm' and/or diagnoser='llm' (in a config: env.kwargs.patient=llm)"
        )
    return simulator


def _load_cases(path: str | Path) -> list[PatientCase]:
    result = load_file(path)
    if result.report.errors:
        warnings.warn(result.report.summary(), stacklevel=3)
    return result.cases


class ConsultationEnv(MultiTurnEnv):
    """split: "train", "test" or "all"; cases: a case file (PatientCase JSONL, or a public AgentClinic, NEJM or
    MediQ file as published: `mock_patients.loaders.load_file`, records it cannot read skipped with a warning;
    public records are in split "test"), a list of cases, or None (the shipped bank);
    patient: "rule" or "llm"; diagnoser: the judge of the reward's diagnosis probability — "bayes" (cases in
    the knowledge table only), "match" (any case: the Bayesian probability where the disease is in the table,
    none elsewhere, when the reward counts only the stated diagnosis's correctness) or "llm";
    simulator: the chat model that plays whatever is "llm" (an object with complete and complete_batch);
    diagnoser_model: a separate chat model for diagnoser="llm" (default: the simulator);
    reward: RewardConfig fields; max_turns: doctor messages before truncation."""

    max_turns = 16
    max_action_chars = MAX_MESSAGE_CHARS  # the evaluator rejects longer doctor messages too

    def __init__(
        self,
        *,
        split: Literal["train", "test", "all"] = "train",
        cases: str | Path | list[PatientCase] | None = None,
        patient: Literal["rule", "llm"] = "rule",
        diagnoser: Literal["bayes", "llm", "match"] = "bayes",
        simulator: ChatModel | None = None,
        reward: RewardConfig | dict[str, Any] | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
        chat_model: object = None,  # removed in 0.1 (simulator= replaces it): kept to refuse it by name
        diagnoser_model: ChatModel | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.simulator = _simulator(patient, diagnoser, simulator, chat_model, diagnoser_model)
        bank = cases if isinstance(cases, list) else (_load_cases(cases) if cases is not None else shipped_cases())
        self.cases = {c.id: c for c in bank if split == "all" or c.split == split}
        if not self.cases:
            here = sorted({c.split for c in bank})
            raise ValueError(
                f"no cases in split {split!r} ({len(bank)} cases loaded"
                + (f", in split {' and '.join(map(repr, here))}: pass split={here[0]!r} or 'all')" if here else ")")
            )
        self.split = split
        self.patient_kind = patient
        self.reward_config = reward if isinstance(reward, RewardConfig) else RewardConfig.model_validate(reward or {})
        self.table = default_table()
        self.lexicon = default_lexicon()
        self.bayes = BayesianDiagnoser(self.table)
        if diagnoser == "llm":
            self.diagnoser = LLMDiagnoser(diagnoser_model or self.simulator)  # type: ignore[arg-type]
        else:
            self.diagnoser = self.bayes if diagnoser == "bayes" else MatchDiagnoser(self.table)
        if diagnoser == "bayes":
            outside = [
                c.id for c in self.cases.values() if (c.diagnosis_id or self.table.disease_id_for(c.diagnosis)) is None
            ]
            if outside:
                raise ValueError(
                    f"{len(outside)} cases (e.g. {outside[0]}) have diagnoses outside the knowledge table; "
                    "the Bayesian diagnoser cannot score them — use diagnoser='match' (correctness by "
                    "name) or diagnoser='llm' with a simulator"
                )
        self._ids = sorted(self.cases)

    # --- hooks ----------------------------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        return list(self._ids)

    def task_family(self, task_id: str) -> str | None:
        case = self.cases[task_id]  # the diagnosis: rollout.task_draw=stratified spreads an update over diseases
        return case.diagnosis_id or case.diagnosis.strip().lower()

    def setup(self, options: dict[str, Any]) -> tuple[str, str]:
        tid = self.choose_task_id(options, self._ids, self.cases, what=f"cases in split {self.split!r}")
        case = self.cases[tid]
        self.task_id = tid
        if self.patient_kind == "llm":
            pat = LLMPatient(case, self.simulator, lexicon=self.lexicon, table=self.table)  # type: ignore[arg-type]
        else:
            pat = RuleBasedPatient(case, lexicon=self.lexicon, table=self.table)
        consult = Consultation(case, pat, table=self.table, lexicon=self.lexicon)
        opening = consult.opening()
        self.state = {"consult": consult}
        system = SYSTEM_PROMPT.format(max_turns=self.max_turns, budget=self.reward_config.question_budget)
        return system, opening

    def respond(self, text: str) -> EnvReply:
        consult: Consultation = self.state["consult"]
        rec = consult.doctor_turn(text)
        if rec.kind == "invalid":
            self.errors["bad_command"] += 1  # counted like the base class's errors; the turn is used up
            return EnvReply([Message(self.error_role, rec.reply)])
        if rec.kind == "diagnosis":
            return EnvReply(terminated=True)
        content = rec.reply if rec.kind == "question" else f"Result — {rec.reply}"
        return EnvReply([Message("user", content)], error=rec.simulator_error)  # counted as errors/<kind>

    def compute_reward(self) -> RewardResult:
        consult: Consultation = self.state["consult"]
        transcript = [m.to_dict() for m in self.transcript if m.role != "system"]
        p = self.diagnoser.probability(consult.case, consult.evidence, transcript)
        total, items, correct = consultation_reward(consult, p, self.reward_config)
        return RewardResult(total, items, success=correct)

    # --- helpers for scripted doctors and reports ---------------------------------------------------------
    @property
    def consultation(self) -> Consultation:
        if self.state is None:
            raise RuntimeError("call reset() first")
        return self.state["consult"]
