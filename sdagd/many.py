"""Training many networks of one shape together: :func:`fit_many`.

The paper's protocol is dozens of small trainings of the same shapes. Trained together, K
networks share one pass of the data loop: on a GPU their products run as batched GEMMs and
their elementwise updates as single launches over all K parameter slabs; on the CPU each
core takes whole networks, with single-threaded GEMMs side by side. Each network still gets
exactly what :meth:`sdagd.MLP.fit` would give it alone: its own shuffling seed, optimizer,
hyperparameters and activation, the same steps, diagnostics and divergence handling.
"""
from __future__ import annotations

import math
import sys
from typing import Callable, Sequence

from . import _core
from ._training import Training
from .history import History
from .mlp import MLP, DivergenceError, as_inputs, as_labels, check_fit_arguments, is_int, require_optimizer
from .optim import Optimizer

__all__ = ["fit_many"]


def fit_many(nets: Sequence[MLP], optimizers: Sequence[Optimizer], X, y, epochs: int = 1, batch_size: int = 100,
             validation_data=None, seeds: Sequence[int] | None = None,
             progress: bool | Callable[[int, dict], None] = True, on_divergence: str = "raise") -> list:
    """Train K networks of the same sizes, output and loss together on ``(X, y)``.

    Equivalent to ``[net.fit(X, y, opt, epochs, batch_size, validation_data, seed) for net,
    opt, seed in zip(nets, optimizers, seeds)]``, and bit for bit so on the CPU (same
    parameters, histories and optimizer states), but one pass over the data drives all of
    them: on a GPU that is the difference between many launch-bound trainings and one
    arithmetic-bound one.

    Parameters
    ----------
    nets : sequence of MLP
        Distinct networks with the same ``sizes``, ``output``, ``loss`` and ``device``; their
        activations, seeds and training histories may differ.
    optimizers : sequence of sdagd.optim.Optimizer
        One per network (distinct objects; a fresh one or one already bound to that network).
        Optimizers that compute the Hessian diagonal every few steps (``SDAGD(hessian_every=n)``)
        must share that schedule with the others that use h.
    X, y, epochs, batch_size, validation_data
        As for :meth:`MLP.fit`; the data go to the device once for all networks.
    seeds : sequence of int, optional
        Shuffling seed per network; default: each network's own ``seed``.
    progress : bool or callable, default True
        True prints one line per epoch for the group on stderr (and every warning about a
        stalled or diverged network); a callable receives ``(k, record)`` for network k's
        epoch record.
    on_divergence : {"raise", "stop"}, default "raise"
        A network whose loss or parameters become NaN or inf always stops alone, with
        ``history.diverged`` set; the others train on. With "raise", a
        :class:`sdagd.DivergenceError` naming the diverged networks is raised once all are
        done (its ``histories`` attribute holds every history).

    Returns
    -------
    list of History
        One per network, in order; ``time`` is the wall time of the shared epoch plus the
        network's validation.

    Examples
    --------
    >>> import numpy as np, sdagd
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.random((300, 20), dtype=np.float32), rng.integers(0, 3, 300)
    >>> nets = [sdagd.MLP([20, 16, 3], activation=a, seed=s) for a in ("sigmoid", "relu") for s in (0, 1)]
    >>> opts = [sdagd.optim.SGD(lr=0.5), sdagd.optim.SDAGD(radius=0.3)] * 2
    >>> histories = sdagd.fit_many(nets, opts, X, y, epochs=2, batch_size=30, progress=False)
    >>> [len(h) for h in histories]
    [2, 2, 2, 2]
    """
    nets, optimizers = list(nets), list(optimizers)
    if not nets or len(nets) != len(optimizers):
        raise ValueError(f"fit_many needs one optimizer per network and at least one network, got "
                         f"{len(nets)} networks and {len(optimizers)} optimizers")
    for k, (net, opt) in enumerate(zip(nets, optimizers)):
        if not isinstance(net, MLP):
            raise TypeError(f"nets[{k}] must be an sdagd.MLP, got {type(net).__name__}")
        require_optimizer(opt)
    if len({id(n) for n in nets}) < len(nets) or len({id(o) for o in optimizers}) < len(optimizers):
        raise ValueError("each network and each optimizer may appear only once")
    lead = nets[0]
    for k, net in enumerate(nets[1:], 1):
        mine, theirs = net.config, lead.config
        for key in ("sizes", "output", "loss", "device"):
            if mine[key] != theirs[key]:
                raise ValueError(f"nets[{k}] has {key}={mine[key]!r} but nets[0] has {theirs[key]!r}; only networks "
                                 f"of one shape train together (group them with sdagd.paper.sweep)")
    X = as_inputs(X, lead.sizes[0])
    y = as_labels(y, X.shape[0], lead.sizes[-1])
    X_val, y_val, report = check_fit_arguments(lead, epochs, batch_size, validation_data, progress, on_divergence)
    if seeds is None:
        seeds = [net.config["seed"] for net in nets]
    seeds = list(seeds)
    if len(seeds) != len(nets) or any(not is_int(s) or not 0 <= s < 2**64 for s in seeds):
        raise ValueError(f"seeds must hold one integer in [0, 2**64) per network, got {seeds!r}")
    seeds = [int(s) for s in seeds]  # NumPy integers too, as fit takes them
    for k, (net, opt) in enumerate(zip(nets, optimizers)):
        if net.epochs_trained + int(epochs) >= 2**63:
            raise ValueError(f"nets[{k}]: epochs_trained ({net.epochs_trained}) + epochs ({epochs}) would overflow "
                             f"the 64-bit epoch counter")
        if opt.bound_net is not None and opt.bound_net is not net.core_net:  # checked before any is bound
            raise ValueError(f"optimizers[{k}] already holds state for another network; create a new optimizer "
                             f"for each network (or call reset())")
    if callable(progress) and progress is not True:
        report = progress
    elif progress is True:
        report = None  # a group line below instead of one line per network

    # Bound only now, and unbound again if the core refuses the group (e.g. Hessian schedules
    # that cannot share a pass): a rejected call leaves every optimizer as it was.
    if int(epochs) > 0:  # copied into the core and checked before anything is bound
        data = _core.Dataset(lead.core_net, X, y)
        val_data = _core.Dataset(lead.core_net, X_val, y_val) if X_val is not None else None
    training = Training(nets, optimizers)
    histories = [History() for _ in nets]
    if int(epochs) == 0:
        return histories
    for seconds, results in training.epochs(data, val_data, epochs, batch_size, seeds):
        finished = []  # every network's state is updated before any callback runs (it may raise)
        for k, result in enumerate(results):
            if result is None:  # stopped before
                continue
            outcome, value = result
            if outcome == "diverged":
                histories[k].diverged = value
                if progress is True:
                    print(f"  network {k}: {value}", file=sys.stderr, flush=True)
                continue
            histories[k].append(value)
            finished.append((k, value))
        for k, record in finished:
            if report is not None:
                report(k, record)
            elif progress is True and record["stalled"]:
                print(f"  network {k}: warning: {record['stalled']}", file=sys.stderr, flush=True)
        if progress is True:
            _print_group(histories, [h.diverged is not None for h in histories], seconds)
    diverged = [k for k, h in enumerate(histories) if h.diverged]
    if diverged and on_divergence == "raise":
        error = DivergenceError(f"{len(diverged)} of {len(nets)} networks diverged: "
                                + "; ".join(f"network {k}: {histories[k].diverged}" for k in diverged))
        error.histories = histories
        raise error
    return histories


def _print_group(histories, stopped, seconds):
    last = [h.records()[-1] for h, s in zip(histories, stopped) if len(h) and not s]
    if not last:
        return
    epoch = max(r["epoch"] for r in last)
    errors = sorted(r["val_error"] if not math.isnan(r["val_error"]) else r["train_error"] for r in last)
    which = "val" if not math.isnan(last[0]["val_error"]) else "train"
    print(f"epoch {epoch:3d}  {len(last)} networks training, {sum(stopped)} stopped  {which} err "
          f"best {100 * errors[0]:.2f}% median {100 * errors[len(errors) // 2]:.2f}%  {seconds:.1f}s",
          file=sys.stderr, flush=True)
