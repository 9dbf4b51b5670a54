"""`agentrl report RUN_DIR`: metrics JSONL -> PNG plots and one self-contained HTML page.

Reads what the trainer writes into a run directory and tolerates what it may lack:
- `metrics.jsonl` (required): one JSON object per update; any key may be absent, and a line cut by a crash
  mid-write is skipped with a warning;
- `config.yaml` (optional): shown verbatim;
- `episodes/step_NNNNNN.jsonl` (optional): sampled episodes with per-token advantages, shown as a credit
  heatmap (which tokens the estimator credited or blamed).

Writes `RUN_DIR/report/` (or `out_dir`): one PNG per plot whose series exist, and `report.html` with the
PNGs embedded as data URIs, so the page can be moved or mailed on its own.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from agentrl.core.io import atomic_write_bytes

# The plots this module may write, in page order; a stale one from an earlier report is removed when its
# series is gone, so the folder never shows a plot the page does not.
PLOT_NAMES = ("held_out", "reward", "reward_vs_tokens", "sft_loss", "kl", "clip_fraction", "tokens", "time", "optimization")
MAX_EPISODES = 4
# A prompt (system message with tool schemas) can run to thousands of tokens; fold it when it is this long
# so the agent's turns are on screen. Its tokens are still rendered, inside a <details>.
FOLD_PROMPT_TOKENS = 200

# Diverging scale, ColorBrewer RdYlGn ends: red = blamed (negative advantage), green = credited.
NEG_RGB = (215, 48, 39)
POS_RGB = (26, 152, 80)
ENV_RGB = (221, 221, 221)


# -- reading -------------------------------------------------------------------------------------------------


def load_metrics(path: str | Path) -> list[dict[str, Any]]:
    """One dict per update, sorted by step; unreadable lines are skipped with a warning.

    Values the logger wrote as strings because JSON has no NaN/inf ("nan", "inf") become floats again.
    A step logged twice (a resume that re-ran it) keeps its last row.
    """
    path = Path(path)
    rows: dict[int, dict[str, Any]] = {}
    lines = path.read_text(errors="replace").splitlines()
    last_step = 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            where = "last line (cut mid-write?)" if i == len(lines) else f"line {i}"
            warnings.warn(f"{path}: skipping unreadable {where}: {exc}", stacklevel=2)
            continue
        if not isinstance(row, dict):
            warnings.warn(f"{path}: skipping line {i}: not a JSON object", stacklevel=2)
            continue
        row = {k: _number(v) for k, v in row.items()}
        step = row.get("step")
        step = int(step) if _finite(step) else last_step + 1
        row["step"] = step
        last_step = step
        rows[step] = row
    return [rows[s] for s in sorted(rows)]


def _number(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(v)
    return v


def series(rows: list[dict[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, ys) over the rows where both `x` and `key` are finite numbers."""
    xs, ys = [], []
    for r in rows:
        a, b = r.get(x), r.get(key)
        if _finite(a) and _finite(b):
            xs.append(float(a))
            ys.append(float(b))
    return xs, ys


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class EpisodeView:
    step: int | None
    uid: Any
    reward: float | None
    algorithm: str | None
    tokens: list[str]
    action_mask: list[int]
    advantages: list[float]


def latest_episodes(run_dir: Path, limit: int = MAX_EPISODES) -> tuple[Path | None, list[EpisodeView]]:
    """Episodes of the latest readable `episodes/step_*.jsonl`: highest reward, lowest, next highest, ..."""
    files = []
    for p in (run_dir / "episodes").glob("step_*.jsonl"):
        m = re.fullmatch(r"step_(\d+)\.jsonl", p.name)
        if m:
            files.append((int(m.group(1)), p))
    for _, p in sorted(files, reverse=True):  # numeric order: step_1000000 sorts after step_999999
        eps = _read_episodes(p)
        if eps:
            return p, _pick(eps, limit)
    return None, []


def _read_episodes(path: Path) -> list[EpisodeView]:
    out = []
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            tokens = [str(t) for t in d["tokens"]]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            warnings.warn(f"{path}: skipping episode on line {i}: {exc!r}", stacklevel=3)
            continue
        mask = [1 if m else 0 for m in (d.get("action_mask") or [])]
        adv = [float(a) if _finite(_number(a)) else 0.0 for a in (d.get("advantages") or [])]
        n = len(tokens)
        if len(mask) != n or (adv and len(adv) != n):
            warnings.warn(
                f"{path}: episode on line {i}: {n} tokens but {len(mask)} mask and {len(adv)} advantage entries; "
                "missing entries shown as env tokens / zero", stacklevel=3,
            )
        mask = (mask + [0] * n)[:n]
        adv = (adv + [0.0] * n)[:n]
        reward = _number(d.get("reward"))
        out.append(EpisodeView(
            step=d.get("step") if isinstance(d.get("step"), int) else None, uid=d.get("uid"),
            reward=float(reward) if _finite(reward) else None,
            algorithm=str(d["algorithm"]) if d.get("algorithm") is not None else None,
            tokens=tokens, action_mask=mask, advantages=adv,
        ))
    return out


def _pick(eps: list[EpisodeView], limit: int) -> list[EpisodeView]:
    order = sorted(eps, key=lambda e: -math.inf if e.reward is None else e.reward)
    picked: list[EpisodeView] = []
    lo, hi = 0, len(order) - 1
    while lo <= hi and len(picked) < limit:
        picked.append(order[hi])
        hi -= 1
        if lo <= hi and len(picked) < limit:
            picked.append(order[lo])
            lo += 1
    return picked


# -- plots ---------------------------------------------------------------------------------------------------


def _new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (7.0, 3.6)):
    # The object API with an explicit Agg canvas: no pyplot, no global backend switch, no GUI, thread-safe
    # enough for a report written at the end of a training run.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _style(ax, xlabel: str, ylabel: str, *, integer_x: bool = True) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_axisbelow(True)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _smooth(ys: list[float]) -> list[float] | None:
    """A trailing moving average once there are enough points for noise to hide the trend."""
    if len(ys) < 10:
        return None
    w = max(2, len(ys) // 20)
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= w:
            acc -= ys[i - w]
        out.append(acc / min(i + 1, w))
    return out


def plot_held_out(rows, parent: list[dict[str, Any]] | None = None):
    """`train.eval_every` / `agentrl sft --eval-every`: greedy success and reward on held-out tasks, from update 0
    (the starting model) on. When the run started from another run that evaluated too (an SFT run), that run's
    curve is drawn left of 0 (its steps shifted so its last step is 0: the same weights), so the plot shows the
    whole path, base -> SFT -> RL. The report opens with it."""
    x, y = series(rows, "eval/success_rate")
    px, py = series(parent or [], "eval/success_rate")
    if not y and not py:
        return None
    fig, ax = _new_figure()
    ax = ax[0][0]
    if py:
        shift = px[-1]
        ax.plot([v - shift for v in px], py, color="C1", lw=1.6, marker="o", ms=4, label="held-out success (run it started from)")
        ax.axvline(0, color="grey", lw=0.8, ls=":")
    if y:
        if py and x[0] > 0:  # no update-0 evaluation (eval_before_train off): the run starts where its parent ended
            x, y = [0.0] + x, [py[-1]] + y
        ax.plot(x, y, color="C2", lw=1.6, marker="o", ms=4, label="held-out success rate")
    rx, ry = series(rows, "eval/reward")
    if ry:
        ax.plot(rx, ry, color="C0", lw=1.0, ls="--", marker="s", ms=3, label="held-out mean reward")
    _style(ax, "update (0 = start of this run" + ("; left of 0: the run it started from, in its steps)" if py else ")"), "held-out")
    ax.legend(fontsize=8, loc="best")
    _, n = series(rows or parent or [], "eval/tasks")
    ax.set_title(f"Held-out evaluation (greedy{f', {n[-1]:.0f} tasks' if n else ''})")
    return fig


def parent_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Metrics of the run this run's model came from (config `model:` or `sft.model:` naming a run directory)."""
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    model = cfg.get("model") or (cfg.get("sft") or {}).get("model")
    path = Path(str(model)) / "metrics.jsonl" if model else None
    if path is None or not path.is_file() or path.resolve() == (run_dir / "metrics.jsonl").resolve():
        return []
    return load_metrics(path)


def plot_reward(rows):
    x, y = series(rows, "reward/mean")
    sx, sy = series(rows, "success_rate")
    evals = [k for k in sorted({k for r in rows for k in r}) if k.startswith("eval/") and "reward" in k]
    if not y and not sy and not any(series(rows, k)[1] for k in evals):
        return None
    fig, ax = _new_figure()
    ax = ax[0][0]
    handles = []
    if y:
        handles += ax.plot(x, y, color="C0", lw=1.2, marker="o" if len(y) < 30 else None, ms=3, label="reward (mean)")
        stx, std = series(rows, "reward/std")
        by_step = dict(zip(stx, std))
        band = [(xi, yi, by_step[xi]) for xi, yi in zip(x, y) if xi in by_step]
        if band:
            bx = [b[0] for b in band]
            ax.fill_between(bx, [b[1] - b[2] for b in band], [b[1] + b[2] for b in band], color="C0", alpha=0.18, lw=0)
            handles.append(_patch("C0", 0.18, "± std"))
        mnx, mn = series(rows, "reward/min")
        mxx, mx = series(rows, "reward/max")
        if mn and mx:
            ax.plot(mnx, mn, color="C0", lw=0.7, ls=":", alpha=0.7)
            handles += ax.plot(mxx, mx, color="C0", lw=0.7, ls=":", alpha=0.7, label="min / max")
        sm = _smooth(y)
        if sm:
            handles += ax.plot(x, sm, color="C3", lw=1.6, label="reward (moving avg)")
    for i, k in enumerate(evals):
        ex, ey = series(rows, k)
        if ey:
            handles += ax.plot(ex, ey, ls="none", marker="D", ms=5, color=f"C{4 + i % 5}", label=k)
    _style(ax, "update", "reward")
    if sy:
        ax2 = ax.twinx() if (y or evals) else ax
        handles += ax2.plot(sx, sy, color="C2", lw=1.2, ls="--", label="success rate")
        ax2.set_ylim(-0.03, 1.03)
        ax2.set_ylabel("success rate")
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_title("Reward per update")
    return fig


def _patch(color, alpha, label):
    from matplotlib.patches import Patch

    return Patch(color=color, alpha=alpha, label=label)


def _curve(rows, key: str, label: str, *, x: str, xlabel: str, ylabel: str, title: str, eng: bool = False):
    """One series with its moving average."""
    xs, ys = series(rows, key, x=x)
    if not ys:
        return None
    fig, ax = _new_figure()
    ax = ax[0][0]
    ax.plot(xs, ys, color="C0", lw=1.2, marker="o" if len(ys) < 30 else None, ms=3, label=label)
    sm = _smooth(ys)
    if sm:
        ax.plot(xs, sm, color="C3", lw=1.6, label="moving avg")
        ax.legend(fontsize=8)
    _style(ax, xlabel, ylabel, integer_x=not eng)
    if eng:
        from matplotlib.ticker import EngFormatter

        ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_title(title)
    return fig


def plot_reward_vs_tokens(rows):
    return _curve(rows, "reward/mean", "reward (mean)", x="tokens/cumulative", xlabel="cumulative sampled tokens (policy + branch)",
                  ylabel="reward", title="Reward against sampling cost", eng=True)


def plot_sft_loss(rows):
    """`agentrl sft` runs: the demonstrations' NLL per optimizer step."""
    return _curve(rows, "loss/sft", "loss (assistant-token NLL)", x="step", xlabel="optimizer step", ylabel="loss",
                  title="Supervised fine-tuning loss")


def _lines(rows, keys: list[tuple[str, str]], ylabel: str, title: str):
    present = [(k, lab) for k, lab in keys if series(rows, k)[1]]
    if not present:
        return None
    fig, ax = _new_figure()
    ax = ax[0][0]
    for i, (k, lab) in enumerate(present):
        x, y = series(rows, k)
        ax.plot(x, y, color=f"C{i + 1}", lw=1.2, marker="o" if len(y) < 30 else None, ms=3, label=lab)
    _style(ax, "update", ylabel)
    if len(present) > 1:
        ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    return fig


def plot_kl(rows):
    # `kl`: to the frozen reference (the penalised term); `approx_kl`: updated policy vs the rollout's
    # logprobs (how far one update moved the policy). Either may be absent.
    return _lines(rows, [("kl", "KL to reference"), ("approx_kl", "approx. KL to rollout policy")], "KL", "KL")


def plot_clip_fraction(rows):
    return _lines(rows, [("clip_fraction", "clip fraction"), ("dual_clip_fraction", "dual-clip fraction")],
                  "fraction of agent tokens", "PPO clip fraction")


def _stacked(rows, parts: list[tuple[str, str]], ylabel: str, title: str, *, eng: bool = False):
    present = [(k, lab) for k, lab in parts if series(rows, k)[1]]
    if not present:
        return None
    steps = [r["step"] for r in rows if any(_finite(r.get(k)) for k, _ in present)]
    vals = [[(r[k] if _finite(r.get(k)) else 0.0) for r in rows if any(_finite(r.get(q)) for q, _ in present)]
            for k, _ in present]
    fig, ax = _new_figure()
    ax = ax[0][0]
    if len(steps) <= 80:  # bars read best per update; past that they turn into slivers
        bottom = [0.0] * len(steps)
        for i, ((_, lab), v) in enumerate(zip(present, vals)):
            ax.bar(steps, v, bottom=bottom, color=f"C{i}", label=lab, width=0.8)
            bottom = [b + vi for b, vi in zip(bottom, v)]
    else:
        ax.stackplot(steps, *vals, labels=[lab for _, lab in present], colors=[f"C{i}" for i in range(len(present))])
    _style(ax, "update", ylabel)
    if eng:
        from matplotlib.ticker import EngFormatter

        ax.yaxis.set_major_formatter(EngFormatter())
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    return fig


def plot_tokens(rows):
    return _stacked(rows, [("tokens/sampled", "policy (episodes)"), ("tokens/branch", "branch (value estimation)")],
                    "tokens sampled", "Tokens sampled per update", eng=True)


def plot_time(rows):
    return _stacked(rows, [("time/collect", "collect"), ("time/branch", "branch"), ("time/update", "update")],
                    "seconds", "Seconds per update, by phase")


def plot_optimization(rows):
    keys = [("entropy", "entropy"), ("grad_norm", "grad norm"), ("loss/policy", "policy loss"),
            ("loss/value", "value loss"), ("adv/std", "advantage std")]
    present = [(k, lab) for k, lab in keys if series(rows, k)[1]]
    if not present:
        return None
    ncols = 2 if len(present) > 1 else 1
    nrows = (len(present) + ncols - 1) // ncols
    fig, axes = _new_figure(nrows, ncols, size=(7.0, 2.4 * nrows + 0.4))
    flat = [a for row in axes for a in row]
    for i, (ax, (k, lab)) in enumerate(zip(flat, present)):
        x, y = series(rows, k)
        ax.plot(x, y, color=f"C{i}", lw=1.1, marker="o" if len(y) < 30 else None, ms=2.5)
        _style(ax, "update", lab)
    for ax in flat[len(present):]:
        ax.set_visible(False)
    fig.suptitle("Optimization diagnostics")
    return fig


PLOTS: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "held_out": plot_held_out,
    "reward": plot_reward,
    "reward_vs_tokens": plot_reward_vs_tokens,
    "sft_loss": plot_sft_loss,
    "kl": plot_kl,
    "clip_fraction": plot_clip_fraction,
    "tokens": plot_tokens,
    "time": plot_time,
    "optimization": plot_optimization,
}
assert tuple(PLOTS) == PLOT_NAMES


def _png_bytes(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- summary -------------------------------------------------------------------------------------------------


def summarize(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = [("updates logged", str(len(rows)))]
    if rows:
        out.append(("last step", str(rows[-1]["step"])))
    x, y = series(rows, "reward/mean")
    if y:
        best = max(range(len(y)), key=lambda i: y[i])
        out += [("first reward", f"{y[0]:.4g} (step {x[0]:.0f})"), ("last reward", f"{y[-1]:.4g} (step {x[-1]:.0f})"),
                ("best reward", f"{y[best]:.4g} (step {x[best]:.0f})")]
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


# -- credit heatmap ------------------------------------------------------------------------------------------


def _mix(rgb: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    """White at f=0, `rgb` at f=1."""
    f = min(max(f, 0.0), 1.0)
    return tuple(round(255 + (c - 255) * f) for c in rgb)  # type: ignore[return-value]


def adv_colour(a: float, scale: float) -> tuple[int, int, int]:
    if scale <= 0 or a == 0:
        return (255, 255, 255)
    return _mix(POS_RGB if a > 0 else NEG_RGB, abs(a) / scale)


def _visible(text: str) -> str:
    """HTML for a token's text: escaped, with newlines, tabs and carriage returns shown as marks.

    The page renders tokens with `white-space: pre-wrap`, so the real newline after the ↵ mark still
    breaks the line and the transcript keeps its shape.
    """
    if text == "":
        return '<span class="mark">∅</span>'
    s = html.escape(text, quote=False)
    s = s.replace("\r", '<span class="mark">␍</span>').replace("\t", '<span class="mark">→</span>\t')
    return s.replace("\n", '<span class="mark">↵</span>\n')


def render_episode(ep: EpisodeView) -> str:
    agent = [a for a, m in zip(ep.advantages, ep.action_mask) if m]
    scale = max((abs(a) for a in agent), default=0.0)
    spans = []
    for i, (tok, m, a) in enumerate(zip(ep.tokens, ep.action_mask, ep.advantages)):
        if m:
            cls = "pos" if a > 0 else "neg" if a < 0 else "zero"
            r, g, b = adv_colour(a, scale)
            title = f"token {i} · agent · advantage {a:+.5g}"
            spans.append(f'<span class="t a {cls}" style="background:rgb({r},{g},{b})" data-adv="{a:.6g}" '
                         f'title="{html.escape(title)}">{_visible(tok)}</span>')
        else:
            spans.append(f'<span class="t e" title="token {i} · env/prompt (no loss)">{_visible(tok)}</span>')
    # Fold a long prompt before the first agent token so the agent's turns are on screen.
    first_agent = next((i for i, m in enumerate(ep.action_mask) if m), len(spans))
    if first_agent >= FOLD_PROMPT_TOKENS:
        body = (f'<details><summary>prompt: {first_agent} env tokens (click to show)</summary>'
                f'<div class="seq">{"".join(spans[:first_agent])}</div></details>'
                f'<div class="seq">{"".join(spans[first_agent:])}</div>')
    else:
        body = f'<div class="seq">{"".join(spans)}</div>'
    pos = sum(a for a in agent if a > 0)
    neg = sum(a for a in agent if a < 0)
    facts = [
        f"uid {html.escape(str(ep.uid))}",
        f"reward {ep.reward:.4g}" if ep.reward is not None else "reward ?",
        f"{len(ep.tokens)} tokens ({len(agent)} agent)",
        f"max |advantage| {scale:.4g}",
        f"Σ advantage {pos + neg:+.4g} (+{pos:.4g} / {neg:.4g})",
    ]
    if ep.algorithm:
        facts.append(f"estimator {html.escape(ep.algorithm)}")
    return f'<div class="episode"><h3>{" · ".join(facts)}</h3>{body}</div>'


# -- page ----------------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
     padding:0 1em;color:#222}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
table.summary{border-collapse:collapse;margin:1em 0} table.summary td{padding:.25em .9em;border-bottom:1px solid #eee}
table.summary td:first-child{color:#555}
.plots img{max-width:100%;display:block;margin:1em 0;border:1px solid #eee}
pre.config{background:#f6f8fa;padding:1em;overflow:auto;max-height:30em;font-size:12px}
.episode{margin:1.2em 0;border:1px solid #ddd;border-radius:6px;padding:.6em .8em}
.episode h3{font-size:14px;font-weight:600;margin:.2em 0 .6em}
.seq{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;line-height:1.7;
     white-space:pre-wrap;word-break:break-word}
.t{border-radius:2px;padding:1px 0;box-shadow:inset -1px 0 0 rgba(0,0,0,.06)}
.t.e{background:#ddd;color:#555}
.t.a{color:#111}
.t:hover{outline:1px solid #333}
.mark{color:#999;font-size:90%}
.legend{display:flex;gap:1.5em;align-items:center;flex-wrap:wrap;font-size:13px;margin:.6em 0}
.bar{width:220px;height:14px;border:1px solid #ccc;
     background:linear-gradient(to right,rgb(215,48,39),#fff,rgb(26,152,80))}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #ccc;vertical-align:middle;margin-right:.3em}
.note{color:#666;font-size:13px}
"""


def _legend() -> str:
    return (
        '<div class="legend">'
        '<span>advantage: <b>−max</b> <span class="bar" style="display:inline-block;vertical-align:middle"></span> '
        '<b>+max</b></span>'
        '<span><span class="sw" style="background:rgb(215,48,39)"></span>negative (blamed)</span>'
        '<span><span class="sw" style="background:#fff"></span>zero</span>'
        '<span><span class="sw" style="background:rgb(26,152,80)"></span>positive (credited)</span>'
        '<span><span class="sw" style="background:#ddd"></span>env / prompt token (not sampled, no loss)</span>'
        '</div><p class="note">Each box is one token. Colour intensity is |advantage| divided by the largest '
        '|advantage| among that episode\'s agent tokens, so compare shades within an episode, not across. '
        'Hover a token for its position and exact advantage (after any batch whitening the trainer applied). '
        '<span class="mark">↵</span> marks a newline, <span class="mark">→</span> a tab, '
        '<span class="mark">∅</span> a token that decodes to no text on its own.</p>'
    )


def write_report(run_dir: str | Path, *, out_dir: Path | None = None) -> Path:
    """Write the plots and `report.html` for a run directory; return the HTML path.

    Raises ValueError when `run_dir` has no `metrics.jsonl`.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise ValueError(f"no metrics.jsonl in {run_dir} (looked for {metrics_path}); is this a run directory?")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = load_metrics(metrics_path)
    images: list[tuple[str, bytes]] = []
    parent = parent_rows(run_dir)
    for name, make in PLOTS.items():
        fig = (plot_held_out(rows, parent) if name == "held_out" else make(rows)) if rows else None
        target = out_dir / f"{name}.png"
        if fig is None:
            if target.exists():
                target.unlink()
            continue
        data = _png_bytes(fig)
        atomic_write_bytes(target, data)
        images.append((name, data))

    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text(errors="replace") if config_path.is_file() else None
    ep_file, episodes = latest_episodes(run_dir)
    page = _page(run_dir, rows, images, config_text, ep_file, episodes)
    html_path = out_dir / "report.html"
    atomic_write_bytes(html_path, page.encode("utf-8"))
    return html_path


def _page(run_dir: Path, rows, images, config_text, ep_file, episodes) -> str:
    esc = html.escape
    algo = next((e.algorithm for e in episodes if e.algorithm), None)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>agentrl report · {esc(run_dir.resolve().name)}</title>", f"<style>{CSS}</style></head><body>",
        f"<h1>agentrl report</h1><p class=\"sub\">{esc(str(run_dir.resolve()))}"
        + (f" · estimator {esc(algo)}" if algo else "") + f" · written {when}</p>",
        "<h2>Summary</h2>",
    ]
    if not rows:
        parts.append('<p class="note">metrics.jsonl holds no complete update yet.</p>')
    parts.append('<table class="summary">' + "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in summarize(rows)) + "</table>")
    if images:
        parts.append('<h2>Training curves</h2><div class="plots">')
        for name, data in images:
            b64 = base64.b64encode(data).decode("ascii")
            parts.append(f'<img alt="{esc(name)}" id="plot-{esc(name)}" src="data:image/png;base64,{b64}">')
        parts.append("</div>")
    parts.append("<h2>Per-token credit</h2>")
    if episodes:
        step = episodes[0].step
        parts.append(f'<p class="note">{len(episodes)} episode(s) from {esc(ep_file.name)}'
                     + (f" (update {step})" if step is not None else "")
                     + ", highest and lowest reward first.</p>")
        parts.append(_legend())
        parts += [render_episode(e) for e in episodes]
    else:
        parts.append('<p class="note">No episodes logged (episodes/step_*.jsonl; set train.log_episodes &gt; 0).</p>')
    if config_text is not None:
        parts.append(f'<h2>Config</h2><pre class="config">{esc(config_text)}</pre>')
    parts.append("</body></html>\n")
    return "\n".join(parts)
