"""Optimizers: SGD, SDAGD, SDLM, AdaGrad, AdaDelta and Adam.

Each class holds validated hyperparameters; the update itself runs in the C core
(``csrc/optim.c``) over the flat parameter slab. The numerical state (momentum, running
averages, step count) is created when the optimizer is first used with a network and stays
bound to that network: it lives with the training run, and :meth:`sdagd.MLP.save` stores it so
that a resumed fit continues bit for bit.

The update rules are those of ``docs/algorithms.md`` section 5, with ``g`` the mini-batch gradient
and ``h`` the truncated diagonal Hessian of the same mini-batch (all elementwise).

Hyperparameters are checked in float32, the precision the core computes in, and are
attributes: ``opt.lr = 0.1`` (e.g. between epochs, from a ``fit`` progress callback) is checked
as the constructor checks it and applies from the next step, the state carried over.

Example
-------
>>> import numpy as np, sdagd
>>> net = sdagd.MLP([4, 8, 3], seed=0)
>>> X = np.random.default_rng(0).random((20, 4), dtype=np.float32)
>>> y = np.arange(20) % 3
>>> opt = sdagd.optim.SDAGD(radius=0.3)
>>> loss = net.train_step(X, y, opt)
>>> opt.step_count
1
"""
from __future__ import annotations

import math

import numpy as np

from . import _core

__all__ = ["Optimizer", "SGD", "SDAGD", "SDLM", "AdaGrad", "AdaDelta", "Adam", "from_config"]

# The core's codes (csrc/sdagd.h), by name.
_KIND = _core.OPTIMIZERS
_NORM = _core.NORMS
_SCHEDULE = _core.SCHEDULES


def _number(name, value, cls):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{cls}: {name} must be a number, got {value!r}")
    return float(value)


#: The update kernels compute in float32: a positive hyperparameter below the smallest normal
#: float32 rounds to 0 (or a subnormal that flush-to-zero hardware takes for 0), one above the
#: largest to inf; either gives NaN at the first step.
_F32_TINY, _F32_MAX = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)


def _positive(name, value, cls):
    value = _number(name, value, cls)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{cls}: invalid {name} {value!r}; it must be a positive finite number")
    if not _F32_TINY <= value <= _F32_MAX:
        raise ValueError(f"{cls}: invalid {name} {value!r}; the core computes in float32, where it would be "
                         f"{'0' if value < _F32_TINY else 'inf'}: use a value in [{_F32_TINY:.4g}, {_F32_MAX:.4g}]")
    return value


def _in_unit_interval(name, value, cls, *, closed_high=False, open_low=False):
    value = _number(name, value, cls)
    low_ok = value > 0 if open_low else value >= 0
    ok = low_ok and (value <= 1 if closed_high else value < 1)
    interval = ("(0, " if open_low else "[0, ") + ("1]" if closed_high else "1)")
    if not ok:
        raise ValueError(f"{cls}: invalid {name} {value!r}; it must be in {interval}")
    # In float32 (what the kernels use) 1 - 1e-9 is 1, and 1e-46 is 0: both outside the interval.
    as_f32 = float(np.float32(value))
    if (not closed_high and as_f32 >= 1) or (open_low and as_f32 < _F32_TINY):
        raise ValueError(f"{cls}: invalid {name} {value!r}; the core computes in float32, where it is {as_f32:g}, "
                         f"outside {interval}")
    return value


class Optimizer:
    """Base class: hyperparameters, the binding to one network, and the state in the C core.

    The update rules run in the C core, so only the classes of this module (and subclasses of
    them, e.g. to change defaults) can be used: an optimizer of a new kind would need a C
    update rule, and subclassing :class:`Optimizer` directly raises TypeError.
    """

    needs_hessian = False

    def __init__(self, **hyperparameters):
        # The core's kind: the nearest class of this module in the MRO, so that a subclass of
        # SGD is an SGD to the core (and in saved files).
        self._kind = next((c.__name__ for c in type(self).__mro__
                           if c.__module__ == __name__ and c.__name__ in _KIND), None)
        if self._kind is None:
            raise TypeError(f"{type(self).__name__}: the update rules run in the C core, which implements "
                            f"{', '.join(_KIND)}; subclass one of those (e.g. to change its defaults) "
                            f"rather than Optimizer itself")
        self._hyper = hyperparameters
        self._core = None      # _core.Optimizer, made on first use
        self._net_core = None  # the _core.Net that state belongs to

    @property
    def name(self) -> str:
        """The algorithm: one of SGD, SDAGD, SDLM, AdaGrad, AdaDelta, Adam (also for subclasses)."""
        return self._kind

    @property
    def hyperparameters(self) -> dict:
        """The hyperparameters as given (validated), e.g. for records and reports."""
        return dict(self._hyper)

    def config(self) -> dict:
        """A JSON-able description from which :func:`from_config` rebuilds the optimizer."""
        return {"name": self.name, **self._hyper}

    def _core_kwargs(self) -> dict:
        return dict(self._hyper)

    def _bind(self, net_core):
        """The C-core optimizer for ``net_core``, made on first use."""
        if self._core is None:
            self._core = _core.Optimizer(net_core, _KIND[self._kind], **self._core_kwargs())
            self._net_core = net_core
        elif self._net_core is not net_core:
            raise ValueError(
                f"this {self.name} optimizer already holds state for another network; "
                f"create a new optimizer for each network (or call reset())"
            )
        return self._core

    # Package-internal (sdagd.mlp, sdagd._training, sdagd.many bind optimizers to networks):
    # the binding under names other modules may use.
    def core_optimizer(self, net_core) -> _core.Optimizer:
        """The C-core optimizer for the core network ``net_core`` (``MLP.core_net``), made on
        first use; a ValueError if this optimizer already holds another network's state."""
        return self._bind(net_core)

    @property
    def bound_net(self):
        """The core network whose state this optimizer holds; None before its first use and
        after :meth:`reset`."""
        return self._net_core

    def _set_hyperparameter(self, name, value):
        """``self.<name> = value``: checked as the constructor checks it (the whole configuration,
        so that e.g. a cosine schedule's radius_min stays below a new radius), and in effect from
        the next step: the core optimizer is rebuilt with the state and step count carried over
        (a momentum buffer appears zeroed, or is dropped, when SGD's momentum turns on or off)."""
        candidate = from_config(dict(self.config(), **{name: value}))  # raises as the constructor would
        fresh = None
        if self._core is not None:
            state, step = self._core.get_state()
            fresh = _core.Optimizer(self._net_core, _KIND[self._kind], **candidate._core_kwargs())
            empty, _ = fresh.get_state()
            fresh.set_state(state if state.shape == empty.shape else empty, step)
        self._hyper = candidate._hyper
        if fresh is not None:
            self._core = fresh

    def reset(self) -> None:
        """Forget all state (step count, averages); the next use starts afresh."""
        self._core = None
        self._net_core = None

    @property
    def step_count(self) -> int:
        """Updates taken so far (0 before first use)."""
        return 0 if self._core is None else self._core.step_count

    def state_dict(self) -> dict:
        """Hyperparameters plus a copy of the numerical state (``state``: float32 array of
        shape (slabs, P) in the flat parameter layout, ``step``)."""
        out = {"config": self.config(), "state": None, "step": 0}
        if self._core is not None:
            out["state"], out["step"] = self._core.get_state()
        return out

    def load_state_dict(self, state: dict, net) -> None:
        """Restore state saved by :meth:`state_dict` for the network ``net`` (an MLP)."""
        if state["config"] != self.config():
            raise ValueError(
                f"saved optimizer state is for {state['config']}, not for {self.config()}"
            )
        if state["state"] is not None:
            array = np.ascontiguousarray(state["state"], dtype=np.float32)
            if array.ndim != 2 or array.shape[1] != net.n_params:
                raise ValueError(f"saved optimizer state has shape {array.shape}; this network has "
                                 f"{net.n_params} parameters")
            if not np.all(np.isfinite(array)):  # no optimizer keeps NaN or inf in working order
                raise ValueError("saved optimizer state contains NaN or inf")
            step = state["step"]
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step < 2**63:
                raise ValueError(f"saved optimizer step must be an integer >= 0, got {step!r}")
        # Made aside and swapped in only on success: a failed load leaves this optimizer as it was.
        fresh = _core.Optimizer(net.core_net, _KIND[self._kind], **self._core_kwargs())
        if state["state"] is not None:
            fresh.set_state(array, int(step))
        self._core, self._net_core = fresh, net.core_net

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return f"{self.name}({args})"


def _hyperparameter(name, default=None):
    """A hyperparameter as an attribute: reads the validated value; assigning one (e.g. a new lr
    between epochs) is validated like the constructor's argument and applies from the next step."""
    def get(self):
        return self._hyper.get(name, default)

    def set(self, value):
        self._set_hyperparameter(name, value)

    return property(get, set, doc=f"The hyperparameter {name}; assignable (checked, applies from the next step).")


class SGD(Optimizer):
    """Stochastic gradient descent (paper eq. 6), optionally with momentum.

    ``theta <- theta - lr * g``; with momentum ``m <- momentum * m + g; theta <- theta - lr * m``
    (the convention of torch.optim.SGD without dampening or Nesterov).

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    momentum : float, default 0
        In [0, 1).
    """

    lr = _hyperparameter("lr")
    momentum = _hyperparameter("momentum")

    def __init__(self, lr: float, momentum: float = 0.0):
        super().__init__(lr=_positive("lr", lr, "SGD"), momentum=_in_unit_interval("momentum", momentum, "SGD"))


class SDAGD(Optimizer):
    """Stochastic diagonal approximate greatest descent (Tan & Lim, eq. 7; docs/algorithms.md section 5.2).

    ``theta <- theta - g / (mu_k + h + eps)`` with ``mu_k = ||g||_2 / R``, where ``h`` is the
    truncated diagonal Hessian of the same mini-batch. Far from a minimum (``mu_k >> h``) the
    step is about ``R * g / ||g||``, a step of length R along steepest descent ("greatest
    descent", phase 1); near one (``mu_k << h``) it is about ``g / h`` (diagonal Newton).

    Parameters
    ----------
    radius : float
        R > 0, the radius of the spherical search region: the step length in phase 1.
        The papers give no value; choose it on a validation split (0.3 works for the paper's
        sigmoid and ReLU nets with ``norm="layer"``).
    eps : float, default 1e-8
        Guards 0/0 only; it is not a learning rate.
    norm : {"layer", "global"}, default "layer"
        Which gradient the norm in ``mu_k`` covers. ``"layer"``: one ``mu_k`` per layer (W and
        b together), so every layer steps about R in phase 1 and vanishing gradients of early
        layers are rescaled. ``"global"``: one ``mu_k`` over all parameters, the literal
        reading of eq. 7. See docs/algorithms.md section 5.2 for why "layer" is the default.
    hessian_every : int, default 1
        Recompute ``h`` every N steps and reuse it in between (cheaper; 1 = the paper).
    max_step : float or None, default None
        If given, each norm group's step is scaled down to at most this length.

    Options beyond the paper (docs/algorithms.md section 5.3), each off by default:

    schedule : dict or None, default None
        A schedule of R over the epochs e = 0, 1, ... (R is constant within an epoch):
        ``{"kind": "step", "factor": f, "every": n}`` gives ``R_e = R * f**(e // n)``;
        ``{"kind": "cosine", "epochs": E, "radius_min": r}`` gives
        ``R_e = r + (R - r) * (1 + cos(pi * e / E)) / 2`` (``R_e = r`` from epoch E on).
    average : float or None, default None
        Use a running average of ``h`` with this weight gamma in (0, 1], as SDLM does:
        ``hbar <- (1 - gamma) hbar + gamma h``, ``hbar`` starting at the first ``h``.
    hessian_scale : float, default 1
        Multiplies ``h`` (for experiments on the two phases: how large would ``h`` have to be
        for the Newton-like phase to begin?). 1 is the algorithm.

    Examples
    --------
    >>> from sdagd.optim import SDAGD
    >>> SDAGD(radius=0.3, schedule={"kind": "cosine", "epochs": 20, "radius_min": 0.0}).radius_at(10)
    0.15
    """

    needs_hessian = True
    radius = _hyperparameter("radius")
    eps = _hyperparameter("eps")
    norm = _hyperparameter("norm")
    hessian_every = _hyperparameter("hessian_every")
    max_step = _hyperparameter("max_step")
    schedule = _hyperparameter("schedule")
    average = _hyperparameter("average")
    hessian_scale = _hyperparameter("hessian_scale", 1.0)

    def __init__(self, radius: float, eps: float = 1e-8, norm: str = "layer", hessian_every: int = 1,
                 max_step: float | None = None, schedule: dict | None = None, average: float | None = None,
                 hessian_scale: float = 1.0):
        if not isinstance(norm, str) or norm not in _NORM:  # a list would fail with "unhashable type"
            raise ValueError(f"SDAGD: invalid norm {norm!r}; choose 'layer' or 'global'")
        # The core keeps hessian_every in a C int: checked here, not at first use.
        if (isinstance(hessian_every, bool) or not isinstance(hessian_every, (int, np.integer))
                or not 1 <= hessian_every <= 2**31 - 1):
            raise ValueError(f"SDAGD: invalid hessian_every {hessian_every!r}; it must be an integer from 1 "
                             f"to 2**31-1")
        if max_step is not None:
            max_step = _positive("max_step", max_step, "SDAGD")
        radius = _positive("radius", radius, "SDAGD")
        schedule = _check_schedule(schedule, radius)
        if average is not None:
            average = _in_unit_interval("average (the running average's weight)", average, "SDAGD",
                                        closed_high=True, open_low=True)
        hessian_scale = _positive("hessian_scale", hessian_scale, "SDAGD")
        hyper = dict(radius=radius, eps=_positive("eps", eps, "SDAGD"), norm=norm,
                     hessian_every=int(hessian_every), max_step=max_step)
        # The options appear in config() only when used, so the paper's SDAGD keeps its records.
        for name, value, default in [("schedule", schedule, None), ("average", average, None),
                                     ("hessian_scale", hessian_scale, 1.0)]:
            if value != default:
                hyper[name] = value
        super().__init__(**hyper)

    def radius_at(self, epoch: int) -> float:
        """R in epoch ``epoch`` (0-based) under the schedule (the same formula the core uses)."""
        R, s = self._hyper["radius"], self._hyper.get("schedule")
        if s is None:
            return R
        if s["kind"] == "step":
            return R * s["factor"] ** (epoch // s["every"])
        e = min(epoch, s["epochs"])
        return s["radius_min"] + (R - s["radius_min"]) * (1 + math.cos(math.pi * e / s["epochs"])) / 2

    def _core_kwargs(self):
        h = self._hyper
        kwargs = dict(radius=h["radius"], eps=h["eps"], norm=_NORM[h["norm"]], hessian_every=h["hessian_every"],
                      max_step=h["max_step"] or 0.0, hessian_scale=h.get("hessian_scale", 1.0))
        if h.get("average") is not None:
            kwargs.update(average=True, gamma=h["average"])
        s = h.get("schedule")
        if s is not None:
            kwargs["schedule"] = _SCHEDULE[s["kind"]]
            if s["kind"] == "step":
                kwargs.update(schedule_factor=s["factor"], schedule_every=s["every"])
            else:
                kwargs.update(schedule_epochs=s["epochs"], radius_min=s["radius_min"])
        return kwargs


def _check_schedule(schedule, radius):
    """A validated, JSON-able copy of an SDAGD radius schedule (or None)."""
    if schedule is None:
        return None
    if not isinstance(schedule, dict) or schedule.get("kind") not in ("step", "cosine"):
        raise ValueError(f"SDAGD: invalid schedule {schedule!r}; use None, {{'kind': 'step', 'factor': f, "
                         f"'every': n}} or {{'kind': 'cosine', 'epochs': E, 'radius_min': r}}")
    kind = schedule["kind"]
    expected = {"step": {"kind", "factor", "every"}, "cosine": {"kind", "epochs", "radius_min"}}[kind]
    if set(schedule) != expected:
        raise ValueError(f"SDAGD: a {kind} schedule takes exactly the keys {sorted(expected)}, got {sorted(schedule)}")

    def count(name):
        value = schedule[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value < 2**31:
            raise ValueError(f"SDAGD: schedule {name} must be an integer in [1, 2**31), got {value!r}")
        return int(value)

    if kind == "step":
        factor = _number("schedule factor", schedule["factor"], "SDAGD")
        if not _F32_TINY <= factor <= 1:  # a factor below float32's smallest normal is 0 to the core
            raise ValueError(f"SDAGD: schedule factor must be in (0, 1] (at least {_F32_TINY:.4g} in float32, "
                             f"the core's precision), got {factor!r}")
        return {"kind": "step", "factor": factor, "every": count("every")}
    r_min = _number("schedule radius_min", schedule["radius_min"], "SDAGD")
    if not 0 <= r_min <= radius:
        raise ValueError(f"SDAGD: schedule radius_min must be in [0, radius={radius}], got {r_min!r}")
    return {"kind": "cosine", "epochs": count("epochs"), "radius_min": r_min}


class SDLM(Optimizer):
    """Stochastic diagonal Levenberg-Marquardt (LeCun et al., "Efficient BackProp", 1998).

    ``hbar <- (1 - gamma) hbar + gamma h`` (``hbar`` starts at the first mini-batch's ``h``
    rather than at zero, so early steps are not inflated), then
    ``theta <- theta - lr * g / (mu + hbar)``.

    Parameters
    ----------
    lr : float
        Global learning rate, > 0.
    mu : float
        Damping added to ``hbar``, > 0 (bounds the step where the curvature is tiny).
    gamma : float, default 0.05
        Weight of the newest ``h`` in the running average, in (0, 1].
    """

    needs_hessian = True
    lr = _hyperparameter("lr")
    mu = _hyperparameter("mu")
    gamma = _hyperparameter("gamma")

    def __init__(self, lr: float, mu: float, gamma: float = 0.05):
        gamma = _in_unit_interval("gamma", gamma, "SDLM", closed_high=True, open_low=True)
        super().__init__(lr=_positive("lr", lr, "SDLM"), mu=_positive("mu", mu, "SDLM"), gamma=gamma)


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al. 2011) as torch.optim.Adagrad (no lr decay, zero initial sum):
    ``s <- s + g^2; theta <- theta - lr * g / (sqrt(s) + eps)``."""

    lr = _hyperparameter("lr")
    eps = _hyperparameter("eps")

    def __init__(self, lr: float = 1e-2, eps: float = 1e-10):
        super().__init__(lr=_positive("lr", lr, "AdaGrad"), eps=_positive("eps", eps, "AdaGrad"))


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012) as torch.optim.Adadelta:
    ``v <- rho v + (1-rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) * g;
    u <- rho u + (1-rho) d^2; theta <- theta - lr * d``."""

    lr = _hyperparameter("lr")
    rho = _hyperparameter("rho")
    eps = _hyperparameter("eps")

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6):
        super().__init__(lr=_positive("lr", lr, "AdaDelta"), rho=_in_unit_interval("rho", rho, "AdaDelta"),
                         eps=_positive("eps", eps, "AdaDelta"))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014) as torch.optim.Adam (bias-corrected, no weight decay):
    ``m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    theta <- theta - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``."""

    lr = _hyperparameter("lr")
    betas = _hyperparameter("betas")
    eps = _hyperparameter("eps")

    def __init__(self, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        b1, b2 = (_in_unit_interval(f"beta{i + 1}", b, "Adam") for i, b in enumerate(betas))
        super().__init__(lr=_positive("lr", lr, "Adam"), betas=(b1, b2), eps=_positive("eps", eps, "Adam"))

    def config(self) -> dict:
        return {"name": self.name, "lr": self._hyper["lr"], "betas": list(self._hyper["betas"]),
                "eps": self._hyper["eps"]}

    def _core_kwargs(self):
        h = self._hyper
        return dict(lr=h["lr"], beta1=h["betas"][0], beta2=h["betas"][1], eps=h["eps"])


_CLASSES = {cls.__name__: cls for cls in (SGD, SDAGD, SDLM, AdaGrad, AdaDelta, Adam)}


def from_config(config: dict) -> Optimizer:
    """Rebuild an optimizer (without state) from :meth:`Optimizer.config`."""
    if not isinstance(config, dict):
        raise TypeError(f"an optimizer configuration is a dict such as {{'name': 'SGD', 'lr': 0.1}} "
                        f"(from Optimizer.config()), got {config!r}")
    config = dict(config)
    name = config.pop("name", None)
    if not isinstance(name, str) or name not in _CLASSES:  # a list would fail with "unhashable type"
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(_CLASSES)}")
    if name == "Adam" and "betas" in config:
        config["betas"] = tuple(config["betas"])
    return _CLASSES[name](**config)
