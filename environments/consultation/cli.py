"""`agentrl consult run | evaluate`: run doctors against mock patients, and score consultation transcripts.

    agentrl consult run --doctor scripted:good --cases 20 --out dialogs.jsonl
    agentrl consult run --doctor gpt-4o-mini@https://api.openai.com/v1 --cases 20 --out dialogs.jsonl
    agentrl consult run --doctor scripted:good --cases agentclinic_medqa.jsonl [--n 50] [--strict] --out dialogs.jsonl
    agentrl consult evaluate dialogs.jsonl [--cases FILE] [--diagnoser match|bayes|llm] [--out-json R.json] [--out-html R.html]

`--cases` takes a number (the first N shipped cases) or a case file in any format `mock_patients.loaders`
reads — AgentClinic OSCE or NEJM, MediQ, or this package's PatientCase JSONL — detected from its records;
the loader's summary (`loaded 213/214; line 132: ...`) is printed, and `--strict` fails on any bad record.
`--diagnoser` picks who judges P(correct diagnosis): `match` (default; any case: the Bayesian posterior
where the disease is in the knowledge table, n/a elsewhere, accuracy by name), `bayes` (table diseases
only) or `llm` (a chat model, `--diagnoser-model MODEL`).

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrl.core.registry import scripted_agents
from agentrl.eval.evaluate import play_scripted
from mock_patients.cases import PatientCase
from mock_patients.chat import ChatModel
from mock_patients.diagnoser import DIAGNOSER_KINDS, make_diagnoser
from mock_patients.evaluate import evaluate_file, main_summary_line
from mock_patients.io import atomic_write_text

from . import ENV_ID
from .env import ConsultationEnv

MakeChatModel = Callable[[str], ChatModel]


def default_make_chat_model(name: str) -> ChatModel:
    """`MODEL@http(s)://HOST/v1` -> OpenAI-compatible endpoint; anything else -> a local transformers model."""
    from agentrl.sim.models import make_chat_model

    return make_chat_model(name)


def _doctor(
    spec: str,
    env: ConsultationEnv,
    make_chat_model: MakeChatModel | None,
    temperature: float,
    max_tokens: int,
    seed: int,
):
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


def _env(
    cases: str | Path | list[PatientCase] | None,
    split: str,
    patient: str,
    patient_model: str | None,
    diagnoser: str,
    diagnoser_model: str | None,
    make_chat_model: MakeChatModel | None,
    max_turns: int | None,
) -> ConsultationEnv:
    """The environment for a run: a case file in any supported format, chat models for an LLM patient and an
    LLM diagnoser made by the factory."""
    if isinstance(cases, (str, Path)):
        from mock_patients.loaders import load_file

        cases = load_file(cases).cases
    if diagnoser not in DIAGNOSER_KINDS:
        raise ValueError(f"unknown diagnoser {diagnoser!r}; allowed: {', '.join(DIAGNOSER_KINDS)}")
    chat = judge = None
    if patient == "llm":
        if not patient_model:
            raise ValueError("patient='llm' needs --patient-model MODEL")
        if make_chat_model is None:
            raise ValueError(f"patient model {patient_model!r} needs a chat-model factory")
        chat = make_chat_model(patient_model)
    if diagnoser_model and diagnoser != "llm":
        raise ValueError(f"--diagnoser-model is only for --diagnoser llm (got --diagnoser {diagnoser})")
    if diagnoser == "llm" and (diagnoser_model or chat is None):
        if not diagnoser_model:
            raise ValueError(
                "--diagnoser llm needs --diagnoser-model MODEL (a local model path or MODEL@http(s)://HOST/v1)"
            )
        if make_chat_model is None:
            raise ValueError(f"diagnoser model {diagnoser_model!r} needs a chat-model factory")
        judge = make_chat_model(diagnoser_model)
    return ConsultationEnv(
        split=split,
        cases=cases,
        patient=patient,
        simulator=chat,
        diagnoser=diagnoser,  # type: ignore[arg-type]
        diagnoser_model=judge,
        max_turns=max_turns,
    )


def run_dialogs(
    doctor: str,
    n_cases: int | None = None,
    *,
    split: str = "test",
    cases: str | Path | list[PatientCase] | None = None,
    patient: str = "rule",
    patient_model: str | None = None,
    make_chat_model: MakeChatModel | None = None,
    max_turns: int | None = None,
    temperature: float = 0.0,
    max_tokens: int = 256,
    seed: int = 0,
    progress: bool = False,
    diagnoser: str = "match",
    diagnoser_model: str | None = None,
    case_file: str | None = None,
) -> list[dict[str, Any]]:
    """Run `doctor` against the first `n_cases` cases of `split` (None: all of them); one dialog record
    (README format) per case. `diagnoser` judges the reward's P(correct): "match" (any case), "bayes", "llm".
    Each record names the case file it was run on (`case_file`: `cases` when it is a path, else `case_file`), so
    `consult evaluate` finds the cases without --cases."""
    if n_cases is not None and n_cases < 1:
        raise ValueError(f"the number of cases must be >= 1, got {n_cases}")
    if isinstance(cases, (str, Path)):
        case_file = str(Path(cases).resolve())
    env = _env(cases, split, patient, patient_model, diagnoser, diagnoser_model, make_chat_model, max_turns)
    ids = env.task_ids()[:n_cases]
    bind = _doctor(doctor, env, make_chat_model, temperature, max_tokens, seed)
    out = []
    for i, tid in enumerate(ids):
        ep = play_scripted(env, lambda _env: bind(), seed=seed + i, task=tid)  # the doctor is bound after the reset
        info, k = ep.final_info, env.consultation
        out.append(
            {
                "id": f"{tid}:{doctor}",
                "case_id": tid,
                "doctor": doctor,
                "messages": ep.messages,
                "diagnosis": k.diagnosis,
                "reward": ep.reward,
                "reward_breakdown": info.get("reward_breakdown", {}),
                "success": info.get("success"),
                "terminated": ep.terminated,
                "truncated": ep.truncated,
                "disclosed_facts": sorted(k.disclosed),
                "errors": info.get("errors", {}),
                **({"case_file": case_file} if case_file else {}),  # evaluate reads it, so --cases is not needed there
            }
        )
        if progress:
            print(f"\r{i + 1}/{len(ids)} dialogs", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return out


def case_file_of(spec: str | None, case_file: str | None = None) -> str | None:
    """The case file `--cases N|FILE` / `--case-file FILE` name, as an absolute path; None for the shipped bank."""
    path = case_file if case_file is not None else spec
    if path is None or (path.strip().isdigit() and not Path(path).is_file()):
        return None
    return str(Path(path).resolve())


def resolve_cases(
    spec: str | None, case_file: str | None = None, *, strict: bool = False, n: int | None = None
) -> tuple[list[PatientCase] | None, int | None]:
    """`--cases N|FILE` (+ legacy `--case-file FILE`, `--n N`) -> (cases or None for the shipped bank, how
    many to run). A file in any supported format is loaded here and its load summary printed."""
    count: int | None = n
    path = case_file
    if spec is not None:
        if spec.strip().isdigit() and not Path(spec).is_file():
            if n is not None:
                raise ValueError("give the number of cases once: --cases N, or --cases FILE --n N")
            count = int(spec)
        elif path is not None:
            raise ValueError("--cases FILE and --case-file FILE both name a case file; give one")
        else:
            path = spec
    if path is None:
        return None, (10 if count is None else count)
    from mock_patients.loaders import load_file

    loaded = load_file(path, strict=strict)
    print(f"cases: {path} ({loaded.report.format}): {loaded.report.summary()}", file=sys.stderr)
    return loaded.cases, count


def cmd_run(args: argparse.Namespace, make_chat_model: MakeChatModel | None) -> int:
    cases, n = resolve_cases(args.cases, args.case_file, strict=args.strict, n=args.n)
    recs = run_dialogs(
        args.doctor,
        n,
        split=args.split,
        cases=cases,
        patient=args.patient,
        patient_model=args.patient_model,
        make_chat_model=make_chat_model,
        max_turns=args.max_turns,
        temperature=args.temperature,
        max_tokens=args.max_new_tokens,
        seed=args.seed,
        progress=True,
        diagnoser=args.diagnoser,
        diagnoser_model=args.diagnoser_model,
        case_file=case_file_of(args.cases, args.case_file),
    )
    atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    mean = sum(r["reward"] for r in recs) / len(recs)
    acc = sum(bool(r["success"]) for r in recs) / len(recs)
    print(f"wrote {len(recs)} dialogs to {args.out} (mean reward {mean:.3f}, accuracy {acc:.3f})", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace, make_chat_model: MakeChatModel | None) -> int:
    src = Path(args.dialogs)
    out_json = args.out_json or src.with_suffix(".eval.json")
    out_html = args.out_html or src.with_suffix(".eval.html")
    if args.diagnoser_model and args.diagnoser != "llm":
        raise ValueError(f"--diagnoser-model is only for --diagnoser llm (got --diagnoser {args.diagnoser})")
    if args.diagnoser == "llm" and not args.diagnoser_model:
        raise ValueError(
            "--diagnoser llm needs --diagnoser-model MODEL (a local model path or MODEL@http(s)://HOST/v1)"
        )
    if args.diagnoser == "llm" and make_chat_model is None:
        raise ValueError(f"diagnoser model {args.diagnoser_model!r} needs a chat-model factory")
    judge = make_diagnoser("llm", make_chat_model(args.diagnoser_model)) if args.diagnoser == "llm" else args.diagnoser  # type: ignore[misc]
    report = evaluate_file(src, cases=args.cases, out_json=out_json, out_html=out_html, diagnoser=judge)
    if report.cases:
        print(f"cases: {report.cases}", file=sys.stderr)
    for e in report.errors:
        print(f"{src}:{e.line}: {e.error}", file=sys.stderr)
    print(main_summary_line(report), file=sys.stderr)
    print(f"report: {out_json}, {out_html}", file=sys.stderr)
    if report.summary is None:
        return 2
    return 1 if report.errors else 0


def _diagnoser_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--diagnoser",
        choices=DIAGNOSER_KINDS,
        default="match",
        help="who judges P(correct diagnosis): match (any case; Bayesian where the disease is in the "
        "knowledge table, n/a elsewhere), bayes (table diseases only), llm (--diagnoser-model)",
    )
    p.add_argument(
        "--diagnoser-model",
        default=None,
        help="chat model for --diagnoser llm: a local model path or MODEL@http(s)://HOST/v1",
    )


def register(subparsers: Any, *, make_chat_model: MakeChatModel | None = None) -> None:
    """Add `consult run` and `consult evaluate` to an argparse sub-parser set (the agentrl CLI's)."""
    factory = make_chat_model or default_make_chat_model
    p = subparsers.add_parser(
        "consult", help="medical consultation: run doctors against mock patients, score transcripts"
    )
    sub = p.add_subparsers(dest="consult_command", required=True)

    r = sub.add_parser("run", help="run a doctor against mock patients and write dialogs (JSONL)")
    r.add_argument(
        "--doctor", required=True, help="scripted:good | scripted:wander | a local model | MODEL@http(s)://HOST/v1"
    )
    r.add_argument(
        "--cases",
        default=None,
        metavar="N|FILE",
        help="a number: the first N shipped cases of the split (default 10); or a case file: AgentClinic OSCE "
        "or NEJM, MediQ, or PatientCase JSONL (format detected)",
    )
    r.add_argument("--n", type=int, default=None, help="with --cases FILE: run the first N cases (default: all)")
    r.add_argument(
        "--strict", action="store_true", help="fail on any bad record of the case file instead of skipping it"
    )
    r.add_argument("--out", required=True, help="output JSONL (format: mock_patients/README.md)")
    r.add_argument("--split", choices=("train", "test", "all"), default="test")
    r.add_argument("--case-file", default=None, help="same as --cases FILE (kept for old scripts)")
    r.add_argument("--patient", choices=("rule", "llm"), default="rule")
    r.add_argument("--patient-model", default=None, help="chat model for --patient llm")
    r.add_argument("--max-turns", type=int, default=None)
    r.add_argument("--temperature", type=float, default=0.0)
    r.add_argument("--max-new-tokens", type=int, default=256)
    r.add_argument("--seed", type=int, default=0)
    _diagnoser_args(r)
    r.set_defaults(fn=lambda a: cmd_run(a, factory))

    e = sub.add_parser(
        "evaluate", help="score consultation transcripts: accuracy, recall, question quality, P(correct) by turn"
    )
    e.add_argument("dialogs", help="transcripts JSONL (format: mock_patients/README.md)")
    e.add_argument(
        "--cases",
        default=None,
        help="case file holding the dialogs' case_id, in any format run takes "
        "(default: the case file the dialogs record, written by consult run "
        "--cases FILE; else the shipped cases)",
    )
    e.add_argument("--out-json", default=None, help="default: DIALOGS.eval.json")
    e.add_argument("--out-html", default=None, help="default: DIALOGS.eval.html")
    _diagnoser_args(e)
    e.set_defaults(fn=lambda a: cmd_evaluate(a, factory))


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
