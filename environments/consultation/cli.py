"""`agentrl consult run | evaluate`: run doctors against mock patients, and score consultation transcripts.

    agentrl consult run --doctor scripted:good --cases 20 --out dialogs.jsonl
    agentrl consult run --doctor gpt-4o-mini@https://api.openai.com/v1 --cases 20 --out dialogs.jsonl
    agentrl consult evaluate dialogs.jsonl [--cases FILE] [--out-json R.json] [--out-html R.html]

The agentrl CLI calls `register(subparsers)` through the `agentrl.commands` entry point. Doctor model
strings other than `scripted:NAME` are turned into chat models by the `make_chat_model` hook passed to
`register` (the agentrl CLI passes its own); without one, `default_make_chat_model` handles
`MODEL@http(s)://HOST/v1` (OpenAI-compatible endpoint, key from $OPENAI_API_KEY) and local model names
(agentrl's model resolution, transformers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from agentrl.core.registry import scripted_agents
from mock_patients.cases import PatientCase
from mock_patients.chat import ChatModel
from mock_patients.evaluate import evaluate_file, main_summary_line
from mock_patients.io import atomic_write_text

from . import ENV_ID
from .env import ConsultationEnv

MakeChatModel = Callable[[str], ChatModel]


def default_make_chat_model(name: str) -> ChatModel:
    """`MODEL@http(s)://HOST/v1` -> OpenAI-compatible endpoint; anything else -> a local transformers model."""
    from agentrl.sim.models import make_chat_model

    return make_chat_model(name)


def _doctor(spec: str, env: ConsultationEnv, make_chat_model: MakeChatModel | None, temperature: float, max_tokens: int, seed: int):
    """(name, act(conversation) -> str, needs_rebinding) for a doctor spec."""
    agents = scripted_agents(ENV_ID)  # the `agentrl.scripted` entry point's doctors (and any registered since)
    have = ", ".join(f"scripted:{n}" for n in sorted(agents))
    if spec.startswith("scripted:"):
        name = spec.split(":", 1)[1]
        if name not in agents:
            raise ValueError(f"unknown scripted doctor {name!r}; available: {have}")
        return lambda: agents[name](env)
    if make_chat_model is None:
        raise ValueError(f"doctor {spec!r} needs a chat-model factory; without one only {have} work")
    model = make_chat_model(spec)

    def bind() -> Callable[[list[dict]], str]:
        def act(conversation: list[dict]) -> str:
            return model.complete(conversation, temperature=temperature, max_tokens=max_tokens, seed=seed)
        return act

    return bind


def run_dialogs(doctor: str, n_cases: int, *, split: str = "test", cases: str | Path | list[PatientCase] | None = None,
                patient: str = "rule", patient_model: str | None = None, make_chat_model: MakeChatModel | None = None,
                max_turns: int | None = None, temperature: float = 0.0, max_tokens: int = 256, seed: int = 0,
                progress: bool = False) -> list[dict[str, Any]]:
    """Run `doctor` against the first `n_cases` cases of `split`; one dialog record (README format) per case."""
    if n_cases < 1:
        raise ValueError(f"--cases must be >= 1, got {n_cases}")
    chat = None
    if patient == "llm":
        if not patient_model:
            raise ValueError("patient='llm' needs --patient-model MODEL")
        if make_chat_model is None:
            raise ValueError(f"patient model {patient_model!r} needs a chat-model factory")
        chat = make_chat_model(patient_model)
    env = ConsultationEnv(split=split, cases=cases, patient=patient, simulator=chat, max_turns=max_turns)  # type: ignore[arg-type]
    ids = env.task_ids()[:n_cases]
    bind = _doctor(doctor, env, make_chat_model, temperature, max_tokens, seed)
    out = []
    for i, tid in enumerate(ids):
        obs, _ = env.reset(seed=seed + i, options={"task_id": tid})
        act = bind()
        convo = [dict(m) for m in obs]
        reward, info, term, trunc = 0.0, {}, False, False
        while not (term or trunc):
            action = act(convo)
            obs, reward, term, trunc, info = env.step(action)
            convo.append({"role": "assistant", "content": action})
            convo += [dict(m) for m in obs]
        k = env.consultation
        out.append({
            "id": f"{tid}:{doctor}", "case_id": tid, "doctor": doctor, "messages": convo, "diagnosis": k.diagnosis,
            "reward": reward, "reward_breakdown": info.get("reward_breakdown", {}), "success": info.get("success"),
            "terminated": term, "truncated": trunc, "disclosed_facts": sorted(k.disclosed), "errors": info.get("errors", {}),
        })
        if progress:
            print(f"\r{i + 1}/{len(ids)} dialogs", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return out


def cmd_run(args: argparse.Namespace, make_chat_model: MakeChatModel | None) -> int:
    cases = args.case_file
    recs = run_dialogs(args.doctor, args.cases, split=args.split, cases=cases, patient=args.patient,
                       patient_model=args.patient_model, make_chat_model=make_chat_model, max_turns=args.max_turns,
                       temperature=args.temperature, max_tokens=args.max_new_tokens, seed=args.seed, progress=True)
    atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    mean = sum(r["reward"] for r in recs) / len(recs)
    acc = sum(bool(r["success"]) for r in recs) / len(recs)
    print(f"wrote {len(recs)} dialogs to {args.out} (mean reward {mean:.3f}, accuracy {acc:.3f})", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    src = Path(args.dialogs)
    out_json = args.out_json or src.with_suffix(".eval.json")
    out_html = args.out_html or src.with_suffix(".eval.html")
    report = evaluate_file(src, cases=args.cases, out_json=out_json, out_html=out_html)
    for e in report.errors:
        print(f"{src}:{e.line}: {e.error}", file=sys.stderr)
    print(main_summary_line(report), file=sys.stderr)
    print(f"report: {out_json}, {out_html}", file=sys.stderr)
    if report.summary is None:
        return 2
    return 1 if report.errors else 0


def register(subparsers: Any, *, make_chat_model: MakeChatModel | None = None) -> None:
    """Add `consult run` and `consult evaluate` to an argparse sub-parser set (the agentrl CLI's)."""
    factory = make_chat_model or default_make_chat_model
    p = subparsers.add_parser("consult", help="medical consultation: run doctors against mock patients, score transcripts")
    sub = p.add_subparsers(dest="consult_command", required=True)

    r = sub.add_parser("run", help="run a doctor against mock patients and write dialogs (JSONL)")
    r.add_argument("--doctor", required=True, help="scripted:good | scripted:wander | a local model | MODEL@http(s)://HOST/v1")
    r.add_argument("--cases", type=int, default=10, help="number of cases (the first N of the split)")
    r.add_argument("--out", required=True, help="output JSONL (format: mock_patients/README.md)")
    r.add_argument("--split", choices=("train", "test", "all"), default="test")
    r.add_argument("--case-file", default=None, help="case bank JSONL (default: the shipped mock_patients/data/cases.jsonl)")
    r.add_argument("--patient", choices=("rule", "llm"), default="rule")
    r.add_argument("--patient-model", default=None, help="chat model for --patient llm")
    r.add_argument("--max-turns", type=int, default=None)
    r.add_argument("--temperature", type=float, default=0.0)
    r.add_argument("--max-new-tokens", type=int, default=256)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(fn=lambda a: cmd_run(a, factory))

    e = sub.add_parser("evaluate", help="score consultation transcripts: accuracy, recall, question quality, P(correct) by turn")
    e.add_argument("dialogs", help="transcripts JSONL (format: mock_patients/README.md)")
    e.add_argument("--cases", default=None, help="case bank JSONL holding the dialogs' case_id (default: shipped cases)")
    e.add_argument("--out-json", default=None, help="default: DIALOGS.eval.json")
    e.add_argument("--out-html", default=None, help="default: DIALOGS.eval.html")
    e.set_defaults(fn=cmd_evaluate)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m environments.consultation.cli consult ...`), same as `agentrl consult ...`."""
    ap = argparse.ArgumentParser(prog="consult")
    register(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"consult: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
