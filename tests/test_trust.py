"""Trust, second pass (issue 16): inputs and situations a hostile probe found mishandled.

Each test names the defect it guards against; each failed before the fix. Grouped as the issue
is: data loss and damage (special files and links, checkpoints that cannot load, two runs into
one output), memory and hangs (decompressors, non-regular files, data changed during a fit),
wrong results accepted (float32 hyperparameters, findings without training, fit_many's state,
complex parameters, labels against the network, hyperparameters assigned after construction),
and messages that did not say what was wrong.
"""

import copy
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import sdagd
from sdagd import _core, _files, optim, paper
from sdagd.paper import report, reproduce
from sdagd.datasets import DatasetError, read_idx

SIZES = [6, 5, 3]


def data(rows=60, n_in=6, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((rows, n_in), dtype=np.float32), rng.integers(0, n_out, rows)


def trained(epochs=1):
    X, y = data()
    net, opt = sdagd.MLP(SIZES), optim.SGD(lr=0.5)
    net.fit(X, y, opt, epochs=epochs, batch_size=20, progress=False)
    return net, opt


# Children run from the tests' folder: from the clone's root, `python -c` would import the
# unbuilt source folder instead of the installed sdagd (as CI runs the tests).
CHILD_CWD = os.path.dirname(os.path.abspath(__file__))


def run_python(code, timeout=60):
    """``code`` in a child process (so that a hang or a crash fails the test, not the suite)."""
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"), cwd=CHILD_CWD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child did not finish within {timeout} s (it blocked)")
    return proc.returncode, proc.stdout + proc.stderr


# ---------------------------------------------------------------- 1. special files and links

def special_files(tmp_path):
    """Existing paths that are not regular files: a FIFO, a socket, a folder, and (as root) a
    character device with /dev/null's numbers, made here so that a failure cannot touch /dev."""
    made = {}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    made["FIFO"] = fifo
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    made["socket"] = sock_path
    folder = tmp_path / "folder"
    folder.mkdir()
    made["folder"] = folder
    null = os.stat("/dev/null")
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, null.st_rdev)
        made["device"] = tmp_path / "null"
    except (PermissionError, OSError):
        pass  # not root: no device to test on
    return made


def writers(net, opt):
    """Every writer of sdagd, as path -> write."""
    out = {
        "checkpoint": lambda p: net.save(p, optimizer=opt),
        "table": lambda p: _files.atomic_write_text(p, "| table |\n"),
        "record": lambda p: paper.records.append_record(p, {"key": "k", "config": {}, "status": "ok"}),
        "writable check": lambda p: _files.check_writable(p, append=True),
    }
    try:
        import matplotlib  # noqa: F401
        from sdagd.paper import plots

        record = {"config": {"depth": 1, "activation": "sigmoid", "optimizer": "SGD", "seed": 0},
                  "status": "ok", "history": {"epoch": [1], "train_error": [0.5], "grad_rms": [[0.1, 0.1]]}}
        out["figure"] = lambda p: plots.training_curves([record], "sigmoid", path=str(p) + ".png"
                                                        if not str(p).endswith(".png") else p)
    except ImportError:
        pass
    return out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and Unix sockets")
def test_every_writer_refuses_special_files_and_leaves_them_as_they_were(tmp_path):
    """save onto /dev/null as root replaced the device by a regular file (the atomic rename);
    every writer now refuses a path that exists and is not a regular file, before any work."""
    net, opt = trained()
    for kind, path in special_files(tmp_path).items():
        before = os.lstat(path)
        for name, write in writers(net, opt).items():
            if name == "figure":
                continue  # its path gets a suffix; checked below on a FIFO named .png
            with pytest.raises(OSError, match=str(path)) as info:
                write(path)
            assert ".tmp" not in str(info.value), (name, kind, info.value)
            after = os.lstat(path)
            assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), (name, kind)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_figure_is_not_written_over_a_fifo(tmp_path):
    pytest.importorskip("matplotlib")
    net, opt = trained()
    fifo = tmp_path / "fig.png"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        writers(net, opt)["figure"](fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_no_temporary_file_is_left_beside_special_files(tmp_path):
    net, opt = trained()
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="folder") as info:
        net.save(folder)
    assert ".tmp" not in str(info.value)  # it named the hidden temporary file
    assert os.listdir(tmp_path) == ["out"] and os.listdir(folder) == []


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    """Saving onto a symbolic link replaced the link by a file; now the target gets the file
    (atomically, in the target's folder) and the link stays a link."""
    net, opt = trained()
    target_dir = tmp_path / "elsewhere"
    target_dir.mkdir()
    target = target_dir / "net.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    net.save(link, optimizer=opt)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.array_equal(sdagd.MLP.load(target).params[0][0], net.params[0][0])
    assert sorted(os.listdir(target_dir)) == ["net.npz"]  # no temporary file left anywhere
    # a dangling link: the file it names is created
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(target_dir / "table.md")
    _files.atomic_write_text(dangling, "x\n")
    assert dangling.is_symlink() and (target_dir / "table.md").read_text() == "x\n"


def test_out_on_a_dangling_symlink_says_so(tmp_path):
    """--out on a dangling symlink said only "File exists"."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="symbolic link to .*missing, which does not exist"):
        _files.check_writable(link, folder=True)
    from sdagd.__main__ import main

    assert main(["reproduce", "--out", str(link), "--data", str(tmp_path)]) == 2


# ---------------------------------------------------------------- 2. checkpoints that cannot load

def test_epochs_trained_is_checked_when_set():
    """epochs_trained = -3, fit, save gave a file load refuses."""
    net, _ = trained()
    for bad in (-3, 2**63, 1.5, "2", True):
        with pytest.raises(ValueError, match="epochs_trained"):
            net.epochs_trained = bad
    assert net.epochs_trained == 1
    net.epochs_trained = np.int64(7)
    assert net.epochs_trained == 7 and type(net.epochs_trained) is int


def test_save_refuses_what_load_would_refuse(tmp_path):
    """One validation: a checkpoint that save writes always loads."""
    net, opt = trained()
    net._epochs_trained = -3  # past the setter, as a bug elsewhere could
    path = tmp_path / "net.npz"
    with pytest.raises(ValueError, match="cannot save.*epochs_trained.*load would refuse"):
        net.save(path, optimizer=opt)
    assert not path.exists()
    net._epochs_trained = 1
    net.save(path, optimizer=opt)
    loaded, _ = sdagd.MLP.load(path, with_optimizer=True)
    assert loaded.epochs_trained == 1


def test_the_step_counter_cannot_overflow(tmp_path):
    """A step count near 2**63 overflowed in C (undefined behaviour), went negative, and the
    next save could not be loaded: the core now refuses the step that would overflow."""
    X, y = data()
    net, opt = sdagd.MLP(SIZES), optim.SGD(lr=0.5, momentum=0.5)
    net.train_step(X, y, opt)
    state, _ = opt._core.get_state()
    opt._core.set_state(state, 2**63 - 2)
    net.train_step(X, y, opt)  # the last step that fits
    assert opt.step_count == 2**63 - 1
    before = net.params[0][0]
    with pytest.raises(ValueError, match="overflow"):
        net.train_step(X, y, opt)
    with pytest.raises(ValueError, match="overflow"):
        net.fit(X, y, opt, epochs=1, batch_size=20, progress=False)
    assert opt.step_count == 2**63 - 1 and np.array_equal(net.params[0][0], before)
    net.save(tmp_path / "n.npz", optimizer=opt)
    assert sdagd.MLP.load(tmp_path / "n.npz", with_optimizer=True)[1].step_count == 2**63 - 1
    # and the epoch counter, in fit and fit_many
    net.epochs_trained = 2**63 - 1
    with pytest.raises(ValueError, match="overflow"):
        net.fit(X, y, optim.SGD(lr=0.1), epochs=1, progress=False)
    with pytest.raises(ValueError, match="overflow"):
        sdagd.fit_many([net], [optim.SGD(lr=0.1)], X, y, epochs=1, progress=False)


# ---------------------------------------------------------------- 3. two runs into one output

def small_sweep(tmp_path, **kwargs):
    X, y = data(rows=120, n_in=784, n_out=10)
    args = dict(depths=(1,), activations=("relu",), optimizers={"SGD": optim.SGD(lr=0.1)}, seeds=(0,), epochs=1,
                width=8, data=((X, y), (X[:40], y[:40])), workers=0, progress=False,
                out=str(tmp_path / "runs.jsonl"))
    args.update(kwargs)
    return paper.sweep(**args)


def hold_lock_in_child(lock_path):
    """A child process holding ``lock_path`` as a running sweep would; returns it (kill it)."""
    code = textwrap.dedent(f"""
        import sys
        from sdagd import _files
        with _files.output_lock({str(lock_path)!r}, "x"):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=CHILD_CWD)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_sweep_into_the_same_results_file_stops_naming_the_first(tmp_path):
    """Two runs into one output both did all the work and wrote every record twice."""
    child = hold_lock_in_child(tmp_path / ".runs.jsonl.lock")
    try:
        with pytest.raises(_files.OutputInUseError, match=f"process {child.pid}"):
            small_sweep(tmp_path)
        assert not (tmp_path / "runs.jsonl").exists()  # no work done, nothing written
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert len(small_sweep(tmp_path)) == 1  # free again once the first run ends


def test_a_second_reproduce_into_the_same_folder_stops(tmp_path):
    child = hold_lock_in_child(tmp_path / ".sdagd-reproduce.lock")
    try:
        with pytest.raises(_files.OutputInUseError, match=f"output folder {tmp_path}.*process {child.pid}"):
            reproduce.run(str(tmp_path), data=(data(60, 784, 10), data(20, 784, 10)), progress=False,
                          figures=False, workers=0)
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def test_duplicate_seeds_are_refused(tmp_path):
    """--seeds 0,0 ran everything twice and Table I showed "± 0.00" as if for two seeds."""
    for grid in (dict(seeds=(0, 0)), dict(depths=(1, 1)), dict(activations=("relu", "relu"))):
        with pytest.raises(ValueError, match="more than once"):
            small_sweep(tmp_path, **grid)
    from sdagd.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["reproduce", "--seeds", "0,0"])
    assert info.value.code == 2


def test_duplicate_records_are_counted_once(tmp_path):
    """load_results and Table I averaged the duplicates a second run appended."""
    records = small_sweep(tmp_path)
    path = tmp_path / "runs.jsonl"
    line = path.read_text().splitlines()[0]
    path.write_text("\n".join([line] * 20) + "\n")
    assert len(paper.load_records(path)) == 1
    table = report.table1_markdown(records * 20)
    assert "±" not in table  # one run: a mean, no spread
    _, _, by_cell, _ = report.table1_rows(records * 20)
    assert [len(v) for v in by_cell.values()] == [1]


# ---------------------------------------------------------------- 4. decompressors

@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_members_other_than_stored_or_deflate_are_refused(tmp_path, method):
    """A 2 KB bz2 member inflated to 2 GB: the size bound holds only for deflate."""
    net, _ = trained()
    good = tmp_path / "good.npz"
    net.save(good)
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w", compression=method) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(ValueError, match=f"compressed with method {method}; only stored and deflate"):
        sdagd.MLP.load(bad)


# ---------------------------------------------------------------- 5. non-regular files

@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_load_of_a_device_is_refused_before_reading(device):
    rc, out = run_python(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        import sdagd
        try:
            sdagd.MLP.load({device!r})
        except OSError as exc:
            print("refused:", exc)
    """)
    assert rc == 0 and f"refused: {device}: it is a device, not a regular file" in out, out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_load_and_read_idx_of_a_fifo_do_not_block(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    rc, out = run_python(f"""
        import sdagd
        from sdagd.datasets import read_idx
        for read in (sdagd.MLP.load, read_idx):
            try:
                read({str(fifo)!r})
            except OSError as exc:
                print("refused:", exc)
    """, timeout=30)
    assert rc == 0 and out.count("it is a FIFO (named pipe), not a regular") == 2, out


def test_an_idx_header_with_too_many_dimensions_names_the_file(tmp_path):
    """255 dimensions gave NumPy's "maximum supported dimension" without the file name."""
    path = tmp_path / "images"
    path.write_bytes(bytes([0, 0, 8, 255]) + (1).to_bytes(4, "big") * 255 + b"x")
    with pytest.raises(DatasetError, match=f"{path}: IDX header declares 255 dimensions"):
        read_idx(path)


# ---------------------------------------------------------------- 6. data changed during a fit

def test_data_changed_during_a_fit_does_not_reach_it():
    """The core read X in place with the GIL released: NaN written into it between epochs (or
    by another thread) ended as a divergence "try a smaller lr". The data set is now copied once
    per fit into the core; the fit equals one on the unchanged data."""
    X, y = data()
    reference = sdagd.MLP(SIZES)
    reference.fit(X.copy(), y.copy(), optim.SGD(lr=0.5), epochs=3, batch_size=20, progress=False)

    def vandal(record):
        X[:] = np.nan
        y[:] = 2**20  # labels far beyond the 3 outputs

    net = sdagd.MLP(SIZES)
    net.fit(X, y, optim.SGD(lr=0.5), epochs=3, batch_size=20, progress=vandal)
    for (W, b), (W_ref, b_ref) in zip(net.params, reference.params):
        assert np.array_equal(W, W_ref) and np.array_equal(b, b_ref)


def test_nan_in_the_data_is_named_as_bad_data_not_divergence():
    X, y = data()
    X[5, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf") as info:
        sdagd.MLP(SIZES).fit(X, y, optim.SGD(lr=0.5), epochs=1, progress=False)
    assert not isinstance(info.value, FloatingPointError) and "lr" not in str(info.value)
    # the core's own check, on its copy
    good_X, good_y = data()
    net = sdagd.MLP(SIZES)
    with pytest.raises(ValueError, match="NaN"):
        _core.Dataset(net._net, X, good_y.astype(np.int32))


def test_a_memory_mapped_input_truncated_during_fit_does_not_kill_the_process(tmp_path):
    """The core read the mapping in place: truncating the file during fit raised SIGBUS."""
    path = tmp_path / "X.f32"
    rc, out = run_python(f"""
        import os, numpy as np, sdagd
        rng = np.random.default_rng(0)
        rng.random((4000, 64), dtype=np.float32).tofile({str(path)!r})
        X = np.memmap({str(path)!r}, dtype=np.float32, mode="r", shape=(4000, 64))
        y = rng.integers(0, 10, 4000)
        def truncate(record):
            os.truncate({str(path)!r}, 0)
        net = sdagd.MLP([64, 32, 10])
        history = net.fit(X, y, sdagd.optim.SGD(lr=0.5), epochs=2, progress=truncate)
        print("trained", len(history))
    """)
    assert rc == 0 and "trained 2" in out, (rc, out)


# ---------------------------------------------------------------- 7. float32 hyperparameters

@pytest.mark.parametrize("make", [
    lambda: optim.Adam(eps=1e-46), lambda: optim.AdaGrad(eps=1e-46), lambda: optim.AdaDelta(eps=1e-46),
    lambda: optim.SDAGD(radius=0.3, eps=1e-46), lambda: optim.SDLM(lr=0.1, mu=1e-46),
    lambda: optim.SGD(lr=1e-46), lambda: optim.SGD(lr=1e39), lambda: optim.SDAGD(radius=1e39),
    lambda: optim.SGD(lr=0.1, momentum=1 - 1e-9), lambda: optim.Adam(betas=(0.9, 1 - 1e-10)),
    lambda: optim.AdaDelta(rho=1 - 1e-9), lambda: optim.SDLM(lr=0.1, mu=1.0, gamma=1e-46),
    lambda: optim.SDAGD(radius=0.3, average=1e-46),
])
def test_hyperparameters_are_checked_in_float32(make):
    """eps = 1e-46 rounds to 0 in float32 and gave NaN at step 1, blamed on the lr."""
    with pytest.raises(ValueError, match="float32"):
        make()


def test_float32_edge_values_that_hold_are_accepted():
    X, y = data()
    for opt in (optim.Adam(eps=1e-30), optim.SGD(lr=0.1, momentum=0.9999999)):
        sdagd.MLP(SIZES).fit(X, y, opt, epochs=1, progress=False)


# ---------------------------------------------------------------- 8. findings without training

def finding_records(epochs, train_limit):
    records = []
    for depth in (4, 5):
        for label, error in (("SGD", 0.9), ("SDAGD-layer", 0.1)):
            records.append({"config": {"depth": depth, "activation": "sigmoid", "optimizer": label, "seed": 0,
                                       "epochs": epochs, "train_limit": train_limit},
                            "status": "ok", "final_error": error})
    return records


@pytest.mark.parametrize("epochs,train_limit", [(0, None), (3, 1), (1, 300)])
def test_findings_are_not_checked_on_runs_that_did_not_train(epochs, train_limit):
    """--epochs 0 or --train-limit 1 reported finding 1 ("stuck near chance: the vanishing
    gradient") for networks that never trained."""
    lines = reproduce.findings(finding_records(epochs, train_limit))
    assert len(lines) == 2
    for line in lines:
        assert "not checked" in line and "vanishing gradient" not in line and "(trained)" not in line


def test_findings_are_checked_on_a_run_that_trained():
    lines = reproduce.findings(finding_records(3, None))
    assert "the vanishing gradient" in lines[0] and "(trained)" in lines[1]
    assert "not checked" in reproduce.findings(finding_records(3, None), train_images=500)[0]


# ---------------------------------------------------------------- 9. fit_many's state

def test_fit_many_keeps_every_network_consistent_when_the_callback_raises():
    """A progress callback raising after network 0's epoch left network 1 trained an epoch
    with epochs_trained 0."""
    X, y = data()
    nets = [sdagd.MLP(SIZES, seed=s) for s in (0, 1)]
    opts = [optim.SGD(lr=0.5), optim.SGD(lr=0.5)]

    def fail(k, record):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        sdagd.fit_many(nets, opts, X, y, epochs=2, batch_size=20, progress=fail)
    assert [n.epochs_trained for n in nets] == [1, 1]
    assert [o.step_count for o in opts] == [3, 3]


def test_a_rejected_fit_many_leaves_the_optimizers_unbound():
    X, y = data()
    nets = [sdagd.MLP(SIZES, seed=s) for s in (0, 1)]
    opts = [optim.SDAGD(radius=0.3), optim.SDAGD(radius=0.3, hessian_every=2)]  # cannot share a pass
    with pytest.raises(ValueError):
        sdagd.fit_many(nets, opts, X, y, epochs=1, progress=False)
    assert all(o._core is None for o in opts)
    bad_X = X.copy()
    bad_X[0, 0] = np.nan
    opts = [optim.SGD(lr=0.5), optim.SGD(lr=0.5)]
    with pytest.raises(ValueError, match="NaN"):
        sdagd.fit_many(nets, opts, bad_X, y, epochs=1, progress=False)
    assert all(o._core is None for o in opts)
    # fit too: a rejected call leaves the optimizer free for another network
    opt = optim.SGD(lr=0.5)
    with pytest.raises(ValueError, match="NaN"):
        nets[0].fit(bad_X, y, opt, epochs=1, progress=False)
    nets[1].fit(X, y, opt, epochs=1, progress=False)


def test_fit_many_takes_numpy_integer_seeds_as_fit_does():
    X, y = data()
    nets = [sdagd.MLP(SIZES, seed=s) for s in (0, 1)]
    alone = [sdagd.MLP(SIZES, seed=s) for s in (0, 1)]
    sdagd.fit_many(nets, [optim.SGD(lr=0.5) for _ in nets], X, y, epochs=1, batch_size=20,
                   seeds=[np.int64(5), np.uint32(6)], progress=False)
    for net, seed in zip(alone, (5, 6)):
        net.fit(X, y, optim.SGD(lr=0.5), epochs=1, batch_size=20, seed=np.int64(seed), progress=False)
    for a, b in zip(nets, alone):
        assert np.array_equal(a.params[0][0], b.params[0][0])


# ---------------------------------------------------------------- 10. set_params

def test_set_params_refuses_complex_arrays():
    """The imaginary part was dropped with a warning."""
    net = sdagd.MLP(SIZES)
    params = [(W.astype(np.complex64) + 1j, b) for W, b in net.params]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="real numbers.*complex"):
            net.set_params(params)


def test_set_params_says_a_value_overflows_float32():
    """1e300 in float64 was reported as "NaN or inf"."""
    net = sdagd.MLP(SIZES)
    params = [(W.astype(np.float64), b) for W, b in net.params]
    params[1][0][2, 1] = 1e300
    with pytest.raises(ValueError, match=r"layer 1: W holds 1e\+300 at flat index 11, which overflows float32"):
        net.set_params(params)


# ---------------------------------------------------------------- 11. labels against the network

def test_the_core_checks_labels_against_the_network_it_trains():
    """A Dataset made with a 10-output network, used with a 3-output one: labels up to 9
    reached the core unchecked (out-of-bounds access)."""
    X, y = data(n_out=10)
    y[0] = 9
    ten, three = sdagd.MLP([6, 5, 10]), sdagd.MLP([6, 5, 3])
    ds = _core.Dataset(ten._net, X, y.astype(np.int32))
    opt = optim.SGD(lr=0.5)._bind(three._net)
    with pytest.raises(ValueError, match="label 9; networks with 3 outputs"):
        _core.Trainer([three._net], [opt]).epoch(ds, 20, [0], [0], [False])
    with pytest.raises(ValueError, match="label 9; a network with 3 outputs"):
        three._net.evaluate_dataset(ds)
    assert np.all(np.isfinite(three._net.get_params()))


# ---------------------------------------------------------------- 12. hyperparameters assigned

def test_an_assigned_lr_takes_effect_at_the_next_step():
    """o = SGD(lr=0.5); o.lr = 0.1 trained with 0.5."""
    X, y = data()
    net, opt = sdagd.MLP(SIZES), optim.SGD(lr=0.5, momentum=0.5)
    net.train_step(X, y, opt)
    twin, twin_opt = sdagd.MLP(SIZES), optim.SGD(lr=0.5, momentum=0.5)
    twin.train_step(X, y, twin_opt)
    opt.lr = 0.1
    assert opt.lr == 0.1 and opt.hyperparameters["lr"] == 0.1 and opt.config()["lr"] == 0.1
    net.train_step(X, y, opt)
    # the reference: the same state and step count, in an optimizer made with lr 0.1
    ref_opt = optim.SGD(lr=0.1, momentum=0.5)
    ref_opt.load_state_dict(dict(twin_opt.state_dict(), config=ref_opt.config()), twin)
    twin.train_step(X, y, ref_opt)
    assert opt.step_count == 2
    for (W, b), (W_ref, b_ref) in zip(net.params, twin.params):
        assert np.array_equal(W, W_ref) and np.array_equal(b, b_ref)


def test_an_lr_changed_between_epochs_applies_from_the_next_epoch():
    X, y = data()
    net, opt = sdagd.MLP(SIZES), optim.SGD(lr=0.5)

    def decay(record):
        opt.lr = opt.lr / 10

    net.fit(X, y, opt, epochs=2, batch_size=20, progress=decay)
    ref = sdagd.MLP(SIZES)
    ref.fit(X, y, optim.SGD(lr=0.5), epochs=1, batch_size=20, progress=False)
    ref.fit(X, y, optim.SGD(lr=0.05), epochs=1, batch_size=20, progress=False)
    assert np.array_equal(net.params[0][0], ref.params[0][0])
    # and in fit_many
    nets, opts = [sdagd.MLP(SIZES)], [optim.SGD(lr=0.5)]
    sdagd.fit_many(nets, opts, X, y, epochs=2, batch_size=20,
                   progress=lambda k, r: setattr(opts[k], "lr", opts[k].lr / 10))
    assert np.array_equal(nets[0].params[0][0], ref.params[0][0])


@pytest.mark.parametrize("make,name,bad", [
    (lambda: optim.SGD(lr=0.5), "lr", -1.0), (lambda: optim.SGD(lr=0.5), "momentum", 1.0),
    (lambda: optim.SDAGD(radius=0.3), "eps", 1e-46), (lambda: optim.SDAGD(radius=0.3), "norm", "l2"),
    (lambda: optim.Adam(), "betas", (0.9, 1.0)), (lambda: optim.SDLM(lr=0.1, mu=1.0), "gamma", 0.0),
    (lambda: optim.SDAGD(radius=1.0, schedule={"kind": "cosine", "epochs": 5, "radius_min": 0.5}), "radius", 0.1),
])
def test_an_assigned_hyperparameter_is_validated_like_the_constructors(make, name, bad):
    X, y = data()
    opt = make()
    sdagd.MLP(SIZES).train_step(X, y, opt)
    before = opt.config()
    with pytest.raises((ValueError, TypeError)):
        setattr(opt, name, bad)
    assert opt.config() == before  # unchanged


# ---------------------------------------------------------------- messages

def test_copy_deepcopy_and_pickle_give_independent_networks():
    """copy.deepcopy(net) said "cannot pickle 'sdagd._core.Net'"."""
    net, _ = trained(epochs=2)
    for other in (net.copy(), copy.deepcopy(net), copy.copy(net), pickle.loads(pickle.dumps(net))):
        assert other.config == net.config and other.epochs_trained == 2
        for (W, b), (W2, b2) in zip(net.params, other.params):
            assert np.array_equal(W, W2) and np.array_equal(b, b2)
        assert other._net is not net._net
        X, y = data()
        other.train_step(X, y, optim.SGD(lr=1.0))
        assert not np.array_equal(other.params[0][0], net.params[0][0])  # net untouched


def test_a_damaged_record_field_is_named_by_file_and_line(tmp_path):
    """"final_error": "x" gave "can't multiply sequence by non-int of type 'float'"."""
    records = small_sweep(tmp_path)
    path = tmp_path / "runs.jsonl"
    damaged = dict(records[0], key="other", final_error="x")
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(damaged) + "\n")
    with pytest.warns(UserWarning, match=r"runs.jsonl, line 2: field 'final_error' of an ok record is 'x'"):
        loaded = paper.load_records(path)
    assert len(loaded) == 1
    report.table1_markdown(loaded)


def test_reproduce_full_with_zero_epochs_says_so(tmp_path):
    """It named a cosine schedule's "epochs must be an integer in [1, 2**31)"."""
    with pytest.raises(ValueError, match="the full protocol needs epochs >= 1"):
        reproduce.run(str(tmp_path), protocol="full", epochs=0, data=(data(60, 784, 10), data(20, 784, 10)))


def test_the_reproduce_banner_gives_the_images_used(tmp_path, monkeypatch, capsys):
    """The banner said "all 60,000 training images" whatever the data or --train-limit."""
    class Stop(Exception):
        pass

    def stop(**kwargs):
        raise Stop

    monkeypatch.setattr(reproduce, "sweep", stop)
    small = (data(500, 784, 10), data(20, 784, 10))
    for limit, shown in ((None, "500 training images"), (10**6, "500 training images"),
                         (120, "120 training images")):
        with pytest.raises(Stop):
            reproduce.run(str(tmp_path / str(limit)), data=small, train_limit=limit, progress=False)
        err = capsys.readouterr().err
        assert shown in err and "60,000" not in err


def test_the_cli_findings_header_gives_the_run_s_epochs_and_seeds(tmp_path, monkeypatch, capsys):
    """The header said "3 epochs, 1 seed" whatever was asked."""
    from sdagd import __main__ as cli, datasets

    monkeypatch.setattr(datasets, "load_mnist", lambda path=None, **kw: None)
    monkeypatch.setattr(reproduce, "run", lambda out, **kw: {"ok_runs": 1, "table": "|t|", "findings": ["1. x"]})
    assert cli.main(["reproduce", "--epochs", "5", "--seeds", "0,1", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "(5 epoch(s), 2 seed(s)" in out and "3 epochs" not in out


def test_train_on_cuda_without_a_gpu_fails_before_loading_data(tmp_path, capsys):
    """It loaded MNIST, then printed a traceback."""
    if sdagd.device_available("cuda")[0]:
        pytest.skip("a GPU is usable here")
    from sdagd.__main__ import main

    assert main(["train", "--device", "cuda", "--data", str(tmp_path / "no-data-here")]) == 2
    err = capsys.readouterr().err
    assert "--device cuda cannot be used" in err and "Traceback" not in err and "MNIST" not in err
