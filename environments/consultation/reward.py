"""The consultation's terminal reward (§5.1 of "Response-Level Rewards Are All You Need for Online RL in
LLMs"): the probability a diagnoser gives the correct diagnosis from what the doctor collected, plus the
stated diagnosis's correctness, minus penalties for questions beyond a budget, repeated questions and
irrelevant ones (no key fact matched).

    R = w_prob * P(true dx | collected) + w_correct * [stated dx is correct]
        - w_excess * max(0, inquiries - budget) - w_repeated * repeated - w_irrelevant * irrelevant

where inquiries = test requests + questions, each question charged once per distinct knowledge-table
finding it names, at least once (`mock_patients.consultation.question_cost`). Listing symptoms therefore
does not game the reward: "Do you have any of these: fever, cough, ...?" naming 45 symptoms costs 45
inquiries, and the patient answers at most `mock_patients.lexicon.MAX_FACTS_PER_ANSWER` (3) facts per
question, so the message discloses no more than a focused question could.
"""

from __future__ import annotations

import pydantic

from mock_patients.consultation import Consultation
from mock_patients.names import diagnosis_matches


class RewardConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    probability: float = pydantic.Field(1.0, ge=0, description="weight of P(correct diagnosis | collected)")
    correct: float = pydantic.Field(1.0, ge=0, description="weight of stating the correct diagnosis")
    question_budget: int = pydantic.Field(
        8, ge=0, description="inquiries (tests, and questions per finding named) allowed before the excess penalty"
    )
    excess: float = pydantic.Field(0.05, ge=0, description="penalty per inquiry beyond the budget")
    repeated: float = pydantic.Field(0.1, ge=0, description="penalty per repeated question")
    irrelevant: float = pydantic.Field(0.05, ge=0, description="penalty per irrelevant question")


def consultation_reward(
    consult: Consultation, probability: float | None, cfg: RewardConfig
) -> tuple[float, dict[str, float], bool]:
    """(reward, itemized breakdown, success). `probability` comes from the env's diagnoser; None when it cannot
    score the case (diagnoser "match" outside the knowledge table): the probability term is then left out of
    the reward and the breakdown (`probability_available` 0)."""
    correct = consult.diagnosis is not None and diagnosis_matches(consult.diagnosis, consult.case, consult.table)
    excess = max(0, consult.inquiries - cfg.question_budget)
    items = {
        "diagnosis_probability": float(probability or 0.0),
        "probability_available": float(probability is not None),
        "correct_diagnosis": float(correct),
        "diagnosed": float(consult.diagnosis is not None),
        "questions": float(consult.count("question")),
        "tests": float(consult.count("test")),
        "inquiries": float(consult.inquiries),
        "excess_questions": float(excess),
        "repeated_questions": float(consult.repeated),
        "irrelevant_questions": float(consult.irrelevant),
        "key_fact_recall": consult.recall(),
        "reward_probability": cfg.probability * (probability or 0.0),
        "reward_correct": cfg.correct * float(correct),
        "penalty_excess": -cfg.excess * excess,
        "penalty_repeated": -cfg.repeated * consult.repeated,
        "penalty_irrelevant": -cfg.irrelevant * consult.irrelevant,
    }
    total = (
        items["reward_probability"]
        + items["reward_correct"]
        + items["penalty_excess"]
        + items["penalty_repeated"]
        + items["penalty_irrelevant"]
    )
    items["total"] = total
    if probability is None:
        del items["diagnosis_probability"]  # n/a, not 0
    return total, items, correct
