"""The CUDA backend: against the CPU backend on a GPU, and its errors everywhere.

Where no usable GPU is present (CI, laptops), the parity tests skip with the reason the
backend gives, and the tests of the error messages run instead. Run on a GPU machine with
benchmarks/gpu_check.sh.

Tolerances. Both backends evaluate the same per-element formulas (csrc/kernels.h) in float32;
they differ in the matrix products, which cuBLAS and OpenBLAS sum in different orders, and in
the device's expf/tanhf (within 2 ulp of the host's). One product of K terms then differs by
about sqrt(K) ulp, ~1e-6 relative for the sizes here, so a forward pass, a gradient or a
Hessian diagonal agrees to ~1e-5 relative in norm: the tests ask for 1e-4. Training amplifies
the differences step by step (each update moves parameters along a slightly different
gradient), so after 20 optimizer steps the parameters and optimizer state are compared at
1e-3 relative in norm, and after a whole MNIST epoch at 1e-2, with the test error within half
a percentage point.
"""
import functools
import os
import sys

import numpy as np
import pytest

import sdagd
from sdagd import optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from table_cases import from_table  # noqa: E402

AVAILABLE, WHY = sdagd.device_available("cuda")
gpu = pytest.mark.skipif(not AVAILABLE, reason=f"no usable CUDA GPU: {WHY}")

# The core's activation table (csrc/tables.h): every hidden activation, every output with its loss.
ACTIVATIONS = [a["name"] for a in sdagd._core.activation_table() if a["hidden"]]
OUTPUTS = [(a["name"], "ce" if a["name"] == "softmax" else "mse") for a in sdagd._core.activation_table() if a["output"]]
SIZES = [20, 16, 12, 5]


def rel_err(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def data(rows=37, seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, sizes[0])).astype(np.float32), rng.integers(0, sizes[-1], rows)


def twins(activation="sigmoid", output="sigmoid", loss="mse", sizes=SIZES, seed=3):
    """The same network on the CPU and on the GPU (same initial parameters)."""
    cpu = sdagd.MLP(sizes, activation=activation, output=output, loss=loss, seed=seed)
    gpu_net = sdagd.MLP(sizes, activation=activation, output=output, loss=loss, seed=seed, device="cuda")
    gpu_net.set_params(cpu.params)
    return cpu, gpu_net


# ---------------------------------------------------------------------------- everywhere

@pytest.mark.skipif(AVAILABLE, reason="a GPU is present: the parity tests below run instead")
def test_unusable_cuda_says_why():
    """device='cuda' without a usable GPU raises DeviceError saying which of the three it is."""
    with pytest.raises(sdagd.DeviceError) as info:
        sdagd.MLP([4, 3, 2], device="cuda")
    message = str(info.value)
    assert any(reason in message for reason in ("no CUDA backend", "could not be loaded", "no NVIDIA driver",
                                                "older than the CUDA", "no usable GPU", "found no GPU")), message
    assert "CUDA" in message
    assert "device='cpu'" in message or "rebuild" in message or "update the driver" in message
    assert isinstance(info.value, RuntimeError)
    assert WHY and WHY in message


def test_cuda_library_is_built_where_required():
    """CI sets SDAGD_REQUIRE_CUDA_BUILD=1 on its machine, which has nvcc but no GPU: the CUDA
    backend must have been compiled and installed beside the extension."""
    if os.environ.get("SDAGD_REQUIRE_CUDA_BUILD") != "1":
        pytest.skip("SDAGD_REQUIRE_CUDA_BUILD is not set")
    library = os.path.join(os.path.dirname(sdagd.__file__), "libsdagd_cuda.so")
    assert os.path.exists(library), f"{library} was not built"
    assert "no CUDA backend" not in WHY


def test_device_codes_come_from_the_core():
    assert set(sdagd._core.DEVICES) == {"cpu", "cuda"}
    with pytest.raises(ValueError, match="invalid device"):
        sdagd.MLP([4, 3, 2], device="tpu")
    with pytest.raises(ValueError, match="invalid device"):
        sdagd.device_available("tpu")


# ---------------------------------------------------------------------------- on a GPU

@gpu
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output,loss", OUTPUTS)
def test_forward_loss_gradient_hessian_match_cpu(activation, output, loss):
    cpu, dev = twins(activation, output, loss)
    X, y = data()
    assert rel_err(dev.forward(X), cpu.forward(X)) < 1e-4
    e_cpu, e_dev = cpu.evaluate(X, y), dev.evaluate(X, y)
    assert e_dev.loss == pytest.approx(e_cpu.loss, rel=1e-4)
    assert e_dev.error == e_cpu.error
    loss_c, g_c = cpu.gradients(X, y)
    loss_d, g_d = dev.gradients(X, y)
    assert loss_d == pytest.approx(loss_c, rel=1e-4)
    for (dW_c, db_c), (dW_d, db_d), hc, hd in zip(g_c, g_d, cpu.hessian_diagonal(X, y), dev.hessian_diagonal(X, y)):
        assert rel_err(dW_d, dW_c) < 1e-4 and rel_err(db_d, db_c) < 1e-4
        assert rel_err(hd[0], hc[0]) < 1e-4 and rel_err(hd[1], hc[1]) < 1e-4


# Every optimizer of the core's table (csrc/tables.h) at its defaults, then variants that reach
# other branches of the update (momentum, the norms, max_step, hessian_every, the average).
OPTIMIZERS = {name: functools.partial(from_table, name) for name in optim.TABLE}
OPTIMIZERS.update({
    "SGD-momentum": lambda: optim.SGD(lr=0.2, momentum=0.9),
    "SDAGD-global-max_step": lambda: optim.SDAGD(radius=1.0, norm="global", max_step=0.05),
    "SDAGD-every3-average": lambda: optim.SDAGD(radius=0.3, hessian_every=3, average=0.2),
    "SDLM-mu": lambda: optim.SDLM(lr=0.1, mu=0.05),
})


@gpu
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_twenty_optimizer_steps_match_cpu(name, activation):
    cpu, dev = twins(activation)
    o_cpu, o_dev = OPTIMIZERS[name](), OPTIMIZERS[name]()
    for step in range(20):
        X, y = data(seed=100 + step)
        l_cpu, l_dev = cpu.train_step(X, y, o_cpu), dev.train_step(X, y, o_dev)
        assert l_dev == pytest.approx(l_cpu, rel=1e-3)
    p_cpu = np.concatenate([np.ravel(a) for pair in cpu.params for a in pair])
    p_dev = np.concatenate([np.ravel(a) for pair in dev.params for a in pair])
    assert rel_err(p_dev, p_cpu) < 1e-3
    s_cpu, s_dev = o_cpu.state_dict(), o_dev.state_dict()
    assert s_cpu["step"] == s_dev["step"] == 20
    if s_cpu["state"] is not None:
        for i in range(s_cpu["state"].shape[0]):
            assert rel_err(s_dev["state"][i], s_cpu["state"][i]) < 1e-3, f"state slab {i}"


@gpu
def test_mnist_epoch_of_hl2_matches_cpu(mnist_dir):
    from sdagd.datasets import load_mnist

    (X, y), (Xt, yt) = load_mnist(mnist_dir)
    X, y = X[:2000], y[:2000]
    for make in (lambda: optim.SGD(lr=0.5), lambda: optim.SDAGD(radius=0.3)):
        cpu, dev = twins("sigmoid", sizes=[784, 700, 700, 10], seed=0)
        h_cpu = cpu.fit(X, y, make(), epochs=1, progress=False)
        h_dev = dev.fit(X, y, make(), epochs=1, progress=False)
        assert h_dev.train_loss[0] == pytest.approx(h_cpu.train_loss[0], rel=1e-3)
        p_cpu = np.concatenate([np.ravel(a) for pair in cpu.params for a in pair])
        p_dev = np.concatenate([np.ravel(a) for pair in dev.params for a in pair])
        assert rel_err(p_dev, p_cpu) < 1e-2
        assert abs(dev.evaluate(Xt, yt).error - cpu.evaluate(Xt, yt).error) <= 0.005
        for rms_d, rms_c in zip(h_dev.grad_rms[0], h_cpu.grad_rms[0]):
            assert rms_d == pytest.approx(rms_c, rel=1e-2)


@gpu
def test_diagnostics_match_cpu():
    X, y = data(rows=200)
    for activation in ("sigmoid", "relu"):
        cpu, dev = twins(activation)
        h_cpu = cpu.fit(X, y, optim.SDAGD(radius=0.5), epochs=2, batch_size=20, progress=False)
        h_dev = dev.fit(X, y, optim.SDAGD(radius=0.5), epochs=2, batch_size=20, progress=False)
        assert h_dev.phase1_fraction == pytest.approx(h_cpu.phase1_fraction, abs=1e-3)
        assert h_dev.mu_mean == pytest.approx(h_cpu.mu_mean, rel=1e-3)
        for column in ("saturated", "dead"):
            for a, b in zip(h_dev[column], h_cpu[column]):
                assert a == b or a == pytest.approx(b, abs=0.02), column


@gpu
def test_fit_many_on_gpu_equals_one_by_one_and_cpu():
    X, y = data(rows=120)
    make = lambda device: ([sdagd.MLP(SIZES, activation=a, seed=s, device=device)
                            for a, s in [("sigmoid", 0), ("relu", 1), ("tanh", 2)]],
                           [optim.SDAGD(radius=0.3), optim.SGD(lr=0.5), optim.SDLM(lr=0.1, mu=0.1)])
    together, opts = make("cuda")
    # with validation: each network is evaluated on its own stream right after the group hands
    # its parameters back, so this also checks that the hand-back is complete by then
    hs = sdagd.fit_many(together, opts, X, y, epochs=2, batch_size=16, validation_data=(X, y), progress=False)
    for device in ("cuda", "cpu"):
        alone, opts_a = make(device)
        for k, (net, opt) in enumerate(zip(alone, opts_a)):
            h = net.fit(X, y, opt, epochs=2, batch_size=16, validation_data=(X, y), progress=False)
            assert hs[k].train_loss == pytest.approx(h.train_loss, rel=1e-4)
            assert hs[k].val_loss == pytest.approx(h.val_loss, rel=1e-4)
            a = np.concatenate([np.ravel(v) for pair in together[k].params for v in pair])
            b = np.concatenate([np.ravel(v) for pair in net.params for v in pair])
            # Alone, each product is one cublasSgemm; together, one cublasSgemmStridedBatched of
            # K. cuBLAS picks its kernel per call (shape, batch count, GPU), and different kernels
            # may sum in different orders: nothing promises the same bits, so the bound is that
            # of two summation orders after training, as against the CPU (module docstring).
            assert rel_err(a, b) < 1e-3, device


@gpu
def test_recorded_steps_equal_launched_steps(monkeypatch):
    """CUDA graphs replay exactly the kernels a plain step launches: the same bits."""
    X, y = data(rows=150)
    results = []
    for graphs in ("1", "0"):
        monkeypatch.setenv("SDAGD_CUDA_GRAPHS", graphs)
        net = sdagd.MLP(SIZES, seed=4, device="cuda")
        net.fit(X, y, optim.SDAGD(radius=0.3), epochs=2, batch_size=32, progress=False)
        results.append(np.concatenate([np.ravel(v) for pair in net.params for v in pair]))
    np.testing.assert_array_equal(results[0], results[1])


@gpu
def test_same_seed_same_bits_on_gpu():
    X, y = data(rows=150)
    runs = []
    for _ in range(2):
        net = sdagd.MLP(SIZES, seed=4, device="cuda")
        net.fit(X, y, optim.SDAGD(radius=0.3), epochs=2, batch_size=32, progress=False)
        runs.append(np.concatenate([np.ravel(v) for pair in net.params for v in pair]))
    np.testing.assert_array_equal(runs[0], runs[1])


@gpu
def test_divergence_on_gpu_names_the_same_step_as_cpu():
    """Losses come back every 64 steps, but the step named is the one that diverged."""
    X, y = data(rows=300)
    messages = []
    for device in ("cpu", "cuda"):
        net = sdagd.MLP(SIZES, activation="relu", output="linear", seed=1, device=device)
        with pytest.raises(sdagd.DivergenceError) as info:
            net.fit(X, y, optim.SGD(lr=1e30), epochs=3, batch_size=10, progress=False)
        messages.append(str(info.value).split(" (optimizer")[0])
    assert messages[0] == messages[1]


@gpu
def test_save_on_one_device_loads_on_the_other(tmp_path):
    X, y = data(rows=80)
    net = sdagd.MLP(SIZES, seed=2, device="cuda")
    opt = optim.Adam()
    net.fit(X, y, opt, epochs=1, batch_size=16, progress=False)
    net.save(tmp_path / "gpu.npz", optimizer=opt)
    back, opt_back = sdagd.MLP.load(tmp_path / "gpu.npz", with_optimizer=True, device="cpu")
    assert back.config["device"] == "cpu"
    for (Wa, ba), (Wb, bb) in zip(net.params, back.params):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    np.testing.assert_array_equal(opt.state_dict()["state"], opt_back.state_dict()["state"])
    back.save(tmp_path / "cpu.npz", optimizer=opt_back)
    again = sdagd.MLP.load(tmp_path / "cpu.npz", device="cuda")
    np.testing.assert_array_equal(again.forward(X), net.forward(X))
