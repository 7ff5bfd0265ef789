"""Optimizers: SGD, SDAGD, SDLM, AdaGrad, AdaDelta, Adam, and every other optimizer of the
core's table (csrc/tables.h; :data:`TABLE`), each with a class.

Each class holds validated hyperparameters (names, defaults and ranges from the table); the
update itself runs in the C core (``csrc/optim.c``, ``csrc/kernels.h``) over the flat
parameter slab. The numerical state (momentum, running averages, step count) is created when the optimizer is first used with a network and stays
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

import inspect
import math

import numpy as np

from . import _core

# The optimizers of the core's table (csrc/tables.h), by name: code, hyperparameters with
# defaults and ranges, state, when they need the curvature and which hyperparameter is the
# step size. Everything below about a hyperparameter comes from these rows.
__all__ = ["Optimizer", "SGD", "SDAGD", "SDLM", "AdaGrad", "AdaDelta", "Adam", "TABLE", "from_config",
           "curvature_schedule"]

TABLE = {row["name"]: row for row in _core.optimizer_table()}
_KIND = {name: row["code"] for name, row in TABLE.items()}
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


def _spec(kind, name):
    return next(h for h in TABLE[kind]["hyperparameters"] if h["name"] == name)


def _required(spec) -> bool:
    """A hyperparameter without a usable default (SGD's lr, SDAGD's radius, SDLM's mu): the
    table's default lies outside its range."""
    if spec["type"] in ("optional", "choice"):
        return False
    v, lo, hi = spec["default"], spec["low"], spec["high"]
    return not ((v >= lo if spec["low_closed"] else v > lo) and (v <= hi if spec["high_closed"] else v < hi))


def _checked(kind, name, value):
    """``value`` for hyperparameter ``name`` of optimizer ``kind``, converted and checked against the
    table's range (the core checks the same range again when it makes the optimizer); the
    messages say what is wrong and what is allowed."""
    spec = _spec(kind, name)
    lo, hi = spec["low"], spec["high"]
    if spec["type"] == "choice":
        choices = spec["choices"].split(",")
        if not isinstance(value, str) or value not in choices:  # a list would fail with "unhashable type"
            raise ValueError(f"{kind}: invalid {name} {value!r}; choose {' or '.join(map(repr, choices))}")
        return value
    if spec["type"] == "int":
        # The core keeps it in a C int: checked here, not at first use.
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            top = "2**31-1" if hi == 2**31 - 1 else f"{hi:.0f}"
            raise ValueError(f"{kind}: invalid {name} {value!r}; it must be an integer from {lo:.0f} to {top}")
        return int(value)
    if spec["type"] == "optional" and value is None:
        return None
    if lo == 0 and not spec["low_closed"] and math.isinf(hi):
        return _positive(name, value, kind)
    return _in_interval(name, value, kind, lo, hi, spec["low_closed"], spec["high_closed"])


def _in_interval(name, value, cls, low, high, low_closed, high_closed):
    """A number in the interval, also after rounding to float32 (what the kernels use)."""
    if (low, high) == (0.0, 1.0):
        return _in_unit_interval(name, value, cls, closed_high=high_closed, open_low=not low_closed)
    value = _number(name, value, cls)
    interval = f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
    ok = (value >= low if low_closed else value > low) and (value <= high if high_closed else value < high)
    if not ok:
        raise ValueError(f"{cls}: invalid {name} {value!r}; it must be in {interval}")
    return value


class Optimizer:
    """Base class: hyperparameters, the binding to one network, and the state in the C core.

    The update rules run in the C core, so only the classes of this module (and subclasses of
    them, e.g. to change defaults) can be used: an optimizer of a new kind would need a C
    update rule, and subclassing :class:`Optimizer` directly raises TypeError.
    """

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
        # The core checks every range again, from the same table (its message, should a check
        # above ever be missing).
        _core.check_optimizer(_KIND[self._kind], **self._core_kwargs())
        self._core = None      # _core.Optimizer, made on first use
        self._net_core = None  # the _core.Net that state belongs to

    @property
    def name(self) -> str:
        """The algorithm: a name of :data:`TABLE` (SGD, SDAGD, ...; also for subclasses)."""
        return self._kind

    @property
    def needs_hessian(self) -> bool:
        """Whether this optimizer uses the truncated Hessian diagonal h (the core's table says when:
        every step, every ``hessian_every`` steps, or never)."""
        return TABLE[self._kind]["curvature"] != "never"

    @property
    def curvature(self) -> str:
        """When h is computed for it: ``"always"``, ``"every N"`` or ``"none"`` (networks trained
        together by :func:`sdagd.fit_many` share the curvature pass when these agree)."""
        return curvature_schedule(self.config())

    @property
    def step_name(self) -> str:
        """The hyperparameter a schedule acts on: ``"lr"``, or ``"radius"`` for SDAGD."""
        return TABLE[self._kind]["step"]

    def step_at(self, epoch: int) -> float:
        """The step size (:attr:`step_name`) in epoch ``epoch`` (0-based) under the schedule, as the
        core computes it (docs/algorithms.md section 5.3)."""
        return _core.step_at(_KIND[self._kind], epoch, **self._core_kwargs())

    lr_at = step_at

    @property
    def hyperparameters(self) -> dict:
        """The hyperparameters as given (validated), e.g. for records and reports."""
        return dict(self._hyper)

    def config(self) -> dict:
        """A JSON-able description from which :func:`from_config` rebuilds the optimizer."""
        return {"name": self.name, **self._hyper}

    def _core_kwargs(self) -> dict:
        """The hyperparameters as the core's table names them (choices as codes, None as 0)."""
        kwargs = {}
        for spec in TABLE[self._kind]["hyperparameters"]:
            value = self._hyper.get(spec["name"], None if spec["type"] == "optional" else spec["default"])
            if spec["type"] == "choice":
                value = spec["choices"].split(",").index(value)
            kwargs[spec["name"]] = 0.0 if value is None else value
        kwargs.update(_schedule_kwargs(self._hyper.get("schedule"), self.step_name))
        return kwargs

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
    schedule : dict or None, default None
        A schedule of lr over the epochs, as SDAGD's of its radius (key ``lr_min`` for the
        cosine's floor): e.g. ``{"kind": "cosine", "epochs": 20, "lr_min": 0.0}``.
    """

    lr = _hyperparameter("lr")
    momentum = _hyperparameter("momentum")
    schedule = _hyperparameter("schedule")

    def __init__(self, lr: float, momentum: float = 0.0, schedule: dict | None = None):
        super().__init__(**_with_schedule("SGD", dict(lr=_checked("SGD", "lr", lr),
                                                       momentum=_checked("SGD", "momentum", momentum)), schedule))


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
        hyper = {name: _checked("SDAGD", name, value) for name, value in
                 [("norm", norm), ("hessian_every", hessian_every), ("max_step", max_step), ("radius", radius),
                  ("average", average), ("hessian_scale", hessian_scale), ("eps", eps)]}
        hyper = _with_schedule("SDAGD", hyper, schedule)
        # The options appear in config() only when used, so the paper's SDAGD keeps its records
        # (in the order they always had).
        options = [("schedule", None), ("average", None), ("hessian_scale", 1.0)]
        ordered = {name: hyper[name] for name in ("radius", "eps", "norm", "hessian_every", "max_step")}
        ordered.update((name, hyper[name]) for name, default in options if hyper.get(name, default) != default)
        super().__init__(**ordered)

    def radius_at(self, epoch: int) -> float:
        """R in epoch ``epoch`` (0-based) under the schedule (the core's formula: :meth:`step_at`)."""
        return self.step_at(epoch)


def _with_schedule(kind, hyper, schedule):
    """``hyper`` with a validated schedule of the step size added when one is given."""
    step = TABLE[kind]["step"]
    schedule = _check_schedule(schedule, hyper[step], kind, step)
    if schedule is not None:
        hyper["schedule"] = schedule
    return hyper


def _schedule_kwargs(schedule, step):
    """A schedule as the core's keyword arguments."""
    if schedule is None:
        return {}
    if schedule["kind"] == "step":
        return dict(schedule=_SCHEDULE["step"], schedule_factor=schedule["factor"], schedule_every=schedule["every"])
    return dict(schedule=_SCHEDULE["cosine"], schedule_epochs=schedule["epochs"], step_min=schedule[f"{step}_min"])


def _check_schedule(schedule, value, cls, step):
    """A validated, JSON-able copy of a schedule of the step size ``step`` (lr, or SDAGD's
    radius, whose current value is ``value``), or None."""
    if schedule is None:
        return None
    low = f"{step}_min"
    if not isinstance(schedule, dict) or schedule.get("kind") not in ("step", "cosine"):
        raise ValueError(f"{cls}: invalid schedule {schedule!r}; use None, {{'kind': 'step', 'factor': f, "
                         f"'every': n}} or {{'kind': 'cosine', 'epochs': E, '{low}': r}}")
    kind = schedule["kind"]
    expected = {"step": {"kind", "factor", "every"}, "cosine": {"kind", "epochs", low}}[kind]
    if set(schedule) != expected:
        raise ValueError(f"{cls}: a {kind} schedule takes exactly the keys {sorted(expected)}, got {sorted(schedule)}")

    def count(name):
        value = schedule[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value < 2**31:
            raise ValueError(f"{cls}: schedule {name} must be an integer in [1, 2**31), got {value!r}")
        return int(value)

    if kind == "step":
        factor = _number("schedule factor", schedule["factor"], cls)
        if not _F32_TINY <= factor <= 1:  # a factor below float32's smallest normal is 0 to the core
            raise ValueError(f"{cls}: schedule factor must be in (0, 1] (at least {_F32_TINY:.4g} in float32, "
                             f"the core's precision), got {factor!r}")
        return {"kind": "step", "factor": factor, "every": count("every")}
    floor = _number(f"schedule {low}", schedule[low], cls)
    if not 0 <= floor <= value:
        raise ValueError(f"{cls}: schedule {low} must be in [0, {step}={value}], got {floor!r}")
    return {"kind": "cosine", "epochs": count("epochs"), low: floor}


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
    schedule : dict or None, default None
        A schedule of lr, as :class:`SGD`'s.
    """

    lr = _hyperparameter("lr")
    mu = _hyperparameter("mu")
    gamma = _hyperparameter("gamma")
    schedule = _hyperparameter("schedule")

    def __init__(self, lr: float, mu: float, gamma: float = 0.05, schedule: dict | None = None):
        gamma = _checked("SDLM", "gamma", gamma)
        hyper = dict(lr=_checked("SDLM", "lr", lr), mu=_checked("SDLM", "mu", mu), gamma=gamma)
        super().__init__(**_with_schedule("SDLM", hyper, schedule))


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al. 2011) as torch.optim.Adagrad (no lr decay, zero initial sum):
    ``s <- s + g^2; theta <- theta - lr * g / (sqrt(s) + eps)``. ``schedule``: of lr, as
    :class:`SGD`'s."""

    lr = _hyperparameter("lr")
    eps = _hyperparameter("eps")
    schedule = _hyperparameter("schedule")

    def __init__(self, lr: float = 1e-2, eps: float = 1e-10, schedule: dict | None = None):
        hyper = dict(lr=_checked("AdaGrad", "lr", lr), eps=_checked("AdaGrad", "eps", eps))
        super().__init__(**_with_schedule("AdaGrad", hyper, schedule))


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012) as torch.optim.Adadelta:
    ``v <- rho v + (1-rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) * g;
    u <- rho u + (1-rho) d^2; theta <- theta - lr * d``. ``schedule``: of lr, as :class:`SGD`'s."""

    lr = _hyperparameter("lr")
    rho = _hyperparameter("rho")
    eps = _hyperparameter("eps")
    schedule = _hyperparameter("schedule")

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, schedule: dict | None = None):
        hyper = dict(lr=_checked("AdaDelta", "lr", lr), rho=_checked("AdaDelta", "rho", rho),
                     eps=_checked("AdaDelta", "eps", eps))
        super().__init__(**_with_schedule("AdaDelta", hyper, schedule))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014) as torch.optim.Adam (bias-corrected, no weight decay):
    ``m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    theta <- theta - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``. ``schedule``: of lr,
    as :class:`SGD`'s."""

    lr = _hyperparameter("lr")
    betas = _hyperparameter("betas")
    eps = _hyperparameter("eps")
    schedule = _hyperparameter("schedule")

    def __init__(self, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 schedule: dict | None = None):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        b1, b2 = (_checked("Adam", f"beta{i + 1}", b) for i, b in enumerate(betas))
        hyper = dict(lr=_checked("Adam", "lr", lr), betas=(b1, b2), eps=_checked("Adam", "eps", eps))
        super().__init__(**_with_schedule("Adam", hyper, schedule))

    def config(self) -> dict:
        out = {"name": self.name, "lr": self._hyper["lr"], "betas": list(self._hyper["betas"]),
               "eps": self._hyper["eps"]}
        if "schedule" in self._hyper:
            out["schedule"] = self._hyper["schedule"]
        return out

    def _core_kwargs(self):
        h = self._hyper
        kwargs = dict(lr=h["lr"], beta1=h["betas"][0], beta2=h["betas"][1], eps=h["eps"])
        kwargs.update(_schedule_kwargs(h.get("schedule"), "lr"))
        return kwargs


def _class_from_row(row):
    """An optimizer class made from its row of the core's table alone (one without a
    hand-written class above): keyword arguments, defaults, checks, attributes and docs all
    from the row. E.g. RMSprop."""
    kind, specs = row["name"], row["hyperparameters"]

    def __init__(self, schedule=None, **given):
        unknown = sorted(set(given) - {h["name"] for h in specs})
        if unknown:
            raise TypeError(f"{kind}: unknown hyperparameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                            f"it takes {', '.join(h['name'] for h in specs)} and schedule")
        hyper = {}
        for h in specs:
            if h["name"] in given:
                hyper[h["name"]] = _checked(kind, h["name"], given[h["name"]])
            elif _required(h):
                raise TypeError(f"{kind}: missing the hyperparameter {h['name']} ({h['doc']})")
            else:
                default = h["default"]
                if h["type"] == "choice":
                    default = h["choices"].split(",")[int(default)]
                elif h["type"] == "int":
                    default = int(default)
                elif h["type"] == "optional" and default == 0:
                    default = None
                hyper[h["name"]] = default
        Optimizer.__init__(self, **_with_schedule(kind, hyper, schedule))

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for h in specs:
        default = inspect.Parameter.empty if _required(h) else h["default"]
        params.append(inspect.Parameter(h["name"], inspect.Parameter.KEYWORD_ONLY, default=default))
    params.append(inspect.Parameter("schedule", inspect.Parameter.KEYWORD_ONLY, default=None))
    __init__.__signature__ = inspect.Signature(params)
    lines = [f"{kind}, made from the core's table (csrc/tables.h; formula in docs/algorithms.md section 5).",
             "", "Parameters", "----------"]
    for h in specs:
        lines += [f"{h['name']} : {h['type']}" + ("" if _required(h) else f", default {h['default']:g}"),
                  f"    {h['doc']}"]
    lines += ["schedule : dict or None, default None", f"    A schedule of {row['step']}, as :class:`SGD`'s."]
    attrs = {"__init__": __init__, "__doc__": "\n".join(lines), "__module__": __name__, "__qualname__": kind}
    attrs.update({h["name"]: _hyperparameter(h["name"]) for h in specs})
    attrs["schedule"] = _hyperparameter("schedule")
    return type(kind, (Optimizer,), attrs)


_CLASSES = {cls.__name__: cls for cls in (SGD, SDAGD, SDLM, AdaGrad, AdaDelta, Adam)}
# Every optimizer of the core's table has a class: the hand-written ones above (for their
# docs and argument forms), the others made from their rows.
for _name, _row in TABLE.items():
    if _name not in _CLASSES:
        _CLASSES[_name] = globals()[_name] = _class_from_row(_row)
        __all__.append(_name)
del _name, _row


def curvature_schedule(config: dict) -> str:
    """When the optimizer of ``config`` (from :meth:`Optimizer.config`) needs the Hessian diagonal:
    ``"always"``, ``"every N"`` or ``"none"``, from the core's table."""
    row = TABLE.get(config.get("name"))
    need = row["curvature"] if row else "never"
    if need == "always":
        return "always"
    if need == "every":
        every = config.get("hessian_every", 1)
        return "always" if every == 1 else f"every {every}"
    return "none"


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
