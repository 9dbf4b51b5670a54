"""The benchmarks' own tasks: τ-bench's airline task files and τ²-bench's tasks.json, read as published.

    τ-bench  (github sierra-research/tau-bench, tau_bench/envs/airline/): tasks_test.py (and any tasks_<split>.py)
             is Python: `TASKS = [Task(annotator=..., user_id=..., instruction=..., actions=[Action(name=...,
             kwargs={...})], outputs=[...]), ...]`; the older tasks.py holds the same as dict literals. It is
             parsed with `ast` and read as literals only: nothing in it is executed, and anything but literals,
             Task(...) and Action(...) is an error naming the line.
    τ²-bench (github sierra-research/tau2-bench, data/tau2/domains/airline/): tasks.json, a list of
             {id, user_scenario: {persona, instructions: {domain, reason_for_call, known_info, unknown_info,
             task_instructions}}, evaluation_criteria: {actions, communicate_info, nl_assertions, reward_basis},
             initial_state, description}, with split_tasks.json ({"train": [ids], "test": [ids], "base": [ids]})
             beside it.

A `PublishedTask` carries what the env needs: the user's instruction (for the simulated user), the gold actions
(the answer key) and the outputs the agent must state. Its reward is the benchmark's (reward.compute_published):
the final database must equal the one obtained by replaying the gold actions on the initial world (τ-bench's data
hash, τ²'s DB check) and every required output (τ-bench `outputs`, τ² `communicate_info`) must appear in one of
the agent's messages, lower-cased with commas removed, as both benchmarks check it.

τ²'s `nl_assertions` ("Agent should refuse to proceed with the cancellation.") need a judge, not a program. τ²'s
own reward for the airline domain does not use them (every airline task's reward_basis is ["DB", "COMMUNICATE"]),
so they are not scored here either: they are kept on the task and reported in info. A task whose reward_basis
names NL_ASSERTION, ACTION or ENV_ASSERTION (none of the published airline tasks does) is scored on DB and
COMMUNICATE only, and `unscored_basis` in the reward breakdown says which parts were left out.

The benchmarks replay gold actions and ignore a failing one (τ-bench turns the exception into "Error: ..."; τ²
logs it), so `replay_actions` does the same and returns the failures for the caller to count.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Literal

from .parity import DEFAULT_RULES, Rules
from .tasks import Action, Frozen
from .tools import TOOLS_BY_NAME
from .world import Database, World

SOURCES = ("tau_bench_v1", "tau2")
TAU2_SPLITS_FILE = "split_tasks.json"
MAX_TASK_FILE_BYTES = 64 * 1024 * 1024  # τ-bench's largest task file is ~70 KB; τ²'s ~160 KB
TAU2_SCORED_BASIS = ("DB", "COMMUNICATE")


class PublishedTask(Frozen):
    id: str  # τ-bench: the task's index in its file ("0".."49", as `--task-ids` counts); τ²: its "id"
    source: Literal["tau_bench_v1", "tau2"]
    splits: tuple[str, ...]  # τ-bench: the file's split ("test" for tasks_test.py); τ²: every split listing it
    user_id: str | None = None
    instruction: str  # τ-bench's instruction; τ²: the scenario as τ² prints it for its user simulator
    scenario: dict[str, Any] | None = None  # τ²'s user_scenario as published
    gold_actions: list[Action]
    outputs: list[str] = []  # τ-bench `outputs`, τ² `communicate_info`
    nl_assertions: list[str] = []  # τ²: judged by an LLM in τ², not part of the airline reward (module docstring)
    reward_basis: tuple[str, ...] = TAU2_SCORED_BASIS
    family: str = "published"

    @property
    def split(self) -> str:
        return self.splits[0]

    @property
    def expects_transfer(self) -> bool:
        return any(a.name == "transfer_to_human_agents" for a in self.gold_actions)

    @property
    def unscored_basis(self) -> tuple[str, ...]:
        return tuple(b for b in self.reward_basis if b not in TAU2_SCORED_BASIS)

    def __deepcopy__(self, memo: dict[int, Any]) -> PublishedTask:
        return self  # immutable: env snapshots share it


class TaskFileError(ValueError):
    """A task file that is not in either benchmark's published format; the message names the file, the task and
    what is allowed."""


# ---- τ-bench's Python task files, read with ast (never executed) ------------------------------------------------

_V1_TASK_FIELDS = ("annotator", "user_id", "instruction", "actions", "outputs")
_V1_ACTION_FIELDS = ("name", "kwargs", "arguments")


def _literal(node: ast.AST, file: Path) -> Any:
    """A literal (numbers, strings, None/True/False, lists, tuples, dicts) or a Task(...)/Action(...) call with
    keyword arguments, as a dict; anything else is an error naming the line."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Task", "Action"):
        if node.args:
            raise TaskFileError(f"{file}:{node.lineno}: {node.func.id}(...) must use keyword arguments only")
        out = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise TaskFileError(
                    f"{file}:{node.lineno}: {node.func.id}(**...) is not a literal; write each field as name=value"
                )
            out[kw.arg] = _literal(kw.value, file)
        return {"__call__": node.func.id, **out}
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e, file) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise TaskFileError(f"{file}:{node.lineno}: {{**...}} is not a literal; write every key")
        return {_literal(k, file): _literal(v, file) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    try:
        return ast.literal_eval(node)
    except ValueError:
        what = type(node).__name__
        raise TaskFileError(
            f"{file}:{getattr(node, 'lineno', '?')}: {what} is not a literal; a τ-bench task file holds only literals, "
            f"Task(...) and Action(...)"
        ) from None


def _task_list(tree: ast.Module, file: Path) -> ast.List:
    lists = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.List):
                lists[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(node.value, ast.List):
            lists[node.target.id] = node.value
    for name in ("TASKS", "tasks"):
        if name in lists:
            return lists[name]
    raise TaskFileError(
        f"{file}: no `TASKS = [...]` (or `tasks = [...]`) list at the top level; found assignments to: "
        f"{sorted(lists) or 'none'}"
    )


def _v1_split(file: Path) -> str:
    m = re.fullmatch(r"tasks_(\w+)\.py", file.name)
    return m.group(1) if m else "test"  # tau_bench/envs/airline/tasks.py: the first release of the test tasks


def _v1_action(raw: Any, file: Path, where: str) -> Action:
    if not isinstance(raw, dict):
        raise TaskFileError(
            f"{file}: {where}: an action must be Action(name=..., kwargs={{...}}) or {{'name': ..., 'arguments': {{...}}}}"
        )
    raw = {k: v for k, v in raw.items() if k != "__call__"}
    unknown = sorted(set(raw) - set(_V1_ACTION_FIELDS))
    if unknown:
        raise TaskFileError(f"{file}: {where}: unknown action fields {unknown} (allowed: name, kwargs or arguments)")
    args = raw.get("kwargs", raw.get("arguments", {}))
    if not isinstance(raw.get("name"), str) or not isinstance(args, dict):
        raise TaskFileError(f"{file}: {where}: an action needs a name (text) and kwargs (an object)")
    if raw["name"] not in TOOLS_BY_NAME:
        raise TaskFileError(f"{file}: {where}: unknown tool {raw['name']!r} (tools: {', '.join(TOOLS_BY_NAME)})")
    return Action(name=raw["name"], arguments=args)


def read_tau_bench_tasks(path: str | Path) -> list[PublishedTask]:
    """τ-bench's task file (tasks_test.py, or the older dict-literal tasks.py), parsed without executing it."""
    file = Path(path)
    text = _read_text(file)
    try:
        tree = ast.parse(text, filename=str(file))
    except SyntaxError as exc:
        raise TaskFileError(f"{file}:{exc.lineno}: not valid Python: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise TaskFileError(f"{file}: nested too deeply to parse") from None
    split = _v1_split(file)
    tasks = []
    for i, node in enumerate(_task_list(tree, file).elts):
        raw = _literal(node, file)
        where = f"task {i} (line {node.lineno})"
        if not isinstance(raw, dict) or raw.get("__call__", "Task") != "Task":
            raise TaskFileError(
                f"{file}: {where}: a task must be Task(...) or a dict with {', '.join(_V1_TASK_FIELDS)}"
            )
        raw.pop("__call__", None)
        unknown = sorted(set(raw) - set(_V1_TASK_FIELDS))
        if unknown:
            raise TaskFileError(f"{file}: {where}: unknown fields {unknown} (allowed: {', '.join(_V1_TASK_FIELDS)})")
        if not isinstance(raw.get("instruction"), str) or not isinstance(raw.get("actions"), list):
            raise TaskFileError(f"{file}: {where}: a task needs an instruction (text) and actions (a list)")
        outputs = raw.get("outputs") or []
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise TaskFileError(f"{file}: {where}: outputs must be a list of texts")
        actions = [_v1_action(a, file, f"{where}, action {j}") for j, a in enumerate(raw["actions"])]
        tasks.append(PublishedTask(id=str(i), source="tau_bench_v1", splits=(split,), user_id=raw.get("user_id"),
                                   instruction=raw["instruction"], gold_actions=actions, outputs=outputs))  # fmt: skip
    return tasks


# ---- τ²-bench's tasks.json + split_tasks.json ---------------------------------------------------------------------


def tau2_scenario_text(scenario: dict[str, Any]) -> str:
    """τ²'s str(UserScenario) (tau2/data_model/tasks.py): what its user simulator reads inside <scenario>."""
    tab = "\t"

    def indent(s: str) -> str:
        return "".join(tab + line if line.strip() else line for line in s.splitlines(True))  # textwrap.indent

    ins = scenario.get("instructions")
    if isinstance(ins, dict):
        lines = [f"Domain: {ins.get('domain')}", f"Reason for call:\n{indent(ins.get('reason_for_call') or '')}"]
        if ins.get("known_info") is not None:
            lines.append(f"Known info:\n{indent(ins['known_info'])}")
        if ins.get("unknown_info") is not None:
            lines.append(f"Unknown info:\n{indent(ins['unknown_info'])}")
        lines.append(f"Task instructions:\n{indent(ins.get('task_instructions') or '')}")
        ins_text = "\n".join(lines)
    else:
        ins_text = str(ins)
    out = []
    if scenario.get("persona") is not None:
        out += ["Persona:", indent(scenario["persona"])]
    out += ["Instructions:", indent(ins_text)]
    return "\n".join(out)


def _tau2_user_id(scenario: dict[str, Any]) -> str | None:
    ins = scenario.get("instructions")
    text = json.dumps(ins) if not isinstance(ins, str) else ins
    m = re.search(r"user id is ([A-Za-z0-9_]+)", text)
    return m.group(1) if m else None


def read_tau2_splits(path: str | Path) -> dict[str, list[str]]:
    file = Path(path)
    try:
        data = json.loads(_read_text(file))
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{file}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in data.values()
    ):
        raise TaskFileError(
            f'{file}: must be an object {{"train": ["0", ...], "test": [...], "base": [...]}} of task id lists'
        )
    return data


def read_tau2_tasks(path: str | Path, splits_file: str | Path | None = None) -> list[PublishedTask]:
    """τ²-bench's tasks.json; each task's splits come from split_tasks.json beside it (or `splits_file`); a task
    no split lists (or every task, without a splits file) is in split "base"."""
    file = Path(path)
    try:
        data = json.loads(_read_text(file))
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{file}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise TaskFileError(f"{file}: nested too deeply") from None
    if not isinstance(data, list):
        raise TaskFileError(f"{file}: τ²-bench's tasks.json is a list of tasks, got {type(data).__name__}")
    sf = Path(splits_file) if splits_file is not None else file.parent / TAU2_SPLITS_FILE
    split_ids = read_tau2_splits(sf) if (splits_file is not None or sf.is_file()) else {}
    tasks = []
    for i, raw in enumerate(data):
        where = f"task {i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise TaskFileError(
                f"{file}: {where}: a task is an object with an 'id' (text), 'user_scenario' and 'evaluation_criteria'"
            )
        where = f"task {raw['id']!r}"
        if raw.get("initial_state"):
            raise TaskFileError(
                f"{file}: {where}: initial_state is not supported (no published airline task has one); "
                "put the state into the world file instead"
            )
        scenario, crit = raw.get("user_scenario"), raw.get("evaluation_criteria") or {}
        if not isinstance(scenario, dict) or not isinstance(crit, dict):
            raise TaskFileError(f"{file}: {where}: user_scenario and evaluation_criteria must be objects")
        actions = []
        for j, a in enumerate(crit.get("actions") or []):
            if not isinstance(a, dict) or a.get("requestor", "assistant") != "assistant":
                raise TaskFileError(
                    f"{file}: {where}, action {j}: only the agent's actions (requestor 'assistant') are supported"
                )
            actions.append(
                _v1_action({"name": a.get("name"), "arguments": a.get("arguments") or {}}, file, f"{where}, action {j}")
            )
        basis = tuple(crit.get("reward_basis") or TAU2_SCORED_BASIS)
        tid = raw["id"]
        in_splits = tuple(s for s, ids in split_ids.items() if tid in ids) or ("base",)
        tasks.append(PublishedTask(
            id=tid, source="tau2", splits=in_splits, user_id=_tau2_user_id(scenario), instruction=tau2_scenario_text(scenario),
            scenario=scenario, gold_actions=actions, outputs=list(crit.get("communicate_info") or []),
            nl_assertions=list(crit.get("nl_assertions") or []), reward_basis=basis,
        ))  # fmt: skip
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise TaskFileError(f"{file}: duplicate task ids")
    unknown = sorted({i for v in split_ids.values() for i in v} - set(ids))
    if unknown:
        raise TaskFileError(f"{sf}: lists task ids that {file.name} does not have: {unknown[:10]}")
    return tasks


def _read_text(file: Path) -> str:
    if not file.is_file():
        raise TaskFileError(f"{file} is not a file; pass τ-bench's tasks_test.py or τ²-bench's tasks.json")
    size = file.stat().st_size
    if size > MAX_TASK_FILE_BYTES:
        raise TaskFileError(f"{file} is {size:,} bytes; at most {MAX_TASK_FILE_BYTES:,} allowed")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TaskFileError(f"{file} is not UTF-8 text (byte {exc.start})") from None


def load_published_tasks(path: str | Path) -> list[PublishedTask]:
    """τ-bench's .py task file or τ²-bench's tasks.json, by suffix."""
    file = Path(path)
    if file.suffix == ".py":
        return read_tau_bench_tasks(file)
    if file.suffix == ".json":
        return read_tau2_tasks(file)
    raise TaskFileError(f"{file}: tasks= takes τ-bench's task file (tasks_test.py) or τ²-bench's tasks.json")


def default_world_for(tasks_file: str | Path) -> Path | None:
    """Where the benchmark keeps the world beside its task file: τ²'s db.json next to tasks.json; τ-bench's data/
    directory next to tasks_test.py (or the three files in the same directory)."""
    d = Path(tasks_file).parent
    for cand in (d / "db.json", d / "data", d):
        if cand.is_file() or (cand / "flights.json").is_file():
            return cand
    return None


MAX_POLICY_BYTES = 1 << 20


def benchmark_policy(tasks_file: Path) -> str | None:
    """The benchmark's written policy beside its task file: τ²'s policy.md, or τ-bench's wiki.md; None if absent."""
    for name in ("policy.md", "wiki.md"):
        f = Path(tasks_file).parent / name
        if f.is_file() and f.stat().st_size <= MAX_POLICY_BYTES:
            try:
                return f.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                return None
    return None


# ---- replay and the benchmarks' reward parts ----------------------------------------------------------------------


class _State:
    def __init__(self, db: Database, rules: Rules):
        self.db, self.rules = db, rules


def replay_actions(
    world: World, actions: list[Action], rules: Rules = DEFAULT_RULES
) -> tuple[Database, list[tuple[int, str, str]]]:
    """Run actions on a fresh database as the benchmarks do: a failing action changes nothing and the replay goes
    on. Returns the database and the failures (index, tool, error text)."""
    state = _State(Database(world), rules)
    failed = []
    for i, a in enumerate(actions):
        result = TOOLS_BY_NAME[a.name].invoke(a.arguments, state=state)
        if not result.ok:
            failed.append((i, a.name, result.content))
    return state.db, failed


def published_gold_hash(world: World, task: PublishedTask, rules: Rules) -> str:
    key = ("published_gold_hash", task.source, task.id, id(task), rules)
    hit = world.memo.get(key)
    if hit is None or hit[0] is not task:
        hit = world.memo[key] = (task, replay_actions(world, task.gold_actions, rules)[0].hash())
    return hit[1]


def outputs_found(outputs: list[str], agent_texts: list[str]) -> list[bool]:
    """Both benchmarks' check: the output, lower-cased, inside one agent message lower-cased with commas removed."""
    said = [t.lower().replace(",", "") for t in agent_texts]
    return [any(o.lower() in s for s in said) for o in outputs]


# ---- where the benchmarks' gold actions break their own written policy ----------------------------------------------

# (source, task id, user id) -> (policy rule, the policy line, what the gold does, upstream report); the user id
# keeps an entry from matching another file's task of the same number. The policy check's verdict on these is
# an option (env `benchmark_errors=`): "exempt" (default: the gold's own violations are not charged, so the answer
# key scores 1) or "score" (the written policy wins: replaying the gold scores 0).
BENCHMARK_ERRORS: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}
_CANCEL_LINE = (
    "All reservations can be cancelled within 24 hours of booking, or if the airline cancelled the flight. Otherwise, basic "
    "economy or economy flights can be cancelled only if travel insurance is bought and the condition is met, and business "
    "flights can always be cancelled."
)
_FLOWN_LINE = "The agent can only cancel the whole trip that is not flown. If any of the segments are already used, the agent cannot help and transfer is needed."
BENCHMARK_ERRORS.update({
    ("tau_bench_v1", "10", "mia_kim_4397"): ("cancellation_conditions", _CANCEL_LINE,
                             "cancels H9ZU1C: economy, booked 2024-05-01, no insurance, no airline cancellation", "none found"),
    ("tau_bench_v1", "19", "raj_brown_5782"): ("trip_fixed", "Other reservations can be modified without changing the origin, destination, and trip type.",
                             "moves VA5SGQ (round trip DTW-LGA) to DTW-JFK", "sierra-research/tau-bench#35"),
    ("tau_bench_v1", "26", "aarav_ahmed_6699"): ("cancel_flown", _FLOWN_LINE, "cancels NQNU5R, whose HAT214 of 2024-05-13 has landed", "sierra-research/tau-bench#37"),
    ("tau_bench_v1", "27", "aarav_ahmed_6699"): ("cancel_flown", _FLOWN_LINE, "cancels NQNU5R, whose HAT214 of 2024-05-13 has landed", "sierra-research/tau-bench#37"),
    ("tau_bench_v1", "34", "daiki_muller_1116"): ("cancellation_conditions", _CANCEL_LINE,
                             "upgrades XEHM4B (basic economy, booked 2024-05-01, no insurance) to economy, then cancels it",
                             "sierra-research/tau-bench#28; τ² fixed its copy (tau2-bench#84, #94)"),
})  # fmt: skip
BENCHMARK_ERROR_MODES = ("exempt", "score")


def exempt_rules(task: PublishedTask, mode: str) -> set[str]:
    """The policy rules not charged on `task` under `benchmark_errors=mode`."""
    entry = BENCHMARK_ERRORS.get((task.source, task.id, task.user_id or ""))
    return {entry[0]} if entry is not None and mode == "exempt" else set()
