"""The conveniences users expect: predict_proba, score, Evaluation.accuracy; image-shaped inputs
and one-hot labels; fit callbacks (early stopping, checkpoints, a raising callback keeping the
epochs done); `sdagd train` with every optimizer, --version, the history file and Ctrl-C;
History.to_frame and the version in records; progress within epochs only on a terminal; the
packaging (LICENSE, py.typed, one version, CHANGELOG, the notebooks extra).

References are independent of the code under test: the float64 oracle (tests/reference.py) for
probabilities, NumPy for accuracies, a second network trained the plain way for callbacks.
"""
import importlib.metadata
import inspect
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

import sdagd
from sdagd import _core
from sdagd.callbacks import Callback, Checkpoint, EarlyStopping
from sdagd.mlp import _as_inputs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from test_cli import write_fake_mnist  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def data(n=120, n_in=16, n_out=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in), dtype=np.float32), rng.integers(0, n_out, n)


# -- predict_proba, score, accuracy -----------------------------------------------------------

def test_predict_proba_of_a_softmax_network_is_the_oracles_softmax():
    net = sdagd.MLP([16, 10, 4], activation="tanh", output="softmax", loss="ce", seed=1)
    X, _ = data()
    proba = net.predict_proba(X)
    expected = ref.forward(net.params, X, hidden="tanh", output="softmax")[-1][1]
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)


def test_predict_proba_of_a_sigmoid_network_normalises_the_outputs():
    net = sdagd.MLP([16, 10, 4], seed=2)
    X, _ = data()
    Y = ref.forward(net.params, X, hidden="sigmoid", output="sigmoid")[-1][1]
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba, Y / Y.sum(axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_array_equal(np.argmax(proba, axis=1), net.predict(X))


def test_predict_proba_refuses_a_linear_output():
    net = sdagd.MLP([16, 4], output="linear")
    with pytest.raises(ValueError, match="output='linear' gives scores"):
        net.predict_proba(data()[0])


def test_score_and_accuracy_count_right_answers():
    net = sdagd.MLP([16, 10, 4], seed=3)
    X, y = data()
    right = np.mean(np.argmax(ref.forward(net.params, X)[-1][1], axis=1) == y)
    assert net.score(X, y) == pytest.approx(right, abs=1e-12)
    result = net.evaluate(X, y)
    assert result.accuracy == pytest.approx(right, abs=1e-12)
    loss, error = result  # still a pair
    assert error == pytest.approx(1 - right, abs=1e-12)


# -- input shapes and label forms -------------------------------------------------------------

def test_image_shaped_inputs_are_flattened_without_a_copy():
    rng = np.random.default_rng(4)
    images = rng.random((10, 28, 28), dtype=np.float32)
    for X in (images, images.reshape(10, 1, 28, 28)):
        flat = _as_inputs(X, 784)
        assert flat.shape == (10, 784) and np.shares_memory(flat, images)
    net = sdagd.MLP([784, 12, 10], seed=0)
    expected = net.forward(images.reshape(10, 784))
    np.testing.assert_array_equal(net.forward(images), expected)
    np.testing.assert_array_equal(net.forward(images[:, None]), expected)
    # Non-contiguous images work too (with a copy), and wrong sizes are refused.
    np.testing.assert_array_equal(net.forward(np.asfortranarray(images)), expected)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 784\)"):
        net.forward(rng.random((10, 27, 28), dtype=np.float32))


def test_one_hot_labels_train_exactly_as_integer_labels():
    X, y = data(n=60)
    one_hot = np.eye(4, dtype=np.float32)[y]
    a, b = sdagd.MLP([16, 8, 4], seed=5), sdagd.MLP([16, 8, 4], seed=5)
    ha = a.fit(X, y, sdagd.optim.SDAGD(radius=0.3), epochs=2, batch_size=20, progress=False)
    hb = b.fit(X, one_hot, sdagd.optim.SDAGD(radius=0.3), epochs=2, batch_size=20, progress=False,
               validation_data=(X, one_hot.astype(np.int64)))
    assert ha.train_loss == hb.train_loss
    np.testing.assert_array_equal(np.concatenate([W.ravel() for W, _ in a.params]),
                                  np.concatenate([W.ravel() for W, _ in b.params]))
    assert b.evaluate(X, one_hot) == a.evaluate(X, y)
    assert b.score(X, one_hot) == a.score(X, y)


@pytest.mark.parametrize("labels,message", [
    (np.array([[1, 1, 0, 0]] + [[1, 0, 0, 0]] * 59), "row 0 is not one-hot"),
    (np.full((60, 4), 0.25), "row 0 is not one-hot"),
    (np.zeros((60, 3)), r"or one-hot, of shape \(n_samples, 4\)"),
])
def test_bad_one_hot_labels_are_refused(labels, message):
    X, _ = data(n=60)
    with pytest.raises(ValueError, match=message):
        sdagd.MLP([16, 4]).evaluate(X, labels)


# -- callbacks ---------------------------------------------------------------------------------

def split():
    X, y = data(n=200, seed=6)
    return (X[:150], y[:150]), (X[150:], y[150:])


def test_early_stopping_stops_where_the_monitor_stopped_improving_and_restores_the_best():
    (X, y), val = split()
    net = sdagd.MLP([16, 32, 4], seed=0)
    stop = EarlyStopping(monitor="val_loss", patience=2)
    history = net.fit(X, y, sdagd.optim.SGD(lr=3.0), epochs=200, batch_size=10, validation_data=val,
                      progress=False, callbacks=[stop])
    losses = history.val_loss
    best = int(np.argmin(losses))
    # An independent reading of the rule: the last epoch is the first with `patience` epochs
    # after the best without improvement.
    assert len(losses) < 200, "did not stop: the lr is meant to overfit this noise"
    assert len(losses) == best + 1 + 2 and all(v >= losses[best] for v in losses[best + 1:])
    assert "val_loss did not improve" in history.stopped and f"epoch {best + 1}" in history.stopped
    # The best epoch's parameters are back: a fresh net trained for best+1 epochs matches.
    twin = sdagd.MLP([16, 32, 4], seed=0)
    twin.fit(X, y, sdagd.optim.SGD(lr=3.0), epochs=best + 1, batch_size=10, progress=False)
    for (W, b), (W2, b2) in zip(net.params, twin.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_early_stopping_on_validation_needs_validation_data():
    X, y = data()
    net = sdagd.MLP([16, 4])
    with pytest.raises(ValueError, match="val_error is NaN in epoch 1 \\(pass validation_data") as info:
        net.fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=3, progress=False, callbacks=[EarlyStopping()])
    assert len(info.value.history) == 1 and net.history is info.value.history


@pytest.mark.parametrize("kwargs", [dict(monitor="accuracy"), dict(patience=0), dict(min_delta=-1)])
def test_early_stopping_checks_its_arguments(kwargs):
    with pytest.raises(ValueError, match="EarlyStopping"):
        EarlyStopping(**kwargs)


def test_checkpoint_every_n_epochs_saves_what_resuming_needs(tmp_path):
    X, y = data(n=80)
    net, opt = sdagd.MLP([16, 8, 4], seed=7), sdagd.optim.SDAGD(radius=0.3)
    checkpoint = Checkpoint(tmp_path / "run-{epoch}.npz", every=2)
    net.fit(X, y, opt, epochs=5, batch_size=16, progress=False, callbacks=[checkpoint])
    assert checkpoint.saved == [str(tmp_path / "run-2.npz"), str(tmp_path / "run-4.npz")]
    assert sorted(os.listdir(tmp_path)) == ["run-2.history.json", "run-2.npz", "run-4.history.json", "run-4.npz"]
    # Resuming from epoch 4 for one epoch gives exactly the uninterrupted run's epoch 5.
    resumed, resumed_opt = sdagd.MLP.load(tmp_path / "run-4.npz", with_optimizer=True)
    assert resumed.epochs_trained == 4
    resumed.fit(X, y, resumed_opt, epochs=1, batch_size=16, progress=False)
    for (W, b), (W2, b2) in zip(net.params, resumed.params):
        np.testing.assert_array_equal(W, W2)
    saved = json.loads((tmp_path / "run-4.history.json").read_text())
    assert saved["epoch"] == [1, 2, 3, 4] and saved["sdagd_version"] == sdagd.__version__
    assert sdagd.History.from_dict(saved).train_loss == net.history.train_loss[:4]


def test_a_raising_callback_keeps_the_history_of_the_epochs_done():
    X, y = data()
    seen = []

    def fail_at_three(net, record, optimizer):
        seen.append(record["epoch"])
        if record["epoch"] == 3:
            raise RuntimeError("callback failed")

    net = sdagd.MLP([16, 4], seed=1)
    with pytest.raises(RuntimeError, match="callback failed") as info:
        net.fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=10, progress=False, callbacks=fail_at_three)
    assert seen == [1, 2, 3] and net.epochs_trained == 3
    assert net.history.epoch == [1, 2, 3] and info.value.history is net.history
    assert all(math.isfinite(v) for v in net.history.train_loss)


def test_a_callback_returning_true_stops_and_callbacks_are_checked():
    X, y = data()

    class StopAtTwo(Callback):
        def on_epoch_end(self, net, record, optimizer):
            return record["epoch"] == 2

    history = sdagd.MLP([16, 4]).fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=9, progress=False,
                                     callbacks=[StopAtTwo()])
    assert len(history) == 2 and "after epoch 2" in history.stopped
    with pytest.raises(TypeError, match="callbacks must be"):
        sdagd.MLP([16, 4]).fit(X, y, sdagd.optim.SGD(lr=0.1), callbacks=[42])


# -- progress -------------------------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_within_a_long_epoch_only_on_a_terminal(monkeypatch):
    X, y = data(n=600)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain line, whether tqdm is installed or not
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    sdagd.MLP([16, 4]).fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=1, batch_size=10)
    assert "\repoch 1: 60/60 batches" in terminal.getvalue()
    log = io.StringIO()  # redirected: one line per epoch, no carriage return
    monkeypatch.setattr(sys, "stderr", log)
    sdagd.MLP([16, 4]).fit(X, y, sdagd.optim.SGD(lr=0.1), epochs=2, batch_size=10)
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 2


def test_the_cores_batch_callback_counts_batches_and_can_stop_an_epoch():
    X, y = data(n=95)
    net = sdagd.MLP([16, 4])
    opt = sdagd.optim.SGD(lr=0.1)
    core_opt = opt._bind(net._net)
    dataset = _core.Dataset(net._net, X, y.astype(np.int32))
    trainer = _core.Trainer([net._net], [core_opt])
    seen = []
    trainer.epoch(dataset, 10, [0], [0], [False], on_batch=seen.append)
    assert seen == list(range(1, 11))

    def stop(done):
        if done == 3:
            raise LookupError("stop here")

    with pytest.raises(LookupError, match="stop here"):
        trainer.epoch(dataset, 10, [0], [1], [False], on_batch=stop)
    assert opt.step_count == 13
    with pytest.raises(TypeError, match="on_batch must be callable"):
        trainer.epoch(dataset, 10, [0], [1], [False], on_batch=3)


# -- History --------------------------------------------------------------------------------------

def test_history_to_frame_has_one_row_per_epoch():
    pd = pytest.importorskip("pandas", reason="pandas is optional; History.to_frame needs it")
    X, y = data()
    history = sdagd.MLP([16, 8, 4]).fit(X, y, sdagd.optim.SDAGD(radius=0.3), epochs=3, progress=False)
    frame = history.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == [1, 2, 3]
    assert list(frame["train_loss"]) == history.train_loss
    assert frame["grad_rms"].iloc[2] == history.grad_rms[2]


def test_history_to_frame_without_pandas_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        sdagd.History().to_frame()


def test_every_run_record_carries_the_sdagd_version():
    from sdagd import paper
    record = paper.jobs.failed_record({"depth": 1})
    assert record["sdagd_version"] == sdagd.__version__
    assert sdagd.History().as_dict()["sdagd_version"] == sdagd.__version__


def test_every_run_record_names_its_machine():
    """A record read later says which processor and kernels made its numbers and timings."""
    from sdagd import paper
    machine = paper.jobs.failed_record({"depth": 1})["machine"]
    info = sdagd.cpu_info()
    assert machine["isa"] == info["isa"] and machine["blas"] == info["blas"]
    assert machine["threads"] == info["threads"] >= 1
    assert isinstance(machine["processor"], str) and machine["processor"].strip()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            assert machine["processor"].startswith(names[0])
    assert paper.jobs.failed_record({"depth": 1, "device": "cuda"})["machine"]["device"] == "cuda"


def test_a_machine_that_says_nothing_still_gets_its_record(monkeypatch):
    """No /proc/cpuinfo (not Linux), a cpuinfo without a model name (some ARM kernels), or a
    failing query: the record is written all the same (run_job never raises)."""
    import builtins

    from sdagd import _blas, paper

    real_open = builtins.open

    def no_cpuinfo(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_cpuinfo)
    assert _blas.cpu_fields() == {} and _blas._cpu_flags() == set()
    assert paper.jobs.failed_record({"depth": 1})["machine"]["processor"].strip()
    monkeypatch.setattr(builtins, "open", real_open)
    monkeypatch.setattr(_blas, "cpu_fields", lambda: {"Features": "fp asimd", "CPU implementer": "0x41"})
    assert paper.jobs.failed_record({"depth": 1})["machine"]["processor"].strip()

    def broken():
        raise RuntimeError("no answer")

    monkeypatch.setattr(sdagd, "cpu_info", broken)
    record = paper.jobs.failed_record({"depth": 1})
    assert record["machine"] == {"device": "cpu", "error": "RuntimeError: no answer"}


# -- sdagd train ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("conveniences") / "mnist")


SMALL = ["train", "--depth", "1", "--width", "8", "--epochs", "1", "--limit", "100"]


@pytest.mark.parametrize("options,expected", [
    (["--optimizer", "sgd", "--lr", "0.2", "--momentum", "0.5"], "SGD(lr=0.2, momentum=0.5)"),
    (["--optimizer", "sdagd", "--radius", "0.4", "--norm", "global", "--hessian-every", "2", "--max-step", "1",
      "--average", "0.5", "--eps", "1e-6"],
     "SDAGD(radius=0.4, eps=1e-06, norm='global', hessian_every=2, max_step=1.0, average=0.5)"),
    (["--optimizer", "sdlm", "--lr", "0.3", "--mu", "0.02", "--gamma", "0.1"], "SDLM(lr=0.3, mu=0.02, gamma=0.1)"),
    (["--optimizer", "adagrad", "--lr", "0.05"], "AdaGrad(lr=0.05, eps=1e-10)"),
    (["--optimizer", "adadelta", "--rho", "0.8"], "AdaDelta(lr=1.0, rho=0.8, eps=1e-06)"),
    (["--optimizer", "adam", "--beta1", "0.8"], "Adam(lr=0.001, betas=(0.8, 0.999), eps=1e-08)"),
    ([], "SDAGD(radius=0.3, eps=1e-08, norm='layer', hessian_every=1, max_step=None)"),
])
def test_train_takes_every_optimizer_with_its_hyperparameters(options, expected, fake_mnist, capsys):
    from sdagd.__main__ import main
    assert main(SMALL + ["--data", str(fake_mnist)] + options) == 0
    out = capsys.readouterr()
    assert f"with {expected}," in out.err and "test MCR" in out.out


def test_train_refuses_hyperparameters_of_another_optimizer(fake_mnist, capsys):
    from sdagd.__main__ import main
    assert main(SMALL + ["--data", str(fake_mnist), "--optimizer", "adam", "--radius", "1", "--mu", "2"]) == 2
    err = capsys.readouterr().err
    assert "--mu, --radius do not apply to --optimizer adam, which takes --lr, --beta1, --beta2, --eps" in err


def test_version_is_the_packages():
    proc = subprocess.run([sys.executable, "-m", "sdagd", "--version"], capture_output=True, text=True,
                          cwd="/", timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"sdagd {sdagd.__version__}"


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_ctrl_c_during_train_save_keeps_the_network_trained_so_far(fake_mnist, tmp_path):
    """SIGINT once the first epoch is reported: the network, its optimizer and the history of the
    epochs done are saved, and the exit code is 130."""
    save = tmp_path / "net.npz"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "sdagd", "train", "--depth", "3", "--width", "300", "--epochs",
                             "100000", "--data", str(fake_mnist), "--save", str(save), "--threads", "1"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if line.startswith("epoch   1"):
                break
            assert line, "".join(lines)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(lines) + rest
    assert "saved the network trained so far" in rest
    net, opt = sdagd.MLP.load(save, with_optimizer=True)
    assert net.epochs_trained >= 1 and opt.step_count >= 6  # 600 images, batches of 100
    history = json.loads((tmp_path / "net.history.json").read_text())
    assert history["epoch"][:1] == [1] and len(history["epoch"]) == net.epochs_trained


# -- packaging ----------------------------------------------------------------------------------

def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_version_number_read_from_the_package():
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sdagd._version.__version__"}
    namespace = {}
    exec((ROOT / "sdagd" / "_version.py").read_text(), namespace)
    assert sdagd.__version__ == namespace["__version__"] == importlib.metadata.version("sdagd")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {sdagd.__version__}" in changelog and "sdagd/_version.py" in changelog


def test_license_and_typing_marker():
    assert pyproject()["project"]["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (Path(sdagd.__file__).parent / "py.typed").exists()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["sdagd"]


def test_public_api_has_return_type_hints():
    import sdagd.callbacks
    import sdagd.datasets
    import sdagd.history
    import sdagd.optim
    missing = []
    for module in (sdagd, sdagd.optim, sdagd.history, sdagd.datasets, sdagd.callbacks):
        for name in module.__all__:
            obj = getattr(module, name)
            functions = [(name, obj)] if inspect.isfunction(obj) else [
                (f"{name}.{m}", f) for m, f in vars(obj).items() if inspect.isfunction(f) and not m.startswith("_")
            ] if inspect.isclass(obj) else []
            missing += [f"{module.__name__}.{n}" for n, f in functions
                        if inspect.signature(f).return_annotation is inspect.Signature.empty]
    assert not missing, f"public functions without a return type: {missing}"


def test_the_notebooks_extra_installs_jupyter_and_the_readme_says_how():
    extras = pyproject()["project"]["optional-dependencies"]
    assert any(d.startswith("jupyter") for d in extras["notebooks"])
    assert extras["torch"] == ["torch>=2.0"]
    assert "torch" not in " ".join(pyproject()["project"]["dependencies"])
    readme = (ROOT / "README.md").read_text()
    assert 'pip install ".[notebooks]"' in readme and "jupyter notebook notebooks/" in readme


def test_sweep_progress_uses_tqdm_only_on_a_terminal(monkeypatch):
    pytest.importorskip("tqdm", reason="tqdm (the progress extra) is not installed")
    from sdagd.paper.sweeps import _Progress
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    progress = _Progress(total=2, enabled=True, desc="sweep")
    assert progress.bar is None and log.getvalue() == "sweep: 2 runs\n"
    _Progress(total=1, enabled=True, desc="sweep")
    assert log.getvalue().endswith("sweep: 1 run\n")
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    progress = _Progress(total=2, enabled=True, desc="sweep")
    assert progress.bar is not None
    progress.close()


def test_sweep_progress_lines_say_how_long_the_rest_will_take(monkeypatch):
    from sdagd.paper import sweeps
    clock = iter([1000.0, 1000.0 + 50, 1000.0 + 2 * 3600 + 300])
    monkeypatch.setattr(sweeps.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(sweeps, "_describe", lambda record: "a run")
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    progress = sweeps._Progress(total=3, enabled=True, desc="sweep")
    progress.bar = None  # plain lines, as in a redirected log
    progress.update({})
    progress.update({})
    lines = log.getvalue().splitlines()
    # 50 s for the first run: two more at that pace take 100 s; 2 h 05 min for two: one more, 62.5 min
    assert lines[-2] == "[1/3] a run; 50 s so far, about 2 min to go", lines
    assert lines[-1] == "[2/3] a run; 2 h 05 min so far, about 1 h 02 min to go", lines
    assert [sweeps._duration(s) for s in (59.4, 61, 3599, 3 * 3600 + 5 * 60)] == ["59 s", "1 min", "1 h 00 min",
                                                                                 "3 h 05 min"]


def test_callback_examples_run():
    import doctest
    import sdagd.callbacks
    result = doctest.testmod(sdagd.callbacks)
    assert result.attempted > 0 and result.failed == 0


def test_without_pytorch_sdagd_imports_and_sdagd_torch_says_how_to_get_it(tmp_path):
    """A stand-in `torch` that fails to import, first on the path: the core is unaffected, the
    optional module names the extra, and the sdagd.torch tests skip with that reason."""
    (tmp_path / "torch.py").write_text("raise ModuleNotFoundError(\"No module named 'torch' (test stand-in)\")\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("SDAGD_REQUIRE_TORCH", None)
    code = ("import sdagd\n"
            "try:\n    import sdagd.torch\nexcept ImportError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "sdagd[torch]"' in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_torch.py")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    # Exit code 5: no test ran (the whole module skipped), which is what is wanted here.
    assert proc.returncode == 5 and "1 skipped" in proc.stdout and "the sdagd.torch tests need the torch extra" \
        in proc.stdout, proc.stdout + proc.stderr
