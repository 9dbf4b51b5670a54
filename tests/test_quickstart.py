"""`make quickstart` (agentrl/quickstart.py): SFT then TRePO on ToolUse-v0, held-out evaluation in both stages,
and a report whose held-out plot carries the SFT run's curve. Run here on tiny-random with a tiny budget
(the real one, SmolLM2 for ~10 minutes, is `make quickstart`)."""

from __future__ import annotations

import json
from pathlib import Path

from agentrl import quickstart
from agentrl.report import parent_rows


def test_quickstart_runs_sft_then_rl_and_reports_both(tmp_path: Path, capsys) -> None:
    run = tmp_path / "qs"
    argv = [
        "model=tiny-random",
        f"train.run_dir={run}",
        "train.updates=1",
        "train.eval_every=1",
        "train.eval_tasks=2",
        "rollout.max_new_tokens=8",
        "rollout.groups=1",
        "rollout.group_size=2",
        "ppo.minibatch_size=2",
        "ppo.micro_batch_size=2",
    ]
    assert quickstart.main(argv) == 0
    out = capsys.readouterr().out
    assert "held-out success" in out and "base model" in out and "after SFT" in out
    sft_rows = [json.loads(line) for line in (tmp_path / "qs-sft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in sft_rows if "eval/success_rate" in r] == [0, sft_rows[-1]["step"]]
    assert (run / "report" / "held_out.png").exists()
    # the RL run's report finds the SFT run it started from, for the curve left of update 0
    assert [r["step"] for r in parent_rows(run) if "eval/success_rate" in r] == [0, sft_rows[-1]["step"]]
