"""Sweeps: every combination of depth x activation x optimizer x seed run as independent jobs,
with results appended to a resumable file and progress reported as runs finish.

Every run is a job (:mod:`sdagd.paper.jobs`): a JSON-able configuration in, a JSON-able record
out. By default the jobs run in a local worker process with a thread per core
(:mod:`sdagd.paper.workers`; several processes share the cores); any
:class:`concurrent.futures.Executor` can run them instead (e.g. a Dask cluster's
``distributed.Client(...).get_executor()``), or pass ``workers=0`` to run them one after
another in this process. With ``out="runs.jsonl"`` each record is appended as its run
finishes (:mod:`sdagd.paper.records`), and a sweep started again with the same file skips the
runs already recorded; the runs it was in the middle of go on from their last finished epoch
(checkpoints in ``<out>.partial/``, removed as each run's record is written).

Example (a small sweep on the first 2,000 MNIST images, in this process)::

    >>> from sdagd import optim, paper
    >>> records = paper.sweep(depths=(1, 2), activations=("relu",),
    ...     optimizers={"SGD": optim.SGD(lr=0.5), "SDAGD": optim.SDAGD(radius=0.3)},
    ...     seeds=(0,), epochs=1, train_limit=2000, workers=0, progress=False)  # doctest: +SKIP
    >>> [(r["config"]["depth"], r["config"]["optimizer"], r["status"]) for r in records]  # doctest: +SKIP
    [(1, 'SGD', 'ok'), (1, 'SDAGD', 'ok'), (2, 'SGD', 'ok'), (2, 'SDAGD', 'ok')]
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import re
import sys
import time
from typing import Iterable, Mapping

import numpy as np

from .. import device_available
from .._files import check_writable, output_lock
from ..mlp import DeviceError
from .grid import DEFAULT_OPTIMIZERS, check_grid, grid_configs, group_configs, run_key
from .jobs import check_data, checkpoint_paths, failed_record, run_group, run_job
from .records import append_record, load_records, lock_path
from .workers import default_pool

__all__ = ["sweep"]


def _describe(record):
    c = record["config"]
    what = f"hl-{c['depth']} {c['activation']:<7} {c['optimizer']:<14} seed {c['seed']}"
    if record["status"] == "ok":
        resumed = f", resumed after epoch {record['resumed_at_epoch']}" if record.get("resumed_at_epoch") else ""
        return (f"{what}: {c['evaluate_on']} MCR {100 * record['final_error']:6.2f} %  "
                f"({record['wall_time']:.0f} s{resumed})")
    return f"{what}: {record['status'].upper()} {str(record['error']).splitlines()[0]}"


def _duration(seconds):
    """45 s, 12 min, 3 h 05 min: how long, at the precision a reader of a log wants."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class _Progress:
    """tqdm bar when tqdm is installed, progress is on and stderr is a terminal; plain lines
    otherwise (a redirected log gets one line per run, no carriage returns, and how long the
    rest will take at the pace so far: the deep protocol runs for hours)."""

    def __init__(self, total, enabled, desc):
        self.enabled, self.bar, self.done, self.total = enabled, None, 0, total
        self.started = time.monotonic()
        if enabled:
            from .._progress import tqdm_bar

            self.bar = tqdm_bar(total, desc, "run")
            if self.bar is None:
                print(f"{desc}: {total} run{'' if total == 1 else 's'}", file=sys.stderr, flush=True)

    def update(self, record):
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(_describe(record), file=sys.stderr)
        else:
            elapsed = time.monotonic() - self.started
            pace = f"; {_duration(elapsed)} so far"
            if self.done < self.total:  # runs differ in length, so "about"
                pace += f", about {_duration(elapsed / self.done * (self.total - self.done))} to go"
            print(f"[{self.done}/{self.total}] {_describe(record)}{pace}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def sweep(depths: Iterable[int] = (1, 2, 3, 4, 5), activations: Iterable[str] = ("sigmoid", "relu"),
          optimizers: Mapping | None = None, seeds: Iterable[int] = (0, 1, 2), epochs: int = 5, *,
          batch_size: int = 100, width: int = 700, output: str = "sigmoid", loss: str = "mse",
          data=None, train_limit: int | None = None, evaluate_on: str = "test", n_val: int = 10000,
          executor: cf.Executor | None = None, workers: int | None = None, out=None,
          retry_failed: bool = False, progress: bool = True, device: str = "cpu",
          grouped: bool | None = None, checkpoints=None) -> list:
    """Run every combination of depth x activation x optimizer x seed; one record per run.

    Parameters
    ----------
    depths, activations, seeds
        The grid (the paper: 1..5, sigmoid and ReLU, three seeds of Xavier initialisation).
    optimizers : mapping of label -> optimizer, optional
        Each value is an :mod:`sdagd.optim` optimizer (used as a template: every run starts
        from fresh state) or a callable ``(depth, activation) -> optimizer`` for
        per-configuration (e.g. tuned) hyperparameters; a callable that returns None leaves
        that (depth, activation) out for its label, so one sweep can run different cells for
        different labels. Default :data:`sdagd.paper.grid.DEFAULT_OPTIMIZERS`.
    epochs, batch_size, width, output, loss
        Training protocol (the paper: batch 100, width 700, MSE; epochs are not given).
    data : path, arrays or None
        MNIST directory (None: the loader's search) or ``((X_train, y_train), (X_test, y_test))``.
    train_limit : int, optional
        Train on the first N training images only (quick runs).
    evaluate_on : {"test", "validation"}
        Final figure on the test set, or on the last ``n_val`` training images (held out from
        training; what :func:`sdagd.paper.tune` uses).
    executor : concurrent.futures.Executor, optional
        Runs the jobs; default: a process pool of ``workers``.
    workers : int, optional
        Size of the default pool (default 1: one process with a thread per core, the fastest
        on the CPU; n processes share the cores' threads); 0 runs the jobs in this process.
    out : path, optional
        JSON-lines file: records are appended as runs finish; runs already in it are skipped
        (failed ones too, unless ``retry_failed``), so an interrupted sweep resumes; see
        ``checkpoints`` for the runs it was in the middle of.
    progress : bool
        A progress bar (tqdm if installed) or one line per finished run, on stderr.
    device : {"cpu", "cuda"}, default "cpu"
        Where the networks train. GPU runs carry ``"device"`` in their configuration (so they
        are recorded apart from CPU runs) and, unless ``grouped=False``, train in groups.
    grouped : bool, optional
        Train the runs that share a network shape and protocol together, with
        :func:`sdagd.fit_many` (see :func:`sdagd.paper.grid.group_key`), each group one job. Default: on a GPU,
        where one run uses a small slice of the device; off on the CPU. Each run still gets
        exactly what it would get alone, and its record is the same.
    checkpoints : None, bool or path
        Where runs save a checkpoint after every epoch but the last, so that a run an
        interruption (a kill, a reboot, a preempted cluster job) cut off goes on from its last
        finished epoch when the sweep is started again, with the numbers it would have had
        (:func:`sdagd.paper.run_job`); each is removed once its record is in ``out``, and the
        folder when the sweep ends with nothing left in it. None (default): the folder
        ``<out>.partial`` when there is an ``out`` and the runs train on this machine (here or in
        the default pool). True: that folder with a custom executor too, whose workers must then
        see it (a shared file system). A path: that folder. False: no checkpoints. Grouped runs
        (the GPU's default, each a few minutes) take none.

    Notes
    -----
    The default process pool starts workers with "spawn": in a script, call ``sweep`` under
    ``if __name__ == "__main__":`` (notebooks and the REPL need nothing). Its workers exit when
    this process dies, even by ``kill -9``.

    Before the first run, the grid (as :class:`sdagd.MLP` would check it), ``out`` (that it can
    be written) and the data (loaded, or the arrays checked; not with a custom ``executor``,
    whose workers load data folders themselves) are checked: a mistake there raises at once
    instead of becoming failed runs. A run that fails before training starts (its data, its
    configuration) or whose worker fails is returned but not saved, so a rerun retries it.

    Returns
    -------
    list of dict
        One record per configuration, in grid order (earlier records from ``out`` included):
        ``config``, ``status`` ("ok", "diverged" or "failed"), ``history`` (per-epoch columns,
        see :class:`sdagd.History`), ``final_error`` (MCR as a fraction), ``final_loss``,
        ``wall_time`` (s), ``error`` (message or None), and where it ran: ``host``, ``pid``,
        ``sdagd_version`` and ``machine`` (processor, loops' instruction set, BLAS kernels,
        threads).
    """
    optimizers = dict(DEFAULT_OPTIMIZERS if optimizers is None else optimizers)
    _check_protocol(optimizers, evaluate_on, epochs=epochs, batch_size=batch_size, width=width, n_val=n_val,
                    workers=workers, train_limit=train_limit)
    _check_device(device)
    grouped = device != "cpu" if grouped is None else bool(grouped)
    depths, activations, seeds = check_grid(depths, activations, seeds, width, output, loss)
    configs = list(grid_configs(depths, activations, optimizers, seeds, epochs, batch_size, width, output, loss,
                                train_limit, evaluate_on, n_val, device))
    if not configs:
        raise ValueError("the sweep is empty: depths, activations, optimizers and seeds must all be non-empty")
    if out:
        check_writable(out, append=True)
    if executor is None or not (data is None or isinstance(data, (str, os.PathLike))):
        # Here, not in the runs: a wrong data folder or bad arrays would fail every run alike.
        # (A custom executor's workers read data folders themselves, maybe elsewhere.)
        check_data(data, evaluate_on, n_val, keep=executor is None and workers == 0)

    partial = _checkpoint_folder(checkpoints, out, executor, grouped)

    # One writer per results file: a second sweep into it stops here, naming the first.
    with (output_lock(lock_path(out), f"the results file {out}") if out else contextlib.nullcontext()):
        return _sweep_locked(configs, out, retry_failed, progress, grouped, executor, workers, device, data, partial)


def _checkpoint_folder(checkpoints, out, executor, grouped):
    """The folder of the runs' checkpoints that sweep's ``checkpoints`` asks for, or None."""
    if checkpoints is None:
        return checkpoint_dir(out) if out and executor is None and not grouped else None
    if checkpoints is False:
        return None
    if grouped:
        raise ValueError("checkpoints: grouped runs (fit_many, the GPU's default) save none; pass grouped=False "
                         "to train the runs one by one with checkpoints, or leave checkpoints unset")
    if checkpoints is True:
        if not out:
            raise ValueError("checkpoints=True keeps them beside the results file: give out=..., or a folder as "
                             "checkpoints=...")
        return checkpoint_dir(out)
    if isinstance(checkpoints, (str, os.PathLike)):
        return os.fspath(checkpoints)
    raise TypeError(f"checkpoints must be None, True, False or a folder's path, got {checkpoints!r}")


def _check_protocol(optimizers, evaluate_on, **counts):
    """The sweep's scalar arguments, checked before anything runs; ``counts`` by name."""
    if not optimizers:
        raise ValueError("optimizers is empty")
    if evaluate_on not in ("test", "validation"):
        raise ValueError(f"evaluate_on must be 'test' or 'validation', got {evaluate_on!r}")
    lows = {"epochs": 0, "batch_size": 1, "width": 1, "n_val": 1, "workers": 0, "train_limit": 1}
    for name, value in counts.items():
        if value is None and name in ("workers", "train_limit"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lows[name]:
            raise ValueError(f"{name} must be an integer >= {lows[name]}, got {value!r}")
    if counts["batch_size"] > 2**31 - 1:
        raise ValueError(f"batch_size must be at most 2**31-1, got {counts['batch_size']}")


def _check_device(device):
    """``device`` is a known device, usable here."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"invalid device {device!r}; choose 'cpu' or 'cuda'")
    if device != "cpu":
        usable, why = device_available(device)
        if not usable:
            raise DeviceError(f"device={device!r} cannot be used: {why}")


def _sweep_locked(configs, out, retry_failed, progress, grouped, executor, workers, device, data, partial):
    """sweep's runs, once its arguments are checked and its output is locked; ``partial``: the
    checkpoints' folder or None."""
    done = _recorded(out, retry_failed)
    todo = [c for c in configs if run_key(c) not in done]
    bar = _Progress(len(todo), progress, "sweep")
    if len(todo) < len(configs):
        print(f"sweep: {len(configs) - len(todo)} of {len(configs)} runs already in {out}; resuming",
              file=sys.stderr, flush=True)
    if partial is not None:  # left by a sweep stopped between a record and its checkpoint's removal
        for config in configs:
            if run_key(config) in done:
                _remove_checkpoint(partial, config)
    cut_off = sum(os.path.exists(checkpoint_paths(partial, c)[1]) for c in todo) if partial else 0
    if cut_off and progress:
        print(f"sweep: {cut_off} run{'s' if cut_off > 1 else ''} cut off earlier will go on from "
              f"{'their' if cut_off > 1 else 'its'} last finished epoch where the checkpoint in {partial} "
              f"fits (its configuration, data and sdagd version)", file=sys.stderr, flush=True)

    def finish(record):
        # A failure outside the run (its data, the executor) is returned but not saved: a rerun
        # retries it instead of taking it as the run's result.
        retry = record.pop("retry", False)
        done[record["key"]] = record
        if out and not retry:
            append_record(out, record)
            if partial is not None:  # the record is safe: its checkpoint has done its work
                _remove_checkpoint(partial, record["config"])
        bar.update(record)

    # A job is one run, or one group of runs trained together; either gives a list of records.
    jobs = group_configs(todo) if grouped else [[config] for config in todo]
    in_process = (executor is None and workers == 0) or (grouped and executor is None and device != "cpu")
    try:
        if in_process:  # (a GPU is one device: its groups run here, one after another)
            for job in jobs:
                for record in (run_group(job, data) if grouped else [run_job(job[0], data, partial)]):
                    finish(record)
        else:
            _run_on_executor(jobs, grouped, data, executor, workers, finish, partial)
    finally:
        bar.close()
    if partial is not None:
        _remove_if_empty(partial)
    return [done[run_key(c)] for c in configs]


def checkpoint_dir(out) -> str:
    """The folder of the per-epoch checkpoints of the runs of the results file ``out``."""
    return os.fspath(out) + ".partial"


def _remove_checkpoint(folder, config):
    """A run's checkpoint files, removed; one that cannot be (a permission, a file where the
    folder should be) is left: a leftover costs disk space, not the sweep."""
    for path in checkpoint_paths(folder, config):
        with contextlib.suppress(OSError):
            os.remove(path)


#: The files checkpoints leave: <hash>.npz / .json, and the temporary files of a write cut off.
_CHECKPOINT_FILE = re.compile(r"(?P<tmp>\.)?[0-9a-f]{24}\.(npz|json)(?(tmp)\.[0-9a-f]{12}\.tmp)")


def _remove_if_empty(folder):
    """Remove the checkpoint folder once no checkpoint is left in it: the temporary files of an
    interrupted write go with it (not work worth keeping), anything else in it keeps it (the
    folder may be one the caller chose, holding their own files)."""
    try:
        entries = os.listdir(folder)
    except OSError:  # never made, or not a folder: nothing of ours to remove
        return
    ours = [name for name in entries if _CHECKPOINT_FILE.fullmatch(name)]
    if len(ours) < len(entries) or any(not name.endswith(".tmp") for name in ours):
        return
    with contextlib.suppress(OSError):
        for name in ours:
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)


def _recorded(out, retry_failed) -> dict:
    """The runs already in the results file ``out`` that a resumed sweep skips, by run key:
    finished ones, and failed ones unless ``retry_failed``."""
    done = {}
    for record in load_records(out):
        if record.get("status") in ("ok", "diverged") or (record.get("status") == "failed" and not retry_failed):
            done[record["key"]] = record
    return done


def _run_on_executor(jobs, grouped, data, executor, workers, finish, partial=None):
    """Runs the jobs on ``executor`` (default: a process pool of ``workers``, shut down at the
    end), passing each record to ``finish`` as its job ends. A job is submitted as
    ``run_group(configs, data)`` or, not grouped, ``run_job(config, data)`` (with the
    checkpoint folder ``partial`` as a third argument when there is one): an executor sees one
    run's configuration as its first argument."""
    own = executor is None
    if own:
        executor = default_pool(workers)
    extra = () if partial is None else (partial,)
    try:
        futures = {(executor.submit(run_group, job, data) if grouped else executor.submit(run_job, job[0], data, *extra)):
                   job for job in jobs}
        for future in cf.as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except Exception as exc:
                # The executor, not the run, failed (a worker died, the pool broke, the job
                # could not be sent).
                for config in job:
                    record = failed_record(config, f"{type(exc).__name__}: {exc} (executor failure; "
                                                   f"not saved, a rerun retries it)")
                    record["retry"] = True
                    finish(record)
                continue
            for record in result if grouped else [result]:
                finish(record)
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
