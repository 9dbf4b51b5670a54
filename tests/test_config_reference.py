"""docs/CONFIG.md is generated from the config's pydantic models: it is up to date, names every key, and every key
has a description."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from agentrl.algo.advantages import REGISTRY
from agentrl.train import config_reference as ref
from agentrl.train.config import Config

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "CONFIG.md"


def _keys(model: type[BaseModel], prefix: str = ""):
    """(dotted key, model, field name) of every field of `model` and of the sections below it."""
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}", model, name
        sub = ref.section_model(field.annotation)
        if sub is not None:
            yield from _keys(sub, f"{prefix}{name}.")


def test_config_md_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if text != ref.render():  # one line, not pytest's diff of two long strings
        pytest.fail(f"docs/CONFIG.md is stale: run {ref.COMMAND}", pytrace=False)


def test_every_key_appears_with_a_description() -> None:
    text = ref.render()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \|.*\| (.*) \|$", text, re.MULTILINE)}
    keys = [k for k, _, _ in _keys(Config)]
    assert len(keys) > 80  # every section was walked (env.simulator and lora too)
    missing = [k for k in keys if k not in rows]
    assert not missing, f"keys missing from docs/CONFIG.md: {missing}"
    for name, spec in REGISTRY.items():  # every estimator's params, under its own heading
        section = text.split(f"#### `algorithm.name: {name}`", 1)[1].split("\n#", 1)[0]
        for p in spec.params.model_fields:
            assert f"| `algorithm.params.{p}` |" in section, f"algorithm.params.{p} of {name} missing from CONFIG.md"
    empty = [k for k, d in rows.items() if not d.strip()]
    assert not empty, f"keys without a description in docs/CONFIG.md: {empty}"


def test_config_fields_carry_their_description_in_the_model() -> None:
    """config.py's keys say what they do in `Field(description=...)`, so the reference reads it from the model."""
    bare = [
        k
        for k, model, name in _keys(Config)
        if model.__module__ == "agentrl.train.config" and not model.model_fields[name].description
    ]
    assert not bare, f"config.py fields without Field(description=...): {bare}"


def test_types_defaults_and_bounds_are_rendered() -> None:
    text = ref.render()
    assert "| `rollout.top_p` | float | `1.0` | (0, 1] |" in text
    assert "| `train.parallel` | str | `none` | `none`, `ddp`, `fsdp2` |" in text
    assert "| `optim.betas` | [float, float] | `[0.9, 0.999]` | each in [0, 1) |" in text
    assert "| `rollout.kv_store` | int \\| null | `null` | >= 0 |" in text
    assert "| `env.simulator.model` | str | required |" in text
    assert "| `lora.target_modules` | list[str] |" in text and "at least 1 item" in text
    assert "`algorithm.name` | str | `trepo` | " + ", ".join(f"`{n}`" for n in REGISTRY) in text


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "CONFIG.md"
    assert ref.main([str(out), "--check"]) == 1
    assert "is stale: run python -m agentrl.train.config_reference" in capsys.readouterr().err
    assert ref.main([str(out)]) == 0 and out.read_text() == ref.render()
    assert ref.main([str(out), "--check"]) == 0
