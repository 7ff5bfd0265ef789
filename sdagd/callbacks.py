"""Callbacks for :meth:`sdagd.MLP.fit`: early stopping on a monitored figure and checkpoints.

A callback is a :class:`Callback` (its :meth:`~Callback.on_epoch_end` is called) or any
callable ``f(net, record, optimizer)``, run after each epoch once its record is in the
history; returning True stops training after that epoch. A callback that raises stops
:meth:`~sdagd.MLP.fit` with that exception, and the epochs done stay in ``net.history`` (and in
the exception's ``history`` attribute).

>>> import numpy as np, sdagd
>>> from sdagd.callbacks import EarlyStopping
>>> rng = np.random.default_rng(0)
>>> X, y = rng.random((60, 5), dtype=np.float32), rng.integers(0, 2, 60)
>>> net = sdagd.MLP([5, 8, 2], seed=0)
>>> stop = EarlyStopping(monitor="val_error", patience=2)
>>> history = net.fit(X[:40], y[:40], sdagd.optim.SGD(lr=0.5), epochs=50, batch_size=10,
...                   validation_data=(X[40:], y[40:]), progress=False, callbacks=[stop])
>>> len(history) < 50 and history.stopped is not None
True
"""
from __future__ import annotations

import math
import os
__all__ = ["Callback", "EarlyStopping", "Checkpoint"]

_MONITORABLE = ("train_loss", "train_error", "val_loss", "val_error")


class Callback:
    """Base class: override :meth:`on_epoch_end` (and :meth:`on_train_begin` if needed)."""

    #: Why this callback stopped training (None while it has not).
    stop_reason: str | None = None

    def on_train_begin(self, net, optimizer) -> None:
        """Called once at the start of each fit."""

    def on_epoch_end(self, net, record: dict, optimizer) -> bool | None:
        """Called after each epoch with its record; return True to stop training."""
        return None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best`` (default) the network then gets back the parameters of its
    best epoch. Figures to monitor: ``val_error`` (default), ``val_loss``, ``train_loss``,
    ``train_error`` (all lower is better). Monitoring a validation figure needs
    ``validation_data`` in fit (else ValueError after the first epoch, saying so)."""

    def __init__(self, monitor: str = "val_error", patience: int = 3, min_delta: float = 0.0,
                 restore_best: bool = True):
        if monitor not in _MONITORABLE:
            raise ValueError(f"EarlyStopping: invalid monitor {monitor!r}; choose one of {list(_MONITORABLE)}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 1, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.restore_best = bool(restore_best)
        self.on_train_begin(None, None)

    def on_train_begin(self, net, optimizer) -> None:
        self.best, self.best_epoch, self.wait, self.stop_reason = math.inf, None, 0, None
        self._best_params = None

    def on_epoch_end(self, net, record: dict, optimizer) -> bool:
        value = record[self.monitor]
        if value is None or math.isnan(value):
            hint = " (pass validation_data to fit)" if self.monitor.startswith("val_") else ""
            raise ValueError(f"EarlyStopping: {self.monitor} is NaN in epoch {record['epoch']}{hint}")
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self._best_params = net.params
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        self.stop_reason = (f"EarlyStopping: {self.monitor} did not improve on {self.best:.6g} (epoch "
                            f"{self.best_epoch}) for {self.patience} epochs")
        if self.restore_best and self._best_params is not None:
            net.set_params(self._best_params)
            self.stop_reason += f"; the parameters of epoch {self.best_epoch} were restored"
        return True


class Checkpoint(Callback):
    """Save the network every ``every`` epochs (counted over the network's life) with
    :meth:`sdagd.MLP.save`, its optimizer state included unless ``optimizer=False``, and the
    history so far as JSON beside it (``<path without .npz>.history.json``). ``path`` may hold
    ``{epoch}`` to keep one file per checkpoint (e.g. ``"run-{epoch:03d}.npz"``); otherwise
    each save replaces the last, atomically."""

    def __init__(self, path, every: int = 1, optimizer: bool = True):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Checkpoint: every must be an integer >= 1, got {every!r}")
        self.path, self.every, self.with_optimizer = os.fspath(path), every, bool(optimizer)
        self.saved: list = []  #: the paths written, in order

    def on_epoch_end(self, net, record: dict, optimizer) -> bool:
        if record["epoch"] % self.every:
            return False
        path = self.path.format(epoch=record["epoch"])
        net.save(path, optimizer=optimizer if self.with_optimizer else None)
        if net.history is not None:
            net.history.save_json(history_path(path))
        self.saved.append(path)
        return False


def history_path(checkpoint) -> str:
    """Where the history of a checkpoint goes: beside it, ``run.npz`` -> ``run.history.json``."""
    root, ext = os.path.splitext(os.fspath(checkpoint))
    return (root if ext == ".npz" else os.fspath(checkpoint)) + ".history.json"


def check_callbacks(callbacks) -> list:
    """fit's ``callbacks`` argument as a list, each checked to be usable."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for c in callbacks:
        if not (isinstance(c, Callback) or callable(c)):
            raise TypeError(f"callbacks must be sdagd.callbacks.Callback objects or callables f(net, record, "
                            f"optimizer), got {c!r}")
    return callbacks


def run_epoch_end(callbacks, net, record, optimizer) -> str | None:
    """Run every callback on the epoch's record; why training should stop, or None."""
    reason = None
    for c in callbacks:
        stop = c.on_epoch_end(net, record, optimizer) if isinstance(c, Callback) else c(net, record, optimizer)
        if stop and reason is None:
            reason = getattr(c, "stop_reason", None) or f"stopped by callback {c!r} after epoch {record['epoch']}"
    return reason

