"""Worker processes for sweeps: the default process pool, whose workers share the cores and
exit when the sweep's process dies (Linux's parent-death signal through prctl, and a watchdog
thread everywhere)."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
import time

__all__ = ["default_pool"]

def default_pool(workers):
    """The default executor: ``workers`` spawned processes ("fork" would copy the core's
    threads) sharing the cores, that end when this process does. By default one process with
    a thread per core: the core's own threads run a sweep faster than one single-threaded
    process per core (BENCHMARKS.md, "Sweeps", has the measurement)."""
    import sdagd

    cores = sdagd.get_num_threads()  # the CPUs this process may use (sdagd.cpu_info() says why)
    workers = workers or 1
    return cf.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                  initargs=(os.getpid(), max(1, cores // workers)),
                                  mp_context=multiprocessing.get_context("spawn"))


def _worker_init(parent_pid, threads=1):
    """Worker processes share the cores: ``threads`` each, no oversubscription; and they exit
    when the sweep's process (``parent_pid``) dies, even by SIGKILL, which gives it no chance
    to stop them (they would train on, unseen, for hours)."""
    import sdagd

    sdagd.set_num_threads(threads)
    _set_parent_death_signal()
    _watch_parent(parent_pid)  # the portable way, and a second line on Linux


def _set_parent_death_signal():
    """Linux: have the kernel send SIGKILL to this process when its parent dies (prctl
    PR_SET_PDEATHSIG). Returns whether that was arranged."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid, poll=1.0):
    """A daemon thread that ends this process (within ``poll`` seconds) once its parent is no
    longer ``parent_pid``: an orphan is adopted by another process, so its parent id changes.
    Checked once at once, too: the parent may have died before this ran."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="sdagd-parent-watch", daemon=True).start()
