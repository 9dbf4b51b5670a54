"""File writes that never leave half a file: a temp file in the same directory, then `os.replace`.

Every file agentrl writes gets the permissions the umask asks for (mkstemp and mkdtemp make 0600 / 0700).
(mock_patients/io.py has its twin: that package stays free of agentrl imports.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal


def atomic_write_text(path: str | Path, text: str) -> None:
    """Readers see the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """An OSError (a full disk, a read-only directory) names `path`, not the temp file, and leaves no temp file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        where = None if not isinstance(exc, OSError) or exc.filename is None else str(exc.filename)
        if (
            isinstance(exc, OSError)
            and exc.errno is not None
            and (where is None or where == str(path.parent) or os.path.dirname(where) == str(path.parent))
        ):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc  # the errno's own subclass
        raise


@contextmanager
def atomic_dir(
    target: Path, *, prefix: str, suffix: str = "", exists: Literal["replace", "keep", "empty"] = "replace"
) -> Iterator[Path]:
    """A directory written whole or not at all. Yields a temp directory beside `target` (`prefix`, `suffix`: its
    name) to write into; on a clean exit it gets the umask's permissions and is renamed to `target`. Where
    `target` exists: `replace` removes it first, `keep` keeps it (another process built it first: the new copy is
    dropped), `empty` replaces it only when empty (else OSError, nothing overwritten). Whatever happens, the temp
    directory is gone afterwards."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    try:
        yield tmp
        ordinary_permissions(tmp)  # mkdtemp makes 0700, some writers 0600
        if target.exists() and exists == "replace":
            shutil.rmtree(target)
        elif target.exists() and exists == "empty":
            target.rmdir()  # a non-empty directory raises OSError
        try:
            os.rename(tmp, target)
        except OSError:
            if exists != "keep":
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ordinary_permissions(root: Path) -> None:
    """Give a directory tree written through temp names the permissions the umask asks for."""
    mask = umask()
    for p in [root, *root.rglob("*")]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
