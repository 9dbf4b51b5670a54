"""Scripted doctors for tests and baselines (`--model scripted:good`, `scripted:wander`).

`agentrl.core.registry.scripted_agent("agentrl/Consultation-v0", name, env)` returns `act(conversation) -> str`,
bound to one env instance. Both doctors read only what a doctor could know — the consultation's disclosed
evidence and their own earlier turns (from the env's state, so snapshot / restore keeps them consistent) —
never the case's diagnosis.

* good   — Bayesian interviewer: asks about the finding (or orders the test) with the largest expected
           information gain under the knowledge table's posterior, phrased in the patient lexicon;
           diagnoses the most probable disease once it passes 0.9 or the question budget is spent, among the
           diseases the patient's age and sex allow (`plausible`).
* wander — repeats itself and drifts: small talk, the same question twice, one vague symptom question,
           then a guess after running past the budget.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from agentrl.core.registry import ScriptedAgent, ScriptedFactory
from mock_patients.diagnoser import BayesianDiagnoser, Evidence

if TYPE_CHECKING:
    from .env import ConsultationEnv

CONFIDENT = 0.9
_MIN_GAIN = 1e-3  # bits; below this a question is not worth a turn
_ACTIVE = 1e-4  # diseases below this posterior are ignored when scoring questions (speed)


def _entropy(ps: list[float]) -> float:
    return -sum(p * math.log2(p) for p in ps if p > 0)


def _gain(post: dict[str, float], diag: BayesianDiagnoser, fids: list[str], sex: str | None) -> float:
    """Expected entropy reduction from learning the state of each finding in `fids` (treated one at a
    time and summed: a test reveals several findings)."""
    table = diag.table
    h0 = _entropy(list(post.values()))
    total = 0.0
    for fid in fids:
        ps = {d: table.p_finding(table.disease(d), fid, sex) for d in post}
        p_yes = sum(post[d] * ps[d] for d in post)
        if p_yes <= 0 or p_yes >= 1:
            continue
        yes = [post[d] * ps[d] / p_yes for d in post]
        no = [post[d] * (1 - ps[d]) / (1 - p_yes) for d in post]
        total += h0 - (p_yes * _entropy(yes) + (1 - p_yes) * _entropy(no))
    return total


AGE_MARGIN = 3  # years outside a disease's age range the doctor still considers it


def plausible(table: Any, disease_id: str, age: int | None, sex: str | None) -> bool:
    """A disease the patient's age and sex allow: never benign prostatic hyperplasia in a newborn boy or a woman,
    never an ectopic pregnancy in a man. Ages within AGE_MARGIN years of the disease's range count (the table's
    ranges are rough)."""
    d = table.disease(disease_id)
    if sex is not None and (d.p_female if sex == "female" else 1.0 - d.p_female) <= 0.0:
        return False
    if age is not None and not d.age[0] - AGE_MARGIN <= age <= d.age[1] + AGE_MARGIN:
        return False
    return True


def demographic_posterior(diag: BayesianDiagnoser, ev: Evidence) -> dict[str, float]:
    """The posterior over the diseases the patient's age and sex allow (`plausible`), renormalized; the whole
    posterior when none is allowed. The diagnoser's own age term cannot do this for an age outside every range
    (a newborn): it then penalizes every disease alike, and the most probable one can be any of them."""
    post = diag.posterior(ev)
    keep = {d: p for d, p in post.items() if plausible(diag.table, d, ev.age, ev.sex)}
    z = sum(keep.values())
    return {d: p / z for d, p in keep.items()} if keep and z > 0 else post


def good_doctor(env: ConsultationEnv) -> ScriptedAgent:
    diag = env.bayes
    table = diag.table
    lexicon = env.lexicon

    def act(conversation: list[dict[str, str]]) -> str:
        k = env.consultation
        ev: Evidence = k.evidence
        post = demographic_posterior(diag, ev)
        best = max(post, key=post.get)
        budget = env.reward_config.question_budget
        turns_left = env.max_turns - env.turn
        if post[best] >= CONFIDENT or k.inquiries >= budget or turns_left <= 1:
            return f"DIAGNOSIS: {table.disease(best).name}"
        asked: set[str] = set(ev.findings)
        for r in k.records:
            if r.kind == "question":
                asked |= lexicon.analyze(r.text).findings
        active = {d: p for d, p in post.items() if p >= _ACTIVE}
        z = sum(active.values())
        active = {d: p / z for d, p in active.items()}
        candidates = {f for d in active for f in table.disease(d).findings}
        best_q, best_gain = None, _MIN_GAIN
        for fid in sorted(candidates - asked):
            f = table.finding(fid)
            if f.kind not in ("symptom", "history") or (f.sex and ev.sex and f.sex != ev.sex):
                continue
            g = _gain(active, diag, [fid], ev.sex)
            if g > best_gain:
                best_q, best_gain = f"Have you had any {f.synonyms[0]}?", g
        tests = {table.finding(f).test for f in candidates if table.finding(f).test} - k.tests_done
        for tid in sorted(tests):
            fids = [f.id for f in table.findings_of_test(tid) if f.id in candidates and f.id not in asked]
            g = _gain(active, diag, fids, ev.sex)
            if g > best_gain:
                best_q, best_gain = f"REQUEST TEST: {table.test_spec(tid).name}", g
        if best_q is None:
            return f"DIAGNOSIS: {table.disease(best).name}"
        return best_q

    return act


_SMALL_TALK = (
    "How has your week been otherwise?",
    "Did you have a nice weekend?",
    "What do you think about the weather lately?",
    "Do you follow any sports?",
    "Have you been watching anything good on television?",
)
_VAGUE = ("Any headache?", "Any problems with your back?", "Do you have a cough?", "Any trouble sleeping?")
_GUESSES = ("common cold", "tension-type headache", "viral gastroenteritis", "mechanical low back pain")
_CHILD_GUESSES = ("common cold", "acute otitis media", "viral gastroenteritis", "common cold")


def wander_doctor(env: ConsultationEnv) -> ScriptedAgent:
    def act(conversation: list[dict[str, str]]) -> str:
        k = env.consultation
        h = int(hashlib.sha256(k.case.id.encode()).hexdigest(), 16)  # per-case variety, still deterministic
        n = len(k.records)
        script = [
            _SMALL_TALK[h % 5],
            "What brings you in today?",
            "What brings you in today?",
            _SMALL_TALK[(h // 5) % 5],
            _VAGUE[h % 4],
            _VAGUE[h % 4],
            _SMALL_TALK[(h // 25) % 5],
            "What brings you in today?",
        ]
        budget = env.reward_config.question_budget
        if n >= budget + 2 or env.max_turns - env.turn <= 1:
            age = k.evidence.age  # what the patient said; a child is not guessed a back-pain diagnosis
            return f"DIAGNOSIS: {(_CHILD_GUESSES if age is not None and age < 12 else _GUESSES)[h % 4]}"
        return script[n % len(script)]

    return act


# found through the `agentrl.scripted` entry point named agentrl/Consultation-v0 (agentrl.core.registry)
AGENTS: dict[str, ScriptedFactory] = {"good": good_doctor, "wander": wander_doctor}
