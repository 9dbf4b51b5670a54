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

`consult run` is `agentrl eval` (the front door for evaluating a doctor) under the consultation's names: it
calls `agentrl.eval.evaluate.evaluate` on `agentrl/Consultation-v0` with the kwargs its flags name, prints the same
table, and writes one dialog record per case (the transcript format `consult evaluate` scores). So

    agentrl consult run --doctor scripted:good --cases 3 --patient llm --patient-model M --out d.jsonl
    agentrl eval --env agentrl/Consultation-v0 --model scripted:good --episodes 3 --temperature 0 \
        --env-kwargs '{"split": "test", "patient": "llm", "diagnoser": "match"}' --simulator M

give the same episodes and numbers. What it adds: case files in any format with their load summary (`--strict`),
a separate judge model (`--diagnoser-model`), chat-model doctors made by the `make_chat_model` hook, and the
dialog file.

The agentrl CLI calls `register(subparsers)` through the `agentrl.commands` entry point. Doctor model
strings other than `scripted:NAME`, and `--diagnoser-model`, are turned into chat models by the `make_chat_model`
hook passed to `register` (the agentrl CLI passes none); without one, `default_make_chat_model` handles
`MODEL@http(s)://HOST/v1` (OpenAI-compatible endpoint, key from $OPENAI_API_KEY) and local model names
(agentrl's model resolution, transformers). Such a doctor plays at the text level (`evaluate.chat_agent`), as
`agentrl eval --model MODEL@http(s)://HOST/v1` does. `--patient-model` is `agentrl eval`'s `--simulator`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrl.core.registry import ScriptedFactory, scripted_agents
from agentrl.eval.evaluate import EvalResult, ScriptedEpisode, chat_agent, evaluate
from mock_patients.cases import PatientCase
from mock_patients.chat import ChatModel
from mock_patients.diagnoser import DIAGNOSER_KINDS, make_diagnoser
from mock_patients.evaluate import evaluate_file, main_summary_line
from mock_patients.io import atomic_write_text

from . import ENV_ID

MakeChatModel = Callable[[str], ChatModel]


def default_make_chat_model(name: str) -> ChatModel:
    """`MODEL@http(s)://HOST/v1` -> OpenAI-compatible endpoint; anything else -> a local transformers model."""
    from agentrl.sim.models import make_chat_model

    return make_chat_model(name)


def _doctor(
    spec: str, make_chat_model: MakeChatModel | None, temperature: float, max_tokens: int, seed: int
) -> ScriptedFactory | None:
    """The doctor as `evaluate`'s text agent: None for `scripted:NAME` (checked here, then played by name), else
    the chat model the factory makes of `spec`."""
    if spec.startswith("scripted:"):
        agents = scripted_agents(ENV_ID)  # the `agentrl.scripted` entry point's doctors (and any registered since)
        name = spec.split(":", 1)[1]
        if name not in agents:
            have = ", ".join(f"scripted:{n}" for n in sorted(agents))
            raise ValueError(f"unknown scripted doctor {name!r}; available: {have}")
        return None
    if make_chat_model is None:
        have = ", ".join(f"scripted:{n}" for n in sorted(scripted_agents(ENV_ID)))
        raise ValueError(f"doctor {spec!r} needs a chat-model factory; without one only {have} work")
    return chat_agent(make_chat_model(spec), temperature=temperature, max_tokens=max_tokens, seed=seed)


def _env_kwargs(
    cases: list[PatientCase] | None,
    split: str,
    patient: str,
    patient_model: str | None,
    diagnoser: str,
    diagnoser_model: str | None,
    make_chat_model: MakeChatModel | None,
    max_turns: int | None,
) -> tuple[dict[str, Any], Any]:
    """Consultation-v0's kwargs for a run, and the simulator setting of an LLM patient (what `agentrl eval
    --simulator MODEL` gives: `patient_model`, loaded by agentrl); an LLM diagnoser's own model is made by the
    factory and given as `diagnoser_model`."""
    if diagnoser not in DIAGNOSER_KINDS:
        raise ValueError(f"unknown diagnoser {diagnoser!r}; allowed: {', '.join(DIAGNOSER_KINDS)}")
    kwargs: dict[str, Any] = {"split": split, "patient": patient, "diagnoser": diagnoser}
    if cases is not None:
        kwargs["cases"] = cases
    if max_turns is not None:
        kwargs["max_turns"] = max_turns
    simulator = None
    if patient == "llm":
        if not patient_model:
            raise ValueError("patient='llm' needs --patient-model MODEL")
        from agentrl.train.config import SimulatorConfig

        simulator = SimulatorConfig(model=patient_model, batch=False)  # as `agentrl eval --simulator`
    if diagnoser_model and diagnoser != "llm":
        raise ValueError(f"--diagnoser-model is only for --diagnoser llm (got --diagnoser {diagnoser})")
    if diagnoser == "llm" and (diagnoser_model or simulator is None):
        if not diagnoser_model:
            raise ValueError(
                "--diagnoser llm needs --diagnoser-model MODEL (a local model path or MODEL@http(s)://HOST/v1)"
            )
        if make_chat_model is None:
            raise ValueError(f"diagnoser model {diagnoser_model!r} needs a chat-model factory")
        kwargs["diagnoser_model"] = make_chat_model(diagnoser_model)
    return kwargs, simulator


def _dialog(env: Any, ep: ScriptedEpisode, doctor: str, case_file: str | None) -> dict[str, Any]:
    """One dialog record (mock_patients/README.md's transcript format, plus the reward) of an episode just ended."""
    info, k = ep.final_info, env.consultation
    return {
        "id": f"{env.task_id}:{doctor}",
        "case_id": env.task_id,
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


def evaluate_doctor(
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
) -> tuple[EvalResult, list[dict[str, Any]]]:
    """`agentrl eval` of `doctor` on Consultation-v0 (`agentrl.eval.evaluate.evaluate`: its table, its seeds) on the
    first `n_cases` cases of `split` (None: all of them), and one dialog record (README format) per case, in order.
    `diagnoser` judges the reward's P(correct): "match" (any case), "bayes", "llm". Each record names the case
    file it was run on (`case_file`: `cases` when it is a path, else `case_file`), so `consult evaluate` finds
    the cases without --cases."""
    if n_cases is not None and n_cases < 1:
        raise ValueError(f"the number of cases must be >= 1, got {n_cases}")
    if isinstance(cases, (str, Path)):
        from mock_patients.loaders import load_file

        case_file = str(Path(cases).resolve())
        cases = load_file(cases).cases
    kwargs, simulator = _env_kwargs(
        cases, split, patient, patient_model, diagnoser, diagnoser_model, make_chat_model, max_turns
    )
    agent = _doctor(doctor, make_chat_model, temperature, max_tokens, seed)
    records: list[dict[str, Any]] = []

    def on_episode(env: Any, ep: ScriptedEpisode) -> None:
        records.append(_dialog(env, ep, doctor, case_file))
        if progress:
            print(f"\r{len(records)} dialogs", end="", file=sys.stderr, flush=True)

    result = evaluate(
        ENV_ID,
        doctor,
        env_kwargs=kwargs,
        tasks=n_cases,
        seed=seed,
        temperature=temperature,
        max_new_tokens=max_tokens,
        simulator=simulator,
        agent=agent,
        on_episode=on_episode,
    )
    if progress:
        print(file=sys.stderr)
    return result, records


def run_dialogs(doctor: str, n_cases: int | None = None, **kw: Any) -> list[dict[str, Any]]:
    """The dialog records of `evaluate_doctor` (same arguments)."""
    return evaluate_doctor(doctor, n_cases, **kw)[1]


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
    """`agentrl eval` of the doctor on Consultation-v0 (the same table on stdout), and its dialogs written to --out."""
    cases, n = resolve_cases(args.cases, args.case_file, strict=args.strict, n=args.n)
    result, recs = evaluate_doctor(
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
    print(result.table())
    print(f"wrote {len(recs)} dialogs to {args.out} (score them with `agentrl consult evaluate`)", file=sys.stderr)
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
