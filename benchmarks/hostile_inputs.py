"""Hostile inputs: what the largest accepted input of each kind costs, and what refusing a too-large one costs.

Each measurement runs in its own Python process (wall time of the measured call, peak RSS of the process; the
same process's RSS after imports is the baseline). Writes the "Hostile inputs" section of BENCHMARKS.md.

    .venv/bin/python benchmarks/hostile_inputs.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from _common import ROOT, machine_line, write_section

# each snippet: SETUP (imports, files) then MEASURE (timed); prints nothing; the harness reports time and RSS
HARNESS = """
import json, os, resource, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
TMP = {tmp!r}
{setup}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
outcome = "accepted"
try:
{measure}
except Exception as exc:
    outcome = "refused: " + str(exc).splitlines()[0][:90]
dt = time.perf_counter() - t0
print(json.dumps({{"s": dt, "base_kib": base, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "outcome": outcome}}))
"""

WORDS = "the patient reports a dry cough and mild fever since tuesday and takes no regular medication ".split()

CASES: list[tuple[str, str, str, str]] = [
    # (input, cap, setup, measure)
    (
        "config file at the value cap (100,000 values, aliases counted as copies)",
        "1 MiB, 100,000 values, depth 100",
        "from agentrl.train.config import load_config\n"
        "open(TMP + '/big.yaml', 'w').write('env:\\n  kwargs:\\n    blob: [' + ', '.join(['0'] * 99_900) + ']\\n')",
        "    load_config(TMP + '/big.yaml')",
    ),
    (
        "YAML alias bomb (9 levels of 9 aliases) as optim.lr",
        "refused",
        "from agentrl.train.config import load_config\n"
        "lines = ['a0: &a0 [' + ','.join(['x'] * 9) + ']'] + ['a%d: &a%d [' % (i, i) + ','.join(['*a%d' % (i - 1)] * 9) + ']' for i in range(1, 9)]\n"
        "open(TMP + '/bomb.yaml', 'w').write('\\n'.join(lines) + '\\noptim:\\n  lr: *a8\\n')",
        "    load_config(TMP + '/bomb.yaml')",
    ),
    (
        "SFT dialog at the text cap for max_seq_len 4096 (~650 KB of English), tokenized",
        "4 MiB per line, depth 64; text bytes <= max_seq_len x longest vocabulary entry",
        "import random\nfrom agentrl.core.chat_format import ChatFormatter\nfrom agentrl.inference.models import load_tokenizer\n"
        "from agentrl.train.sft import demos_from_jsonl\nfmt = ChatFormatter(load_tokenizer('smollm2-135m'))\n"
        f"rng = random.Random(0); words = {WORDS!r}\n"
        "text = ' '.join(rng.choice(words) for _ in range(120_000))[:640_000]\n"
        "open(TMP + '/sft.jsonl', 'w').write(json.dumps({'messages': [{'role': 'user', 'content': text}, "
        "{'role': 'assistant', 'content': 'ok'}]}) + '\\n' + json.dumps({'messages': [{'role': 'user', 'content': 'hi'}, "
        "{'role': 'assistant', 'content': 'ok'}]}) + '\\n')",
        "    demos_from_jsonl(TMP + '/sft.jsonl', fmt)",
    ),
    (
        "SFT line of 50 MB (skipped unread; the good line loads)",
        "4 MiB per line",
        "from agentrl.core.chat_format import ChatFormatter\nfrom agentrl.inference.models import load_tokenizer\n"
        "from agentrl.train.sft import demos_from_jsonl\nfmt = ChatFormatter(load_tokenizer('smollm2-135m'))\n"
        "f = open(TMP + '/sft50.jsonl', 'w'); f.write(json.dumps({'messages': [{'role': 'user', 'content': 'x' * 50_000_000}, "
        "{'role': 'assistant', 'content': 'ok'}]}) + '\\n' + json.dumps({'messages': [{'role': 'user', 'content': 'hi'}, "
        "{'role': 'assistant', 'content': 'ok'}]}) + '\\n'); f.close()",
        "    import contextlib, io\n    with contextlib.redirect_stderr(io.StringIO()):\n"
        "        demos_from_jsonl(TMP + '/sft50.jsonl', fmt)",
    ),
    (
        "AgentClinic OSCE record near the 256 KiB cap (1,900 test results)",
        "256 KiB per public record, depth 64",
        "from public_records import osce\nfrom mock_patients.loaders import load_file\n"
        "rec = osce()\nrec['OSCE_Examination']['Test_Results']['Blood_Tests'] = {f'Marker_{i}': f'{i}.5 units/L' for i in range(1900)}\n"
        "line = json.dumps(rec); assert len(line) < 256 * 1024, len(line)\n"
        "open(TMP + '/osce.jsonl', 'w').write(line + '\\n')",
        "    load_file(TMP + '/osce.jsonl')",
    ),
    (
        "AgentClinic OSCE record of 21 MB (skipped before parsing)",
        "256 KiB per public record",
        "from public_records import osce\nfrom mock_patients.loaders import load_file\n"
        "rec = osce(History='He coughs. ' * 2_000_000)\nopen(TMP + '/osce21.jsonl', 'w').write(json.dumps(rec) + '\\n' + json.dumps(osce()) + '\\n')",
        "    import contextlib, io\n    with contextlib.redirect_stderr(io.StringIO()):\n        load_file(TMP + '/osce21.jsonl')",
    ),
    (
        "non-finite check of SmolLM2-135M's weights before a checkpoint is written",
        "every floating tensor",
        "from agentrl.core.finite import non_finite\nfrom agentrl.inference.models import load_model\n"
        "model, _ = load_model('smollm2-135m')\nstate = model.state_dict()",
        "    assert non_finite(state.items()) is None",
    ),
]


def measure(setup: str, body: str, tmp: str) -> dict:
    code = HARNESS.format(root=str(ROOT), tests=str(ROOT / "tests"), tmp=tmp, setup=setup, measure=body)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"measurement failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cap, setup, body in CASES:
            r = measure(setup, body, tmp)
            extra = (r["peak_kib"] - r["base_kib"]) / 1024
            rows.append(
                f"| {name} | {cap} | {r['outcome']} | {r['s']:.2f} | {r['peak_kib'] / 1024:.0f} | {extra:+.0f} |"
            )
            print(rows[-1], flush=True)
    body = f"""{machine_line()}
Written by `benchmarks/hostile_inputs.py`: each input in its own process; seconds of the measured call; peak RSS
of that process and its growth over the RSS after its imports and set-up (MiB).

| input | cap | outcome | seconds | peak RSS MiB | growth MiB |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Classes covered, each with tests that fail on the code before the fix (`tests/test_hostile_*.py`,
`tests/test_text_is_text.py`):
- **Data loss**: overwrite and resume act only on a marked agentrl run (`agentrl_run.json`); empty paths, `/`,
  home, the working directory, the project and their parents are refused; overwrite removes only what agentrl
  wrote; `export --merge`, reports, SFT output, world files and transcripts are written whole (temp sibling,
  then rename) and OS errors are one line naming the path.
- **Finite or nothing**: float settings must be finite; non-finite steps are skipped and counted and
  `train.max_skipped_updates` in a row stop the run; checkpoints with NaN/inf tensors are neither written nor
  loaded (tensor and file named); hand-edited LoRA adapter directories (16 kinds) are one-line errors.
- **Text is text**: contents, tool schemas, simulator prompts and SFT turns are encoded with special tokens off
  (a ToolUse prompt of 604 tokens: 4.13 ms with the plain tokenizer, 4.46 ms through `ChatFormatter` with
  clean text, 5.46 ms with control strings in it, measured by hand on this machine); case records holding chat
  control strings are refused naming the field.
- **Bounded inputs**: caps above, checked before parsing or tokenizing; depth caps; YAML aliases counted as
  copies; one bad line costs that line (SFT data, transcripts, episode records, metrics, case files).
- **Integrity of scores**: `consult evaluate` scores only the doctor's `DIAGNOSIS:` turn; diagnosis fields must
  be one text of at most 200 characters; misspellings (edit distance 1 for 7-11 letters, 2 from 12) and ICD-10
  codes of the diagnosis are redacted.
- **Settings that cannot learn**: GRPO and RLOO refuse `rollout.group_size=1`; `lora.r` is bounded by the
  targeted layers (and 8,192).
"""
    write_section("Hostile inputs: caps and the cost of the largest accepted inputs", body)


if __name__ == "__main__":
    main()
