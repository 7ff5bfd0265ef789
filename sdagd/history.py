"""The record of a training run: one entry per epoch."""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from . import _core

if TYPE_CHECKING:  # pandas is optional: imported by to_frame() only when called
    import pandas

__all__ = ["History", "epoch_record"]

# Columns every history has, in the order they print.
COLUMNS = (
    "epoch",           # 1-based, counted over the network's whole life (resumed fits continue)
    "train_loss",      # mean mini-batch loss during the epoch, before each update
    "train_error",     # share of training rows misclassified during the epoch (0..1)
    "val_loss",        # on validation_data after the epoch (NaN without it)
    "val_error",       # 0..1 (NaN without validation data)
    "time",            # wall seconds of the epoch, evaluation included
    "mu_mean",         # SDAGD: mean of mu_k over steps and norm groups (NaN otherwise)
    "mu_min",
    "mu_max",
    "phase1_fraction", # SDAGD: share of parameter updates with mu_k > h (greatest-descent phase)
    "grad_rms",        # per weight layer (input first): RMS of dE/dW over the epoch's steps
    "saturated",       # per hidden layer: share of (row, unit) with f'(a) < 0.01 max f' (sigmoid,
                       # tanh; None for other activations)
    "dead",            # per hidden layer: share of units never positive in any row of the epoch
                       # (relu: zero throughout; leaky_relu: never above 0; None otherwise)
    "stalled",         # None, or why training has stopped: units saturated (sigmoid, tanh) or
                       # dead (relu) in every row, so that no gradient passes (see STALL_SHARE)
)

#: A hidden layer at or above this share of saturated (or dead) units passes no gradient; when
#: every hidden layer of a sigmoid or tanh network (or any of a ReLU network) is there, the
#: epoch is marked stalled. Healthy runs of the paper's nets stay below 0.7 (RESULTS.md).
STALL_SHARE = 0.95

# Which diagnostic each activation gets: the core's table (csrc/tables.h).
_SATURATING = tuple(a["name"] for a in _core.activation_table() if a["diagnostic"] == "saturation")
_RECTIFYING = tuple(a["name"] for a in _core.activation_table() if a["diagnostic"] == "inactive")


def diagnostics(stats, activation, widths):
    """Per-layer rates from the core's raw counts of one epoch: RMS of each layer's dE/dW,
    and per hidden layer the share of saturated (row, unit) pairs (sigmoid, tanh) or of units
    never active (relu, leaky_relu); None where the measure does not apply."""
    steps = stats["steps"]
    grad_rms = [math.sqrt(s / steps) if steps else math.nan for s in stats["grad_sq"]]
    hidden = widths[1:-1]
    saturated = [(n / rows if rows else math.nan) if activation in _SATURATING else None
                 for n, rows in zip(stats["saturated"], stats["unit_rows"])]
    dead = [(n / w if steps else math.nan) if activation in _RECTIFYING else None
            for n, w in zip(stats["inactive"], hidden)]
    return grad_rms, saturated, dead


def stall_reason(activation, saturated, dead):
    """Why an epoch's network can no longer learn, from its diagnostics, or None."""
    if activation in _SATURATING and saturated and all(s is not None and s >= STALL_SHARE for s in saturated):
        return (f"{activation} units saturated in every hidden layer ({100 * min(saturated):.1f}% or more of "
                f"each layer's activations have f' below 1% of its maximum): no gradient passes, training "
                f"has stalled; lower the learning rate or radius")
    if activation in _RECTIFYING and dead and any(d is not None and d >= STALL_SHARE for d in dead):
        layer = max(range(len(dead)), key=lambda i: dead[i])
        return (f"{100 * dead[layer]:.0f}% of the {activation} units of hidden layer {layer + 1} never fired "
                f"in this epoch: no gradient passes, training has stalled; lower the learning rate or radius")
    return None


def epoch_record(epoch, stats, val, seconds, activation, widths) -> dict:
    """One history row from the C core's epoch statistics and the validation result."""
    nan = math.nan
    sdagd = stats["mu_count"] > 0
    grad_rms, saturated, dead = diagnostics(stats, activation, widths)
    return {
        "epoch": epoch,
        "train_loss": stats["loss_sum"] / stats["rows"] if stats["rows"] else nan,
        "train_error": stats["errors"] / stats["rows"] if stats["rows"] else nan,
        "val_loss": val[0] if val else nan,
        "val_error": val[1] if val else nan,
        "time": seconds,
        "mu_mean": stats["mu_sum"] / stats["mu_count"] if sdagd else nan,
        "mu_min": stats["mu_min"] if sdagd else nan,
        "mu_max": stats["mu_max"] if sdagd else nan,
        "phase1_fraction": stats["phase1_params"] / stats["params_seen"] if sdagd else nan,
        "grad_rms": grad_rms,
        "saturated": saturated,
        "dead": dead,
        "stalled": stall_reason(activation, saturated, dead),
    }


def _nan_to_none(value):
    """JSON has no NaN: write it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


class History:
    """Per-epoch training record. Each column is a list: ``history.train_error[-1]``,
    ``history["val_error"]``; :meth:`records` gives one dict per epoch.

    Columns: ``epoch, train_loss, train_error, val_loss, val_error, time``; for SDAGD
    ``mu_mean, mu_min, mu_max, phase1_fraction`` (NaN for other optimizers); and the
    vanishing-gradient diagnostics, lists per layer: ``grad_rms`` (RMS of the weight gradient
    of each layer, input layer first: the first against the last shows a vanishing gradient),
    ``saturated`` (sigmoid/tanh) and ``dead`` (ReLU) per hidden layer; and ``stalled``, None or
    why the network stopped learning in that epoch. Errors are fractions in [0, 1]; multiply
    by 100 for the paper's MCR in %.
    """

    def __init__(self, records=(), diverged=None, stopped=None):
        self._columns = {name: [] for name in COLUMNS}
        self.diverged = diverged  #: None, or why training stopped on a NaN/inf
        self.stopped = stopped    #: None, or why a callback (e.g. EarlyStopping) ended training early
        for record in records:
            self.append(record)

    def append(self, record: dict) -> None:
        for name in COLUMNS:  # records saved before a column existed read as None there
            self._columns[name].append(record.get(name))

    def __getitem__(self, name):
        return self._columns[name]

    def __getattr__(self, name):
        columns = self.__dict__.get("_columns", {})
        if name in columns:
            return columns[name]
        raise AttributeError(name)

    def __len__(self):
        return len(self._columns["epoch"])

    def records(self) -> list:
        return [{name: self._columns[name][i] for name in COLUMNS} for i in range(len(self))]

    def as_dict(self) -> dict:
        """The columns as lists, with ``diverged``, ``stopped`` and the ``sdagd_version`` that
        wrote it (for records saved as JSON)."""
        from ._version import __version__
        return {"sdagd_version": __version__, "diverged": self.diverged, "stopped": self.stopped,
                **{name: list(values) for name, values in self._columns.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """The inverse of :meth:`as_dict` (also reads records written before a column existed)."""
        n = len(data.get("epoch", []))
        records = [{name: data[name][i] for name in COLUMNS if name in data} for i in range(n)]
        return cls(records, diverged=data.get("diverged"), stopped=data.get("stopped"))

    def save_json(self, path) -> None:
        """Write :meth:`as_dict` as JSON to ``path``, atomically (NaN written as null)."""
        from ._files import atomic_write
        text = json.dumps(_nan_to_none(self.as_dict()), indent=1)
        atomic_write(path, lambda f: f.write(text.encode()))

    def to_frame(self) -> pandas.DataFrame:
        """A pandas DataFrame with one row per epoch, indexed by ``epoch``; per-layer columns
        (``grad_rms``, ``saturated``, ``dead``) hold one list per row. Needs pandas (an optional
        dependency: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("History.to_frame needs pandas, which sdagd does not require: pip install pandas "
                              "(or use history.records(), a list of dicts)") from None
        frame = pd.DataFrame(self.records(), columns=list(COLUMNS))
        return frame.set_index("epoch")

    def __repr__(self):
        if not len(self):
            return "History(no epochs)"
        last = self.records()[-1]
        return (f"History({len(self)} epochs; last: train_error={last['train_error']:.4f}, "
                f"val_error={last['val_error']:.4f})")
