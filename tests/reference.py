"""Independent float64 NumPy oracle for the sdagd C core.

Written straight from docs/algorithms.md (sections 1-5; "spec" below). Plain NumPy, vectorised
over the batch, every quantity in float64. Nothing here imports the `sdagd` package.

Conventions
-----------
params : list of (W, b) tuples, W shape (n_out, n_in), b shape (n_out,), layer 1 first.
X      : (B, n_in) inputs;  y : (B,) integer labels;  D : one-hot targets of width n_out.
Per-sample vectors of the spec (a_l, h_l, delta_l, s_l) are stored as rows: shape (B, n_l).
"""

import math

import numpy as np

HIDDEN_ACTIVATIONS = ("sigmoid", "relu", "tanh", "leaky_relu")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear", "softmax")
LOSSES = ("mse", "ce")


# --------------------------------------------------------------------------- helpers

def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _as_params(params):
    return [(_f64(W), _f64(b)) for (W, b) in params]


def _labels(y):
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels y must be a 1-D integer array")
    return y


def one_hot(y, n_out):
    """One-hot targets D (B, n_out) in float64."""
    y = _labels(y)
    if y.size and (y.min() < 0 or y.max() >= n_out):
        raise ValueError("label out of range")
    D = np.zeros((y.shape[0], n_out), dtype=np.float64)
    D[np.arange(y.shape[0]), y] = 1.0
    return D


def _check_config(hidden, output, loss):
    if hidden not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown hidden activation {hidden!r}")
    if output not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output activation {output!r}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}")
    # Spec section 1: softmax only with cross-entropy; section 2/3: CE is defined through
    # softmax(a_{L+1}) and its delta is softmax(a) - D, i.e. CE implies a softmax output.
    if (output == "softmax") != (loss == "ce"):
        raise ValueError("output 'softmax' must be used with loss 'ce' and vice versa")


def _softmax(a):
    z = a - a.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(a):
    m = a.max(axis=1, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------- activations

def activation(name, a, slope=0.01):
    """f(a) for hidden names sigmoid/relu/tanh/leaky_relu and output names
    sigmoid/linear/softmax (softmax is row-wise over the last axis)."""
    a = _f64(a)
    if name == "sigmoid":
        # 1/(1+e^-a) written as exp(-log(1+e^-a)): no overflow for large |a|.
        return np.exp(-np.logaddexp(0.0, -a))
    if name == "relu":
        return np.where(a > 0, a, 0.0)
    if name == "tanh":
        return np.tanh(a)
    if name == "leaky_relu":
        return np.where(a > 0, a, slope * a)
    if name == "linear":
        return a.copy()
    if name == "softmax":
        a2 = np.atleast_2d(a)
        return _softmax(a2).reshape(a.shape)
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(name, a, slope=0.01):
    """Elementwise f'(a). relu'(0) = 0 and leaky_relu'(0) = slope (the test is a > 0).
    softmax has no elementwise derivative: it is only used through softmax + CE."""
    a = _f64(a)
    if name == "sigmoid":
        s = activation("sigmoid", a)
        return s * (1.0 - s)
    if name == "relu":
        return np.where(a > 0, 1.0, 0.0)
    if name == "tanh":
        t = np.tanh(a)
        return 1.0 - t * t
    if name == "leaky_relu":
        return np.where(a > 0, 1.0, float(slope))
    if name == "linear":
        return np.ones_like(a)
    if name == "softmax":
        raise ValueError("softmax has no elementwise derivative (use it with loss 'ce')")
    raise ValueError(f"unknown activation {name!r}")


# --------------------------------------------------------------------------- network

def forward(params, X, hidden="sigmoid", output="sigmoid", slope=0.01):
    """Spec section 1. Returns [(a_1, h_1), ..., (a_{L+1}, h_{L+1})], each (B, n_l);
    the last h is the network output Y."""
    if hidden not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown hidden activation {hidden!r}")
    if output not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output activation {output!r}")
    params = _as_params(params)
    h = _f64(X)
    if h.ndim != 2:
        raise ValueError("X must have shape (B, n_in)")
    out = []
    n_layers = len(params)
    for l, (W, b) in enumerate(params):
        a = h @ W.T + b                       # a_l = W_l h_{l-1} + b_l, one row per sample
        name = output if l == n_layers - 1 else hidden
        h = activation(name, a, slope)
        out.append((a, h))
    return out


def loss(params, X, y, hidden="sigmoid", output="sigmoid", loss="mse", slope=0.01):
    """Spec section 2. MSE: (1/B) sum_p 1/2 ||D_p - Y_p||^2;
    CE: -(1/B) sum_p log softmax(a_{L+1})[y_p] (log-sum-exp, stable)."""
    _check_config(hidden, output, loss)
    y = _labels(y)
    layers = forward(params, X, hidden, output, slope)
    a_out, Y = layers[-1]
    B = Y.shape[0]
    if loss == "mse":
        D = one_hot(y, Y.shape[1])
        return float(0.5 * np.sum((D - Y) ** 2) / B)
    logp = _log_softmax(a_out)
    return float(-np.sum(logp[np.arange(B), y]) / B)


def error_count(params, X, y, hidden="sigmoid", output="sigmoid", loss="mse", slope=0.01):
    """Number of samples with argmax(Y_p) != y_p (ties -> first index, as np.argmax).
    `loss` is accepted for a uniform signature and not used."""
    y = _labels(y)
    Y = forward(params, X, hidden, output, slope)[-1][1]
    return int(np.sum(np.argmax(Y, axis=1) != y))


def _output_delta(a_out, Y, D, output, loss_name, slope):
    if loss_name == "ce":
        return _softmax(a_out) - D
    return (Y - D) * activation_grad(output, a_out, slope)


def gradients(params, X, y, hidden="sigmoid", output="sigmoid", loss="mse", slope=0.01):
    """Spec section 3 (backprop). Returns [(dW_1, db_1), ..., (dW_{L+1}, db_{L+1})]."""
    _check_config(hidden, output, loss)
    params = _as_params(params)
    X = _f64(X)
    y = _labels(y)
    layers = forward(params, X, hidden, output, slope)
    B = X.shape[0]
    a_out, Y = layers[-1]
    D = one_hot(y, Y.shape[1])
    delta = _output_delta(a_out, Y, D, output, loss, slope)
    grads = [None] * len(params)
    for l in range(len(params) - 1, -1, -1):
        h_prev = X if l == 0 else layers[l - 1][1]
        grads[l] = (delta.T @ h_prev / B, delta.sum(axis=0) / B)
        if l > 0:
            W = params[l][0]
            # delta_{l-1} = f'(a_{l-1}) * (W_l^T delta_l)
            delta = activation_grad(hidden, layers[l - 1][0], slope) * (delta @ W)
    return grads


def hessian_diagonal(params, X, y, hidden="sigmoid", output="sigmoid", loss="mse",
                     slope=0.01):
    """Spec section 4 (truncated diagonal Hessian). Returns [(hW_l, hb_l), ...]."""
    _check_config(hidden, output, loss)
    params = _as_params(params)
    X = _f64(X)
    _labels(y)  # the truncated Hessian does not depend on the labels; validated only
    layers = forward(params, X, hidden, output, slope)
    B = X.shape[0]
    a_out = layers[-1][0]
    if loss == "ce":
        p = _softmax(a_out)
        s = p * (1.0 - p)
    else:
        s = activation_grad(output, a_out, slope) ** 2      # = 1 for linear output
    hess = [None] * len(params)
    for l in range(len(params) - 1, -1, -1):
        h_prev = X if l == 0 else layers[l - 1][1]
        hess[l] = (s.T @ (h_prev ** 2) / B, s.sum(axis=0) / B)
        if l > 0:
            W = params[l][0]
            # s_{l-1} = f'(a_{l-1})^2 * ((W_l o W_l)^T s_l)
            s = activation_grad(hidden, layers[l - 1][0], slope) ** 2 * (s @ (W ** 2))
    return hess


def numerical_gradient(params, X, y, hidden="sigmoid", output="sigmoid", loss="mse",
                       slope=0.01, eps=1e-6):
    """Central finite differences of `loss`, one parameter at a time, float64."""
    loss_fn = globals()["loss"]  # the argument `loss` shadows the function name
    params = _as_params(params)
    work = [[W.copy(), b.copy()] for (W, b) in params]
    out = []
    for l in range(len(work)):
        pair = []
        for k in range(2):
            arr = work[l][k]
            g = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + eps
                ep = loss_fn(work, X, y, hidden, output, loss, slope)
                arr[idx] = old - eps
                em = loss_fn(work, X, y, hidden, output, loss, slope)
                arr[idx] = old
                g[idx] = (ep - em) / (2.0 * eps)
            pair.append(g)
        out.append((pair[0], pair[1]))
    return out


def init_xavier_bound(n_in, n_out):
    """Xavier/Glorot uniform bound r = sqrt(6/(n_in+n_out)); W ~ U[-r, r]."""
    return float(np.sqrt(6.0 / (n_in + n_out)))


# --------------------------------------------------------------------------- optimizers
#
# All optimizers: step(params, grads, hess=None) -> NEW list of (W, b); inputs untouched.
# State attributes are lists of (W-shaped, b-shaped) float64 tuples matching params.

def _zeros_like_params(params):
    return [(np.zeros_like(_f64(W)), np.zeros_like(_f64(b))) for (W, b) in params]


def _copy_params(params):
    return [(_f64(W).copy(), _f64(b).copy()) for (W, b) in params]


def _check_match(params, other, what):
    if other is None or len(other) != len(params):
        raise ValueError(f"{what} must be a list matching params")
    for (W, b), (oW, ob) in zip(params, other):
        if np.shape(oW) != np.shape(W) or np.shape(ob) != np.shape(b):
            raise ValueError(f"{what} shapes do not match params")


def scheduled(value, schedule, epoch, step="lr"):
    """The step size (lr, or SDAGD's radius) in epoch `epoch` (0-based) under a schedule
    (docs/algorithms.md section 5.3), in float64: None keeps `value`; {"kind": "step",
    "factor": f, "every": n} gives value * f**(epoch // n); {"kind": "cosine", "epochs": E,
    "<step>_min": m} gives m + (value - m) (1 + cos(pi min(epoch, E) / E)) / 2."""
    if schedule is None:
        return float(value)
    if schedule["kind"] == "step":
        return float(value) * float(schedule["factor"]) ** (epoch // schedule["every"])
    low, E = float(schedule[f"{step}_min"]), schedule["epochs"]
    return low + (float(value) - low) * (1.0 + math.cos(math.pi * min(epoch, E) / E)) / 2.0


class SGD:
    """theta -= lr * g; with momentum: m <- momentum*m + g (m0 = 0), theta -= lr*m."""

    def __init__(self, lr, momentum=0.0):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.m = None
        self.t = 0

    def step(self, params, grads, hess=None):
        _check_match(params, grads, "grads")
        if self.m is None:
            self.m = _zeros_like_params(params)
        new = []
        for i, ((W, b), (gW, gb)) in enumerate(zip(params, grads)):
            gW, gb = _f64(gW), _f64(gb)
            if self.momentum:
                mW, mb = self.m[i]
                mW = self.momentum * mW + gW
                mb = self.momentum * mb + gb
                self.m[i] = (mW, mb)
                dW, db = mW, mb
            else:
                dW, db = gW, gb
            new.append((_f64(W) - self.lr * dW, _f64(b) - self.lr * db))
        self.t += 1
        return new


class SDAGD:
    """Spec section 5, eq. (7): per group, mu = ||g_group||_2 / radius,
    step = g / (mu + h + eps), optional cap ||step_group||_2 <= max_step, theta -= step.

    norm="layer": one group per layer (its W and b together); "global": one group.
    hessian_every=N: the h used at step k (k = 0, 1, ...) is the one passed at the latest
    step with k % N == 0; at other steps `hess` is ignored (may be None).
    Options (spec 5): average=gamma keeps hbar <- (1 - gamma) hbar + gamma h (hbar starting at
    the first h) and uses it in place of h; hessian_scale multiplies every h passed.
    Records self.last_mu (mu per group) and self.last_phase1_fraction
    (#params with mu_of_their_group > h) / #params.
    """

    def __init__(self, radius, eps=1e-8, norm="layer", hessian_every=1, max_step=None, average=None,
                 hessian_scale=1.0):
        if not radius > 0:
            raise ValueError("radius must be > 0")
        if norm not in ("layer", "global"):
            raise ValueError("norm must be 'layer' or 'global'")
        if int(hessian_every) < 1:
            raise ValueError("hessian_every must be >= 1")
        self.radius = float(radius)
        self.eps = float(eps)
        self.norm = norm
        self.hessian_every = int(hessian_every)
        self.max_step = None if max_step is None else float(max_step)
        self.average = None if average is None else float(average)  # running-average weight gamma
        self.hessian_scale = float(hessian_scale)
        self.h = None          # the h in use: stored, or averaged (list of (hW, hb))
        self.k = 0             # number of steps taken so far
        self.last_mu = None
        self.last_phase1_fraction = None

    def _groups(self, n_layers):
        if self.norm == "layer":
            return [[i] for i in range(n_layers)]
        return [list(range(n_layers))]

    def step(self, params, grads, hess=None):
        _check_match(params, grads, "grads")
        if self.k % self.hessian_every == 0:
            _check_match(params, hess, "hess (required at this step)")
            c = self.hessian_scale
            fresh = [(c * _f64(hW), c * _f64(hb)) for (hW, hb) in hess]
            if self.average is None or self.h is None:  # the average starts at the first h
                self.h = fresh
            else:
                g_ = self.average
                self.h = [((1 - g_) * HW + g_ * hW, (1 - g_) * Hb + g_ * hb)
                          for (HW, Hb), (hW, hb) in zip(self.h, fresh)]
        h = self.h
        steps = [None] * len(params)
        mus = []
        n_phase1 = 0
        n_total = 0
        for group in self._groups(len(params)):
            g_sq = sum(np.sum(_f64(grads[i][0]) ** 2) + np.sum(_f64(grads[i][1]) ** 2)
                       for i in group)
            mu = float(np.sqrt(g_sq)) / self.radius
            mus.append(mu)
            for i in group:
                gW, gb = _f64(grads[i][0]), _f64(grads[i][1])
                hW, hb = h[i]
                steps[i] = (gW / (mu + hW + self.eps), gb / (mu + hb + self.eps))
                n_phase1 += int(np.sum(mu > hW)) + int(np.sum(mu > hb))
                n_total += hW.size + hb.size
            if self.max_step is not None:
                s_norm = float(np.sqrt(sum(np.sum(steps[i][0] ** 2) + np.sum(steps[i][1] ** 2)
                                           for i in group)))
                if s_norm > self.max_step:
                    c = self.max_step / s_norm
                    for i in group:
                        steps[i] = (steps[i][0] * c, steps[i][1] * c)
        self.last_mu = mus
        self.last_phase1_fraction = n_phase1 / n_total
        self.k += 1
        return [(_f64(W) - sW, _f64(b) - sb) for (W, b), (sW, sb) in zip(params, steps)]


class SDLM:
    """LeCun's stochastic diagonal Levenberg-Marquardt: hbar <- h on the first step, then
    hbar <- (1-gamma) hbar + gamma h; theta -= lr * g / (mu + hbar)."""

    def __init__(self, lr, mu, gamma):
        self.lr = float(lr)
        self.mu = float(mu)
        self.gamma = float(gamma)
        self.hbar = None
        self.t = 0

    def step(self, params, grads, hess=None):
        _check_match(params, grads, "grads")
        _check_match(params, hess, "hess")
        if self.hbar is None:
            self.hbar = [(_f64(hW).copy(), _f64(hb).copy()) for (hW, hb) in hess]
        else:
            g_ = self.gamma
            self.hbar = [((1 - g_) * HW + g_ * _f64(hW), (1 - g_) * Hb + g_ * _f64(hb))
                         for (HW, Hb), (hW, hb) in zip(self.hbar, hess)]
        self.t += 1
        return [(_f64(W) - self.lr * _f64(gW) / (self.mu + HW),
                 _f64(b) - self.lr * _f64(gb) / (self.mu + Hb))
                for (W, b), (gW, gb), (HW, Hb) in zip(params, grads, self.hbar)]


class _Elementwise:
    """Base for optimizers whose update acts on each array independently."""

    _state_names = ()

    def _init_state(self, params):
        for name in self._state_names:
            if getattr(self, name) is None:
                setattr(self, name, _zeros_like_params(params))

    def _update(self, theta, g, state):  # returns new theta, new state tuple
        raise NotImplementedError

    def step(self, params, grads, hess=None):
        _check_match(params, grads, "grads")
        self._init_state(params)
        self._pre_step()
        new = []
        for i, ((W, b), (gW, gb)) in enumerate(zip(params, grads)):
            pair = []
            new_states = [[None, None] for _ in self._state_names]
            for k, (theta, g) in enumerate(((W, gW), (b, gb))):
                st = tuple(getattr(self, n)[i][k] for n in self._state_names)
                theta_new, st_new = self._update(_f64(theta), _f64(g), st)
                pair.append(theta_new)
                for j, arr in enumerate(st_new):
                    new_states[j][k] = arr
            for j, n in enumerate(self._state_names):
                getattr(self, n)[i] = (new_states[j][0], new_states[j][1])
            new.append((pair[0], pair[1]))
        return new

    def _pre_step(self):
        pass


class Adam(_Elementwise):
    """torch.optim.Adam, no weight decay, no amsgrad."""

    _state_names = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.m = None
        self.v = None
        self.t = 0

    def _pre_step(self):
        self.t += 1

    def _update(self, theta, g, st):
        m, v = st
        b1, b2 = self.betas
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        bc1 = 1 - b1 ** self.t
        bc2 = 1 - b2 ** self.t
        theta = theta - (self.lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + self.eps)
        return theta, (m, v)


class AdaGrad(_Elementwise):
    """torch.optim.Adagrad with lr_decay=0, initial_accumulator_value=0, no weight decay."""

    _state_names = ("s",)

    def __init__(self, lr=1e-2, eps=1e-10):
        self.lr = float(lr)
        self.eps = float(eps)
        self.s = None
        self.t = 0

    def _pre_step(self):
        self.t += 1

    def _update(self, theta, g, st):
        (s,) = st
        s = s + g * g
        theta = theta - self.lr * g / (np.sqrt(s) + self.eps)
        return theta, (s,)


class AdaDelta(_Elementwise):
    """torch.optim.Adadelta: v = rho v + (1-rho) g^2; delta = sqrt(u+eps)/sqrt(v+eps) * g;
    u = rho u + (1-rho) delta^2; theta -= lr * delta."""

    _state_names = ("v", "u")

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6):
        self.lr = float(lr)
        self.rho = float(rho)
        self.eps = float(eps)
        self.v = None
        self.u = None
        self.t = 0

    def _pre_step(self):
        self.t += 1

    def _update(self, theta, g, st):
        v, u = st
        rho = self.rho
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + self.eps) / np.sqrt(v + self.eps) * g
        u = rho * u + (1 - rho) * delta * delta
        theta = theta - self.lr * delta
        return theta, (v, u)


class RMSprop(_Elementwise):
    """torch.optim.RMSprop, not centered, no momentum, no weight decay (rho is torch's alpha):
    v = rho v + (1-rho) g^2; theta -= lr * g / (sqrt(v) + eps)."""

    _state_names = ("v",)

    def __init__(self, lr=1e-2, rho=0.99, eps=1e-8):
        self.lr = float(lr)
        self.rho = float(rho)
        self.eps = float(eps)
        self.v = None
        self.t = 0

    def _pre_step(self):
        self.t += 1

    def _update(self, theta, g, st):
        (v,) = st
        v = self.rho * v + (1 - self.rho) * g * g
        theta = theta - self.lr * g / (np.sqrt(v) + self.eps)
        return theta, (v,)
