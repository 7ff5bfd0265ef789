"""The vanishing-gradient diagnostics of the training history (grad_rms, saturated, dead)
against a float64 NumPy computation (tests/reference.py).

Definitions (csrc/diagnostics.c, sdagd/history.py):

* ``grad_rms[e][l]``: sqrt(mean over the epoch's steps of mean(dW_l ** 2)), weight layers
  input first (biases not included);
* ``saturated[e][l]``: per hidden layer, share of (row, unit) pairs with f'(a) < 0.01 max f':
  sigmoid h(1-h) < 0.0025, tanh 1-h^2 < 0.01; None for other activations;
* ``dead[e][l]``: per hidden layer, share of units with no positive output in any row of the
  epoch (relu: h == 0 for every row); None for sigmoid and tanh.

The oracle is given the core's own float32 parameters (read before the step) in float64.
Threshold comparisons allow exactly the pairs whose float64 value sits within float32
rounding of the threshold (in practice none).
"""

import os
import sys

import numpy as np
import pytest

import sdagd
from sdagd import _core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

SIZES = [20, 24, 18, 12, 10]  # three hidden layers
N = 64


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    old = sdagd.set_num_threads(1)
    yield
    sdagd.set_num_threads(old)


def f64(params):
    return [(W.astype(np.float64), b.astype(np.float64)) for W, b in params]


def make_net(activation, seed=0, scale=1.0, dead_units=0):
    """A net whose weights are scaled up (saturating sigmoid/tanh units) and, for relu, the
    first ``dead_units`` units of every hidden layer pushed below zero for any input."""
    net = sdagd.MLP(SIZES, activation=activation, seed=seed)
    rng = np.random.default_rng(100 + seed)
    params = []
    for l, (W, b) in enumerate(net.params):
        W = (W * (scale if l < len(SIZES) - 2 else 1.0)).astype(np.float32)
        b = (0.5 * rng.standard_normal(b.shape)).astype(np.float32)
        if dead_units and l < len(SIZES) - 2:
            b[:dead_units] = -1e3
        params.append((W, b))
    net.set_params(params)
    return net


def make_data(rows=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], rows)
    return X, y


def hidden_outputs(params64, X, activation):
    """Float64 (a, h) of each hidden layer."""
    return ref.forward(params64, X.astype(np.float64), hidden=activation, output="sigmoid")[:-1]


def saturation_bounds(layers, activation):
    """Per hidden layer: (low, high) share of saturated (row, unit) pairs, the pairs within
    1e-6 of the threshold counted as undecided."""
    out = []
    for _, h in layers:
        if activation == "sigmoid":
            d, thr = h * (1.0 - h), 0.0025
        else:
            d, thr = 1.0 - h * h, 0.01
        sure = np.sum(d < thr - 1e-6)
        maybe = np.sum(np.abs(d - thr) <= 1e-6)
        out.append((sure, sure + maybe, d.size))
    return out


def grad_mean_squares(params64, X, y, activation):
    grads = ref.gradients(params64, X.astype(np.float64), y, hidden=activation, output="sigmoid", loss="mse")
    return np.array([np.mean(dW ** 2) for dW, _ in grads])


# ------------------------------------------------------------------------------ one step

@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_one_full_batch_epoch(activation):
    net = make_net(activation, scale=4.0 if activation != "relu" else 1.0,
                   dead_units=3 if activation == "relu" else 0)
    X, y = make_data()
    before = f64(net.params)
    history = net.fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=1, batch_size=N, progress=False)
    assert len(history) == 1

    # grad_rms: one step, so the RMS of that step's dW per weight layer
    expected_rms = np.sqrt(grad_mean_squares(before, X, y, activation))
    got_rms = np.array(history.grad_rms[0], dtype=float)
    assert got_rms.shape == (len(SIZES) - 1,)
    assert np.all(expected_rms > 0)
    np.testing.assert_allclose(got_rms, expected_rms, rtol=1e-4)

    layers = hidden_outputs(before, X, activation)
    saturated, dead = history.saturated[0], history.dead[0]
    assert len(saturated) == len(dead) == len(SIZES) - 2
    if activation in ("sigmoid", "tanh"):
        assert all(d is None for d in dead)
        shares = []
        for got, (lo, hi, n) in zip(saturated, saturation_bounds(layers, activation)):
            assert lo / n <= got <= hi / n, (got, lo, hi, n)
            shares.append(got)
        # not vacuous: some pairs saturated, some not
        assert 0.05 < max(shares) < 1.0 and min(shares) < 0.95, shares
    else:
        assert all(s is None for s in saturated)
        shares = []
        for got, (a, h) in zip(dead, layers):
            never = np.all(h == 0.0, axis=0)
            undecided = np.all(a <= 1e-5, axis=0) & ~never  # sign of a ~ 0 may differ in float32
            assert np.sum(never) / h.shape[1] <= got <= (np.sum(never) + np.sum(undecided)) / h.shape[1]
            shares.append(got)
            # the pushed-down units are dead, and not every unit is
            assert got >= 3 / h.shape[1] and got < 1.0
        assert shares[0] == pytest.approx(np.mean(np.all(layers[0][1] == 0.0, axis=0)))


def test_dead_share_for_leaky_relu_counts_units_never_positive():
    """leaky_relu follows the same rule as relu (unit never > 0 in the epoch)."""
    net = make_net("leaky_relu", dead_units=5)
    X, y = make_data()
    before = f64(net.params)
    history = net.fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=1, batch_size=N, progress=False)
    layers = ref.forward(before, X.astype(np.float64), hidden="leaky_relu", output="sigmoid", slope=0.01)[:-1]
    assert all(s is None for s in history.saturated[0])
    for got, (a, _) in zip(history.dead[0], layers):
        assert got == pytest.approx(np.mean(np.all(a <= 0.0, axis=0)))
        assert got >= 5 / a.shape[1]


def test_no_saturation_and_no_dead_units_are_reported_as_zero():
    """Small inputs: sigmoid units sit away from saturation, and a relu net with non-negative
    weights, positive biases and inputs has every unit active: the shares are 0.0, not None."""
    X, y = make_data()
    X = (0.01 * X).astype(np.float32)
    net = sdagd.MLP(SIZES, activation="sigmoid", seed=1)
    h = net.fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=1, batch_size=N, progress=False)
    assert h.saturated[0] == [0.0] * (len(SIZES) - 2)
    net = sdagd.MLP(SIZES, activation="relu", seed=1)
    net.set_params([(np.abs(W), np.full(b.shape, 0.5, np.float32)) for W, b in net.params])
    h = net.fit(np.abs(X), y, sdagd.optim.SGD(lr=1e-3), epochs=1, batch_size=N, progress=False)
    assert h.dead[0] == [0.0] * (len(SIZES) - 2)


# ------------------------------------------------------------------------------ many steps

@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_multi_batch_epochs_replayed_step_by_step(activation):
    """Two epochs of batches of 10 over 53 rows (the last batch has 3), replayed with
    train_step on an identical net in the order of shuffle_order(N, seed, epoch)."""
    rows, batch, seed = 53, 10, 7
    X, y = make_data(rows, seed=3)
    kw = dict(scale=1.0 if activation == "relu" else 4.0, dead_units=2 if activation == "relu" else 0)
    net_a = make_net(activation, seed=seed, **kw)
    net_b = make_net(activation, seed=seed, **kw)
    history = net_a.fit(X, y, sdagd.optim.SGD(lr=0.5), epochs=2, batch_size=batch, progress=False)
    assert len(history) == 2
    hidden = len(SIZES) - 2

    opt_b = sdagd.optim.SGD(lr=0.5)
    for epoch in range(2):
        order = _core.shuffle_order(rows, seed, epoch)
        assert sorted(order.tolist()) == list(range(rows))
        mean_sq, steps = np.zeros(len(SIZES) - 1), 0
        sat_lo, sat_hi, pairs = np.zeros(hidden), np.zeros(hidden), np.zeros(hidden)
        ever_active = [np.zeros(w, dtype=bool) for w in SIZES[1:-1]]
        for start in range(0, rows, batch):
            idx = order[start:start + batch]
            Xb, yb = X[idx], y[idx]
            before = f64(net_b.params)
            mean_sq += grad_mean_squares(before, Xb, yb, activation)
            steps += 1
            layers = hidden_outputs(before, Xb, activation)
            if activation != "relu":
                for l, (lo, hi, n) in enumerate(saturation_bounds(layers, activation)):
                    sat_lo[l] += lo
                    sat_hi[l] += hi
                    pairs[l] += n
            for l, (_, h) in enumerate(layers):
                ever_active[l] |= np.any(h > 0.0, axis=0)
            net_b.train_step(Xb, yb, opt_b)
        assert steps == 6
        np.testing.assert_allclose(history.grad_rms[epoch], np.sqrt(mean_sq / steps), rtol=1e-4)
        if activation != "relu":
            got = np.array(history.saturated[epoch], dtype=float)
            assert np.all(sat_lo / pairs <= got) and np.all(got <= sat_hi / pairs), (got, sat_lo / pairs)
            assert max(got) > 0.02
            assert history.dead[epoch] == [None] * hidden
        else:
            expected = [float(np.mean(~a)) for a in ever_active]
            np.testing.assert_allclose(history.dead[epoch], expected)
            assert min(expected) > 0 and max(expected) < 1
            assert history.saturated[epoch] == [None] * hidden
    # the replay really followed the same steps: both nets end with the same parameters
    for (Wa, ba), (Wb, bb) in zip(net_a.params, net_b.params):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


def test_grad_rms_is_not_the_rms_of_the_mean_gradient():
    """Per-step mean squares are averaged (not the gradient first): with several different
    batches sqrt(mean_k mean(dW_k^2)) > RMS of the mean dW, and the history has the former."""
    rows, batch, seed = 40, 10, 0
    X, y = make_data(rows, seed=5)
    net = make_net("tanh", seed=seed)
    before = f64(net.params)
    # lr tiny: the parameters hardly move, so every step's gradient is taken at `before`
    history = net.fit(X, y, sdagd.optim.SGD(lr=1e-12), epochs=1, batch_size=batch, progress=False)
    order = _core.shuffle_order(rows, seed, 0)
    per_step, mean_grad = [], None
    for start in range(0, rows, batch):
        idx = order[start:start + batch]
        per_step.append(grad_mean_squares(before, X[idx], y[idx], "tanh"))
        g = ref.gradients(before, X[idx].astype(np.float64), y[idx], hidden="tanh", output="sigmoid", loss="mse")
        mean_grad = [dW for dW, _ in g] if mean_grad is None else [m + dW for m, (dW, _) in zip(mean_grad, g)]
    right = np.sqrt(np.mean(per_step, axis=0))
    wrong = np.array([np.sqrt(np.mean((m / 4) ** 2)) for m in mean_grad])
    np.testing.assert_allclose(history.grad_rms[0], right, rtol=1e-4)
    assert np.all(wrong < right * 0.99)


def test_diagnostics_survive_the_history_round_trip():
    net = make_net("sigmoid", scale=4.0)
    X, y = make_data()
    history = net.fit(X, y, sdagd.optim.SDAGD(radius=0.3), epochs=2, batch_size=16, progress=False)
    d = history.as_dict()
    assert d["grad_rms"] == history.grad_rms and len(d["grad_rms"]) == 2
    assert all(len(r) == len(SIZES) - 1 and all(v > 0 for v in r) for r in d["grad_rms"])
    records = history.records()
    assert records[1]["saturated"] == history.saturated[1]
    assert records[0]["dead"] == [None] * (len(SIZES) - 2)
