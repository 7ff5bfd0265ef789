"""The C core's network numerics against the float64 NumPy oracle (tests/reference.py).

Forward pass, loss, error count, backprop gradient and truncated diagonal Hessian
(docs/algorithms.md sections 1-4) for every hidden activation x output/loss pairing; the
gradient against float64 central differences; the exact last-layer second derivative of a
linear-output MSE net; the initialisations; and batches larger than the work buffers.

The oracle is always fed the core's own float32 parameters and inputs cast to float64, so
the only difference between the two sides is float32 rounding inside the core.
"""

import os
import sys

import numpy as np
import pytest

import sdagd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

HIDDEN = ["sigmoid", "relu", "tanh", "leaky_relu"]
OUTPUT_LOSS = [("sigmoid", "mse"), ("linear", "mse"), ("softmax", "ce")]
SIZES = {"6-5-4-3": [6, 5, 4, 3], "8-7-6-5-4": [8, 7, 6, 5, 4]}
B = 9
SLOPE = 0.1  # a leaky slope far from the default 0.01, so a dropped slope argument shows


# ------------------------------------------------------------------------------ helpers

def make_net(sizes, hidden, output, loss, seed=0, bias_scale=0.3, **kw):
    """A core network with Xavier weights and random non-zero biases (zero biases would
    hide a bias bug), and the same parameters in float64 for the oracle."""
    net = sdagd.MLP(sizes, activation=hidden, output=output, loss=loss, seed=seed,
                    leaky_slope=SLOPE, **kw)
    rng = np.random.default_rng(1000 + seed)
    params = [(W, (bias_scale * rng.standard_normal(b.shape)).astype(np.float32))
              for W, b in net.params]
    net.set_params(params)
    return net, f64_params(net)


def f64_params(net):
    return [(W.astype(np.float64), b.astype(np.float64)) for W, b in net.params]


def make_batch(sizes, rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], rows)
    return X, y


def oracle_kw(hidden, output, loss):
    return dict(hidden=hidden, output=output, loss=loss, slope=SLOPE)


def assert_layers_close(core, oracle, rtol, atol_rel, what):
    """Per layer and per W/b: |core - oracle| <= rtol*|oracle| + atol_rel*max|oracle layer|.
    The absolute floor is relative to the layer's largest entry: entries that are small
    because of cancellation in a batch sum carry the rounding error of the large terms."""
    assert len(core) == len(oracle)
    for l, (c_pair, o_pair) in enumerate(zip(core, oracle)):
        for name, c, o in zip("Wb", c_pair, o_pair):
            assert c.shape == o.shape, f"{what} layer {l} {name}: shape {c.shape} vs {o.shape}"
            assert c.dtype == np.float32
            scale = float(np.max(np.abs(o))) if o.size else 0.0
            np.testing.assert_allclose(c, o, rtol=rtol, atol=atol_rel * scale + 1e-30,
                                       err_msg=f"{what}: layer {l} {name}")


CASES = [pytest.param(sizes, hidden, output, loss, id=f"{name}-{hidden}-{output}-{loss}")
         for name, sizes in SIZES.items() for hidden in HIDDEN for output, loss in OUTPUT_LOSS]


# ------------------------------------------------------------------------------ vs oracle

@pytest.mark.parametrize("sizes,hidden,output,loss", CASES)
def test_forward_loss_errors_match_oracle(sizes, hidden, output, loss):
    net, params = make_net(sizes, hidden, output, loss, seed=1)
    X, y = make_batch(sizes, B, seed=2)
    kw = oracle_kw(hidden, output, loss)
    Y = net.forward(X)
    Y_ref = ref.forward(params, X.astype(np.float64), kw["hidden"], output, SLOPE)[-1][1]
    assert Y.shape == (B, sizes[-1]) and Y.dtype == np.float32
    # float32: ~6e-8 relative per operation, dot products of <= 8 terms over <= 4 layers give
    # a few 1e-7; 1e-5 relative (absolute floor 1e-6 of the largest output) leaves 10x+ margin.
    np.testing.assert_allclose(Y, Y_ref, rtol=1e-5, atol=1e-6 * np.max(np.abs(Y_ref)))
    np.testing.assert_array_equal(net.predict(X), np.argmax(Y_ref, axis=1))

    ev = net.evaluate(X, y)
    E_ref = ref.loss(params, X, y, **kw)
    # The mean loss is accumulated in double from float32 outputs: same 1e-5 reasoning.
    assert ev.loss == pytest.approx(E_ref, rel=1e-5)
    # Error count is exact (no output pair is within float32 rounding of a tie here).
    assert ev.error == ref.error_count(params, X, y, **kw) / B

    loss_g, _ = net.gradients(X, y)
    assert loss_g == pytest.approx(E_ref, rel=1e-5)


@pytest.mark.parametrize("sizes,hidden,output,loss", CASES)
def test_gradients_match_oracle(sizes, hidden, output, loss):
    net, params = make_net(sizes, hidden, output, loss, seed=3)
    X, y = make_batch(sizes, B, seed=4)
    kw = oracle_kw(hidden, output, loss)
    _, grads = net.gradients(X, y)
    # float32 backprop through <= 4 layers of <= 8-wide products and a 9-row batch sum:
    # ~1e-6 relative; 1e-4 relative with a floor of 1e-5 of the layer's largest entry (for
    # entries shrunk by cancellation over the batch) is ~100x that, far below any formula slip.
    assert_layers_close(grads, ref.gradients(params, X, y, **kw), 1e-4, 1e-5, "gradient")


@pytest.mark.parametrize("sizes,hidden,output,loss", CASES)
def test_hessian_diagonal_matches_oracle(sizes, hidden, output, loss):
    net, params = make_net(sizes, hidden, output, loss, seed=5)
    X, y = make_batch(sizes, B, seed=6)
    kw = oracle_kw(hidden, output, loss)
    hess = net.hessian_diagonal(X, y)
    # All terms of the truncated Hessian are >= 0 (no cancellation): float32 gives ~1e-6
    # relative; rtol 1e-4 plus a 1e-6 floor of the layer maximum (entries of exactly 0 for
    # dead relu units) leaves ~100x margin.
    oracle = ref.hessian_diagonal(params, X, y, **kw)
    assert_layers_close(hess, oracle, 1e-4, 1e-6, "hessian diagonal")
    for hW, hb in hess:
        assert np.all(hW >= 0) and np.all(hb >= 0)


@pytest.mark.parametrize("sizes,hidden,output,loss", CASES)
def test_gradients_match_finite_differences(sizes, hidden, output, loss):
    """Core gradient vs central differences of the float64 oracle loss (independent of the
    oracle's own backprop)."""
    net, params = make_net(sizes, hidden, output, loss, seed=7)
    X, y = make_batch(sizes, B, seed=8)
    kw = oracle_kw(hidden, output, loss)
    if hidden in ("relu", "leaky_relu"):
        # FD with eps 1e-6 is only valid away from the kinks: assert rather than hope.
        for a, _ in ref.forward(params, X.astype(np.float64), hidden, output, SLOPE)[:-1]:
            assert np.min(np.abs(a)) > 1e-4
    _, grads = net.gradients(X, y)
    numeric = ref.numerical_gradient(params, X, y, eps=1e-6, **kw)
    # FD error ~ eps^2 |E'''| + 1e-16/eps ~ 1e-10 (negligible); the core's float32 gradient is
    # good to ~1e-6 relative: rtol 1e-4 and a 1e-5 floor of the layer maximum, as above.
    assert_layers_close(grads, numeric, 1e-4, 1e-5, "gradient vs finite differences")


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("sizes", list(SIZES.values()), ids=list(SIZES))
def test_last_layer_hessian_is_exact_for_linear_mse(sizes, hidden):
    """docs/algorithms.md section 4: with a linear output and MSE, h(W_{L+1}) (and h(b_{L+1})) is the exact
    second derivative. Reference: central differences of the oracle's float64 gradient."""
    net, params = make_net(sizes, hidden, "linear", "mse", seed=9)
    X, y = make_batch(sizes, B, seed=10)
    kw = oracle_kw(hidden, "linear", "mse")
    hW, hb = net.hessian_diagonal(X, y)[-1]
    eps = 1e-3  # E is quadratic in the last layer: central differences are exact up to rounding
    exact = []
    for k in range(2):
        work = [[W.copy(), b.copy()] for W, b in params]
        arr = work[-1][k]
        d = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            gp = ref.gradients(work, X, y, **kw)[-1][k][idx]
            arr[idx] = old - eps
            gm = ref.gradients(work, X, y, **kw)[-1][k][idx]
            arr[idx] = old
            d[idx] = (gp - gm) / (2 * eps)
        exact.append(d)
    np.testing.assert_allclose(exact[1], 1.0, rtol=1e-10)  # d2E/db^2 = (1/B) sum 1 = 1
    # float32 sum of 9 squares: ~1e-6 relative; 1e-5 leaves 10x margin (no cancellation).
    np.testing.assert_allclose(hW, exact[0], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(hb, exact[1], rtol=1e-5)


def test_leaky_slope_reaches_the_core():
    sizes = [6, 5, 4, 3]
    X, y = make_batch(sizes, B, seed=11)
    grads = {}
    for slope in (0.01, 0.3):
        net = sdagd.MLP(sizes, activation="leaky_relu", output="linear", seed=3, leaky_slope=slope)
        params = f64_params(net)
        _, g = net.gradients(X, y)
        assert_layers_close(g, ref.gradients(params, X, y, "leaky_relu", "linear", "mse", slope),
                            1e-4, 1e-5, f"gradient slope {slope}")
        grads[slope] = g
    assert not np.allclose(grads[0.01][0][0], grads[0.3][0][0])


# ------------------------------------------------------------------------------ init

def test_xavier_init_bounds_and_spread():
    net = sdagd.MLP([784, 700, 10], seed=0)
    for (W, b), (n_in, n_out) in zip(net.params, [(784, 700), (700, 10)]):
        r = np.sqrt(6.0 / (n_in + n_out))
        assert W.shape == (n_out, n_in)
        # |W| <= r, up to the float32 rounding of a draw just below r (relative 2^-24).
        assert np.max(np.abs(W.astype(np.float64))) <= r * (1 + 2.0 ** -23)
        np.testing.assert_array_equal(b, 0.0)
    W = net.params[0][0].astype(np.float64)
    r = np.sqrt(6.0 / (784 + 700))
    n = W.size  # 548,800 draws
    # Sample std of U[-r, r] is r/sqrt(3) with relative sd ~ sqrt(0.8/(4n)) ~ 6e-4:
    # rtol 5e-3 is ~8 sigma, yet any other spread (e.g. r/2 or sqrt(2/n_in)) is off by >10%.
    assert np.std(W) == pytest.approx(r / np.sqrt(3), rel=5e-3)
    # Mean 0: sd of the mean is (r/sqrt(3))/sqrt(n) ~ 6e-5; allow 6 sigma.
    assert abs(np.mean(W)) < 6 * r / np.sqrt(3) / np.sqrt(n)
    # Uniform, not normal: the range is filled up to r (max within 1e-4 r of it).
    assert np.max(np.abs(W)) > r * (1 - 1e-4)
    assert not np.array_equal(W, sdagd.MLP([784, 700, 10], seed=1).params[0][0])
    np.testing.assert_array_equal(W, sdagd.MLP([784, 700, 10], seed=0).params[0][0])


def test_he_init_spread():
    net = sdagd.MLP([784, 700, 10], activation="relu", init="he", seed=0)
    W, b = net.params[0]
    W = W.astype(np.float64)
    std = np.sqrt(2.0 / 784)
    # Normal sample std: relative sd 1/sqrt(2n) ~ 1e-3; rtol 5e-3 is ~5 sigma.
    assert np.std(W) == pytest.approx(std, rel=5e-3)
    assert abs(np.mean(W)) < 6 * std / np.sqrt(W.size)
    # Normal, not uniform: 68.27 % within one sd (binomial sd ~6e-4; allow 0.003), and tails.
    assert np.mean(np.abs(W) < std) == pytest.approx(0.6827, abs=3e-3)
    assert np.max(np.abs(W)) > 4 * std
    np.testing.assert_array_equal(b, 0.0)
    assert np.std(net.params[1][0]) == pytest.approx(np.sqrt(2.0 / 700), rel=0.05)  # 7,000 draws


# ------------------------------------------------------------------------------ large batches

@pytest.mark.parametrize("hidden,output,loss", [("sigmoid", "sigmoid", "mse"), ("relu", "softmax", "ce")])
def test_evaluate_and_forward_beyond_batch_capacity(hidden, output, loss):
    """2,500 rows: more than the 100-row initial capacity and than evaluate's 1,000-row chunks."""
    sizes = [6, 5, 4, 3]
    net, params = make_net(sizes, hidden, output, loss, seed=12)
    X, y = make_batch(sizes, 2500, seed=13)
    kw = oracle_kw(hidden, output, loss)
    ev = net.evaluate(X, y)
    # Mean of 2,500 float32 row losses accumulated in double: 1e-5 relative as for 9 rows.
    assert ev.loss == pytest.approx(ref.loss(params, X, y, **kw), rel=1e-5)
    assert ev.error == ref.error_count(params, X, y, **kw) / 2500
    Y_ref = ref.forward(params, X.astype(np.float64), hidden, output, SLOPE)[-1][1]
    np.testing.assert_allclose(net.forward(X), Y_ref, rtol=1e-5, atol=1e-6 * np.max(np.abs(Y_ref)))
    # Every chunk boundary is seen: rows evaluated alone give the same error count.
    per_row = sum(net.evaluate(X[i:i + 500], y[i:i + 500]).error * 500 for i in range(0, 2500, 500))
    assert round(per_row) == round(ev.error * 2500)


@pytest.mark.parametrize("hidden,output,loss", [("tanh", "linear", "mse"), ("relu", "softmax", "ce")])
def test_gradient_and_hessian_of_a_batch_larger_than_capacity(hidden, output, loss):
    sizes = [8, 7, 6, 5, 4]
    net, params = make_net(sizes, hidden, output, loss, seed=14)
    X, y = make_batch(sizes, 250, seed=15)
    kw = oracle_kw(hidden, output, loss)
    loss_c, grads = net.gradients(X, y)
    assert loss_c == pytest.approx(ref.loss(params, X, y, **kw), rel=1e-5)
    # A 250-row float32 sum: rounding grows ~sqrt(250) over 9 rows; 1e-4 still has margin.
    assert_layers_close(grads, ref.gradients(params, X, y, **kw), 1e-4, 1e-5, "gradient (250 rows)")
    assert_layers_close(net.hessian_diagonal(X, y), ref.hessian_diagonal(params, X, y, **kw),
                        1e-4, 1e-6, "hessian (250 rows)")
    # ... and the grown buffers still serve a small batch correctly afterwards.
    _, g_small = net.gradients(X[:7], y[:7])
    assert_layers_close(g_small, ref.gradients(params, X[:7], y[:7], **kw), 1e-4, 1e-5, "gradient (7 rows)")


def test_forward_on_a_fresh_network_in_chunks():
    """forward() of 250 rows on a fresh network runs in chunks of the 100-row initial capacity
    (100, 100, 50): every chunk must match the oracle, the last partial one included."""
    sizes = [8, 7, 6, 5, 4]
    net, params = make_net(sizes, "tanh", "softmax", "ce", seed=18)
    X, _ = make_batch(sizes, 250, seed=19)
    Y_ref = ref.forward(params, X.astype(np.float64), "tanh", "softmax", SLOPE)[-1][1]
    # same float32 reasoning as test_forward_loss_errors_match_oracle
    np.testing.assert_allclose(net.forward(X), Y_ref, rtol=1e-5, atol=1e-6 * np.max(np.abs(Y_ref)))
    np.testing.assert_array_equal(net.forward(X)[200:], net.forward(X[200:]))


def test_single_row_input_is_accepted_as_a_batch_of_one():
    sizes = [6, 5, 4, 3]
    net, params = make_net(sizes, "sigmoid", "sigmoid", "mse", seed=16)
    X, _ = make_batch(sizes, 1, seed=17)
    np.testing.assert_array_equal(net.forward(X[0]), net.forward(X))
