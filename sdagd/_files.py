"""Writing files so that a failure never costs what was there before."""
from __future__ import annotations

import contextlib
import os
import secrets


def atomic_write(path, write) -> None:
    """Create or replace the file ``path`` with what ``write(file)`` writes to a binary file.

    It goes to a temporary file in the same folder (so the final rename stays on one file
    system), is flushed to disk, and only then renamed over ``path``: a failure at any point
    leaves an earlier file at ``path`` untouched and removes the temporary file.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        # Mode 0o666 less the umask, as open() gives; tempfile.mkstemp would give 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:  # name the file asked for, not the temporary one
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """atomic_write of UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
