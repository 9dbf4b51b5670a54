"""Bayesian diagnoser (hand-checked posterior; beats the prior with all facts) and the LLM diagnoser."""

from __future__ import annotations

import math

import pytest

from mock_patients.cases import KeyFact, PatientCase, shipped_cases
from mock_patients.diagnoser import (
    BayesianDiagnoser,
    DiagnoserError,
    Evidence,
    LLMDiagnoser,
)
from mock_patients.knowledge import Disease, Finding, KnowledgeTable, default_table


def _tiny_table() -> KnowledgeTable:
    f = lambda i: Finding(id=i, kind="symptom", section="symptom", name=i, synonyms=(i,), base=0.1)  # noqa: E731
    d = lambda i, prior, fs: Disease(
        id=i,
        name=i,
        synonyms=(),
        specialty="x",
        prior=prior,
        age=(0, 99),
        p_female=0.5,  # noqa: E731
        tempo="days",
        findings=fs,
        differential=(),
    )
    return KnowledgeTable(
        findings=(f("a"), f("b")),
        tests=(),
        diseases=(d("d1", 1, {"a": 0.8}), d("d2", 3, {"a": 0.2, "b": 0.5})),
        body_parts={},
        symptom_words={},
        topics={},
    )


def test_posterior_matches_hand_computation():
    dx = BayesianDiagnoser(_tiny_table())
    assert dx.prior() == pytest.approx({"d1": 0.25, "d2": 0.75})
    post = dx.posterior(Evidence({"a": True, "b": False}))
    # d1: 0.25 * 0.8 * (1 - 0.1 base) ; d2: 0.75 * 0.2 * (1 - 0.5)
    w1, w2 = 0.25 * 0.8 * 0.9, 0.75 * 0.2 * 0.5
    assert post["d1"] == pytest.approx(w1 / (w1 + w2))
    ev = Evidence({"a": True}, age=50, sex="female")
    w1, w2 = 0.25 * 0.8 / 100 * 0.5, 0.75 * 0.2 / 100 * 0.5  # age uniform over 0..99, sex 50/50
    assert dx.posterior(ev)["d2"] == pytest.approx(w2 / (w1 + w2))


def test_all_facts_raise_the_true_diagnosis_above_its_prior():
    dx = BayesianDiagnoser()
    cases = shipped_cases()
    better = 0
    for c in cases:
        ev = Evidence()
        ev.add_facts(c, [f.id for f in c.key_facts])
        better += dx.probability(c, ev) > dx.prior_probability(c)
    assert better / len(cases) >= 0.95


def test_evidence_from_facts_and_normal_tests():
    c = shipped_cases()[0]
    ev = Evidence()
    ev.add_facts(c, [f.id for f in c.key_facts if f.category == "demographics"])
    assert ev.age == c.demographics.age and ev.sex == c.demographics.sex
    t = default_table()
    ev.add_normal_test(t, "chest_xray")
    assert all(ev.findings[f.id] is False for f in t.findings_of_test("chest_xray"))


def test_outside_table_diagnosis_is_an_error_not_zero():
    case = PatientCase(
        id="x",
        chief_complaint="ptosis",
        diagnosis="Myasthenia gravis",
        key_facts=(KeyFact(id="f1", text="Ptosis.", category="symptom"),),
    )
    with pytest.raises(DiagnoserError, match="not in the knowledge table"):
        BayesianDiagnoser().probability(case, Evidence())


class ScriptedChatModel:
    """Test stand-in for a chat model: maps a candidate name in the prompt to a canned score."""

    def __init__(self, scores, default="10"):
        self.scores = scores
        self.default = default
        self.prompts = []

    def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None):
        text = (
            messages[-1]["content"]
            if messages[-1]["role"] == "user" and "Reply with only" not in messages[-1]["content"]
            else messages[0]["content"]
        )
        self.prompts.append(messages)
        for name, s in self.scores.items():
            if f"has {name}?" in text:
                return s() if callable(s) else s
        return self.default

    def complete_batch(self, batch, *, temperature=0.0, max_tokens=256, seed=None):
        return [self.complete(m) for m in batch]


def test_llm_diagnoser_normalizes_candidate_scores():
    case = next(c for c in shipped_cases() if c.diagnosis_id == "pneumonia")
    m = ScriptedChatModel({case.diagnosis: "60"}, default="10")
    dx = LLMDiagnoser(m)
    transcript = [{"role": "user", "content": "I have a cough."}, {"role": "assistant", "content": "Any fever?"}]
    probs = dx.probabilities(case, transcript)
    assert set(probs) == {case.diagnosis, *case.differential}
    n_other = len(probs) - 1
    assert probs[case.diagnosis] == pytest.approx(60 / (60 + 10 * n_other))
    assert dx.probability(case, None, transcript) == pytest.approx(probs[case.diagnosis])
    assert "Doctor: Any fever?" in m.prompts[0][0]["content"]
    assert math.isclose(sum(probs.values()), 1.0)


def test_llm_diagnoser_reasks_once_then_raises():
    case = next(c for c in shipped_cases() if c.diagnosis_id == "pneumonia")
    replies = iter(["I'd say quite likely", "70"])
    m = ScriptedChatModel({case.diagnosis: lambda: next(replies)}, default="5")
    assert LLMDiagnoser(m).probabilities(case, [])[case.diagnosis] > 0.5
    m2 = ScriptedChatModel({case.diagnosis: "no idea"}, default="5")
    with pytest.raises(DiagnoserError, match="no 0-100 score"):
        LLMDiagnoser(m2).probabilities(case, [])
