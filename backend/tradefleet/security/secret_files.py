"""Files that hold one secret each: created atomically with mode 0600 on first use, read after."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def ensure_secret_file(path: Path, make: Callable[[], str]) -> str:
    """The stripped content of ``path``, written first (``make()`` and a newline, mode 0600) when
    it does not exist. Atomic: processes racing on a fresh checkout end up with the same value
    (the file is linked into place, never overwritten). An existing file is made 0600 if it was
    readable by others."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = None
    if value is not None:
        make_private(path)
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(make() + "\n")
    try:
        os.link(tmp, path)  # fails if another process won the race: then use theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def make_private(path: Path) -> None:
    """``path`` readable and writable by its owner only (created empty when missing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


__all__ = ["ensure_secret_file", "make_private"]
