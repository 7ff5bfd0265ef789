"""Argument checking of the public API, input handling, and divergence reporting.

Bad arguments are kept as one data table of (id, callable, exception, message regex), in
the style of torch's OpInfo error inputs: each row must raise that exception with a message
that names what was wrong. Then: calls do not modify their inputs; float64, other float
dtypes and non-contiguous inputs give the same results as C-contiguous float32; and a
diverging run raises sdagd.DivergenceError naming the epoch and the optimizer.
"""

import json
import math
import re

import numpy as np
import pytest

import sdagd
from sdagd import optim

SIZES = [6, 5, 10]  # 10 outputs, so that label 10 is the first one out of range
B = 8


def net(**kw):
    return sdagd.MLP(SIZES, **kw)


def data(rows=B, n_in=SIZES[0], seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n_in)).astype(np.float32)
    y = rng.integers(0, SIZES[-1], rows)
    return X, y


X, Y = data()


def with_nan(X):
    X = X.copy()
    X[2, 3] = np.nan
    return X


def with_inf(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


def beyond_float32(X):
    X = X.astype(np.float64)
    X[1, 2] = 1e39  # finite as float64, inf as the float32 the network computes in
    return X


class CustomOptimizer(optim.Optimizer):
    """An optimizer of a new kind: it has no update rule in the C core."""


def used_with_another_network():
    opt = optim.SGD(lr=0.1)
    net().train_step(X, Y, opt)
    net().train_step(X, Y, opt)


def garbage_file(tmp_dir, content):
    path = tmp_dir / "garbage.npz"
    path.write_bytes(content)
    return path


# ------------------------------------------------------------------------------ the table

# Ways of feeding a network (X, y); each bad input below is tried on every one of them.
CONSUMERS = {
    "forward": lambda X, y: net().forward(X),
    "predict": lambda X, y: net().predict(X),
    "evaluate": lambda X, y: net().evaluate(X, y),
    "gradients": lambda X, y: net().gradients(X, y),
    "hessian_diagonal": lambda X, y: net().hessian_diagonal(X, y),
    "train_step": lambda X, y: net().train_step(X, y, optim.SGD(lr=0.1)),
    "fit": lambda X, y: net().fit(X, y, optim.SGD(lr=0.1), epochs=1, batch_size=4, progress=False),
    "fit-validation": lambda X, y: net().fit(*data(), optim.SGD(lr=0.1), epochs=1, batch_size=4,
                                             validation_data=(X, y), progress=False),
}
X_ONLY = {"forward", "predict"}

BAD_X = [
    # (id, X, y, exception, message)
    ("X-3d", X[None], Y, ValueError, r"X(_val)? must have shape \(n_samples, 6\), got \(1, 8, 6\)"),
    ("X-wrong-width", X[:, :4], Y, ValueError, r"X(_val)? must have shape \(n_samples, 6\), got \(8, 4\)"),
    ("X-int", X.astype(np.int32), Y, TypeError, r"X(_val)? must hold floating-point values.*int32"),
    ("X-bool", X > 0, Y, TypeError, r"floating-point.*bool"),
    ("X-nan", with_nan(X), Y, ValueError, r"X(_val)? contains NaN or inf \(first at flat index 15\)"),
    ("X-inf", with_inf(X), Y, ValueError, r"X(_val)? contains NaN or inf"),
    ("X-empty", X[:0], Y[:0], ValueError, r"X(_val)? has no rows"),
    ("X-beyond-float32", beyond_float32(X), Y, ValueError,
     r"X(_val)? holds 1e\+39 at flat index 8, beyond the float32 range"),
]
BAD_Y = [
    ("y-wrong-length", X, Y[:5], ValueError, r"y(_val)? has 5 labels but X(_val)? has 8 rows"),
    ("y-float", X, Y.astype(np.float64), TypeError, r"y(_val)? must hold integer class labels in \[0, 10\).*float64"),
    ("y-bool", X, Y > 3, TypeError, r"integer class labels.*bool"),
    ("y-2d", X, Y[:, None], ValueError, r"y(_val)? must be 1-dimensional"),
    ("y-label-10", X, np.r_[Y[:-1], 10], ValueError, r"contains label 10; labels must be in \[0, 10\) for 10 outputs"),
    ("y-label-minus-1", X, np.r_[-1, Y[1:]], ValueError, r"contains label -1; labels must be in \[0, 10\)"),
]

INPUT_CASES = [
    pytest.param(consumer, X_, y_, exc, msg, id=f"{name}-{bad_id}")
    for name, consumer in CONSUMERS.items()
    for bad_id, X_, y_, exc, msg in BAD_X + ([] if name in X_ONLY else BAD_Y)
]

CONSTRUCTION_CASES = [
    # (id, callable, exception, message)
    ("sizes-empty", lambda: sdagd.MLP([]), ValueError, r"at least two positive layer widths.*\[\]"),
    ("sizes-one", lambda: sdagd.MLP([5]), ValueError, r"at least two positive layer widths.*\[5\]"),
    ("sizes-zero-width", lambda: sdagd.MLP([5, 0, 3]), ValueError, r"at least two positive layer widths.*\[5, 0, 3\]"),
    ("sizes-negative", lambda: sdagd.MLP([5, -2, 3]), ValueError, r"positive layer widths"),
    ("sizes-string", lambda: sdagd.MLP("abc"), TypeError, r"sizes must be a sequence of integers, got 'abc'"),
    ("sizes-none", lambda: sdagd.MLP(None), TypeError, r"sizes must be a sequence of integers"),
    ("sizes-too-wide", lambda: sdagd.MLP([5, 2 ** 25, 3]), ValueError, r"sizes\[1\].*2\*\*24"),
    ("sizes-beyond-C-long", lambda: sdagd.MLP([5, 2 ** 70, 3]), ValueError,
     r"sizes\[1\] = 1180591620717411303424; each width must be in \[1, 2\*\*24\]"),
    ("sizes-too-many", lambda: sdagd.MLP([2] * 1001), ValueError, r"at most 1000 layer widths, got 1001"),
    ("activation-list", lambda: net(activation=["relu"]), TypeError,
     r"activation must be a string, one of \['leaky_relu', 'relu', 'sigmoid', 'tanh'\]; got \['relu'\]"),
    ("output-list", lambda: net(output=["linear"]), TypeError, r"output must be a string.*got \['linear'\]"),
    ("loss-list", lambda: net(loss=["mse"]), TypeError, r"loss must be a string"),
    ("activation", lambda: net(activation="softplus"), ValueError,
     r"invalid activation 'softplus'; choose one of \['leaky_relu', 'relu', 'sigmoid', 'tanh'\]"),
    ("output", lambda: net(output="tanh"), ValueError, r"invalid output 'tanh'; choose one of"),
    ("loss", lambda: net(loss="hinge"), ValueError, r"invalid loss 'hinge'; choose one of \['ce', 'mse'\]"),
    ("init", lambda: net(init="orthogonal"), ValueError, r"invalid init 'orthogonal'; choose one of \['he', 'xavier'\]"),
    ("device", lambda: net(device="tpu"), ValueError, r"invalid device 'tpu'"),
    ("softmax-with-mse", lambda: net(output="softmax", loss="mse"), ValueError,
     r"output 'softmax' with loss 'mse': use output='softmax' with loss='ce'"),
    ("ce-with-sigmoid", lambda: net(output="sigmoid", loss="ce"), ValueError, r"output 'sigmoid' with loss 'ce'"),
    ("ce-with-linear", lambda: net(output="linear", loss="ce"), ValueError, r"output 'linear' with loss 'ce'"),
    ("seed-negative", lambda: net(seed=-1), ValueError, r"seed must be an integer in \[0, 2\*\*64\), got -1"),
    ("seed-float", lambda: net(seed=1.5), ValueError, r"seed must be an integer in \[0, 2\*\*64\), got 1.5"),
    ("seed-bool", lambda: net(seed=True), ValueError, r"seed must be an integer in"),
    ("leaky-slope-1.5", lambda: net(activation="leaky_relu", leaky_slope=1.5), ValueError,
     r"leaky_slope must be in \[0, 1\), got 1.5"),
    ("leaky-slope-negative", lambda: net(leaky_slope=-0.1), ValueError, r"leaky_slope must be in \[0, 1\)"),
    ("leaky-slope-nan", lambda: net(leaky_slope=float("nan")), ValueError, r"leaky_slope must be in \[0, 1\), got nan"),
    # This build has no CUDA backend: a clear RuntimeError, not a crash or a silent CPU run.
]

OPTIMIZER_CASES = [
    ("SGD-lr-negative", lambda: optim.SGD(lr=-1), ValueError, r"SGD: invalid lr -1.0; it must be a positive finite number"),
    ("SGD-lr-zero", lambda: optim.SGD(lr=0), ValueError, r"SGD: invalid lr 0.0"),
    ("SGD-lr-nan", lambda: optim.SGD(lr=float("nan")), ValueError, r"SGD: invalid lr nan"),
    ("SGD-lr-inf", lambda: optim.SGD(lr=float("inf")), ValueError, r"SGD: invalid lr inf"),
    ("SGD-lr-string", lambda: optim.SGD(lr="big"), TypeError, r"SGD: lr must be a number, got 'big'"),
    ("SGD-momentum-1", lambda: optim.SGD(lr=0.1, momentum=1.0), ValueError, r"SGD: invalid momentum 1.0; it must be in \[0, 1\)"),
    ("SGD-momentum-negative", lambda: optim.SGD(lr=0.1, momentum=-0.5), ValueError, r"SGD: invalid momentum -0.5"),
    ("SDAGD-radius-negative", lambda: optim.SDAGD(radius=-1), ValueError, r"SDAGD: invalid radius -1.0"),
    ("SDAGD-radius-zero", lambda: optim.SDAGD(radius=0), ValueError, r"SDAGD: invalid radius 0.0"),
    ("SDAGD-radius-inf", lambda: optim.SDAGD(radius=math.inf), ValueError, r"SDAGD: invalid radius inf"),
    ("SDAGD-eps-negative", lambda: optim.SDAGD(radius=0.3, eps=-1), ValueError, r"SDAGD: invalid eps -1.0"),
    ("SDAGD-norm", lambda: optim.SDAGD(radius=0.3, norm="x"), ValueError, r"SDAGD: invalid norm 'x'; choose 'layer' or 'global'"),
    ("SDAGD-hessian_every-0", lambda: optim.SDAGD(radius=0.3, hessian_every=0), ValueError,
     r"SDAGD: invalid hessian_every 0; it must be an integer from 1 to 2\*\*31-1"),
    ("SDAGD-hessian_every-float", lambda: optim.SDAGD(radius=0.3, hessian_every=1.5), ValueError, r"hessian_every 1.5"),
    # Checked at construction, not at first use (where the core's C int overflowed).
    ("SDAGD-hessian_every-2**31", lambda: optim.SDAGD(radius=0.3, hessian_every=2**31), ValueError,
     r"SDAGD: invalid hessian_every 2147483648; it must be an integer from 1 to 2\*\*31-1"),
    ("SDAGD-norm-list", lambda: optim.SDAGD(radius=0.3, norm=["layer"]), ValueError,
     r"SDAGD: invalid norm \['layer'\]; choose 'layer' or 'global'"),
    ("custom-Optimizer-subclass", lambda: CustomOptimizer(lr=0.1), TypeError,
     r"CustomOptimizer: the update rules run in the C core.*subclass one of those"),
    ("SDAGD-max_step-negative", lambda: optim.SDAGD(radius=0.3, max_step=-1), ValueError, r"SDAGD: invalid max_step -1.0"),
    ("SDAGD-max_step-zero", lambda: optim.SDAGD(radius=0.3, max_step=0), ValueError, r"SDAGD: invalid max_step 0.0"),
    ("SDLM-mu-zero", lambda: optim.SDLM(lr=0.1, mu=0), ValueError, r"SDLM: invalid mu 0.0"),
    ("SDLM-gamma-zero", lambda: optim.SDLM(lr=0.1, mu=0.01, gamma=0), ValueError, r"SDLM: invalid gamma 0.0; it must be in \(0, 1\]"),
    ("SDLM-gamma-above-1", lambda: optim.SDLM(lr=0.1, mu=0.01, gamma=1.5), ValueError, r"SDLM: invalid gamma 1.5"),
    ("SDLM-lr-zero", lambda: optim.SDLM(lr=0, mu=0.01), ValueError, r"SDLM: invalid lr 0.0"),
    ("Adam-beta1-1", lambda: optim.Adam(betas=(1.0, 0.9)), ValueError, r"Adam: invalid beta1 1.0; it must be in \[0, 1\)"),
    ("Adam-beta2-1", lambda: optim.Adam(betas=(0.9, 1.0)), ValueError, r"Adam: invalid beta2 1.0"),
    ("Adam-lr-zero", lambda: optim.Adam(lr=0), ValueError, r"Adam: invalid lr 0.0"),
    ("Adam-eps-zero", lambda: optim.Adam(eps=0), ValueError, r"Adam: invalid eps 0.0"),
    ("AdaDelta-rho-1", lambda: optim.AdaDelta(rho=1), ValueError, r"AdaDelta: invalid rho 1.0; it must be in \[0, 1\)"),
    ("AdaDelta-lr-zero", lambda: optim.AdaDelta(lr=0), ValueError, r"AdaDelta: invalid lr 0.0"),
    ("AdaGrad-lr-zero", lambda: optim.AdaGrad(lr=0), ValueError, r"AdaGrad: invalid lr 0.0"),
    ("AdaGrad-eps-negative", lambda: optim.AdaGrad(eps=-1e-10), ValueError, r"AdaGrad: invalid eps"),
    ("from_config-unknown", lambda: optim.from_config({"name": "Lion"}), ValueError,
     r"unknown optimizer 'Lion'; known: \['AdaDelta', 'AdaGrad', 'Adam', 'RMSprop', 'SDAGD', 'SDLM', 'SGD'\]"),
    ("from_config-name-list", lambda: optim.from_config({"name": ["SGD"]}), ValueError,
     r"unknown optimizer \['SGD'\]; known:"),
    ("from_config-not-a-dict", lambda: optim.from_config("SGD"), TypeError,
     r"an optimizer configuration is a dict such as .*got 'SGD'"),
]

USE_CASES = [
    ("fit-epochs-negative", lambda: net().fit(X, Y, optim.SGD(lr=0.1), epochs=-1), ValueError,
     r"epochs must be a non-negative integer, got -1"),
    ("fit-epochs-float", lambda: net().fit(X, Y, optim.SGD(lr=0.1), epochs=1.5), ValueError, r"epochs .* got 1.5"),
    ("fit-batch_size-0", lambda: net().fit(X, Y, optim.SGD(lr=0.1), batch_size=0), ValueError,
     r"batch_size must be a positive integer, got 0"),
    ("fit-batch_size-bool", lambda: net().fit(X, Y, optim.SGD(lr=0.1), batch_size=True), ValueError, r"batch_size"),
    ("fit-seed-negative", lambda: net().fit(X, Y, optim.SGD(lr=0.1), seed=-3), ValueError,
     r"seed must be an integer in \[0, 2\*\*64\), got -3"),
    ("fit-progress", lambda: net().fit(X, Y, optim.SGD(lr=0.1), progress="yes"), TypeError,
     r"progress must be True, False or a callable"),
    ("fit-validation-not-a-pair", lambda: net().fit(X, Y, optim.SGD(lr=0.1), validation_data=(X, Y, Y)),
     ValueError, r"validation_data must be a pair \(X_val, y_val\)"),
    ("fit-not-an-optimizer", lambda: net().fit(X, Y, "sgd"), TypeError,
     r"optimizer must be an sdagd.optim optimizer \(e.g. sdagd.optim.SGD\(lr=0.1\)\), got str"),
    ("train_step-not-an-optimizer", lambda: net().train_step(X, Y, object()), TypeError,
     r"optimizer must be an sdagd.optim optimizer.*got object"),
    ("train_step-optimizer-class", lambda: net().train_step(X, Y, optim.SGD), TypeError,
     r"optimizer must be an sdagd.optim optimizer"),
    ("save-not-an-optimizer", lambda: net().save("never-written.npz", optimizer="sgd"), TypeError,
     r"optimizer must be an sdagd.optim optimizer.*got str"),
    ("optimizer-two-networks", used_with_another_network, ValueError,
     r"this SGD optimizer already holds state for another network; create a new optimizer"),
    ("set_params-too-few-layers", lambda: net().set_params(net().params[:1]), ValueError,
     r"expected 2 \(W, b\) pairs, got 1"),
    ("set_params-W-shape", lambda: net().set_params([(np.zeros((6, 5)), np.zeros(5)), net().params[1]]),
     ValueError, r"layer 0: expected W \(5, 6\) and b \(5,\), got \(6, 5\) and \(5,\)"),
    ("set_params-b-shape", lambda: net().set_params([net().params[0], (np.zeros((10, 5)), np.zeros(5))]),
     ValueError, r"layer 1: expected W \(10, 5\) and b \(10,\), got \(10, 5\) and \(5,\)"),
    ("set_params-nan", lambda: net().set_params([(np.full((5, 6), np.nan), np.zeros(5)), net().params[1]]),
     ValueError, r"parameters contain NaN or inf"),
    ("set_params-inf-bias", lambda: net().set_params([net().params[0], (np.zeros((10, 5)), np.full(10, -np.inf))]),
     ValueError, r"parameters contain NaN or inf"),
    ("fit-batch_size-beyond-int32", lambda: net().fit(X, Y, optim.SGD(lr=0.1), batch_size=2**31, progress=False),
     ValueError, r"batch_size must be at most 2\*\*31-1, got 2147483648"),
    ("set_num_threads-bool", lambda: sdagd.set_num_threads(True), TypeError,
     r"set_num_threads: n must be an integer from 1 to 256, got True"),
    ("set_num_threads-float", lambda: sdagd.set_num_threads(2.0), TypeError, r"must be an integer.*got 2.0"),
    ("set_num_threads-beyond-C-long", lambda: sdagd.set_num_threads(2**70), ValueError,
     r"set_num_threads: n must be an integer from 1 to 256, got 1180591620717411303424"),
    ("load_state_dict-nan", lambda: optim.Adam().load_state_dict(
        {"config": optim.Adam().config(), "state": np.full((2, 95), np.nan), "step": 1}, net()),
     ValueError, r"saved optimizer state contains NaN or inf"),
    ("load_state_dict-step-fraction", lambda: optim.Adam().load_state_dict(
        {"config": optim.Adam().config(), "state": np.zeros((2, 95)), "step": 1.5}, net()),
     ValueError, r"saved optimizer step must be an integer >= 0, got 1.5"),
    ("load_state_dict-other-config",
     lambda: optim.SGD(lr=0.2).load_state_dict(optim.SGD(lr=0.1).state_dict(), net()),
     ValueError, r"saved optimizer state is for .*'lr': 0.1.*not for .*'lr': 0.2"),
]



def write_truncated_save(tmp_path):
    path = tmp_path / "net.npz"
    net().save(path)
    content = path.read_bytes()
    return garbage_file(tmp_path, content[: len(content) // 2])


def write_npz(tmp_path, **arrays):
    path = tmp_path / "other.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def meta(obj):
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def write_npy(tmp_path):
    path = tmp_path / "params.npy"
    np.save(path, np.zeros(95, np.float32))
    return path


def edited(**changes):
    """GOOD_META with top-level ``changes``; ``config`` entries merge into the good configuration,
    a value of None removes the entry."""
    out = json.loads(json.dumps(GOOD_META))
    for key, value in changes.items():
        target = out["config"] if key in GOOD_META["config"] or key == "colour" else out
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    return meta(out)


GOOD_PARAMS = np.zeros(95, np.float32)


GOOD_META = {"format": 1, "config": dict(sizes=SIZES, activation="sigmoid", output="sigmoid", loss="mse",
                                         init="xavier", seed=0, leaky_slope=0.01, device="cpu"),
             "epochs_trained": 0}

LOAD_CASES = [
    # (id, writer(tmp_path) -> path, message, marks)
    ("random-bytes", lambda p: garbage_file(p, bytes(range(256)) * 4), r"not a network saved by sdagd.MLP.save", ()),
    ("text", lambda p: garbage_file(p, b"hello, world\n"), r"not a network saved by sdagd.MLP.save", ()),
    ("npz-without-meta", lambda p: write_npz(p, params=np.zeros(3, np.float32)), r"not a network saved", ()),
    ("meta-not-json", lambda p: write_npz(p, meta=np.frombuffer(b"{oops", np.uint8), params=np.zeros(3, np.float32)),
     r"not a network saved", ()),
    ("format-99", lambda p: write_npz(p, meta=meta(dict(GOOD_META, format=99)), params=np.zeros(85, np.float32)),
     r"unsupported file format 99", ()),
    ("wrong-parameter-count", lambda p: write_npz(p, meta=meta(GOOD_META), params=np.zeros(7, np.float32)),
     r"params has shape \(7,\); the configuration \(sizes \[6, 5, 10\], 95 parameters\) needs shape \(95,\)", ()),
    ("empty-file", lambda p: garbage_file(p, b""), r"not a network saved by sdagd.MLP.save", ()),
    ("zip-magic-garbage", lambda p: garbage_file(p, b"PK\x03\x04" + bytes(100)), r"not a network saved", ()),
    ("truncated-save", write_truncated_save, r"not a network saved", ()),
    ("meta-json-list", lambda p: write_npz(p, meta=meta([1, 2]), params=np.zeros(95, np.float32)), r"not a network saved", ()),
    # A message that names the problem instead of Python's protocol or a contradiction.
    ("plain-npy", write_npy, r"params.npy: a single .npy array, not a network saved by sdagd.MLP.save", ()),
    ("params-2d", lambda p: write_npz(p, meta=meta(GOOD_META), params=np.zeros((1, 95), np.float32)),
     r"params has shape \(1, 95\); the configuration \(sizes \[6, 5, 10\], 95 parameters\) needs shape \(95,\)", ()),
    ("no-params", lambda p: write_npz(p, meta=meta(GOOD_META)), r"no params.npy in the archive", ()),
    # Hand-edited metadata: what is wrong, not a KeyError or int()'s complaint.
    ("epochs-string", lambda p: write_npz(p, meta=edited(epochs_trained="3"), params=GOOD_PARAMS),
     r"epochs_trained must be an integer >= 0, got '3'", ()),
    ("config-unknown-key", lambda p: write_npz(p, meta=edited(colour="red"), params=GOOD_PARAMS),
     r"invalid configuration .*unknown keys \['colour'\]", ()),
    ("config-without-sizes", lambda p: write_npz(p, meta=edited(sizes=None), params=GOOD_PARAMS),
     r"invalid configuration .*no sizes", ()),
    ("config-activation", lambda p: write_npz(p, meta=edited(activation="softplus"), params=GOOD_PARAMS),
     r"invalid configuration: invalid activation 'softplus'", ()),
    ("config-sizes-string", lambda p: write_npz(p, meta=edited(sizes="abc"), params=GOOD_PARAMS),
     r"invalid configuration: sizes must be a sequence of integers", ()),
    ("config-seed-fraction", lambda p: write_npz(p, meta=edited(seed=1.5), params=GOOD_PARAMS),
     r"invalid configuration: seed must be an integer", ()),
    ("format-true", lambda p: write_npz(p, meta=edited(format=True), params=GOOD_PARAMS),
     r"unsupported file format True", ()),
    ("meta-not-utf8", lambda p: write_npz(p, meta=np.frombuffer(b"\xff\xfe{}", np.uint8), params=GOOD_PARAMS),
     r"its metadata is not JSON", ()),
    ("meta-2d", lambda p: write_npz(p, meta=meta(GOOD_META)[None], params=GOOD_PARAMS),
     r"meta must be at most 1048576 bytes of JSON text", ()),
    # Garbage that used to be accepted (converted, truncated or loaded as is).
    ("params-strings", lambda p: write_npz(p, meta=meta(GOOD_META), params=np.array(["1.5"] * 95)),
     r"params holds <U3 values; it must hold float32", ()),
    ("params-bool", lambda p: write_npz(p, meta=meta(GOOD_META), params=np.ones(95, bool)),
     r"params holds bool values; it must hold float32", ()),
    ("params-complex", lambda p: write_npz(p, meta=meta(GOOD_META), params=np.ones(95, np.complex64)),
     r"params holds complex64 values; it must hold float32", ()),
    ("params-float64", lambda p: write_npz(p, meta=meta(GOOD_META), params=np.ones(95)),
     r"params holds float64 values; it must hold float32", ()),
    ("epochs-negative", lambda p: write_npz(p, meta=edited(epochs_trained=-1), params=GOOD_PARAMS),
     r"epochs_trained must be an integer >= 0, got -1", ()),
    ("epochs-fraction", lambda p: write_npz(p, meta=edited(epochs_trained=2.5), params=GOOD_PARAMS),
     r"epochs_trained must be an integer >= 0, got 2.5", ()),
    ("epochs-bool", lambda p: write_npz(p, meta=edited(epochs_trained=True), params=GOOD_PARAMS),
     r"epochs_trained must be an integer >= 0, got True", ()),
]

SGD_MOMENTUM = {"name": "SGD", "lr": 0.1, "momentum": 0.9}  # one state slab


def with_optimizer(record, state=None):
    """A good network file whose optimizer record is ``record`` (and state array ``state``)."""
    def write(tmp_path):
        arrays = dict(meta=meta(dict(GOOD_META, optimizer=record)), params=GOOD_PARAMS)
        if state is not None:
            arrays["optimizer_state"] = state
        return write_npz(tmp_path, **arrays)
    return write


OPTIMIZER_LOAD_CASES = [
    # (id, writer, message): the network loads, its optimizer does not
    ("no-step", with_optimizer({"config": SGD_MOMENTUM, "has_state": False}), r"damaged optimizer record"),
    ("step-negative", with_optimizer({"config": SGD_MOMENTUM, "step": -1, "has_state": False}),
     r"damaged optimizer record .*'step': integer >= 0"),
    ("config-string", with_optimizer({"config": "SGD", "step": 0, "has_state": False}), r"damaged optimizer record"),
    ("unknown", with_optimizer({"config": {"name": "Lion"}, "step": 0, "has_state": False}),
     r"invalid optimizer configuration: unknown optimizer 'Lion'"),
    ("hyperparameter", with_optimizer({"config": dict(SGD_MOMENTUM, lr="big"), "step": 0, "has_state": False}),
     r"invalid optimizer configuration: SGD: lr must be a number, got 'big'"),
    ("unknown-hyperparameter", with_optimizer({"config": dict(SGD_MOMENTUM, speed=2), "step": 0, "has_state": False}),
     r"invalid optimizer configuration: .*speed"),
    ("hessian_every-beyond-int32", with_optimizer({"config": {"name": "SDAGD", "radius": 0.3, "hessian_every": 2**70},
                                                   "step": 0, "has_state": False}),
     r"invalid optimizer configuration: SDAGD: invalid hessian_every"),
    ("state-missing", with_optimizer({"config": SGD_MOMENTUM, "step": 3, "has_state": True}),
     r"has_state=True, but the archive lacks optimizer_state.npy"),
    ("state-nan", with_optimizer({"config": SGD_MOMENTUM, "step": 3, "has_state": True},
                                 np.full((1, 95), np.nan, np.float32)), r"optimizer_state holds NaN or inf"),
    ("state-complex", with_optimizer({"config": SGD_MOMENTUM, "step": 3, "has_state": True},
                                     np.zeros((1, 95), np.complex64)), r"optimizer_state holds complex64 values"),
    ("state-many-slabs", with_optimizer({"config": SGD_MOMENTUM, "step": 3, "has_state": True},
                                        np.zeros((5, 95), np.float32)),
     r"optimizer_state has shape \(5, 95\); .* needs shape \(slabs <= 2, 95\)"),
    ("state-other-network", with_optimizer({"config": SGD_MOMENTUM, "step": 3, "has_state": True},
                                           np.zeros((1, 7), np.float32)),
     r"optimizer_state has shape \(1, 7\); .* needs shape \(1, 95\)"),
    ("state-wrong-slabs-for-kind", with_optimizer({"config": SGD_MOMENTUM, "step": 3, "has_state": True},
                                                  np.zeros((2, 95), np.float32)),
     r"invalid optimizer state: state must have shape \(1, 95\), got \(2, 95\)"),
]

MESSAGE_CASES = [
    # Consistency with lr (TypeError "SGD: lr must be a number, got ..."): non-numbers and
    # non-integer sizes name the parameter.
    pytest.param(lambda: optim.SGD(lr=0.1, momentum="high"), TypeError, r"momentum", id="SGD-momentum-string"),
    pytest.param(lambda: optim.Adam(betas=0.9), TypeError, r"betas", id="Adam-betas-scalar"),
    pytest.param(lambda: net(leaky_slope="steep"), TypeError, r"leaky_slope", id="leaky-slope-string"),
    pytest.param(lambda: sdagd.MLP([6, 2.5, 3]), TypeError, r"sizes", id="sizes-non-integer"),
]


@pytest.mark.parametrize("consumer,X_,y_,exc,msg", INPUT_CASES)
def test_bad_inputs(consumer, X_, y_, exc, msg):
    X_before, y_before = np.copy(X_), np.copy(y_)
    with pytest.raises(exc, match=msg):
        consumer(X_, y_)
    np.testing.assert_array_equal(X_, X_before)
    np.testing.assert_array_equal(y_, y_before)


@pytest.mark.parametrize("fn,exc,msg", [pytest.param(*c[1:], id=c[0]) for c in
                                        CONSTRUCTION_CASES + OPTIMIZER_CASES + USE_CASES])
def test_bad_arguments(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn()


@pytest.mark.parametrize("fn,exc,msg", MESSAGE_CASES)
def test_bad_arguments_name_the_parameter(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn()


@pytest.mark.parametrize("writer,msg", [pytest.param(w, m, id=i, marks=k) for i, w, m, k in LOAD_CASES])
def test_load_of_a_bad_file(tmp_path, writer, msg):
    path = writer(tmp_path)
    with pytest.raises(ValueError, match=msg) as info:
        sdagd.MLP.load(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=msg):
        sdagd.MLP.load(path, with_optimizer=True)


@pytest.mark.parametrize("writer,msg", [pytest.param(w, m, id=i) for i, w, m in OPTIMIZER_LOAD_CASES])
def test_load_of_a_bad_optimizer_record(tmp_path, writer, msg):
    path = writer(tmp_path)
    assert sdagd.MLP.load(path).n_params == 95  # the network alone is fine
    with pytest.raises(ValueError, match=msg) as info:
        sdagd.MLP.load(path, with_optimizer=True)
    assert str(path) in str(info.value)


def test_sizes_may_be_any_iterable():
    """A generator is read once: validating it used to consume it, leaving no widths."""
    m = sdagd.MLP(iter(SIZES))
    assert m.sizes == SIZES and m.n_params == 95
    assert sdagd.MLP(w for w in SIZES).sizes == SIZES


def test_subclasses_of_the_optimizers_work_and_save_as_their_kind(tmp_path):
    class FastSGD(optim.SGD):
        def __init__(self):
            super().__init__(lr=0.5, momentum=0.5)

    m, opt = net(), FastSGD()
    m.train_step(X, Y, opt)
    assert opt.name == "SGD" and opt.config() == {"name": "SGD", "lr": 0.5, "momentum": 0.5}
    m.save(tmp_path / "n.npz", optimizer=opt)
    loaded, opt2 = sdagd.MLP.load(tmp_path / "n.npz", with_optimizer=True)
    assert type(opt2) is optim.SGD and opt2.step_count == 1


def test_nan_validation_data_is_rejected_before_training():
    m = net()
    before = [a.copy() for pair in m.params for a in pair]
    X_val = with_nan(X)
    with pytest.raises(ValueError, match=r"NaN or inf") as info:
        m.fit(*data(40, seed=3), optim.SGD(lr=0.5), epochs=1, batch_size=10,
              validation_data=(X_val, Y), progress=False)
    after = [a for pair in m.params for a in pair]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "trained before rejecting X_val"
    assert "X_val" in str(info.value)


@pytest.mark.skipif(sdagd.device_available("cuda")[0], reason="a GPU is present (tests/test_cuda.py runs on it)")
def test_cuda_error_is_runtime_error_mentioning_cuda():
    with pytest.raises(RuntimeError, match=r"CUDA") as info:
        sdagd.MLP(SIZES, device="cuda")
    assert "device='cpu'" in str(info.value)  # and says what to do instead


def test_optimizer_is_usable_again_after_reset():
    opt = optim.SGD(lr=0.1)
    net().train_step(X, Y, opt)
    opt.reset()
    assert opt.step_count == 0
    net().train_step(X, Y, opt)  # a new network is fine after reset
    assert opt.step_count == 1


# ------------------------------------------------------------------------------ inputs untouched

def test_no_call_modifies_its_inputs():
    Xw, yw = data(40, seed=1)
    Xv, yv = data(10, seed=2)
    yw64 = yw.astype(np.int64)
    Xw64 = Xw.astype(np.float64)
    copies = [(a, a.copy()) for a in (Xw, yw, Xv, yv, yw64, Xw64)]
    m = net(activation="relu")
    params_in = [(W.copy(), b.copy()) for W, b in m.params]
    params_copy = [(W.copy(), b.copy()) for W, b in params_in]
    m.set_params(params_in)
    for X_ in (Xw, Xw64):
        m.forward(X_)
        m.predict(X_)
        m.evaluate(X_, yw)
        m.gradients(X_, yw64)
        m.hessian_diagonal(X_, yw)
        m.train_step(X_, yw, optim.SDAGD(radius=0.3))
        m.fit(X_, yw, optim.Adam(), epochs=2, batch_size=7, validation_data=(Xv, yv), progress=False)
    for a, before in copies:
        np.testing.assert_array_equal(a, before)
        assert a.dtype == before.dtype
    for (W, b), (W0, b0) in zip(params_in, params_copy):  # set_params copied, training left them alone
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


def test_params_are_copies():
    m = net()
    W, b = m.params[0]
    W[:] = 123.0
    b[:] = 7.0
    assert not np.any(m.params[0][0] == 123.0)
    np.testing.assert_array_equal(m.params[0][1], 0.0)
    _, g = m.gradients(X, Y)
    g[0][0][:] = 0.0  # the returned gradient is the caller's too
    assert np.any(m.gradients(X, Y)[1][0][0] != 0.0)


# ------------------------------------------------------------------------------ dtypes and layouts

def results(m, X_, y_):
    """Everything a network computes from (X, y), on a fresh copy of its parameters."""
    fresh = sdagd.MLP(**m.config)
    fresh.set_params(m.params)
    out = [fresh.forward(X_), fresh.predict(X_), np.array(fresh.evaluate(X_, y_))]
    loss, g = fresh.gradients(X_, y_)
    out += [np.array(loss)] + [a for pair in g for a in pair]
    out += [a for pair in fresh.hessian_diagonal(X_, y_) for a in pair]
    fresh.train_step(X_, y_, optim.SDAGD(radius=0.3))
    fresh.fit(X_, y_, optim.SGD(lr=0.1, momentum=0.5), epochs=1, batch_size=5, progress=False)
    out += [a for pair in fresh.params for a in pair]
    return out


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)  # the same float32 values: identical results


@pytest.fixture(scope="module")
def base():
    m = net(activation="tanh", seed=3)
    Xb, yb = data(30, seed=4)
    return m, Xb, yb, results(m, Xb, yb)


@pytest.mark.parametrize("dtype", [np.float64, np.longdouble])
def test_wider_float_inputs_equal_float32(base, dtype):
    m, Xb, yb, want = base
    assert_same(results(m, Xb.astype(dtype), yb), want)


def test_float64_values_are_rounded_to_float32():
    m = net()
    X64 = np.random.default_rng(5).standard_normal((9, 6))  # not representable in float32
    assert_same([m.forward(X64), np.array(m.evaluate(X64, Y[:1].repeat(9)))],
                [m.forward(X64.astype(np.float32)), np.array(m.evaluate(X64.astype(np.float32), Y[:1].repeat(9)))])


def test_float16_inputs_are_accepted():
    m = net()
    X16 = X.astype(np.float16)
    np.testing.assert_array_equal(m.forward(X16), m.forward(X16.astype(np.float32)))


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64])
def test_label_dtypes(base, label_dtype):
    m, Xb, yb, want = base
    assert_same(results(m, Xb, yb.astype(label_dtype)), want)


def layouts(Xb, yb):
    """Non-contiguous and Fortran-ordered views holding the same values as (Xb, yb)."""
    n, d = Xb.shape
    wide = np.zeros((n, 2 * d + 3), np.float32)
    wide[:, 3::2] = Xb  # every other column of a wider array
    tall = np.zeros((2 * n, d), np.float32)
    tall[::2] = Xb  # every other row
    rev = Xb[::-1].copy()[::-1]  # negative strides
    y2 = np.zeros(2 * n, yb.dtype)
    y2[::2] = yb
    F = np.asfortranarray(Xb)
    return {
        "fortran": (F, yb),
        "fortran-colon-slice": (F[:, ::1], yb),
        "strided-columns": (wide[:, 3::2], yb),
        "strided-rows-and-labels": (tall[::2], y2[::2]),
        "negative-strides": (rev, yb[::-1].copy()[::-1]),
        "transposed-view": (np.ascontiguousarray(Xb.T).T, yb),
    }


@pytest.mark.parametrize("layout", list(layouts(*data(2, seed=0))))
def test_non_contiguous_inputs_equal_contiguous(base, layout):
    m, Xb, yb, want = base
    X_, y_ = layouts(Xb, yb)[layout]
    assert not (X_.flags.c_contiguous and y_.flags.c_contiguous)
    np.testing.assert_array_equal(X_, Xb)
    assert_same(results(m, X_, y_), want)


def test_single_row_1d_input():
    m = net()
    np.testing.assert_array_equal(m.forward(X[0]), m.forward(X[:1]))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 6\)"):
        m.forward(X[0, :5])


# ------------------------------------------------------------------------------ divergence

def test_divergence_in_fit_names_epoch_and_optimizer():
    Xd, yd = data(200, seed=6)
    m = sdagd.MLP([6, 5, 3], activation="relu", output="linear", seed=0)
    with pytest.raises(sdagd.DivergenceError) as info:
        m.fit(Xd, yd % 3, optim.SGD(lr=1e6), epochs=5, batch_size=20, progress=False)
    msg = str(info.value)
    assert "epoch 1" in msg and "SGD" in msg and "lr=1000000.0" in msg
    assert re.search(r"step \d+", msg)
    assert isinstance(info.value, FloatingPointError)
    assert m.epochs_trained == 0  # the diverged epoch is not counted


def test_divergence_in_train_step_names_the_optimizer():
    Xd, yd = data(20, seed=7)
    m = sdagd.MLP([6, 5, 3], activation="relu", output="linear", seed=0)
    opt = optim.SGD(lr=1e6)
    with pytest.raises(sdagd.DivergenceError, match=r"SGD.*diverged"):
        for _ in range(50):
            m.train_step(Xd, yd % 3, opt)


def test_divergence_error_is_exported():
    assert issubclass(sdagd.DivergenceError, FloatingPointError)
    assert issubclass(sdagd.DivergenceError, sdagd._core.DivergenceError)



# ------------------------------------------------------------------------------ robustness

def test_seed_beyond_64_bits_is_rejected_not_wrapped():
    with pytest.raises(ValueError, match=r"seed must be an integer in"):
        net(seed=2**64)


def test_batch_size_larger_than_the_data_trains_one_batch():
    m = net()
    history = m.fit(X, Y, optim.SGD(lr=0.1), epochs=1, batch_size=2**31 - 1, progress=False)
    assert len(history) == 1 and m.epochs_trained == 1


def test_failed_buffer_growth_leaves_the_network_usable():
    """Work buffers for 100,000 rows of a 2**20-unit layer (400 GB each) cannot be had: the
    call raises MemoryError and the old buffers stay, so the network still predicts (a failed
    grow used to leave it without buffers, and the next forward crashed)."""
    wide = sdagd.MLP([6, 2**20, 3], seed=1)
    small = np.ones((4, 6), np.float32)
    before = wide.forward(small)
    with pytest.raises(MemoryError, match="out of memory"):
        wide.gradients(np.zeros((100_000, 6), np.float32), np.zeros(100_000, np.int64))
    np.testing.assert_array_equal(wide.forward(small), before)


def test_uninitialised_core_objects_raise_instead_of_crashing():
    n = sdagd._core.Net.__new__(sdagd._core.Net)
    with pytest.raises(RuntimeError, match="not initialised"):
        n.num_params
    with pytest.raises(RuntimeError, match="not initialised"):
        n.get_params()
    o = sdagd._core.Optimizer.__new__(sdagd._core.Optimizer)
    with pytest.raises(RuntimeError, match="not initialised"):
        o.get_state()


def test_failed_reinitialisation_keeps_the_old_network():
    core = sdagd._core
    codes = (core.HIDDEN_ACTIVATIONS["sigmoid"], core.OUTPUT_ACTIVATIONS["sigmoid"], core.LOSSES["mse"], 0.0)
    n = core.Net([2, 3], *codes, core.DEVICES["cpu"], 10)
    if not sdagd.device_available("cuda")[0]:
        with pytest.raises(RuntimeError, match="CUDA"):
            n.__init__([2, 3], *codes, core.DEVICES["cuda"], 10)
    assert n.num_params == 9
    o = core.Optimizer(n, core.OPTIMIZERS["SGD"], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        o.__init__(n, core.OPTIMIZERS["SGD"], lr=-1.0)
    assert o.get_state()[1] == 0
    with pytest.raises(RuntimeError, match="cannot re-initialise a network that optimizers"):
        n.__init__([2, 4], *codes, core.DEVICES["cpu"], 10)  # the optimizer lives in its memory
    assert n.num_params == 9
