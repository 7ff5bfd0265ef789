"""The multilayer perceptron: construction, evaluation, gradients, training, saving.

Numerics run in the C core; this module converts and checks arguments, slices the flat
parameter slab into per-layer arrays, and keeps the training history.
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
import zipfile
import zlib
from typing import Callable, NamedTuple

import numpy as np

from . import _core
from . import callbacks as _callbacks
from ._files import atomic_write, open_regular
from ._progress import BatchProgress
from ._training import Training
from .history import History
from .optim import Optimizer, from_config

__all__ = ["MLP", "Evaluation", "DivergenceError", "DeviceError"]

# The core's codes (csrc/sdagd.h), by name.
_HIDDEN = _core.HIDDEN_ACTIVATIONS
_OUTPUT = _core.OUTPUT_ACTIVATIONS
_LOSS = _core.LOSSES
_INIT = _core.INITS
_DEVICE = _core.DEVICES

_FORMAT_VERSION = 1


class DivergenceError(_core.DivergenceError):
    """Training produced a NaN or infinite loss or parameter. The message names the epoch,
    the step and the optimizer settings. Subclass of FloatingPointError."""


class DeviceError(_core.DeviceError):
    """The requested device cannot be used here: the CUDA part of sdagd was not built, the CUDA
    libraries or driver cannot be loaded, or there is no GPU (the message says which).
    Subclass of RuntimeError."""


class Evaluation(NamedTuple):
    loss: float   #: mean loss over the rows
    error: float  #: misclassification rate in [0, 1] (x100 for the paper's MCR in %)

    @property
    def accuracy(self) -> float:
        """Share of rows classified right, ``1 - error`` (a property, so that ``loss, error =
        net.evaluate(X, y)`` keeps working)."""
        return 1.0 - self.error


_MAX_WIDTH = 2**24    # limits of the C core (csrc): each layer width,
_MAX_WIDTHS = 1000    # the number of widths,
_INT32_MAX = 2**31 - 1  # and its int counters (batch sizes, rows)
_CONFIG_KEYS = ("sizes", "activation", "output", "loss", "init", "seed", "leaky_slope", "device")


def _choice(name, value, options):
    if not isinstance(value, str):  # a list would fail the lookup with "unhashable type"
        raise TypeError(f"{name} must be a string, one of {sorted(options)}; got {value!r}")
    if value not in options:
        raise ValueError(f"invalid {name} {value!r}; choose one of {sorted(options)}")
    return options[value]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_sizes(sizes) -> list:
    """The layer widths as a list of ints, checked against the C core's limits in Python, so that
    the message names the entry (the core would raise OverflowError beyond a C long)."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of integers, got {sizes!r}")
    sizes = list(sizes)  # read once: an iterator would be empty after a first pass
    if not all(_is_int(s) for s in sizes):
        raise TypeError(f"sizes must be a sequence of integers, got {sizes!r}")
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least two positive layer widths (input and output), got {sizes}")
    if len(sizes) > _MAX_WIDTHS:
        raise ValueError(f"sizes must list at most {_MAX_WIDTHS} layer widths, got {len(sizes)}")
    for i, s in enumerate(sizes):
        if s > _MAX_WIDTH:
            raise ValueError(f"sizes[{i}] = {s}; each width must be in [1, 2**24]")
    return sizes


def _num_params(sizes) -> int:
    """Parameters of a network of these widths (W and b per layer), computed before building it."""
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))


def _check_config(sizes, activation="sigmoid", output="sigmoid", loss="mse", init="xavier", seed=0,
                  leaky_slope=0.01, device="cpu") -> dict:
    """The constructor's arguments checked and normalised, without building anything: shared by
    MLP(), MLP.load (before it allocates) and the sweeps (before their first run)."""
    sizes = _check_sizes(sizes)
    for name, value, options in [("activation", activation, _HIDDEN), ("output", output, _OUTPUT),
                                 ("loss", loss, _LOSS)]:
        _choice(name, value, options)
    if (output == "softmax") != (loss == "ce"):
        raise ValueError(f"output {output!r} with loss {loss!r}: use output='softmax' with loss='ce', "
                         f"and 'sigmoid' or 'linear' output with loss='mse'")
    _choice("init", init, _INIT)
    _choice("device", device, _DEVICE)
    if not _is_int(seed) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if isinstance(leaky_slope, bool) or not isinstance(leaky_slope, (int, float, np.integer, np.floating)):
        raise TypeError(f"leaky_slope must be a number in [0, 1), got {leaky_slope!r}")
    leaky_slope = float(leaky_slope)
    if not 0 <= leaky_slope < 1:
        raise ValueError(f"leaky_slope must be in [0, 1), got {leaky_slope}")
    return dict(sizes=sizes, activation=activation, output=output, loss=loss, init=init, seed=int(seed),
                leaky_slope=leaky_slope, device=device)


def _as_inputs(X, n_in, name="X"):
    """float32, C-contiguous (rows, n_in); float64 and other float dtypes are converted."""
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point values (e.g. pixels scaled to [0, 1]), "
                        f"got dtype {X.dtype}; convert with X.astype(np.float32)")
    if X.ndim == 1 and X.shape[0] == n_in:
        X = X[None, :]
    if X.ndim > 2 and X.shape[0] and math.prod(X.shape[1:]) == n_in:
        # Images, (N, 28, 28) or (N, 1, 28, 28): a view when contiguous, so no copy is made.
        X = X.reshape(X.shape[0], n_in)
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"{name} must have shape (n_samples, {n_in}), got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    # "A": aligned too; arrays unpickled from a buffer (e.g. on Dask workers) may not be.
    with np.errstate(over="ignore"):  # overflow to inf is reported below, by value and position
        out = np.require(X, dtype=np.float32, requirements=["C", "A"])
    if X.dtype.itemsize > 4:
        # A finite float64 beyond the float32 range becomes inf here; say so, rather than let
        # the core report a "NaN or inf" that the caller's array does not hold.
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size and np.isfinite(X.flat[bad[0]]):
            raise ValueError(f"{name} holds {X.flat[bad[0]]} at flat index {bad[0]}, beyond the float32 range "
                             f"(magnitudes up to {np.finfo(np.float32).max:.4g}) the network computes in; "
                             f"rescale the inputs")
    return out


def _as_labels(y, n_rows, n_out, name="y"):
    """int32 class labels in [0, n_out), one per row; one-hot rows (n_rows, n_out) are accepted
    and turned into their labels."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = _one_hot_labels(y, n_out, name)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels in [0, {n_out}), got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional (one class label per row), got shape {y.shape}")
    if y.shape[0] != n_rows:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {n_rows} rows")
    if y.size and (y.min() < 0 or y.max() >= n_out):
        bad = y[(y < 0) | (y >= n_out)][0]
        raise ValueError(f"{name} contains label {bad}; labels must be in [0, {n_out}) for {n_out} outputs")
    return np.require(y, dtype=np.int32, requirements=["C", "A"])


def _one_hot_labels(y, n_out, name):
    """The labels of one-hot targets (n_rows, n_out): each row all zeros but a single one."""
    if y.shape[1] != n_out:
        raise ValueError(f"{name} must be 1-dimensional (one class label per row) or one-hot, of shape "
                         f"(n_samples, {n_out}); got shape {y.shape}")
    if y.dtype == bool or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise TypeError(f"{name}: one-hot labels must hold 0 and 1 as numbers, got dtype {y.dtype}")
    ones = y == 1
    if not np.all(ones | (y == 0)) or not np.all(ones.sum(axis=1) == 1):
        bad = np.flatnonzero(~np.all(ones | (y == 0), axis=1) | (ones.sum(axis=1) != 1))[0]
        raise ValueError(f"{name} row {bad} is not one-hot ({y[bad].tolist()}): each row must hold a single 1 "
                         f"and zeros elsewhere")
    return np.argmax(ones, axis=1)


class MLP:
    """A fully connected network trained by the sdagd C core.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output, e.g. ``[784, 700, 700, 10]`` for the paper's hl-2.
    activation : {"sigmoid", "relu", "tanh", "leaky_relu"}, default "sigmoid"
        Hidden-layer activation.
    output : {"sigmoid", "linear", "softmax"}, default "sigmoid"
        Output activation; ``"softmax"`` goes with ``loss="ce"`` and only with it.
    loss : {"mse", "ce"}, default "mse"
        ``"mse"``: the paper's eq. 5, ``(1/B) sum 1/2 ||D - Y||^2`` with one-hot targets D;
        ``"ce"``: softmax cross-entropy.
    init : {"xavier", "he"}, default "xavier"
        Xavier-uniform (the paper's) or He-normal weights; biases start at zero.
    seed : int, default 0
        Seeds the initial weights, and the shuffling of :meth:`fit` unless it gets its own.
    leaky_slope : float, default 0.01
        Slope of ``leaky_relu`` below zero.
    device : {"cpu", "cuda"}, default "cpu"
        Where the network lives and trains: the CPU backend, or an NVIDIA GPU through the CUDA
        backend (built when nvcc was found at install time). Everything else is the same, and
        :meth:`save` on one device loads on the other. ``sdagd.device_available("cuda")`` says
        whether a GPU can be used here.

    Attributes
    ----------
    history : History or None
        The history of the latest :meth:`fit`, filled as its epochs finish: after an exception
        (a callback that raised, Ctrl-C, a divergence) it holds the epochs done.

    Examples
    --------
    >>> import numpy as np, sdagd
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.random((200, 20), dtype=np.float32), rng.integers(0, 3, 200)
    >>> net = sdagd.MLP([20, 32, 3], activation="relu")
    >>> history = net.fit(X, y, sdagd.optim.SGD(lr=0.5), epochs=2, batch_size=20, progress=False)
    >>> len(history), net.predict(X[:5]).shape
    (2, (5,))
    """

    history: History | None = None
    _step_trainer = None  # (core optimizer, core Trainer of this network) kept by train_step

    def __init__(self, sizes, activation="sigmoid", output="sigmoid", loss="mse", init="xavier", seed=0,
                 leaky_slope=0.01, device="cpu"):
        c = self._config = _check_config(sizes, activation, output, loss, init, seed, leaky_slope, device)
        try:
            self._net = _core.Net(c["sizes"], _HIDDEN[activation], _OUTPUT[output], _LOSS[loss], c["leaky_slope"],
                                  _DEVICE[device], 100)
        except _core.DeviceError as exc:
            raise DeviceError(f"device={device!r} cannot be used: {exc}") from None
        self._net.init_params(_INIT[init], c["seed"])
        self._offsets = self._net.layer_offsets()
        self._epochs_trained = 0

    @property
    def epochs_trained(self) -> int:
        """Epochs completed by fit() over the network's life (saved and restored with it)."""
        return self._epochs_trained

    @epochs_trained.setter
    def epochs_trained(self, value):
        # Checked when set, as load checks it: a value save would write but load refuse (or the
        # core's 64-bit epoch counter overflow on) never gets in.
        if not _is_count(value):
            raise ValueError(f"epochs_trained must be an integer in [0, 2**63), got {value!r}")
        self._epochs_trained = int(value)

    def copy(self) -> "MLP":
        """An independent copy: same configuration, parameters and ``epochs_trained`` (an
        optimizer's state is not part of a network; copy it with save/load, ``with_optimizer``).
        ``copy.copy(net)``, ``copy.deepcopy(net)`` and pickling do the same."""
        return _rebuild(self.config, self._net.get_params(), self.epochs_trained)

    def __reduce__(self):
        # The C core's objects cannot be pickled; a network is its configuration and parameters.
        return _rebuild, (self.config, self._net.get_params(), self.epochs_trained)

    # -- description ---------------------------------------------------------------------------

    @property
    def sizes(self) -> list:
        return list(self._config["sizes"])

    @property
    def config(self) -> dict:
        """The constructor arguments."""
        return dict(self._config, sizes=self.sizes)

    @property
    def n_params(self) -> int:
        return self._net.num_params

    @property
    def core_net(self):
        """The C core's network (``sdagd._core.Net``) behind this one, for sdagd's own modules
        (optimizers bind to it, trainers and data sets are made for it)."""
        return self._net

    def __repr__(self):
        c = self._config
        return (f"MLP({c['sizes']}, activation={c['activation']!r}, output={c['output']!r}, "
                f"loss={c['loss']!r}, init={c['init']!r}, seed={c['seed']})")

    # -- parameters ----------------------------------------------------------------------------

    def _split(self, flat):
        """Per-layer (W (n_out, n_in), b (n_out,)) views of a flat slab."""
        out = []
        for l, (w, b) in enumerate(self._offsets):
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            out.append((flat[w:b].reshape(n_out, n_in), flat[b:b + n_out]))
        return out

    @property
    def params(self) -> list:
        """A copy of the parameters: a list of ``(W, b)`` per layer, W of shape (n_out, n_in)."""
        return self._split(self._net.get_params())

    def set_params(self, params) -> None:
        """Replace the parameters with a list of ``(W, b)`` of the shapes of :attr:`params`."""
        params = list(params)
        if len(params) != len(self._offsets):
            raise ValueError(f"expected {len(self._offsets)} (W, b) pairs, got {len(params)}")
        flat = np.empty(self.n_params, dtype=np.float32)
        for l, ((w_at, b_at), pair) in enumerate(zip(self._offsets, params)):
            W, b = (np.asarray(p) for p in pair)
            for name, p in (("W", W), ("b", b)):
                if p.dtype == bool or not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
                    raise TypeError(f"layer {l}: {name} must hold real numbers (float32 is what the network keeps), "
                                    f"got dtype {p.dtype}")
                if p.dtype.itemsize > 4 and np.issubdtype(p.dtype, np.floating):
                    big = np.flatnonzero(np.isfinite(p) & (np.abs(p) > np.finfo(np.float32).max))
                    if big.size:
                        raise ValueError(f"layer {l}: {name} holds {p.flat[big[0]]} at flat index {big[0]}, which "
                                         f"overflows float32 (magnitudes up to {np.finfo(np.float32).max:.4g}), the "
                                         f"precision the network keeps")
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            if W.shape != (n_out, n_in) or b.shape != (n_out,):
                raise ValueError(f"layer {l}: expected W {(n_out, n_in)} and b {(n_out,)}, "
                                 f"got {W.shape} and {b.shape}")
            flat[w_at:b_at] = W.ravel()
            flat[b_at:b_at + n_out] = b
        if not np.all(np.isfinite(flat)):
            raise ValueError("parameters contain NaN or inf")
        self._net.set_params(flat)

    # -- evaluation ----------------------------------------------------------------------------

    def forward(self, X) -> np.ndarray:
        """Network output, shape (n_samples, n_out), float32."""
        return self._net.forward(_as_inputs(X, self.sizes[0]))

    def predict(self, X) -> np.ndarray:
        """Predicted class per row (argmax of the output; ties go to the first)."""
        return np.argmax(self.forward(X), axis=1)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities per row, shape (n_samples, n_out), rows summing to 1.

        With ``output="softmax"`` these are the network's outputs. With ``output="sigmoid"``
        (the paper's MSE networks) the outputs, each in (0, 1), are divided by their row's sum:
        scores ranked as :meth:`predict` ranks them, not calibrated probabilities. A linear
        output has no probabilities (ValueError; use :meth:`forward`)."""
        output = self._config["output"]
        if output == "linear":
            raise ValueError("predict_proba: a network with output='linear' gives scores, not probabilities; use "
                             "forward() for them, or output='softmax' with loss='ce' for probabilities")
        Y = self.forward(X)
        if output == "softmax":
            return Y
        sums = Y.sum(axis=1, keepdims=True)
        # All outputs underflowed to 0: no class is preferred, so the row is uniform.
        return np.where(sums > 0, Y / np.where(sums > 0, sums, 1), np.float32(1 / Y.shape[1]))

    def score(self, X, y) -> float:
        """Accuracy on ``(X, y)``: the share of rows classified right (scikit-learn's ``score``)."""
        return self.evaluate(X, y).accuracy

    def evaluate(self, X, y) -> Evaluation:
        """Mean loss and misclassification rate (0..1) on ``(X, y)``."""
        X = _as_inputs(X, self.sizes[0])
        loss, errors = self._net.evaluate(X, _as_labels(y, X.shape[0], self.sizes[-1]))
        return Evaluation(loss, errors / X.shape[0])

    def evaluate_dataset(self, data) -> Evaluation:
        """Evaluation on the core Dataset ``data`` made for :attr:`core_net` (for sdagd's own trainer)."""
        loss, errors = self._net.evaluate_dataset(data)
        return Evaluation(loss, errors / data.rows)

    def gradients(self, X, y) -> tuple:
        """``(loss, [(dW, db), ...])``: mean loss over the batch and its gradient (backprop)."""
        X = _as_inputs(X, self.sizes[0])
        loss, _, grad, _ = self._net.loss_grad(X, _as_labels(y, X.shape[0], self.sizes[-1]))
        return loss, self._split(grad)

    def hessian_diagonal(self, X, y) -> list:
        """``[(hW, hb), ...]``: the truncated diagonal Hessian of the batch loss
        (docs/algorithms.md section 4: off-diagonal and activation second-derivative terms dropped)."""
        X = _as_inputs(X, self.sizes[0])
        _, _, _, hess = self._net.loss_grad(X, _as_labels(y, X.shape[0], self.sizes[-1]), hessian=True)
        return self._split(hess)

    # -- training ------------------------------------------------------------------------------

    @staticmethod
    def _require_optimizer(optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an sdagd.optim optimizer (e.g. sdagd.optim.SGD(lr=0.1)), "
                            f"got {type(optimizer).__name__}")

    def divergence_error(self, exc, optimizer, epoch=None) -> DivergenceError:
        """The DivergenceError for the core's divergence message ``exc`` (for sdagd's own trainer)."""
        where = f"epoch {epoch}: " if epoch is not None else ""
        return DivergenceError(f"{where}{exc} (optimizer {optimizer!r}); try a smaller lr or radius")

    def train_step(self, X, y, optimizer) -> float:
        """One update of ``optimizer`` on the batch ``(X, y)``; returns the batch loss (before
        the update)."""
        self._require_optimizer(optimizer)
        X = _as_inputs(X, self.sizes[0])
        y = _as_labels(y, X.shape[0], self.sizes[-1])
        core_opt = optimizer.core_optimizer(self._net)  # binds: only once the arguments are good
        # The core's trainer of this one network, kept for the next step with this optimizer
        # (a new core optimizer, after reset() or an assigned hyperparameter, gets a new one).
        if self._step_trainer is None or self._step_trainer[0] is not core_opt:
            self._step_trainer = (core_opt, _core.Trainer([self._net], [core_opt]))
        stats, = self._step_trainer[1].step(X, y, [self.epochs_trained], [False])
        if stats["diverged"]:
            raise self.divergence_error(stats["message"], optimizer)
        return stats["loss_sum"] / stats["rows"]

    def fit(self, X, y, optimizer, epochs=1, batch_size=100, validation_data=None, seed=None,
            progress: bool | Callable[[dict], None] = True, on_divergence: str = "raise",
            callbacks: list | None = None) -> History:
        """Train with mini-batches for ``epochs`` epochs.

        Each epoch visits the rows in a fresh random order drawn from ``(seed, epoch)``, so
        the same seed gives the same run, and a fit resumed after :meth:`save` / :meth:`load`
        continues exactly as an uninterrupted one (epochs are counted over the network's life).

        Parameters
        ----------
        X, y : arrays
            Inputs (n, n_in) floats (images (n, 28, 28) or (n, 1, 28, 28) are flattened, without a
            copy when contiguous) and integer labels (n,) or one-hot rows (n, n_out). They are
            copied once into the core and checked there (NaN or inf in X is a ValueError, not a
            divergence): changing them during the fit (from a callback or another thread) does
            not affect it.
        optimizer : sdagd.optim.Optimizer
            Its state is bound to this network and carries over between calls.
        epochs : int
        batch_size : int, default 100 (the paper's)
        validation_data : (X_val, y_val), optional
            Evaluated after each epoch (``val_loss``, ``val_error`` in the history).
        seed : int, optional
            Shuffling seed; defaults to the network's ``seed``.
        progress : bool or callable, default True
            True prints one line per epoch to stderr, and on a terminal shows the progress
            within epochs of 50 mini-batches or more (a tqdm bar when tqdm is installed); a
            callable receives each epoch's record.
        on_divergence : {"raise", "stop"}, default "raise"
            What a NaN or inf loss or parameter does: raise :class:`DivergenceError`, or stop
            training and return the history so far with ``history.diverged`` set to the
            message (for sweeps that record diverged runs instead of failing).
        callbacks : list, optional
            :mod:`sdagd.callbacks` (``EarlyStopping``, ``Checkpoint``) or callables
            ``f(net, record, optimizer)``, run after each epoch; one returning True ends training
            (``history.stopped`` says why). One that raises ends fit with its exception, the
            epochs done kept in ``net.history`` and in the exception's ``history`` attribute.

        Returns
        -------
        History
            Per-epoch ``train_loss``, ``train_error`` (running figures during the epoch, before
            each update), ``val_loss``, ``val_error``, ``time`` and the SDAGD diagnostics;
            ``history.diverged`` is None, or the divergence message with ``on_divergence="stop"``.

        Raises
        ------
        DivergenceError
            The loss or a parameter became NaN or inf; the message names epoch and step.
        KeyboardInterrupt
            On Ctrl-C, after the current mini-batch; the network stays usable.
        """
        self._require_optimizer(optimizer)
        X = _as_inputs(X, self.sizes[0])
        y = _as_labels(y, X.shape[0], self.sizes[-1])
        X_val, y_val, report = _check_fit_arguments(self, epochs, batch_size, validation_data, progress, on_divergence)
        callbacks = _callbacks.check_callbacks(callbacks)
        seed = self._config["seed"] if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")

        if self.epochs_trained + int(epochs) >= 2**63:
            raise ValueError(f"epochs_trained ({self.epochs_trained}) + epochs ({epochs}) would overflow the "
                             f"64-bit epoch counter")
        if optimizer.bound_net is not None and optimizer.bound_net is not self._net:
            optimizer.core_optimizer(self._net)  # raises: the optimizer holds another network's state
        history = self.history = History()
        if int(epochs) == 0:
            optimizer.core_optimizer(self._net)
            return history
        try:
            self._fit_epochs(history, optimizer, X, y, X_val, y_val, epochs, batch_size, seed, report,
                             on_divergence, callbacks, progress is True)
        except BaseException as exc:  # the epochs done stay readable: net.history, exc.history
            try:
                exc.history = history
            except AttributeError:  # exceptions without a __dict__
                pass
            raise
        return history

    def _fit_epochs(self, history, optimizer, X, y, X_val, y_val, epochs, batch_size, seed, report,
                    on_divergence, callbacks, show_batches):
        """fit's loop over the epochs, appending to ``history``."""
        # Copied once into the core (on the network's device) and checked there, before the
        # optimizer is bound: a rejected call leaves the optimizer as it was, and changes to X or
        # y during the fit do not reach it.
        data = _core.Dataset(self._net, X, y)
        val_data = _core.Dataset(self._net, X_val, y_val) if X_val is not None else None
        for c in callbacks:
            if isinstance(c, _callbacks.Callback):
                c.on_train_begin(self, optimizer)
        # fit is fit_many of this one network: the same loop, the same core Trainer.
        batch_progress = (lambda epoch: BatchProgress.for_epoch(X.shape[0], int(batch_size), epoch)) \
            if show_batches else None
        training = Training([self], [optimizer])
        for _, ((outcome, value),) in training.epochs(data, val_data, epochs, batch_size, [int(seed)],
                                                      batch_progress):
            if outcome == "diverged":
                if on_divergence == "raise":
                    raise DivergenceError(value)
                history.diverged = value
                break
            history.append(value)
            if report is not None:
                report(value)
            stop = _callbacks.run_epoch_end(callbacks, self, value, optimizer)
            if stop:
                history.stopped = stop
                break

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path, optimizer: Optimizer | None = None) -> None:
        """Write the network (and optionally ``optimizer``'s state) to ``path`` (.npz).
        The round trip is exact: float32 parameters are stored bit for bit.

        The file is written under a temporary name in the same folder and renamed into place
        only when complete, so a failure (a full disk, an interruption) leaves any earlier file
        at ``path`` as it was.

        A network whose parameters (or optimizer state) hold NaN or inf, as a diverged run can
        leave them, is refused with a ValueError and nothing is written: such a file could not
        be used, :meth:`load` refuses it, and not writing it keeps the last good checkpoint.
        """
        if optimizer is not None:
            self._require_optimizer(optimizer)
        params = self._net.get_params()
        if not np.all(np.isfinite(params)):
            raise ValueError(f"cannot save to {path}: the parameters contain NaN or inf (the network "
                             f"diverged); nothing was written, an earlier file there is kept")
        arrays = {"params": params}
        meta = {"format": _FORMAT_VERSION, "config": self.config, "epochs_trained": self.epochs_trained}
        if optimizer is not None:
            if optimizer.bound_net is not None and optimizer.bound_net is not self._net:
                raise ValueError("this optimizer holds the state of another network; save it with that one")
            state = optimizer.state_dict()
            meta["optimizer"] = {"config": state["config"], "step": int(state["step"]),
                                 "has_state": state["state"] is not None}
            if state["state"] is not None:
                if not np.all(np.isfinite(state["state"])):
                    raise ValueError(f"cannot save to {path}: the optimizer state contains NaN or inf; "
                                     f"nothing was written, an earlier file there is kept")
                arrays["optimizer_state"] = state["state"]
        text = json.dumps(meta)
        try:  # what load will check, checked now: a file load refuses is never written
            _check_meta(json.loads(text), path)
        except ValueError as exc:
            raise ValueError(f"cannot save: {exc}; load would refuse such a file, so nothing was written "
                             f"(an earlier file there is kept)") from None
        arrays["meta"] = np.frombuffer(text.encode(), dtype=np.uint8)
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path, with_optimizer: bool = False, device: str | None = None):
        """Read a file written by :meth:`save`. With ``with_optimizer=True`` returns
        ``(net, optimizer)``, the optimizer restored with its state (None if none was saved).
        ``device`` puts the network on another device than the one it was saved from (a file
        saved from a GPU loads on the CPU and the other way round); by default the saved one.

        Raises
        ------
        OSError
            The file cannot be opened (FileNotFoundError, PermissionError, ...).
        ValueError
            It is not a network saved by :meth:`save`, or it is damaged or inconsistent; the
            message says what is wrong. Files holding NaN or inf parameters or optimizer state
            are refused, as :meth:`save` refuses to write them.

        Notes
        -----
        Files are untrusted input. Only a regular file is read (a FIFO, device or folder is
        refused with an OSError, checked on the open file). Nothing is built and no array is
        read before the metadata (at most 1 MiB of JSON) is checked and the ``.npy`` headers of
        the stored arrays agree with it: the parameters must be float32 of exactly the shape the
        configuration needs, and the optimizer state float32 of shape (slabs <= 2, parameters).
        Only stored and deflate members are read, each only up to the size its header declares,
        and no member may declare more than 1032 times the file's size (the most deflate can
        expand). So loading allocates no more than the network the configuration describes,
        and that is at most about 1000 times the file's size.
        """
        # Errors opening it (missing, unreadable) are the OS's own; a device, FIFO or folder is refused
        # before anything is read (/dev/zero would be read until memory runs out, a FIFO block).
        with open_regular(path, "file saved by sdagd.MLP.save") as f:
            if f.read(6) == b"\x93NUMPY":  # what np.save writes: the context-manager error otherwise
                raise ValueError(f"{path}: a single .npy array, not a network saved by sdagd.MLP.save "
                                 f"(an .npz archive)")
            f.seek(0)
            try:
                with zipfile.ZipFile(f) as archive:
                    saved = _read_checkpoint(_Archive(archive, path, os.fstat(f.fileno()).st_size),
                                             with_optimizer)
            # Damaged archives raise any of these, from zipfile (RuntimeError: "encrypted"), zlib
            # or the reads.
            except (OSError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error, NotImplementedError,
                    struct.error) as exc:
                raise ValueError(f"{path}: not a network saved by sdagd.MLP.save ({exc})") from None
        config = saved["config"] if device is None else dict(saved["config"], device=device)
        net = cls(**config)  # only now: everything it needs has been read and checked
        net._net.set_params(saved["params"])
        net.epochs_trained = saved["epochs_trained"]
        if not with_optimizer:
            return net
        optimizer = saved["optimizer"]
        if optimizer is not None:
            _checked(path, "optimizer state", lambda: optimizer.load_state_dict(
                {"config": optimizer.config(), "state": saved["state"], "step": saved["step"]}, net))
        return net, optimizer


def _rebuild(config, params, epochs_trained):
    """A network from its configuration, parameters and epoch count (copy, deepcopy, pickle)."""
    net = MLP(**config)
    net.set_params(net._split(np.asarray(params, dtype=np.float32)))
    net.epochs_trained = epochs_trained
    return net


def _check_fit_arguments(net, epochs, batch_size, validation_data, progress, on_divergence):
    """Checks fit's (and fit_many's) arguments before any work: returns the validation arrays
    (or None, None) and the per-epoch reporter (or None)."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size > _INT32_MAX:  # the core counts in C ints; one batch of all rows needs only len(X)
        raise ValueError(f"batch_size must be at most 2**31-1, got {batch_size}")
    X_val = y_val = None
    if validation_data is not None:
        if len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        X_val = _as_inputs(validation_data[0], net.sizes[0], "X_val")
        y_val = _as_labels(validation_data[1], X_val.shape[0], net.sizes[-1], "y_val")
        bad = ~np.isfinite(X_val)  # checked now, not after an epoch of training
        if bad.any():
            raise ValueError(f"X_val contains NaN or inf (first at flat index {np.flatnonzero(bad)[0]})")
    if on_divergence not in ("raise", "stop"):
        raise ValueError(f"on_divergence must be 'raise' or 'stop', got {on_divergence!r}")
    report = _print_epoch if progress is True else (progress or None)
    if report is not None and not callable(report):
        raise TypeError("progress must be True, False or a callable taking the epoch record")
    return X_val, y_val, report


def _read_checkpoint(archive, with_optimizer) -> dict:
    """What :meth:`MLP.load` needs from an .npz, each part checked before it is read: the
    configuration, the parameters, the epoch count, and with ``with_optimizer`` the optimizer
    (without state, or None), its state array and step."""
    path = archive.path
    meta = archive.meta(with_optimizer)
    config = meta["config"]  # checked by _check_meta
    n = _num_params(config["sizes"])
    params = archive.array("params", lambda shape, dtype: _float32_of_shape(shape, dtype, (n,), config))
    if params is None:
        raise ValueError(f"{path}: not a network saved by sdagd.MLP.save (no params.npy in the archive)")
    out = dict(config=config, params=params, epochs_trained=meta["epochs_trained"], optimizer=None)
    saved = meta.get("optimizer") if with_optimizer else None
    if saved is None:
        return out
    out["optimizer"] = from_config(saved["config"])  # checked by _check_meta

    def check_state(shape, dtype):  # (slabs, n): the core's optimizers keep 0 to 2 slabs
        slabs = shape[0] if len(shape) == 2 and shape[0] <= 2 else "slabs <= 2"
        return _float32_of_shape(shape, dtype, (slabs, n), config)

    out["state"], out["step"] = archive.array("optimizer_state", check_state), saved["step"]
    if saved["has_state"] != (out["state"] is not None):
        raise ValueError(f"{path}: the optimizer record says has_state={saved['has_state']}, but the archive "
                         f"{'lacks' if out['state'] is None else 'holds'} optimizer_state.npy")
    return out


def _is_count(value) -> bool:
    """An integer in [0, 2**63): what the core's 64-bit counters (epochs, steps) can hold."""
    return _is_int(value) and 0 <= value < 2**63


def _checked(path, what, fn):
    """``fn()``, with its argument errors reported as a damaged file ``path``."""
    try:
        return fn()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid {what}: {exc}") from None


def _float32_of_shape(shape, dtype, want, config):
    """Why a stored array of ``shape`` and ``dtype`` is not float32 of shape ``want`` (None if it is)."""
    if dtype.kind != "f" or dtype.itemsize != 4:  # strings, bools, complex, float64: not what save writes
        return f"holds {dtype} values; it must hold float32 (as sdagd.MLP.save writes)"
    if tuple(shape) != want:
        want_text = "(" + ", ".join(map(str, want)) + ("," if len(want) == 1 else "") + ")"
        return (f"has shape {tuple(shape)}; the configuration (sizes {config['sizes']}, {want[-1]} parameters) "
                f"needs shape {want_text}")
    return None


#: Most bytes a .npz member may declare per byte of the file: deflate's maximal expansion.
_MAX_INFLATION = 1032
#: Largest metadata accepted: a save's JSON is well under 1 KiB.
_MAX_META_BYTES = 1 << 20


class _Archive:
    """Bounded reading of the members of an .npz that :meth:`MLP.load` does not trust."""

    def __init__(self, archive, path, file_size):
        self.archive, self.path, self.file_size = archive, path, file_size

    def array(self, name, check):
        """The array ``name`` (None if absent). Its .npy header is read first and ``check(shape,
        dtype)`` says what is wrong with it (None if nothing) before any data is read; then at
        most the declared size is read."""
        try:
            info = self.archive.getinfo(f"{name}.npy")
        except KeyError:
            return None
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bz2 and lzma expand far beyond deflate's 1032:1 (a 2 KB member to 2 GB): the bound
            # below holds only for what np.savez and np.savez_compressed write.
            raise ValueError(f"{self.path}: {name} is compressed with method {info.compress_type}; only stored and "
                             f"deflate members (what numpy.savez and savez_compressed write) are read")
        if info.file_size > _MAX_INFLATION * self.file_size:
            raise ValueError(f"{self.path}: {name} claims {info.file_size} bytes, more than a {self.file_size}-byte "
                             f"file can hold; not a network saved by sdagd.MLP.save")
        with self.archive.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):  # what np.savez writes
                    raise ValueError(f"unsupported .npy version {version}")
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran_order, dtype = read_header(f)
            except ValueError as exc:
                raise ValueError(f"{self.path}: {name} is not a valid .npy array ({exc})") from None
            problem = check(shape, dtype)
            if problem:
                raise ValueError(f"{self.path}: {name} {problem}")
            size = math.prod(shape) * dtype.itemsize
            if info.file_size != f.tell() + size:
                raise ValueError(f"{self.path}: {name} is {info.file_size} bytes, but its header describes "
                                 f"{f.tell() + size}; the file is damaged")
            data = f.read(size)  # never more than the member's declared size, checked above
        if len(data) != size:
            raise ValueError(f"{self.path}: {name} is truncated: {len(data)} of {size} bytes")
        array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")
        array = np.array(array, dtype=np.float32 if dtype.kind == "f" else dtype, order="C")  # native, writable
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ValueError(f"{self.path}: {name} holds NaN or inf (a diverged network?); such networks "
                             f"cannot be used, and sdagd.MLP.save refuses to write them")
        return array

    def meta(self, with_optimizer=True) -> dict:
        """The metadata, checked enough that loading can rely on its fields."""
        path = self.path
        raw = self.array("meta", lambda shape, dtype: None if (
            dtype == np.uint8 and len(shape) == 1 and shape[0] <= _MAX_META_BYTES) else (
            f"must be at most {_MAX_META_BYTES} bytes of JSON text (uint8), got {dtype} of shape {shape}"))
        if raw is None:
            raise ValueError(f"{path}: not a network saved by sdagd.MLP.save (no meta.npy in the archive)")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except ValueError as exc:  # JSON or UTF-8
            raise ValueError(f"{path}: not a network saved by sdagd.MLP.save (its metadata is not JSON: "
                             f"{exc})") from None
        return _check_meta(meta, path, with_optimizer)


def _check_meta(meta, path, with_optimizer=True) -> dict:
    """The checkpoint metadata checked as :meth:`MLP.load` needs it, with the configuration
    normalised; :meth:`MLP.save` runs the same checks on what it is about to write, so a file
    it writes always loads. The optimizer record is checked ``with_optimizer`` only: a network
    loads alone whatever its optimizer record holds."""
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path}: not a network saved by sdagd.MLP.save (no configuration)")
    if not _is_int(meta.get("format")) or meta["format"] != _FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported file format {meta.get('format')!r}")
    unknown = sorted(set(meta["config"]) - set(_CONFIG_KEYS))
    if unknown or "sizes" not in meta["config"]:
        raise ValueError(f"{path}: invalid configuration {meta['config']!r}: "
                         + (f"unknown keys {unknown}" if unknown else "no sizes")
                         + f"; the keys are {list(_CONFIG_KEYS)}")
    if "epochs_trained" not in meta:
        raise ValueError(f"{path}: not a network saved by sdagd.MLP.save (no epochs_trained)")
    if not _is_count(meta["epochs_trained"]):
        raise ValueError(f"{path}: epochs_trained must be an integer >= 0, got {meta['epochs_trained']!r}")
    meta["config"] = _checked(path, "configuration", lambda: _check_config(**meta["config"]))
    saved = meta.get("optimizer") if with_optimizer else None
    if saved is not None:
        if not (isinstance(saved, dict) and isinstance(saved.get("config"), dict)
                and _is_count(saved.get("step")) and isinstance(saved.get("has_state"), bool)):
            raise ValueError(f"{path}: damaged optimizer record {saved!r}; expected "
                             f"{{'config': {{...}}, 'step': integer >= 0, 'has_state': true or false}}")
        _checked(path, "optimizer configuration", lambda: from_config(saved["config"]))
    return meta


def _print_epoch(record):
    parts = [f"epoch {record['epoch']:3d}", f"loss {record['train_loss']:.4f}",
             f"train err {100 * record['train_error']:6.2f}%"]
    if not math.isnan(record["val_error"]):
        parts.append(f"val err {100 * record['val_error']:6.2f}%")
    if not math.isnan(record["mu_mean"]):
        parts.append(f"mu {record['mu_mean']:.3g} phase-1 {record['phase1_fraction']:.2f}")
    parts.append(f"{record['time']:.1f}s")
    print("  ".join(parts), file=sys.stderr, flush=True)
    if record["stalled"]:
        print(f"  warning: {record['stalled']}", file=sys.stderr, flush=True)


# -- package-internal interface --------------------------------------------------------------
# What sdagd.many and sdagd.paper need of this module's functions, under names other
# modules may import (tests/test_layout.py forbids reaching into another module's private
# names). Not in __all__: not part of the public API.
MAX_WIDTHS = _MAX_WIDTHS
is_int = _is_int
check_config = _check_config
as_inputs = _as_inputs
as_labels = _as_labels
check_fit_arguments = _check_fit_arguments
require_optimizer = MLP._require_optimizer
