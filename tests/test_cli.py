"""The command line, end to end in subprocesses: ``python -m sdagd reproduce --quick`` on a
tiny fake MNIST directory (files, table, figures, resuming), ``python -m sdagd train``, and
the exit code and message for missing data.

The fake MNIST has 600 training and 200 test images; the loader checks checksums only for
files of the real sizes (60000 / 10000), so it loads them like the real thing.
"""

import csv
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

DEPTHS = (1, 2, 3, 4, 5)
COLUMNS = [(o, a) for a in ("sigmoid", "relu") for o in ("SGD", "SDAGD-layer")]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("fig3_sigmoid.png", "fig4_relu.png", "gradient_flow.png")


def write_fake_mnist(directory, n_train=600, n_test=200, seed=0):
    """MNIST-layout IDX files (plain, uncompressed) with random images; labels follow the
    brightest of the first ten pixels, so they are not pure noise."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = images.reshape(n, -1)[:, :10].argmax(axis=1).astype(np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">I3i", 0x0803, n, 28, 28) + images.tobytes())
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">Ii", 0x0801, n) + labels.tobytes())
    return directory


def run_cli(args, cwd, env_extra=None, timeout=600):
    env = dict(os.environ)
    env.pop("SDAGD_DATA", None)
    env.update({"MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1", "XDG_CACHE_HOME": str(cwd / "xdg-cache"),
                "PYTHONUNBUFFERED": "1"})
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "sdagd", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def fake_mnist(workdir):
    return write_fake_mnist(workdir / "mnist")


def quick_args(out, data):
    return ["reproduce", "--quick", "--out", out, "--data", data, "--train-limit", 300, "--epochs", 1,
            "--workers", 0, "--no-progress"]


@pytest.fixture(scope="module")
def quick(workdir, fake_mnist):
    """One quick reproduction; what it wrote is read at once (a later rerun rewrites some)."""
    out = workdir / "quick"
    proc = run_cli(quick_args(out, fake_mnist), cwd=workdir)
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()} if out.is_dir() else {}
    return proc, out, snapshot


@pytest.fixture(scope="module")
def rerun(quick, workdir, fake_mnist):
    _, out, _ = quick
    return run_cli(quick_args(out, fake_mnist), cwd=workdir)


def table_lines(text):
    return [line for line in text.splitlines() if line.startswith("|")]


# ------------------------------------------------------------------------------ reproduce

def test_quick_reproduce_exits_0_and_prints_table_i(quick):
    proc, out, snapshot = quick
    assert proc.returncode == 0, proc.stderr
    assert "QUICK" in proc.stderr
    assert "300 training images" in proc.stderr and "1 epoch(s)" in proc.stderr
    lines = table_lines(proc.stdout)
    assert len(lines) == 2 + len(DEPTHS)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["depth",
                      "SGD sigmoid", "paper SGD sigmoid", "SDAGD-layer sigmoid", "paper SDAGD sigmoid",
                      "SGD relu", "paper SGD relu", "SDAGD-layer relu", "paper SDAGD relu"]
    for depth, line in zip(DEPTHS, lines[2:]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == f"hl-{depth}"
        assert len(cells) == len(header)
        for c in cells[1:]:
            assert re.fullmatch(r"\d+\.\d\d( ± 0\.00)?", c), c  # one seed each: std 0
    assert "| hl-1 | " in proc.stdout and "10.73" in lines[2] and "| 2.34 |" in lines[6]
    # the printed table is the one written to table1.md
    assert snapshot["table1.md"].decode("utf-8").strip() == "\n".join(lines)
    # and the paper's two findings are checked on it, in words
    assert "The paper's two findings" in proc.stdout
    assert re.search(r"1\. SGD with sigmoid units at hl-4 and hl-5: test MCR \d+\.\d %, \d+\.\d %", proc.stdout)
    assert re.search(r"2\. SDAGD on the same networks: \d+\.\d %, \d+\.\d %", proc.stdout)


def has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_quick_reproduce_writes_its_files(quick):
    proc, out, snapshot = quick
    assert proc.returncode == 0, proc.stderr
    figures = FIGURES if has_matplotlib() else ()  # drawn only with the plot extra
    for name in ("runs.jsonl", "table1.md", "table1.csv", "protocol.json", *figures):
        assert name in snapshot, sorted(snapshot)
        assert len(snapshot[name]) > 0, name

    records = [json.loads(line) for line in snapshot["runs.jsonl"].decode().splitlines()]
    assert len(records) == len(DEPTHS) * len(COLUMNS)
    seen = {(r["config"]["depth"], r["config"]["optimizer"], r["config"]["activation"]) for r in records}
    assert seen == {(d, o, a) for d in DEPTHS for (o, a) in COLUMNS}
    for r in records:
        c = r["config"]
        assert r["status"] == "ok", r["error"]
        assert (c["train_limit"], c["epochs"], c["width"], c["batch_size"], c["seed"]) == (300, 1, 700, 100, 0)
        assert len(r["history"]["epoch"]) == 1
        assert len(r["history"]["grad_rms"][0]) == c["depth"] + 1

    rows = list(csv.DictReader(io.StringIO(snapshot["table1.csv"].decode())))
    assert [(int(r["depth"]), r["optimizer"], r["activation"]) for r in rows] == [
        (d, o, a) for d in DEPTHS for (o, a) in COLUMNS]
    assert all(r["runs"] == "1" and r["failed"] == "0" and r["paper_mcr"] for r in rows)

    protocol = json.loads(snapshot["protocol.json"])
    assert protocol["protocol"] == "quick"
    assert (protocol["epochs"], protocol["train_limit"], protocol["seeds"]) == (1, 300, [0])
    assert set(protocol["optimizers"]) == {"SGD", "SDAGD-layer"}
    # the lr and R of every cell, as the full protocol's one-epoch tuning chose them
    from sdagd.paper.reproduce import QUICK_CHOICES
    assert protocol["optimizers"]["SDAGD-layer"]["hl-5 sigmoid"]["radius"] == QUICK_CHOICES["SDAGD-layer"][(5, "sigmoid")]
    assert protocol["optimizers"]["SGD"]["hl-4 sigmoid"]["lr"] == QUICK_CHOICES["SGD"][(4, "sigmoid")]


def test_quick_reproduce_figures_are_png_images(quick):
    image = pytest.importorskip("matplotlib.image", reason="the figures need the plot extra (matplotlib)")
    proc, out, snapshot = quick
    assert proc.returncode == 0, proc.stderr
    for name in FIGURES:
        assert snapshot[name][:8] == PNG_SIGNATURE, name
    for name in FIGURES:
        pixels = image.imread(out / name)
        assert pixels.ndim == 3 and pixels.shape[0] >= 200 and pixels.shape[1] >= 400, (name, pixels.shape)
        assert float(np.std(pixels[..., :3])) > 0.01, name  # not a blank canvas


def test_rerun_resumes_with_the_same_table(quick, rerun):
    first, out, snapshot = quick
    assert first.returncode == 0 and rerun.returncode == 0, rerun.stderr
    assert "QUICK" in rerun.stderr
    # nothing was trained again: the results file is untouched
    assert (out / "runs.jsonl").read_bytes() == snapshot["runs.jsonl"]
    assert table_lines(rerun.stdout) == table_lines(first.stdout)
    assert (out / "table1.md").read_bytes() == snapshot["table1.md"]
    assert (out / "table1.csv").read_bytes() == snapshot["table1.csv"]


def test_rerun_with_no_progress_says_it_resumes(rerun):
    assert rerun.returncode == 0
    assert re.search(r"resum|already", rerun.stderr, re.IGNORECASE), rerun.stderr


def test_rerun_with_progress_says_it_resumes(quick, rerun, workdir, fake_mnist):
    _, out, snapshot = quick
    args = [a for a in quick_args(out, fake_mnist) if a != "--no-progress"]
    proc = run_cli(args, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(DEPTHS) * len(COLUMNS)} of {len(DEPTHS) * len(COLUMNS)} runs already in" in proc.stderr
    assert "resuming" in proc.stderr
    assert (out / "runs.jsonl").read_bytes() == snapshot["runs.jsonl"]


def test_one_epoch_figures_have_integer_epoch_ticks(quick):
    pytest.importorskip("matplotlib", reason="the figures need the plot extra (matplotlib)")
    from sdagd.paper import plots

    _, out, snapshot = quick
    records = [json.loads(line) for line in snapshot["runs.jsonl"].decode().splitlines()]
    for fig in (plots.training_curves(records, "sigmoid"), plots.gradient_flow(records, depth=5)):
        for ax in fig.axes:
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks


# ------------------------------------------------------------------------------ train

def test_train_prints_the_test_mcr(workdir, fake_mnist):
    proc = run_cli(["train", "--depth", 1, "--epochs", 1, "--limit", 300, "--data", fake_mnist], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"test MCR\s+(\d+\.\d\d) %", proc.stdout)
    assert m, proc.stdout
    assert 0.0 <= float(m.group(1)) <= 100.0
    assert "on 300 training images" in proc.stderr


# ------------------------------------------------------------------------------ missing data

@pytest.mark.parametrize("command", ["reproduce", "train"])
def test_missing_data_directory_exits_2(command, workdir):
    missing = workdir / "no-such-dir"
    out = workdir / f"out-{command}"
    args = [command, "--data", missing] + (["--out", out, "--workers", 0, "--no-progress"]
                                           if command == "reproduce" else ["--depth", 1])
    proc = run_cli(args, cwd=workdir)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "error:" in proc.stderr and "SDAGD_DATA" in proc.stderr
    assert str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # failed before any work


def test_missing_sdagd_data_directory_exits_2(workdir):
    missing = workdir / "not-here-either"
    proc = run_cli(["reproduce", "--quick", "--out", workdir / "out-env", "--no-progress"], cwd=workdir,
                   env_extra={"SDAGD_DATA": str(missing)})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "SDAGD_DATA" in proc.stderr and str(missing) in proc.stderr
    assert not (workdir / "out-env").exists()


@pytest.mark.parametrize("args", [["train", "--limit", "-5"], ["train", "--batch-size", "0"],
                                  ["reproduce", "--seeds", "a,b"], ["reproduce", "--workers", "-1"],
                                  ["reproduce", "--train-limit", "0"]], ids=" ".join)
def test_bad_numbers_are_usage_errors(args):
    from sdagd.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2


def test_bad_combination_is_a_clean_error(fake_mnist, capsys):
    from sdagd.__main__ import main

    rc = main(["train", "--depth", "1", "--width", "8", "--epochs", "1", "--output", "softmax", "--data",
               str(fake_mnist)])
    assert rc == 2
    assert "error: output 'softmax' with loss 'mse'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ outputs and inputs

def assert_one_line_error(proc, code, *fragments):
    """Exit ``code`` with a single "error: ..." line on stderr naming ``fragments``."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


TRAIN_SMALL = ["train", "--depth", 1, "--width", 8, "--epochs", 1, "--limit", 100]


@pytest.mark.parametrize("where", ["missing-folder", "a-folder", "read-only"])
def test_train_checks_save_before_training(where, workdir, fake_mnist, tmp_path, request):
    """--save into a folder that cannot take it used to fail after training, losing the model."""
    save = {"missing-folder": lambda: tmp_path / "no-such-folder" / "net.npz",
            "a-folder": lambda: tmp_path,
            "read-only": lambda: request.getfixturevalue("read_only_dir") / "net.npz"}[where]()
    proc = run_cli(TRAIN_SMALL + ["--data", fake_mnist, "--save", save], cwd=workdir)
    assert_one_line_error(proc, 2, str(save))
    assert "test MCR" not in proc.stdout  # nothing was trained


def test_train_saves_where_it_can(workdir, fake_mnist, tmp_path):
    proc = run_cli(TRAIN_SMALL + ["--data", fake_mnist, "--save", tmp_path / "net.npz"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["net.history.json", "net.npz"]


@pytest.fixture
def unreadable_mnist(tmp_path, fake_mnist):
    """A copy of the fake MNIST whose training images cannot be read: mode 000, or for root
    (who reads those anyway) a link to /proc/self/mem, a regular file whose first bytes give
    EIO."""
    folder = tmp_path / "mnist"
    shutil.copytree(fake_mnist, folder)
    target = folder / "train-images-idx3-ubyte"
    target.chmod(0)
    try:
        target.read_bytes()
    except OSError:
        return folder, target
    target.unlink()
    if not os.path.exists("/proc/self/mem"):
        pytest.skip("cannot make an unreadable file here")
    target.symlink_to("/proc/self/mem")
    return folder, target


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_unreadable_data_is_a_one_line_error(command, workdir, unreadable_mnist, tmp_path):
    folder, target = unreadable_mnist
    args = TRAIN_SMALL if command == "train" else ["reproduce", "--out", tmp_path / "out", "--workers", 0,
                                                   "--no-progress"]
    proc = run_cli(args + ["--data", folder], cwd=workdir)
    assert_one_line_error(proc, 2, str(target))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make_out", ["a-file", "under-a-file", "read-only"])
def test_reproduce_checks_its_output_folder_before_any_work(make_out, workdir, fake_mnist, tmp_path, request):
    """--out naming a file used to end in a FileExistsError traceback (after loading the data)."""
    (tmp_path / "results.txt").write_text("not a folder\n")
    out = {"a-file": lambda: tmp_path / "results.txt",
           "under-a-file": lambda: tmp_path / "results.txt" / "out",
           "read-only": lambda: request.getfixturevalue("read_only_dir") / "out"}[make_out]()
    # The data folder is missing too: the output is checked first, before the data is loaded.
    proc = run_cli(["reproduce", "--out", out, "--data", tmp_path / "no-mnist", "--workers", 0, "--no-progress"],
                   cwd=workdir)
    assert_one_line_error(proc, 2, str(out) if make_out != "under-a-file" else str(tmp_path / "results.txt"))
    assert (tmp_path / "results.txt").read_text() == "not a folder\n"


def test_reproduce_run_refuses_a_file_as_its_folder(tmp_path, fake_mnist):
    from sdagd.paper import reproduce

    (tmp_path / "out").write_text("")
    with pytest.raises(NotADirectoryError, match=r"out exists and is not a folder"):
        reproduce.run(tmp_path / "out", data=fake_mnist, workers=0, progress=False, figures=False)


def test_a_network_too_big_for_memory_is_a_one_line_error(workdir, fake_mnist):
    # 784-2**24-2**24-10: 2**48 weights, a petabyte.
    proc = run_cli(["train", "--depth", 2, "--width", 2**24, "--epochs", 1, "--limit", 10, "--data", fake_mnist],
                   cwd=workdir)
    assert_one_line_error(proc, 1, "out of memory")


@pytest.mark.parametrize("args", [["train", "--batch-size", "99999999999"], ["train", "--width", str(2**24 + 1)],
                                  ["train", "--threads", "5000"], ["train", "--seed", str(2**64)],
                                  ["reproduce", "--seeds", f"0,{2**64}"]], ids=" ".join)
def test_numbers_beyond_the_core_limits_are_usage_errors(args, workdir):
    """--batch-size 99999999999 used to train until the core's C int overflowed (a traceback);
    now argparse refuses it before the data is loaded."""
    proc = run_cli(args + ["--data", workdir / "no-such-mnist"], cwd=workdir)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert re.search(r"argument --[a-z-]+: must be <=|seeds must be in", proc.stderr), proc.stderr
