"""Saving, loading, determinism and exact resumption of training.

MLP.save / MLP.load must round-trip the float32 parameters bit for bit with the
configuration and the epoch counter; the same seed must give the same run; and a fit that is
saved (with its optimizer) after some epochs, loaded and continued must end bit for bit where
the uninterrupted fit ends.
"""

import math

import numpy as np
import pytest

import sdagd
from sdagd import optim

SIZES = [6, 8, 5, 4]
ROWS = 300
BATCH = 60  # 5 steps per epoch: an odd count, so that a save after epoch 1 splits an SDAGD
#             hessian_every=2 cycle (step 5 must reuse the h of step 4 from the saved state)


def training_data(seed=0, rows=ROWS):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], rows)
    return X, y


def flat_params(net):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in net.params])


CONFIGS = [
    dict(activation="sigmoid"),
    dict(activation="relu", output="softmax", loss="ce", init="he", seed=5),
    dict(activation="leaky_relu", output="linear", leaky_slope=0.2, seed=2 ** 40 + 3),
    dict(activation="tanh", output="sigmoid", seed=11),
]


# ------------------------------------------------------------------------------ round trip

@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["activation"])
@pytest.mark.parametrize("as_str", [False, True], ids=["pathlib", "str"])
def test_save_load_round_trip_is_exact(tmp_path, config, as_str):
    X, y = training_data()
    net = sdagd.MLP(SIZES, **config)
    net.fit(X, y, optim.SGD(lr=0.3), epochs=2, batch_size=BATCH, progress=False)
    path = tmp_path / "net.npz"
    net.save(str(path) if as_str else path)
    loaded = sdagd.MLP.load(str(path) if as_str else path)
    assert type(loaded) is sdagd.MLP
    assert loaded.config == net.config
    assert loaded.epochs_trained == net.epochs_trained == 2
    assert loaded.n_params == net.n_params
    for (W, b), (W2, b2) in zip(net.params, loaded.params):
        assert W2.dtype == np.float32
        np.testing.assert_array_equal(W2.view(np.uint32), W.view(np.uint32))  # bit for bit
        np.testing.assert_array_equal(b2.view(np.uint32), b.view(np.uint32))
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    assert loaded.evaluate(X, y) == net.evaluate(X, y)
    # without a saved optimizer, with_optimizer=True gives (net, None)
    again, opt = sdagd.MLP.load(path, with_optimizer=True)
    assert opt is None
    np.testing.assert_array_equal(flat_params(again), flat_params(net))


def test_saved_file_is_a_plain_npz(tmp_path):
    net = sdagd.MLP(SIZES)
    opt = optim.Adam()
    net.train_step(*training_data(rows=20), opt)
    net.save(tmp_path / "n.npz", optimizer=opt)
    with np.load(tmp_path / "n.npz", allow_pickle=False) as data:  # no pickles inside
        assert set(data.files) == {"params", "meta", "optimizer_state"}
        np.testing.assert_array_equal(data["params"], flat_params(net))


@pytest.mark.parametrize("make_opt", [
    lambda: optim.SGD(lr=0.2, momentum=0.9),
    lambda: optim.SDAGD(radius=0.3, norm="layer", hessian_every=2, max_step=0.5, eps=1e-6),
    lambda: optim.SDLM(lr=0.1, mu=0.02, gamma=0.1),
    lambda: optim.AdaGrad(lr=0.05),
    lambda: optim.Adam(lr=0.01, betas=(0.8, 0.99)),
    lambda: optim.SGD(lr=0.2),
], ids=["SGD-momentum", "SDAGD", "SDLM", "AdaGrad", "Adam", "SGD"])
def test_optimizer_state_round_trip_is_exact(tmp_path, make_opt):
    X, y = training_data()
    net = sdagd.MLP(SIZES, seed=1)
    opt = make_opt()
    net.fit(X, y, opt, epochs=1, batch_size=BATCH, progress=False)
    net.save(tmp_path / "n.npz", optimizer=opt)
    loaded, opt2 = sdagd.MLP.load(tmp_path / "n.npz", with_optimizer=True)
    assert type(opt2) is type(opt)
    assert opt2.config() == opt.config()
    assert opt2.hyperparameters == opt.hyperparameters
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["step"] == s1["step"] == 5
    assert s2["state"].dtype == np.float32 and s2["state"].shape == s1["state"].shape
    np.testing.assert_array_equal(s2["state"].view(np.uint32), s1["state"].view(np.uint32))
    # bound to the loaded network: usable with it, refused with another
    loaded.train_step(X[:10], y[:10], opt2)
    with pytest.raises(ValueError, match="another network"):
        sdagd.MLP(SIZES).train_step(X[:10], y[:10], opt2)


def test_unused_optimizer_round_trip(tmp_path):
    X, y = training_data()
    net = sdagd.MLP(SIZES, seed=4)
    net.save(tmp_path / "n.npz", optimizer=optim.Adam(lr=0.01))
    loaded, opt = sdagd.MLP.load(tmp_path / "n.npz", with_optimizer=True)
    assert opt.state_dict()["step"] == 0
    fresh = sdagd.MLP(SIZES, seed=4)
    fresh.fit(X, y, optim.Adam(lr=0.01), epochs=1, batch_size=BATCH, progress=False)
    loaded.fit(X, y, opt, epochs=1, batch_size=BATCH, progress=False)
    np.testing.assert_array_equal(flat_params(loaded), flat_params(fresh))


# ------------------------------------------------------------------------------ determinism

def short_fit(seed=0, fit_seed=None, make_opt=lambda: optim.SDAGD(radius=0.3), **config):
    X, y = training_data()
    net = sdagd.MLP(SIZES, seed=seed, **config)
    hist = net.fit(X, y, make_opt(), epochs=2, batch_size=32, seed=fit_seed, progress=False)
    return flat_params(net), hist


@pytest.mark.parametrize("make_opt", [lambda: optim.SDAGD(radius=0.3), lambda: optim.SGD(lr=0.5, momentum=0.5),
                                      lambda: optim.Adam()], ids=["SDAGD", "SGD-momentum", "Adam"])
def test_same_seed_same_run(make_opt):
    p1, h1 = short_fit(seed=7, make_opt=make_opt, activation="relu")
    p2, h2 = short_fit(seed=7, make_opt=make_opt, activation="relu")
    np.testing.assert_array_equal(p1, p2)
    assert h1.train_loss == h2.train_loss and h1.train_error == h2.train_error


def test_different_seed_different_run():
    p0, _ = short_fit(seed=0)
    p1, _ = short_fit(seed=1)  # other initial weights (and, by default, other shuffles)
    assert not np.array_equal(p0, p1)
    p_shuffle, _ = short_fit(seed=0, fit_seed=99)  # same initial weights, other batch order
    assert not np.array_equal(p0, p_shuffle)
    p_same, _ = short_fit(seed=0, fit_seed=0)  # fit's seed defaults to the network's
    np.testing.assert_array_equal(p0, p_same)


def test_shuffle_differs_between_epochs():
    """Two 1-epoch fits from the same start differ from one 2-epoch fit's second half only if
    epochs reuse the order; check that epoch 2's order is not epoch 1's."""
    X, y = training_data()
    a = sdagd.MLP(SIZES, seed=3)
    a.fit(X, y, optim.SGD(lr=0.5), epochs=2, batch_size=BATCH, progress=False)
    b = sdagd.MLP(SIZES, seed=3)
    opt = optim.SGD(lr=0.5)
    b.fit(X, y, opt, epochs=1, batch_size=BATCH, progress=False)
    b.epochs_trained = 0  # pretend the second epoch is the first again: same order as epoch 1
    b.fit(X, y, opt, epochs=1, batch_size=BATCH, progress=False)
    assert not np.array_equal(flat_params(a), flat_params(b))


# ------------------------------------------------------------------------------ resume

RESUMABLE = {
    "SGD-momentum": lambda: optim.SGD(lr=0.2, momentum=0.9),
    "SDAGD-hessian_every2": lambda: optim.SDAGD(radius=0.3, hessian_every=2),
    "SDLM": lambda: optim.SDLM(lr=0.05, mu=0.01, gamma=0.1),
    "Adam": lambda: optim.Adam(lr=0.01),
    "AdaGrad": lambda: optim.AdaGrad(lr=0.05),
}
NET_CONFIGS = {
    "sigmoid-mse": dict(activation="sigmoid"),
    "relu-ce": dict(activation="relu", output="softmax", loss="ce"),
}


def history_rows(hist):
    """History records without the wall time, NaN replaced so that == compares them."""
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "time"}
            for r in hist.records()]


@pytest.mark.parametrize("net_kind", list(NET_CONFIGS))
@pytest.mark.parametrize("split", [2, 1], ids=["2+2", "1+3"])
@pytest.mark.parametrize("opt_name", list(RESUMABLE))
def test_resume_equals_uninterrupted_fit(tmp_path, opt_name, split, net_kind):
    X, y = training_data(seed=1)
    val = training_data(seed=2, rows=50)
    make_opt = RESUMABLE[opt_name]
    config = NET_CONFIGS[net_kind]

    whole = sdagd.MLP(SIZES, seed=3, **config)
    whole_opt = make_opt()
    hist_whole = whole.fit(X, y, whole_opt, epochs=4, batch_size=BATCH, validation_data=val, progress=False)

    first = sdagd.MLP(SIZES, seed=3, **config)
    first_opt = make_opt()
    first.fit(X, y, first_opt, epochs=split, batch_size=BATCH, validation_data=val, progress=False)
    first.save(tmp_path / "checkpoint.npz", optimizer=first_opt)
    del first, first_opt
    resumed, resumed_opt = sdagd.MLP.load(tmp_path / "checkpoint.npz", with_optimizer=True)
    assert resumed.epochs_trained == split
    hist_rest = resumed.fit(X, y, resumed_opt, epochs=4 - split, batch_size=BATCH, validation_data=val,
                            progress=False)

    # bit for bit: same float32 operations in the same order
    np.testing.assert_array_equal(flat_params(resumed), flat_params(whole))
    assert resumed.epochs_trained == 4
    assert hist_rest.epoch == list(range(split + 1, 5))
    assert history_rows(hist_rest) == history_rows(hist_whole)[split:]
    s_whole, s_resumed = whole_opt.state_dict(), resumed_opt.state_dict()
    assert s_resumed["step"] == s_whole["step"] == 4 * ROWS // BATCH
    np.testing.assert_array_equal(s_resumed["state"], s_whole["state"])


@pytest.mark.parametrize("opt_name", list(RESUMABLE))
def test_resume_without_optimizer_state_differs(tmp_path, opt_name):
    """Sensitivity of the resume test: continuing with a fresh optimizer (state dropped) must
    not reproduce the uninterrupted run, so the saved state is what makes resumption exact."""
    X, y = training_data(seed=1)
    make_opt = RESUMABLE[opt_name]
    whole = sdagd.MLP(SIZES, seed=3)
    whole.fit(X, y, make_opt(), epochs=2, batch_size=BATCH, progress=False)
    first = sdagd.MLP(SIZES, seed=3)
    first.fit(X, y, make_opt(), epochs=1, batch_size=BATCH, progress=False)
    first.save(tmp_path / "c.npz")
    resumed = sdagd.MLP.load(tmp_path / "c.npz")
    resumed.fit(X, y, make_opt(), epochs=1, batch_size=BATCH, progress=False)
    assert not np.array_equal(flat_params(resumed), flat_params(whole))


def test_results_do_not_depend_on_the_thread_count():
    """The CPU backend cuts each product into blocks by its shape alone and sums every
    reduction in a fixed order, so 1, 2 or 3 threads give the same bits (layers of 800 units
    are cut in two)."""
    rng = np.random.default_rng(3)
    X, y = rng.random((300, 40), dtype=np.float32), rng.integers(0, 5, 300)
    runs = []
    old = sdagd.get_num_threads()
    try:
        for threads in (1, 2, 3):
            sdagd.set_num_threads(threads)
            for make in (lambda: optim.SGD(lr=0.3), lambda: optim.SDAGD(radius=0.3, max_step=0.5)):
                net = sdagd.MLP([40, 800, 800, 5], seed=1)
                h = net.fit(X, y, make(), epochs=2, batch_size=30, progress=False)
                runs.append((threads, [p.copy() for pair in net.params for p in pair], h.train_loss))
    finally:
        sdagd.set_num_threads(old)
    by_threads = {}
    for threads, params, losses in runs:
        by_threads.setdefault(threads, []).append((params, losses))
    for threads in (2, 3):
        for (p1, l1), (pt, lt) in zip(by_threads[1], by_threads[threads]):
            assert l1 == lt
            for a, b in zip(p1, pt):
                np.testing.assert_array_equal(a, b)
