"""FlightBooking-v0 on τ-bench's and τ²-bench's own airline worlds and tasks: `python benchmarks/flight_published.py`.

The public files are not shipped; put them here (or pass --tau-bench DIR / --tau2 DIR):
  /work/data/tau_bench_airline/  flights.json users.json reservations.json  (tau-bench: tau_bench/envs/airline/data/)
                                 tasks_test.py [tasks.py]                     (tau-bench: tau_bench/envs/airline/)
  /work/data/tau2_airline/       db.json tasks.json split_tasks.json         (tau2-bench: data/tau2/domains/airline/)
For byte parity it also runs the benchmarks' own tool code from a checkout, read where given and never copied:
  --tau-bench-src DIR  holding tau_bench/envs/tool.py and tau_bench/envs/airline/tools/*.py
  --tau2-src DIR       holding src/tau2/domains/airline/{tools,data_model}.py (its tau2 imports are stubbed:
                       the toolkit base, the DB base, loguru; the tools and models run as published)
--tau2-db FILE picks another db.json; `--tau2-db derived` writes one derived from τ-bench's three files (τ²'s field
order, user_id, float balances) beside the τ² files as db.derived.json and uses it, for when the published one is
missing (its upstream edits since, listed in the section this writes, are then absent).

Measures, per benchmark: load time of the world and the tasks, env build time, tasks per split; the gold agent
(scripted:gold, every gold action then the required outputs) with the offline user on every task, under
benchmark_errors="exempt" and "score"; the policy check's verdict on each gold replay; and, with the source
checkouts, how many gold actions' tool outputs are byte-equal to the benchmark's own tools run on its own data
and how many final databases are equal. Writes the "FlightBooking-v0 on the published τ-bench / τ²-bench
airline tasks" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine_line, write_section  # noqa: E402

from agentrl.core.io import atomic_write_text  # noqa: E402
from environments.flight_booking.env import FlightBookingEnv  # noqa: E402
from environments.flight_booking.parity import Rules  # noqa: E402
from environments.flight_booking.policy_rules import check_episode  # noqa: E402
from environments.flight_booking.published import BENCHMARK_ERRORS, PublishedTask, load_published_tasks  # noqa: E402
from environments.flight_booking.reward import ReplayState  # noqa: E402
from environments.flight_booking.tasks.generator import play  # noqa: E402
from environments.flight_booking.taubench_loader import load_world  # noqa: E402
from environments.flight_booking.tools import TOOLS_BY_NAME, WRITE_TOOLS  # noqa: E402
from environments.flight_booking.world import AS_READ, Database, World  # noqa: E402

TITLE = "FlightBooking-v0 on the published τ-bench / τ²-bench airline tasks"


def derive_tau2_db(v1_dir: Path) -> dict[str, Any]:
    """τ²'s db.json layout from τ-bench's three files: flights lead with origin, destination, flight_number; users
    carry their user_id first and their payment methods as τ²'s models order them, balances as floats."""
    flights, users, reservations = (
        json.loads((v1_dir / f"{n}.json").read_text()) for n in ("flights", "users", "reservations")
    )

    def flight(f: dict[str, Any]) -> dict[str, Any]:
        head = {k: f[k] for k in ("origin", "destination", "flight_number")}
        return {**head, **{k: v for k, v in f.items() if k not in head}}

    def method(m: dict[str, Any]) -> dict[str, Any]:
        if m["source"] == "credit_card":
            return {"source": m["source"], "id": m["id"], "brand": m["brand"], "last_four": m["last_four"]}
        return {"source": m["source"], "id": m["id"], "amount": float(m["amount"])}

    def user(uid: str, u: dict[str, Any]) -> dict[str, Any]:
        return {"user_id": uid, **u, "payment_methods": {k: method(m) for k, m in u["payment_methods"].items()}}

    return {"flights": {k: flight(f) for k, f in flights.items()}, "users": {k: user(k, u) for k, u in users.items()},
            "reservations": reservations}  # fmt: skip


# ---- the benchmarks' own tools, loaded from a checkout ---------------------------------------------------------------


def _load(name: str, file: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def tau_bench_tools(src: Path) -> dict[str, Any]:
    """name -> τ-bench's Tool class (tau_bench/envs/airline/tools), loaded from the checkout at `src`."""
    for pkg in ("tau_bench", "tau_bench.envs", "tau_bench.envs.airline"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    _load("tau_bench.envs.tool", src / "tau_bench/envs/tool.py")
    tools = {}
    for f in sorted((src / "tau_bench/envs/airline/tools").glob("*.py")):
        if f.name == "__init__.py":
            continue
        mod = _load(f"tau_bench.envs.airline.tools.{f.stem}", f)
        for obj in vars(mod).values():
            if isinstance(obj, type) and obj.__module__ == mod.__name__ and hasattr(obj, "get_info"):
                tools[obj.get_info()["function"]["name"]] = obj
    return tools


def tau2_toolkit(src: Path) -> tuple[Any, Any]:
    """(AirlineTools, FlightDB) from τ²'s checkout, with its framework imports stubbed."""
    import enum

    import pydantic

    def stub(name: str, **attrs: Any) -> None:
        mod = sys.modules.setdefault(name, types.ModuleType(name))
        for k, v in attrs.items():
            setattr(mod, k, v)

    class _Logger:
        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

    class DB(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")

    class ToolType(str, enum.Enum):
        READ, WRITE, THINK, GENERIC = "read", "write", "think", "generic"

    class ToolKitBase:
        def __init__(self, db: Any = None):
            self.db = db

    def is_tool(tool_type: Any = None, **_: Any) -> Any:
        return lambda f: f

    stub("loguru", logger=_Logger())
    for pkg in ("tau2", "tau2.domains", "tau2.domains.airline", "tau2.environment"):
        stub(pkg)
    stub("tau2.domains.airline.utils", AIRLINE_DB_PATH="")
    stub("tau2.environment.db", DB=DB)
    stub("tau2.environment.toolkit", ToolKitBase=ToolKitBase, ToolType=ToolType, is_tool=is_tool)
    dm = _load("tau2.domains.airline.data_model", src / "src/tau2/domains/airline/data_model.py")
    tools = _load("tau2.domains.airline.tools", src / "src/tau2/domains/airline/tools.py")
    return tools.AirlineTools, dm.FlightDB


def tau2_json(resp: Any) -> str:
    """tau2/environment/environment.py `to_json_str`."""
    import pydantic

    def proc(r: Any) -> Any:
        if isinstance(r, pydantic.BaseModel):
            return r.model_dump()
        if isinstance(r, (str, type(None))):
            return r
        if isinstance(r, (int, float, bool)):
            return str(r)
        if isinstance(r, (list, tuple)):
            return [proc(x) for x in r]
        if isinstance(r, dict):
            return {k: proc(v) for k, v in r.items()}
        raise ValueError(type(r))

    return resp if isinstance(resp, str) else json.dumps(proc(resp), default=str)


def _no_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _no_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_no_none(v) for v in x]
    return x


def our_tables(db: Database) -> dict[str, Any]:
    w = db.materialize()
    return {"flights": {k: v.model_dump(mode="json", context=AS_READ) for k, v in w.flights.items()},
            "users": {k: v.model_dump(mode="json", context=AS_READ) for k, v in w.users.items()},
            "reservations": {k: v.model_dump(mode="json", context=AS_READ) for k, v in w.reservations.items()}}  # fmt: skip


def _norm_tables(t: dict[str, Any]) -> Any:
    out = _no_none(json.loads(json.dumps(t)))
    for u in out["users"].values():
        u.pop("user_id", None)  # τ² writes the key again inside the record; v1 does not
    return out


def byte_parity(
    kind: str, world: World, raw: Any, tasks: list[PublishedTask], ref: Any, rules: Rules
) -> dict[str, Any]:
    """Replay each task's gold actions through the benchmark's own tools (on a fresh copy of its data) and through
    ours; count the outputs that are byte-equal and the final databases that are equal."""
    equal = total = db_equal = 0
    diffs: list[str] = []
    for t in tasks:
        ours = ReplayState(Database(world), rules)
        if kind == "tau_bench_v1":
            data = copy.deepcopy(raw)
        else:
            toolkit = ref[0](ref[1].model_validate(copy.deepcopy(raw)))
        for a in t.gold_actions:
            mine = TOOLS_BY_NAME[a.name].invoke(a.arguments, state=ours).content
            if kind == "tau_bench_v1":
                try:
                    theirs = ref[a.name].invoke(data=data, **a.arguments)
                except Exception as exc:  # tau_bench/envs/base.py: Env.step
                    theirs = f"Error: {exc}"
            else:
                try:
                    theirs = tau2_json(getattr(toolkit, a.name)(**a.arguments))
                except Exception as exc:  # tau2/environment/environment.py: get_response
                    theirs = f"Error: {exc}"
            total += 1
            if mine == theirs:
                equal += 1
            elif len(diffs) < 4:
                diffs.append(f"{kind} task {t.id} {a.name}: ours {mine[:80]!r} vs theirs {theirs[:80]!r}")
        final = data if kind == "tau_bench_v1" else toolkit.db.model_dump()
        db_equal += _norm_tables(our_tables(ours.db)) == _norm_tables(final)
    return {"equal": equal, "total": total, "db_equal": db_equal, "tasks": len(tasks), "diffs": diffs}


def search_parity(
    kind: str, world: World, raw: Any, ref: Any, rules: Rules, date: str = "2024-05-20"
) -> tuple[int, int]:
    """Direct and one-stop searches over every ordered airport pair on `date`: (byte-equal, total)."""
    ours = ReplayState(Database(world), rules)
    toolkit = None if kind == "tau_bench_v1" else ref[0](ref[1].model_validate(copy.deepcopy(raw)))
    equal = total = 0
    for o in world.airports:
        for d in world.airports:
            if o == d:
                continue
            for name in ("search_direct_flight", "search_onestop_flight"):
                args = {"origin": o, "destination": d, "date": date}
                mine = TOOLS_BY_NAME[name].invoke(args, state=ours).content
                if kind == "tau_bench_v1":
                    theirs = ref[name].invoke(data=raw, **args)
                else:
                    theirs = tau2_json(getattr(toolkit, name)(**args))
                equal += mine == theirs
                total += 1
    return equal, total


def error_parity(kind: str, world: World, raw: Any, ref: Any, rules: Rules) -> tuple[int, int, list[str]]:
    """Calls that fail (unknown user, reservation, flight, payment method; a certificate for a change; an unknown
    airport): (outputs byte-equal, total, first differences)."""
    rid = next(iter(world.reservations))
    probes = [("get_user_details", {"user_id": "nobody_0000"}), ("get_reservation_details", {"reservation_id": "ZZZZZZ"}),
              ("cancel_reservation", {"reservation_id": "ZZZZZZ"}), ("send_certificate", {"user_id": "nobody_0000", "amount": 100}),
              ("update_reservation_passengers", {"reservation_id": "ZZZZZZ", "passengers": []}),
              ("update_reservation_passengers", {"reservation_id": rid, "passengers": []}),
              ("update_reservation_baggages", {"reservation_id": "ZZZZZZ", "total_baggages": 1, "nonfree_baggages": 0, "payment_id": "x"}),
              ("update_reservation_baggages", {"reservation_id": rid, "total_baggages": 9, "nonfree_baggages": 9, "payment_id": "credit_card_0"}),
              ("update_reservation_flights", {"reservation_id": "ZZZZZZ", "cabin": "economy", "flights": [], "payment_id": "x"}),
              ("search_direct_flight", {"origin": "XXX", "destination": "JFK", "date": "2024-05-20"}),
              ("search_onestop_flight", {"origin": "JFK", "destination": "XXX", "date": "2024-05-20"})]  # fmt: skip
    if kind == "tau2":
        probes += [("get_flight_status", {"flight_number": "HAT999", "date": "2024-05-20"}),
                   ("get_flight_status", {"flight_number": "HAT001", "date": "2024-06-20"}),
                   ("get_flight_status", {"flight_number": "HAT001", "date": "2024-05-20"})]  # fmt: skip
    equal, diffs = 0, []
    for name, args in probes:
        mine = TOOLS_BY_NAME[name].invoke(args, state=ReplayState(Database(world), rules)).content
        try:
            if kind == "tau_bench_v1":
                theirs = ref[name].invoke(data=copy.deepcopy(raw), **args)
            else:
                theirs = tau2_json(getattr(ref[0](ref[1].model_validate(copy.deepcopy(raw))), name)(**args))
        except Exception as exc:
            theirs = f"Error: {exc}"
        equal += mine == theirs
        if mine != theirs and len(diffs) < 3:
            diffs.append(f"{kind} {name}: ours {mine[:70]!r} vs theirs {theirs[:70]!r}")
    return equal, len(probes), diffs


# ---- gold replay through the env ----------------------------------------------------------------------------------


def gold_runs(env: FlightBookingEnv) -> tuple[int, list[str], float]:
    t0 = time.perf_counter()
    wins, lost = 0, []
    for tid in env.task_ids():
        r, breakdown, _ = play(env, tid)
        wins += r == 1.0
        if r != 1.0:
            lost.append(tid)
    return wins, lost, time.perf_counter() - t0


def policy_disagreements(world: World, tasks: list[PublishedTask], rules: Rules) -> list[str]:
    out = []
    for t in tasks:
        st = ReplayState(Database(world), rules)
        writes = []
        for a in t.gold_actions:
            if TOOLS_BY_NAME[a.name].invoke(a.arguments, state=st).ok and a.name in WRITE_TOOLS:
                writes.append((a.name, a.arguments))
        if check_episode(world, writes, rules):
            out.append(t.id)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tau-bench", type=Path, default=Path("/work/data/tau_bench_airline"))
    ap.add_argument("--tau2", type=Path, default=Path("/work/data/tau2_airline"))
    ap.add_argument(
        "--tau2-db", default=None, help="db.json to use (default: DIR/db.json), or 'derived' (module docstring)"
    )
    ap.add_argument("--tau-bench-src", type=Path, default=None)
    ap.add_argument("--tau2-src", type=Path, default=None)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()

    derived = args.tau2_db == "derived"
    if derived:
        tau2_db = args.tau2 / "db.derived.json"
        atomic_write_text(tau2_db, json.dumps(derive_tau2_db(args.tau_bench), indent=4))
    else:
        tau2_db = Path(args.tau2_db) if args.tau2_db else args.tau2 / "db.json"
    runs = [("τ-bench", "tau_bench_v1", args.tau_bench, args.tau_bench / "tasks_test.py", [None]),
            ("τ²-bench", "tau2", tau2_db, args.tau2 / "tasks.json", ["train", "test", "base"])]  # fmt: skip
    rows, notes, parity_rows = [], [], []
    for label, parity, world_path, tasks_path, splits in runs:
        if not world_path.exists() or not tasks_path.exists():
            print(
                f"{label}: {world_path} or {tasks_path} missing; see this script's docstring for where to put the files"
            )
            notes.append(f"{label}: files missing, not measured.")
            continue
        t0 = time.perf_counter()
        world = load_world(world_path)
        t_world = time.perf_counter() - t0
        t0 = time.perf_counter()
        tasks = load_published_tasks(tasks_path)
        t_tasks = time.perf_counter() - t0
        rules = Rules(parity, hints=False)
        n_actions = sum(len(t.gold_actions) for t in tasks)
        disagree = policy_disagreements(world, tasks, rules)
        listed = sorted(tid for (src, tid, _) in BENCHMARK_ERRORS if src == parity)
        for split in splits:
            t0 = time.perf_counter()
            env = FlightBookingEnv(world=world, tasks=str(tasks_path), split=split)
            t_env = time.perf_counter() - t0
            wins, lost, t_play = gold_runs(env)
            strict = FlightBookingEnv(world=world, tasks=str(tasks_path), split=split, benchmark_errors="score")
            wins_strict, lost_strict, _ = gold_runs(strict)
            n = len(env.task_ids())
            rows.append(
                f"| {label} | {split or 'test'} | {n} | {t_world:.2f} | {t_tasks * 1000:.0f} | {t_env:.2f} | {wins}/{n} | "
                f"{wins_strict}/{n} ({', '.join(lost_strict) or 'none'} lost) | {t_play:.2f} |"
            )
            print(rows[-1])
        t0 = time.perf_counter()
        own = FlightBookingEnv(world=str(world_path), split="all")  # world= alone: tasks generated from it, checked
        notes.append(
            f"{label}: `world=` alone builds the env in {time.perf_counter() - t0:.1f} s with {len(own.task_ids())} generated "
            f"tasks, {len(own.skipped_tasks)} skipped."
        )
        notes.append(
            f"{label}: {len(tasks)} tasks, {n_actions} gold actions; the policy check flags the gold replay of "
            f"{len(disagree)} ({', '.join(disagree) or 'none'}); listed as benchmark errors: {', '.join(listed) or 'none'}."
        )
        src = args.tau_bench_src if parity == "tau_bench_v1" else args.tau2_src
        if src is not None:
            if parity == "tau_bench_v1":
                raw = {
                    n: json.loads((world_path / f"{n}.json").read_text()) for n in ("flights", "users", "reservations")
                }
                ref: Any = tau_bench_tools(src)
            else:
                raw = json.loads(Path(world_path).read_text())
                ref = tau2_toolkit(src)
            p = byte_parity(parity, world, raw, tasks, ref, rules)
            se, st = search_parity(parity, world, raw, ref, rules)
            ee, et, ediffs = error_parity(parity, world, raw, ref, rules)
            eh, _, _ = error_parity(parity, world, raw, ref, Rules(parity))  # the env's own mode: hints on
            parity_rows.append(
                f"| {label} | `{parity}`, hints off | {p['equal']} / {p['total']} | {p['db_equal']} / {p['tasks']} | "
                f"{se} / {st} | {ee} / {et} (hints on: {eh}) |"
            )
            p["diffs"] += ediffs
            print(parity_rows[-1])
            for d in p["diffs"]:
                print("   ", d)
                notes.append(f"first differences: {d}")
    body = (
        f"""`benchmarks/flight_published.py` (the files' places are in its docstring; they are not shipped). {machine_line()}

The gold agent (`scripted:gold`: the task's gold actions, then its required outputs and a closing question) plays
every published task with the offline user (`users_published.InstructionUser`), scored as the benchmark scores
it (final database equal to the gold replay's, outputs said) plus the policy check. "exempt" leaves the listed
benchmark-error tasks' own violation uncharged (the default), "score" charges it.

| benchmark | split | tasks | world load (s) | tasks load (ms) | env build (s) | gold reward 1 (exempt) | gold reward 1 (score) | play all (s) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{chr(10).join("- " + n for n in notes)}
"""
        + (
            f"""
Byte parity: each gold action's output from the env (the benchmark's parity, hints off) against the benchmark's
own tool code run on its own data (loaded from a checkout; τ²'s framework imports stubbed), and the final
databases compared record by record (τ²'s `user_id` inside a user and null fields set aside).

| benchmark | env mode | gold outputs byte-equal | final databases equal | searches byte-equal (every airport pair, direct + one-stop, 2024-05-20) | failing calls byte-equal |
|---|---|---|---|---|---|
{chr(10).join(parity_rows)}
"""
            if parity_rows
            else ""
        )
        + (
            """
The τ² world here is a db.json derived from τ-bench's three files (`--tau2-db derived`: τ²'s field order,
`user_id`, float balances): the published db.json (7 MB) was above the size the fetch tool brings in. τ² edited a
few records since (tau2-bench#94: two reservations from basic economy to economy, one given insurance; #29:
VA5SGQ rewritten as DTW-JFK), so τ² figures on the published file may differ; rerun with it at the place above.
"""
            if derived
            else ""
        )
    )
    print(body)
    if not args.no_write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
