"""The C core's optimizers against the float64 oracle's (docs/algorithms.md section 5).

Lockstep runs: the core takes `net.train_step` on a sequence of random batches while the
oracle optimizer steps from its own float64 parameters with oracle gradients (and Hessian
diagonals) computed at those parameters; parameters are compared after every step and the
optimizer state (`state_dict()`) at the end. Then the two SDAGD limits (phase 1: a step of
length R along -g; phase 2: the diagonal Newton step g/h), the training-history diagnostics,
and the plain update rules of the Hessian-free optimizers from the core's own gradient.
"""

import math
import os
import sys

import numpy as np
import pytest

import sdagd
from sdagd import optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

SIZES = [6, 5, 4, 3]
B = 9
N_STEPS = 5
NETS = {
    "sigmoid-mse": dict(hidden="sigmoid", output="sigmoid", loss="mse"),
    "relu-ce": dict(hidden="relu", output="softmax", loss="ce"),
}


def case(case_id, make_core, make_ref, needs_hess, slabs, marks=()):
    """One optimizer configuration: the core's, the oracle's, whether it needs h, and the
    names of the oracle attributes that correspond to the core's state slabs, in order."""
    return pytest.param(case_id, make_core, make_ref, needs_hess, slabs, id=case_id, marks=marks)


OPTIMIZERS = [
    case("SGD", lambda: optim.SGD(lr=0.5), lambda: ref.SGD(0.5), False, []),
    case("SGD-momentum", lambda: optim.SGD(lr=0.3, momentum=0.9), lambda: ref.SGD(0.3, 0.9), False, ["m"]),
    case("SDAGD-layer", lambda: optim.SDAGD(radius=0.3), lambda: ref.SDAGD(0.3), True, ["h"]),
    case("SDAGD-global", lambda: optim.SDAGD(radius=0.3, norm="global"),
         lambda: ref.SDAGD(0.3, norm="global"), True, ["h"]),
    case("SDAGD-hessian_every3", lambda: optim.SDAGD(radius=0.5, hessian_every=3),
         lambda: ref.SDAGD(0.5, hessian_every=3), True, ["h"]),
    case("SDAGD-max_step", lambda: optim.SDAGD(radius=1.0, max_step=0.05),
         lambda: ref.SDAGD(1.0, max_step=0.05), True, ["h"]),
    case("SDAGD-global-max_step-eps", lambda: optim.SDAGD(radius=2.0, eps=1e-3, norm="global", max_step=0.1),
         lambda: ref.SDAGD(2.0, eps=1e-3, norm="global", max_step=0.1), True, ["h"]),
    case("SDAGD-average", lambda: optim.SDAGD(radius=0.3, average=0.3),
         lambda: ref.SDAGD(0.3, average=0.3), True, ["h"]),
    case("SDAGD-average-every2-global", lambda: optim.SDAGD(radius=0.5, average=0.5, hessian_every=2, norm="global"),
         lambda: ref.SDAGD(0.5, average=0.5, hessian_every=2, norm="global"), True, ["h"]),
    case("SDAGD-hessian_scale", lambda: optim.SDAGD(radius=0.3, hessian_scale=1e4),
         lambda: ref.SDAGD(0.3, hessian_scale=1e4), True, ["h"]),
    case("SDLM", lambda: optim.SDLM(lr=0.1, mu=0.01, gamma=0.2), lambda: ref.SDLM(0.1, 0.01, 0.2), True, ["hbar"]),
    case("AdaGrad", lambda: optim.AdaGrad(), lambda: ref.AdaGrad(), False, ["s"]),
    case("AdaGrad-custom", lambda: optim.AdaGrad(lr=0.1, eps=1e-4), lambda: ref.AdaGrad(0.1, 1e-4), False, ["s"]),
    case("AdaDelta", lambda: optim.AdaDelta(), lambda: ref.AdaDelta(), False, ["v", "u"]),
    case("AdaDelta-custom", lambda: optim.AdaDelta(lr=0.5, rho=0.7, eps=1e-4),
         lambda: ref.AdaDelta(0.5, 0.7, 1e-4), False, ["v", "u"]),
    case("Adam", lambda: optim.Adam(), lambda: ref.Adam(), False, ["m", "v"]),
    case("Adam-custom", lambda: optim.Adam(lr=0.02, betas=(0.8, 0.95), eps=1e-5),
         lambda: ref.Adam(0.02, (0.8, 0.95), 1e-5), False, ["m", "v"]),
    case("RMSprop", lambda: optim.RMSprop(), lambda: ref.RMSprop(), False, ["v"]),
    case("RMSprop-custom", lambda: optim.RMSprop(lr=0.05, rho=0.7, eps=1e-4),
         lambda: ref.RMSprop(0.05, 0.7, 1e-4), False, ["v"]),
]


# ------------------------------------------------------------------------------ helpers

def make_net(net_kind, seed=0):
    kw = NETS[net_kind]
    net = sdagd.MLP(SIZES, activation=kw["hidden"], output=kw["output"], loss=kw["loss"], seed=seed)
    rng = np.random.default_rng(500 + seed)
    net.set_params([(W, (0.3 * rng.standard_normal(b.shape)).astype(np.float32)) for W, b in net.params])
    return net


def f64_params(net):
    return [(W.astype(np.float64), b.astype(np.float64)) for W, b in net.params]


def batch(k, rows=B, sizes=SIZES):
    rng = np.random.default_rng(100 + k)
    X = rng.standard_normal((rows, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], rows)
    return X, y


def flat(tree):
    return np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)]) for W, b in tree])


# ------------------------------------------------------------------------------ lockstep

@pytest.mark.parametrize("net_kind", list(NETS))
@pytest.mark.parametrize("name,make_core,make_ref,needs_hess,slabs", OPTIMIZERS)
def test_lockstep_with_oracle(net_kind, name, make_core, make_ref, needs_hess, slabs):
    kw = NETS[net_kind]
    net = make_net(net_kind)
    opt, oracle = make_core(), make_ref()
    theta0 = f64_params(net)
    theta = theta0
    for k in range(N_STEPS):
        X, y = batch(k)
        E_ref = ref.loss(theta, X, y, **kw)
        E = net.train_step(X, y, opt)
        # the returned loss is the batch loss before the update: float32 forward, 1e-4 relative
        # after k float32 steps (parameters already differ by ~1e-6 relative).
        assert E == pytest.approx(E_ref, rel=1e-4)
        g = ref.gradients(theta, X, y, **kw)
        h = ref.hessian_diagonal(theta, X, y, **kw) if needs_hess else None
        theta = oracle.step(theta, g, h)
        core = flat(net.params)
        want = flat(theta)
        # Parameters after k+1 float32 steps vs float64: each step's rounding is ~1e-7
        # relative, amplified by the gradient's sensitivity over <= 5 steps; 1e-4 relative to
        # the largest parameter (parameters are ~0.1-1) is 100x the observed error.
        np.testing.assert_allclose(core, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)),
                                   err_msg=f"{name} parameters after step {k + 1}")
        # ... and the displacement itself (the update rule) to 1e-3 of its largest entry, so
        # that a small step (Adam's 1e-3) is still checked at 0.1 % resolution.
        d_core, d_want = core - flat(theta0), want - flat(theta0)
        np.testing.assert_allclose(d_core, d_want, rtol=1e-3, atol=1e-3 * np.max(np.abs(d_want)),
                                   err_msg=f"{name} displacement after step {k + 1}")
    assert opt.step_count == N_STEPS

    state = opt.state_dict()
    assert state["step"] == N_STEPS
    assert state["config"] == opt.config()
    S = state["state"]
    assert S.dtype == np.float32 and S.shape == (len(slabs), net.n_params)
    for i, slab in enumerate(slabs):
        want = flat(getattr(oracle, slab))
        # State accumulated over 5 float32 steps (g, g^2, h are all ~1e-6 relative); slabs
        # hold quantities such as g^2 whose small entries come from cancelling batch sums, so
        # the floor is 1e-3 of the slab's largest entry, the relative tolerance 1e-3.
        np.testing.assert_allclose(S[i], want, rtol=1e-3, atol=1e-3 * np.max(np.abs(want)),
                                   err_msg=f"{name} state slab {i} ({slab})")


def test_sdagd_hessian_every_reuses_the_stored_h():
    """hessian_every=3: steps 1 and 2 reuse the h of step 0, so after each of the first three
    steps the state slab is the Hessian of the step-0 batch at the step-0 parameters; the
    fourth step (index 3) recomputes it on its own batch."""
    net = make_net("sigmoid-mse")
    X0, y0 = batch(0)
    h0 = flat(net.hessian_diagonal(X0, y0))
    opt = optim.SDAGD(radius=0.5, hessian_every=3)
    for k in range(3):
        net.train_step(*batch(k), opt)
        np.testing.assert_array_equal(opt.state_dict()["state"][0], h0)  # same float32 computation
    X3, y3 = batch(3)
    h3 = flat(net.hessian_diagonal(X3, y3))
    net.train_step(X3, y3, opt)
    np.testing.assert_array_equal(opt.state_dict()["state"][0], h3)


# ------------------------------------------------------------------------------ SDAGD limits

def layer_vectors(tree):
    return [np.concatenate([np.ravel(W), np.ravel(b)]).astype(np.float64) for W, b in tree]


@pytest.mark.parametrize("net_kind", list(NETS))
def test_sdagd_tiny_radius_steps_R_along_minus_gradient(net_kind):
    R = 1e-4
    net = make_net(net_kind, seed=2)
    X, y = batch(7)
    _, g = net.gradients(X, y)
    before = layer_vectors(net.params)
    net.train_step(X, y, optim.SDAGD(radius=R))
    after = layer_vectors(net.params)
    for l, (g_l, p0, p1) in enumerate(zip(layer_vectors(g), before, after)):
        step = p1 - p0
        # Phase 1: mu = ||g_l||/R >> h, so the step is R g/||g|| up to h/mu (~1e-5 here) and
        # the float32 rounding of the parameters (~3e-8 absolute on entries moving ~2e-5):
        # 1 % on the length and cosine > 0.999 leave a wide margin.
        assert np.linalg.norm(step) == pytest.approx(R, rel=1e-2), f"layer {l}"
        cos = -np.dot(step, g_l) / (np.linalg.norm(step) * np.linalg.norm(g_l))
        assert cos > 0.999, f"layer {l}: cosine {cos}"


@pytest.mark.parametrize("net_kind", list(NETS))
def test_sdagd_global_tiny_radius_steps_R_in_total(net_kind):
    """norm="global": one mu over all parameters, so the whole step (not each layer's) has
    length R along -g. With the per-layer norm the total would be about R*sqrt(3) here."""
    R = 1e-4
    net = make_net(net_kind, seed=2)
    X, y = batch(7)
    g = flat(net.gradients(X, y)[1]).astype(np.float64)
    before = flat(net.params).astype(np.float64)
    net.train_step(X, y, optim.SDAGD(radius=R, norm="global"))
    step = flat(net.params).astype(np.float64) - before
    # same reasoning as the per-layer test: 1 % on the length, cosine > 0.999
    assert np.linalg.norm(step) == pytest.approx(R, rel=1e-2)
    assert -np.dot(step, g) / (np.linalg.norm(step) * np.linalg.norm(g)) > 0.999


def test_adadelta_update_rule_in_the_core_without_rho():
    """The core's AdaDelta loop through the private binding with rho = 0 (an edge of the rule: v
    and u hold only the newest values). (The binding's defaults are the table's, rho 0.9.)"""
    net = make_net("sigmoid-mse", seed=9)
    core_opt = sdagd._core.Optimizer(net._net, sdagd._core.OPTIMIZERS["AdaDelta"], lr=0.5, eps=1e-4, rho=0.0)
    oracle = ref.AdaDelta(lr=0.5, rho=0.0, eps=1e-4)
    theta = f64_params(net)
    trainer = sdagd._core.Trainer([net._net], [core_opt])
    for k in range(N_STEPS):
        X, y = batch(60 + k)
        trainer.step(X, y.astype(np.int32), [0], [False])
        theta = oracle.step(theta, ref.gradients(theta, X, y, "sigmoid", "sigmoid", "mse"))
        # as in the lockstep test: 1e-4 relative after <= 5 float32 steps
        np.testing.assert_allclose(flat(net.params), flat(theta), rtol=1e-4,
                                   atol=1e-4 * np.max(np.abs(flat(theta))))
    S, step = core_opt.get_state()
    assert step == N_STEPS
    for i, slab in enumerate(["v", "u"]):
        want = flat(getattr(oracle, slab))
        np.testing.assert_allclose(S[i], want, rtol=1e-3, atol=1e-3 * np.max(np.abs(want)))


def test_sdagd_huge_radius_is_diagonal_newton():
    R = 1e6
    net = make_net("sigmoid-mse", seed=3)
    X, y = batch(8)
    _, g = net.gradients(X, y)
    h = net.hessian_diagonal(X, y)
    before = flat(net.params).astype(np.float64)
    net.train_step(X, y, optim.SDAGD(radius=R))
    step = before - flat(net.params).astype(np.float64)
    g, h = flat(g).astype(np.float64), flat(h).astype(np.float64)
    big = h > 1e-3
    assert big.sum() >= 10  # enough entries to make the comparison mean something
    mu_max = max(np.linalg.norm(gl) for gl in layer_vectors(net.gradients(X, y)[1])) / R
    assert mu_max / h[big].min() < 1e-3  # precondition: phase 2 (mu << h) on these entries
    # Phase 2: step = g/(h + mu + eps) ~ g/h to within mu/h < 1e-3, plus float32 rounding of
    # the parameters (~1e-7 relative to |theta| <= 1); rtol 2e-3 and a 1e-5 floor.
    np.testing.assert_allclose(step[big], g[big] / h[big], rtol=2e-3, atol=1e-5)


# ------------------------------------------------------------------------------ history

def training_data(rows=300, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], rows)
    return X, y


def test_history_diagnostics_sdagd():
    X, y = training_data()
    net = sdagd.MLP(SIZES, seed=0)
    hist = net.fit(X, y, optim.SDAGD(radius=0.3), epochs=2, batch_size=50, progress=False)
    assert len(hist) == 2 and hist.epoch == [1, 2]
    for rec in hist.records():
        for key in ("mu_mean", "mu_min", "mu_max", "phase1_fraction", "train_loss", "train_error"):
            assert math.isfinite(rec[key]), key
        assert 0 < rec["mu_min"] <= rec["mu_mean"] <= rec["mu_max"]
        assert 0.0 <= rec["phase1_fraction"] <= 1.0
        assert 0.0 <= rec["train_error"] <= 1.0
        assert math.isnan(rec["val_loss"]) and math.isnan(rec["val_error"])


@pytest.mark.parametrize("radius", [1e-4, 0.3, 1e6])
def test_history_phase1_fraction_is_share_of_mu_above_h(radius):
    """One full-batch step: phase1_fraction = #(mu of the parameter's layer > h) / P at the
    starting parameters. Tiny R: mu = ||g||/R dwarfs every h (fraction 1); huge R: mu is below
    h for (nearly) every parameter of a sigmoid net (all h > 0). (Over several steps a huge R
    takes diagonal-Newton steps that saturate the sigmoids, so h -> 0 and the fraction rises
    again: only the first step is a clean check.)"""
    X, y = training_data(rows=40)
    net = sdagd.MLP(SIZES, seed=2)
    _, g = net.gradients(X, y)
    h = net.hessian_diagonal(X, y)
    above = sum(int(np.sum(np.float32(np.linalg.norm(gl) / radius) > hl))
                for gl, hl in zip(layer_vectors(g), layer_vectors(h)))
    hist = net.fit(X, y, optim.SDAGD(radius=radius), epochs=1, batch_size=40, progress=False)
    # fit shuffles the rows (float32 sums in another order): allow one borderline parameter
    assert abs(hist.phase1_fraction[0] - above / net.n_params) <= 1 / net.n_params
    if radius == 1e-4:
        assert hist.phase1_fraction[0] == 1.0
    if radius == 1e6:
        assert hist.phase1_fraction[0] < 0.05


def test_history_mu_is_gradient_norm_over_radius():
    """One epoch of one full batch: mu_k per layer is ||g_layer|| / R at the start params."""
    X, y = training_data(rows=40)
    net = sdagd.MLP(SIZES, seed=1)
    _, g = net.gradients(X, y)
    mus = [np.linalg.norm(v) / 0.3 for v in layer_vectors(g)]
    hist = net.fit(X, y, optim.SDAGD(radius=0.3), epochs=1, batch_size=40, progress=False)
    # the gradient of the shuffled batch is a permuted float32 sum: 1e-5 relative
    assert hist.mu_mean[0] == pytest.approx(np.mean(mus), rel=1e-5)
    assert hist.mu_min[0] == pytest.approx(min(mus), rel=1e-5)
    assert hist.mu_max[0] == pytest.approx(max(mus), rel=1e-5)


@pytest.mark.parametrize("make_opt", [lambda: optim.SGD(lr=0.5), lambda: optim.Adam(),
                                      lambda: optim.SDLM(lr=0.1, mu=0.01)], ids=["SGD", "Adam", "SDLM"])
def test_history_diagnostics_are_nan_without_sdagd(make_opt):
    X, y = training_data()
    hist = sdagd.MLP(SIZES, seed=0).fit(X, y, make_opt(), epochs=2, batch_size=50,
                                        validation_data=(X[:50], y[:50]), progress=False)
    for key in ("mu_mean", "mu_min", "mu_max", "phase1_fraction"):
        assert all(math.isnan(v) for v in hist[key]), key
    assert all(math.isfinite(v) for v in hist.train_loss + hist.val_loss + hist.val_error)


# ------------------------------------------------------------------------------ plain rules

@pytest.mark.parametrize("net_kind", list(NETS))
def test_sgd_is_params_minus_lr_grad(net_kind):
    net = make_net(net_kind, seed=4)
    lr = 0.7
    opt = optim.SGD(lr=lr)
    for k in range(3):
        X, y = batch(20 + k)
        _, g = net.gradients(X, y)
        want = [(W - np.float32(lr) * gW, b - np.float32(lr) * gb) for (W, b), (gW, gb) in zip(net.params, g)]
        net.train_step(X, y, opt)
        # The same float32 gradient and one float32 multiply-subtract: equal to 1 ulp.
        np.testing.assert_allclose(flat(net.params), flat(want), rtol=2e-7, atol=1e-9)
    assert opt.state_dict()["state"].shape == (0, net.n_params)  # no state without momentum


def test_sgd_momentum_rule_from_core_gradients():
    net = make_net("sigmoid-mse", seed=5)
    lr, beta = 0.2, 0.8
    opt = optim.SGD(lr=lr, momentum=beta)
    m = np.zeros(net.n_params)
    for k in range(3):
        X, y = batch(30 + k)
        g = flat(net.gradients(X, y)[1]).astype(np.float64)
        m = beta * m + g
        want = flat(net.params).astype(np.float64) - lr * m
        net.train_step(X, y, opt)
        # float32 momentum buffer vs float64: ~1e-7 relative per step
        np.testing.assert_allclose(flat(net.params), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(opt.state_dict()["state"][0], m, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("net_kind", list(NETS))
def test_adam_rule_from_core_gradients(net_kind):
    net = make_net(net_kind, seed=6)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = optim.Adam(lr=lr)
    m = np.zeros(net.n_params)
    v = np.zeros(net.n_params)
    for t in range(1, 4):
        X, y = batch(40 + t)
        g = flat(net.gradients(X, y)[1]).astype(np.float64)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
        want = flat(net.params).astype(np.float64) - step
        net.train_step(X, y, opt)
        # float32 update of size ~lr: 1e-6 absolute is 1e-4 of the step
        np.testing.assert_allclose(flat(net.params), want, rtol=1e-6, atol=1e-6)
    assert opt.state_dict()["step"] == 3


@pytest.mark.parametrize("rows", [60, 250])  # 250: beyond the 100-row initial work buffers
def test_full_batch_fit_is_one_sgd_step(rows):
    X, y = training_data(rows=rows)
    net = sdagd.MLP(SIZES, activation="tanh", output="linear", seed=7)
    E0 = net.evaluate(X, y).loss
    _, g = net.gradients(X, y)
    want = [(W - np.float32(0.3) * gW, b - np.float32(0.3) * gb) for (W, b), (gW, gb) in zip(net.params, g)]
    hist = net.fit(X, y, optim.SGD(lr=0.3), epochs=1, batch_size=rows, progress=False)
    # fit shuffles the rows: the batch sums run in another order, ~1e-6 relative of the step
    np.testing.assert_allclose(flat(net.params), flat(want), rtol=1e-5, atol=1e-7)
    # the epoch's train_loss is the loss before the (only) update; row order: 1e-6 relative
    assert hist.train_loss[0] == pytest.approx(E0, rel=1e-6)


def test_train_step_on_a_batch_beyond_capacity():
    """train_step on 250 rows (the core starts with 100-row buffers) is the SGD rule applied to
    the gradient of all 250 rows, checked against the oracle."""
    net = make_net("relu-ce", seed=10)
    X, y = batch(70, rows=250)
    theta = f64_params(net)
    net.train_step(X, y, optim.SGD(lr=0.5))
    want = ref.SGD(0.5).step(theta, ref.gradients(theta, X, y, "relu", "softmax", "ce"))
    # one float32 step from a 250-row float32 gradient: ~1e-6 relative of the parameters
    np.testing.assert_allclose(flat(net.params), flat(want), rtol=1e-5, atol=1e-6)


def test_train_step_returns_the_loss_before_the_update():
    net = make_net("relu-ce", seed=8)
    X, y = batch(50)
    before = net.evaluate(X, y).loss
    E = net.train_step(X, y, optim.SGD(lr=0.5))
    assert E == pytest.approx(before, rel=1e-7)  # the same float32 forward pass
    assert net.evaluate(X, y).loss < before  # and a small SGD step on the batch lowers it


# ------------------------------------------------------------------------------ R schedules

@pytest.mark.parametrize("schedule", [{"kind": "step", "factor": 0.5, "every": 1},
                                      {"kind": "cosine", "epochs": 3, "radius_min": 0.05}])
def test_radius_schedule_equals_constant_radius_per_epoch(schedule):
    """A schedule only sets R per epoch (docs/algorithms.md section 5.3): three epochs under it give the same
    bits as three one-epoch fits with SDAGD(radius=R_e) (h is recomputed every step, so a
    fresh optimizer per epoch carries no state that matters)."""
    X, y = batch(0, rows=60)
    scheduled = optim.SDAGD(radius=0.4, schedule=schedule)
    a, b = make_net("sigmoid-mse"), make_net("sigmoid-mse")
    a.fit(X, y, scheduled, epochs=3, batch_size=16, progress=False)
    for e in range(3):
        b.fit(X, y, optim.SDAGD(radius=scheduled.radius_at(e)), epochs=1, batch_size=16, progress=False)
    for (Wa, ba), (Wb, bb) in zip(a.params, b.params):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


def test_radius_schedule_formulas():
    """radius_at follows docs/algorithms.md section 5.3 (and, by the test above, so does the core)."""
    step = optim.SDAGD(radius=0.8, schedule={"kind": "step", "factor": 0.5, "every": 2})
    assert [step.radius_at(e) for e in range(5)] == [0.8, 0.8, 0.4, 0.4, 0.2]
    cosine = optim.SDAGD(radius=1.0, schedule={"kind": "cosine", "epochs": 4, "radius_min": 0.2})
    want = [0.2 + 0.8 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)] + [0.2, 0.2]
    assert [cosine.radius_at(e) for e in range(6)] == pytest.approx(want, abs=1e-15)
    assert optim.SDAGD(radius=0.3).radius_at(7) == 0.3


@pytest.mark.parametrize("kwargs,message", [
    (dict(schedule={"kind": "linear"}), "invalid schedule"),
    (dict(schedule={"kind": "step", "factor": 2.0, "every": 1}), "factor must be in"),
    (dict(schedule={"kind": "step", "factor": 0.5}), "takes exactly the keys"),
    (dict(schedule={"kind": "cosine", "epochs": 0, "radius_min": 0.0}), "epochs must be an integer"),
    (dict(schedule={"kind": "cosine", "epochs": 5, "radius_min": 1.0}), "radius_min must be in"),
    (dict(average=0.0), "average"),
    (dict(average=1.5), "average"),
    (dict(hessian_scale=-1.0), "hessian_scale"),
])
def test_sdagd_option_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.SDAGD(radius=0.3, **kwargs)


def test_sdagd_options_round_trip_through_config():
    opt = optim.SDAGD(radius=0.3, schedule={"kind": "cosine", "epochs": 20, "radius_min": 0.0}, average=0.1,
                      hessian_scale=10.0)
    again = optim.from_config(opt.config())
    assert again.config() == opt.config()
    assert "schedule" not in optim.SDAGD(radius=0.3).config()  # the paper's SDAGD keeps its records


# ------------------------------------------------------------------------------ schedules of any step size

@pytest.mark.parametrize("make_core,make_ref,step,schedule", [
    (lambda s: optim.SGD(lr=0.5, schedule=s), lambda: ref.SGD(0.5), "lr",
     {"kind": "cosine", "epochs": 3, "lr_min": 0.05}),
    (lambda s: optim.SGD(lr=0.4, momentum=0.5, schedule=s), lambda: ref.SGD(0.4, 0.5), "lr",
     {"kind": "step", "factor": 0.5, "every": 2}),
    (lambda s: optim.Adam(lr=0.02, schedule=s), lambda: ref.Adam(0.02), "lr",
     {"kind": "cosine", "epochs": 4, "lr_min": 0.0}),
    (lambda s: optim.SDAGD(radius=0.4, schedule=s), lambda: ref.SDAGD(0.4), "radius",
     {"kind": "cosine", "epochs": 3, "radius_min": 0.1}),
], ids=["SGD-cosine", "SGD-momentum-step", "Adam-cosine", "SDAGD-cosine"])
def test_schedule_of_the_step_size_against_the_reference(make_core, make_ref, step, schedule):
    """A schedule acts on each optimizer's step size (the table's step slot: lr, or SDAGD's
    radius), epoch by epoch: fit over 5 epochs of one full batch each (so the shuffled order
    changes no sum but in rounding) against the float64 reference with the step size of
    reference.scheduled, past the cosine's last epoch too."""
    X, y = batch(3, rows=24)
    net = make_net("sigmoid-mse", seed=4)
    opt, oracle = make_core(schedule), make_ref()
    theta = f64_params(net)
    net.fit(X, y, opt, epochs=5, batch_size=24, progress=False)
    for e in range(5):
        value = ref.scheduled(getattr(opt, step), schedule, e, step)
        assert opt.step_at(e) == pytest.approx(value, rel=1e-15, abs=1e-17)
        setattr(oracle, step, value)
        needs_h = step == "radius"
        theta = oracle.step(theta, ref.gradients(theta, X, y), ref.hessian_diagonal(theta, X, y) if needs_h else None)
    want = flat(theta)
    # 5 float32 steps vs float64, as the lockstep test's tolerance
    np.testing.assert_allclose(flat(net.params), want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))


def test_schedule_changes_the_run():
    """The test above can fail: the same fit without the schedule ends elsewhere."""
    X, y = batch(3, rows=24)
    a, b = make_net("sigmoid-mse", seed=4), make_net("sigmoid-mse", seed=4)
    a.fit(X, y, optim.SGD(lr=0.5, schedule={"kind": "cosine", "epochs": 3, "lr_min": 0.05}), epochs=5,
          batch_size=24, progress=False)
    b.fit(X, y, optim.SGD(lr=0.5), epochs=5, batch_size=24, progress=False)
    assert np.max(np.abs(flat(a.params) - flat(b.params))) > 1e-3


@pytest.mark.parametrize("kwargs,message", [
    (dict(schedule={"kind": "cosine", "epochs": 5, "radius_min": 0.0}), r"takes exactly the keys \['epochs', 'kind', 'lr_min'\]"),
    (dict(schedule={"kind": "cosine", "epochs": 5, "lr_min": 1.0}), r"SGD: schedule lr_min must be in \[0, lr=0.5\]"),
    (dict(schedule={"kind": "linear"}), r"SGD: invalid schedule .*'lr_min'"),
])
def test_lr_schedule_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.SGD(lr=0.5, **kwargs)


def test_schedules_round_trip_and_old_records_load():
    """A schedule is in config() only when given, so configs written before schedules of lr
    existed (and SDAGD's with radius_min) still rebuild the same optimizer."""
    opt = optim.Adam(lr=0.01, schedule={"kind": "step", "factor": 0.5, "every": 3})
    assert optim.from_config(opt.config()).config() == opt.config()
    assert "schedule" not in optim.SGD(lr=0.1).config()
    old = {"name": "SDAGD", "radius": 0.3, "eps": 1e-8, "norm": "layer", "hessian_every": 1, "max_step": None,
           "schedule": {"kind": "cosine", "epochs": 20, "radius_min": 0.0}}
    assert optim.from_config(old).config() == old
    assert list(optim.from_config(old).config()) == list(old)  # key order as before
