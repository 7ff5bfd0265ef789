"""Self-checks of the NumPy oracle (tests/reference.py), independent of the C core.

Each check compares the oracle either with finite differences or with numbers worked out by
hand in the comments, so a wrong formula in reference.py makes it fail.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

HIDDEN = ["sigmoid", "relu", "tanh", "leaky_relu"]
OUTPUT_LOSS = [("sigmoid", "mse"), ("linear", "mse"), ("softmax", "ce")]
SIZES = (5, 4, 3, 3)   # 5 inputs, hidden 4 and 3, 3 outputs
B = 7


def make_problem(seed=0, sizes=SIZES, batch=B, bias_scale=0.3):
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        r = ref.init_xavier_bound(n_in, n_out)
        params.append((rng.uniform(-r, r, (n_out, n_in)),
                       bias_scale * rng.standard_normal(n_out)))
    X = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], batch)
    return params, X, y


def flat(tree):
    return np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)]) for W, b in tree])


def layer_vec(pair):
    return np.concatenate([np.ravel(pair[0]), np.ravel(pair[1])])


def delta(new, old):
    return [(nW - oW, nb - ob) for (nW, nb), (oW, ob) in zip(new, old)]


# ------------------------------------------------------------------ activations / forward

def test_activation_values_and_kink_conventions():
    a = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(ref.activation("sigmoid", a), 1 / (1 + np.exp(-a)), rtol=1e-15)
    np.testing.assert_array_equal(ref.activation("relu", a), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(ref.activation("leaky_relu", a, 0.1), [-0.2, 0.0, 3.0])
    np.testing.assert_array_equal(ref.activation("linear", a), a)
    # relu'(0) = 0, leaky'(0) = slope: the derivative tests a > 0
    np.testing.assert_array_equal(ref.activation_grad("relu", a), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(ref.activation_grad("leaky_relu", a, 0.1), [0.1, 0.1, 1.0])
    np.testing.assert_allclose(ref.activation_grad("tanh", a), 1 - np.tanh(a) ** 2, rtol=1e-15)
    s = 1 / (1 + np.exp(-a))
    np.testing.assert_allclose(ref.activation_grad("sigmoid", a), s * (1 - s), rtol=1e-14)
    # sigmoid must not overflow / produce nan at extreme inputs
    big = ref.activation("sigmoid", np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(big, [0.0, 1.0])
    sm = ref.activation("softmax", np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]]))
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(sm[0], e / e.sum(), rtol=1e-15)
    np.testing.assert_allclose(sm[1], [0.5, 0.5, 0.0], atol=1e-300)


def test_forward_hand_worked():
    # one hidden relu unit, linear output: x = [1, 2]
    # a1 = [1, -1].[1, 2] + 0.5 = -0.5 -> h1 = 0;  a2 = 3*0 + 0.25 = 0.25
    params = [(np.array([[1.0, -1.0]]), np.array([0.5])),
              (np.array([[3.0]]), np.array([0.25]))]
    layers = ref.forward(params, np.array([[1.0, 2.0]]), hidden="relu", output="linear")
    (a1, h1), (a2, h2) = layers
    np.testing.assert_array_equal(a1, [[-0.5]])
    np.testing.assert_array_equal(h1, [[0.0]])
    np.testing.assert_array_equal(a2, [[0.25]])
    np.testing.assert_array_equal(h2, [[0.25]])


def test_loss_and_error_count_hand_worked():
    # single linear layer: Y = X (W = I, b = 0), so everything is readable by hand
    params = [(np.eye(3), np.zeros(3))]
    X = np.array([[0.2, 0.5, 0.3],
                  [1.0, 1.0, 0.0],      # tie between 0 and 1 -> argmax picks 0
                  [0.0, 0.0, 2.0]])
    y = np.array([1, 1, 2])
    # MSE: 1/B * sum 1/2 ||D - Y||^2
    #  p0: D=[0,1,0], diff [0.2,-0.5,0.3] -> 0.38/2 = 0.19
    #  p1: D=[0,1,0], diff [1,0,0]        -> 1/2 = 0.5
    #  p2: D=[0,0,1], diff [0,0,1]        -> 1/2 = 0.5
    E = ref.loss(params, X, y, hidden="sigmoid", output="linear", loss="mse")
    assert E == pytest.approx((0.19 + 0.5 + 0.5) / 3, rel=1e-14)
    # errors: p0 argmax 1 == 1 ok; p1 argmax 0 (tie, first index) != 1; p2 ok
    assert ref.error_count(params, X, y, hidden="sigmoid", output="linear") == 1
    # CE: -(1/B) sum log softmax(a)[y]
    lse = np.log(np.exp(X).sum(axis=1))
    expect = -np.mean(X[np.arange(3), y] - lse)
    Ece = ref.loss(params, X, y, hidden="sigmoid", output="softmax", loss="ce")
    assert Ece == pytest.approx(expect, rel=1e-14)


def test_cross_entropy_is_stable_for_huge_logits():
    params = [(np.eye(2), np.zeros(2))]
    X = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    y = np.array([1, 1])
    # p0: -log softmax = 1000 - 0 = 1000 (exactly, up to log(1+e^-1000)); p1: ~0
    E = ref.loss(params, X, y, output="softmax", loss="ce")
    assert np.isfinite(E)
    assert E == pytest.approx(500.0, rel=1e-12)


def test_xavier_bound():
    assert ref.init_xavier_bound(784, 700) == pytest.approx(np.sqrt(6 / 1484), rel=1e-15)
    assert ref.init_xavier_bound(2, 4) == pytest.approx(1.0, rel=1e-15)


# ------------------------------------------------------------------ gradients vs FD

@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
def test_gradients_match_finite_differences(hidden, output, loss):
    params, X, y = make_problem(seed=1)
    # relu/leaky kinks: FD is only valid if no pre-activation is within reach of the
    # perturbation (eps * |h| <~ 1e-5); assert it instead of hoping.
    for a, _ in ref.forward(params, X, hidden, output)[:-1]:
        assert np.min(np.abs(a)) > 1e-4
    g = ref.gradients(params, X, y, hidden, output, loss)
    n = ref.numerical_gradient(params, X, y, hidden, output, loss, eps=1e-6)
    # Tolerance: central differences have truncation error ~eps^2/6*|E'''| ~ 1e-13 and
    # rounding error ~ (few ulp of E ~ 1e-16) / eps ~ 1e-10 absolute. Gradients here are
    # 1e-3..1e-1, so rtol 1e-6 with an absolute floor of 1e-9 (10x the rounding noise) is
    # tight enough to catch any missing factor (f', 1/B, a transpose) yet never flakes.
    for (gW, gb), (nW, nb) in zip(g, n):
        assert gW.shape == nW.shape and gb.shape == nb.shape
        np.testing.assert_allclose(gW, nW, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(gb, nb, rtol=1e-6, atol=1e-9)


def test_gradient_check_detects_a_wrong_gradient():
    # Power of the check above: MSE with sigmoid output but delta missing the f'(a) factor
    # must be rejected by the same tolerance.
    params, X, y = make_problem(seed=1)
    layers = ref.forward(params, X, "sigmoid", "sigmoid")
    D = ref.one_hot(y, 3)
    wrong_delta = layers[-1][1] - D
    wrong_dW = wrong_delta.T @ layers[-2][1] / B
    n = ref.numerical_gradient(params, X, y, "sigmoid", "sigmoid", "mse")
    assert not np.allclose(wrong_dW, n[-1][0], rtol=1e-6, atol=1e-9)


def test_leaky_slope_is_used():
    params, X, y = make_problem(seed=2)
    g1 = ref.gradients(params, X, y, "leaky_relu", "linear", "mse", slope=0.01)
    g2 = ref.gradients(params, X, y, "leaky_relu", "linear", "mse", slope=0.3)
    n2 = ref.numerical_gradient(params, X, y, "leaky_relu", "linear", "mse", slope=0.3)
    np.testing.assert_allclose(flat(g2), flat(n2), rtol=1e-6, atol=1e-9)
    assert not np.allclose(flat(g1), flat(g2))


# ------------------------------------------------------------------ Hessian diagonal

def fd_hessian_diag(params, X, y, hidden, output, loss, layer, eps):
    """Exact diagonal d2E/dtheta^2 of one layer by central differences of gradients."""
    out = []
    for k in range(2):   # 0: W, 1: b
        base = [[W.copy(), b.copy()] for W, b in params]
        arr = base[layer][k]
        d = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            gp = ref.gradients(base, X, y, hidden, output, loss)[layer][k][idx]
            arr[idx] = old - eps
            gm = ref.gradients(base, X, y, hidden, output, loss)[layer][k][idx]
            arr[idx] = old
            d[idx] = (gp - gm) / (2 * eps)
        out.append(d)
    return out


@pytest.mark.parametrize("hidden", HIDDEN)
def test_hessian_last_layer_exact_for_linear_mse(hidden):
    params, X, y = make_problem(seed=3)
    h = ref.hessian_diagonal(params, X, y, hidden, "linear", "mse")
    dW, db = fd_hessian_diag(params, X, y, hidden, "linear", "mse", layer=-1, eps=1e-3)
    # With linear output + MSE the gradient of the last layer is exactly linear in its own
    # weights, so the central difference has no truncation error; only rounding
    # (~1e-16 * |g| / eps ~ 1e-13) remains. Hence rtol 1e-7, atol 1e-10.
    np.testing.assert_allclose(h[-1][0], dW, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(h[-1][1], db, rtol=1e-7, atol=1e-10)
    # and d2E/db_out^2 = (1/B) sum_p 1 = 1 exactly
    np.testing.assert_allclose(h[-1][1], np.ones(3), rtol=1e-12)
    # NOTE: for every other layer the spec's recursion is the *truncated* Hessian (off-
    # diagonal terms dropped inside the s-recursion, and f'' terms dropped), so there h
    # differs from the true diagonal; see the next test.


def test_hessian_hidden_layers_are_truncated_not_exact():
    # Documents (and guards) that the recursion is not the exact diagonal for the first layer
    # of a 2-hidden-layer sigmoid net: the relative difference is far above FD noise.
    params, X, y = make_problem(seed=3)
    h = ref.hessian_diagonal(params, X, y, "sigmoid", "linear", "mse")
    dW, _ = fd_hessian_diag(params, X, y, "sigmoid", "linear", "mse", layer=0, eps=1e-4)
    rel = np.linalg.norm(h[0][0] - dW) / np.linalg.norm(dW)
    assert rel > 1e-2


def test_hessian_recursion_hand_worked():
    # 1-1-1 net, sigmoid hidden, sigmoid output, MSE, one sample x = 2.
    # W1 = 0.5, b1 = 0 -> a1 = 1, h1 = s(1); W2 = -1, b2 = 0.25 -> a2 = -s(1) + 0.25
    sg = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    params = [(np.array([[0.5]]), np.array([0.0])), (np.array([[-1.0]]), np.array([0.25]))]
    X = np.array([[2.0]])
    y = np.array([0])
    h1 = sg(1.0)
    a2 = -h1 + 0.25
    d2 = sg(a2) * (1 - sg(a2))
    s2 = d2 ** 2                                   # s_{L+1} = f'(a)^2
    s1 = (h1 * (1 - h1)) ** 2 * (1.0 ** 2) * s2    # f'(a1)^2 * W2^2 * s2  (W2^2 = 1)
    H = ref.hessian_diagonal(params, X, y, "sigmoid", "sigmoid", "mse")
    np.testing.assert_allclose(H[1][0], [[s2 * h1 ** 2]], rtol=1e-14)
    np.testing.assert_allclose(H[1][1], [s2], rtol=1e-14)
    np.testing.assert_allclose(H[0][0], [[s1 * 4.0]], rtol=1e-14)
    np.testing.assert_allclose(H[0][1], [s1], rtol=1e-14)


@pytest.mark.parametrize("hidden", HIDDEN)
def test_hessian_softmax_ce_last_layer_is_true_diagonal(hidden):
    params, X, y = make_problem(seed=4)
    h = ref.hessian_diagonal(params, X, y, hidden, "softmax", "ce")
    dW, db = fd_hessian_diag(params, X, y, hidden, "softmax", "ce", layer=-1, eps=1e-4)
    # d2E/da_i^2 of softmax-CE is p_i(1-p_i) exactly, hence d2E/db_i^2 = mean_p p_i(1-p_i)
    # and d2E/dW_ij^2 = mean_p p_i(1-p_i) h_j^2. FD of the gradient: truncation ~eps^2*|E''''|
    # ~1e-8 * O(0.1) and rounding ~1e-16/eps ~1e-12, against values ~0.1: rtol 1e-6, atol 1e-9.
    np.testing.assert_allclose(h[-1][1], db, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(h[-1][0], dW, rtol=1e-6, atol=1e-9)


def test_hessian_is_nonnegative_and_shaped():
    params, X, y = make_problem(seed=5)
    for hidden in HIDDEN:
        for output, loss in OUTPUT_LOSS:
            H = ref.hessian_diagonal(params, X, y, hidden, output, loss)
            for (hW, hb), (W, b) in zip(H, params):
                assert hW.shape == W.shape and hb.shape == b.shape
                assert hW.dtype == np.float64 and np.all(hW >= 0) and np.all(hb >= 0)


# ------------------------------------------------------------------ optimizers

def test_sgd_hand_worked():
    params = [(np.array([[1.0, 2.0]]), np.array([0.5]))]
    g = [(np.array([[0.1, -0.2]]), np.array([0.3]))]
    new = ref.SGD(lr=0.5).step(params, g)
    # 1 - 0.5*0.1 = 0.95; 2 + 0.5*0.2 = 2.1; 0.5 - 0.5*0.3 = 0.35
    np.testing.assert_allclose(new[0][0], [[0.95, 2.1]], rtol=1e-15)
    np.testing.assert_allclose(new[0][1], [0.35], rtol=1e-15)
    # inputs are not modified
    np.testing.assert_array_equal(params[0][0], [[1.0, 2.0]])


def test_sgd_momentum_hand_worked():
    opt = ref.SGD(lr=0.1, momentum=0.9)
    p = [(np.array([[1.0]]), np.array([0.0]))]
    p = opt.step(p, [(np.array([[1.0]]), np.array([2.0]))])
    # m = 1, theta = 1 - 0.1 = 0.9 ; m_b = 2, b = -0.2
    np.testing.assert_allclose(p[0][0], [[0.9]], rtol=1e-15)
    np.testing.assert_allclose(p[0][1], [-0.2], rtol=1e-15)
    p = opt.step(p, [(np.array([[-1.0]]), np.array([0.0]))])
    # m = 0.9*1 - 1 = -0.1, theta = 0.9 + 0.01 = 0.91 ; m_b = 1.8, b = -0.2 - 0.18 = -0.38
    np.testing.assert_allclose(p[0][0], [[0.91]], rtol=1e-14)
    np.testing.assert_allclose(p[0][1], [-0.38], rtol=1e-14)
    np.testing.assert_allclose(opt.m[0][0], [[-0.1]], rtol=1e-14)


def test_sdagd_hand_worked():
    # one layer, g = (W: [3], b: [4]) -> ||g|| = 5, R = 2 -> mu = 2.5
    # h = (1, 0.5): step_W = 3 / (2.5 + 1) = 6/7 ; step_b = 4 / (2.5 + 0.5) = 4/3
    params = [(np.array([[1.0]]), np.array([1.0]))]
    g = [(np.array([[3.0]]), np.array([4.0]))]
    h = [(np.array([[1.0]]), np.array([0.5]))]
    opt = ref.SDAGD(radius=2.0, eps=0.0)
    new = opt.step(params, g, h)
    np.testing.assert_allclose(new[0][0], [[1 - 6 / 7]], rtol=1e-14)
    np.testing.assert_allclose(new[0][1], [1 - 4 / 3], rtol=1e-14)
    assert opt.last_mu == [pytest.approx(2.5, rel=1e-15)]
    assert opt.last_phase1_fraction == 1.0        # 2.5 > 1 and 2.5 > 0.5
    opt2 = ref.SDAGD(radius=2.0, eps=0.0)
    opt2.step(params, g, [(np.array([[3.0]]), np.array([0.5]))])
    assert opt2.last_phase1_fraction == 0.5       # only the bias has mu > h
    opt3 = ref.SDAGD(radius=2.0, eps=0.0)
    opt3.step(params, g, [(np.array([[2.5]]), np.array([0.5]))])
    assert opt3.last_phase1_fraction == 0.5       # tie mu == h is not phase 1 (strict >)


def net_grad_hess(seed=6):
    params, X, y = make_problem(seed=seed)
    g = ref.gradients(params, X, y, "sigmoid", "sigmoid", "mse")
    h = ref.hessian_diagonal(params, X, y, "sigmoid", "sigmoid", "mse")
    return params, g, h


def test_sdagd_tiny_radius_is_steepest_descent_of_length_R_per_layer():
    params, g, h = net_grad_hess()
    R = 1e-6
    opt = ref.SDAGD(radius=R, norm="layer")
    step = delta(opt.step(params, g, h), params)
    for (sW, sb), gl in zip(step, g):
        s = layer_vec((sW, sb))
        gv = layer_vec(gl)
        # step = g/(mu + h + eps) with mu = ||g||/R >> h: relative deviation ~ (h+eps)/mu
        # ~ 1e-6 * O(0.1)/O(0.01); rtol 1e-3 leaves a wide margin yet rejects R*g or g/h.
        assert np.linalg.norm(s) == pytest.approx(R, rel=1e-3)
        cos = -s @ gv / (np.linalg.norm(s) * np.linalg.norm(gv))
        assert cos > 1 - 1e-9
    assert opt.last_phase1_fraction == 1.0
    np.testing.assert_allclose(opt.last_mu, [np.linalg.norm(layer_vec(gl)) / R for gl in g],
                               rtol=1e-12)


def test_sdagd_tiny_radius_global_norm_gives_total_length_R():
    params, g, h = net_grad_hess()
    R = 1e-6
    opt = ref.SDAGD(radius=R, norm="global")
    s = flat(delta(opt.step(params, g, h), params))
    assert len(opt.last_mu) == 1
    assert opt.last_mu[0] == pytest.approx(np.linalg.norm(flat(g)) / R, rel=1e-12)
    assert np.linalg.norm(s) == pytest.approx(R, rel=1e-3)
    # with a single group, the per-layer lengths are NOT R each (gradients differ per layer)
    per_layer = [np.linalg.norm(layer_vec(p)) for p in delta(opt.step(params, g, h), params)]
    assert max(per_layer) / min(per_layer) > 1.5


def test_sdagd_huge_radius_is_diagonal_newton():
    params, g, h = net_grad_hess()
    opt = ref.SDAGD(radius=1e9)
    step = flat(delta(opt.step(params, g, h), params))
    hv = flat(h)
    assert np.min(hv) > 1e-8        # sigmoid everywhere: h > 0, so g/(h+eps) is finite
    # mu = ||g||/1e9 ~ 1e-10 against h >= 1e-5 -> relative deviation <~ 1e-5; rtol 1e-4.
    np.testing.assert_allclose(-step, flat(g) / (hv + 1e-8), rtol=1e-4)
    assert opt.last_phase1_fraction == 0.0


def test_sdagd_max_step_caps_each_group():
    params, g, h = net_grad_hess()
    opt = ref.SDAGD(radius=1e9, max_step=1e-3)
    uncapped = delta(ref.SDAGD(radius=1e9).step(params, g, h), params)
    capped = delta(opt.step(params, g, h), params)
    for u, c in zip(uncapped, capped):
        u, c = layer_vec(u), layer_vec(c)
        assert np.linalg.norm(u) > 1e-3           # precondition: the cap is active
        # steps are recovered as new - old params (|theta| ~ 1), so ~1e-16 absolute noise
        assert np.linalg.norm(c) == pytest.approx(1e-3, rel=1e-9)
        np.testing.assert_allclose(c, u * (1e-3 / np.linalg.norm(u)), rtol=1e-9, atol=1e-15)


def test_sdagd_hessian_every():
    params = [(np.array([[1.0]]), np.array([1.0]))]
    g = [(np.array([[3.0]]), np.array([4.0]))]         # ||g|| = 5, R = 5 -> mu = 1
    hA = [(np.array([[1.0]]), np.array([1.0]))]
    hB = [(np.array([[4.0]]), np.array([4.0]))]
    hC = [(np.array([[9.0]]), np.array([9.0]))]
    opt = ref.SDAGD(radius=5.0, eps=0.0, hessian_every=2)
    p0 = opt.step(params, g, hA)                       # k=0: stores hA -> step g/2
    np.testing.assert_allclose(delta(p0, params)[0][0], [[-1.5]], rtol=1e-15)
    p1 = opt.step(params, g, None)                     # k=1: reuses hA (hess may be None)
    np.testing.assert_allclose(delta(p1, params)[0][0], [[-1.5]], rtol=1e-15)
    p1b = ref.SDAGD(radius=5.0, eps=0.0, hessian_every=2)
    p1b.step(params, g, hA)
    q = p1b.step(params, g, hC)                        # k=1: passed hess ignored
    np.testing.assert_allclose(delta(q, params)[0][0], [[-1.5]], rtol=1e-15)
    p2 = opt.step(params, g, hB)                       # k=2: stores hB -> step g/5
    np.testing.assert_allclose(delta(p2, params)[0][0], [[-0.6]], rtol=1e-14)
    np.testing.assert_allclose(opt.h[0][0], [[4.0]])


def test_sdlm_first_step_uses_h_then_running_average():
    params = [(np.array([[0.0]]), np.array([0.0]))]
    g = [(np.array([[1.0]]), np.array([2.0]))]
    opt = ref.SDLM(lr=0.5, mu=1.0, gamma=0.25)
    p = opt.step(params, g, [(np.array([[3.0]]), np.array([1.0]))])
    # hbar = h (not gamma*h): W: -0.5*1/(1+3) = -0.125 ; b: -0.5*2/(1+1) = -0.5
    np.testing.assert_allclose(p[0][0], [[-0.125]], rtol=1e-15)
    np.testing.assert_allclose(p[0][1], [-0.5], rtol=1e-15)
    p = opt.step(params, g, [(np.array([[7.0]]), np.array([5.0]))])
    # hbar_W = 0.75*3 + 0.25*7 = 4 -> -0.5/5 = -0.1 ; hbar_b = 0.75 + 1.25 = 2 -> -1/3
    np.testing.assert_allclose(opt.hbar[0][0], [[4.0]], rtol=1e-15)
    np.testing.assert_allclose(p[0][0], [[-0.1]], rtol=1e-15)
    np.testing.assert_allclose(p[0][1], [-1 / 3], rtol=1e-15)


def synthetic_grads(seed=7):
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((3, 4)), rng.standard_normal(3)),
              (rng.standard_normal((2, 3)), rng.standard_normal(2))]
    sign = lambda shape: rng.choice([-1.0, 1.0], shape)  # noqa: E731
    grads = [(sign(W.shape) * 10 ** rng.uniform(-3, 0, W.shape),
              sign(b.shape) * 10 ** rng.uniform(-3, 0, b.shape)) for W, b in params]
    return params, grads


def test_adam_first_step_is_lr_sign_g():
    params, g = synthetic_grads()
    opt = ref.Adam(lr=1e-3)
    d = flat(delta(opt.step(params, g), params))
    # m_hat = g, v_hat = g^2 -> step = lr*g/(|g|+eps); |g| >= 1e-3 so eps/|g| <= 1e-5
    np.testing.assert_allclose(d, -1e-3 * np.sign(flat(g)), rtol=1e-5)
    assert opt.t == 1
    np.testing.assert_allclose(flat(opt.m), 0.1 * flat(g), rtol=1e-15)
    np.testing.assert_allclose(flat(opt.v), 0.001 * flat(g) ** 2, rtol=1e-12)


def test_adam_second_step_hand_worked():
    opt = ref.Adam(lr=0.1, betas=(0.5, 0.75), eps=0.0)
    p = [(np.array([[0.0]]), np.array([0.0]))]
    p = opt.step(p, [(np.array([[1.0]]), np.array([1.0]))])
    p = opt.step(p, [(np.array([[-1.0]]), np.array([3.0]))])
    # W: m1 = .5, v1 = .25 ; m2 = .25 - .5 = -.25, v2 = .1875 + .25 = .4375
    #    step2 = (.1/.75) * (-.25) / (sqrt(.4375)/sqrt(1-.5625)) = (.1/.75)*(-.25)/1
    #    theta = -.1 + .1/3 = -0.0666...
    np.testing.assert_allclose(p[0][0], [[-0.1 + 0.1 / 3]], rtol=1e-14)
    # b: m2 = .25 + 1.5 = 1.75, v2 = .1875 + 2.25 = 2.4375; v_hat = 2.4375/.4375
    mh = 1.75 / 0.75
    vh = 2.4375 / 0.4375
    np.testing.assert_allclose(p[0][1], [-0.1 - 0.1 * mh / np.sqrt(vh)], rtol=1e-14)


def test_adagrad_hand_worked():
    opt = ref.AdaGrad(lr=0.1, eps=0.0)
    p = [(np.array([[0.0]]), np.array([0.0]))]
    p = opt.step(p, [(np.array([[3.0]]), np.array([-2.0]))])
    np.testing.assert_allclose(p[0][0], [[-0.1]], rtol=1e-15)   # lr * sign(g)
    np.testing.assert_allclose(p[0][1], [0.1], rtol=1e-15)
    p = opt.step(p, [(np.array([[4.0]]), np.array([0.0]))])
    # s = 9 + 16 = 25 -> -0.1*4/5 = -0.08
    np.testing.assert_allclose(p[0][0], [[-0.18]], rtol=1e-14)
    np.testing.assert_allclose(p[0][1], [0.1], rtol=1e-15)
    np.testing.assert_allclose(opt.s[0][0], [[25.0]])


def test_adadelta_hand_worked():
    opt = ref.AdaDelta(lr=1.0, rho=0.5, eps=0.01)
    p = [(np.array([[0.0]]), np.array([0.0]))]
    p = opt.step(p, [(np.array([[0.2]]), np.array([0.0]))])
    # v = 0.5*0.04 = 0.02 ; delta = sqrt(0 + .01)/sqrt(.02 + .01) * 0.2 = 0.2*sqrt(1/3)
    d1 = 0.2 * np.sqrt(1 / 3)
    np.testing.assert_allclose(p[0][0], [[-d1]], rtol=1e-14)
    np.testing.assert_allclose(opt.u[0][0], [[0.5 * d1 ** 2]], rtol=1e-14)
    p = opt.step(p, [(np.array([[0.2]]), np.array([0.0]))])
    # v = 0.01 + 0.02 = 0.03 ; delta = sqrt(u + .01)/sqrt(.04) * 0.2
    d2 = np.sqrt(0.5 * d1 ** 2 + 0.01) / 0.2 * 0.2
    np.testing.assert_allclose(p[0][0], [[-d1 - d2]], rtol=1e-14)
    np.testing.assert_allclose(p[0][1], [0.0])


@pytest.mark.parametrize("make", [
    lambda: ref.SGD(lr=0.1, momentum=0.9),
    lambda: ref.SDAGD(radius=0.3),
    lambda: ref.SDLM(lr=0.1, mu=0.1, gamma=0.1),
    lambda: ref.Adam(),
    lambda: ref.AdaGrad(),
    lambda: ref.AdaDelta(),
])
def test_optimizers_return_new_float64_params_and_keep_inputs(make):
    params, g = synthetic_grads()
    h = [(np.abs(gW), np.abs(gb)) for gW, gb in g]
    before = flat(params)
    opt = make()
    new = opt.step(params, g, h)
    np.testing.assert_array_equal(flat(params), before)
    assert len(new) == len(params)
    for (nW, nb), (W, b) in zip(new, params):
        assert nW.shape == W.shape and nb.shape == b.shape
        assert nW.dtype == np.float64 and nb.dtype == np.float64
        assert nW is not W and nb is not b
    assert not np.allclose(flat(new), before)
