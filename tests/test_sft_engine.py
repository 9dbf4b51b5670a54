"""`agentrl sft` on the training engine (train/engine.py, issue 32): the nested config from YAML, flags and `a.b=v`
overrides; LoRA runs that `agentrl eval` loads and that resume to the uninterrupted result; `train.device` and
`train.autocast` honoured. tests/test_config_wiring.py checks that every sft key reaches its reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from run_helpers import cli, sft_args

from agentrl.cli import main
from agentrl.eval.evaluate import evaluate
from agentrl.inference.models import load_model
from agentrl.train.config import ConfigError
from agentrl.train.sft_config import from_flags, load_sft_config, saved_sft_config

CREDIT = "agentrl/CreditChain-v0"


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "d.jsonl"
    lines = []
    for i in range(6):
        msgs = [
            {"role": "user", "content": f"say {i}"},
            {"role": "assistant", "content": f"{i}"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": f"{i} {i}"},
        ]
        lines.append(json.dumps({"messages": msgs}))
    data.write_text("\n".join(lines) + "\n")
    return data


def test_yaml_then_flags_then_overrides(tmp_path: Path) -> None:
    cfg_file = tmp_path / "sft.yaml"
    cfg_file.write_text("data: {source: a.jsonl}\noptim: {lr: 1.0e-3, weight_decay: 0.1}\nsft: {epochs: 5}\n")
    cfg = load_sft_config(cfg_file, ["optim.lr=3e-3"], {"lr": 2e-3, "epochs": 4, "keep": None})
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.sft.epochs) == (3e-3, 0.1, 4)  # override > flag > file
    assert cfg.optim.schedule == "cosine" and cfg.train.run_dir == "runs/sft"  # SFT's own defaults
    with pytest.raises(ConfigError, match=r"unknown key 'optim.lrr'; valid keys here: betas, grad_clip, lr"):
        load_sft_config(cfg_file, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"'sft.epochs' \(--epochs\): Input should be greater than or equal to 1"):
        load_sft_config(cfg_file, [], {"epochs": 0})
    with pytest.raises(ConfigError, match="no demonstrations named: give --from scripted:NAME"):
        load_sft_config(None, ["optim.lr=1e-3"])
    with pytest.raises(ConfigError, match="train.autocast=bfloat16 keeps float32 master weights"):
        load_sft_config(cfg_file, ["train.autocast=bfloat16", "train.dtype=bfloat16"])


def test_a_flat_config_from_before_the_nesting_reads_as_the_nested_one() -> None:
    flat = {"sft": {"source": "x.jsonl", "lr": 1e-3, "bucket": False, "run_dir": "r", "keep_checkpoints": 3}}
    nested = saved_sft_config(flat)
    assert nested == from_flags(source="x.jsonl", lr=1e-3, bucket=False, run_dir="r", keep_checkpoints=3).model_dump(
        mode="json"
    )
    assert nested["data"]["bucket"] is False and nested["train"]["keep_checkpoints"] == 3


def test_cli_sft_takes_a_config_file_and_overrides(tmp_path: Path, capsys) -> None:
    data, run = _data(tmp_path), tmp_path / "run"
    cfg_file = tmp_path / "sft.yaml"
    cfg_file.write_text(
        f"model: tiny-random\ndata: {{source: {data}}}\nsft: {{epochs: 1, batch_size: 3, micro_batch_size: 3}}\n"
    )
    rc, err = cli(["sft", str(cfg_file), f"train.run_dir={run}", "optim.weight_decay=0.05", "--lr", "1e-3"], capsys)
    assert rc == 0, err
    saved = load_sft_config(run / "config.yaml")  # the run directory's config.yaml is this config
    assert (saved.optim.lr, saved.optim.weight_decay, saved.sft.batch_size) == (1e-3, 0.05, 3)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    rc, err = cli(["sft", str(cfg_file), f"train.run_dir={tmp_path / 'x'}", "data.bucket=maybe"], capsys)
    assert rc == 2 and "'data.bucket': Input should be a valid boolean" in err
    if not torch.cuda.is_available():
        rc, err = cli(["sft", str(cfg_file), f"train.run_dir={tmp_path / 'y'}", "train.device=cuda"], capsys)
        assert rc == 2 and "train.device=cuda but torch sees no CUDA GPU here" in err, err


def test_sft_under_torchrun_takes_one_process_steps(tmp_path: Path, capsys) -> None:
    """train.parallel=ddp on 2 CPU ranks (gloo): each rank forwards half of every batch, the gradients are summed, and
    the run equals one process's (here to the bit: the same micro-batches, summed in the same order)."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from agentrl.core.checkpoint import latest_checkpoint

    data, one, two = _data(tmp_path), tmp_path / "one", tmp_path / "two"
    flags = ["--from", str(data), "--model", "tiny-random", "--batch-size", "4", "--micro-batch-size", "2"]
    rc, err = cli(["sft", *flags, "--lr", "1e-3", "--out", str(one)], capsys)
    assert rc == 0, err
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "agentrl", "sft"]
    cmd += [*flags, "--lr", "1e-3", "--out", str(two), "train.parallel=ddp", "train.collective_timeout_s=60"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [[json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()] for r in (one, two)]
    assert [r["loss/sft"] for r in rows[0]] == pytest.approx([r["loss/sft"] for r in rows[1]], rel=1e-6)
    a, b = (load_file(str(latest_checkpoint(r) / "model" / "model.safetensors")) for r in (one, two))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert done.stderr.count("run directory:") == 1  # rank 0 alone reports (and writes)
    with pytest.MonkeyPatch.context() as m:  # several processes without train.parallel=ddp: refused, naming it
        m.setenv("WORLD_SIZE", "2")
        rc, err = cli(["sft", *flags, "--out", str(tmp_path / "x")], capsys)
    assert rc == 2 and "train.parallel='none'" in err


def _lora_args(data: Path, run: Path, *extra: str) -> list[str]:
    return sft_args(data, run, "lora.r=4", "train.device=cpu", "train.autocast=bfloat16", *extra)


def test_lora_sft_resumes_to_the_uninterrupted_run_and_loads_as_a_model(tmp_path: Path, monkeypatch, capsys) -> None:
    import agentrl.train.sft as sft
    from agentrl.core.checkpoint import adapter_weights, latest_checkpoint

    data = _data(tmp_path)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    rc, err = cli(_lora_args(data, whole), capsys)
    assert rc == 0, err
    real, calls = sft.sft_step, [0]

    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] > 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(sft, "sft_step", dying)
        with pytest.raises(KeyboardInterrupt):
            main(_lora_args(data, cut))
    capsys.readouterr()
    rc, err = cli(_lora_args(data, cut, "--resume"), capsys)
    assert rc == 0 and "resumed after step 4" in err, err
    a, b = (adapter_weights(latest_checkpoint(r) / "model") for r in (whole, cut))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    losses = [json.loads(x)["loss/sft"] for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]
    # what `agentrl eval --model RUN_DIR` and `agentrl train model=RUN_DIR` load: the base with the adapters merged
    merged, _ = load_model(str(whole))
    base, _ = load_model("tiny-random")
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed and all("proj" in k for k in changed)  # only the adapted projections moved
    res = evaluate(CREDIT, str(whole), env_kwargs={"turns": 2}, tasks=2, temperature=0.0, max_new_tokens=2)
    assert res.tasks == 2


def test_autocast_changes_the_forward_not_the_weights_dtype(tmp_path: Path, capsys) -> None:
    data = _data(tmp_path)
    runs = {}
    for name, extra in (("fp32", []), ("bf16", ["train.autocast=bfloat16"])):
        run = tmp_path / name
        args = ["sft", "--from", str(data), "--model", "tiny-random", "--epochs", "1", "--out", str(run), *extra]
        rc, err = cli([*args, "train.device=cpu"], capsys)
        assert rc == 0, err
        runs[name] = [json.loads(x)["loss/sft"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert runs["fp32"] != runs["bf16"]  # the forward ran in bfloat16
    assert runs["fp32"] == pytest.approx(runs["bf16"], rel=0.05)  # the same computation, to bfloat16 rounding
    from safetensors.torch import load_file

    from agentrl.core.checkpoint import latest_checkpoint

    weights = load_file(str(latest_checkpoint(tmp_path / "bf16") / "model" / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.float32}  # float32 master weights


def test_the_example_config_is_the_readme_command() -> None:
    """examples/sft/tooluse.yaml and the README's `agentrl sft` flags describe one config."""
    from agentrl.cli import build_parser
    from agentrl.train.sft import config_from_args

    root = Path(__file__).resolve().parents[1]
    flags = [
        "sft",
        "--from",
        "scripted:gold",
        "--env",
        "agentrl/ToolUse-v0",
        "--split",
        "train",
        "--env-kwargs",
        '{"tier": [1, 2], "schema": "compact", "max_turns": 5}',
        "--epochs",
        "2",
        "--lr",
        "5e-5",
        "--eval-every",
        "25",
        "--out",
        "runs/sft-tooluse",
    ]
    args = build_parser().parse_args(flags)
    args.config, args.overrides = None, []
    assert config_from_args(args) == load_sft_config(root / "examples" / "sft" / "tooluse.yaml")
    assert " ".join(flags[1:7]) in (root / "README.md").read_text(encoding="utf-8").replace("\\\n    ", "")
