"""`agentrl report`, the episodes half: the logged episodes of a run (`episodes/step_NNNNNN.jsonl`, one
`EpisodeRecord` a line) rendered as a per-token credit heatmap (which tokens the estimator credited or blamed),
with the page's CSS."""

from __future__ import annotations

import html
import math
import re
import warnings
from pathlib import Path

from agentrl.core.records import EpisodeRecord, read_records_file

MAX_EPISODES = 4
# A prompt (system message with tool schemas) can run to thousands of tokens; fold it when it is this long
# so the agent's turns are on screen. Its tokens are still rendered, inside a <details>.
FOLD_PROMPT_TOKENS = 200

# Diverging scale, ColorBrewer RdYlGn ends: red = blamed (negative advantage), green = credited.
NEG_RGB = (215, 48, 39)
POS_RGB = (26, 152, 80)


# -- reading -------------------------------------------------------------------------------------------------


def latest_episodes(run_dir: Path, limit: int = MAX_EPISODES) -> tuple[Path | None, list[EpisodeRecord]]:
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


def _read_episodes(path: Path) -> list[EpisodeRecord]:
    """The records of one file that carry the per-token view, their mask and advantages cut or padded to the
    tokens (with a warning); unreadable lines and records without tokens are skipped with a warning."""
    records, bad = read_records_file(path)  # bounded: a line too long or too deep is skipped, the rest load
    for i, why in bad:
        warnings.warn(f"{path}: skipping episode on line {i}: {why}", stacklevel=3)
    out = []
    for i, rec in records:
        if rec.tokens is None:
            warnings.warn(f"{path}: skipping episode on line {i}: it has no per-token view ('tokens')", stacklevel=3)
            continue
        n, mask, adv = len(rec.tokens), rec.action_mask or [], rec.advantages or []
        if len(mask) != n or (adv and len(adv) != n):
            warnings.warn(
                f"{path}: episode on line {i}: {n} tokens but {len(mask)} mask and {len(adv)} advantage entries; "
                "missing entries shown as env tokens / zero",
                stacklevel=3,
            )
        rec.action_mask, rec.advantages = (mask + [0] * n)[:n], (adv + [0.0] * n)[:n]
        out.append(rec)
    return out


def _pick(eps: list[EpisodeRecord], limit: int) -> list[EpisodeRecord]:
    order = sorted(eps, key=lambda e: -math.inf if e.reward is None else e.reward)
    picked: list[EpisodeRecord] = []
    lo, hi = 0, len(order) - 1
    while lo <= hi and len(picked) < limit:
        picked.append(order[hi])
        hi -= 1
        if lo <= hi and len(picked) < limit:
            picked.append(order[lo])
            lo += 1
    return picked


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


def render_episode(ep: EpisodeRecord) -> str:
    tokens, action_mask, advantages = ep.tokens, ep.action_mask, ep.advantages
    assert tokens is not None and action_mask is not None and advantages is not None, (
        "render_episode takes the records of latest_episodes, whose per-token view is filled in"
    )
    agent = [a for a, m in zip(advantages, action_mask) if m]
    scale = max((abs(a) for a in agent), default=0.0)
    spans = []
    for i, (tok, m, a) in enumerate(zip(tokens, action_mask, advantages)):
        if m:
            cls = "pos" if a > 0 else "neg" if a < 0 else "zero"
            r, g, b = adv_colour(a, scale)
            title = f"token {i} · agent · advantage {a:+.5g}"
            spans.append(
                f'<span class="t a {cls}" style="background:rgb({r},{g},{b})" data-adv="{a:.6g}" '
                f'title="{html.escape(title)}">{_visible(tok)}</span>'
            )
        else:
            spans.append(f'<span class="t e" title="token {i} · env/prompt (no loss)">{_visible(tok)}</span>')
    # Fold a long prompt before the first agent token so the agent's turns are on screen.
    first_agent = next((i for i, m in enumerate(action_mask) if m), len(spans))
    if first_agent >= FOLD_PROMPT_TOKENS:
        body = (
            f"<details><summary>prompt: {first_agent} env tokens (click to show)</summary>"
            f'<div class="seq">{"".join(spans[:first_agent])}</div></details>'
            f'<div class="seq">{"".join(spans[first_agent:])}</div>'
        )
    else:
        body = f'<div class="seq">{"".join(spans)}</div>'
    pos = sum(a for a in agent if a > 0)
    neg = sum(a for a in agent if a < 0)
    facts = [
        f"uid {html.escape(str(ep.uid))}",
        f"reward {ep.reward:.4g}" if ep.reward is not None else "reward ?",
        f"{len(tokens)} tokens ({len(agent)} agent)",
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


def legend() -> str:
    return (
        '<div class="legend">'
        '<span>advantage: <b>−max</b> <span class="bar" style="display:inline-block;vertical-align:middle"></span> '
        "<b>+max</b></span>"
        '<span><span class="sw" style="background:rgb(215,48,39)"></span>negative (blamed)</span>'
        '<span><span class="sw" style="background:#fff"></span>zero</span>'
        '<span><span class="sw" style="background:rgb(26,152,80)"></span>positive (credited)</span>'
        '<span><span class="sw" style="background:#ddd"></span>env / prompt token (not sampled, no loss)</span>'
        '</div><p class="note">Each box is one token. Colour intensity is |advantage| divided by the largest '
        "|advantage| among that episode's agent tokens, so compare shades within an episode, not across. "
        "Hover a token for its position and exact advantage (after any batch whitening the trainer applied). "
        '<span class="mark">↵</span> marks a newline, <span class="mark">→</span> a tab, '
        '<span class="mark">∅</span> a token that decodes to no text on its own.</p>'
    )
