"""Files from and to the outside: atomic writes, reads that refuse what is not a regular file,
a check that an output can be written before work starts, and a lock that keeps two runs from
writing the same results."""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile


def write_target(path) -> str:
    """The file a write to ``path`` must replace: symbolic links are followed (a link is written
    through to its target, as ``open(path, "w")`` would, not replaced by a file), and a path that
    exists but is not a regular file is refused before anything is done: renaming over a device
    such as /dev/null (as root), a FIFO or a socket would replace it by a regular file."""
    path = os.fspath(path)
    target = os.path.realpath(path)  # a dangling link resolves to the file it names
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give the name of a file")
    if not stat.S_ISREG(mode):
        kind = ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a FIFO (named pipe)"
                if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise OSError(f"cannot write {path}: it is {kind}, not a regular file; sdagd writes only regular files "
                      f"(it replaces them atomically), choose another name")
    return target


def check_writable(path, *, folder=False, append=False):
    """Raise an OSError that names ``path`` unless it can be written: a file (``append``: one
    that is appended to if it exists), or with ``folder`` a folder (made if missing).

    Called before work starts, so that a typo or a read-only folder costs nothing instead of
    the runs done by the time the first write fails. It writes (and removes) a temporary file
    where the output will go: os.access answers wrongly for root and for read-only mounts.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.islink(path) and not os.path.exists(path):  # makedirs would say only "File exists"
        raise FileNotFoundError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; create "
                                f"it{' as a folder' if folder else ''} or choose another output")
    if folder:
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"{path} exists and is not a folder; choose another output folder")
        where = path
        while not os.path.exists(where):  # a missing folder is made by its nearest existing ancestor
            where = os.path.dirname(where)
        if not os.path.isdir(where):
            raise NotADirectoryError(f"cannot make the folder {path}: {where} is a file")
    else:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder; give the name of a file")
        target = write_target(path)  # a device, FIFO or socket is refused; a link is followed
        where = os.path.dirname(target)
        if not os.path.isdir(where):
            raise FileNotFoundError(f"cannot write {path}: the folder {where} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".sdagd-write-test-")
        os.close(fd)
        os.unlink(probe)
        if append and os.path.exists(path):
            open(path, "ab").close()  # appends nothing
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from None


def atomic_write(path, write) -> None:
    """Create or replace the file ``path`` with what ``write(file)`` writes to a binary file.

    It goes to a temporary file in the same folder (so the final rename stays on one file
    system), is flushed to disk, and only then renamed over ``path``: a failure at any point
    leaves an earlier file at ``path`` untouched and removes the temporary file. A symbolic
    link is written through (the temporary file goes next to its target); a path that is a
    folder, a device, a FIFO or a socket is refused before ``write`` runs.
    """
    shown = os.fspath(path)
    path = write_target(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        # Mode 0o666 less the umask, as open() gives; tempfile.mkstemp would give 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:  # name the file asked for, not the temporary one
        raise type(exc)(exc.errno, f"cannot write {shown}: {exc.strerror}") from None
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


def open_regular(path, what="file"):
    """``path`` opened for binary reading, or an OSError naming it if it is not a regular file.

    The check is on the open file (fstat), so the file cannot be swapped between check and
    read; the open itself does not block (O_NONBLOCK), so a FIFO is refused instead of waiting
    for a writer forever, and /dev/zero or /dev/urandom are refused instead of read until
    memory runs out."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)  # missing or unreadable: the OS's own error, which names the path
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a regular file")
            raise OSError(f"{os.fspath(path)}: it is {kind}, not a regular {what}; give the path of a {what}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class OutputInUseError(OSError):
    """Another process is writing the same output (a results file or a reproduce folder)."""


@contextlib.contextmanager
def output_lock(lock_path, what):
    """Hold an exclusive lock on ``lock_path`` (created if missing, holding the owner's process
    id) while the block runs; if another process holds it, raise OutputInUseError at once,
    naming ``what`` and that process. The lock is released when the block ends or the process
    dies (an advisory flock: the kernel drops it with the file descriptor). Where flock does not
    exist (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputInUseError(f"{what} is being written by another run (process {owner}); wait for it to "
                                   f"finish, or choose another output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
