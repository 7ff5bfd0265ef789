"""One run, or one group of runs, of the paper's experiment as a job: a JSON-able configuration
in, a JSON-able record out, never an exception. Also the MNIST arrays the jobs train on,
loaded once per process, the check of those arrays before a sweep starts, and the per-epoch
checkpoints from which a run cut off by a killed sweep continues.

Jobs are module-level functions so that any :class:`concurrent.futures.Executor` (a process
pool, a Dask cluster) can run them in another process.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import socket
import time
import traceback

import numpy as np

from .. import _blas, _version, optim
from .._files import atomic_write_text
from ..datasets import load_mnist
from ..history import COLUMNS, History
from ..many import fit_many
from ..mlp import MLP, as_inputs, as_labels
from .grid import paper_sizes, run_key

__all__ = ["run_job", "run_group", "failed_record", "load_data", "training_size", "check_data", "checkpoint_paths",
           "data_fingerprint"]

_DATA_CACHE: dict = {}  # per process: MNIST loaded once per worker, not once per job


def load_data(data):
    """``data`` is a directory (or None: the loader's search) of the MNIST IDX files, or the
    arrays themselves ``((X_train, y_train), (X_test, y_test))``. A folder is loaded once per
    process."""
    if data is None or isinstance(data, (str, os.PathLike)):
        key = None if data is None else os.fspath(data)
        if key not in _DATA_CACHE:
            _DATA_CACHE[key] = load_mnist(key)
        return _DATA_CACHE[key]
    try:
        (X_train, y_train), (X_test, y_test) = data
    except (TypeError, ValueError):
        raise TypeError("data must be an MNIST folder, None (the loader's search) or arrays "
                        "((X_train, y_train), (X_test, y_test))") from None
    return (X_train, y_train), (X_test, y_test)


def training_size(data) -> int:
    """How many training images ``data`` (as :func:`load_data` takes it) holds. A folder not
    loaded in this process already is read but not kept (the worker processes load their own)."""
    if data is None or isinstance(data, (str, os.PathLike)):
        key = None if data is None else os.fspath(data)
        if key in _DATA_CACHE:
            return len(_DATA_CACHE[key][0][0])
        return len(load_mnist(key)[0][0])
    return len(load_data(data)[0][0])

def _split(data, config):
    """Training and evaluation arrays for one run: the test set, or the last ``n_val`` rows
    of the training set held out (tuning never sees the test set)."""
    (X_train, y_train), (X_test, y_test) = load_data(data)
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


def _processor() -> str:
    """The processor's model name with its family and model numbers (Linux's model name alone
    is often just "AMD EPYC" in a virtual machine); elsewhere what platform knows."""
    fields = _blas.cpu_fields()
    if fields.get("model name"):
        numbers = ", ".join(f"{k} {fields[k]}" for k in ("cpu family", "model") if k in fields)
        return fields["model name"] + (f" ({numbers})" if numbers else "")
    import platform

    return platform.processor() or platform.machine() or "unknown"


def machine(device="cpu") -> dict:
    """Where a run ran, for its record: the device, the processor, the instruction set of the
    core's loops, the BLAS kernels and the thread count (a record read months later must say
    which machine its numbers and timings come from; the host name alone does not). Never
    raises: a record is written whatever the machine does or does not say about itself."""
    try:
        from .. import cpu_info

        info = cpu_info()
        return {"device": device, "processor": _processor(), "isa": info["isa"], "blas": info["blas"],
                "threads": info["threads"]}
    except Exception as exc:  # noqa: BLE001 (run_job never raises)
        return {"device": device, "error": f"{type(exc).__name__}: {exc}"}


def failed_record(config, error=None):
    """A record before (or instead of) a run: status "failed" until the run says otherwise."""
    return {"key": run_key(config), "config": config, "status": "failed", "history": None,
            "final_error": math.nan, "final_loss": math.nan, "wall_time": 0.0, "error": error,
            "host": socket.gethostname(), "pid": os.getpid(), "sdagd_version": _version.__version__,
            "machine": machine(config.get("device", "cpu") if isinstance(config, dict) else "cpu")}


def run_job(config: dict, data=None, checkpoint_dir=None) -> dict:
    """Train and evaluate one network; never raises: failures come back as records.

    ``config`` keys: depth, width, activation, output, loss, optimizer (a label),
    optimizer_config (:meth:`sdagd.optim.Optimizer.config`), seed, epochs, batch_size,
    train_limit, evaluate_on ("test" or "validation"), n_val.

    A failure before training starts (the data cannot be loaded or split, the configuration
    does not make a network) is not the run's own result: its record carries ``"retry": True``,
    and :func:`sdagd.paper.sweep` returns it without saving it, so that a rerun (with the data fixed) runs
    it again.

    With ``checkpoint_dir`` the run saves its network, optimizer state and history there after
    every epoch but the last (:func:`checkpoint_paths`), and a run that finds its own checkpoint
    there goes on from it instead of starting again: with the same numbers as a run never cut
    off (each epoch's order comes from the seed and the epoch's number), ``wall_time`` the sum
    of its parts and ``resumed_at_epoch`` in the record. A checkpoint that cannot be read, or
    belongs to another configuration, other data or another sdagd version, is ignored; one that
    cannot be written stops the checkpoints, not the run (``checkpoint_error`` in the record
    says why). The caller removes the files once the record is safe (:func:`sdagd.paper.sweep`
    does, after appending it to its results file).
    """
    record = failed_record(config)
    start = time.perf_counter()
    spent_before = 0.0
    training = False
    try:
        X_train, y_train, X_eval, y_eval = _split(data, config)
        # Hashing the data takes a fraction of a second per run: only where a checkpoint is read
        # or written (never in one-epoch runs, which write none).
        fingerprint = functools.cache(lambda: data_fingerprint(X_train, y_train, X_eval, y_eval))
        resumed = _resume(config, checkpoint_dir, fingerprint) if checkpoint_dir is not None else None
        if resumed is not None:
            net, optimizer, done, spent_before = resumed
            record["resumed_at_epoch"] = len(done)
        else:
            net, optimizer, done = _network(config), optim.from_config(config["optimizer_config"]), History()
        saver = (_EpochCheckpoint(config, checkpoint_dir, fingerprint, done, spent_before, start)
                 if checkpoint_dir is not None else None)
        training = True
        history = net.fit(X_train, y_train, optimizer, epochs=config["epochs"] - len(done),
                          batch_size=config["batch_size"], validation_data=(X_eval, y_eval), progress=False,
                          on_divergence="stop", callbacks=[saver] if saver else None)
        history = History(done.records() + history.records(), diverged=history.diverged, stopped=history.stopped)
        _finish_record(record, net, history, X_eval, y_eval)
        if saver is not None and saver.error:
            record["checkpoint_error"] = saver.error
    except Exception as exc:  # recorded, not lost: one bad run must not end a sweep
        note = "" if training else " (before training: not saved, a rerun retries it)"
        record["error"] = f"{type(exc).__name__}: {exc}{note}\n{traceback.format_exc(limit=5)}"
        if not training:  # the data or the configuration failed, not this run
            record["retry"] = True
    record["wall_time"] = spent_before + time.perf_counter() - start
    return record


def checkpoint_paths(checkpoint_dir, config) -> tuple:
    """Where a run's checkpoint lies in ``checkpoint_dir``: the network with its optimizer state
    (.npz, :meth:`sdagd.MLP.save`) and, beside it, the run's key, the epochs done, the seconds
    spent and the history so far (.json). Named by a hash of the run's key, which is too long for
    a file name."""
    name = hashlib.sha256(run_key(config).encode()).hexdigest()[:24]
    base = os.path.join(os.fspath(checkpoint_dir), name)
    return base + ".npz", base + ".json"


_CHECKPOINT_JSON_LIMIT = 16 << 20  # a 20-epoch history is tens of kilobytes; more is not ours


def data_fingerprint(*arrays) -> str:
    """A hash of the arrays a run trains and evaluates on (shapes, types and bytes): a
    checkpoint made on other data, of the same shapes, is not resumed."""
    digest = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def _resume(config, checkpoint_dir, fingerprint):
    """``(net, optimizer, History of the epochs done, seconds spent)`` from the run's checkpoint,
    or None when there is none, or it is damaged, another run's (configuration, data as
    ``fingerprint()`` hashes it, or sdagd version), or not from before the end. The files are
    untrusted: anything wrong in them means starting again, never a failed run."""
    network_path, state_path = checkpoint_paths(checkpoint_dir, config)
    if not (os.path.isfile(network_path) and os.path.isfile(state_path)):
        return None
    try:
        if os.path.getsize(state_path) > _CHECKPOINT_JSON_LIMIT:
            return None
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        if (state.get("key") != run_key(config) or state.get("data") != fingerprint()
                or state.get("sdagd_version") != _version.__version__):
            return None
        seconds, done = state["seconds"], History.from_dict(state["history"])
        if not (isinstance(seconds, (int, float)) and 0 <= seconds < math.inf and _plausible(done)):
            return None
        net, optimizer = MLP.load(network_path, with_optimizer=True, device=config.get("device", "cpu"))
        expected = optim.from_config(config["optimizer_config"]).config()
        if (net.config != _network(config).config or optimizer is None or optimizer.config() != expected
                or not 0 < len(done) == net.epochs_trained == state["epochs"] <= config["epochs"]):
            return None
        return net, optimizer, done, float(seconds)
    except Exception:  # noqa: BLE001 (damaged in any way: start again; the run must not fail on it)
        return None


def _plausible(history) -> bool:
    """A checkpoint's history holds what fit writes: epochs 1..n, numbers (or None) per epoch,
    lists of numbers per layer, and None or a sentence for ``stalled``."""
    def number(x):
        return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))

    per_layer = ("grad_rms", "saturated", "dead")
    for name in COLUMNS:
        values = history[name]
        if name == "stalled":
            ok = all(v is None or isinstance(v, str) for v in values)
        elif name in per_layer:
            ok = all(v is None or (isinstance(v, list) and all(map(number, v))) for v in values)
        else:
            ok = all(map(number, values))
        if not ok:
            return False
    return history.epoch == list(range(1, len(history) + 1))


class _EpochCheckpoint:
    """fit's callback that writes the run's checkpoint after each epoch but the last (network
    first, then the state file that vouches for it); after a failed write it stops trying and
    says why. After the last epoch only the evaluation is left, and the record follows within
    seconds: a checkpoint there would be written to be deleted (in the quick protocol, of one
    epoch per run, every checkpoint would)."""

    def __init__(self, config, checkpoint_dir, fingerprint, done, spent_before, start):
        self.key, self.fingerprint, self.last_epoch = run_key(config), fingerprint, config["epochs"]
        self.done, self.spent_before, self.start = done, spent_before, start
        self.network_path, self.state_path = checkpoint_paths(checkpoint_dir, config)
        self.checkpoint_dir, self.error = checkpoint_dir, None

    def __call__(self, net, record, optimizer):
        if self.error is not None or record["epoch"] >= self.last_epoch:
            return False
        try:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            net.save(self.network_path, optimizer)
            history = History(self.done.records() + net.history.records())
            state = {"key": self.key, "data": self.fingerprint(), "sdagd_version": _version.__version__,
                     "epochs": net.epochs_trained, "history": history.as_dict(),
                     "seconds": self.spent_before + time.perf_counter() - self.start}
            atomic_write_text(self.state_path, json.dumps(state, allow_nan=True))
        except (OSError, ValueError) as exc:  # the run matters more than its checkpoint
            self.error = f"checkpoint after epoch {record['epoch']} not written: {type(exc).__name__}: {exc}"
        return False


def _network(config):
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


def run_group(configs: list, data=None) -> list:
    """Train runs of one :func:`~sdagd.paper.grid.group_key` together (:func:`sdagd.fit_many`); one record each,
    as :func:`run_job` makes it, with ``group_size`` set and ``wall_time`` the group's."""
    records = [failed_record(c) for c in configs]
    start = time.perf_counter()
    training = False
    try:
        X_train, y_train, X_eval, y_eval = _split(data, configs[0])
        nets = [_network(c) for c in configs]
        opts = [optim.from_config(c["optimizer_config"]) for c in configs]
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


def check_data(data, evaluate_on, n_val, keep):
    """Load (a folder; cached for this process's runs if ``keep``) or check (arrays) the data
    the runs will use, and that the validation split fits it."""
    if keep or not (data is None or isinstance(data, (str, os.PathLike))):
        (X_train, y_train), (X_test, y_test) = load_data(data)
    else:  # loaded by each worker: checked here, not kept
        (X_train, y_train), (X_test, y_test) = load_mnist(data)
    for part, X, y in [("train", X_train, y_train), ("test", X_test, y_test)]:
        X = as_inputs(X, 784, f"X_{part}")
        as_labels(y, X.shape[0], 10, f"y_{part}")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"X_{part} contains NaN or inf")
    if evaluate_on == "validation" and not n_val < len(X_train):
        raise ValueError(f"n_val must be below the {len(X_train)} training images, got {n_val}")
