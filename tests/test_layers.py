"""The package layout is the architecture: each folder of agentrl/ is a layer, and imports point down only.

core (contracts) <- inference (backends, chat models) <- sim (simulators' models) <- rollout <- algo (pure
math) <- eval <- train <- the top (cli, report/, quickstart). A module may import its own layer and the
layers below it, never above: so a newcomer finds a thing from its folder, and `algo` stays free of I/O.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "agentrl"
LAYERS = ["core", "inference", "sim", "rollout", "algo", "eval", "train"]
TOP = len(LAYERS)  # cli.py, quickstart.py, __init__.py, __main__.py and the top-level packages below
TOP_PACKAGES = ["report"]  # `agentrl report`: the page, its plots, the episodes' heatmap


def layer_of(module: str) -> int:
    """agentrl.<layer>.x -> its index; a top-level module (agentrl.cli) -> TOP."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else TOP


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("agentrl"):
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("agentrl")]
    return out


MODULES = sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(PKG)
    own = LAYERS.index(rel.parts[0]) if len(rel.parts) > 1 and rel.parts[0] not in TOP_PACKAGES else TOP
    up = [
        f"line {n}: {m} (layer {LAYERS[layer_of(m)] if layer_of(m) < TOP else 'top'})"
        for n, m in imports(path)
        if m != "agentrl" and layer_of(m) > own
    ]
    assert not up, f"{rel} (layer {LAYERS[own] if own < TOP else 'top'}) imports from above: {up}"


def test_every_module_lives_in_a_layer_or_is_a_top_level_entry_point() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "cli.py", "quickstart.py"], top
    assert sorted(p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(
        LAYERS + TOP_PACKAGES
    )
