"""File writes that never leave half a file: a temp file in the same directory, then `os.replace`.

Every file agentrl writes gets the permissions the umask asks for (mkstemp and mkdtemp make 0600 / 0700).
(mock_patients/io.py has its twin: that package stays free of agentrl imports.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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


def ordinary_permissions(root: Path) -> None:
    """Give a directory tree written through temp names the permissions the umask asks for."""
    mask = umask()
    for p in [root, *root.rglob("*")]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
