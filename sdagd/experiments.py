"""The paper's experiment as independent jobs: sweeps over depth, activation, optimizer and
seed, hyperparameter tuning on a validation split, and resumable result files.

Every run is a job: a JSON-able configuration in, a JSON-able record out. By default the
jobs run in a local worker process with a thread per core (several processes share the cores); any
:class:`concurrent.futures.Executor` can run them instead (e.g. a Dask cluster's
``distributed.Client(...).get_executor()``), or pass ``workers=0`` to run them one after
another in this process. With ``out="runs.jsonl"`` each record is appended as its run
finishes, and a sweep started again with the same file skips the runs already recorded.

Example (a small sweep on the first 2,000 MNIST images, in this process)::

    >>> from sdagd import experiments, optim
    >>> records = experiments.sweep(depths=(1, 2), activations=("relu",),
    ...     optimizers={"SGD": optim.SGD(lr=0.5), "SDAGD": optim.SDAGD(radius=0.3)},
    ...     seeds=(0,), epochs=1, train_limit=2000, workers=0, progress=False)  # doctest: +SKIP
    >>> [(r["config"]["depth"], r["config"]["optimizer"], r["status"]) for r in records]  # doctest: +SKIP
    [(1, 'SGD', 'ok'), (1, 'SDAGD', 'ok'), (2, 'SGD', 'ok'), (2, 'SDAGD', 'ok')]
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import math
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from typing import Iterable, Mapping

import numpy as np

from . import _files, _version
from . import optim as _optim

__all__ = ["sweep", "tune", "run_job", "run_group", "group_key", "load_records", "paper_sizes", "TuneResult",
           "DEFAULT_OPTIMIZERS"]

#: The paper's two optimizers with the untuned defaults of docs/algorithms.md section 6.
DEFAULT_OPTIMIZERS = {"SGD": _optim.SGD(lr=0.5), "SDAGD": _optim.SDAGD(radius=0.3)}


def paper_sizes(depth: int, width: int = 700) -> list:
    """784-700xL-10: the paper's hl-L network."""
    return [784] + [width] * depth + [10]


# -- data ------------------------------------------------------------------------------------

_DATA_CACHE: dict = {}  # per process: MNIST loaded once per worker, not once per job


def _load_data(data):
    """``data`` is a directory (or None: the loader's search) of the MNIST IDX files, or the
    arrays themselves ``((X_train, y_train), (X_test, y_test))``."""
    if data is None or isinstance(data, (str, os.PathLike)):
        key = None if data is None else os.fspath(data)
        if key not in _DATA_CACHE:
            from .datasets import load_mnist

            _DATA_CACHE[key] = load_mnist(key)
        return _DATA_CACHE[key]
    try:
        (X_train, y_train), (X_test, y_test) = data
    except (TypeError, ValueError):
        raise TypeError("data must be an MNIST folder, None (the loader's search) or arrays "
                        "((X_train, y_train), (X_test, y_test))") from None
    return (X_train, y_train), (X_test, y_test)


def _split(data, config):
    """Training and evaluation arrays for one run: the test set, or the last ``n_val`` rows
    of the training set held out (tuning never sees the test set)."""
    (X_train, y_train), (X_test, y_test) = _load_data(data)
    if config["evaluate_on"] == "validation":
        n_val = config["n_val"]
        if not 0 < n_val < len(X_train):
            raise ValueError(f"n_val must be in (0, {len(X_train)}), got {n_val}")
        X_eval, y_eval = X_train[-n_val:], y_train[-n_val:]
        X_train, y_train = X_train[:-n_val], y_train[:-n_val]
    else:
        X_eval, y_eval = X_test, y_test
    limit = config.get("train_limit")
    if limit is not None and limit < 1:
        raise ValueError(f"train_limit must be >= 1 or None, got {limit}")
    if limit:
        X_train, y_train = X_train[:limit], y_train[:limit]
    return X_train, y_train, X_eval, y_eval


# -- one job ---------------------------------------------------------------------------------

def run_key(config: Mapping) -> str:
    """Identity of a run in a results file: its whole configuration, canonically."""
    return json.dumps(config, sort_keys=True)


def _failed_record(config, error=None):
    """A record before (or instead of) a run: status "failed" until the run says otherwise."""
    return {"key": run_key(config), "config": config, "status": "failed", "history": None,
            "final_error": math.nan, "final_loss": math.nan, "wall_time": 0.0, "error": error,
            "host": socket.gethostname(), "pid": os.getpid(), "sdagd_version": _version.__version__}


def run_job(config: dict, data=None) -> dict:
    """Train and evaluate one network; never raises: failures come back as records.

    ``config`` keys: depth, width, activation, output, loss, optimizer (a label),
    optimizer_config (:meth:`sdagd.optim.Optimizer.config`), seed, epochs, batch_size,
    train_limit, evaluate_on ("test" or "validation"), n_val.

    A failure before training starts (the data cannot be loaded or split, the configuration
    does not make a network) is not the run's own result: its record carries ``"retry": True``,
    and :func:`sweep` returns it without saving it, so that a rerun (with the data fixed) runs
    it again.
    """
    record = _failed_record(config)
    start = time.perf_counter()
    training = False
    try:
        X_train, y_train, X_eval, y_eval = _split(data, config)
        net = _network(config)
        optimizer = _optim.from_config(config["optimizer_config"])
        training = True
        history = net.fit(X_train, y_train, optimizer, epochs=config["epochs"], batch_size=config["batch_size"],
                          validation_data=(X_eval, y_eval), progress=False, on_divergence="stop")
        _finish_record(record, net, history, X_eval, y_eval)
    except Exception as exc:  # recorded, not lost: one bad run must not end a sweep
        note = "" if training else " (before training: not saved, a rerun retries it)"
        record["error"] = f"{type(exc).__name__}: {exc}{note}\n{traceback.format_exc(limit=5)}"
        if not training:  # the data or the configuration failed, not this run
            record["retry"] = True
    record["wall_time"] = time.perf_counter() - start
    return record


def _network(config):
    from .mlp import MLP

    return MLP(paper_sizes(config["depth"], config["width"]), activation=config["activation"], output=config["output"],
               loss=config["loss"], init="xavier", seed=config["seed"], device=config.get("device", "cpu"))


def _finish_record(record, net, history, X_eval, y_eval):
    """A trained run's result into its record: the history, and the final error unless it diverged."""
    record["history"] = history.as_dict()
    if history.diverged:
        record["status"], record["error"] = "diverged", history.diverged
    else:
        result = net.evaluate(X_eval, y_eval)
        record["status"] = "ok"
        record["final_error"], record["final_loss"] = result.error, result.loss


def group_key(config: Mapping) -> str:
    """Runs with the same key train together (:func:`run_group`): one network shape and one
    protocol, and optimizers that need the Hessian diagonal at the same steps (none, every
    step, or every N steps), so that no network computes work it does not use."""
    opt = config["optimizer_config"]
    curvature = _optim.curvature_schedule(opt)  # from the core's optimizer table
    shared = {k: v for k, v in config.items() if k not in ("activation", "optimizer", "optimizer_config", "seed")}
    return json.dumps([shared, curvature], sort_keys=True)


def run_group(configs: list, data=None) -> list:
    """Train runs of one :func:`group_key` together (:func:`sdagd.fit_many`); one record each,
    as :func:`run_job` makes it, with ``group_size`` set and ``wall_time`` the group's."""
    from .many import fit_many

    records = [_failed_record(c) for c in configs]
    start = time.perf_counter()
    training = False
    try:
        X_train, y_train, X_eval, y_eval = _split(data, configs[0])
        nets = [_network(c) for c in configs]
        opts = [_optim.from_config(c["optimizer_config"]) for c in configs]
        c0 = configs[0]
        training = True
        histories = fit_many(nets, opts, X_train, y_train, epochs=c0["epochs"], batch_size=c0["batch_size"],
                             validation_data=(X_eval, y_eval), progress=False, on_divergence="stop")
        for record, net, history in zip(records, nets, histories):
            _finish_record(record, net, history, X_eval, y_eval)
    except Exception as exc:  # recorded for every run of the group, as run_job records one
        note = "" if training else " (before training: not saved, a rerun retries it)"
        for record in records:
            if record["status"] == "failed":
                record["error"] = f"{type(exc).__name__}: {exc}{note}\n{traceback.format_exc(limit=5)}"
                if not training:
                    record["retry"] = True
    for record in records:
        record["wall_time"] = time.perf_counter() - start
        record["group_size"] = len(configs)
    return records


def _groups(configs, limit=128):
    """Configurations in :func:`group_key` groups of at most ``limit``, in grid order."""
    groups = {}
    for config in configs:
        groups.setdefault(group_key(config), []).append(config)
    return [members[i:i + limit] for members in groups.values() for i in range(0, len(members), limit)]


# -- worker processes ------------------------------------------------------------------------

def _default_pool(workers):
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


# -- results files ---------------------------------------------------------------------------

_STATUSES = ("ok", "diverged", "failed")


def load_records(path) -> list:
    """Records from a JSON-lines results file.

    A torn last line (a run killed while writing it) is skipped silently. A damaged line
    elsewhere (bytes that are not UTF-8, text that is not JSON, JSON that is not a record) is
    skipped with a warning naming the line: the records around it are kept, and a resumed
    sweep runs the configuration it held (if any) again.
    """
    records, by_key = [], {}
    if not path or not os.path.exists(path):
        return records
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
                problem = _record_problem(record)
            except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError
                problem = f"not a JSON line ({exc})"
            if problem is None:
                # One record per run key (the last written: a retried run's): two runs into one
                # file must not count a configuration twice in a table.
                if record["key"] in by_key:
                    records[by_key[record["key"]]] = record
                else:
                    by_key[record["key"]] = len(records)
                    records.append(record)
            elif line.endswith(b"\n"):  # not the torn end of a killed write
                warnings.warn(f"{path}, line {number}: {problem}; skipped (a sweep runs its configuration, "
                              f"if any, again)", stacklevel=2)
    return records


def _record_problem(record):
    """What makes ``record`` unusable as a sweep record (None if nothing)."""
    if not isinstance(record, dict):
        return f"not a record but {type(record).__name__} {str(record)[:60]}"
    if not isinstance(record.get("key"), str) or not isinstance(record.get("config"), dict):
        return "a record without key or config"
    if record.get("status") not in _STATUSES:
        return f"a record with status {record.get('status')!r}, not one of {list(_STATUSES)}"
    config = record["config"]
    for field, kind, text in [("depth", int, "an integer"), ("seed", int, "an integer"),
                              ("activation", str, "a string"), ("optimizer", str, "a string")]:
        if field in config and (not isinstance(config[field], kind) or isinstance(config[field], bool)):
            return f"config field {field!r} is {config[field]!r}, not {text}"
    if record["status"] == "ok":  # what the tables compute with
        for field in ("final_error", "final_loss"):
            value = record.get(field, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"field {field!r} of an ok record is {value!r}, not a number"
    return None


def _check_writable(path, *, folder=False, append=False):
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
        target = _files._write_target(path)  # a device, FIFO or socket is refused; a link is followed
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


def _append_record(path, record):
    _files._write_target(path)  # a FIFO swapped in would block the open, a device swallow the record
    with open(path, "a+", encoding="utf-8") as f:
        if f.tell() > 0:  # a run killed mid-write leaves a torn line: start on a fresh one
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        f.write(json.dumps(record, allow_nan=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- sweeps ----------------------------------------------------------------------------------

def _resolve_optimizer(spec, depth, activation):
    optimizer = spec(depth, activation) if callable(spec) and not isinstance(spec, _optim.Optimizer) else spec
    if not isinstance(optimizer, _optim.Optimizer):
        raise TypeError(f"optimizers must map names to sdagd.optim optimizers (or callables "
                        f"(depth, activation) -> optimizer), got {type(optimizer).__name__}")
    return optimizer


def _configs(depths, activations, optimizers, seeds, epochs, batch_size, width, output, loss, train_limit,
             evaluate_on, n_val, device="cpu"):
    for depth in depths:
        for activation in activations:
            for label, spec in optimizers.items():
                optimizer = _resolve_optimizer(spec, depth, activation)
                for seed in seeds:
                    config = {"depth": int(depth), "width": int(width), "activation": activation, "output": output,
                              "loss": loss, "optimizer": label, "optimizer_config": optimizer.config(),
                              "seed": int(seed), "epochs": int(epochs), "batch_size": int(batch_size),
                              "train_limit": int(train_limit) if train_limit else None,
                              "evaluate_on": evaluate_on, "n_val": int(n_val)}
                    if device != "cpu":  # GPU runs differ from CPU runs in rounding: their own key
                        config["device"] = device
                    yield config


def _check_grid(depths, activations, seeds, width, output, loss):
    """The grid as lists, every value checked as the runs would check it, before any run."""
    from .mlp import _MAX_WIDTHS, _check_config, _is_int

    grid = []
    for name, values, example in [("depths", depths, "(1, 2, 3)"), ("activations", activations, "('sigmoid',)"),
                                  ("seeds", seeds, "(0, 1, 2)")]:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{name} must be a sequence such as {example}, got {values!r}")
        grid.append(list(values))
    depths, activations, seeds = grid
    for name, values in [("depths", depths), ("activations", activations), ("seeds", seeds)]:
        repeated = sorted({repr(v) for v in values if sum(1 for w in values if w == v) > 1})
        if repeated:  # the same run twice: twice the work, and a spread of 0 taken for two seeds
            raise ValueError(f"{name} lists {', '.join(repeated)} more than once; give each value once")
    for depth in depths:  # int() would quietly make 1.7 a 1, and -1 a network without hidden layers
        if not _is_int(depth) or not 1 <= depth <= _MAX_WIDTHS - 2:
            raise ValueError(f"depths must hold integers from 1 to {_MAX_WIDTHS - 2} (hidden layers), "
                             f"got {depth!r}")
    for depth in depths[:1]:
        for activation in activations:
            for seed in seeds:
                _check_config(paper_sizes(depth, width), activation, output, loss, seed=seed)
    return depths, activations, seeds


def _check_data(data, evaluate_on, n_val, keep):
    """Load (a folder; cached for this process's runs if ``keep``) or check (arrays) the data
    the runs will use, and that the validation split fits it."""
    from .mlp import _as_inputs, _as_labels

    if keep or not (data is None or isinstance(data, (str, os.PathLike))):
        (X_train, y_train), (X_test, y_test) = _load_data(data)
    else:  # loaded by each worker: checked here, not kept
        from .datasets import load_mnist

        (X_train, y_train), (X_test, y_test) = load_mnist(data)
    for part, X, y in [("train", X_train, y_train), ("test", X_test, y_test)]:
        X = _as_inputs(X, 784, f"X_{part}")
        _as_labels(y, X.shape[0], 10, f"y_{part}")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"X_{part} contains NaN or inf")
    if evaluate_on == "validation" and not n_val < len(X_train):
        raise ValueError(f"n_val must be below the {len(X_train)} training images, got {n_val}")


def _describe(record):
    c = record["config"]
    what = f"hl-{c['depth']} {c['activation']:<7} {c['optimizer']:<14} seed {c['seed']}"
    if record["status"] == "ok":
        return f"{what}: {c['evaluate_on']} MCR {100 * record['final_error']:6.2f} %  ({record['wall_time']:.0f} s)"
    return f"{what}: {record['status'].upper()} {str(record['error']).splitlines()[0]}"


class _Progress:
    """tqdm bar when tqdm is installed, progress is on and stderr is a terminal; plain lines
    otherwise (a redirected log gets one line per run, no carriage returns)."""

    def __init__(self, total, enabled, desc):
        self.enabled, self.bar, self.done, self.total = enabled, None, 0, total
        if enabled:
            from ._progress import tqdm_bar

            self.bar = tqdm_bar(total, desc, "run")
            if self.bar is None:
                print(f"{desc}: {total} runs", file=sys.stderr, flush=True)

    def update(self, record):
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(_describe(record), file=sys.stderr)
        else:
            print(f"[{self.done}/{self.total}] {_describe(record)}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def sweep(depths: Iterable[int] = (1, 2, 3, 4, 5), activations: Iterable[str] = ("sigmoid", "relu"),
          optimizers: Mapping | None = None, seeds: Iterable[int] = (0, 1, 2), epochs: int = 5, *,
          batch_size: int = 100, width: int = 700, output: str = "sigmoid", loss: str = "mse",
          data=None, train_limit: int | None = None, evaluate_on: str = "test", n_val: int = 10000,
          executor: cf.Executor | None = None, workers: int | None = None, out=None,
          retry_failed: bool = False, progress: bool = True, device: str = "cpu",
          grouped: bool | None = None) -> list:
    """Run every combination of depth x activation x optimizer x seed; one record per run.

    Parameters
    ----------
    depths, activations, seeds
        The grid (the paper: 1..5, sigmoid and ReLU, three seeds of Xavier initialisation).
    optimizers : mapping of label -> optimizer, optional
        Each value is an :mod:`sdagd.optim` optimizer (used as a template: every run starts
        from fresh state) or a callable ``(depth, activation) -> optimizer`` for
        per-configuration (e.g. tuned) hyperparameters. Default :data:`DEFAULT_OPTIMIZERS`.
    epochs, batch_size, width, output, loss
        Training protocol (the paper: batch 100, width 700, MSE; epochs are not given).
    data : path, arrays or None
        MNIST directory (None: the loader's search) or ``((X_train, y_train), (X_test, y_test))``.
    train_limit : int, optional
        Train on the first N training images only (quick runs).
    evaluate_on : {"test", "validation"}
        Final figure on the test set, or on the last ``n_val`` training images (held out from
        training; what :func:`tune` uses).
    executor : concurrent.futures.Executor, optional
        Runs the jobs; default: a process pool of ``workers``.
    workers : int, optional
        Size of the default pool (default 1: one process with a thread per core, the fastest
        on the CPU; n processes share the cores' threads); 0 runs the jobs in this process.
    out : path, optional
        JSON-lines file: records are appended as runs finish; runs already in it are skipped
        (failed ones too, unless ``retry_failed``), so an interrupted sweep resumes.
    progress : bool
        A progress bar (tqdm if installed) or one line per finished run, on stderr.
    device : {"cpu", "cuda"}, default "cpu"
        Where the networks train. GPU runs carry ``"device"`` in their configuration (so they
        are recorded apart from CPU runs) and, unless ``grouped=False``, train in groups.
    grouped : bool, optional
        Train the runs that share a network shape and protocol together, with
        :func:`sdagd.fit_many` (see :func:`group_key`), each group one job. Default: on a GPU,
        where one run uses a small slice of the device; off on the CPU. Each run still gets
        exactly what it would get alone, and its record is the same.

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
        ``wall_time`` (s), ``error`` (message or None).
    """
    optimizers = dict(DEFAULT_OPTIMIZERS if optimizers is None else optimizers)
    if not optimizers:
        raise ValueError("optimizers is empty")
    if evaluate_on not in ("test", "validation"):
        raise ValueError(f"evaluate_on must be 'test' or 'validation', got {evaluate_on!r}")
    for name, value, low in [("epochs", epochs, 0), ("batch_size", batch_size, 1), ("width", width, 1),
                             ("n_val", n_val, 1), ("workers", workers, 0), ("train_limit", train_limit, 1)]:
        if value is None and name in ("workers", "train_limit"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if batch_size > 2**31 - 1:
        raise ValueError(f"batch_size must be at most 2**31-1, got {batch_size}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"invalid device {device!r}; choose 'cpu' or 'cuda'")
    if device != "cpu":
        from . import device_available

        usable, why = device_available(device)
        if not usable:
            from .mlp import DeviceError

            raise DeviceError(f"device={device!r} cannot be used: {why}")
    grouped = device != "cpu" if grouped is None else bool(grouped)
    depths, activations, seeds = _check_grid(depths, activations, seeds, width, output, loss)
    configs = list(_configs(depths, activations, optimizers, seeds, epochs, batch_size, width, output, loss,
                            train_limit, evaluate_on, n_val, device))
    if not configs:
        raise ValueError("the sweep is empty: depths, activations, optimizers and seeds must all be non-empty")
    if out:
        _check_writable(out, append=True)
    if executor is None or not (data is None or isinstance(data, (str, os.PathLike))):
        # Here, not in the runs: a wrong data folder or bad arrays would fail every run alike.
        # (A custom executor's workers read data folders themselves, maybe elsewhere.)
        _check_data(data, evaluate_on, n_val, keep=executor is None and workers == 0)

    # One writer per results file: a second sweep into it stops here, naming the first.
    with (_files.output_lock(_lock_path(out), f"the results file {out}") if out else contextlib.nullcontext()):
        return _sweep_locked(configs, out, retry_failed, progress, grouped, executor, workers, device, data)


def _lock_path(path):
    """The lock file that guards the output ``path`` (a hidden file beside it)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{name}.lock")


def _sweep_locked(configs, out, retry_failed, progress, grouped, executor, workers, device, data):
    """sweep's runs, once its arguments are checked and its output is locked."""
    done = {}
    for record in load_records(out):
        if record.get("status") in ("ok", "diverged") or (record.get("status") == "failed" and not retry_failed):
            done[record["key"]] = record
    todo = [c for c in configs if run_key(c) not in done]
    bar = _Progress(len(todo), progress, "sweep")
    if len(todo) < len(configs):
        print(f"sweep: {len(configs) - len(todo)} of {len(configs)} runs already in {out}; resuming",
              file=sys.stderr, flush=True)

    def finish(record):
        # A failure outside the run (its data, the executor) is returned but not saved: a rerun
        # retries it instead of taking it as the run's result.
        retry = record.pop("retry", False)
        done[record["key"]] = record
        if out and not retry:
            _append_record(out, record)
        bar.update(record)

    # A job is one run, or one group of runs trained together; either gives a list of records.
    jobs = _groups(todo) if grouped else [[config] for config in todo]
    work = run_group if grouped else (lambda configs, data: [run_job(configs[0], data)])
    in_process = (executor is None and workers == 0) or (grouped and executor is None and device != "cpu")
    try:
        if in_process:  # (a GPU is one device: its groups run here, one after another)
            for job in jobs:
                for record in work(job, data):
                    finish(record)
        else:
            own = executor is None
            if own:
                executor = _default_pool(workers)
            try:
                submit = (lambda job: executor.submit(run_group, job, data)) if grouped else \
                    (lambda job: executor.submit(run_job, job[0], data))
                futures = {submit(job): job for job in jobs}
                for future in cf.as_completed(futures):
                    job = futures[future]
                    try:
                        result = future.result()
                    except Exception as exc:
                        # The executor, not the run, failed (a worker died, the pool broke, the
                        # job could not be sent).
                        for config in job:
                            record = _failed_record(config, f"{type(exc).__name__}: {exc} (executor failure; "
                                                            f"not saved, a rerun retries it)")
                            record["retry"] = True
                            finish(record)
                        continue
                    for record in result if grouped else [result]:
                        finish(record)
            finally:
                if own:
                    executor.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return [done[run_key(c)] for c in configs]


# -- tuning ----------------------------------------------------------------------------------

class TuneResult(dict):
    """``{(label, depth, activation): best optimizer}`` plus ``records`` and ``scores``
    (mean validation error per candidate). Call it as ``result(label)`` to get the callable
    ``(depth, activation) -> optimizer`` that :func:`sweep` accepts."""

    def __init__(self, best, records, scores):
        super().__init__(best)
        self.records, self.scores = records, scores

    def __call__(self, label):
        def choose(depth, activation):
            if (label, depth, activation) not in self:
                tuned = sorted(f"{k[0]} hl-{k[1]} {k[2]}" for k in self)
                raise ValueError(f"no tuned {label} for hl-{depth} {activation}; tuned: {', '.join(tuned)}")
            return self[(label, depth, activation)]

        return choose

    def table(self) -> str:
        """Markdown: the chosen hyperparameters and their validation MCR."""
        lines = ["| optimizer | depth | activation | chosen | validation MCR % |", "| --- | --- | --- | --- | --- |"]
        for (label, depth, activation), opt in sorted(self.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            score = self.scores[(label, depth, activation, json.dumps(opt.config(), sort_keys=True))]
            lines.append(f"| {label} | hl-{depth} | {activation} | {opt!r} | {100 * score:.2f} |")
        return "\n".join(lines)


def tune(candidates: Mapping[str, Iterable], depths=(1, 2, 3, 4, 5), activations=("sigmoid", "relu"),
         seeds=(0,), epochs: int = 2, n_val: int = 10000, **sweep_kwargs) -> TuneResult:
    """Pick each optimizer's hyperparameters per (depth, activation) on a validation split.

    ``candidates`` maps a label to the optimizers to try, e.g.
    ``{"SGD": [SGD(lr=0.1), SGD(lr=0.5)], "SDAGD": [SDAGD(radius=0.1), SDAGD(radius=0.3)]}``.
    Every candidate trains on the training set minus its last ``n_val`` images and is scored
    by the mean misclassification rate on those held-out images (never on the test set, as
    the paper's "fine-tuned" parameters require). Diverged or failed runs score 1.0. Other
    keyword arguments go to :func:`sweep` (``data``, ``executor``, ``workers``, ``out``...).
    """
    flat = {}
    for label, options in candidates.items():
        options = list(options)
        if not options:
            raise ValueError(f"no candidates for {label!r}")
        for i, optimizer in enumerate(options):
            flat[f"{label}#{i}"] = optimizer
    records = sweep(depths=depths, activations=activations, optimizers=flat, seeds=seeds, epochs=epochs,
                    evaluate_on="validation", n_val=n_val, **sweep_kwargs)
    errors, crashed = {}, {}
    for r in records:
        c = r["config"]
        label = c["optimizer"].rsplit("#", 1)[0]
        key = (label, c["depth"], c["activation"], json.dumps(c["optimizer_config"], sort_keys=True))
        errors.setdefault(key, []).append(r["final_error"] if r["status"] == "ok" else 1.0)
        slot = key[:3]
        crashed.setdefault(slot, []).append(r["status"] == "failed")
    for slot, flags in crashed.items():
        if all(flags):  # diverging is a verdict on a candidate; crashing everywhere is a bug
            first = next(r["error"] for r in records if r["status"] == "failed")
            raise RuntimeError(f"every tuning run for {slot[0]} hl-{slot[1]} {slot[2]} failed; first error: {first}")
    scores = {k: float(np.mean(v)) for k, v in errors.items()}
    best = {}
    for (label, depth, activation, cfg), score in scores.items():
        slot = (label, depth, activation)
        if slot not in best or score < best[slot][0]:
            best[slot] = (score, cfg)
    chosen = {slot: _optim.from_config(json.loads(cfg)) for slot, (score, cfg) in best.items()}
    return TuneResult(chosen, records, scores)
