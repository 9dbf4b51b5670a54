"""Config: YAML + key=value overrides, validated once; clear errors for unknown keys, wrong types, bad env."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrl.train.config import ConfigError, dump_config, load_config, parse_overrides

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_overrides_parse_yaml_scalars_and_nest() -> None:
    assert parse_overrides(["a.b=1", "a.c=x", "d=true", "e=[1, 2]"]) == {
        "a": {"b": 1, "c": "x"},
        "d": True,
        "e": [1, 2],
    }
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["novalue"])


def test_yaml_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("algorithm:\n  name: grpo\nenv:\n  kwargs: {turns: 3}\n")
    cfg = load_config(f, ["env.kwargs.n_cues=2", "optim.lr=0.5"])
    assert cfg.algorithm.name == "grpo"
    assert cfg.env.kwargs == {"turns": 3, "n_cues": 2}
    assert cfg.optim.lr == 0.5


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, ["ppo.epoch=2"])
    msg = str(e.value)
    assert "unknown key 'ppo.epoch'" in msg and "epochs" in msg and "minibatch_size" in msg
    with pytest.raises(ConfigError, match="valid keys here: algorithm, env, lora, model"):
        load_config(None, ["nope=1"])


def test_wrong_type_and_range_name_the_key() -> None:
    with pytest.raises(ConfigError, match="'optim.lr'"):
        load_config(None, ["optim.lr=abc"])
    with pytest.raises(ConfigError, match="'rollout.groups'"):
        load_config(None, ["rollout.groups=0"])
    with pytest.raises(ConfigError, match="unknown algorithm 'foo'; allowed: gigpo, grpo, ppo_gae"):
        load_config(None, ["algorithm.name=foo"])
    with pytest.raises(ConfigError, match="micro_batch_size"):
        load_config(None, ["ppo.micro_batch_size=32", "ppo.minibatch_size=8"])


def test_missing_or_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_missing_env_is_a_clear_error_before_any_model_loads(tmp_path: Path) -> None:
    from agentrl.train.trainer import Trainer

    cfg = load_config(None, ["env.id=agentrl/Nope-v0", f"train.run_dir={tmp_path}"])
    with pytest.raises(ValueError, match="unknown environment 'agentrl/Nope-v0'; registered: .*agentrl/CreditChain-v0"):
        Trainer(cfg, console=False)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path)
    again = tmp_path / "resolved.yaml"
    again.write_text(dump_config(cfg))
    assert load_config(again) == cfg


def test_one_example_per_algorithm() -> None:
    from agentrl.algo.advantages import REGISTRY

    names = {load_config(p).algorithm.name for p in EXAMPLES}
    assert set(REGISTRY) <= names


def test_atomic_writes_get_ordinary_permissions(tmp_path) -> None:
    import os
    import stat

    from agentrl.core.io import atomic_write_text

    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "héllo")
    umask = os.umask(0)
    os.umask(umask)
    assert p.read_text(encoding="utf-8") == "héllo"
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]  # no temp file left


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "algorithm.params.bogus=1",
            "algorithm.params for trepo: bogus: unknown (allowed: mode, branch_points, branch_m",
        ),
        ("algorithm.params.branch_points=turnz", "unknown spec 'turnz'"),
        ("algorithm.params.branch_m=0", "branch_m: Input should be greater than or equal to 1"),
        ("algorithm.params.mode=tokens", "mode: Input should be 'segment' or 'interpolate'"),
        ("algorithm.branch_m=2", "algorithm.branch_m is now algorithm.params.branch_m"),
    ],
)
def test_estimator_params_are_validated_when_the_config_loads(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert message in str(exc.value), str(exc.value)


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("grpo", "algorithm.params.mode=segment", "grpo: mode: unknown (allowed: eps, scale_std)"),
        ("rloo", "algorithm.params.gamma=1", "rloo: gamma: unknown (allowed: none)"),
        ("ppo_gae", "algorithm.params.lam=2", "lam: Input should be less than or equal to 1"),
        ("reinforce", "algorithm.params.baseline=group", "baseline: Input should be 'none' or 'batch_mean'"),
    ],
)
def test_each_estimator_has_its_own_params(name: str, params: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, [f"algorithm.name={name}", params])
    assert message in str(exc.value), str(exc.value)


def test_estimator_params_are_completed_with_their_defaults() -> None:
    cfg = load_config(None, ["algorithm.params.branch_m=3"])
    assert cfg.algorithm.params == {
        "mode": "segment",
        "branch_points": "turns",
        "branch_m": 3,
        "branch_t_min": 0.0,
        "branch_crn": False,
        "baseline": "with_own",
        "train_continuations": False,
    }
    assert cfg.algorithm.estimator_params().branch_m == 3
    assert load_config(None, ["algorithm.name=rloo"]).algorithm.params == {}
