"""Hostile run directories and outputs (issue 27): only an agentrl run is ever cleared or resumed, dangerous
paths are refused, runs are marked running/finished, export is all or nothing, OS errors are one line.

Every test that names a real system path (/, the home directory, the working directory, the project) guards the
filesystem: deleting anything outside the test's tmp_path fails the test instead, and loading a model (which
would come before clearing in the old code) fails it too.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from run_helpers import cli, run_until_killed

import agentrl
from agentrl.cli import main
from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer

MARKER = "agentrl_run.json"  # the run marker (agentrl.train.run_dir.MARKER), spelled out: the file name is the contract

CREDIT = "agentrl/CreditChain-v0"
TRAIN = [
    "train",
    "model=tiny-random",
    "env.kwargs.turns=2",
    "algorithm.name=grpo",
    "rollout.groups=1",
    "rollout.group_size=2",
    "rollout.max_new_tokens=4",
    "rollout.constrained=true",
    "ppo.minibatch_size=2",
    "ppo.micro_batch_size=2",
    "train.log_episodes=1",
]
SFT = [
    "sft",
    "--from",
    "scripted:gold",
    "--env",
    CREDIT,
    "--env-kwargs",
    '{"turns": 2}',
    "--episodes",
    "4",
    "--model",
    "tiny-random",
    "--epochs",
    "1",
    "--batch-size",
    "4",
]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (directories as None), with file bytes: compared to prove nothing changed."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


_cli = cli


def _one_line(rc: int, err: str) -> str:
    assert rc == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing outside tmp_path may be deleted and no model may load; cwd is tmp_path/work, HOME stays real."""
    inside = tmp_path.resolve()

    def guard(real):
        def check(path, *args, **kwargs):
            if not Path(os.path.abspath(os.fspath(path))).resolve().is_relative_to(inside):
                raise AssertionError(f"tried to delete {path}, outside the test's directory")
            return real(path, *args, **kwargs)

        return check

    monkeypatch.setattr(shutil, "rmtree", guard(shutil.rmtree))
    for name in ("unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    monkeypatch.setattr(Path, "unlink", guard(Path.unlink))
    monkeypatch.setattr(Path, "rmdir", guard(Path.rmdir))

    import agentrl.inference.models
    import agentrl.train.engine

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the run directory was validated")

    for mod in (agentrl.inference.models, agentrl.train.engine):  # the engine loads for train and sft
        monkeypatch.setattr(mod, "load_model", refuse)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(work)
    return tmp_path


def _project(tmp: Path) -> Path:
    """A user's project: what overwrite once emptied."""
    d = tmp / "project"
    (d / ".git").mkdir(parents=True)
    (d / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (d / "src").mkdir()
    (d / "src" / "main.py").write_text("print('hi')\n")
    (d / "thesis.txt").write_text("chapter 1\n" * 100)
    return d


# -- overwrite and resume act only on runs ------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["train.overwrite=true", "train.resume=true"])
def test_train_refuses_to_clear_or_resume_a_directory_that_is_not_a_run(guarded: Path, flag: str, capsys) -> None:
    proj = _project(guarded)
    before = _snapshot(proj)
    err = _one_line(*_cli([*TRAIN, f"train.run_dir={proj}", flag], capsys))
    assert f"train.run_dir {proj} is not an agentrl run (no {MARKER}; it holds .git/, src/, thesis.txt)" in err
    assert _snapshot(proj) == before


def test_sft_overwrite_refuses_a_directory_that_is_not_a_run(guarded: Path, capsys) -> None:
    proj = _project(guarded)
    before = _snapshot(proj)
    err = _one_line(*_cli([*SFT, "--out", str(proj), "--overwrite"], capsys))
    assert f"--out {proj} is not an agentrl run" in err and "--overwrite clears only a run agentrl made" in err
    assert _snapshot(proj) == before


def _places(tmp: Path) -> list[tuple[str, str]]:
    """(path as given, what the message calls it)."""
    project = Path(agentrl.__file__).resolve().parents[1]
    return [
        ("/", "the filesystem root"),
        (str(Path.home()), "the home directory"),
        (".", "the working directory"),
        (str(tmp / "work"), "the working directory"),
        ("..", "a parent of the working directory"),
        (str(project), "the agentrl project"),
    ]


@pytest.mark.parametrize("flag", ["train.overwrite=true", "train.resume=true"])
def test_train_refuses_system_home_and_working_directories(guarded: Path, flag: str, capsys) -> None:
    for path, what in _places(guarded):
        err = _one_line(*_cli([*TRAIN, f"train.run_dir={path}", flag], capsys))
        assert f"train.run_dir {path} is {what}" in err or _home_above_cwd(path), err
        assert f"{flag} acts only on a run's own directory" in err, err
    assert (guarded / "work" / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_sft_refuses_system_home_and_working_directories(guarded: Path, flag: str, capsys) -> None:
    for path, what in _places(guarded):
        err = _one_line(*_cli([*SFT, "--out", path, flag], capsys))
        assert f"--out {path} is {what}" in err or _home_above_cwd(path), err
    assert (guarded / "work" / "notes.txt").read_text() == "mine\n"


def _home_above_cwd(path: str) -> bool:
    """Where tmp_path lies under the home directory, home is named as a parent of the working directory."""
    return path == str(Path.home()) and Path.cwd().resolve().is_relative_to(Path.home().resolve())


def test_even_a_marked_working_directory_is_never_cleared(guarded: Path, capsys) -> None:
    (guarded / "work" / MARKER).write_text('{"kind": "train", "status": "finished"}\n')
    err = _one_line(*_cli([*TRAIN, "train.run_dir=.", "train.overwrite=true"], capsys))
    assert "is the working directory" in err
    assert (guarded / "work" / "notes.txt").exists()


@pytest.mark.parametrize(
    "argv",
    [
        [*TRAIN, "train.run_dir=", "train.overwrite=true"],
        [*TRAIN, "train.run_dir="],
        [*SFT, "--out", "", "--overwrite"],
        [*SFT, "--out", ""],
    ],
)
def test_an_empty_run_dir_is_refused_not_taken_as_the_working_directory(guarded: Path, argv: list[str], capsys) -> None:
    err = _one_line(*_cli(argv, capsys))
    assert "is empty; give the run's own directory" in err
    assert (guarded / "work" / "notes.txt").read_text() == "mine\n"


def test_a_symlinked_run_dir_is_refused_for_overwrite(guarded: Path, capsys) -> None:
    target = guarded / "target"
    target.mkdir()
    (target / MARKER).write_text('{"kind": "sft", "status": "finished"}\n')
    (target / "metrics.jsonl").write_text('{"step": 1}\n')
    link = guarded / "link"
    link.symlink_to(target)
    before = _snapshot(target)
    for argv in ([*SFT, "--out", str(link), "--overwrite"], [*TRAIN, f"train.run_dir={link}", "train.overwrite=true"]):
        err = _one_line(*_cli(argv, capsys))
        assert f"{link} is a symbolic link (to {target})" in err
    assert _snapshot(target) == before and link.is_symlink()


def test_resume_on_a_non_run_leaves_its_metrics_and_episodes_untouched(tmp_path: Path, capsys) -> None:
    """The old code loaded the model, rewrote metrics.jsonl and deleted episodes/step_000007.jsonl (exit 0)."""
    d = tmp_path / "someone_elses"
    (d / "episodes").mkdir(parents=True)
    (d / "metrics.jsonl").write_text('{"step": 3, "mine": true}\n{"step": 9}\nnot json\n')
    (d / "episodes" / "step_000007.jsonl").write_text('{"precious": 1}\n')
    before = _snapshot(d)
    err = _one_line(*_cli([*TRAIN, f"train.run_dir={d}", "train.resume=true"], capsys))
    assert "is not an agentrl run" in err and "train.resume=true continues only a run agentrl started" in err
    assert _snapshot(d) == before


# -- runs: marked, cleared only of what the kit wrote, resumed by kind ------------------------------------------------
def _train(run: Path, *extra: str, kill_after: int | None = None) -> Trainer:
    cfg = load_config(None, [*TRAIN[1:], f"train.run_dir={run}", "train.checkpoint_every=1", *extra])
    return run_until_killed(Trainer(cfg, console=False), kill_after)


def test_a_run_is_marked_running_then_finished_and_a_killed_one_stays_unfinished(tmp_path: Path) -> None:
    from agentrl.train.run_dir import read_marker, run_status, unfinished_warning

    run = tmp_path / "run"
    _train(run, "train.updates=3", kill_after=2)
    marker = read_marker(run)
    assert marker is not None and marker["kind"] == "train" and marker["status"] == "running"
    assert marker["agentrl_version"] == agentrl.__version__ and "created" in marker
    st = run_status(run)
    assert st is not None and st.finished is False and st.latest_step == 2
    msg = unfinished_warning(run, run / "checkpoints" / "step_000002")
    assert msg is not None and "did not finish" in msg and "step 2" in msg
    _train(run, "train.updates=3", "train.resume=true")
    marker = read_marker(run)
    assert marker["status"] == "finished" and marker["step"] == 3 and marker["resumes"] == 1
    assert unfinished_warning(run, run / "checkpoints" / "step_000003") is None


def test_overwrite_clears_only_what_agentrl_wrote(tmp_path: Path) -> None:
    from agentrl.train.run_dir import read_marker

    run = tmp_path / "run"
    _train(run, "train.updates=2")
    (run / "my_notes.txt").write_text("keep me\n")
    (run / "analysis").mkdir()
    (run / "analysis" / "plot.py").write_text("x = 1\n")
    _train(run, "train.updates=1", "train.overwrite=true")
    assert (run / "my_notes.txt").read_text() == "keep me\n" and (run / "analysis" / "plot.py").exists()
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000001"]
    assert read_marker(run)["status"] == "finished"


def test_a_run_from_before_the_marker_is_recognised_and_adopted_on_resume(tmp_path: Path) -> None:
    from agentrl.train.run_dir import read_marker, run_status

    run = tmp_path / "run"
    _train(run, "train.updates=2", kill_after=1)
    (run / MARKER).unlink()  # as written by an agentrl without markers: config.yaml + checkpoints/step_N/manifest.json
    st = run_status(run)
    assert st is not None and st.kind == "train" and st.finished is None and not st.marked
    t = _train(run, "train.updates=2", "train.resume=true")
    assert t.step == 2
    marker = read_marker(run)
    assert marker["status"] == "finished" and marker["adopted"] is True


def test_resume_refuses_a_run_of_the_other_kind(tmp_path: Path, capsys) -> None:
    run = tmp_path / "sft"
    run.mkdir()
    (run / MARKER).write_text('{"kind": "sft", "status": "finished"}\n')
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    err = _one_line(*_cli([*TRAIN, f"train.run_dir={run}", "train.resume=true"], capsys))
    assert "holds an sft run, not a train run; resume it with agentrl sft --resume" in err


def test_a_damaged_marker_is_refused_with_one_line(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text("[" * 100_000)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    err = _one_line(*_cli([*TRAIN, f"train.run_dir={run}", "train.overwrite=true"], capsys))
    assert f"{run / MARKER} is unreadable" in err
    assert (run / "metrics.jsonl").exists()


# -- export: all or nothing -----------------------------------------------------------------------------------------
def _safetensors_full_disk() -> Exception:
    from safetensors import SafetensorError

    return SafetensorError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
    )


@pytest.mark.parametrize(
    "failure",
    [lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), _safetensors_full_disk],
    ids=["oserror", "safetensors-error"],
)
def test_export_that_hits_a_full_disk_leaves_no_out_and_can_be_redone(
    tmp_path: Path, monkeypatch, capsys, failure
) -> None:
    import transformers.modeling_utils as mu

    from agentrl.inference.models import load_model

    run = tmp_path / "run"
    _train(run, "train.updates=1")
    out = tmp_path / "exported"
    real_save = mu.safe_save_file

    def full_disk(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half a file")
        raise failure()

    monkeypatch.setattr(mu, "safe_save_file", full_disk)
    err = _one_line(*_cli(["export", str(run), str(out), "--merge"], capsys))
    assert f"export to {out}: " in err and "no space left on device" in err.lower()
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name != "run"] == []  # no OUT, no temp dir
    monkeypatch.setattr(mu, "safe_save_file", real_save)
    rc, err = _cli(["export", str(run), str(out), "--merge"], capsys)
    assert rc == 0, err
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    model, _ = load_model(str(out))
    assert sum(p.numel() for p in model.parameters()) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "run"]


# -- OS errors are one line naming the path -------------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555; see the _as_root test below")
def test_sft_out_in_a_read_only_directory_is_one_line_before_the_model_loads(guarded: Path, capsys) -> None:
    ro = guarded / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        err = _one_line(*_cli([*SFT, "--out", str(ro / "sft")], capsys))
    finally:
        ro.chmod(0o755)
    assert f"--out {ro / 'sft'}: {ro} is not writable" in err


def test_sft_out_in_a_read_only_directory_simulated_by_patching_access_as_root(
    guarded: Path, monkeypatch, capsys
) -> None:
    """Root writes through chmod 0o555, so the read-only mount is simulated: access(2) says no (as it does on a
    read-only filesystem, even to root)."""
    ro = guarded / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real_access(p, mode, *a, **k)
    )
    for argv, option in (
        ([*SFT, "--out", str(ro / "sft")], "--out"),
        ([*TRAIN, f"train.run_dir={ro / 'run'}"], "train.run_dir"),
    ):
        err = _one_line(*_cli(argv, capsys))
        assert f"{option} {ro / ('sft' if option == '--out' else 'run')}: {ro} is not writable" in err


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_sft_out_that_fails_to_write_simulated_by_patching_mkstemp_is_one_line(
    tmp_path: Path, monkeypatch, capsys, code: int
) -> None:
    """A read-only filesystem or a full disk at the first write into --out (simulated: root ignores chmod)."""
    import agentrl.core.io as io

    out = tmp_path / "sft"
    real_mkstemp = io.tempfile.mkstemp

    def failing(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == out:
            raise OSError(code, os.strerror(code), str(Path(dir) / "x.tmp"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(io.tempfile, "mkstemp", failing)
    err = _one_line(*_cli([*SFT, "--out", str(out)], capsys))
    assert f"{os.strerror(code).lower()}: {out / MARKER}" in err


# -- the command line ----------------------------------------------------------------------------------------------
def test_nproc_may_come_before_the_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import agentrl.cli as cli

    seen = {}

    def fake_torchrun(args):
        seen.update(config=args.config, overrides=list(args.overrides), nproc=args.nproc, report=args.report)
        raise SystemExit(0)

    monkeypatch.setattr(cli, "_exec_torchrun", fake_torchrun)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = [
        "train",
        "model=tiny-random",
        "--nproc",
        "2",
        "train.parallel=ddp",
        "--report",
        f"train.run_dir={tmp_path / 'r'}",
    ]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert seen == {
        "config": "model=tiny-random",
        "overrides": ["train.parallel=ddp", f"train.run_dir={tmp_path / 'r'}"],
        "nproc": 2,
        "report": True,
    }


def test_a_full_disk_while_training_is_one_line_naming_the_run_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    """A write that hits a full disk has no file name (f.write): the message names the run directory instead."""
    from agentrl.train.metrics import MetricsLogger

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(MetricsLogger, "log", full)
    run = tmp_path / "run"
    err = _one_line(*_cli([*TRAIN, "train.updates=1", f"train.run_dir={run}"], capsys))
    assert err == f"agentrl train: error: train.run_dir {run}: no space left on device\n"
    assert read_status(run) == "running"  # not finished: the marker says so


def read_status(run: Path) -> str:
    return json.loads((run / MARKER).read_text())["status"]


def test_a_report_that_cannot_be_written_is_one_line_and_keeps_the_old_page(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import agentrl.core.io as io

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.5}\n{"step": 2, "reward/mean": 0.7}\n')
    rc, err = _cli(["report", str(run)], capsys)
    assert rc == 0, err
    page = (run / "report" / "report.html").read_bytes()
    real_mkstemp = io.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == run / "report":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(Path(dir) / "x.tmp"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(io.tempfile, "mkstemp", read_only)
    err = _one_line(*_cli(["report", str(run)], capsys))
    assert "read-only file system: " + str(run / "report") in err
    assert (run / "report" / "report.html").read_bytes() == page
    assert sorted(p.name for p in (run / "report").iterdir()) == ["report.html", "reward.png"]
