"""benchmarks/consult_public_cases.py on small records written here: loaded/total per file, leaks, and the
"no files" message that says which files to put where."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from public_records import mediq, nejm, osce, osce_empty_symptoms, write_jsonl

_SPEC = importlib.util.spec_from_file_location(
    "consult_public_cases", Path(__file__).resolve().parent.parent / "benchmarks" / "consult_public_cases.py"
)
script = importlib.util.module_from_spec(_SPEC)
sys.modules["consult_public_cases"] = script  # dataclasses look their module up
_SPEC.loader.exec_module(script)  # type: ignore[union-attr]


def test_figures_per_file(tmp_path, capsys):
    write_jsonl(tmp_path / "agentclinic_medqa_extended.jsonl", [osce(), osce_empty_symptoms(), "{not json"])
    write_jsonl(tmp_path / "agentclinic_nejm.jsonl", [nejm()])
    write_jsonl(
        tmp_path / "all_dev_good.jsonl",
        [
            mediq(1, "Which of the following is the most likely diagnosis?", "Gonococcal arthritis"),
            mediq(2, "Which of the following is the most appropriate next step in management?", "Ceftriaxone"),
        ],
    )
    assert script.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "agentclinic_medqa_extended.jsonl: loaded 1/3" in out and "Symptoms.Primary_Symptom" in out
    assert "agentclinic_nejm.jsonl: loaded 1/1" in out
    assert "all_dev_good.jsonl: loaded 1/2; 1 not diagnosis questions (next_step 1)" in out
    assert out.count("leaks 0 in ") == 3
    assert "fact recall" in out and "polarity errors: cue 0, reply 0" in out
    assert "not in " in out and "agentclinic_medqa.jsonl" in out  # the expected files that are missing


def test_leaks_are_counted(tmp_path, capsys):
    # a record whose history names its own diagnosis: the patient's filter must keep it out of every reply
    rec = osce("Myasthenia gravis", History="She was told she has myasthenia gravis. Her eyelids droop.")
    write_jsonl(tmp_path / "ac.jsonl", [rec])
    st = script.check_file(tmp_path / "ac.jsonl")
    assert (st.loaded, st.total) == (1, 1) and st.replies > 10
    assert st.leaks == []
    assert "leaks 0 in" in script.render(st)


def test_no_files_message(tmp_path, capsys):
    assert script.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"no case files (*.jsonl, *.json) found in {tmp_path}" in out
    for name in (
        "agentclinic_medqa.jsonl",
        "agentclinic_nejm_extended.jsonl",
        "all_craft_md.jsonl",
        "all_dev_good.jsonl",
    ):
        assert name in out
    assert "github.com/SamuelSchmidgall/AgentClinic" in out and "github.com/stellalisy/mediQ" in out


def test_bad_usage(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert script.main([str(f)]) == 2
