"""docs/CONFIG.md, generated from the config's pydantic models: every section and key with its type, default,
allowed values or bounds, and description, plus `algorithm.params` for every estimator.

`render()` is pure (models in, markdown out); `python -m agentrl.train.config_reference` writes the file and
`--check` exits 1 when the committed file differs (tests/test_config_reference.py does the same in memory).
Descriptions come from each field's `Field(description=...)` (agentrl/train/config.py); models that keep theirs as
comments beside the field (the estimators' params, LoRA) are read from those comments.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "CONFIG.md"
COMMAND = "python -m agentrl.train.config_reference"

HEADER = f"""# Config reference

<!-- Generated from the pydantic models in agentrl/train/config.py and sft_config.py by `{COMMAND}`: do not edit by hand.
     tests/test_config_reference.py fails when this file is stale. -->

A training run is a YAML file plus `section.key=value` overrides
(`agentrl train examples/trepo.yaml rollout.groups=8`), or the same mapping given to
`agentrl.train.config.load_config` / `Config.model_validate` in Python. The config is validated once, when it
loads: an unknown key is an error that lists the valid keys of its section, every float must be finite, and the
checks that span sections (`ppo.micro_batch_size <= ppo.minibatch_size`, an estimator's smallest
`rollout.group_size`, ...) are refused with a message naming the keys. The resolved config, defaults filled in,
is saved as `config.yaml` in the run directory. `null` is YAML's None.
"""


# -- descriptions ---------------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(text.split())


def source_comments(model: type[BaseModel]) -> dict[str, str]:
    """{field: its comment}: the comment lines right above a field's line and the comments on its own lines, for
    models that document fields with `#` comments instead of `Field(description=...)`."""
    try:
        src = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}  # line (1-based) -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = src.splitlines()
    out: dict[str, str] = {}
    body = ast.parse(src).body[0]
    assert isinstance(body, ast.ClassDef)
    for stmt in body.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        above: list[str] = []
        n = stmt.lineno - 1  # the line above, 1-based
        while n >= 1 and lines[n - 1].strip().startswith("#"):
            above.insert(0, comments.get(n, ""))
            n -= 1
        own = [comments[i] for i in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if i in comments]
        text = _one_line(" ".join([*above, *own]))
        if text:
            out[stmt.target.id] = text
    return out


# What the models outside config.py say nowhere (their comments say why, not what): joined before the comment.
_WHAT = {
    ("TRePOParams", "mode"): "segment: a token's advantage is V̂(b) − V̂(a) for the segment [a, b) of branch points "
    "holding it; interpolate: per-token differences of values interpolated between points",
    ("GAEParams", "gamma"): "discount per agent token",
    ("GAEParams", "lam"): "GAE λ",
    ("TurnGAEParams", "lam"): "GAE λ per turn",
    ("GRPOParams", "eps"): "added to the group's std before dividing by it",
    ("GiGPOParams", "eps"): "added to each std before dividing by it",
    ("ReinforceParams", "baseline"): "none: the advantage is the reward; batch_mean: the reward minus the batch's mean",
    ("LoRAConfig", "r"): "the adapters' rank",
    ("LoRAConfig", "dropout"): "dropout on each adapter's input (peft's lora_dropout)",
}


def description(model: type[BaseModel], name: str) -> str:
    """The field's `description`, else what `_WHAT` says and the comments beside it in the model's source."""
    field = model.model_fields[name]
    if field.description:
        return _one_line(field.description)
    parts = [_WHAT.get((model.__name__, name), ""), source_comments(model).get(name, "")]
    return "; ".join(p for p in parts if p)


# -- types, defaults, bounds ----------------------------------------------------------------------------------
def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """(the type, the constraints) of a possibly Annotated type."""
    if typing.get_origin(tp) is typing.Annotated:
        base, *meta = typing.get_args(tp)
        found: list[Any] = []
        for m in meta:
            found.extend(m.metadata if isinstance(m, FieldInfo) else [m])
        return base, found
    return tp, []


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def section_model(tp: Any) -> type[BaseModel] | None:
    """The model of a section-valued field (`EnvConfig`, `SimulatorConfig | None`), else None."""
    for t in typing.get_args(tp) if _is_union(tp) else (tp,):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def type_name(tp: Any) -> str:
    tp, _ = _unwrap(tp)
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    if _is_union(tp):
        return " \\| ".join(type_name(t) for t in typing.get_args(tp))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " \\| ".join(sorted({type(a).__name__ for a in args}))
    if origin is dict:
        return "mapping"
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if origin is tuple:
        return "[" + ", ".join(type_name(a) for a in args) + "]"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "section"
    return getattr(tp, "__name__", str(tp))


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def bounds(metadata: list[Any]) -> str:
    """`[0, 1)`-style intervals from ge/gt/le/lt; `>= 1` where one side is open; list lengths."""
    lo = hi = ""
    notes = []
    for m in metadata:
        if isinstance(m, at.Ge):
            lo = f"[{_num(m.ge)}"
        elif isinstance(m, at.Gt):
            lo = f"({_num(m.gt)}"
        elif isinstance(m, at.Le):
            hi = f"{_num(m.le)}]"
        elif isinstance(m, at.Lt):
            hi = f"{_num(m.lt)})"
        elif isinstance(m, at.MinLen):
            notes.append(f"at least {m.min_length} item{'s' if m.min_length != 1 else ''}")
        elif isinstance(m, at.MaxLen):
            notes.append(f"at most {m.max_length} items")
    if lo and hi:
        notes.insert(0, f"{lo}, {hi}")
    elif lo:
        notes.insert(0, (">= " if lo[0] == "[" else "> ") + lo[1:])
    elif hi:
        notes.insert(0, ("<= " if hi[-1] == "]" else "< ") + hi[:-1])
    return "; ".join(notes)


def allowed(field: FieldInfo) -> str:
    """Allowed values (Literal members) or bounds (the field's constraints; a tuple's per item)."""
    tp = field.annotation
    members = [t for t in (typing.get_args(tp) if _is_union(tp) else (tp,))]
    parts: list[str] = []
    for t in members:
        base, meta = _unwrap(t)
        if typing.get_origin(base) is Literal:
            parts.extend(f"`{a}`" for a in typing.get_args(base))
        elif typing.get_origin(base) is tuple:
            inner = {bounds(_unwrap(a)[1]) for a in typing.get_args(base)} - {""}
            parts.extend(f"each in {b}" if b[0] in "[(" else f"each {b}" for b in sorted(inner))
        elif meta:
            parts.append(bounds(meta))
    own = bounds(list(field.metadata))
    return ", ".join(p for p in [*parts, own] if p)


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        v = field.default_factory()  # type: ignore[call-arg]
        return "" if isinstance(v, BaseModel) else f"`{_value(v)}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{_value(field.default)}`"


# -- markdown -------------------------------------------------------------------------------------------------
def _md(text: str) -> str:
    """Table-cell text: `|` escaped, and `*` outside code spans (`eval/* metrics` is not emphasis)."""
    pieces = text.split("`")
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].replace("*", "\\*")
    return "`".join(pieces).replace("|", "\\|")


def anchor(path: str, tag: str = "") -> str:
    """GitHub's id of the heading of section `path` (its dots dropped); `tag`: the words before it (`SFT`)."""
    return (f"{tag} " if tag else "").lower().replace(" ", "-") + path.replace(".", "").lower()


def _doc(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__")
    return _one_line(inspect.cleandoc(doc)) if doc else ""


def table(model: type[BaseModel], prefix: str, extra_allowed: dict[str, str] | None = None, tag: str = "") -> list[str]:
    rows = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = section_model(field.annotation)
        desc = _md(description(model, name))
        if sub is not None:
            desc = f"{desc} (section [`{path}`](#{anchor(path, tag)}))".lstrip()
        allow = (extra_allowed or {}).get(name) or allowed(field)
        rows.append(f"| `{path}` | {type_name(field.annotation)} | {default(field)} | {allow} | {desc} |")
    return rows


def _sections(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, type[BaseModel], bool]]:
    """(dotted path, model, optional) of every section below `model`, depth first in field order."""
    for name, field in model.model_fields.items():
        sub = section_model(field.annotation)
        if sub is not None:
            path = f"{prefix}{name}"
            yield path, sub, _is_union(field.annotation)
            yield from _sections(sub, f"{path}.")


def estimator_params() -> list[str]:
    from agentrl.algo.advantages import REGISTRY

    out = [
        "### `algorithm.params`",
        "",
        "Each estimator's parameters (`agentrl/algo/advantages/params.py`), checked when the config loads and "
        "completed with these defaults; another estimator's key is an error.",
        "",
    ]
    for name, spec in REGISTRY.items():
        out.append(f"#### `algorithm.name: {name}`")
        out.append("")
        facts = [f"`algorithm.whiten` default: `{spec.default_whiten}`"]
        if spec.min_group_size > 1:
            facts.append(f"needs `rollout.group_size >= {spec.min_group_size}`: {spec.group_reason}")
        uses = (
            ("needs_value_head", "a value head"),
            ("needs_branches", "branch continuations"),
            ("needs_greedy_baseline", "a greedy baseline rollout per task"),
            ("needs_anchor_states", "an env snapshot key per turn"),
        )
        needs = [label for flag, label in uses if getattr(spec, flag)]
        if needs:
            facts.append("uses " + ", ".join(needs))
        out.append(_md("; ".join(facts)) + ".")
        out.append("")
        if spec.params.model_fields:
            out.extend(table(spec.params, "algorithm.params."))
        else:
            out.append("No parameters.")
        out.append("")
    return out


def render() -> str:
    """The whole of docs/CONFIG.md: `agentrl train`'s config, then `agentrl sft`'s."""
    from agentrl.algo.advantages import REGISTRY
    from agentrl.train.config import Config
    from agentrl.train.sft_config import SFTConfig

    names = {"name": ", ".join(f"`{n}`" for n in REGISTRY)}
    out = [HEADER, "## Top level", ""]
    if _doc(Config):
        out += [_md(_doc(Config)), ""]
    out += table(Config, "")
    out.append("")
    for path, model, optional in _sections(Config, ""):
        out += _section(path, model, optional, names if path == "algorithm" else None)
        if path == "algorithm":
            out += estimator_params()
    out += [SFT_HEADER, "### SFT top level", ""]
    out += [_md(_doc(SFTConfig)), "", *table(SFTConfig, "", tag="SFT"), ""]
    for path, model, optional in _sections(SFTConfig, ""):
        out += _section(path, model, optional, None, tag="SFT")
    return "\n".join(out).rstrip() + "\n"


SFT_HEADER = """## SFT (`agentrl sft`)

`agentrl sft [CONFIG.yaml] [section.key=value ...] [--flags]` takes the same kind of file and overrides
(`agentrl.train.sft_config.load_sft_config`); its flags are shorthands for keys (`--lr` is `optim.lr`, `--out`
`train.run_dir`, `--from` `data.source`: `sft_config.FLAGS`), applied over the file, with the overrides over both.
`optim` and `lora` are the RL sections (`optim` with SFT's defaults), and the `train` keys the two share mean the
same; a run directory's `config.yaml` holds this config.
"""


def _section(
    path: str, model: type[BaseModel], optional: bool, extra_allowed: dict[str, str] | None, tag: str = ""
) -> list[str]:
    """A section's heading, its docstring and its table."""
    level = "#" * (path.count(".") + (3 if tag else 2))
    out = [f"{level} {tag + ' ' if tag else ''}`{path}`", ""]
    intro = _doc(model)
    if optional:
        intro = f"{intro} Optional: `null` (the default) leaves it off.".strip()
    if intro:
        out += [_md(intro), ""]
    return [*out, *table(model, f"{path}.", extra_allowed, tag), ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description="Write docs/CONFIG.md from the config's pydantic models.")
    ap.add_argument("out", nargs="?", default=str(OUTPUT), help=f"where to write (default: {OUTPUT})")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file differs")
    args = ap.parse_args(argv)
    text, path = render(), Path(args.out)
    if args.check:
        same = path.exists() and path.read_text(encoding="utf-8") == text
        if not same:
            print(f"{path} is stale: run {COMMAND}", file=sys.stderr)
        return 0 if same else 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
