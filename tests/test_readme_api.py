"""The README's Python API example (load a config, train, evaluate) runs as written: a README change that breaks it,
or an API change that the README does not follow, fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- example:python_api -->", "<!-- /example -->"


def readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    assert START in text, f"README.md lacks the marker {START} before the Python API example's code block"
    section = text.split(START, 1)[1].split(END, 1)[0]
    m = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert m, f"no ```python code block between {START} and {END} in README.md"
    return m.group(1)


def test_the_api_example_sits_before_define_your_own_environment_and_links_the_reference() -> None:
    text = README.read_text(encoding="utf-8")
    assert (
        text.index("## Train an agent: SFT, then RL") < text.index(START) < text.index("## Define your own environment")
    )
    assert "](docs/CONFIG.md)" in text and (ROOT / "docs" / "CONFIG.md").exists()


def test_the_readme_api_example_trains_and_evaluates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = readme_block()
    monkeypatch.chdir(tmp_path)  # the example's relative paths: examples/ as in the repository, runs/ in tmp
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(code, "README.md (Python API example)", "exec"), namespace)  # noqa: S102 -- the README's own code

    cfg, run_dir, result = namespace["cfg"], Path(namespace["run_dir"]), namespace["result"]
    assert run_dir.resolve() == (tmp_path / cfg.train.run_dir).resolve()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in rows] == list(range(1, cfg.train.updates + 1))
    assert (run_dir / "config.yaml").exists() and any((run_dir / "checkpoints").iterdir())
    assert result.env == cfg.env.id and result.tasks == 8 and result.trials == 1 and result.failed == 0
    assert 0.0 <= result.success_rate <= 1.0 and len(result.outcomes) == 8
    assert "success rate" in capsys.readouterr().out  # the table was printed
