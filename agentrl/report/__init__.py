"""`agentrl report RUN_DIR`: metrics JSONL -> PNG plots and one self-contained HTML page.

Reads what the trainer writes into a run directory and tolerates what it may lack:
- `metrics.jsonl` (required): one JSON object per update; any key may be absent, and a line cut by a crash
  mid-write is skipped with a warning;
- `config.yaml` (optional): shown verbatim;
- `episodes/step_NNNNNN.jsonl` (optional): sampled episodes with per-token advantages (`EpisodeRecord` lines,
  old files too), shown as a credit heatmap (which tokens the estimator credited or blamed).

The plots live in `plots.py`, the episodes' heatmap in `heatmap.py`; this module writes the page.

Writes `RUN_DIR/report/` (or `out_dir`): one PNG per plot whose series exist, and `report.html` with the
PNGs embedded as data URIs, so the page can be moved or mailed on its own.
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentrl.core.io import atomic_write_bytes
from agentrl.report.heatmap import CSS, latest_episodes, legend, render_episode
from agentrl.report.plots import (
    PLOTS,
    load_metrics,
    parent_rows,
    plot_held_out,
    png_bytes,
    series,
)

__all__ = ["load_metrics", "parent_rows", "series", "summarize", "write_report"]  # the first three: plots.py's


# -- summary -------------------------------------------------------------------------------------------------


def summarize(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = [("updates logged", str(len(rows)))]
    if rows:
        out.append(("last step", str(rows[-1]["step"])))
    x, y = series(rows, "reward/mean")
    if y:
        best = max(range(len(y)), key=lambda i: y[i])
        out += [
            ("first reward", f"{y[0]:.4g} (step {x[0]:.0f})"),
            ("last reward", f"{y[-1]:.4g} (step {x[-1]:.0f})"),
            ("best reward", f"{y[best]:.4g} (step {x[best]:.0f})"),
        ]
    _, s = series(rows, "success_rate")
    if s:
        out.append(("success rate first / last / best", f"{s[0]:.3f} / {s[-1]:.3f} / {max(s):.3f}"))
    _, ho = series(rows, "eval/success_rate")
    if ho:
        out.append(("held-out success first / last / best", f"{ho[0]:.3f} / {ho[-1]:.3f} / {max(ho):.3f}"))
    _, cum = series(rows, "tokens/cumulative")
    _, pol = series(rows, "tokens/sampled")
    _, br = series(rows, "tokens/branch")
    if cum:
        out.append(("total tokens sampled", f"{cum[-1]:,.0f}"))
    elif pol or br:
        out.append(("total tokens sampled", f"{sum(pol) + sum(br):,.0f}"))
    if br:
        total = sum(pol) + sum(br)
        share = f" ({sum(br) / total:.0%} of all)" if total > 0 else ""
        out.append(("branch tokens (value estimation)", f"{sum(br):,.0f}{share}"))
    _, t = series(rows, "time/total")
    if t:
        out.append(("total time", f"{_duration(sum(t))} ({sum(t) / len(t):.2f} s per update)"))
    _, sk = series(rows, "skipped_steps")
    if sk and sum(sk):
        out.append(("skipped optimizer steps", f"{sum(sk):.0f}"))
    _, kl = series(rows, "kl")
    if kl:
        out.append(("last KL", f"{kl[-1]:.4g}"))
    return out


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


# -- page ----------------------------------------------------------------------------------------------------


MAX_CONFIG_BYTES = 1 << 20  # config.yaml shown on the page: a real one is a few KiB


def write_report(run_dir: str | Path, *, out_dir: Path | None = None) -> Path:
    """Write the plots and `report.html` for a run directory; return the HTML path.

    Everything is rendered in memory first, then each file is written to a temporary sibling and renamed into
    place (`atomic_write_bytes`), so a failure (a full disk, a read-only directory: an OSError naming the path)
    leaves every file whole, old or new. Raises ValueError when `run_dir` has no `metrics.jsonl`.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise ValueError(f"no metrics.jsonl in {run_dir} (looked for {metrics_path}); is this a run directory?")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"

    rows = load_metrics(metrics_path)
    images: list[tuple[str, bytes]] = []
    stale: list[str] = []
    parent = parent_rows(run_dir)
    for name, make in PLOTS.items():
        fig = (plot_held_out(rows, parent) if name == "held_out" else make(rows)) if rows else None
        if fig is None:
            stale.append(name)
        else:
            images.append((name, png_bytes(fig)))

    config_text = _config_text(run_dir / "config.yaml")
    ep_file, episodes = latest_episodes(run_dir)
    page = _page(run_dir, rows, images, config_text, ep_file, episodes)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in images:
        atomic_write_bytes(out_dir / f"{name}.png", data)
    html_path = out_dir / "report.html"
    atomic_write_bytes(html_path, page.encode("utf-8"))
    for name in stale:  # the folder never shows a plot the page does not
        (out_dir / f"{name}.png").unlink(missing_ok=True)
    return html_path


def _config_text(path: Path) -> str | None:
    """config.yaml as text for the page (its first MAX_CONFIG_BYTES, with a note when cut), None without one."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    text = data[:MAX_CONFIG_BYTES].decode("utf-8", errors="replace")
    return text + (
        f"\n... (cut: config.yaml is over {MAX_CONFIG_BYTES:,} bytes)" if len(data) > MAX_CONFIG_BYTES else ""
    )


def _page(run_dir: Path, rows, images, config_text, ep_file, episodes) -> str:
    esc = html.escape
    algo = next((e.algorithm for e in episodes if e.algorithm), None)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>agentrl report · {esc(run_dir.resolve().name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<h1>agentrl report</h1><p class="sub">{esc(str(run_dir.resolve()))}'
        + (f" · estimator {esc(algo)}" if algo else "")
        + f" · written {when}</p>",
        "<h2>Summary</h2>",
    ]
    if not rows:
        parts.append('<p class="note">metrics.jsonl holds no complete update yet.</p>')
    parts.append(
        '<table class="summary">'
        + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in summarize(rows))
        + "</table>"
    )
    if images:
        parts.append('<h2>Training curves</h2><div class="plots">')
        for name, data in images:
            b64 = base64.b64encode(data).decode("ascii")
            parts.append(f'<img alt="{esc(name)}" id="plot-{esc(name)}" src="data:image/png;base64,{b64}">')
        parts.append("</div>")
    parts.append("<h2>Per-token credit</h2>")
    if episodes:
        step = episodes[0].step
        parts.append(
            f'<p class="note">{len(episodes)} episode(s) from {esc(ep_file.name)}'
            + (f" (update {step})" if step is not None else "")
            + ", highest and lowest reward first.</p>"
        )
        parts.append(legend())
        parts += [render_episode(e) for e in episodes]
    else:
        parts.append('<p class="note">No episodes logged (episodes/step_*.jsonl; set train.log_episodes &gt; 0).</p>')
    if config_text is not None:
        parts.append(f'<h2>Config</h2><pre class="config">{esc(config_text)}</pre>')
    parts.append("</body></html>\n")
    return "\n".join(parts)
