"""Hostile CLI inputs: each exits 2 with one line on stderr that names what was wrong (and what is allowed),
never a traceback, and no model loads before the input is validated. In-process through `agentrl.cli.main`."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrl.cli import main

CREDIT = "agentrl/CreditChain-v0"
TOOLUSE = "agentrl/ToolUse-v0"
FLIGHT = "agentrl/FlightBooking-v0"
EVAL = ["eval", "--env", CREDIT, "--model", "scripted:gold"]
ROLLOUT = ["rollout", "--env", CREDIT, "--model", "tiny-random", "--out", "{tmp}/t.jsonl"]
SFT = ["sft", "--from", "scripted:gold", "--env", CREDIT, "--model", "tiny-random", "--out", "{tmp}/sft"]


def row(argv: list[str], *expected: str, id: str) -> pytest.param:
    return pytest.param(argv, expected, id=id)


# argv ("{tmp}" is the test's tmp_path; `train` rows get train.run_dir={tmp}/run), substrings of the message
ROWS = [
    # train: the config file
    row(["train", "{tmp}"], "config file", "is a directory", id="train-config-is-a-dir"),
    row(["train", "{tmp}/binary.yaml"], "binary.yaml is not UTF-8 text", id="train-config-binary"),
    row(
        ["train", "{tmp}/bad.yaml"],
        "bad.yaml is not valid YAML: mapping values are not allowed here at line 1",
        id="train-config-bad-yaml",
    ),
    row(["train", "{tmp}/list.yaml"], "list.yaml must hold a mapping", id="train-config-not-a-mapping"),
    row(["train", "{tmp}/missing.yaml"], "missing.yaml does not exist", id="train-config-missing"),
    # train: keys and values
    row(["train", "ppo.epoch=2"], "unknown key 'ppo.epoch'; valid keys here:", "epochs", id="train-unknown-key"),
    row(["train", "train.updates=0"], "'train.updates'", "greater than or equal to 1", id="train-updates-0"),
    row(["train", "train.seed=-1"], "'train.seed'", id="train-seed-negative"),
    row(["train", "algorithm.name=foo"], "unknown algorithm 'foo'; allowed:", id="train-unknown-algorithm"),
    row(
        ["train", "optim.lr"],
        "config file optim.lr does not exist (an override looks like section.key=value)",
        id="train-override-without-value",
    ),
    row(
        ["train", "optim.lr=0.1", "ppo.epochs"],
        "override 'ppo.epochs' must look like section.key=value",
        id="train-second-override-without-value",
    ),
    # train: the env, before any model loads
    row(
        ["train", "env.id=agentrl/Nope-v0"],
        "unknown environment 'agentrl/Nope-v0'; registered:",
        CREDIT,
        id="train-unknown-env",
    ),
    row(
        ["train", "env.kwargs.bogus=3"],
        f"unknown env kwarg 'bogus' for {CREDIT}; allowed: turns, n_cues",
        id="train-env-kwarg",
    ),
    row(["train", "train.eval_env_kwargs.bogus=3"], "unknown env kwarg 'bogus'", id="train-eval-env-kwarg"),
    row(["train", "env.kwargs.turns=0"], "turns must be a positive int, got 0", id="train-env-kwarg-value"),
    row(
        ["train", "env.simulator.model=tiny-random"],
        f"env.simulator: {CREDIT} takes no simulator",
        f"envs that take one: agentrl/Consultation-v0, {FLIGHT}",
        id="train-simulator-without-counterpart",
    ),
    row(
        ["train", "env.id=agentrl/Consultation-v0", "env.simulator.model=tiny-random"],
        "Consultation-v0: simulator is given but patient='rule' and diagnoser='bayes' do not use it",
        "env.kwargs.patient=llm",
        id="train-simulator-unused",
    ),
    row(
        ["train", f"env.id={FLIGHT}", "env.simulator.model=tiny-random"],
        "FlightBooking-v0: simulator is given but user='rule' does not use it",
        "env.kwargs.user=llm",
        id="train-simulator-unused-by-rule-user",
    ),
    row(
        ["train", f"env.id={FLIGHT}", "env.kwargs.user=llm"],
        "user='llm' needs simulator=<chat model>",
        "env.simulator.model=NAME",
        id="train-llm-user-without-simulator",
    ),
    row(
        [
            "train",
            f"env.id={FLIGHT}",
            "env.kwargs.user=llm",
            "env.kwargs.simulator=tiny-random",
            "env.simulator.model=tiny-random",
        ],
        "env.kwargs.simulator is set and env.simulator would set it too",
        id="train-simulator-kwarg-set-twice",
    ),
    row(
        ["train", "env.simulator.model=tiny-random", "env.simulator.kwarg=user"],
        "env.simulator.kwarg is gone",
        id="train-simulator-kwarg-removed",
    ),
    # train: the run directory holds one run
    row(
        ["train", "train.run_dir={tmp}/used"],
        "train.run_dir {tmp}/used already holds a run (metrics.jsonl)",
        "resume it with train.resume=true or clear it with train.overwrite=true",
        id="train-run-dir-not-empty",
    ),
    row(
        ["train", "train.resume=true", "train.overwrite=true"], "contradict each other", id="train-resume-and-overwrite"
    ),
    row(
        ["train", "train.run_dir={tmp}/list.yaml"], "list.yaml is a file, not a directory", id="train-run-dir-is-a-file"
    ),
    # eval: counts and sampling flags (argparse rejects them)
    row([*EVAL, "--episodes", "0"], "argument --episodes: must be an integer >= 1, got '0'", id="eval-episodes-0"),
    row([*EVAL, "--episodes", "-1"], "argument --episodes: must be an integer >= 1", id="eval-episodes-negative"),
    row(
        [*EVAL, "--episodes", "lots"],
        "argument --episodes: must be an integer >= 1, got 'lots'",
        id="eval-episodes-text",
    ),
    row([*EVAL, "--k", "0"], "argument --k: must be an integer >= 1", id="eval-k-0"),
    row([*EVAL, "--trials", "0"], "argument --trials: must be an integer >= 1", id="eval-trials-0"),
    row([*EVAL, "--k", "2", "--trials", "1"], "trials (1) must be >= k (2)", id="eval-trials-below-k"),
    row(
        [*EVAL, "--max-new-tokens", "0"],
        "argument --max-new-tokens: must be an integer >= 1",
        id="eval-max-new-tokens-0",
    ),
    row(
        [*EVAL, "--temperature", "-1"],
        "argument --temperature: must be a finite number >= 0",
        id="eval-temperature-negative",
    ),
    row(
        [*EVAL, "--temperature", "nan"],
        "argument --temperature: must be a finite number >= 0",
        id="eval-temperature-nan",
    ),
    row([*EVAL, "--seed", "-1"], "argument --seed: must be an integer >= 0", id="eval-seed-negative"),
    # eval: env, split and agent
    row(
        ["eval", "--env", "agentrl/Nope-v0", "--model", "tiny-random"],
        "unknown environment 'agentrl/Nope-v0'",
        id="eval-unknown-env",
    ),
    row(
        ["eval", "--env", CREDIT, "--model", "tiny-random", "--env-kwargs", '{"bogus": 3}'],
        f"unknown env kwarg 'bogus' for {CREDIT}; allowed: turns",
        id="eval-env-kwarg",
    ),
    row([*EVAL, "--env-kwargs", "{turns: 3}"], "argument --env-kwargs: not valid JSON", id="eval-env-kwargs-bad-json"),
    row(
        [*EVAL, "--env-kwargs", "[1]"], "argument --env-kwargs: must be a JSON object", id="eval-env-kwargs-not-object"
    ),
    row([*EVAL, "--env-kwargs", '{"turns": 0}'], "turns must be a positive int", id="eval-env-kwarg-value"),
    row(
        ["eval", "--env", CREDIT, "--model", "tiny-random", "--split", "nosuch"],
        f"{CREDIT} has no splits",
        id="eval-split-no-splits",
    ),
    row(
        ["eval", "--env", TOOLUSE, "--model", "tiny-random", "--split", "nosuch"],
        "unknown split 'nosuch'; allowed: train, test, all",
        id="eval-split-unknown",
    ),
    row(
        ["eval", "--env", FLIGHT, "--model", "tiny-random", "--split", "nosuch"],
        "split must be 'train', 'test' or 'all'",
        id="eval-split-unknown-flight",
    ),
    row(
        ["eval", "--env", CREDIT, "--model", "scripted:nosuch"],
        "no scripted agent 'nosuch'; available: scripted:gold",
        id="eval-unknown-scripted-agent",
    ),
    row(["eval", "--model", "tiny-random"], "the following arguments are required: --env", id="eval-missing-env"),
    # rollout
    row([*ROLLOUT, "--episodes", "0"], "argument --episodes: must be an integer >= 1", id="rollout-episodes-0"),
    row(
        [*ROLLOUT, "--max-new-tokens", "0"],
        "argument --max-new-tokens: must be an integer >= 1",
        id="rollout-max-new-tokens-0",
    ),
    row(
        [*ROLLOUT, "--temperature", "inf"],
        "argument --temperature: must be a finite number",
        id="rollout-temperature-inf",
    ),
    row([*ROLLOUT, "--env-kwargs", '{"bogus": 3}'], "unknown env kwarg 'bogus'", id="rollout-env-kwarg"),
    row(["rollout", "--env", CREDIT, "--out", "{tmp}"], "is a directory; give a file path", id="rollout-out-is-a-dir"),
    row(
        ["rollout", "--env", CREDIT, "--out", "{tmp}/list.yaml/t.jsonl"],
        "list.yaml is a file, not a directory",
        id="rollout-out-under-a-file",
    ),
    # sft
    row([*SFT, "--env-kwargs", '{"bogus": 3}'], "unknown env kwarg 'bogus'", id="sft-env-kwarg"),
    row([*SFT, "--split", "x"], f"{CREDIT} has no splits", id="sft-split-no-splits"),
    row([*SFT, "--lr", "-1"], "'optim.lr' (--lr): Input should be greater than 0", id="sft-lr-negative"),
    row(
        [*SFT[:-1], "{tmp}/used"],
        "--out {tmp}/used already holds a run",
        "clear it with --overwrite",
        id="sft-out-not-empty",
    ),
    row(
        ["sft", "--from", "scripted:nosuch", "--env", CREDIT, "--model", "tiny-random", "--out", "{tmp}/sft"],
        "no scripted agent 'nosuch'; available: scripted:gold",
        id="sft-unknown-scripted-agent",
    ),
    row(
        ["sft", "--from", "{tmp}/missing.jsonl", "--model", "tiny-random", "--out", "{tmp}/sft"],
        "--from {tmp}/missing.jsonl: the transcript file does not exist",
        id="sft-missing-transcripts",
    ),
    row(
        ["sft", "--from", "{tmp}", "--model", "tiny-random", "--out", "{tmp}/sft"],
        "the transcript file is a directory",
        id="sft-transcripts-dir",
    ),
    # report, commands
    row(["report", "{tmp}"], "no metrics.jsonl in", id="report-not-a-run-dir"),
    row(["nosuch"], "invalid choice: 'nosuch'", id="unknown-command"),
    row(
        ["consult", "run", "--doctor", "scripted:nobody", "--cases", "1", "--out", "{tmp}/c.jsonl"],
        "unknown scripted doctor 'nobody'",
        id="plugin-command-value-error",
    ),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (tmp_path / "bad.yaml").write_text("a: b: c\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "metrics.jsonl").write_text('{"step": 1}\n')  # another run's
    (tmp_path / "used" / "agentrl_run.json").write_text('{"kind": "train", "status": "finished"}\n')  # it is a run
    return tmp_path


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a policy or simulator model fails the test: every row must be refused before that."""
    import agentrl.inference.models
    import agentrl.sim.models
    import agentrl.train.engine

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the input was validated")

    for mod in (agentrl.inference.models, agentrl.train.engine):  # the engine loads for train and sft
        monkeypatch.setattr(mod, "load_model", refuse)
    monkeypatch.setattr(agentrl.sim.models, "make_chat_model", refuse)


def run_cli(argv: list[str], tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    argv = [a.replace("{tmp}", str(tmp)) for a in argv]
    if argv[0] == "train" and not any(a.startswith("train.run_dir=") for a in argv):
        argv.append(f"train.run_dir={tmp / 'run'}")
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse refuses a flag itself
        rc = exc.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv,expected", ROWS)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], expected: tuple[str, ...], workdir: Path, no_model_loads: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = run_cli(argv, workdir, capsys)
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("agentrl"), err
    for part in expected:
        assert part.replace("{tmp}", str(workdir)) in err, err


@pytest.mark.parametrize(
    "command",
    [["eval", "--env", CREDIT], ["rollout", "--env", CREDIT, "--out", "{tmp}/t.jsonl"], ["train"]],
    ids=["eval", "rollout", "train"],
)
def test_unknown_model_name(command: list[str], workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*command, "model=nosuch-model"] if command == ["train"] else [*command, "--model", "nosuch-model"]
    rc, err = run_cli(argv, workdir, capsys)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "unknown model 'nosuch-model': expected one of smollm2-135m, tiny-random" in err


def test_several_config_problems_are_listed_under_one_first_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = run_cli(["train", "ppo.epoch=2", "optim.lr=abc"], workdir, capsys)
    lines = err.splitlines()
    assert rc == 2 and lines[0] == "agentrl train: error: invalid config (2 problems):"
    assert any("'optim.lr'" in ln for ln in lines[1:]) and any("unknown key 'ppo.epoch'" in ln for ln in lines[1:])


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A ValueError that is not a UsageError is a bug, not bad input: main does not turn it into exit 2."""
    import agentrl.eval.evaluate

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("internal invariant broken")

    monkeypatch.setattr(agentrl.eval.evaluate, "evaluate", broken)
    with pytest.raises(ValueError, match="internal invariant broken"):
        main(EVAL)
    assert capsys.readouterr().err == ""


def test_missing_named_file_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An OS FileNotFoundError for a named path prints as `no such file or directory: PATH`."""
    import agentrl.report

    def missing(run_dir: str) -> None:
        open(Path(run_dir) / "metrics.jsonl")

    monkeypatch.setattr(agentrl.report, "write_report", missing)
    assert main(["report", "/nonexistent/run"]) == 2
    assert (
        capsys.readouterr().err == "agentrl report: error: no such file or directory: /nonexistent/run/metrics.jsonl\n"
    )
