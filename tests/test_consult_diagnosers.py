"""Diagnosing outside the knowledge table: the `match` diagnoser (Bayesian P where the disease is in the table,
n/a elsewhere), `make_diagnoser`, the LLM diagnoser's candidates for cases without options, the environment
with diagnoser="match", and the evaluator's n/a in the JSON and HTML reports."""

from __future__ import annotations

import json

import pytest
from public_records import osce, osce_outside_table, write_jsonl

from agentrl.core.registry import scripted_agent
from environments.consultation.env import ConsultationEnv
from mock_patients.diagnoser import (
    OTHER_CANDIDATE,
    BayesianDiagnoser,
    Evidence,
    LLMDiagnoser,
    MatchDiagnoser,
    make_diagnoser,
)
from mock_patients.evaluate import evaluate_file, main_summary_line
from mock_patients.loaders import load_agentclinic


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    p = write_jsonl(tmp_path_factory.mktemp("ac") / "ac.jsonl", [osce(), osce_outside_table()])
    return load_agentclinic(p)


class ScoringModel:
    """Test stand-in for a judge model: 80 for a candidate containing `likely`, 20 for the rest."""

    def __init__(self, likely: str):
        self.likely = likely
        self.prompts: list[str] = []

    def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None):
        text = messages[0]["content"]
        self.prompts.append(text)
        return "80" if f"has {self.likely}?" in text else "20"

    def complete_batch(self, batch, **kw):
        return [self.complete(m, **kw) for m in batch]


def test_match_diagnoser_is_bayes_inside_the_table_and_none_outside(cases):
    pneu, mg = cases
    ev = Evidence()
    ev.add_facts(pneu, [f.id for f in pneu.key_facts])
    m = MatchDiagnoser()
    assert m.probability(pneu, ev) == pytest.approx(BayesianDiagnoser().probability(pneu, ev))
    assert m.prior_probability(pneu) == pytest.approx(BayesianDiagnoser().prior_probability(pneu))
    assert m.probability(mg, Evidence()) is None and m.prior_probability(mg) is None


def test_make_diagnoser_by_name():
    assert isinstance(make_diagnoser("match"), MatchDiagnoser) and isinstance(
        make_diagnoser("bayes"), BayesianDiagnoser
    )
    assert isinstance(make_diagnoser("llm", ScoringModel("x")), LLMDiagnoser)
    with pytest.raises(ValueError, match="unknown diagnoser 'oracle'; allowed: bayes, llm, match"):
        make_diagnoser("oracle")
    with pytest.raises(ValueError, match="needs a chat model .*--diagnoser-model"):
        make_diagnoser("llm")
    with pytest.raises(ValueError, match="uses no model"):
        make_diagnoser("match", ScoringModel("x"))


def test_llm_diagnoser_candidates_for_a_case_without_options(cases):
    mg = cases[1]
    dx = LLMDiagnoser(ScoringModel("Myasthenia gravis"))
    assert dx.candidate_list(mg) == sorted(["Myasthenia gravis", OTHER_CANDIDATE], key=str.lower)
    transcript = [{"role": "assistant", "content": "DIAGNOSIS: Lambert-Eaton syndrome"}]
    assert dx.candidate_list(mg, transcript) == ["Lambert-Eaton syndrome", "Myasthenia gravis"]  # the stated one
    assert dx.probability(mg, None, []) == pytest.approx(0.8)  # 80 / (80 + 20 for "another condition")
    assert dx.probability(mg, None, transcript) == pytest.approx(0.8)


def test_env_match_diagnoser_scores_any_case(cases):
    with pytest.raises(ValueError, match="outside the knowledge table.*diagnoser='match'"):
        ConsultationEnv(split="test", cases=cases)  # bayes refuses
    env = ConsultationEnv(split="test", cases=cases, diagnoser="match")
    rewards = {}
    for tid in env.task_ids():
        obs, _ = env.reset(seed=0, options={"task_id": tid})
        act, convo = scripted_agent("agentrl/Consultation-v0", "good", env), [dict(m) for m in obs]
        term = trunc = False
        while not (term or trunc):
            a = act(convo)
            obs, r, term, trunc, info = env.step(a)
            convo += [{"role": "assistant", "content": a}, *map(dict, obs)]
        rewards[tid] = info["reward_breakdown"]
    inside, outside = rewards["agentclinic-0001"], rewards["agentclinic-0002"]
    assert inside["probability_available"] == 1.0 and 0 < inside["diagnosis_probability"] < 1
    assert outside["probability_available"] == 0.0 and "diagnosis_probability" not in outside
    assert outside["reward_probability"] == 0.0
    with pytest.raises(ValueError, match="diagnoser_model is given but diagnoser='match'"):
        ConsultationEnv(split="test", cases=cases, diagnoser="match", diagnoser_model=ScoringModel("x"))
    judge = ScoringModel("Myasthenia gravis")
    env = ConsultationEnv(split="test", cases=cases, diagnoser="llm", diagnoser_model=judge)  # no simulator needed
    env.reset(options={"task_id": "agentclinic-0002"})
    *_, info = env.step("DIAGNOSIS: myasthenia gravis")
    assert info["reward_breakdown"]["diagnosis_probability"] == pytest.approx(0.8) and judge.prompts


def _dialog(case_id, turns):
    msgs = [{"role": "user", "content": "Hello doctor."}]
    for t in turns:
        msgs += [{"role": "assistant", "content": t}, {"role": "user", "content": "I'm not sure."}]
    return {"case_id": case_id, "doctor": "d", "messages": msgs[:-1]}


def test_evaluate_reports_na_outside_the_table(cases, tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [_dialog("agentclinic-0002", ["Any double vision?", "DIAGNOSIS: MG"])])
    rep = evaluate_file(p, cases=cases, out_json=tmp_path / "r.json", out_html=tmp_path / "r.html")
    (m,) = rep.dialogs
    assert m.stated_diagnosis == "MG" and not rep.errors  # scored, not an error
    assert m.final_probability is None and m.prior_probability is None and m.probability_by_turn is None
    assert rep.summary.final_probability is None and rep.summary.probability_dialogs == 0
    assert rep.diagnoser == "match" and "P(correct) n/a" in main_summary_line(rep)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["dialogs"][0]["final_probability"] is None
    html = (tmp_path / "r.html").read_text()
    assert "<td>n/a</td>" in html and "<td>–</td>" not in html
    both = write_jsonl(
        tmp_path / "b.jsonl",
        [
            _dialog("agentclinic-0002", ["DIAGNOSIS: myasthenia gravis"]),
            _dialog("agentclinic-0001", ["Any fever?", "DIAGNOSIS: pneumonia"]),
        ],
    )
    rep = evaluate_file(both, cases=cases, diagnoser="bayes")
    assert [d.correct for d in rep.dialogs] == [True, True] and rep.summary.accuracy == 1.0
    assert rep.dialogs[0].final_probability is None and rep.dialogs[1].final_probability is not None
    assert rep.summary.probability_dialogs == 1 and "(1/2 dialogs)" in main_summary_line(rep)
    rep = evaluate_file(both, cases=cases, diagnoser=LLMDiagnoser(ScoringModel("Myasthenia gravis")))
    assert rep.diagnoser == "llm" and rep.dialogs[0].final_probability == pytest.approx(0.8)
    with pytest.raises(ValueError, match="needs a chat model"):
        evaluate_file(both, cases=cases, diagnoser="llm")
