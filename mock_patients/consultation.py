"""One consultation's ledger: doctor turns in, patient / test replies out, and everything scored later.

A doctor turn is one of (parsed by `parse_turn`, case-insensitive, at the start of a line):
    DIAGNOSIS: <name>        ends the consultation with a stated diagnosis
    REQUEST TEST: <name>     an exam or test ("REQUEST EXAM:" is the same); the case's result, or
                             "normal" when the case has none. One per turn: the first line counts.
    anything else            a question to the patient

Listing symptoms does not buy information: the patient states at most a few facts per question
(`mock_patients.lexicon.MAX_FACTS_PER_ANSWER`, applied by `answerable`), and a question is charged one
inquiry per distinct finding it names, at least one (`question_cost`): "fever, cough, ...?" listing 45
symptoms spends 45 of the question budget. A doctor message has at most `MAX_MESSAGE_CHARS` characters
(the environment rejects longer actions, the evaluator longer lines).

`Consultation` is used by the environment (environments/consultation) and, replaying doctor turns from
a transcript, by the evaluator — so both count repeated and irrelevant questions, disclosed facts and
evidence identically. All state is plain data: `copy.deepcopy` gives an independent branch that shares
the case, lexicon and chat model.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Literal

import pydantic

from mock_patients.cases import KeyFact, PatientCase
from mock_patients.diagnoser import Evidence
from mock_patients.knowledge import KnowledgeTable, default_table
from mock_patients.lexicon import Concepts, Lexicon, default_lexicon
from mock_patients.patient import LLMPatient, RuleBasedPatient
from mock_patients.redaction import leak_filter, rewrite_reply
from mock_patients.text import content_stems

TurnKind = Literal["question", "test", "diagnosis", "invalid"]
_DIAGNOSIS = re.compile(r"^\s*\**\s*(?:final\s+)?diagnosis\s*\**\s*(?::|\s-)\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_TEST = re.compile(r"^\s*\**\s*request\s+(?:test|exam|examination)\s*\**\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
MAX_NAME_CHARS = 200
MAX_MESSAGE_CHARS = 2000  # one doctor message; ConsultationEnv.max_action_chars and the evaluator use it


class TurnRecord(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    turn: int
    kind: TurnKind
    text: str  # the doctor's message
    reply: str = ""  # what the doctor was told ("" after a diagnosis)
    target: str = ""  # the stated diagnosis or the requested test name
    test_id: str | None = None
    fact_ids: tuple[str, ...] = ()  # facts this turn revealed (again or for the first time)
    new_fact_ids: tuple[str, ...] = ()
    repeated: bool = False
    irrelevant: bool = False
    error: str | None = None  # invalid turns: what was wrong
    inquiries: int = 0  # what the question budget charges: tests 1, questions `question_cost`
    simulator_error: str | None = None  # the patient simulator failed this turn (an LLM patient's empty reply)


def parse_turn(text: str) -> tuple[TurnKind, str, str | None]:
    """(kind, argument, error). A diagnosis anywhere wins over a test request; a test over a question."""
    for kind, pattern, missing in (
        ("diagnosis", _DIAGNOSIS, "DIAGNOSIS needs a name, e.g. 'DIAGNOSIS: <the disease name>'"),
        ("test", _TEST, "REQUEST TEST needs a test name, e.g. 'REQUEST TEST: chest X-ray'"),
    ):
        m = pattern.search(text)
        if m:
            name = m.group(1).strip().strip("*").strip().rstrip(".")
            if not name:
                return "invalid", "", missing
            if len(name) > MAX_NAME_CHARS:
                return "invalid", "", f"the {kind} name has {len(name)} characters; at most {MAX_NAME_CHARS}"
            return kind, name, None
    return "question", text.strip(), None


def question_cost(concepts: Concepts) -> int:
    """Inquiries a question is charged: one per distinct finding it names, at least one. Asking about
    three symptoms in one breath costs what three questions cost, so a list-dump pays for its length."""
    return max(1, len(concepts.findings))


class Consultation:
    """The ledger of one consultation (see module docstring)."""

    def __init__(
        self,
        case: PatientCase,
        patient: RuleBasedPatient | LLMPatient | None = None,
        *,
        table: KnowledgeTable | None = None,
        lexicon: Lexicon | None = None,
    ):
        self.case = case
        self.table = table or default_table()
        self.lexicon = lexicon or default_lexicon()
        self.patient = (
            patient if patient is not None else RuleBasedPatient(case, lexicon=self.lexicon, table=self.table)
        )
        if self.patient.case is not case:
            raise ValueError(f"the patient plays case {self.patient.case.id}, the consultation is for case {case.id}")
        self.leak = leak_filter(case, self.table)
        self.records: list[TurnRecord] = []
        self.evidence = Evidence()
        self.disclosed: dict[str, int] = {}  # fact id -> turn (patient answers and test results)
        self.tests_done: set[str] = set()
        self.diagnosis: str | None = None
        self.opening_text: str | None = None

    def __deepcopy__(self, memo: dict) -> Consultation:
        new = copy.copy(self)
        new.patient = copy.deepcopy(self.patient, memo)
        new.records = list(self.records)  # records are frozen
        new.evidence = self.evidence.copy()
        new.disclosed = dict(self.disclosed)
        new.tests_done = set(self.tests_done)
        return new

    def _ledger(self) -> tuple:
        """Everything a consultation changes (the env's snapshot/restore contract compares this)."""
        return (
            self.case.id,
            self.records,
            self.evidence,
            self.disclosed,
            self.tests_done,
            self.diagnosis,
            self.opening_text,
            self.patient.state,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Consultation):
            return NotImplemented
        return self._ledger() == other._ledger()

    __hash__ = None  # mutable

    # --- turns -------------------------------------------------------------------------------------
    def opening(self) -> str:
        text = self.patient.opening()
        self.opening_text = text
        self._disclose(self.patient.state.disclosed.keys(), 0)
        return text

    @property
    def turn(self) -> int:
        return len(self.records)

    @property
    def finished(self) -> bool:
        return self.diagnosis is not None

    def doctor_turn(self, text: str) -> TurnRecord:
        if self.finished:
            raise RuntimeError("the consultation already ended with a diagnosis")
        kind, arg, error = parse_turn(text)
        turn = self.turn + 1
        if kind == "invalid":
            rec = TurnRecord(turn=turn, kind=kind, text=text, reply=f"Error: {error}", error=error)
        elif kind == "diagnosis":
            self.diagnosis = arg
            rec = TurnRecord(turn=turn, kind=kind, text=text, target=arg)
        elif kind == "test":
            rec = self._test(turn, text, arg)
        else:
            ans = self.patient.answer(arg)
            self._disclose(ans.fact_ids, turn)
            rec = TurnRecord(
                turn=turn,
                kind="question",
                text=text,
                reply=ans.text,
                fact_ids=ans.fact_ids,
                new_fact_ids=ans.new_fact_ids,
                repeated=ans.repeated,
                irrelevant=not ans.matched and not ans.repeated,
                inquiries=question_cost(self.lexicon.analyze(arg)),
                simulator_error=ans.error,
            )
        self.records.append(rec)
        return rec

    def _test(self, turn: int, text: str, name: str) -> TurnRecord:
        tid = self.lexicon.resolve_test(name)
        facts: list[KeyFact] = []
        if tid is not None:
            # table-id tests (generated cases), or free-named tests that the lexicon reads as the same test
            facts = [f for f in self.case.key_facts if f.test and (f.test == tid or self._free_test_id(f.test) == tid)]
            label = self.table.test_spec(tid).name
        if not facts:  # source cases name their tests freely ("Acetylcholine receptor antibodies")
            want = content_stems(name)
            facts = [
                f
                for f in self.case.key_facts
                if f.category in ("exam", "test") and f.test and want and want <= content_stems(f.test)
            ] or [
                f
                for f in self.case.key_facts
                if f.category in ("exam", "test")
                and f.test
                and len(want & content_stems(f.test)) >= max(1, len(want) // 2)
            ]
            if facts:
                label = facts[0].test or name
            elif tid is None:
                label = name
        key = tid or (facts[0].test if facts else name.strip().lower())
        repeated = key in self.tests_done
        self.tests_done.add(key)
        # table tests show their present findings ("normal" otherwise); a source's free-named results are
        # shown whatever their polarity ("Bacterial culture: Negative" is the result)
        shown = [f for f in facts if f.present or f.test != tid]
        learned = bool(facts)
        label = label[:1].upper() + label[1:]
        if shown and all(f.test == tid for f in shown):  # table tests: "Chest X-ray: <result>; <result>"
            reply = f"{label}: " + "; ".join(_result_text(f) for f in shown)
        elif shown:  # free-named source tests carry their own names ("Blood tests / WBC: 15.2")
            reply = "; ".join(_free_result(f) for f in shown)
        else:
            reply = f"{label}: normal"
            if tid is not None and self.case.closed_world:
                self.evidence.add_normal_test(self.table, tid)
                learned = True
        reply = rewrite_reply(reply, self.case, self.table)  # "Lesions consistent with <dx>." -> "Lesions."
        ids = tuple(f.id for f in facts)
        new = tuple(i for i in ids if i not in self.disclosed)
        self._disclose(ids, turn)
        return TurnRecord(
            turn=turn,
            kind="test",
            text=text,
            reply=reply,
            target=name,
            test_id=tid,
            fact_ids=ids,
            new_fact_ids=new,
            repeated=repeated,
            irrelevant=not learned and not repeated,
            inquiries=1,
        )

    def _free_test_id(self, test: str) -> str | None:
        if test in self._table_test_ids:
            return None
        return self.lexicon.resolve_test(test)

    @property
    def _table_test_ids(self) -> frozenset[str]:
        return _test_ids(self.table)

    def _disclose(self, fact_ids, turn: int) -> None:
        ids = [i for i in fact_ids]
        for i in ids:
            self.disclosed.setdefault(i, turn)
        self.evidence.add_facts(self.case, ids)

    # --- tallies ---------------------------------------------------------------------------------------
    def count(self, kind: TurnKind) -> int:
        return sum(r.kind == kind for r in self.records)

    @property
    def inquiries(self) -> int:
        """What the question budget counts: each test request once, each question once per distinct
        finding it names (at least once; see `question_cost`)."""
        return sum(r.inquiries for r in self.records)

    @property
    def repeated(self) -> int:
        return sum(r.repeated for r in self.records)

    @property
    def irrelevant(self) -> int:
        return sum(r.irrelevant for r in self.records)

    def recall(self, patient_only: bool = False) -> float:
        facts = self.case.patient_facts if patient_only else self.case.key_facts
        return sum(f.id in self.disclosed for f in facts) / len(facts) if facts else 0.0


@lru_cache(maxsize=4)
def _test_ids(table: KnowledgeTable) -> frozenset[str]:
    return frozenset(t.id for t in table.tests)


def _free_result(f: KeyFact) -> str:
    """A source's result as the report reads: "Patient's Pco2 is 16 mm Hg." -> "Pco2 is 16 mm Hg"."""
    t = f.text.rstrip(".")
    t = (
        re.sub(r"^(?:the\s+)?(?:patient|pt|his|her|their)(?:['’]s)?\s+(?=\S)", "", t, flags=re.IGNORECASE)
        if ":" not in t
        else t
    )
    return t[:1].upper() + t[1:]


def _result_text(f: KeyFact) -> str:
    # fact texts read "Chest X-ray: right lower lobe consolidation." -> keep the part after the test name
    t = f.text.rstrip(".")
    return t.split(": ", 1)[1] if ": " in t else t
