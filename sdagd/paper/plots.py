"""Figures from sweep records (matplotlib, an optional extra: ``pip install "sdagd[plot]"``).

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot, so it works
headless and in notebooks alike, and writes it to ``path`` when one is given.
"""
from __future__ import annotations

import math
import os

from typing import TYPE_CHECKING

import numpy as np

from .._files import atomic_write

__all__ = ["training_curves", "gradient_flow"]

if TYPE_CHECKING:  # matplotlib is optional
    from matplotlib.figure import Figure


def _format(path):
    """The image format the file name asks for (matplotlib needs it when writing to a file)."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    return ext or "png"


def _figure(n_panels, width=5.0, height=3.8):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'sdagd[plot]' (the tables work without it)") from None
    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def _integer_epochs(ax, n_epochs):
    """Whole-number epoch ticks (MaxNLocator alone falls back to fractions for one epoch)."""
    from matplotlib.ticker import MaxNLocator

    if n_epochs <= 12:
        ax.set_xticks(range(1, n_epochs + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _mean_curve(records, column):
    """Mean over seeds, epoch by epoch, of a history column (runs of unequal length: the
    common prefix, so a diverged run shortens the curve rather than bending it)."""
    curves = [np.asarray(r["history"][column], dtype=float) for r in records if r.get("history")]
    curves = [c for c in curves if c.size]
    if not curves:
        return np.array([])
    n = min(c.shape[0] for c in curves)
    return np.mean([c[:n] for c in curves], axis=0)


def _optimizers(records):
    seen = []
    for r in records:
        if r["config"]["optimizer"] not in seen:
            seen.append(r["config"]["optimizer"])
    return seen


# Sized for a paper's column (3.5 in wide) and saved at 300 dpi: 8-point text stays 8 points
# when the figure is printed at the column's width. Panels are stacked, (a) above (b), with one
# shared x- and y-axis, and one legend above them all so that it covers no data.
_COLUMN_WIDTH = 3.5  # inches
_PANEL_HEIGHT = 1.75  # inches
_DPI = 300
_FONT = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
         "xtick.labelsize": 7, "ytick.labelsize": 7}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _column_figure(n_panels):
    """A column-wide figure of ``n_panels`` stacked panels sharing both axes, with room on top
    for a legend."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'sdagd[plot]' (the tables work without it)") from None
    fig = Figure(figsize=(_COLUMN_WIDTH, 0.55 + _PANEL_HEIGHT * n_panels), layout="constrained")
    axes = fig.subplots(n_panels, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    return fig, axes


def _colors(n):
    """``n`` colours in order (a sequential map, so depth or layer order reads as a gradient),
    stopping short of viridis's pale yellow end."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.85 * i / max(n - 1, 1)) for i in range(n)]


def _band(curves):
    """Mean, min and max over runs, epoch by epoch, on the common prefix (a diverged run
    shortens the curve rather than bending it)."""
    curves = [np.asarray(c, dtype=float) for c in curves]
    curves = [c for c in curves if c.size]
    if not curves:
        return None
    n = min(c.shape[0] for c in curves)
    stack = np.array([c[:n] for c in curves])
    return stack.mean(axis=0), stack.min(axis=0), stack.max(axis=0)


def _positive(values):
    """Values for a log axis: zero or negative ones become gaps, not errors."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, math.nan)


def _log_axis(ax, plain=True):
    """A log y-axis; ``plain`` labels decades as 0.1, 1, 10 (percentages), else as powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}") if plain else LogFormatterSciNotation())
    if plain:  # within less than a decade there is no major tick: label the minor ones, plainly too
        def minor(value, _):
            low, high = ax.get_ylim()
            return f"{value:g}" if high < 10 * low else ""

        ax.yaxis.set_minor_formatter(FuncFormatter(minor))
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor")


def _spread(records):
    """What a line and its band show, in words."""
    seeds = len({r["config"].get("seed", 0) for r in records})
    return f"lines: mean of {seeds} seeds, bands: their range" if seeds > 1 else "1 seed"


def _epoch_axis(ax, n_epochs):
    """Whole epochs on the x-axis: every epoch up to 12, else 1 and every fifth."""
    if n_epochs <= 12:
        ax.set_xticks(range(1, n_epochs + 1))
    else:
        ax.set_xticks([1] + list(range(5, n_epochs + 1, 5)))
    ax.set_xlim(0.5, n_epochs + 0.5)
    ax.set_xlabel("epoch")


def _panel_labels(labels, chosen):
    if chosen is None:
        return labels
    missing = [lab for lab in chosen if lab not in labels]
    if missing:
        raise ValueError(f"no records of optimizer(s) {missing}; the records have {labels}")
    return list(chosen)


def _save(fig, path):
    if path:
        atomic_write(path, lambda f: fig.savefig(f, dpi=_DPI, format=_format(path)))


def training_curves(records, activation="sigmoid", column="train_error", path=None, optimizers=None) -> Figure:
    """The paper's Fig. 3 (sigmoid) / Fig. 4 (ReLU): one panel per optimizer, (a), (b), ...
    stacked with a shared log y-axis, one line per depth: the per-epoch ``column`` (default the
    training error, in %), the mean over seeds as a line and their range as a band.
    ``optimizers`` picks and orders the panels (default: every optimizer in the records)."""
    from matplotlib import rc_context

    chosen = [r for r in records if r["config"]["activation"] == activation]
    if not chosen:
        raise ValueError(f"no records with activation {activation!r}")
    labels = _panel_labels(_optimizers(chosen), optimizers)
    scale = 100.0 if column.endswith("error") else 1.0
    depths = sorted({r["config"]["depth"] for r in chosen})
    colors = dict(zip(depths, _colors(len(depths))))
    with rc_context(_FONT):
        fig, axes = _column_figure(len(labels))
        longest = 1
        for i, (ax, label) in enumerate(zip(axes, labels)):
            runs = [r for r in chosen if r["config"]["optimizer"] == label]
            seeds = len({r["config"].get("seed", 0) for r in runs})
            for j, depth in enumerate(depths):
                band = _band([r["history"][column] for r in runs if r["config"]["depth"] == depth
                              and r.get("history")])
                if band is None:
                    continue
                mean, lo, hi = (scale * b for b in band)
                epochs = np.arange(1, mean.size + 1)
                ax.fill_between(epochs, _positive(lo), _positive(hi), color=colors[depth], alpha=0.2, lw=0)
                ax.plot(epochs, _positive(mean), color=colors[depth], lw=1.2, marker=_MARKERS[j % len(_MARKERS)],
                        ms=2.5, label=f"hl-{depth}" if i == 0 else None)
                longest = max(longest, mean.size)
            ax.set_title(f"({chr(ord('a') + i)}) {label}", loc="left")
            name = "training error" if column == "train_error" else column.replace("_", " ")
            ax.set_ylabel(name + (" (%)" if scale != 1.0 else ""))
            _log_axis(ax)
        _epoch_axis(axes[-1], longest)
        fig.legend(loc="outside upper center", ncol=len(depths), frameon=False, handlelength=1.8,
                   columnspacing=1.0, title=f"{activation} units; {_spread(chosen)}")
    _save(fig, path)
    return fig


def gradient_flow(records, depth=5, activation="sigmoid", path=None, optimizers=None) -> Figure:
    """Per-layer RMS of the weight gradient over epochs, one panel per optimizer, stacked with
    a shared log y-axis: the mean over seeds as a line and their range as a band. With a
    vanishing gradient the first layers' lines sit decades below the output layer's.
    ``optimizers`` picks and orders the panels (default: every optimizer in the records)."""
    from matplotlib import rc_context

    chosen = [r for r in records if r["config"]["depth"] == depth and r["config"]["activation"] == activation
              and r.get("history") and r["history"].get("grad_rms")]
    if not chosen:
        raise ValueError(f"no records with gradient diagnostics for hl-{depth} {activation}")
    labels = _panel_labels(_optimizers(chosen), optimizers)
    with rc_context(_FONT):
        fig, axes = _column_figure(len(labels))
        n_layers = len(chosen[0]["history"]["grad_rms"][0])
        colors = _colors(n_layers)
        longest = 1
        for i, (ax, label) in enumerate(zip(axes, labels)):
            runs = [r for r in chosen if r["config"]["optimizer"] == label]
            per_run = [np.asarray(r["history"]["grad_rms"], dtype=float) for r in runs]  # (epochs, layers)
            for layer in range(n_layers):
                mean, lo, hi = _band([p[:, layer] for p in per_run])
                epochs = np.arange(1, mean.size + 1)
                name = "output" if layer == n_layers - 1 else f"layer {layer + 1}"
                ax.fill_between(epochs, _positive(lo), _positive(hi), color=colors[layer], alpha=0.2, lw=0)
                ax.plot(epochs, _positive(mean), color=colors[layer], lw=1.2, marker=_MARKERS[layer % len(_MARKERS)],
                        ms=2.5, label=name if i == 0 else None)
                longest = max(longest, mean.size)
            ax.set_title(f"({chr(ord('a') + i)}) {label}", loc="left")
            ax.set_ylabel("RMS of dE/dW")
            _log_axis(ax, plain=False)
        _epoch_axis(axes[-1], longest)
        fig.legend(loc="outside upper center", ncol=min(n_layers, 3), frameon=False, handlelength=1.8,
                   columnspacing=1.0, title=f"hl-{depth} {activation}; {_spread(chosen)}")
    _save(fig, path)
    return fig
