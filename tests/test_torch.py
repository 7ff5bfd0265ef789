"""sdagd.torch against the C core: one SDAGD / SDLM step of a torch model equals the core's step
from the same parameters and batch (every hidden activation, output and loss, both norms), a
short training run tracks the core's, GradientFlow's history equals the fields MLP.fit fills,
and unsupported models are refused with a message saying what is supported.

The C core is itself checked against the float64 oracle (tests/reference.py) in
test_optimizers.py; here it is the independent reference for a second implementation written on
torch's own matrix products.
"""
import math
import os

import numpy as np
import pytest

if os.environ.get("SDAGD_REQUIRE_TORCH") == "1":  # CI: a lost install must fail, not skip these tests
    import torch
else:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the sdagd.torch tests need the torch "
                                                "extra: pip install \"sdagd[torch]\"")
nn = torch.nn
# One thread: on a loaded machine (CI, cores shared with other jobs) torch's OpenMP threads spin
# against each other, and a step of these small models took 50x longer with two.
torch.set_num_threads(1)

import sdagd  # noqa: E402
import sdagd.torch as st  # noqa: E402

SIZES = [12, 9, 7, 4]
B = 16
HIDDEN = ["sigmoid", "relu", "tanh", "leaky_relu"]
HEADS = [("sigmoid", "mse"), ("linear", "mse"), ("softmax", "ce")]

# Float32 tolerance of a step: the core and torch sum the batch in different orders (BLAS vs
# torch's kernels), so gradients agree to a few float32 ulps of their largest terms (~1e-7
# relative); the step g / (mu + h) inherits that. 2e-5 of the largest step component leaves
# room for 16-row sums in two orders, and is 1000x smaller than any step's own size.
STEP_RTOL = 2e-5


def batch(seed=0, rows=B, scale=1.0):
    rng = np.random.default_rng(seed)
    X = (scale * rng.standard_normal((rows, SIZES[0]))).astype(np.float32)
    return X, rng.integers(0, SIZES[-1], rows)


def torch_loss(loss):
    if loss == "mse":
        return st.mse_loss
    return nn.functional.cross_entropy


def one_step(model, opt, X, y, loss_fn):
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def closure():
        opt.zero_grad()
        value = loss_fn(model(Xt), yt)
        value.backward()
        return value

    return float(opt.step(closure).detach())


def flat(params):
    return np.concatenate([np.concatenate([np.asarray(W).ravel(), np.asarray(b)]) for W, b in params])


def torch_params(model):
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in model
            if isinstance(m, nn.Linear)]


def assert_same_step(before, after_core, after_torch):
    step_core, step_torch = after_core - before, after_torch - before
    scale = np.abs(step_core).max()
    assert scale > 1e-6, "the step is too small for the comparison to mean anything"
    err = np.abs(step_torch - step_core).max()
    assert err <= STEP_RTOL * scale, f"torch step differs from the core's by {err:.3g} (largest step {scale:.3g})"


def make_net(hidden, output, loss, seed=3):
    return sdagd.MLP(SIZES, activation=hidden, output=output, loss=loss, seed=seed, leaky_slope=0.05)


@pytest.mark.parametrize("norm", ["layer", "global"])
@pytest.mark.parametrize("output,loss", HEADS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_sdagd_step_equals_the_core_step(hidden, output, loss, norm):
    net = make_net(hidden, output, loss)
    model = st.from_mlp(net)
    X, y = batch(1)
    before = flat(net.params)
    hess = flat(net.hessian_diagonal(X, y))
    core_loss = net.train_step(X, y, sdagd.optim.SDAGD(radius=0.3, norm=norm))
    opt = st.SDAGD(model, radius=0.3, loss=loss, norm=norm)
    torch_loss_value = one_step(model, opt, X, y, torch_loss(loss))
    assert torch_loss_value == pytest.approx(core_loss, rel=1e-5)
    assert_same_step(before, flat(net.params), flat(torch_params(model)))
    # The curvature the step used: the core's truncated Hessian diagonal of the batch.
    kept = np.concatenate([np.concatenate([opt.state[m.weight]["h"].numpy().ravel(), opt.state[m.bias]["h"].numpy()])
                           for m in model if isinstance(m, nn.Linear)])
    np.testing.assert_allclose(kept, hess, rtol=1e-4, atol=1e-6 * np.abs(hess).max())
    assert 0 <= opt.last_phase1_fraction <= 1
    assert len(opt.last_mu) == len(SIZES) - 1


@pytest.mark.parametrize("output,loss", HEADS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_sdlm_steps_equal_the_core_steps(hidden, output, loss):
    """Two steps, so that the running average hbar (which starts at the first h) is exercised."""
    net = make_net(hidden, output, loss)
    model = st.from_mlp(net)
    core_opt = sdagd.optim.SDLM(lr=0.05, mu=0.01, gamma=0.3)
    opt = st.SDLM(model, lr=0.05, mu=0.01, gamma=0.3, loss=loss)
    for seed in (1, 2):
        X, y = batch(seed)
        before = flat(net.params)
        np.testing.assert_allclose(flat(torch_params(model)), before, rtol=0, atol=STEP_RTOL * 0.05)
        net.train_step(X, y, core_opt)
        one_step(model, opt, X, y, torch_loss(loss))
        assert_same_step(before, flat(net.params), flat(torch_params(model)))
    hbar_core = core_opt.state_dict()["state"][0]
    hbar = np.concatenate([np.concatenate([opt.state[m.weight]["hbar"].numpy().ravel(), opt.state[m.bias]["hbar"].numpy()])
                           for m in model if isinstance(m, nn.Linear)])
    np.testing.assert_allclose(hbar, hbar_core, rtol=1e-4, atol=1e-6 * np.abs(hbar_core).max())


@pytest.mark.parametrize("torch_loss_module,output,loss", [
    (nn.MSELoss(), "sigmoid", "mse"), (nn.MSELoss(reduction="sum"), "linear", "mse"),
    (nn.CrossEntropyLoss(), "softmax", "ce"), (nn.CrossEntropyLoss(reduction="sum"), "softmax", "ce")])
def test_sdagd_with_torch_losses_takes_the_papers_step(torch_loss_module, output, loss):
    """SDAGD's step is unchanged when the loss is multiplied by a constant c, provided h is the
    curvature of that same loss (g, mu and h all scale by c). nn.MSELoss is 2/n_out (mean) or
    2B (sum) times the paper's loss, CE with "sum" B times: the step must equal the core's."""
    net = make_net("tanh", output, loss)
    model = st.from_mlp(net)
    X, y = batch(4)
    before = flat(net.params)
    net.train_step(X, y, sdagd.optim.SDAGD(radius=0.5))
    opt = st.SDAGD(model, radius=0.5, loss=torch_loss_module)
    if loss == "mse":
        target = nn.functional.one_hot(torch.from_numpy(y), SIZES[-1]).float()
        one_step(model, opt, X, target.numpy(), torch_loss_module)
    else:
        one_step(model, opt, X, y, torch_loss_module)
    assert_same_step(before, flat(net.params), flat(torch_params(model)))


def test_a_short_training_run_tracks_the_core(mnist_dir):
    """30 SDAGD steps on real MNIST batches (hl-2 of width 64, sigmoid, the paper's loss): the
    losses agree step by step and the parameters at the end. Rounding differences grow over the
    steps, so the tolerances are looser than one step's."""
    from sdagd.datasets import load_mnist
    (X_train, y_train), _ = load_mnist(mnist_dir)
    net = sdagd.MLP([784, 64, 64, 10], activation="sigmoid", seed=0)
    model = st.from_mlp(net)
    core_opt, opt = sdagd.optim.SDAGD(radius=0.3), st.SDAGD(model, radius=0.3)
    core_losses, torch_losses = [], []
    for step in range(30):
        X, y = X_train[100 * step:100 * (step + 1)], y_train[100 * step:100 * (step + 1)].astype(np.int64)
        core_losses.append(net.train_step(X, y, core_opt))
        torch_losses.append(one_step(model, opt, X, y, st.mse_loss))
    np.testing.assert_allclose(torch_losses, core_losses, rtol=1e-3)
    assert core_losses[-1] < 0.8 * core_losses[0], "the run did not train; the comparison would be weak"
    np.testing.assert_allclose(flat(torch_params(model)), flat(net.params), rtol=0, atol=1e-3)


def test_sdlm_state_round_trips_through_state_dict():
    net = make_net("sigmoid", "sigmoid", "mse")
    model, twin = st.from_mlp(net), st.from_mlp(net)
    opt = st.SDLM(model, lr=0.1, mu=0.01)
    X, y = batch(5)
    one_step(model, opt, X, y, st.mse_loss)
    twin.load_state_dict(model.state_dict())
    restored = st.SDLM(twin, lr=0.1, mu=0.01)
    restored.load_state_dict(opt.state_dict())
    X, y = batch(6)
    one_step(model, opt, X, y, st.mse_loss)
    one_step(twin, restored, X, y, st.mse_loss)
    np.testing.assert_array_equal(flat(torch_params(model)), flat(torch_params(twin)))


REFUSED = [
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)), "mse", ValueError, "unsupported module 0"),
    (lambda: nn.Linear(4, 2), "mse", TypeError, "torch.nn.Sequential of Linear"),
    (lambda: nn.Sequential(nn.Linear(4, 3, bias=False), nn.Sigmoid(), nn.Linear(3, 2)), "mse", ValueError, "no bias"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Linear(3, 2)), "mse", ValueError, "Sigmoid, ReLU, Tanh"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), "mse", ValueError, "not followed by an activation"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Softmax(dim=1)), "ce", ValueError,
     "unsupported module 3"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Sigmoid()), "ce", ValueError,
     "logits"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.ReLU()), "mse", ValueError,
     "output activation 'relu'"),
    (lambda: nn.Sequential(nn.Linear(4, 2)), nn.L1Loss(), ValueError, "unsupported loss"),
    (lambda: nn.Sequential(nn.Linear(4, 2)), nn.CrossEntropyLoss(label_smoothing=0.1), ValueError, "unsupported loss"),
    (lambda: nn.Sequential(nn.Linear(4, 2)), "hinge", ValueError, "invalid loss"),
]


@pytest.mark.parametrize("make,loss,error,message", REFUSED, ids=[r[3] for r in REFUSED])
def test_unsupported_models_are_refused_with_what_is_supported(make, loss, error, message):
    with pytest.raises(error, match=message):
        st.SDAGD(make(), radius=0.3, loss=loss)
    with pytest.raises(error, match=message):
        st.SDLM(make(), lr=0.1, mu=0.01, loss=loss)


@pytest.mark.parametrize("kwargs,message", [(dict(radius=0), "invalid radius"), (dict(radius=-1), "invalid radius"),
                                            (dict(radius=0.3, norm="max"), "invalid norm"),
                                            (dict(radius=0.3, eps=0), "invalid eps"), (dict(radius="1"), "number")])
def test_sdagd_hyperparameters_are_checked(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        st.SDAGD(nn.Sequential(nn.Linear(3, 2)), **kwargs)


def test_step_needs_a_closure_that_runs_the_model():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = st.SDAGD(model, radius=0.3)
    with pytest.raises(TypeError, match="needs a closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="ran no forward pass"):
        opt.step(lambda: torch.tensor(0.0))


def test_a_flatten_first_takes_image_shaped_batches():
    net = sdagd.MLP([16, 5, 3], activation="relu", output="softmax", loss="ce", seed=2)
    model = nn.Sequential(nn.Flatten(), *st.from_mlp(net))
    rng = np.random.default_rng(7)
    X, y = rng.random((8, 16), dtype=np.float32), rng.integers(0, 3, 8)
    before = flat(net.params)
    net.train_step(X, y, sdagd.optim.SDAGD(radius=0.2))
    opt = st.SDAGD(model, radius=0.2, loss="ce")
    Xt, yt = torch.from_numpy(X.reshape(8, 1, 4, 4)), torch.from_numpy(y)

    def closure():
        opt.zero_grad()
        value = nn.functional.cross_entropy(model(Xt), yt)
        value.backward()
        return value

    opt.step(closure)
    assert_same_step(before, flat(net.params), flat(torch_params(model)))


# -- GradientFlow -------------------------------------------------------------------------------

def gradient_flow_case(hidden, optimizer, torch_optimizer, epochs=3):
    """Full-batch training (one step per epoch, so the row order of fit's shuffle cannot matter)
    of the same network by MLP.fit and by torch under GradientFlow; returns both histories."""
    rng = np.random.default_rng(11)
    # Inputs large enough that sigmoid/tanh units saturate and some ReLU units never fire.
    X = (4 * rng.standard_normal((64, SIZES[0]))).astype(np.float32)
    y = rng.integers(0, SIZES[-1], 64)
    net = sdagd.MLP(SIZES, activation=hidden, seed=5)
    if hidden == "relu":  # a third of the first layer's units start far below zero: dead
        (W, b), *rest = net.params
        net.set_params([(W, b - 30 * (np.arange(b.size) % 3 == 0)), *rest])
    model = st.from_mlp(net)
    history = net.fit(X, y, optimizer, epochs=epochs, batch_size=64, progress=False)
    opt = torch_optimizer(model)
    flow = st.GradientFlow(model, optimizer=opt if isinstance(opt, st.SDAGD) else None)
    for _ in range(epochs):
        loss = one_step(model, opt, X, y, st.mse_loss) if isinstance(opt, st.SDAGD) else None
        if loss is None:
            opt.zero_grad()
            value = st.mse_loss(model(torch.from_numpy(X)), torch.from_numpy(y))
            value.backward()
            opt.step()
            loss = float(value.detach())
        with torch.no_grad():  # an evaluation pass: not counted by the hooks
            model.eval()
            model(torch.from_numpy(X))
            model.train()
        flow.end_epoch(train_loss=loss)
    return history, flow.history


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu"])
def test_gradient_flow_fills_what_fit_fills(hidden):
    history, flow = gradient_flow_case(hidden, sdagd.optim.SGD(lr=0.5), lambda m: torch.optim.SGD(m.parameters(), lr=0.5))
    assert len(flow) == len(history) == 3
    for core, mine in zip(history.records(), flow.records()):
        np.testing.assert_allclose(mine["grad_rms"], core["grad_rms"], rtol=1e-4)
        assert mine["train_loss"] == pytest.approx(core["train_loss"], rel=1e-4)
        for field in ("saturated", "dead"):
            if core[field][0] is None:
                assert mine[field] == core[field]
            else:  # one (row, unit) pair on the 0.25 % threshold may round to the other side
                np.testing.assert_allclose(mine[field], core[field], atol=1.5 / (64 * min(SIZES[1:-1])))
        assert mine["stalled"] == core["stalled"]
    measured = [v for r in history.records() for v in (r["saturated"] if hidden != "relu" else r["dead"])]
    assert max(measured) > 0.05, "no saturated or dead units: the comparison would not test them"
    assert math.isnan(flow.mu_mean[0])


def test_gradient_flow_records_sdagd_mu_and_phase():
    history, flow = gradient_flow_case("sigmoid", sdagd.optim.SDAGD(radius=0.3),
                                       lambda m: st.SDAGD(m, radius=0.3))
    for field in ("mu_mean", "mu_min", "mu_max", "phase1_fraction"):
        np.testing.assert_allclose(flow[field], history[field], rtol=1e-4)


def test_gradient_flow_feeds_the_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
    from sdagd.paper import plots
    model = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2))
    flow = st.GradientFlow(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    X, y = torch.rand(20, 6), torch.arange(20) % 2
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
        flow.end_epoch()
    assert (flow.depth, flow.activation) == (2, "sigmoid")
    path = tmp_path / "flow.png"
    plots.gradient_flow([flow.as_record("SGD")], depth=flow.depth, activation=flow.activation, path=str(path))
    assert path.stat().st_size > 1000
    flow.remove()
    opt.zero_grad()
    nn.functional.cross_entropy(model(X), y).backward()
    assert flow._grad_steps == [0, 0, 0], "hooks still fire after remove()"


def test_gradient_flow_refuses_what_it_cannot_watch():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        st.GradientFlow([1, 2])
    with pytest.raises(ValueError, match="no torch.nn.Linear"):
        st.GradientFlow(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="sdagd.torch.SDAGD"):
        model = nn.Sequential(nn.Linear(2, 2))
        st.GradientFlow(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def readme_block(heading):
    """The first ```python block after the line ``heading`` of the README."""
    import pathlib
    text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    after = text[text.index(heading + "\n"):]
    start = after.index("```python\n") + len("```python\n")
    return after[start:after.index("```\n", start)]


def test_the_readme_pytorch_example_runs(mnist_dir, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
    monkeypatch.setenv("SDAGD_DATA", str(mnist_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(readme_block("### SDAGD on a PyTorch model"), "README.md", "exec"), namespace)
    history = namespace["flow"].history
    assert len(history) == 2 and history.train_error[-1] < 0.5, history.train_error
    assert len(history.grad_rms[-1]) == 4 and all(v > 0 for v in history.grad_rms[-1])
    assert 0 < history.mu_mean[-1] and history.phase1_fraction[-1] > 0.9  # greatest-descent phase, as RESULTS.md
    assert (tmp_path / "torch_gradient_flow.png").stat().st_size > 1000


def test_module_examples_run():
    import doctest
    result = doctest.testmod(st)
    assert result.attempted > 0 and result.failed == 0
