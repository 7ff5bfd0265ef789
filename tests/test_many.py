"""sdagd.fit_many: K networks trained together get exactly what each would get alone.

On the CPU, "exactly" means bit for bit: the same parameters, optimizer states and histories
(wall time aside) as the same networks trained one by one with MLP.fit, for mixed
activations, optimizers and seeds, and when one of them diverges. The same comparisons on a
GPU are in test_cuda.py.
"""
import math

import numpy as np
import pytest

import sdagd
from sdagd import optim

SIZES = [12, 9, 7, 4]


def data(rows=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], rows)
    return X, y


def group(output="sigmoid", loss="mse", lrs=(0.5, 0.5)):
    """Four networks differing in activation, seed and optimizer (momentum SGD, SDAGD with
    both norms, SDLM and Adam use the Hessian or not)."""
    nets = [sdagd.MLP(SIZES, activation=a, output=output, loss=loss, seed=s)
            for a, s in [("sigmoid", 0), ("relu", 1), ("tanh", 2), ("leaky_relu", 3), ("sigmoid", 4)]]
    opts = [optim.SGD(lr=lrs[0], momentum=0.5), optim.SDAGD(radius=0.3), optim.SDAGD(radius=0.5, norm="global"),
            optim.SDLM(lr=0.05, mu=0.1), optim.Adam(lr=0.01)]
    return nets, opts


COLUMNS = [c for c in sdagd.history.COLUMNS if c != "time"]


def assert_same_network(a, b, opt_a, opt_b):
    for (Wa, ba), (Wb, bb) in zip(a.params, b.params):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["step"] == sb["step"]
    if sa["state"] is not None:
        np.testing.assert_array_equal(sa["state"], sb["state"])
    assert a.epochs_trained == b.epochs_trained


def assert_same_history(h1, h2):
    assert len(h1) == len(h2) and h1.diverged == h2.diverged
    for column in COLUMNS:
        assert h1[column] == h2[column] or all(
            (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y
            for x, y in zip(h1[column], h2[column])), column


@pytest.mark.parametrize("output,loss", [("sigmoid", "mse"), ("softmax", "ce")])
def test_together_equals_one_by_one(output, loss):
    X, y = data()
    Xv, yv = data(30, seed=1)
    together, opts_t = group(output, loss)
    histories = sdagd.fit_many(together, opts_t, X, y, epochs=2, batch_size=16, validation_data=(Xv, yv),
                               seeds=[5, 6, 7, 8, 9], progress=False)
    alone, opts_a = group(output, loss)
    for k, (net, opt) in enumerate(zip(alone, opts_a)):
        h = net.fit(X, y, opt, epochs=2, batch_size=16, validation_data=(Xv, yv), seed=5 + k, progress=False)
        assert_same_history(histories[k], h)
        assert_same_network(together[k], net, opts_t[k], opt)
    # and a later call continues where the first stopped (epochs counted per network)
    more = sdagd.fit_many(together, opts_t, X, y, epochs=1, batch_size=16, seeds=[5, 6, 7, 8, 9], progress=False)
    for k, (net, opt) in enumerate(zip(alone, opts_a)):
        h = net.fit(X, y, opt, epochs=1, batch_size=16, seed=5 + k, progress=False)
        assert more[k].epoch == h.epoch == [3]
        assert_same_network(together[k], net, opts_t[k], opt)


def test_a_diverging_network_stops_alone():
    """A linear-output network with an absurd learning rate overflows within an epoch: it stops
    with the same message and parameters as when trained alone; the others are untouched."""
    X, y = data()
    make = lambda: ([sdagd.MLP(SIZES, activation="relu", output="linear", seed=s) for s in range(3)],
                    [optim.SGD(lr=0.1), optim.SGD(lr=1e30), optim.SDAGD(radius=0.2)])
    together, opts_t = make()
    histories = sdagd.fit_many(together, opts_t, X, y, epochs=3, batch_size=16, progress=False,
                               on_divergence="stop")
    assert histories[1].diverged and not histories[0].diverged and not histories[2].diverged
    alone, opts_a = make()
    for k, (net, opt) in enumerate(zip(alone, opts_a)):
        h = net.fit(X, y, opt, epochs=3, batch_size=16, progress=False, on_divergence="stop")
        assert_same_history(histories[k], h)
        if k != 1:
            assert_same_network(together[k], net, opts_t[k], opt)
    assert "SGD diverged" in histories[1].diverged and "epoch 1" in histories[1].diverged

    nets, opts = make()
    with pytest.raises(sdagd.DivergenceError, match="1 of 3 networks diverged: network 1") as info:
        sdagd.fit_many(nets, opts, X, y, epochs=2, batch_size=16, progress=False)
    assert [len(h) for h in info.value.histories] == [2, 0, 2]


def test_group_progress_line(capsys):
    X, y = data()
    nets, opts = group()
    sdagd.fit_many(nets, opts, X, y, epochs=1, batch_size=30, validation_data=(X, y))
    err = capsys.readouterr().err
    assert "5 networks training, 0 stopped" in err and "val err best" in err
    calls = []
    nets, opts = group()
    sdagd.fit_many(nets, opts, X, y, epochs=2, batch_size=30, progress=lambda k, r: calls.append((k, r["epoch"])))
    assert sorted(calls) == [(k, e) for k in range(5) for e in (1, 2)]


@pytest.mark.parametrize("make,exc,message", [
    (lambda: ([sdagd.MLP(SIZES), sdagd.MLP([12, 8, 4])], [optim.SGD(lr=0.1), optim.SGD(lr=0.1)]), ValueError,
     "nets\\[1\\] has sizes"),
    (lambda: ([sdagd.MLP(SIZES), sdagd.MLP(SIZES, output="linear")], [optim.SGD(lr=0.1), optim.SGD(lr=0.1)]),
     ValueError, "output"),
    (lambda: ([sdagd.MLP(SIZES)], []), ValueError, "one optimizer per network"),
    (lambda: ((lambda n: ([n, n], [optim.SGD(lr=0.1), optim.SGD(lr=0.1)]))(sdagd.MLP(SIZES))), ValueError,
     "only once"),
    (lambda: ([sdagd.MLP(SIZES), sdagd.MLP(SIZES)], [optim.SDAGD(radius=0.3, hessian_every=2), optim.SDAGD(radius=0.3)]),
     ValueError, "train them apart"),
    (lambda: ([sdagd.MLP(SIZES), "net"], [optim.SGD(lr=0.1), optim.SGD(lr=0.1)]), TypeError, "nets\\[1\\]"),
    (lambda: ([sdagd.MLP(SIZES)], ["sgd"]), TypeError, "optimizer"),
])
def test_bad_groups_are_refused_before_training(make, exc, message):
    X, y = data()
    nets, opts = make()
    with pytest.raises(exc, match=message):
        sdagd.fit_many(nets, opts, X, y, epochs=1, progress=False)
    for net in nets:
        if isinstance(net, sdagd.MLP):
            assert net.epochs_trained == 0


def test_seeds_must_match_the_networks():
    X, y = data()
    nets, opts = group()
    with pytest.raises(ValueError, match="seeds"):
        sdagd.fit_many(nets, opts, X, y, seeds=[1, 2], progress=False)


def test_a_step_of_many_equals_each_networks_train_step():
    """The core Trainer's step (MLP.train_step is its K = 1 case) on K networks at once equals
    each network's own train_step, bit for bit: losses, parameters and optimizer states; a
    network marked stopped is left alone."""
    X, y = data(20)
    together, opts_t = group()
    alone, opts_a = group()
    before = together[4].params
    trainer = sdagd._core.Trainer([n._net for n in together], [o._bind(n._net) for n, o in zip(together, opts_t)])
    stopped = [False] * 4 + [True]
    for _ in range(3):
        stats = trainer.step(X, y.astype(np.int32), [0] * 5, stopped)
        for k in range(4):
            assert stats[k]["loss_sum"] / stats[k]["rows"] == alone[k].train_step(X, y, opts_a[k])
        assert stats[4]["rows"] == 0
    for k in range(4):
        assert_same_network(together[k], alone[k], opts_t[k], opts_a[k])
    assert opts_t[4].step_count == 0
    for (W, b), (W0, b0) in zip(together[4].params, before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)
