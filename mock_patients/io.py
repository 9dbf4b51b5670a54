"""Small file helpers: atomic writes (temp file + os.replace) and line-numbered JSONL reading."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` so readers see the old file or the whole new one, never a half-written file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any | None, str | None]]:
    """Yield (line number, parsed object or None, error or None) for each non-blank line; never raises on
    bad JSON or bad UTF-8: such a line gets an error and the others are still read."""
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad byte spoils only its own line
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            bad = _bad_utf8(line)
            if bad is not None:
                yield lineno, None, bad
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})"


def _bad_utf8(line: str) -> str | None:
    """The error for a line read with errors="surrogateescape" that held bytes invalid in UTF-8, else None."""
    m = _ESCAPED_BYTE.search(line)
    return None if m is None else f"invalid UTF-8: byte 0x{ord(m.group()) - 0xDC00:02x} (column {m.start() + 1})"


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape spells an undecodable byte
