"""Every optimizer and activation of the core's descriptor tables (csrc/tables.h) is reachable:
constructible from Python, a choice of the CLI, trained by the CPU backend as the float64
reference (tests/reference.py) says, and (tests/test_cuda.py, which iterates the same table)
by the CUDA backend. A row added to the table without the rest fails here."""

import os
import sys

import numpy as np
import pytest

import sdagd
from sdagd import _core, optim
from sdagd.__main__ import _optimizer_from_args, build_parser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from table_cases import from_table, required_kwargs  # noqa: E402

OPTIMIZERS = [row["name"] for row in _core.optimizer_table()]
ACTIVATIONS = _core.activation_table()
SIZES = [5, 4, 3]


def test_tables_are_consistent():
    """Codes are the row order (the C enum is made from the same list), names are unique, each
    step-size slot is one of the optimizer's hyperparameters, and the defaults that exist lie
    within their ranges (the core rejects a configuration otherwise)."""
    rows = _core.optimizer_table()
    assert [r["code"] for r in rows] == list(range(len(rows)))
    assert len({r["name"] for r in rows}) == len(rows) and _core.OPTIMIZERS == {r["name"]: r["code"] for r in rows}
    for r in rows:
        assert r["step"] in [h["name"] for h in r["hyperparameters"]], r["name"]
        assert r["curvature"] in ("never", "always", "every") and 0 <= r["state_slabs"] <= 2
        _core.check_optimizer(r["code"], **required_kwargs(r["name"]))  # the defaults pass the core's check
    acts = _core.activation_table()
    assert [a["code"] for a in acts] == list(range(len(acts)))
    assert _core.HIDDEN_ACTIVATIONS == {a["name"]: a["code"] for a in acts if a["hidden"]}
    assert _core.OUTPUT_ACTIVATIONS == {a["name"]: a["code"] for a in acts if a["output"]}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_is_a_python_class_with_the_tables_hyperparameters(name):
    row = optim.TABLE[name]
    opt = from_table(name)
    assert opt.name == name and isinstance(opt, optim.Optimizer)
    assert opt.needs_hessian == (row["curvature"] != "never")
    assert opt.step_name == row["step"]
    assert optim.from_config(opt.config()).config() == opt.config()
    # the core's check runs on every configuration; a value outside a range is refused
    for h in row["hyperparameters"]:
        if h["type"] in ("real", "optional") and name != "Adam":  # Adam takes its betas as a pair
            with pytest.raises(ValueError, match=rf"{name}: invalid {h['name']}"):
                getattr(optim, name)(**dict(required_kwargs(name), **{h["name"]: -1.0}))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_is_a_cli_choice(name):
    args = build_parser().parse_args(["train", "--optimizer", name.lower()])
    opt = _optimizer_from_args(args)
    assert type(opt) is getattr(optim, name)


def _reference_of(opt):
    """The float64 reference optimizer of the same name and configuration."""
    config = opt.config()
    kwargs = {k: v for k, v in config.items() if k != "name"}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return getattr(ref, config["name"])(**kwargs)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_on_the_cpu_as_the_reference(name):
    """Three steps of train_step against the reference's, from the same parameters; the state
    slabs as the table says."""
    net = sdagd.MLP(SIZES, seed=1)
    opt = from_table(name)
    oracle = _reference_of(opt)
    theta = [(W.astype(np.float64), b.astype(np.float64)) for W, b in net.params]
    rng = np.random.default_rng(7)
    for _ in range(3):
        X = rng.standard_normal((8, SIZES[0])).astype(np.float32)
        y = rng.integers(0, SIZES[-1], 8)
        net.train_step(X, y, opt)
        h = ref.hessian_diagonal(theta, X, y) if opt.needs_hessian else None
        theta = oracle.step(theta, ref.gradients(theta, X, y), h)
    got = np.concatenate([np.r_[W.ravel(), b.ravel()] for W, b in net.params])
    want = np.concatenate([np.r_[W.ravel(), b.ravel()] for W, b in theta])
    # 3 float32 steps vs float64 (as tests/test_optimizers.py's lockstep tolerance), and the
    # step itself must be visible at that resolution
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))
    start = np.concatenate([np.r_[W.ravel(), b.ravel()] for W, b in sdagd.MLP(SIZES, seed=1).params])
    assert np.max(np.abs(want - start)) > 1e-3
    row = optim.TABLE[name]
    state = opt.state_dict()["state"]
    assert state.shape[0] in (0, row["state_slabs"]) and (state.shape[0] == row["state_slabs"] or name == "SGD")


@pytest.mark.parametrize("act", [a["name"] for a in ACTIVATIONS if a["hidden"]])
def test_every_hidden_activation_is_reachable(act):
    """Python, the CLI and the reference know it, and the core's gradient matches the reference's."""
    assert act in ref.HIDDEN_ACTIVATIONS
    assert build_parser().parse_args(["train", "--activation", act]).activation == act
    net = sdagd.MLP(SIZES, activation=act, seed=2)
    _gradient_matches(net, hidden=act, output="sigmoid", loss="mse")


@pytest.mark.parametrize("act", [a["name"] for a in ACTIVATIONS if a["output"]])
def test_every_output_activation_is_reachable(act):
    assert act in ref.OUTPUT_ACTIVATIONS
    assert build_parser().parse_args(["train", "--output", act]).output == act
    loss = "ce" if act == "softmax" else "mse"
    net = sdagd.MLP(SIZES, output=act, loss=loss, seed=3)
    _gradient_matches(net, hidden="sigmoid", output=act, loss=loss)


def _gradient_matches(net, **kw):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((6, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], 6)
    theta = [(W.astype(np.float64), b.astype(np.float64)) for W, b in net.params]
    want = ref.gradients(theta, X, y, **kw)
    got = net.gradients(X, y)[1]
    for (gW, gb), (wW, wb) in zip(got, want):
        # float32 backprop vs float64: 1e-4 relative to the largest entry
        scale = max(np.max(np.abs(wW)), np.max(np.abs(wb)))
        np.testing.assert_allclose(gW, wW, rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(gb, wb, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("diagnostic", ["saturation", "inactive"])
def test_diagnostic_kinds_come_from_the_table(diagnostic):
    """The activations the table marks for a diagnostic are those the core counts it for."""
    marked = [a["name"] for a in ACTIVATIONS if a["hidden"] and a["diagnostic"] == diagnostic]
    assert marked
    rng = np.random.default_rng(5)
    X = (10 * rng.standard_normal((40, SIZES[0]))).astype(np.float32)
    y = rng.integers(0, SIZES[-1], 40)
    for a in ACTIVATIONS:
        if not a["hidden"]:
            continue
        net = sdagd.MLP(SIZES, activation=a["name"], seed=0)
        history = net.fit(X, y, optim.SGD(lr=0.1), epochs=1, batch_size=40, progress=False)
        values = history["saturated" if diagnostic == "saturation" else "dead"][0]
        counted = all(v is not None for v in values)
        assert counted == (a["name"] in marked), (a["name"], values)
        if counted and diagnostic == "saturation":  # inputs of scale 10 saturate some units
            assert max(values) > 0, (a["name"], values)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_hand_written_classes_take_the_tables_hyperparameters(name):
    """A hand-written class (kept for its docs) takes exactly its row's hyperparameters, with the
    row's defaults, plus schedule (Adam: beta1 and beta2 as the pair betas), and each is an
    assignable attribute: a hyperparameter added to a row without its class fails here."""
    import inspect

    row = optim.TABLE[name]
    params = inspect.signature(getattr(optim, name)).parameters
    names = [h["name"] for h in row["hyperparameters"]]
    if name == "Adam":
        names = ["lr", "betas", "eps"]
    assert sorted(params) == sorted(names + ["schedule"])  # (SDAGD keeps schedule before its options)
    for h in row["hyperparameters"]:
        if h["name"] not in params:
            continue
        default = params[h["name"]].default
        if optim._required(h):
            assert default is inspect.Parameter.empty, h["name"]
        elif h["type"] == "choice":
            assert default == h["choices"].split(",")[int(h["default"])]
        elif h["type"] == "optional":
            assert default is None, h["name"]
        else:
            assert default == h["default"], h["name"]
    opt = from_table(name)
    for attribute in names:
        assert isinstance(getattr(type(opt), attribute), property), attribute


def test_the_core_checks_configurations_by_the_table():
    """The binding fills a configuration by the table's names and the core checks its ranges
    (Python checks the same ranges first, for messages in Python's terms)."""
    sgd, sdagd_code = _core.OPTIMIZERS["SGD"], _core.OPTIMIZERS["SDAGD"]
    with pytest.raises(ValueError, match=r"SGD: lr must be a positive finite number, got -1"):
        _core.check_optimizer(sgd, lr=-1.0)
    with pytest.raises(ValueError, match=r"SGD: momentum must be in \[0, 1\), got 1"):
        _core.check_optimizer(sgd, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"SDAGD: hessian_every must be an integer from 1 to 2147483647, got 0"):
        _core.check_optimizer(sdagd_code, radius=0.3, hessian_every=0)
    with pytest.raises(ValueError, match=r"the cosine schedule's lr_min must be in \[0, lr\]"):
        _core.check_optimizer(sgd, lr=0.1, schedule=_core.SCHEDULES["cosine"], schedule_epochs=3, step_min=0.5)
    with pytest.raises(TypeError, match=r"SGD has no hyperparameter 'radius'"):
        _core.check_optimizer(sgd, lr=0.1, radius=0.3)
    with pytest.raises(ValueError, match=r"unknown optimizer code 99"):
        _core.check_optimizer(99)
    assert _core.step_at(sgd, 1, lr=0.8, schedule=_core.SCHEDULES["step"], schedule_factor=0.5, schedule_every=1) == 0.4
