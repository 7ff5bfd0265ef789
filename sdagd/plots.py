"""Figures from sweep records (matplotlib, an optional extra: ``pip install "sdagd[plot]"``).

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot, so it works
headless and in notebooks alike, and writes it to ``path`` when one is given.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np

from ._files import atomic_write

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


def training_curves(records, activation="sigmoid", column="train_error", path=None) -> Figure:
    """The paper's Fig. 3 (sigmoid) / Fig. 4 (ReLU): one panel per optimizer, one line per
    depth, the per-epoch ``column`` (default the training error, in %) averaged over seeds."""
    chosen = [r for r in records if r["config"]["activation"] == activation]
    if not chosen:
        raise ValueError(f"no records with activation {activation!r}")
    labels = _optimizers(chosen)
    fig, axes = _figure(len(labels))
    scale = 100.0 if column.endswith("error") else 1.0
    for ax, label in zip(axes, labels):
        runs = [r for r in chosen if r["config"]["optimizer"] == label]
        longest = 1
        for depth in sorted({r["config"]["depth"] for r in runs}):
            curve = _mean_curve([r for r in runs if r["config"]["depth"] == depth], column)
            if curve.size:
                ax.plot(np.arange(1, curve.size + 1), scale * curve, marker="o", ms=3, label=f"hl-{depth}")
                longest = max(longest, curve.size)
        ax.set_title(f"{label}, {activation}")
        _integer_epochs(ax, longest)
        ax.set_xlabel("epoch")
        ax.set_ylabel(column.replace("_", " ") + (" (%)" if scale != 1.0 else ""))
        ax.grid(alpha=0.3)
        ax.legend()
    figure_no = {"sigmoid": "Fig. 3", "relu": "Fig. 4"}.get(activation, "")
    fig.suptitle(f"{figure_no} style: {column.replace('_', ' ')} per epoch, mean over seeds".strip())
    if path:
        atomic_write(path, lambda f: fig.savefig(f, dpi=120, format=_format(path)))
    return fig


def gradient_flow(records, depth=5, activation="sigmoid", path=None) -> Figure:
    """Per-layer RMS of the weight gradient over epochs (log scale), one panel per optimizer:
    with a vanishing gradient the first layers' lines sit decades below the last layer's."""
    chosen = [r for r in records if r["config"]["depth"] == depth and r["config"]["activation"] == activation
              and r.get("history") and r["history"].get("grad_rms")]
    if not chosen:
        raise ValueError(f"no records with gradient diagnostics for hl-{depth} {activation}")
    labels = _optimizers(chosen)
    fig, axes = _figure(len(labels))
    for ax, label in zip(axes, labels):
        runs = [r for r in chosen if r["config"]["optimizer"] == label]
        per_run = [np.asarray(r["history"]["grad_rms"], dtype=float) for r in runs]  # (epochs, layers)
        n = min(p.shape[0] for p in per_run)
        mean = np.mean([p[:n] for p in per_run], axis=0)
        epochs = np.arange(1, n + 1)
        for layer in range(mean.shape[1]):
            name = "output layer" if layer == mean.shape[1] - 1 else f"layer {layer + 1}"
            values = np.where(mean[:, layer] > 0, mean[:, layer], math.nan)
            ax.semilogy(epochs, values, marker="o", ms=3, label=name)
        ax.set_title(f"{label}, hl-{depth} {activation}")
        _integer_epochs(ax, n)
        ax.set_xlabel("epoch")
        ax.set_ylabel("RMS of dE/dW")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle("Gradient flow: per-layer weight-gradient RMS, mean over seeds")
    if path:
        atomic_write(path, lambda f: fig.savefig(f, dpi=120, format=_format(path)))
    return fig
