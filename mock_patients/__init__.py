"""Simulated patients for medical-consultation dialogs.

* `cases`     — the `PatientCase` record and JSONL load/save; the shipped case bank (data/cases.jsonl).
* `knowledge` — the disease–finding knowledge table the generator samples from and the Bayesian diagnoser reads.
* `generate`  — the seeded case generator (`python -m mock_patients.generate --seed 0 --n 320 --test-extra 36 --out ...`).
* `loaders`   — AgentClinic OSCE and MediQ records -> `PatientCase`.
* `facts`     — key facts: from structured cases, by an LLM, or by a rule-based sentence splitter.
* `patient`   — rule-based and LLM patients that answer only from key facts and record disclosures.
* `diagnoser` — P(diagnosis | collected findings): Bayesian over the table, or an LLM scoring candidates.
* `evaluate`  — scores consultation transcripts (JSONL) and writes JSON + an HTML report.

This package imports only pydantic and the standard library (matplotlib lazily, for report plots),
and reaches chat models only through the `ChatModel` protocol in `mock_patients.chat`.
"""

from importlib import import_module
from typing import Any

# Lazy exports: `import mock_patients` stays cheap; each name loads its module on first use.
_EXPORTS = {
    "BayesianDiagnoser": "diagnoser",
    "LLMDiagnoser": "diagnoser",
    "ChatModel": "chat",
    "KeyFact": "cases",
    "PatientCase": "cases",
    "load_cases": "cases",
    "shipped_cases": "cases",
    "LLMPatient": "patient",
    "PatientAnswer": "patient",
    "RuleBasedPatient": "patient",
    "evaluate_file": "evaluate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mock_patients' has no attribute {name!r}")
    return getattr(import_module(f"mock_patients.{_EXPORTS[name]}"), name)
