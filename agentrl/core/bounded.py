"""Reading untrusted JSON Lines with bounds: a size cap per line checked before the line is parsed or even held
whole, a nesting-depth cap, and one bad line costing that line only (its reason is kept, the good lines load).

Why: a 50 MB line was tokenized whole (6.57 GB peak) before its length was checked, and one 100,000-deep line
raised RecursionError out of the whole file (issue 27). The caps sit far above any real record: a dialog of
4 MiB is about a million tokens, and no format agentrl reads nests deeper than about 8 levels.
(mock_patients/io.py has its own reader: that package stays free of agentrl imports.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 4 << 20  # one JSONL record (a dialog, an episode record)
MAX_JSON_DEPTH = 64  # nested objects/arrays in one record


class BoundedInputError(ValueError):
    """A record over a cap, or not JSON; the message names which cap and what is allowed."""


def json_depth(obj: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counted without recursion; stops at limit + 1."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            d += 1
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((x, d) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def loads_bounded(text: str | bytes, *, max_bytes: int = MAX_LINE_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads`, refusing text over max_bytes (before parsing) and values nested deeper than max_depth."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise BoundedInputError(f"{size:,} bytes, over the cap of {max_bytes:,} bytes per record")
    try:
        obj = json.loads(text)
    except RecursionError:  # CPython's decoder gives up around 1,000 levels, long before memory does
        raise BoundedInputError(f"nested deeper than the cap of {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise BoundedInputError(f"not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise BoundedInputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if json_depth(obj, max_depth) > max_depth:
        raise BoundedInputError(f"nested deeper than the cap of {max_depth} levels")
    return obj


def iter_jsonl(
    path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, value, None) for each good line and (line number, None, reason) for each bad one; blank
    lines are neither. A line over the cap is skipped without being held whole in memory."""
    with open(path, "rb") as f:
        n = 0
        while True:
            line = f.readline(max_line_bytes + 1)
            if not line:
                return
            n += 1
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                skipped = len(line)
                while line and not line.endswith(b"\n"):  # drain the rest of this line in bounded chunks
                    line = f.readline(1 << 20)
                    skipped += len(line)
                yield n, None, f"{skipped:,} bytes, over the cap of {max_line_bytes:,} bytes per line"
                continue
            if not line.strip():
                continue
            try:
                yield n, loads_bounded(line, max_bytes=max_line_bytes, max_depth=max_depth), None
            except BoundedInputError as exc:
                yield n, None, str(exc)
