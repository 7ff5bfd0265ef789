"""The multilayer perceptron: construction, evaluation, gradients, training, saving.

Numerics run in the C core; this module converts and checks arguments, slices the flat
parameter slab into per-layer arrays, and keeps the training history.
"""
from __future__ import annotations

import json
import math
import sys
import time
import zipfile
from typing import Callable, NamedTuple

import numpy as np

from . import _core
from .history import History, epoch_record
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


def _choice(name, value, options):
    if value not in options:
        raise ValueError(f"invalid {name} {value!r}; choose one of {sorted(options)}")
    return options[value]


def _as_inputs(X, n_in, name="X"):
    """float32, C-contiguous (rows, n_in); float64 and other float dtypes are converted."""
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point values (e.g. pixels scaled to [0, 1]), "
                        f"got dtype {X.dtype}; convert with X.astype(np.float32)")
    if X.ndim == 1 and X.shape[0] == n_in:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"{name} must have shape (n_samples, {n_in}), got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    # "A": aligned too; arrays unpickled from a buffer (e.g. on Dask workers) may not be.
    return np.require(X, dtype=np.float32, requirements=["C", "A"])


def _as_labels(y, n_rows, n_out, name="y"):
    """int32 class labels in [0, n_out), one per row."""
    y = np.asarray(y)
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

    def __init__(self, sizes, activation="sigmoid", output="sigmoid", loss="mse", init="xavier", seed=0,
                 leaky_slope=0.01, device="cpu"):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__") or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
            raise TypeError(f"sizes must be a sequence of integers, got {sizes!r}")
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least two positive layer widths (input and output), got {sizes}")
        hidden = _choice("activation", activation, _HIDDEN)
        out = _choice("output", output, _OUTPUT)
        loss_code = _choice("loss", loss, _LOSS)
        if (output == "softmax") != (loss == "ce"):
            raise ValueError(f"output {output!r} with loss {loss!r}: use output='softmax' with loss='ce', "
                             f"and 'sigmoid' or 'linear' output with loss='mse'")
        init_code = _choice("init", init, _INIT)
        device_code = _choice("device", device, _DEVICE)
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        if isinstance(leaky_slope, bool) or not isinstance(leaky_slope, (int, float, np.integer, np.floating)):
            raise TypeError(f"leaky_slope must be a number in [0, 1), got {leaky_slope!r}")
        leaky_slope = float(leaky_slope)
        if not 0 <= leaky_slope < 1:
            raise ValueError(f"leaky_slope must be in [0, 1), got {leaky_slope}")
        self._config = dict(sizes=sizes, activation=activation, output=output, loss=loss, init=init,
                            seed=int(seed), leaky_slope=leaky_slope, device=device)
        try:
            self._net = _core.Net(sizes, hidden, out, loss_code, leaky_slope, device_code, 100)
        except _core.DeviceError as exc:
            raise DeviceError(f"device={device!r} cannot be used: {exc}") from None
        self._net.init_params(init_code, int(seed))
        self._offsets = self._net.layer_offsets()
        self.epochs_trained = 0  #: epochs completed by fit() over the network's life

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

    def evaluate(self, X, y) -> Evaluation:
        """Mean loss and misclassification rate (0..1) on ``(X, y)``."""
        X = _as_inputs(X, self.sizes[0])
        loss, errors = self._net.evaluate(X, _as_labels(y, X.shape[0], self.sizes[-1]))
        return Evaluation(loss, errors / X.shape[0])

    def _evaluate_data(self, data) -> Evaluation:
        loss, errors = self._net.evaluate_dataset(data)
        return Evaluation(loss, errors / data.rows)

    def gradients(self, X, y):
        """``(loss, [(dW, db), ...])``: mean loss over the batch and its gradient (backprop)."""
        X = _as_inputs(X, self.sizes[0])
        loss, _, grad, _ = self._net.loss_grad(X, _as_labels(y, X.shape[0], self.sizes[-1]))
        return loss, self._split(grad)

    def hessian_diagonal(self, X, y) -> list:
        """``[(hW, hb), ...]``: the truncated diagonal Hessian of the batch loss
        (ALGORITHMS.md section 4: off-diagonal and activation second-derivative terms dropped)."""
        X = _as_inputs(X, self.sizes[0])
        _, _, _, hess = self._net.loss_grad(X, _as_labels(y, X.shape[0], self.sizes[-1]), hessian=True)
        return self._split(hess)

    # -- training ------------------------------------------------------------------------------

    @staticmethod
    def _require_optimizer(optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an sdagd.optim optimizer (e.g. sdagd.optim.SGD(lr=0.1)), "
                            f"got {type(optimizer).__name__}")

    def _diverged(self, exc, optimizer, epoch=None):
        where = f"epoch {epoch}: " if epoch is not None else ""
        return DivergenceError(f"{where}{exc} (optimizer {optimizer!r}); try a smaller lr or radius")

    def train_step(self, X, y, optimizer) -> float:
        """One update of ``optimizer`` on the batch ``(X, y)``; returns the batch loss (before
        the update)."""
        self._require_optimizer(optimizer)
        X = _as_inputs(X, self.sizes[0])
        y = _as_labels(y, X.shape[0], self.sizes[-1])
        core_opt = optimizer._bind(self._net)  # binds: only once the arguments are good
        try:
            stats = _core.train_step(self._net, core_opt, X, y, self.epochs_trained)
        except _core.DivergenceError as exc:
            raise self._diverged(exc, optimizer) from None
        return stats["loss_sum"] / stats["rows"]

    def fit(self, X, y, optimizer, epochs=1, batch_size=100, validation_data=None, seed=None,
            progress: bool | Callable[[dict], None] = True, on_divergence: str = "raise") -> History:
        """Train with mini-batches for ``epochs`` epochs.

        Each epoch visits the rows in a fresh random order drawn from ``(seed, epoch)``, so
        the same seed gives the same run, and a fit resumed after :meth:`save` / :meth:`load`
        continues exactly as an uninterrupted one (epochs are counted over the network's life).

        Parameters
        ----------
        X, y : arrays
            Inputs (n, n_in) floats and integer labels (n,).
        optimizer : sdagd.optim.Optimizer
            Its state is bound to this network and carries over between calls.
        epochs : int
        batch_size : int, default 100 (the paper's)
        validation_data : (X_val, y_val), optional
            Evaluated after each epoch (``val_loss``, ``val_error`` in the history).
        seed : int, optional
            Shuffling seed; defaults to the network's ``seed``.
        progress : bool or callable, default True
            True prints one line per epoch to stderr; a callable receives each epoch's record.
        on_divergence : {"raise", "stop"}, default "raise"
            What a NaN or inf loss or parameter does: raise :class:`DivergenceError`, or stop
            training and return the history so far with ``history.diverged`` set to the
            message (for sweeps that record diverged runs instead of failing).

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
        seed = self._config["seed"] if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")

        core_opt = optimizer._bind(self._net)  # binds: only once the arguments are good
        history = History()
        if int(epochs) == 0:
            return history
        data = _core.Dataset(self._net, X, y)  # on the network's device, once for the whole fit
        val_data = _core.Dataset(self._net, X_val, y_val) if X_val is not None else None
        for _ in range(int(epochs)):
            epoch = self.epochs_trained + 1
            start = time.perf_counter()
            try:
                stats = _core.train_epoch(self._net, core_opt, data, int(batch_size), int(seed), epoch - 1)
            except _core.DivergenceError as exc:
                error = self._diverged(exc, optimizer, epoch)
                if on_divergence == "raise":
                    raise error from None
                history.diverged = str(error)
                break
            val = self._evaluate_data(val_data) if val_data is not None else None
            self.epochs_trained = epoch
            record = epoch_record(epoch, stats, val, time.perf_counter() - start, self._config["activation"],
                                  self.sizes)
            history.append(record)
            if report is not None:
                report(record)
        return history

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path, optimizer: Optimizer | None = None) -> None:
        """Write the network (and optionally ``optimizer``'s state) to ``path`` (.npz).
        The round trip is exact: float32 parameters are stored bit for bit."""
        arrays = {"params": self._net.get_params()}
        meta = {"format": _FORMAT_VERSION, "config": self.config, "epochs_trained": self.epochs_trained}
        if optimizer is not None:
            if optimizer._net_core is not None and optimizer._net_core is not self._net:
                raise ValueError("this optimizer holds the state of another network; save it with that one")
            state = optimizer.state_dict()
            meta["optimizer"] = {"config": state["config"], "step": int(state["step"]),
                                 "has_state": state["state"] is not None}
            if state["state"] is not None:
                arrays["optimizer_state"] = state["state"]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path, with_optimizer: bool = False):
        """Read a file written by :meth:`save`. With ``with_optimizer=True`` returns
        ``(net, optimizer)``, the optimizer restored with its state (None if none was saved)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                params = np.array(data["params"], dtype=np.float32)
                opt_state = np.array(data["optimizer_state"]) if "optimizer_state" in data else None
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path}: not a network saved by sdagd.MLP.save ({exc})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise ValueError(f"{path}: not a network saved by sdagd.MLP.save (no configuration)")
        if meta.get("format") != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported file format {meta.get('format')!r}")
        if "epochs_trained" not in meta:
            raise ValueError(f"{path}: not a network saved by sdagd.MLP.save (no epochs_trained)")
        net = cls(**meta["config"])
        if params.shape != (net.n_params,):
            raise ValueError(f"{path}: holds {params.size} parameters, the configuration needs {net.n_params}")
        net._net.set_params(params)
        net.epochs_trained = int(meta["epochs_trained"])
        if not with_optimizer:
            return net
        saved = meta.get("optimizer")
        if saved is None:
            return net, None
        optimizer = from_config(saved["config"])
        optimizer.load_state_dict({"config": saved["config"], "state": opt_state, "step": saved["step"]}, net)
        return net, optimizer


def _check_fit_arguments(net, epochs, batch_size, validation_data, progress, on_divergence):
    """Checks fit's (and fit_many's) arguments before any work: returns the validation arrays
    (or None, None) and the per-epoch reporter (or None)."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
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
