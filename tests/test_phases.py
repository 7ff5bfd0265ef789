"""sdagd.phases: h / mu_k per parameter against the float64 oracle (tests/reference.py), and
its phase-1 fraction against the count the SDAGD optimizer itself keeps during a step."""
import math
import os
import sys

import numpy as np
import pytest

import sdagd
from sdagd import optim, phases

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

SIZES = [12, 9, 7, 4]


def make_batch(seed=0, rows=40):
    rng = np.random.default_rng(seed)
    X = rng.random((rows, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], rows)
    return X, y


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("norm", ["layer", "global"])
def test_ratios_match_the_float64_oracle(activation, norm):
    net = sdagd.MLP(SIZES, activation=activation, seed=3)
    X, y = make_batch()
    radius = 0.7
    got = phases.curvature_ratios(net, X, y, radius=radius, norm=norm)
    params = [(np.float64(W), np.float64(b)) for W, b in net.params]
    grads = ref.gradients(params, X, y, hidden=activation)
    hess = ref.hessian_diagonal(params, X, y, hidden=activation)
    norms = [math.sqrt(np.sum(dW ** 2) + np.sum(db ** 2)) for dW, db in grads]
    if norm == "global":
        norms = [math.sqrt(sum(n ** 2 for n in norms))] * len(norms)
    assert len(got) == len(params)
    for layer, ((hW, hb), n) in enumerate(zip(hess, norms)):
        want = np.concatenate([hW.ravel(), hb.ravel()]) / (n / radius)
        # float32 gradient and h inside the core: 1e-4 relative is a wide margin for
        # rounding, far below any formula error (a missing square or 1/R changes it by O(1))
        np.testing.assert_allclose(got[layer], want, rtol=1e-4, atol=1e-12, err_msg=f"layer {layer}")


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6])
def test_phase1_fraction_agrees_with_the_optimizers_own_count(scale):
    """One SDAGD step over the whole batch: the fraction the core counted (mu_k > scale x h)
    is the one computed here from the same gradient and h, before the step."""
    X, y = make_batch(rows=50)
    net = sdagd.MLP(SIZES, activation="sigmoid", seed=5)
    predicted = phases.phase1_fraction(phases.curvature_ratios(net, X, y, radius=0.3), scale=scale)
    history = net.fit(X, y, optim.SDAGD(radius=0.3, hessian_scale=scale), epochs=1, batch_size=len(X),
                      progress=False)
    counted = history.as_dict()["phase1_fraction"][0]
    # Up to parameters whose mu_k and scale x h agree to float32 rounding: at most one here
    assert abs(counted - predicted) <= 1.0 / net.n_params + 1e-12
    if scale == 1e6:
        assert predicted < 1.0  # the test reaches the switch, so it can tell the two apart


def test_switch_scales_put_the_stated_share_past_the_switch():
    rng = np.random.default_rng(0)
    ratios = [10.0 ** rng.uniform(-8, 1, size=1000), np.zeros(10)]  # zero h never switches
    scales = phases.switch_scales(ratios, shares=(0.5, 0.01, 1.0))
    for share in (0.5, 0.01):
        s = scales[share]
        assert 1 - phases.phase1_fraction(ratios, scale=s * (1 + 1e-9)) >= share
        assert 1 - phases.phase1_fraction(ratios, scale=s * (1 - 1e-9)) < share
    assert scales[1.0] == math.inf  # the zero-h parameters never reach phase 2
    with pytest.raises(ValueError, match="shares"):
        phases.switch_scales(ratios, shares=(0.0,))


def test_bad_arguments_say_what_is_wrong():
    net = sdagd.MLP(SIZES, seed=0)
    X, y = make_batch(rows=5)
    with pytest.raises(ValueError, match="radius"):
        phases.curvature_ratios(net, X, y, radius=0.0)
    with pytest.raises(ValueError, match="norm"):
        phases.curvature_ratios(net, X, y, radius=1.0, norm="per-unit")
