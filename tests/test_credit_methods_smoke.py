"""benchmarks/credit_methods.py end to end at a tiny token budget: a run's result is saved when it ends, a rerun
skips it, the plot and the section come from what is saved, and --real says it is not run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(_BENCH))  # the script imports credit_assignment and _common by their names
_SPEC = importlib.util.spec_from_file_location("credit_methods", _BENCH / "credit_methods.py")
script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(script)  # type: ignore[union-attr]

ARGS = ["--smoke", "--ks", "2", "--seeds", "0", "--methods", "grpo", "trepo_cheap", "--budget", "40"]


def test_smoke_saves_skips_and_renders(tmp_path, monkeypatch):
    args = [*ARGS, "--out", str(tmp_path), "--runs-dir", str(tmp_path / "runs")]
    script.main(args)
    saved = json.loads((tmp_path / "credit_methods.json").read_text())
    assert set(saved) == {"2/grpo/0", "2/trepo_cheap/0"}
    for res in saved.values():
        assert res["budget"] == 40 and res["rows"][-1]["tokens/cumulative"] >= 40 and res["wall_s"] > 0
        assert len(res["rows"]) == 1 or res["rows"][-2]["tokens/cumulative"] < 40  # stopped at the first crossing
    assert "algorithm.params.branch_points=divergence" in saved["2/trepo_cheap/0"]["settings"]["overrides"]
    assert (tmp_path / "credit_methods_K2.png").stat().st_size > 0

    def no_run(*a, **k):
        raise AssertionError("a finished run ran again")

    monkeypatch.setattr(script, "run_method", no_run)
    assert list((tmp_path / "runs").iterdir()) == []  # a saved run's directory is removed
    script.main(args)  # the same command again: nothing to run
    script.main([*args, "--render", "--seeds", "0", "1"])
    section = (tmp_path / "section.md").read_text()
    assert "| 2 | grpo | 1/2 |" in section and "| 2 | trepo_cheap | 1/2 |" in section
    assert "**Not done** (2 runs): K=2 grpo seed 1, K=2 trepo_cheap seed 1" in section
    assert "SmolLM2" in section  # the real-task setting: said not run, and why


def test_real_is_not_run():
    with pytest.raises(SystemExit, match="not run"):
        script.main(["--real"])
