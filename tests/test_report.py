"""`agentrl report`: plots from a synthetic run directory, the self-contained page, the credit heatmap."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from agentrl.report import load_metrics, write_report
from agentrl.report.heatmap import adv_colour

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics_rows(n: int = 12, *, branch: bool = True) -> list[dict]:
    rows, cum = [], 0
    for s in range(1, n + 1):
        sampled, extra = 100 + 5 * s, (40 if branch else 0)
        cum += sampled + extra
        row = {
            "step": s,
            "reward/mean": 0.1 * s,
            "reward/std": 0.05,
            "success_rate": min(1.0, 0.08 * s),
            "kl": 0.001 * s,
            "clip_fraction": 0.02,
            "entropy": 1.5 - 0.05 * s,
            "grad_norm": 0.7,
            "tokens/sampled": float(sampled),
            "tokens/cumulative": float(cum),
            "time/collect": 1.0,
            "time/update": 0.5,
            "time/total": 1.5 + (0.3 if branch else 0.0),
            "adv/mean": 0.0,
            "adv/std": 1.0,
        }
        if branch:
            row["tokens/branch"] = float(extra)
            row["time/branch"] = 0.3
        rows.append(row)
    rows[3]["kl"] = "nan"  # how MetricsLogger writes a non-finite value
    return rows


def _episode(uid: int, reward: float, advs: list[float]) -> dict:
    # prompt (env) tokens, then agent tokens carrying `advs`, then an env reply
    tokens = [
        "<|im_start|>",
        "user\n",
        "Say <script>alert(1)</script> & more",
        "<|im_end|>\n",
        "Hello",
        " <b>",
        "\n\nworld",
        "&amp;",
        "<|im_end|>",
        "\n",
        "env says",
        " ok",
    ]
    mask = [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    adv = [0.0] * 4 + advs + [0.0] * 3
    assert len(adv) == len(tokens) == len(mask)
    return {
        "step": 12,
        "uid": uid,
        "reward": reward,
        "tokens": tokens,
        "action_mask": mask,
        "advantages": adv,
        "algorithm": "trepo",
    }


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    lines = [json.dumps(r) for r in _metrics_rows()]
    lines.append('{"step": 13, "reward/mean": 0.9, "kl"')  # the trainer was killed mid-write
    (d / "metrics.jsonl").write_text("\n".join(lines))
    (d / "config.yaml").write_text("algorithm:\n  name: trepo\nnote: '<script>x</script>'\n")
    ep = d / "episodes"
    ep.mkdir()
    (ep / "step_000002.jsonl").write_text(json.dumps(_episode(99, 5.0, [1.0] * 5)) + "\n")
    eps = [
        _episode(1, 0.5, [0.8, -0.4, 0.0, 0.2, 0.1]),
        _episode(2, 1.0, [0.5, 0.5, 0.5, 0.5, 0.5]),
        _episode(3, -1.0, [-0.3, -0.6, -0.6, 0.0, 0.1]),
        _episode(4, 0.0, [0.0] * 5),
        _episode(5, 0.7, [0.1] * 5),
    ]
    (ep / "step_000012.jsonl").write_text("\n".join(json.dumps(e) for e in eps) + "\n")
    return d


def _token_spans(page: str) -> list[str]:
    return re.findall(r'<span class="t [^"]*"[^>]*>', page)


def test_report_plots_page_and_heatmap(run_dir: Path) -> None:
    with pytest.warns(UserWarning, match="last line"):
        out = write_report(run_dir)
    assert out == run_dir / "report" / "report.html"
    pngs = {p.stem: p for p in (run_dir / "report").glob("*.png")}
    assert {"reward", "reward_vs_tokens", "kl", "clip_fraction", "tokens", "time", "optimization"} <= set(pngs)
    for p in pngs.values():
        assert p.read_bytes()[:8] == PNG_MAGIC
    assert not list((run_dir / "report").glob("*.tmp"))

    page = out.read_text()
    # every plot embedded as a data URI holding the same PNG as the file
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == len(pngs)
    assert all(base64.b64decode(u)[:8] == PNG_MAGIC for u in uris)
    assert base64.b64decode(uris[0]) == pngs["reward"].read_bytes()
    assert "file:" not in page and 'src="reward.png"' not in page

    # summary: 12 complete updates (the cut line skipped), first/last/best reward, tokens, time
    assert re.search(r"updates logged</td><td>12<", page)
    assert "first reward</td><td>0.1 (step 1)" in page
    assert "best reward</td><td>1.2 (step 12)" in page
    assert "total tokens sampled</td><td>" + f"{sum(100 + 5 * s + 40 for s in range(1, 13)):,}" in page
    assert "total time" in page

    # nothing from tokens or config reaches the page unescaped
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; more" not in page  # no double escaping
    assert "Say &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "&amp;amp;" in page  # the literal token "&amp;" shown as typed
    assert "&lt;script&gt;x&lt;/script&gt;" in page  # config shown, escaped
    assert "↵</span>\n" in page  # newlines visible and still breaking the line

    # latest step file only, 4 episodes, highest then lowest reward first
    assert "step_000012.jsonl" in page and "uid 99" not in page
    order = [int(u) for u in re.findall(r"<h3>uid (\d+)", page)]
    assert order == [2, 3, 5, 4]  # rewards 1.0, -1.0, 0.7, 0.0
    spans = _token_spans(page)
    assert len(spans) == 4 * 12  # one span per token
    assert sum('class="t e"' in s for s in spans) == 4 * 7
    # episode 3 (second shown): token 4 has advantage -0.3, token 8 +0.1
    ep3 = spans[12:24]
    neg, pos, zero = ep3[4], ep3[8], ep3[7]
    assert 'class="t a neg"' in neg and "-0.3" in neg
    assert 'class="t a pos"' in pos and "+0.1" in pos
    assert 'class="t a zero"' in zero and "background:rgb(255,255,255)" in zero
    rgb = lambda s: tuple(int(c) for c in re.search(r"background:rgb\((\d+),(\d+),(\d+)\)", s).groups())  # noqa: E731
    assert rgb(neg)[0] > rgb(neg)[1]  # red
    assert rgb(pos)[1] > rgb(pos)[0]  # green
    # scaled by the episode's max |adv| (0.6): -0.6 is full red, -0.3 is half way to white
    assert rgb(ep3[5]) == (215, 48, 39)
    assert rgb(neg) == adv_colour(-0.3, 0.6) == (235, 152, 147)
    assert "legend" in page and "env / prompt token" in page


def test_absent_series_are_skipped(tmp_path: Path) -> None:
    rows = _metrics_rows(5, branch=False)
    for r in rows:
        for k in ("kl", "clip_fraction", "tokens/cumulative", "entropy", "grad_norm", "adv/std", "reward/std"):
            r.pop(k, None)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report"
    report.mkdir()
    (report / "kl.png").write_bytes(PNG_MAGIC)  # a stale plot from an earlier report
    out = write_report(tmp_path)
    names = {p.stem for p in report.glob("*.png")}
    assert names == {"reward", "tokens", "time"}
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3
    assert 'id="plot-kl"' not in page and "No episodes logged" in page
    assert "branch tokens" not in page


def test_out_dir_and_empty_metrics(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("")
    out = write_report(tmp_path, out_dir=tmp_path / "elsewhere")
    assert out == tmp_path / "elsewhere" / "report.html"
    assert "no complete update" in out.read_text()
    assert not list((tmp_path / "elsewhere").glob("*.png"))


def test_missing_metrics_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        write_report(tmp_path)
    with pytest.raises(ValueError, match="metrics.jsonl"):
        write_report(tmp_path / "does-not-exist")


def test_load_metrics_tolerates_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "metrics.jsonl"
    p.write_text(
        '{"step": 1, "kl": "nan", "reward/mean": 1}\nnot json\n[1, 2]\n{"step": 2}\n{"step": 1, "reward/mean": 3}\n{"ste'
    )
    with pytest.warns(UserWarning) as rec:
        rows = load_metrics(p)
    assert len(rec) == 3
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["reward/mean"] == 3.0  # a re-logged step (resume) keeps its last row


def test_old_and_new_episode_files_both_render(run_dir: Path) -> None:
    """The fixture's step files are the trainer's pre-`EpisodeRecord` lines; a newer file mixes an
    `EpisodeRecord` written by the trainer, a rollout line without a per-token view and junk."""
    from agentrl.core.records import EpisodeRecord
    from agentrl.core.types import Episode, Turn

    class Tok:
        def decode(self, ids: list[int]) -> str:
            return f"tok{ids[0]}"

    ep = Episode(prompt_ids=[1, 2], turns=[Turn([3, 4], [-0.1, -0.2], "hi", "stop", 2)], reward=0.25, uid=7)
    new = EpisodeRecord.from_episode(ep, Tok(), advantages=[0.0, 0.0, 0.5, -0.5], step=13, algorithm="rloo")
    rollout = EpisodeRecord.from_episode(ep, env="agentrl/CreditChain-v0", model="tiny-random")
    lines = [new.to_json(), rollout.to_json(), "[1]", json.dumps({**_episode(8, 0.1, [0.1] * 5), "future": {"x": 1}})]
    (run_dir / "episodes" / "step_000013.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as rec:
        page = write_report(run_dir).read_text()
    msgs = [str(w.message) for w in rec]
    assert any("line 2: it has no per-token view" in m for m in msgs) and any("line 3:" in m for m in msgs)
    assert "step_000013.jsonl" in page and "(update 13)" in page and "estimator rloo" in page
    assert [int(u) for u in re.findall(r"<h3>uid (\d+)", page)] == [7, 8]
    assert "tok3" in page and 'data-adv="-0.5"' in page

    (run_dir / "episodes" / "step_000013.jsonl").unlink()  # the old file alone still renders as before
    with pytest.warns(UserWarning, match="last line"):
        page = write_report(run_dir).read_text()
    assert [int(u) for u in re.findall(r"<h3>uid (\d+)", page)] == [2, 3, 5, 4]
