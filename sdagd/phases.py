"""SDAGD's two phases, measured: how far the truncated Hessian diagonal h is from mu_k.

SDAGD's update g / (mu_k + h + eps) is meant to move from greatest descent (mu_k > h: a step of
length about R) to a diagonal Newton step (h > mu_k) as training proceeds (docs/algorithms.md section 5.2).
A parameter is in phase 2 when h > mu_k, so the ratio h / mu_k per parameter says how much
larger h would have to be for that parameter to switch: by a factor 1 / (h / mu_k). These
functions compute that ratio from the network's own gradient and h (the core's backprop and
Hessian recursion) on given mini-batches, with mu_k = ||g|| / R as the optimizer computes it.

    >>> ratios = curvature_ratios(net, X[:100], y[:100], radius=0.3)      # doctest: +SKIP
    >>> phase1_fraction(ratios)           # share of parameters with mu_k > h, as SDAGD counts
    >>> switch_scales(ratios)             # {0.5: s, ...}: h x s puts half of them in phase 2
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["curvature_ratios", "phase1_fraction", "switch_scales"]


def curvature_ratios(net, X, y, radius: float, norm: str = "layer") -> list:
    """Per layer, the flat float64 array of h / mu_k over its weights and biases, for the
    mini-batch ``(X, y)``: mu_k = ||g||_2 / ``radius``, the norm over that layer's W and b
    gradient (``norm="layer"``) or over all parameters (``norm="global"``). A layer whose
    gradient is zero has mu_k = 0 and ratio inf (every parameter with h > 0 is past the switch)."""
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    if norm not in ("layer", "global"):
        raise ValueError(f"norm must be 'layer' or 'global', got {norm!r}")
    _, grads = net.gradients(X, y)
    hessian = net.hessian_diagonal(X, y)
    squares = [float(np.sum(np.square(dW, dtype=np.float64)) + np.sum(np.square(db, dtype=np.float64)))
               for dW, db in grads]
    if norm == "global":
        squares = [sum(squares)] * len(squares)
    ratios = []
    for (hW, hb), square in zip(hessian, squares):
        h = np.concatenate([np.ravel(hW), np.ravel(hb)]).astype(np.float64)
        mu = math.sqrt(square) / radius
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(np.where(h > 0, h / mu, 0.0) if mu > 0 else np.where(h > 0, np.inf, 0.0))
    return ratios


def phase1_fraction(ratios, scale: float = 1.0) -> float:
    """Share of parameters with mu_k > ``scale`` x h (SDAGD's phase-1 count with
    ``hessian_scale=scale``), over the arrays of :func:`curvature_ratios` (one or several
    batches' worth, concatenated)."""
    r = np.concatenate([np.ravel(a) for a in ratios])
    return float(np.mean(r * scale < 1.0))


def switch_scales(ratios, shares=(0.5, 0.1, 0.01, 0.001)) -> dict:
    """For each share p: the factor s by which h must be multiplied so that a share p of the
    parameters has s x h > mu_k (inf where fewer than that have h > 0)."""
    r = np.sort(np.concatenate([np.ravel(a) for a in ratios]))
    out = {}
    for p in shares:
        if not 0 < p <= 1:
            raise ValueError(f"shares must be in (0, 1], got {p!r}")
        # the parameter ranked at the top share p: scaled by more than 1 / its ratio, it and
        # every parameter above it switch
        value = r[max(0, len(r) - math.ceil(p * len(r)))]
        out[p] = 1.0 / value if value > 0 else math.inf
    return out
