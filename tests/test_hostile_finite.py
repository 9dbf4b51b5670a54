"""Hostile inputs, issue 27: NaN / inf settings are refused at load, non-finite weights are never checkpointed nor
loaded, a run whose every step is skipped stops, a YAML alias bomb fails fast, estimators refuse a group size they
cannot learn from, and a LoRA rank is bounded by the layers it adapts."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel, ValidationError
from safetensors.torch import load_file, save_file

from agentrl.algo.advantages import REGISTRY
from agentrl.core.checkpoint import (
    NonFiniteCheckpointError,
    checkpoint_dirs,
    latest_checkpoint,
    write_manifest,
)
from agentrl.core.errors import UsageError
from agentrl.core.finite import NonFiniteError, non_finite, short_repr
from agentrl.core.types import TrainBatch
from agentrl.inference.models import load_model
from agentrl.train.checkpoint import load_model_weights, save_checkpoint
from agentrl.train.config import (
    MAX_CONFIG_BYTES,
    Config,
    ConfigError,
    PPOConfig,
    load_config,
    parse_overrides,
)
from agentrl.train.lora import LoRAConfig, apply_lora, export_merged
from agentrl.train.update import NonFiniteTrainingError, SkipGuard, ppo_update

SEED = 3
BAD = "model.layers.0.mlp.down_proj.weight"  # a weight of tiny-random's (not tied, so saved as is)


def _refused(*overrides: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(None, list(overrides))
    return str(exc.value)


# -- A. finite or nothing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override,key,got",
    [
        ("optim.lr=.inf", "optim.lr", "inf"),
        ("optim.lr=nan", "optim.lr", "'nan'"),
        ("optim.lr=.NaN", "optim.lr", "nan"),
        ("optim.lr=-.inf", "optim.lr", "-inf"),
        ("optim.lr=1e999", "optim.lr", "'1e999'"),  # a string YAML leaves alone; as a float it is inf
        ("optim.weight_decay=inf", "optim.weight_decay", "'inf'"),
        ("train.collective_timeout_s=inf", "train.collective_timeout_s", "'inf'"),
        ("ppo.kl_coef=inf", "ppo.kl_coef", "'inf'"),
        ("ppo.entropy_coef=inf", "ppo.entropy_coef", "'inf'"),
        ("ppo.clip_high=.inf", "ppo.clip_high", "inf"),
        ("rollout.temperature=.nan", "rollout.temperature", "nan"),
        ("optim.betas=[0.9, .nan]", "optim.betas.1", "nan"),
        ("lora.alpha=.inf", "lora.alpha", "inf"),
    ],
)
def test_a_non_finite_setting_is_refused_at_load_naming_the_key(override: str, key: str, got: str) -> None:
    assert _refused(override) == f"invalid config:\n  '{key}': must be a finite number (got {got})"


def _float_fields(model: type[BaseModel], prefix: str) -> list[tuple[str, str]]:
    """(dotted key, an infinite value for it) for every float field of a config model, nested sections included."""
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
        section = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if section is not None:
            out += _float_fields(section, f"{prefix}{name}.")
        elif float in args:
            out.append((f"{prefix}{name}", ".inf"))
        elif typing.get_origin(ann) is tuple and float in [
            typing.get_origin(a) and typing.get_args(a)[0] or a for a in typing.get_args(ann)
        ]:
            out.append((f"{prefix}{name}", "[0.5, .inf]"))
    return out


FLOATS = _float_fields(Config, "")


def test_every_float_setting_is_covered_and_all_are_listed_at_once() -> None:
    keys = {k for k, _ in FLOATS}
    assert {
        "optim.lr",
        "optim.weight_decay",
        "optim.betas",
        "optim.grad_clip",
        "ppo.kl_coef",
        "ppo.entropy_coef",
        "ppo.vf_coef",
        "ppo.clip_low",
        "ppo.dual_clip",
        "rollout.temperature",
        "rollout.top_p",
        "rollout.episode_timeout_s",
        "train.collective_timeout_s",
        "env.simulator.max_wait_s",
        "lora.alpha",
        "lora.dropout",
    } <= keys, keys
    msg = _refused("env.simulator.model=tiny-random", *(f"{k}={v}" for k, v in FLOATS))
    assert msg.splitlines()[0] == f"invalid config ({len(FLOATS)} problems):", msg
    assert msg.count("must be a finite number") == len(FLOATS), msg


@pytest.mark.parametrize("key,value", FLOATS, ids=[k for k, _ in FLOATS])
def test_every_float_setting_refuses_inf(key: str, value: str) -> None:
    extra = ["env.simulator.model=tiny-random"] if key.startswith("env.simulator.") else []
    assert "must be a finite number (got" in _refused(*extra, f"{key}={value}")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_estimator_parameter_refuses_nan(name: str) -> None:
    params = REGISTRY[name].params
    for field, info in params.model_fields.items():
        if info.annotation is float:
            msg = _refused(f"algorithm.name={name}", f"algorithm.params.{field}=.nan")
            assert f"algorithm.params for {name}: {field}: must be a finite number" in msg, msg


def test_finite_values_still_load_and_bounds_stay() -> None:
    cfg = load_config(
        None, ["optim.lr=0.5", "ppo.kl_coef=1e3", "train.collective_timeout_s=600", "optim.betas=[0.8, 0.99]"]
    )
    assert (cfg.optim.lr, cfg.ppo.kl_coef, cfg.optim.betas) == (0.5, 1e3, (0.8, 0.99))
    assert "'optim.betas.1': Input should be less than 1" in _refused("optim.betas=[0.9, 1.0]")
    assert "'train.collective_timeout_s': Input should be less than or equal to 604800" in _refused(
        "train.collective_timeout_s=1e300"
    )
    assert "'env.simulator.max_wait_s': Input should be less than or equal to 60" in _refused(
        "env.simulator.model=tiny-random", "env.simulator.max_wait_s=1e300"
    )


# -- C. a checkpoint with a non-finite tensor is never written, nor loaded --------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_save_checkpoint_refuses_nan_weights_and_writes_nothing(tmp_path: Path) -> None:
    model, tok = load_model("tiny-random", seed=SEED)
    save_checkpoint(tmp_path, 1, model=model, tokenizer=tok, trainer_state={})
    before = _tree(tmp_path)
    with torch.no_grad():
        model.get_parameter(BAD)[0, :3] = float("nan")
        model.get_parameter(BAD)[1, 0] = float("inf")
        model.get_parameter("model.norm.weight")[0] = float("-inf")
    with pytest.raises(NonFiniteError) as exc:
        save_checkpoint(tmp_path, 2, model=model, tokenizer=tok, trainer_state={})
    assert str(exc.value) == (
        f"checkpoint step 2 not written: tensor {BAD} holds NaN or inf (5 non-finite values in "
        "2 tensors); the previous checkpoints are kept (a learning rate or a loss coefficient too large?)"
    )
    assert _tree(tmp_path) == before  # no step_000002, no temp dir; step_000001 untouched
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_000001"]


def test_save_checkpoint_refuses_a_nan_value_head(tmp_path: Path) -> None:
    model, tok = load_model("tiny-random", seed=SEED)
    head = {"v.weight": torch.tensor([[1.0, float("nan")]]), "v.bias": torch.zeros(1)}
    with pytest.raises(NonFiniteError, match="tensor value_head.v.weight holds NaN or inf"):
        save_checkpoint(tmp_path, 1, model=model, tokenizer=tok, trainer_state={"value_head": head})
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_save_checkpoint_refuses_a_nan_lora_adapter(tmp_path: Path) -> None:
    model, tok = load_model("tiny-random", seed=SEED)
    model = apply_lora(model, LoRAConfig(r=4), base="tiny-random", seed=SEED)
    name = next(k for k, _ in model.named_parameters() if "lora_A" in k)
    with torch.no_grad():
        model.get_parameter(name).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=rf"checkpoint step 1 not written: tensor {name} holds NaN or inf"):
        save_checkpoint(tmp_path, 1, model=model, tokenizer=tok, trainer_state={})
    assert checkpoint_dirs(tmp_path) == []


def test_non_finite_counts_exactly_with_large_finite_values_and_tied_weights() -> None:
    big = torch.full((10,), 3e38)  # finite, but its sum overflows: the fast check must not call it non-finite
    assert non_finite([("big", big), ("ids", torch.tensor([1, 2])), ("x", "not a tensor")]) is None
    emb = torch.zeros(4, 3)
    emb[0, :2] = float("nan")
    tied = [("embed.weight", emb), ("lm_head.weight", emb), ("norm", torch.tensor([1.0, float("-inf")]))]
    assert non_finite(tied) == ("embed.weight", 3, 2)  # the tied tensor once
    assert non_finite([("b", torch.tensor([float("inf")], dtype=torch.bfloat16))]) == ("b", 1, 1)


def _poison(file: Path, tensor_name: str | None = None) -> str:
    """Put a NaN into one tensor of a safetensors file (as an older agentrl could have saved it); return its name."""
    state = load_file(str(file))
    name = tensor_name or sorted(state)[0]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(file), metadata={"format": "pt"})
    return name


def _rewrite_manifest(ckpt: Path) -> None:
    """The manifest of the poisoned files: it verifies, only the values are wrong."""
    (ckpt / "manifest.json").unlink()
    write_manifest(ckpt, 1)


def _full_run_with_nan(tmp_path: Path) -> Path:
    model, tok = load_model("tiny-random", seed=SEED)
    ckpt = save_checkpoint(tmp_path / "run", 1, model=model, tokenizer=tok, trainer_state={})
    _poison(ckpt / "model" / "model.safetensors", BAD)
    _rewrite_manifest(ckpt)
    assert latest_checkpoint(tmp_path / "run") == ckpt
    return ckpt


def test_loading_a_checkpoint_with_nan_weights_is_refused_naming_tensor_and_file(tmp_path: Path) -> None:
    ckpt = _full_run_with_nan(tmp_path)
    file = ckpt / "model" / "model.safetensors"
    model, _ = load_model("tiny-random", seed=SEED)
    with pytest.raises(NonFiniteCheckpointError) as exc:  # resume
        load_model_weights(model, ckpt)
    assert (
        str(exc.value)
        == f"checkpoint {file} is unusable: tensor {BAD} holds NaN or inf (1 non-finite values in 1 tensor)"
    )
    for name in (str(tmp_path / "run"), str(ckpt / "model")):  # eval --model RUN_DIR / a model dir
        with pytest.raises(NonFiniteCheckpointError) as exc:
            load_model(name)
        assert (
            str(exc.value)
            == f"model {file} is unusable: tensor {BAD} holds NaN or inf (1 non-finite values in 1 tensor)"
        )
    with pytest.raises(NonFiniteCheckpointError, match=f"tensor {BAD} holds NaN"):  # export --merge
        export_merged(tmp_path / "run", tmp_path / "out")


def test_export_of_a_nan_checkpoint_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentrl.cli import main

    _full_run_with_nan(tmp_path)
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out"), "--merge"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"tensor {BAD} holds NaN or inf" in err, err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no partial export left beside it


def test_loading_a_nan_lora_adapter_is_refused(tmp_path: Path) -> None:
    model, tok = load_model("tiny-random", seed=SEED)
    model = apply_lora(model, LoRAConfig(r=4), base="tiny-random", seed=SEED)
    ckpt = save_checkpoint(tmp_path / "run", 1, model=model, tokenizer=tok, trainer_state={})
    file = ckpt / "model" / "adapter_model.safetensors"
    name = _poison(file)
    _rewrite_manifest(ckpt)
    with pytest.raises(NonFiniteCheckpointError, match=rf"checkpoint {file} is unusable: tensor {name} holds NaN"):
        fresh = apply_lora(load_model("tiny-random", seed=SEED)[0], LoRAConfig(r=4), base="tiny-random", seed=SEED)
        load_model_weights(fresh, ckpt)
    with pytest.raises(NonFiniteCheckpointError, match=rf"model {file} is unusable: tensor {name} holds NaN"):
        load_model(str(tmp_path / "run"))  # eval --model: the adapter merged into its base
    with pytest.raises(NonFiniteCheckpointError, match=rf"tensor {name} holds NaN"):
        export_merged(tmp_path / "run", tmp_path / "out")


# -- B. a run whose every step is skipped stops -------------------------------------------------------------------
def _metrics(skipped: int, taken: int) -> dict[str, float]:
    return {"skipped_steps": float(skipped), "optimizer_steps": float(taken), "loss/policy": float("nan")}


def test_skip_guard_stops_after_limit_updates_in_a_row_with_every_step_skipped() -> None:
    guard = SkipGuard(3)
    guard.observe(_metrics(2, 0), 1)
    guard.observe(_metrics(2, 0), 2)
    guard.observe(_metrics(1, 1), 3)  # one step taken: the run still learns, the count starts again
    guard.observe(_metrics(0, 0), 4)  # an update with no minibatch skipped nothing
    guard.observe(_metrics(2, 0), 5)
    guard.observe(_metrics(2, 0), 6)
    with pytest.raises(NonFiniteTrainingError) as exc:
        guard.observe(_metrics(2, 0), 7)
    msg = str(exc.value)
    assert msg.startswith(
        "update 7: every optimizer step of the last 3 updates was skipped for a NaN or inf loss "
        "or gradient (2 skipped in this one)"
    ), msg
    assert (
        "train.max_skipped_updates" in msg and "optim.lr" in msg and "ppo.kl_coef" in msg and "ppo.entropy_coef" in msg
    )
    assert "\n" not in msg and isinstance(exc.value, UsageError)
    with pytest.raises(NonFiniteTrainingError, match="update 1: every optimizer step of the last 1 updates"):
        SkipGuard(1).observe(_metrics(4, 0), 1)


def test_skip_guard_limit_is_a_config_key() -> None:
    assert load_config(None, []).train.max_skipped_updates == 3
    assert load_config(None, ["train.max_skipped_updates=5"]).train.max_skipped_updates == 5
    assert "'train.max_skipped_updates': Input should be greater than or equal to 1" in _refused(
        "train.max_skipped_updates=0"
    )


def test_an_overflowing_loss_skips_every_step_and_the_guard_stops() -> None:
    """entropy_coef=1e38 is finite, but the loss overflows float32: every step is skipped, no weight moves."""
    model, _ = load_model("tiny-random", seed=SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    B, T = 4, 6
    ids = torch.randint(3, 100, (B, T), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 0, 1, 1, 0, 1]] * B, dtype=torch.float32)
    batch = TrainBatch(ids, torch.ones_like(ids), mask, torch.zeros(B, T), mask.clone())
    cfg = PPOConfig(entropy_coef=1e38, minibatch_size=2, micro_batch_size=2, logprob_drift_warn_at=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    guard = SkipGuard(2)
    stats = ppo_update(
        model, None, opt, None, batch, cfg, temperature=1.0, grad_clip=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert (stats["skipped_steps"], stats["optimizer_steps"]) == (2.0, 0.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    guard.observe(stats, 1)
    with pytest.raises(NonFiniteTrainingError, match="update 2: every optimizer step of the last 2 updates"):
        guard.observe(stats, 2)


def test_a_run_whose_every_step_is_skipped_stops_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trainer wires the guard: `agentrl train` with a loss that overflows exits 2 naming the setting, after
    train.max_skipped_updates updates, instead of training on to the end with nothing learned (exit 0 before)."""
    from agentrl.cli import main

    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "model=tiny-random",
            "env.kwargs.turns=2",
            "rollout.groups=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "rollout.constrained=true",
            "algorithm.name=grpo",
            "ppo.entropy_coef=1e38",
            "ppo.minibatch_size=4",
            "ppo.micro_batch_size=4",
            "train.updates=6",
            "train.max_skipped_updates=2",
            "train.log_episodes=0",
            f"train.run_dir={run}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("agentrl train: error: update 2: every optimizer step of the last 2 updates")
    assert "train.max_skipped_updates" in err[-1]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2, "it stopped at the second update"


# -- D. YAML alias bombs, huge and deep values ------------------------------------------------------------------------
def _bomb(levels: int = 9) -> list[str]:
    """The classic "billion laughs": 9 lists, each of 9 aliases of the one before (9^9 leaves, ~400 bytes)."""
    names = "abcdefghijklmnop"[:levels]
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip(names, names[1:]):
        lines.append(f"{cur}: &{cur} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    return lines


TOO_MANY = "holds more than 100,000 values, counting each alias as a copy of what it names (an alias bomb?)"


def test_an_alias_bomb_file_fails_fast_with_one_line(tmp_path: Path) -> None:
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(_bomb()) + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    msg = str(exc.value)
    assert msg == f"config file {f} is not valid YAML: it {TOO_MANY}; a config holds a few hundred"
    f.write_text("env:\n  kwargs:\n    " + "\n    ".join(_bomb()) + "\n")  # inside a section: the same
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(f)


def test_an_alias_bomb_as_an_override_fails_fast_with_one_line() -> None:
    value = "[" + ", ".join(line.split(": ", 1)[1] for line in _bomb()) + "]"
    for item in (f"optim.lr={value}", "optim.lr={" + ", ".join(_bomb()) + "}"):
        with pytest.raises(ConfigError) as exc:
            load_config(None, [item])
        msg = str(exc.value)
        assert "\n" not in msg and len(msg) < 400, msg
        assert msg.startswith("override 'optim.lr=") and f"value is not valid YAML (it {TOO_MANY}" in msg, msg


def test_a_smaller_alias_bomb_is_described_in_a_bounded_message() -> None:
    """5 levels (59,049 leaves) pass the cap; as optim.lr the error shows the start of the value, not all of it."""
    value = "[" + ", ".join(line.split(": ", 1)[1] for line in _bomb(5)) + "]"
    msg = _refused(f"optim.lr={value}")
    assert msg.startswith("invalid config:\n  'optim.lr': Input should be a valid number (got [['x', 'x'"), msg
    assert len(msg) < 200 and msg.endswith("...)"), msg


@pytest.mark.parametrize(
    "value,message",
    [
        ("&a [*a]", "an alias refers to a value that contains it (a recursive alias)"),
        ("&a {k: 1, <<: *a}", "a recursive alias"),
        ("[" * 150 + "]" * 150, "it nests deeper than 100 levels"),
        ("1" * 5000, "a value cannot be read ('Exceeds the limit (4300 digits) for integer string conversion"),
    ],
)
def test_recursive_deep_and_huge_values_are_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_overrides([f"env.kwargs.x={value}"])
    assert message in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_a_config_file_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1) + "x: [")  # not even valid YAML: never parsed
    with pytest.raises(ConfigError, match=rf"config file {f} is larger than 1,048,576 bytes"):
        load_config(f)
    f.write_text("model: tiny-random\n" + "# padding\n" * ((MAX_CONFIG_BYTES - 100) // 10))  # under the cap: loads
    assert load_config(f).model == "tiny-random"


def test_short_repr_is_bounded_and_lazy() -> None:
    leaf: list = ["x"] * 9
    for _ in range(12):  # 9^13 leaves by reference: its repr would never finish
        leaf = [leaf] * 9
    text = short_repr(leaf, 60)
    assert len(text) == 60 and text.startswith("[[[[") and text.endswith("...")
    assert short_repr("y" * 10_000_000, 20) == "'yyyyyyyyyyyyyyyy..."
    assert short_repr({"a": 1.5, "b": [1, 2]}) == "{'a': 1.5, 'b': [1, 2]}"
    assert short_repr(10**5000) == "<int of 16610 bits>"


# -- E. estimators refuse a group size they cannot learn from ------------------------------------------------------
@pytest.mark.parametrize(
    "name,why",
    [
        ("grpo", "its baseline is the mean of the task's group, so with one episode every advantage is 0"),
        ("rloo", "its leave-one-out baseline needs another episode of the same task"),
    ],
)
def test_group_relative_estimators_refuse_group_size_1(name: str, why: str) -> None:
    msg = _refused(f"algorithm.name={name}", "rollout.group_size=1")
    assert msg == (
        f"invalid config:\n  rollout.group_size=1 gives {name} nothing to learn from: {why}" + msg.split(why, 1)[1]
    )
    assert (
        "use rollout.group_size >= 2, or an estimator that works with 1: trepo, ppo_gae, ppo_turn, remax, reinforce"
        in msg
    )
    assert load_config(None, [f"algorithm.name={name}", "rollout.group_size=2"]).rollout.group_size == 2
    for other in (
        "ppo_gae",
        "ppo_turn",
        "reinforce",
        "remax",
        "trepo",
    ):  # no group baseline: one episode a task is fine
        assert load_config(None, [f"algorithm.name={other}", "rollout.group_size=1"]).rollout.group_size == 1


# -- F. LoRA rank bounded by the layer size ------------------------------------------------------------------------
def test_lora_rank_larger_than_a_targeted_layer_is_refused_before_peft_runs() -> None:
    model, _ = load_model("tiny-random", seed=SEED)  # hidden 64; k_proj / v_proj 64 -> 32
    with pytest.raises(UsageError) as exc:
        apply_lora(model, LoRAConfig(r=33))
    assert str(exc.value) == (
        "lora.r=33 is larger than the layer model.layers.0.self_attn.k_proj (64 -> 32) allows: "
        "use lora.r <= 32 (the smallest min(in, out) of the targeted layers)"
    )
    assert not hasattr(model, "peft_config")
    assert apply_lora(model, LoRAConfig(r=32, target_modules=["k_proj"])) is not None
    model2, _ = load_model("tiny-random", seed=SEED)
    with pytest.raises(
        UsageError, match=r"lora.r=100 is larger than the layer model.layers.0.mlp.up_proj \(64 -> 128\)"
    ):
        apply_lora(model2, LoRAConfig(r=100, target_modules=["up_proj"]))


def test_lora_rank_has_a_static_bound() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 8192"):
        LoRAConfig(r=100000)
    assert "'lora.r': Input should be less than or equal to 8192 (got 100000)" in _refused("lora.r=100000")
