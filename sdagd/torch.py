"""SDAGD and SDLM as ``torch.optim`` optimizers, and a gradient-flow monitor for PyTorch models.

PyTorch is an optional extra (``pip install "sdagd[torch]"``); importing this module without it
raises ImportError saying so. Nothing else in sdagd imports it.

The optimizers handle what the C core handles: a ``torch.nn.Sequential`` of ``Linear`` layers
(with bias) and the activations ``Sigmoid``, ``ReLU``, ``Tanh``, ``LeakyReLU`` between them,
optionally a ``Flatten`` first, and after the last ``Linear`` either nothing (linear output, or
logits for the cross-entropy) or a ``Sigmoid`` (MSE only). The loss is the paper's MSE
(ALGORITHMS.md 2: ``(1/B) sum 1/2 ||D - Y||^2``, :func:`mse_loss`), the cross-entropy on logits,
or ``torch.nn.MSELoss`` / ``torch.nn.CrossEntropyLoss`` (plain, reduction "mean" or "sum"): the
curvature is scaled to match the loss the closure computes.

``step(closure)`` runs the closure (forward pass and ``loss.backward()``, as for
``torch.optim.LBFGS``) with forward hooks that keep each layer's input, then computes the
truncated diagonal Hessian of ALGORITHMS.md 4 in one more backward sweep of matrix products
(the LeCun et al. 1998 recursion, no second differentiation) and applies the update.

>>> import torch, sdagd.torch
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 3))
>>> opt = sdagd.torch.SDAGD(model, radius=0.3, loss="ce")
>>> X, y = torch.rand(16, 4), torch.arange(16) % 3
>>> def closure():
...     opt.zero_grad()
...     loss = torch.nn.functional.cross_entropy(model(X), y)
...     loss.backward()
...     return loss
>>> loss = opt.step(closure)
"""
from __future__ import annotations

import math
import time
from typing import Callable

try:
    import torch
    from torch import nn
except ImportError as _error:  # tests/test_conveniences.py runs this with a stand-in torch
    raise ImportError("sdagd.torch needs PyTorch, an optional extra: pip install \"sdagd[torch]\" "
                      f"(or pip install torch) ({_error})") from None

from .history import History, stall_reason

__all__ = ["SDAGD", "SDLM", "GradientFlow", "mse_loss", "from_mlp"]

#: The activation modules the optimizers support, by the name the C core uses.
_ACTIVATIONS = {nn.Sigmoid: "sigmoid", nn.ReLU: "relu", nn.Tanh: "tanh", nn.LeakyReLU: "leaky_relu"}

_SUPPORTED = ("a torch.nn.Sequential of Linear layers (with bias), each but the last followed by one of "
              "Sigmoid, ReLU, Tanh, LeakyReLU, optionally a Flatten first, and after the last Linear "
              "nothing (linear output or cross-entropy logits) or Sigmoid (MSE only)")


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's loss (eq. 5, ALGORITHMS.md 2): ``(1/B) sum_p 1/2 ||D_p - Y_p||^2``. ``target``
    is either one-hot targets D of the output's shape or integer class labels (B,)."""
    if target.dim() == 1 and output.dim() == 2:
        target = nn.functional.one_hot(target.long(), output.shape[1]).to(output.dtype)
    return 0.5 * ((output - target) ** 2).sum() / output.shape[0]


def _activation_slope(name: str, slope: float, h: torch.Tensor) -> torch.Tensor:
    """f'(a) through h = f(a), as the C core computes it (csrc/kernels.h activation_slope)."""
    if name == "sigmoid":
        return h * (1 - h)
    if name == "tanh":
        return 1 - h * h
    if name == "relu":
        return (h > 0).to(h.dtype)
    if name == "leaky_relu":
        return torch.where(h > 0, torch.ones_like(h), torch.full_like(h, slope))
    return torch.ones_like(h)  # linear


def _loss_kind(loss) -> tuple:
    """``(kind, per_sample_scale, mean)`` of a loss: kind "mse", "mse_elementwise" (nn.MSELoss's
    mean, which also divides by n_out) or "ce"; the curvature of one sample's loss in the output,
    relative to the paper's per-sample term (MSE 1/2 ||.||^2, CE -log p), is ``per_sample_scale``;
    ``mean``: the loss is divided by the batch size B."""
    if isinstance(loss, str):
        if loss not in ("mse", "ce"):
            raise ValueError(f"invalid loss {loss!r}; use 'mse' (the paper's, sdagd.torch.mse_loss), 'ce' "
                             f"(cross-entropy on logits, mean over the batch), or a torch.nn.MSELoss or "
                             f"torch.nn.CrossEntropyLoss")
        return loss, 1.0, True
    if type(loss) is nn.MSELoss and loss.reduction in ("mean", "sum"):
        # nn.MSELoss: sum (y - d)^2, twice the paper's term; "mean" also divides by n_out, done later.
        return "mse_elementwise" if loss.reduction == "mean" else "mse", 2.0, loss.reduction == "mean"
    if (type(loss) is nn.CrossEntropyLoss and loss.reduction in ("mean", "sum") and loss.weight is None
            and loss.label_smoothing == 0):
        return "ce", 1.0, loss.reduction == "mean"
    raise ValueError(f"unsupported loss {loss!r}; use 'mse', 'ce', torch.nn.MSELoss(reduction='mean' or 'sum') "
                     f"or torch.nn.CrossEntropyLoss(reduction='mean' or 'sum') without weights or label "
                     f"smoothing: the truncated Hessian is derived for these")


class _Layers:
    """The structure of a supported model: its Linear layers, the activation after each, and the
    output activation; forward hooks that keep the inputs of one forward pass."""

    def __init__(self, model, loss_kind):
        if not isinstance(model, nn.Sequential):
            raise TypeError(f"sdagd.torch optimizers need {_SUPPORTED}; got a {type(model).__name__}")
        modules = list(model)
        if modules and type(modules[0]) is nn.Flatten:
            modules = modules[1:]
        self.linears, self.activations = [], []  # activations[l]: (name, slope) after linears[l]
        i = 0
        while i < len(modules):
            layer = modules[i]
            if type(layer) is not nn.Linear:
                raise ValueError(f"unsupported module {i} of the model, {layer!r}: sdagd.torch optimizers need "
                                 f"{_SUPPORTED}")
            if layer.bias is None:
                raise ValueError(f"module {i} of the model, {layer!r}, has no bias: sdagd.torch optimizers need "
                                 f"{_SUPPORTED}")
            following = modules[i + 1] if i + 1 < len(modules) else None
            if type(following) in _ACTIVATIONS:
                name = _ACTIVATIONS[type(following)]
                slope = float(following.negative_slope) if name == "leaky_relu" else 0.0
                if name == "leaky_relu" and not 0 <= slope < 1:
                    raise ValueError(f"LeakyReLU with negative_slope {slope}: supported slopes are in [0, 1)")
                self.linears.append(layer)
                self.activations.append((name, slope, following))
                i += 2
            elif following is None:
                self.linears.append(layer)
                self.activations.append(("linear", 0.0, None))
                i += 1
            elif type(following) is nn.Linear:
                raise ValueError(f"Linear layer {len(self.linears)} (module {i}) is not followed by an activation: "
                                 f"sdagd.torch optimizers need {_SUPPORTED}")
            else:
                raise ValueError(f"unsupported module {i + 1} of the model, {following!r}: sdagd.torch "
                                 f"optimizers need {_SUPPORTED}")
        if not self.linears:
            raise ValueError(f"the model has no Linear layer: sdagd.torch optimizers need {_SUPPORTED}")
        output = self.activations[-1][0]
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"output activation {output!r} is not supported: after the last Linear use nothing or "
                             f"Sigmoid (MSE), or nothing (cross-entropy on logits)")
        if loss_kind == "ce" and output != "linear":
            raise ValueError("with the cross-entropy loss the model must end with its last Linear layer (logits), "
                             "as torch.nn.CrossEntropyLoss expects; remove the final Sigmoid")
        for l, (name, _, _) in enumerate(self.activations[:-1]):
            if name == "linear":
                raise ValueError(f"Linear layer {l} is not followed by an activation; {_SUPPORTED}")
        self.inputs = [None] * len(self.linears)    # (B, n_in) of each Linear
        self.output = None                          # (B, n_out): the model's output (after the last activation)
        self.logits = None                          # (B, n_out): the last Linear's output

    def params(self) -> list:
        return [p for layer in self.linears for p in (layer.weight, layer.bias)]

    def hooks(self) -> list:
        """Forward hooks that keep what the Hessian sweep needs; the caller removes them."""
        handles = []
        last = len(self.linears) - 1
        for l, layer in enumerate(self.linears):
            def keep(module, inputs, output, l=l):
                self.inputs[l] = inputs[0].detach().reshape(inputs[0].shape[0], -1)
                if l == last:
                    self.logits = output.detach()
                    if self.activations[last][2] is None:
                        self.output = self.logits
            handles.append(layer.register_forward_hook(keep))
        final = self.activations[last][2]
        if final is not None:
            def keep_output(module, inputs, output):
                self.output = output.detach()
            handles.append(final.register_forward_hook(keep_output))
        return handles

    @torch.no_grad()
    def hessian_diagonal(self, loss_kind, per_sample, mean) -> list:
        """``[(hW, hb), ...]``: ALGORITHMS.md 4 from the kept inputs, one backward sweep:
        s_{L+1} = f'(a)^2 (MSE) or p (1 - p) (softmax + CE); s_l = f'_l(a_l)^2 ((W o W)^T s_{l+1});
        h(W_l) = c s_l^T (h_{l-1} o h_{l-1}), h(b_l) = c sum_p s_l, c the loss's scale."""
        if any(x is None for x in self.inputs) or self.output is None:
            raise RuntimeError("the closure ran no forward pass of the model; it must compute the loss from "
                               "model(X) and call loss.backward()")
        B = self.inputs[0].shape[0]
        if loss_kind == "ce":
            p = torch.softmax(self.logits, dim=1)
            s = p * (1 - p)
        else:
            d = _activation_slope(self.activations[-1][0], 0.0, self.output)
            s = d * d
        scale = per_sample / (B if mean else 1)
        if loss_kind == "mse_elementwise":
            scale /= self.output.shape[1]
        out = [None] * len(self.linears)
        for l in range(len(self.linears) - 1, -1, -1):
            x = self.inputs[l]
            out[l] = (scale * (s.T @ (x * x)), scale * s.sum(dim=0))
            if l > 0:
                name, slope, _ = self.activations[l - 1]
                d = _activation_slope(name, slope, x)
                s = d * d * (s @ (self.linears[l].weight.detach() ** 2))
        return out

    def clear(self):
        self.inputs = [None] * len(self.linears)
        self.output = self.logits = None


def _positive(cls, name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{cls}: {name} must be a number, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{cls}: invalid {name} {value!r}; it must be a positive finite number")
    return float(value)


class _CurvatureOptimizer(torch.optim.Optimizer):
    """What SDAGD and SDLM share: the model's structure, the closure run under hooks, h."""

    def __init__(self, model: nn.Sequential, loss: str | nn.Module, defaults: dict):
        self._loss = _loss_kind(loss)
        self._layers = _Layers(model, self._loss[0])
        super().__init__(self._layers.params(), defaults)
        if len(self.param_groups) != 1:  # pragma: no cover - made by us with one group
            raise ValueError("one parameter group is supported")

    def _gradient_and_curvature(self, closure):
        if closure is None or not callable(closure):
            raise TypeError(f"{type(self).__name__}.step needs a closure that clears the gradients, computes the "
                            f"loss from model(X) and calls loss.backward() (as for torch.optim.LBFGS): the "
                            f"curvature is computed from that forward pass")
        handles = self._layers.hooks()
        try:
            with torch.enable_grad():
                loss = closure()
        finally:
            for handle in handles:
                handle.remove()
        try:
            hess = self._layers.hessian_diagonal(*self._loss)
        finally:
            self._layers.clear()  # the kept inputs are not held between steps
        grads = []
        for layer in self._layers.linears:
            if layer.weight.grad is None or layer.bias.grad is None:
                raise RuntimeError("after the closure a parameter has no gradient: the closure must call "
                                   "loss.backward() on a loss computed from the model's output")
            grads.append((layer.weight.grad, layer.bias.grad))
        return loss, grads, hess


class SDAGD(_CurvatureOptimizer):
    """Stochastic diagonal approximate greatest descent (Tan & Lim, eq. 7; ALGORITHMS.md 5) for a
    PyTorch model: ``theta <- theta - g / (mu_k + h + eps)``, ``mu_k = ||g||_2 / R``, with ``h``
    the truncated diagonal Hessian of the same mini-batch. The same update as
    :class:`sdagd.optim.SDAGD` in the C core (its options beyond the paper are not offered here).

    Parameters
    ----------
    model : torch.nn.Sequential
        Linear layers and the supported activations (see the module's documentation); models
        with other modules are refused with a ValueError or TypeError saying what is supported.
    radius : float
        R > 0: the step length in the greatest-descent phase (0.3 suits the paper's nets).
    loss : "mse", "ce", torch.nn.MSELoss or torch.nn.CrossEntropyLoss, default "mse"
        The loss the closure computes: "mse" is the paper's (:func:`mse_loss`), "ce" the
        cross-entropy on logits averaged over the batch. ``h`` is the curvature of that loss.
    norm : {"layer", "global"}, default "layer"
        ``mu_k`` per Linear layer (W and b together) or over all parameters.
    eps : float, default 1e-8
        Guards 0/0 only.

    After each step, ``last_mu`` holds ``mu_k`` of each Linear layer (one value repeated for the
    global norm) and ``last_phase1_fraction`` the share of parameters with ``mu_k > h``;
    :class:`GradientFlow` given this optimizer puts their epoch statistics in the history.
    """

    def __init__(self, model: nn.Sequential, radius: float, loss: str | nn.Module = "mse", norm: str = "layer",
                 eps: float = 1e-8):
        radius = _positive("SDAGD", "radius", radius)
        eps = _positive("SDAGD", "eps", eps)
        if not isinstance(norm, str) or norm not in ("layer", "global"):
            raise ValueError(f"SDAGD: invalid norm {norm!r}; choose 'layer' or 'global'")
        super().__init__(model, loss, dict(radius=radius, eps=eps, norm=norm))
        self.last_mu: list = []
        self.last_phase1_fraction = math.nan
        self._epoch_stats = _MuStats()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """One SDAGD update; returns the closure's loss (before the update)."""
        loss, grads, hess = self._gradient_and_curvature(closure)
        group = self.param_groups[0]
        radius, eps = group["radius"], group["eps"]
        # ||g||^2 per layer in float64, as the C core sums it; mu_k computed in double, used in float.
        squares = [float(gW.double().pow(2).sum() + gb.double().pow(2).sum()) for gW, gb in grads]
        if group["norm"] == "global":
            mus = [math.sqrt(sum(squares)) / radius] * len(grads)
            self._epoch_stats.add(mus[:1])
        else:
            mus = [math.sqrt(sq) / radius for sq in squares]
            self._epoch_stats.add(mus)
        phase1 = total = 0
        for layer, (gW, gb), (hW, hb), mu in zip(self._layers.linears, grads, hess, mus):
            mu_f = torch.tensor(mu, dtype=layer.weight.dtype).item()  # float32 models: rounded as the core does
            for p, g, h in ((layer.weight, gW, hW), (layer.bias, gb, hb)):
                self.state[p]["h"] = h  # the curvature this step used (for inspection)
                p.sub_(g / (mu_f + h + eps))
                phase1 += int((mu_f > h).sum())
                total += h.numel()
        self.last_mu = mus
        self.last_phase1_fraction = phase1 / total
        self._epoch_stats.phase1 += phase1
        self._epoch_stats.params += total
        return loss

    def pop_epoch_stats(self) -> dict:
        """``mu_mean, mu_min, mu_max, phase1_fraction`` over the steps since the last call (the
        fields :class:`sdagd.History` records), and a fresh start."""
        stats, self._epoch_stats = self._epoch_stats.result(), _MuStats()
        return stats


class _MuStats:
    """Running sums of mu_k and the phase-1 counts, as the C core keeps them per epoch."""

    def __init__(self):
        self.total, self.count, self.low, self.high = 0.0, 0, math.inf, -math.inf
        self.phase1, self.params = 0, 0

    def add(self, mus):
        self.total += sum(mus)
        self.count += len(mus)
        self.low, self.high = min(self.low, *mus), max(self.high, *mus)

    def result(self) -> dict:
        if not self.count:
            return dict(mu_mean=math.nan, mu_min=math.nan, mu_max=math.nan, phase1_fraction=math.nan)
        return dict(mu_mean=self.total / self.count, mu_min=self.low, mu_max=self.high,
                    phase1_fraction=self.phase1 / self.params)


class SDLM(_CurvatureOptimizer):
    """Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998; ALGORITHMS.md 5) for a
    PyTorch model: ``hbar <- (1 - gamma) hbar + gamma h`` (``hbar`` starting at the first ``h``),
    ``theta <- theta - lr * g / (mu + hbar)``; the update of :class:`sdagd.optim.SDLM`.

    Parameters: ``model`` and ``loss`` as for :class:`SDAGD`; ``lr`` > 0; ``mu`` > 0 the damping;
    ``gamma`` in (0, 1], default 0.05. The running average is in ``state[p]["hbar"]`` and
    round-trips through ``state_dict()``.
    """

    def __init__(self, model: nn.Sequential, lr: float, mu: float, gamma: float = 0.05,
                 loss: str | nn.Module = "mse"):
        lr = _positive("SDLM", "lr", lr)
        mu = _positive("SDLM", "mu", mu)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
            raise ValueError(f"SDLM: invalid gamma {gamma!r}; it must be in (0, 1]")
        super().__init__(model, loss, dict(lr=lr, mu=mu, gamma=float(gamma)))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """One SDLM update; returns the closure's loss (before the update)."""
        loss, grads, hess = self._gradient_and_curvature(closure)
        group = self.param_groups[0]
        lr, mu, gamma = group["lr"], group["mu"], group["gamma"]
        for layer, (gW, gb), (hW, hb) in zip(self._layers.linears, grads, hess):
            for p, g, h in ((layer.weight, gW, hW), (layer.bias, gb, hb)):
                state = self.state[p]
                # A new tensor each step, never updated in place: a state_dict() loaded into another
                # optimizer shares its tensors with this one.
                state["hbar"] = h.clone() if "hbar" not in state else (1 - gamma) * state["hbar"] + gamma * h
                p.sub_(lr * g / (mu + state["hbar"]))
        return loss


class GradientFlow:
    """Vanishing-gradient diagnostics of a PyTorch model, in the fields of :class:`sdagd.History`
    that :meth:`sdagd.MLP.fit` fills, so that sdagd's plots and reports read a PyTorch run.

    Hooks on the model's ``Linear`` layers and activations (``Sigmoid``, ``Tanh``, ``ReLU``,
    ``LeakyReLU``, in any ``nn.Module``, in registration order) gather, per epoch:
    ``grad_rms`` (per Linear layer: RMS over the epoch's backward passes of each pass's RMS of
    dE/dW, as the C core does), ``saturated`` (per hidden activation: share of (row, unit) with
    f'(a) below 1 % of its maximum; sigmoid and tanh, None otherwise), ``dead`` (share of units
    never positive in the epoch; relu and leaky_relu, None otherwise) and ``stalled``.
    Activations registered after the last Linear are the output's and are not counted; only
    forward passes that record gradients in training mode count (not evaluation).

    Call :meth:`end_epoch` after each epoch with the figures your loop measures (train_loss,
    val_error, ...); it appends the record to :attr:`history` and returns it. With an
    :class:`SDAGD` ``optimizer`` the record also holds its ``mu_*`` and ``phase1_fraction``.
    :meth:`remove` takes the hooks off.
    """

    def __init__(self, model: nn.Module, optimizer: SDAGD | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"GradientFlow needs a torch.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, SDAGD):
            raise TypeError("GradientFlow's optimizer, when given, must be an sdagd.torch.SDAGD (its mu_k and "
                            f"phase-1 statistics go into the history), got {type(optimizer).__name__}")
        modules = list(model.modules())
        linears = [m for m in modules if type(m) is nn.Linear]
        if not linears:
            raise ValueError("GradientFlow: the model has no torch.nn.Linear layer to watch")
        last_linear = max(i for i, m in enumerate(modules) if type(m) is nn.Linear)
        hidden = [m for i, m in enumerate(modules) if type(m) in _ACTIVATIONS and i < last_linear]
        self.history = History()
        self.linears, self.hidden = linears, hidden
        self.kinds = [_ACTIVATIONS[type(m)] for m in hidden]
        self._optimizer = optimizer
        self._handles = []
        for l, layer in enumerate(linears):
            self._handles.append(layer.weight.register_hook(lambda grad, l=l: self._on_gradient(l, grad)))
        for l, act in enumerate(hidden):
            self._handles.append(act.register_forward_hook(lambda m, i, out, l=l: self._on_forward(l, m, out)))
        self._start_epoch()

    def _start_epoch(self):
        self._grad_sq = [0.0] * len(self.linears)
        self._grad_steps = [0] * len(self.linears)
        self._saturated = [0] * len(self.hidden)
        self._unit_rows = [0] * len(self.hidden)
        self._ever_active = [None] * len(self.hidden)
        self._started = time.perf_counter()

    def _on_gradient(self, l, grad):
        self._grad_sq[l] += float(grad.detach().double().pow(2).mean())
        self._grad_steps[l] += 1

    def _on_forward(self, l, module, out):
        if not (module.training and torch.is_grad_enabled()):
            return
        h = out.detach().reshape(-1, out.shape[-1])
        kind = self.kinds[l]
        if kind in ("sigmoid", "tanh"):
            slope = h * (1 - h) if kind == "sigmoid" else 1 - h * h
            self._saturated[l] += int((slope < (0.0025 if kind == "sigmoid" else 0.01)).sum())
            self._unit_rows[l] += h.numel()
        else:
            active = (h > 0).any(dim=0)
            seen = self._ever_active[l]
            self._ever_active[l] = active if seen is None else seen | active

    def end_epoch(self, train_loss: float = math.nan, train_error: float = math.nan, val_loss: float = math.nan,
                  val_error: float = math.nan) -> dict:
        """Close the epoch: its record (the diagnostics plus the figures given) is appended to
        :attr:`history` and returned; the counts start afresh."""
        grad_rms = [math.sqrt(sq / n) if n else math.nan for sq, n in zip(self._grad_sq, self._grad_steps)]
        saturated = [(s / rows if rows else math.nan) if kind in ("sigmoid", "tanh") else None
                     for s, rows, kind in zip(self._saturated, self._unit_rows, self.kinds)]
        dead = [None if kind not in ("relu", "leaky_relu") else
                (math.nan if seen is None else float((~seen).sum()) / seen.numel())
                for seen, kind in zip(self._ever_active, self.kinds)]
        kinds = set(self.kinds)
        stalled = stall_reason(kinds.pop(), saturated, dead) if len(kinds) == 1 else None
        mu = (self._optimizer.pop_epoch_stats() if self._optimizer is not None else
              dict(mu_mean=math.nan, mu_min=math.nan, mu_max=math.nan, phase1_fraction=math.nan))
        record = {"epoch": len(self.history) + 1, "train_loss": float(train_loss), "train_error": float(train_error),
                  "val_loss": float(val_loss), "val_error": float(val_error),
                  "time": time.perf_counter() - self._started, **mu, "grad_rms": grad_rms,
                  "saturated": saturated, "dead": dead, "stalled": stalled}
        self.history.append(record)
        self._start_epoch()
        return record

    def as_record(self, optimizer: str = "torch") -> dict:
        """The history as a record of :func:`sdagd.paper.sweep`, so that the figure helpers
        take it: ``sdagd.paper.plots.gradient_flow([flow.as_record("SGD")], depth=flow.depth,
        activation=flow.activation)``. ``optimizer`` is the panel's label."""
        return {"config": {"depth": self.depth, "activation": self.activation, "optimizer": optimizer},
                "history": self.history.as_dict()}

    @property
    def depth(self) -> int:
        """Hidden layers: the watched activations."""
        return len(self.hidden)

    @property
    def activation(self) -> str:
        """The hidden activation's name (as sdagd.MLP names it), or "mixed"."""
        kinds = set(self.kinds)
        return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "linear")

    def remove(self) -> None:
        """Take the hooks off the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def from_mlp(net) -> nn.Sequential:
    """The ``torch.nn.Sequential`` computing what the :class:`sdagd.MLP` ``net`` computes, with a
    copy of its parameters (float32, on the CPU). A softmax output becomes logits (no final
    module), as ``torch.nn.CrossEntropyLoss`` and ``loss="ce"`` expect."""
    config, sizes = net.config, net.sizes
    hidden = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
    modules = []
    for l, (W, b) in enumerate(net.params):
        linear = nn.Linear(sizes[l], sizes[l + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        modules.append(linear)
        if l < len(sizes) - 2:
            act = config["activation"]
            modules.append(nn.LeakyReLU(config["leaky_slope"]) if act == "leaky_relu" else hidden[act]())
        elif config["output"] == "sigmoid":
            modules.append(nn.Sigmoid())
    return nn.Sequential(*modules)

