"""Small file helpers: atomic writes (temp file + os.replace) and bounded, line-numbered JSON reading.

Input is bounded before it is parsed: a JSONL line longer than `max_line_bytes` is skipped without being held
in memory, and one nested deeper than `MAX_JSON_DEPTH` is refused by a scan of its brackets (strings left
out) before `json.loads` could recurse on it. Either becomes that line's error; the other lines still load.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

# Caps on input, all far above what real files hold: AgentClinic / MediQ records are a few KB and nest 5
# levels deep; a PatientCase line is ~4x its source record; a transcript line is at most a few hundred KB.
MAX_LINE_BYTES = 4 * 1024 * 1024  # one JSONL line: a PatientCase, or a transcript with an inline case
MAX_JSON_DEPTH = 64  # nested arrays / objects in one record
MAX_ARRAY_FILE_BYTES = 64 * 1024 * 1024  # a case file written as one JSON array (JSONL has no file cap)


class OutputError(OSError, ValueError):
    """A file that could not be written; the message names the path and the reason in one line. Also a
    ValueError, so a CLI that reports bad input as one line (not a traceback) reports this too."""


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` so readers see the old file or the whole new one, never a half-written file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary sibling and move it over `path` in one step. An OS error (read-only directory,
    no space, a directory in the way) is an `OutputError` naming `path`; the temporary file is removed.
    A symlink at `path` is replaced by the new file, never written through."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).strip()
        err = OutputError(f"cannot write {path}: {reason[:1].lower()}{reason[1:]}")
        err.errno = exc.errno
        raise err from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n / 1024:g} KiB" if n >= 1024 else f"{n} bytes"


def too_long(n: int, cap: int, what: str = "line") -> str:
    return f"{what} is {n:,} bytes; at most {cap:,} ({_size(cap)}) allowed"


# a JSON string (escapes included); brackets inside one are text, not nesting
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (0 for a scalar), counted without recursion."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def too_deep(depth: int, cap: int = MAX_JSON_DEPTH) -> str:
    return f"JSON nested {depth:,} levels deep; at most {cap} allowed"


def _parse(text: str, max_depth: int) -> tuple[Any | None, str | None]:
    bad = _bad_utf8(text)
    if bad is not None:
        return None, bad
    depth = json_depth(text)
    if depth > max_depth:
        return None, too_deep(depth, max_depth)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:  # cannot happen below the depth cap; kept so one line never ends the file
        return None, too_deep(depth, max_depth)


def iter_jsonl(
    path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[tuple[int, Any | None, str | None]]:
    """Yield (line number, parsed object or None, error or None) for each non-blank line; never raises on
    bad JSON, bad UTF-8, a line over `max_line_bytes` (counted before it is read whole) or nesting deeper than
    `max_depth`: such a line gets an error and the others are still read."""
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(max_line_bytes + 2)  # room for "\r\n"
            if not raw:
                return
            lineno += 1
            if not raw.endswith(b"\n") and len(raw) > max_line_bytes:
                n = len(raw)
                while True:  # skip the rest of the line in bounded chunks, counting it
                    chunk = f.readline(1 << 20)
                    n += len(chunk)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                yield lineno, None, too_long(n - _newline(chunk), max_line_bytes)
                continue
            body = raw.rstrip(b"\r\n")
            if not body.strip():
                continue
            if len(body) > max_line_bytes:
                yield lineno, None, too_long(len(body), max_line_bytes)
                continue
            # surrogateescape keeps undecodable bytes as lone surrogates, so one bad byte spoils only its own line
            obj, err = _parse(body.decode("utf-8", errors="surrogateescape"), max_depth)
            yield lineno, obj, err


def _newline(chunk: bytes) -> int:
    return 2 if chunk.endswith(b"\r\n") else 1 if chunk.endswith(b"\n") else 0


_ARRAY_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)


class JSONArrayError(ValueError):
    """A JSON array file whose structure cannot be split into elements; the message names the file."""


def iter_json_array(
    path: str | Path,
    *,
    max_item_bytes: int = MAX_LINE_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    max_file_bytes: int = MAX_ARRAY_FILE_BYTES,
) -> Iterator[tuple[int, Any | None, str | None]]:
    """(1-based index, object or None, error or None) for each element of a file holding one JSON array. The
    elements are found by a scan of brackets and commas (strings left out), so each is checked for size and
    depth before it is parsed, and a bad element is that element's error, like a bad JSONL line. A file over
    `max_file_bytes`, or one that is not an array, is a JSONArrayError."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_file_bytes:
        raise JSONArrayError(
            f"{path}: {too_long(size, max_file_bytes, 'a JSON array file')}; "
            "write the records as JSONL (one JSON object per line) instead"
        )
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    depth, start, index, item_depth = 0, -1, 0, 0
    end_of_array = -1
    for m in _ARRAY_TOKEN.finditer(text):
        tok = m.group()
        if tok[0] == '"':
            continue
        if depth == 0:
            if tok != "[" or text[: m.start()].strip():
                raise JSONArrayError(f"{path}: invalid JSON array (expected '[' at the start)")
            depth, start, item_depth = 1, m.end(), 0
            continue
        if tok in "[{":
            depth += 1
            item_depth = max(item_depth, depth - 1)
            continue
        if depth == 1 and tok in ",]":
            item = text[start : m.start()]
            if item.strip() or tok == ",":
                index += 1
                yield index, *_array_item(item, item_depth, max_item_bytes, max_depth)
            start, item_depth = m.end(), 0
            if tok == "]":
                depth, end_of_array = 0, m.end()
                break
            continue
        if tok in "]}":
            depth -= 1
    if end_of_array < 0:
        raise JSONArrayError(f"{path}: invalid JSON array (no closing ']')")
    if text[end_of_array:].strip():
        raise JSONArrayError(f"{path}: invalid JSON array (extra data after the closing ']')")


def _array_item(item: str, depth: int, max_bytes: int, max_depth: int) -> tuple[Any | None, str | None]:
    n = len(item.strip().encode("utf-8", errors="surrogateescape"))
    if n > max_bytes:
        return None, too_long(n, max_bytes, "element")
    if depth > max_depth:
        return None, too_deep(depth, max_depth)
    if not item.strip():
        return None, "invalid JSON: empty element"
    return _parse(item, max_depth)


def _bad_utf8(line: str) -> str | None:
    """The error for a line read with errors="surrogateescape" that held bytes invalid in UTF-8, else None."""
    m = _ESCAPED_BYTE.search(line)
    return None if m is None else f"invalid UTF-8: byte 0x{ord(m.group()) - 0xDC00:02x} (column {m.start() + 1})"


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape spells an undecodable byte
