"""Hand-edited LoRA adapter directories (issue 27): each kind of damage to `adapter_config.json`,
`agentrl_base.json` or `adapter_model.safetensors` makes `agentrl eval --model DIR` exit 2 with one line naming
the file and what is wrong, before any episode runs, never a traceback from inside peft or safetensors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentrl.cli import main
from agentrl.inference.models import load_model
from agentrl.train.checkpoint import save_checkpoint
from agentrl.train.lora import LoRAConfig, apply_lora


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = load_model("tiny-random", seed=3)
    model = apply_lora(model, LoRAConfig(r=4), base="tiny-random", seed=3)
    root = tmp_path_factory.mktemp("lora")
    return save_checkpoint(root, 1, model=model, tokenizer=tok, trainer_state={}) / "model"


def _config_with(d: Path, **changes) -> None:
    cfg = json.loads((d / "adapter_config.json").read_text())
    (d / "adapter_config.json").write_text(json.dumps({**cfg, **changes}))


def _drop_one_tensor(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(d / "adapter_model.safetensors"))
    state.pop(sorted(state)[0])
    save_file(state, str(d / "adapter_model.safetensors"))


def _empty_weights(d: Path) -> None:
    from safetensors.torch import save_file

    save_file({}, str(d / "adapter_model.safetensors"))


EDITS = {
    "config-not-json": (
        lambda d: (d / "adapter_config.json").write_text("{oops"),
        "adapter_config.json is not valid JSON",
    ),
    "config-a-list": (
        lambda d: (d / "adapter_config.json").write_text("[1]"),
        "adapter_config.json must be a JSON object",
    ),
    "config-r-string": (lambda d: _config_with(d, r="four"), "r must be a positive int, got 'four'"),
    "config-r-negative": (lambda d: _config_with(d, r=-1), "r must be a positive int, got -1"),
    "config-peft-type": (lambda d: _config_with(d, peft_type="XYZ"), 'peft_type must be "LORA"'),
    "config-targets-missing": (lambda d: _config_with(d, target_modules=["nope"]), "does not fit its base model"),
    "config-alpha-nan": (
        lambda d: (d / "adapter_config.json").write_text(
            (d / "adapter_config.json").read_text().replace('"lora_alpha": 32.0', '"lora_alpha": NaN')
        ),
        "lora_alpha must be a finite number",
    ),
    "base-not-json": (lambda d: (d / "agentrl_base.json").write_text("{"), "agentrl_base.json is not valid JSON"),
    "base-a-list": (
        lambda d: (d / "agentrl_base.json").write_text("[]"),
        "agentrl_base.json must be an object with the base model's name",
    ),
    "base-unknown-model": (
        lambda d: (d / "agentrl_base.json").write_text('{"model": "nope-model", "seed": 3}'),
        "its base model 'nope-model' (agentrl_base.json) cannot be loaded",
    ),
    "base-seed-string": (
        lambda d: (d / "agentrl_base.json").write_text('{"model": "tiny-random", "seed": "x"}'),
        "seed must be a non-negative int, got 'x'",
    ),
    "weights-garbage": (
        lambda d: (d / "adapter_model.safetensors").write_bytes(b"garbage" * 10),
        "is not a readable safetensors file",
    ),
    "weights-cut": (
        lambda d: (d / "adapter_model.safetensors").write_bytes((d / "adapter_model.safetensors").read_bytes()[:500]),
        "is not a readable safetensors file",
    ),
    "weights-missing": (lambda d: (d / "adapter_model.safetensors").unlink(), "has no adapter_model.safetensors"),
    "weights-empty": (_empty_weights, "holds no LoRA weights"),
    "weights-one-tensor-short": (_drop_one_tensor, "lacks 1 of the 28 adapter tensors"),
}


@pytest.mark.parametrize("kind", sorted(EDITS))
def test_damaged_adapter_is_one_line(kind: str, adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    edit, expected = EDITS[kind]
    d = tmp_path / "model"
    shutil.copytree(adapter, d)
    edit(d)
    rc = main(["eval", "--env", "agentrl/CreditChain-v0", "--model", str(d), "--episodes", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert expected in err and "Traceback" not in err


def test_the_undamaged_adapter_evaluates(adapter: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(
            [
                "eval",
                "--env",
                "agentrl/CreditChain-v0",
                "--model",
                str(adapter),
                "--episodes",
                "1",
                "--max-new-tokens",
                "4",
            ]
        )
        == 0
    )
