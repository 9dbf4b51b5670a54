"""Consultation-v0 and `consult evaluate` against a hostile doctor: list-dumping symptoms, huge messages,
and transcript files with a bad byte."""

from __future__ import annotations

import json
import statistics

import pytest

from agentrl.core.registry import scripted_agent
from environments.consultation.cli import main as consult_main
from environments.consultation.env import ConsultationEnv
from mock_patients.cases import shipped_cases
from mock_patients.consultation import MAX_MESSAGE_CHARS, Consultation
from mock_patients.evaluate import evaluate_file
from mock_patients.lexicon import MAX_FACTS_PER_ANSWER
from mock_patients.patient import RuleBasedPatient

N_CASES = 20
N_LISTED = 45


@pytest.fixture(scope="module")
def env():
    return ConsultationEnv(split="test")


def _checklist(table, n: int = N_LISTED) -> str:
    """One question listing the `n` symptoms most common over the table's diseases, in patient words."""
    syms = [f for f in table.findings if f.kind == "symptom"]
    syms.sort(key=lambda f: -sum(table.p_finding(d, f.id) for d in table.diseases))
    return "Do you have any of these: " + ", ".join(f.synonyms[0] for f in syms[:n]) + "?"


def _list_dumper(env, then: str | None = None):
    """Dumps the checklist once, then diagnoses the most probable disease from what it heard (or, with
    `then="good"`, goes on as the scripted good doctor)."""
    msg = _checklist(env.table)
    follow = scripted_agent("agentrl/Consultation-v0", then, env) if then else None

    def act(convo):
        k = env.consultation
        if not k.records:
            return msg
        if follow is not None:
            return follow(convo)
        post = env.bayes.posterior(k.evidence)
        return f"DIAGNOSIS: {env.table.disease(max(post, key=post.get)).name}"

    return act


def _mean_reward(env, make_agent) -> float:
    rewards = []
    for tid in env.task_ids()[:N_CASES]:
        obs, _ = env.reset(seed=0, options={"task_id": tid})
        act, convo, done = make_agent(), [dict(m) for m in obs], False
        while not done:
            a = act(convo)
            obs, r, term, trunc, _ = env.step(a)
            convo += [{"role": "assistant", "content": a}, *map(dict, obs)]
            done = term or trunc
        rewards.append(r)
    return statistics.mean(rewards)


def test_list_dump_scores_clearly_below_the_good_doctor(env):
    good = _mean_reward(env, lambda: scripted_agent("agentrl/Consultation-v0", "good", env))
    dump = _mean_reward(env, lambda: _list_dumper(env))
    dump_then_good = _mean_reward(env, lambda: _list_dumper(env, then="good"))
    assert dump < good - 1.0, (dump, good)
    assert dump_then_good < good - 1.0, (dump_then_good, good)


def test_one_question_discloses_a_few_facts_and_is_charged_per_finding(env):
    msg = _checklist(env.table)
    assert len(msg) <= MAX_MESSAGE_CHARS and len(env.lexicon.analyze(msg).findings) == N_LISTED
    for tid in env.task_ids()[:N_CASES]:
        env.reset(seed=0, options={"task_id": tid})
        rec = env.consultation.doctor_turn(msg)
        assert rec.kind == "question" and len(rec.fact_ids) <= MAX_FACTS_PER_ANSWER and rec.inquiries == N_LISTED
        assert env.consultation.inquiries == N_LISTED
    env.reset(seed=0, options={"task_id": env.task_ids()[0]})
    k = env.consultation
    assert k.doctor_turn("Any fever?").inquiries == 1 and k.doctor_turn("What brings you in today?").inquiries == 1
    assert k.doctor_turn("Do you have a fever or a cough?").inquiries == 2


def test_repeating_the_checklist_moves_on_to_undisclosed_facts():
    case = max(shipped_cases("test"), key=lambda c: sum(f.category == "symptom" for f in c.key_facts))
    p = RuleBasedPatient(case)
    p.opening()
    msg = _checklist(p.table)
    first, second = p.answer(msg), p.answer(msg)
    assert 0 < len(first.fact_ids) <= MAX_FACTS_PER_ANSWER and 0 < len(second.fact_ids) <= MAX_FACTS_PER_ANSWER
    assert not set(first.fact_ids) & set(second.fact_ids) and not second.repeated


def _dialog(case, doctor_turns: list[str], **extra) -> dict:
    k = Consultation(case)
    msgs = [{"role": "user", "content": k.opening()}]
    for t in doctor_turns:
        msgs.append({"role": "assistant", "content": t})
        rec = k.doctor_turn(t)
        if rec.reply:
            msgs.append({"role": "user", "content": rec.reply})
    return {"case_id": case.id, "messages": msgs, **extra}


def test_evaluate_caps_and_charges_list_dumps(tmp_path):
    cases = shipped_cases("test")[:N_CASES]
    msg = _checklist(RuleBasedPatient(cases[0]).table)
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(_dialog(c, [msg, f"DIAGNOSIS: {c.diagnosis}"])) + "\n" for c in cases))
    rep = evaluate_file(path)
    assert not rep.errors and len(rep.dialogs) == N_CASES
    for c, m in zip(cases, rep.dialogs):
        opening = sum(f.category in ("demographics", "chief_complaint") for f in c.key_facts)
        assert m.key_fact_recall <= (opening + MAX_FACTS_PER_ANSWER) / len(c.key_facts)
        assert m.questions == 1 and m.inquiries == N_LISTED
    assert rep.summary.inquiries == N_LISTED


def test_evaluate_rejects_an_oversized_doctor_message_on_its_line_only(tmp_path, capsys):
    case = shipped_cases("test")[0]
    # ~50 KB: over the 2,000-character message cap, under the 4 MiB line cap (a longer line is refused unread)
    huge = "Do you have " + ", ".join(["fever", "cough", "headache", "rash"] * 2_500) + "?"
    path = tmp_path / "d.jsonl"
    ok = _dialog(case, ["Any fever?", f"DIAGNOSIS: {case.diagnosis}"])
    path.write_text(
        json.dumps(ok)
        + "\n"
        + json.dumps(
            _dialog(case, ["Any fever?"])
            | {"messages": [{"role": "user", "content": "Hello doctor."}, {"role": "assistant", "content": huge}]}
        )
        + "\n"
    )
    rep = evaluate_file(path)
    assert [d.line for d in rep.dialogs] == [1] and [e.line for e in rep.errors] == [2]
    assert f"at most {MAX_MESSAGE_CHARS:,}" in rep.errors[0].error and "messages.1" in rep.errors[0].error
    assert ConsultationEnv.max_action_chars == MAX_MESSAGE_CHARS  # the env rejects the same messages
    assert consult_main(["consult", "evaluate", str(path)]) == 1
    assert f"{path}:2: " in capsys.readouterr().err


def test_evaluate_rejects_only_the_line_with_invalid_utf8(tmp_path, capsys):
    case = shipped_cases("test")[0]
    line = json.dumps(_dialog(case, ["Any fever?", f"DIAGNOSIS: {case.diagnosis}"]), ensure_ascii=False).encode()
    bad = line.replace(b"Any fever?", b"Any fever\xff?")
    path = tmp_path / "d.jsonl"
    path.write_bytes(line + b"\n" + bad + b"\n" + line.replace(b"fever", b"f\xc3\xa9ver") + b"\n")
    rep = evaluate_file(path)
    assert [d.line for d in rep.dialogs] == [1, 3] and [e.line for e in rep.errors] == [2]
    assert rep.errors[0].error.startswith("invalid UTF-8: byte 0xff (column ")
    assert consult_main(["consult", "evaluate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: invalid UTF-8" in err and "2 dialogs" in err
