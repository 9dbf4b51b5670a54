"""`agentrl report`, the metrics half: `metrics.jsonl` rows and the PNG plots drawn from them.

`load_metrics` tolerates what a run directory may hold: any key may be absent, and a line cut by a crash
mid-write is skipped with a warning. Each `plot_*` returns a matplotlib Figure, or None when its series are
absent (the report then leaves that plot out).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

# The plots this module may write, in page order; a stale one from an earlier report is removed when its
# series is gone, so the folder never shows a plot the page does not.
PLOT_NAMES = (
    "held_out",
    "reward",
    "reward_vs_tokens",
    "sft_loss",
    "kl",
    "clip_fraction",
    "tokens",
    "time",
    "optimization",
)


# -- reading -------------------------------------------------------------------------------------------------


def load_metrics(path: str | Path) -> list[dict[str, Any]]:
    """One dict per update, sorted by step; unreadable lines are skipped with a warning.

    Values the logger wrote as strings because JSON has no NaN/inf ("nan", "inf") become floats again.
    A step logged twice (a resume that re-ran it) keeps its last row. Read bounded (`agentrl.core.bounded`): a
    line over the size cap or nested too deep is skipped like a cut one, never parsed whole.
    """
    from agentrl.core.bounded import iter_jsonl

    path = Path(path)
    rows: dict[int, dict[str, Any]] = {}
    last_step = 0
    lines = list(iter_jsonl(path))
    last = lines[-1][0] if lines else 0
    for i, row, why in lines:
        if why is not None:
            where = "last line (cut mid-write?)" if i == last else f"line {i}"
            warnings.warn(f"{path}: skipping unreadable {where}: {why}", stacklevel=2)
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


def _finite(v: Any) -> TypeGuard[float]:  # an int is a float to the type checker
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


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
        ax.plot(
            [v - shift for v in px],
            py,
            color="C1",
            lw=1.6,
            marker="o",
            ms=4,
            label="held-out success (run it started from)",
        )
        ax.axvline(0, color="grey", lw=0.8, ls=":")
    if y:
        if py and x[0] > 0:  # no update-0 evaluation (eval_before_train off): the run starts where its parent ended
            x, y = [0.0] + x, [py[-1]] + y
        ax.plot(x, y, color="C2", lw=1.6, marker="o", ms=4, label="held-out success rate")
    rx, ry = series(rows, "eval/reward")
    if ry:
        ax.plot(rx, ry, color="C0", lw=1.0, ls="--", marker="s", ms=3, label="held-out mean reward")
    _style(
        ax,
        "update (0 = start of this run" + ("; left of 0: the run it started from, in its steps)" if py else ")"),
        "held-out",
    )
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
    return _curve(
        rows,
        "reward/mean",
        "reward (mean)",
        x="tokens/cumulative",
        xlabel="cumulative sampled tokens (policy + branch)",
        ylabel="reward",
        title="Reward against sampling cost",
        eng=True,
    )


def plot_sft_loss(rows):
    """`agentrl sft` runs: the demonstrations' NLL per optimizer step."""
    return _curve(
        rows,
        "loss/sft",
        "loss (assistant-token NLL)",
        x="step",
        xlabel="optimizer step",
        ylabel="loss",
        title="Supervised fine-tuning loss",
    )


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
    return _lines(
        rows,
        [("clip_fraction", "clip fraction"), ("dual_clip_fraction", "dual-clip fraction")],
        "fraction of agent tokens",
        "PPO clip fraction",
    )


def _stacked(rows, parts: list[tuple[str, str]], ylabel: str, title: str, *, eng: bool = False):
    present = [(k, lab) for k, lab in parts if series(rows, k)[1]]
    if not present:
        return None
    steps = [r["step"] for r in rows if any(_finite(r.get(k)) for k, _ in present)]
    vals = [
        [(r[k] if _finite(r.get(k)) else 0.0) for r in rows if any(_finite(r.get(q)) for q, _ in present)]
        for k, _ in present
    ]
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
    return _stacked(
        rows,
        [("tokens/sampled", "policy (episodes)"), ("tokens/branch", "branch (value estimation)")],
        "tokens sampled",
        "Tokens sampled per update",
        eng=True,
    )


def plot_time(rows):
    return _stacked(
        rows,
        [("time/collect", "collect"), ("time/branch", "branch"), ("time/update", "update")],
        "seconds",
        "Seconds per update, by phase",
    )


def plot_optimization(rows):
    keys = [
        ("entropy", "entropy"),
        ("grad_norm", "grad norm"),
        ("loss/policy", "policy loss"),
        ("loss/value", "value loss"),
        ("adv/std", "advantage std"),
    ]
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
    for ax in flat[len(present) :]:
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


def png_bytes(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
