"""sdagd.paper's sweeps: bookkeeping, resumable result files, failures recorded, the
in-process / process-pool / custom-executor / Dask paths, determinism, tuning on the
validation split, argument checks.

Everything trains tiny networks (width 16) on a few hundred random 784-pixel rows passed in
memory as ``data=((X_train, y_train), (X_test, y_test))``, so a whole sweep takes well under
a second in this process.
"""

import concurrent.futures as cf
import contextlib
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import sdagd
from sdagd import optim, paper
from sdagd.datasets import DatasetNotFoundError
from sdagd.paper import load_records, run_job, run_key, sweep, tune

N_TRAIN, N_TEST = 400, 200


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """In-process runs use one BLAS thread, as the pool's workers do: identical numbers on
    both sides, and a light load on a shared machine."""
    old = sdagd.set_num_threads(1)
    yield
    sdagd.set_num_threads(old)


def make_data(seed=0, n_train=N_TRAIN, n_test=N_TEST):
    """Noisy copies of ten random prototype images, labelled by prototype: a task a tiny net
    learns in an epoch or two, so that hyperparameters make a difference."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 784), dtype=np.float32)

    def draw(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        X = (0.5 * prototypes[y] + 0.5 * rng.random((n, 784), dtype=np.float32)).astype(np.float32)
        return X, y

    return draw(n_train), draw(n_test)


@pytest.fixture(scope="module")
def data():
    return make_data()


OPTIMIZERS = {"SGD": optim.SGD(lr=0.5), "SDAGD": optim.SDAGD(radius=0.3)}
GRID = dict(depths=(1, 2), activations=("sigmoid", "relu"), seeds=(0, 1))


def small(data, **kw):
    """Keyword arguments of a small in-process sweep (16 runs), overridable."""
    args = dict(GRID, optimizers=OPTIMIZERS, epochs=2, width=16, batch_size=20, data=data, workers=0,
                progress=False)
    args.update(kw)
    return args


def grid_order(depths, activations, labels, seeds):
    return [(d, a, o, s) for d in depths for a in activations for o in labels for s in seeds]


def ident(record):
    c = record["config"]
    return (c["depth"], c["activation"], c["optimizer"], c["seed"])


def canonical(record):
    return json.dumps(record, sort_keys=True, allow_nan=True)


class CountingExecutor(cf.Executor):
    """Runs each job at submit time in this process and remembers what it was given;
    ``crash(config)`` true makes that job's future fail as a dead worker's would."""

    def __init__(self, crash=None):
        self.submitted = []
        self.crash = crash

    def submit(self, fn, /, *args, **kwargs):
        config = args[0]
        self.submitted.append(config)
        future = cf.Future()
        if self.crash is not None and self.crash(config):
            future.set_exception(RuntimeError("worker died"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future

    def idents(self):
        return [(c["depth"], c["activation"], c["optimizer"], c["seed"]) for c in self.submitted]


# ------------------------------------------------------------------------------ bookkeeping

def test_every_configuration_once_in_grid_order(data):
    records = sweep(**small(data))
    expected = grid_order((1, 2), ("sigmoid", "relu"), ("SGD", "SDAGD"), (0, 1))
    assert [ident(r) for r in records] == expected
    assert len({r["key"] for r in records}) == len(expected)
    for r in records:
        c = r["config"]
        assert r["status"] == "ok", r["error"]
        assert r["error"] is None
        assert r["key"] == run_key(c)
        assert c["width"] == 16 and c["epochs"] == 2 and c["batch_size"] == 20
        assert c["evaluate_on"] == "test" and c["train_limit"] is None
        assert c["optimizer_config"] == OPTIMIZERS[c["optimizer"]].config()
        h = r["history"]
        assert h["diverged"] is None
        assert h["epoch"] == [1, 2]
        for column in ("train_loss", "train_error", "val_loss", "val_error", "grad_rms", "saturated", "dead"):
            assert len(h[column]) == 2, column
        assert all(len(g) == c["depth"] + 1 for g in h["grad_rms"])
        assert 0.0 <= r["final_error"] <= 1.0 and math.isfinite(r["final_loss"])
        # the final figure is the test set after the last epoch
        assert r["final_error"] == h["val_error"][-1]
        assert r["pid"] == os.getpid() and r["wall_time"] > 0
        mu = h["mu_mean"][0]
        assert math.isnan(mu) if c["optimizer"] == "SGD" else mu > 0


def test_train_limit_uses_the_first_rows(data):
    (X, y), test = data
    r = sweep(**small(data, depths=(1,), activations=("relu",), seeds=(0,), optimizers={"SGD": OPTIMIZERS["SGD"]},
                      train_limit=120))[0]
    assert r["config"]["train_limit"] == 120
    net = sdagd.MLP([784, 16, 10], activation="relu", seed=0)
    net.fit(X[:120], y[:120], optim.SGD(lr=0.5), epochs=2, batch_size=20, progress=False)
    assert r["final_error"] == net.evaluate(*test).error


def test_out_file_one_line_per_run(data, tmp_path):
    out = tmp_path / "runs.jsonl"
    records = sweep(**small(data, out=str(out)))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(records) == 16
    loaded = load_records(out)
    assert sorted(canonical(r) for r in loaded) == sorted(canonical(json.loads(json.dumps(r))) for r in records)
    # in-process runs finish in grid order, so the file is in grid order too
    assert [r["key"] for r in loaded] == [r["key"] for r in records]


def test_extending_a_sweep_runs_only_the_new_configurations(data, tmp_path):
    out = tmp_path / "runs.jsonl"
    first = sweep(**small(data, seeds=(0,), out=out))
    ex = CountingExecutor()
    both = sweep(**small(data, seeds=(0, 1), out=out, executor=ex))
    assert ex.idents() == grid_order((1, 2), ("sigmoid", "relu"), ("SGD", "SDAGD"), (1,))
    assert [ident(r) for r in both] == grid_order((1, 2), ("sigmoid", "relu"), ("SGD", "SDAGD"), (0, 1))
    by_key = {r["key"]: r for r in both}
    for r in first:  # finished runs come back from the file unchanged
        assert canonical(by_key[r["key"]]) == canonical(json.loads(json.dumps(r)))
    assert len(load_records(out)) == 16


def torn_file(out, keep):
    """Keep the first ``keep`` records and half of the next line, no newline: a run killed
    while writing."""
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2], encoding="utf-8")
    return lines


def test_resume_after_interruption_runs_only_the_missing(data, tmp_path):
    out = tmp_path / "runs.jsonl"
    full = sweep(**small(data, out=out))
    keep = 5
    torn_file(out, keep)
    assert len(load_records(out)) == keep  # the torn line is skipped
    ex = CountingExecutor()
    resumed = sweep(**small(data, out=out, executor=ex))
    # exactly the missing runs (the torn one included) ran, in grid order
    assert ex.idents() == [ident(r) for r in full[keep:]]
    assert [ident(r) for r in resumed] == [ident(r) for r in full]
    for before, after in zip(full[:keep], resumed[:keep]):  # finished: the recorded ones
        assert canonical(after) == canonical(json.loads(json.dumps(before)))
    for before, after in zip(full, resumed):  # rerun: same numbers (deterministic per seed)
        assert after["status"] == "ok"
        assert after["final_error"] == before["final_error"]
        assert after["history"]["train_loss"] == before["history"]["train_loss"]


def test_resume_after_torn_line_keeps_every_record_in_the_file(data, tmp_path):
    out = tmp_path / "runs.jsonl"
    full = sweep(**small(data, out=out))
    torn_file(out, 5)
    sweep(**small(data, out=out))
    # The torn line is now inside the file (the resumed sweep appended after it): named, skipped.
    with pytest.warns(UserWarning, match=r"runs.jsonl, line 6: not a JSON line"):
        assert {r["key"] for r in load_records(out)} == {r["key"] for r in full}
    ex = CountingExecutor()
    with pytest.warns(UserWarning, match=r"line 6"):
        sweep(**small(data, out=out, executor=ex))
    assert ex.submitted == []


def test_load_records_skips_blank_and_torn_lines(tmp_path, recwarn):
    path = tmp_path / "r.jsonl"
    assert load_records(path) == [] and load_records(None) == []
    path.write_text('{"key": "a", "config": {}, "status": "ok"}\n\n'
                    '{"key": "b", "config": {}, "status": "ok", "final_error": NaN}\n{"key": "c", ', encoding="utf-8")
    records = load_records(path)
    assert records[0]["key"] == "a" and math.isnan(records[1]["final_error"]) and len(records) == 2
    assert len(recwarn) == 0  # a torn last line is what a killed run leaves: no warning


# ------------------------------------------------------------------------------ failures

# ------------------------------------------------------------------------------ checkpoints

def without_times(record):
    """A record's numbers: everything but the per-epoch wall-clock times and where it ran."""
    history = {k: v for k, v in record["history"].items() if k != "time"}
    return canonical({"config": record["config"], "status": record["status"], "final_error": record["final_error"],
                      "final_loss": record["final_loss"], "history": history})


def cut_off_after_epoch(monkeypatch, epoch):
    """Make the next runs stop dead (as a killed process would) once epoch ``epoch``'s checkpoint
    is written: KeyboardInterrupt is not an Exception, so run_job does not record it."""
    from sdagd.paper import jobs
    write = jobs._EpochCheckpoint.__call__

    def write_then_die(self, net, record, optimizer):
        write(self, net, record, optimizer)
        if record["epoch"] == epoch:
            raise KeyboardInterrupt
    monkeypatch.setattr(jobs._EpochCheckpoint, "__call__", write_then_die)


@pytest.mark.parametrize("label, optimizer", [("SDAGD", optim.SDAGD(radius=0.3)), ("Adam", optim.Adam(lr=1e-3)),
                                              ("SGD", optim.SGD(lr=0.5, momentum=0.9))])
def test_a_run_cut_off_goes_on_from_its_checkpoint_with_the_same_numbers(data, tmp_path, monkeypatch, label,
                                                                         optimizer):
    """Optimizers with state (Adam's moments, momentum) included: the resumed run's record holds
    the numbers of a run never cut off, bit for bit."""
    config = sweep(**small(data, depths=(2,), activations=("sigmoid",), seeds=(1,), epochs=3,
                           optimizers={label: optimizer}))[0]["config"]
    whole = run_job(config, data)
    with monkeypatch.context() as m:
        cut_off_after_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            run_job(config, data, tmp_path)
    assert all(os.path.exists(p) for p in paper.jobs.checkpoint_paths(tmp_path, config))
    resumed = run_job(config, data, tmp_path)
    assert resumed["status"] == "ok" and resumed["resumed_at_epoch"] == 2
    assert resumed["history"]["epoch"] == [1, 2, 3]
    assert without_times(resumed) == without_times(whole)
    # ... and the checkpoint matters: without it the run starts again (the same numbers too)
    assert "resumed_at_epoch" not in run_job(config, data, tmp_path / "elsewhere")


def test_a_damaged_or_foreign_checkpoint_is_ignored(data, tmp_path, monkeypatch):
    config = sweep(**small(data, depths=(1,), activations=("relu",), seeds=(0,), epochs=2,
                           optimizers={"SGD": OPTIMIZERS["SGD"]}))[0]["config"]
    whole = run_job(config, data)
    with monkeypatch.context() as m:
        cut_off_after_epoch(m, 1)
        with pytest.raises(KeyboardInterrupt):
            run_job(config, data, tmp_path)
    network, state = paper.jobs.checkpoint_paths(tmp_path, config)
    saved, saved_network = json.loads(open(state).read()), open(network, "rb").read()
    history = saved["history"]
    damages = [{"key": "another run"}, {"epochs": 2}, {"history": {"epoch": [1, 2]}}, {"data": "other data"},
               {"sdagd_version": "0.0.1"}, {"seconds": math.inf}, {"seconds": -5.0}, {"seconds": "5"},
               {"history": dict(history, train_loss=[])}, {"history": dict(history, val_error=["x"])},
               {"history": dict(history, grad_rms=[[1.0, "x"]])}, {"history": dict(history, epoch=[2])},
               "[" * 100_000, "{not json"]
    for damage in damages:
        with open(network, "wb") as f:  # each run below writes its own checkpoints over these
            f.write(saved_network)
        with open(state, "w") as f:
            f.write(damage if isinstance(damage, str) else json.dumps(dict(saved, **damage), allow_nan=True))
        record = run_job(config, data, tmp_path)
        assert record["status"] == "ok" and "resumed_at_epoch" not in record, (damage, record["error"])
        assert without_times(record) == without_times(whole)
    # the same configuration on other data (same shapes) does not take this checkpoint either
    with open(network, "wb") as f:
        f.write(saved_network)
    with open(state, "w") as f:
        json.dump(saved, f)
    other = make_data(seed=5)
    assert "resumed_at_epoch" not in run_job(config, other, tmp_path)
    with open(network, "wb") as f:
        f.write(b"not a checkpoint")
    record = run_job(config, data, tmp_path)
    assert "resumed_at_epoch" not in record and without_times(record) == without_times(whole)


def test_a_checkpoint_that_cannot_be_written_does_not_stop_the_run(data, tmp_path):
    config = sweep(**small(data, depths=(1,), activations=("relu",), seeds=(0,), epochs=2,
                           optimizers={"SGD": OPTIMIZERS["SGD"]}))[0]["config"]
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    record = run_job(config, data, blocker / "checkpoints")
    assert record["status"] == "ok", record["error"]
    assert "after epoch 1 not written" in record["checkpoint_error"]
    assert without_times(record) == without_times(run_job(config, data))


def test_a_run_cut_off_in_its_final_evaluation_goes_on_from_the_epoch_before(data, tmp_path, monkeypatch):
    """No checkpoint after the last epoch (the record follows within seconds): a run cut off
    after it trains that epoch again."""
    config = sweep(**small(data, depths=(1,), activations=("relu",), seeds=(0,), epochs=3,
                           optimizers={"SDAGD": OPTIMIZERS["SDAGD"]}))[0]["config"]
    with monkeypatch.context() as m:
        cut_off_after_epoch(m, 3)
        with pytest.raises(KeyboardInterrupt):
            run_job(config, data, tmp_path)
    assert json.loads(open(paper.jobs.checkpoint_paths(tmp_path, config)[1]).read())["epochs"] == 2
    resumed = run_job(config, data, tmp_path)
    assert resumed["resumed_at_epoch"] == 2 and resumed["history"]["epoch"] == [1, 2, 3]
    assert without_times(resumed) == without_times(run_job(config, data))
    one_epoch = dict(config, epochs=1)  # the quick protocol's runs: nothing written, the data not even hashed
    monkeypatch.setattr(paper.jobs, "data_fingerprint", lambda *arrays: pytest.fail("hashed the data"))
    assert run_job(one_epoch, data, tmp_path / "quick")["status"] == "ok"
    assert not (tmp_path / "quick").exists()


def test_checkpoints_that_cannot_be_removed_do_not_stop_the_sweep(data, tmp_path):
    """A file where the checkpoint folder would go: no checkpoints, and every run still recorded."""
    out = tmp_path / "runs.jsonl"
    (tmp_path / "runs.jsonl.partial").write_text("in the way")
    records = sweep(**small(data, depths=(1,), activations=("relu",), epochs=2, out=out))
    assert len(records) == len(load_records(out)) == 4
    assert all(r["status"] == "ok" and "not written" in r["checkpoint_error"] for r in records)


def test_a_recorded_runs_leftover_checkpoint_is_removed(data, tmp_path, monkeypatch):
    """A sweep stopped between writing a record and removing its checkpoint leaves one behind:
    the next sweep on that file removes it (and then the empty folder)."""
    out = tmp_path / "runs.jsonl"
    kw = small(data, depths=(1,), activations=("relu",), seeds=(0,), epochs=2, out=out)
    with monkeypatch.context() as m:
        m.setattr(paper.sweeps, "_remove_checkpoint", lambda folder, config: None)
        m.setattr(paper.sweeps, "_remove_if_empty", lambda folder: None)
        sweep(**kw)
    assert len(list((tmp_path / "runs.jsonl.partial").glob("*.npz"))) == 2
    ex = CountingExecutor()
    sweep(**dict(kw, executor=ex))  # everything recorded: nothing runs, but the leftovers go
    assert ex.submitted == [] and (tmp_path / "runs.jsonl.partial").exists()  # a custom executor: no cleanup
    sweep(**kw)
    assert not (tmp_path / "runs.jsonl.partial").exists()


def test_checkpoints_with_a_custom_executor_a_folder_of_ones_choice_or_none(data, tmp_path, monkeypatch):
    """checkpoints=True: a custom executor's runs (here run in this process, as on a shared file
    system) checkpoint beside the results file; a path: there; False: nowhere."""
    kw = small(data, depths=(2,), activations=("sigmoid",), seeds=(0,), epochs=3)
    whole = sweep(**kw)
    out = tmp_path / "runs.jsonl"
    for checkpoints, folder in ((True, "runs.jsonl.partial"), (tmp_path / "elsewhere", "elsewhere")):
        out.unlink(missing_ok=True)
        with monkeypatch.context() as m:
            cut_off_after_epoch(m, 2)
            with pytest.raises(KeyboardInterrupt):
                sweep(**dict(kw, out=out, executor=CountingExecutor(), checkpoints=checkpoints))
        assert [p.parent.name for p in tmp_path.glob("*/*.npz")] == [folder], checkpoints
        resumed = sweep(**dict(kw, out=out, executor=CountingExecutor(), checkpoints=checkpoints))
        assert [r.get("resumed_at_epoch") for r in resumed] == [2, None], checkpoints
        assert [without_times(r) for r in resumed] == [without_times(r) for r in whole]
        assert not list(tmp_path.glob("*/*.npz"))  # removed with their records
    out.unlink()
    written = []
    monkeypatch.setattr(sdagd.MLP, "save", lambda self, path, optimizer=None: written.append(path))
    sweep(**dict(kw, out=out, checkpoints=False))  # in this process, where the default would save
    assert written == []


def test_the_checkpoint_folder_goes_when_only_ours_is_left_in_it(tmp_path):
    from sdagd.paper.sweeps import _remove_if_empty
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    leftover = folder / f".{'a' * 24}.npz.{'0' * 12}.tmp"  # a write cut off
    leftover.write_bytes(b"")
    (folder / "notes.txt").write_text("the user's own")  # a folder they chose: theirs stays, and it
    _remove_if_empty(folder)
    assert leftover.exists() and (folder / "notes.txt").exists()
    (folder / "notes.txt").unlink()
    (folder / f"{'b' * 24}.json").write_text("{}")  # a checkpoint still waiting for its run
    _remove_if_empty(folder)
    assert folder.exists()
    (folder / f"{'b' * 24}.json").unlink()
    _remove_if_empty(folder)
    assert not folder.exists()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(checkpoints=True, grouped=True), ValueError, "grouped runs"),
    (dict(checkpoints=True), ValueError, "give out="),
    (dict(checkpoints=3), TypeError, "checkpoints must be"),
])
def test_bad_checkpoints_are_refused_before_any_run(data, kwargs, exc, match):
    ex = CountingExecutor()
    with pytest.raises(exc, match=match):
        sweep(**small(data, executor=ex, **kwargs))
    assert ex.submitted == []


@pytest.mark.parametrize("workers", [0, 1])
def test_a_sweep_cut_off_mid_run_resumes_that_run_and_cleans_up(data, tmp_path, monkeypatch, workers, capsys):
    out = tmp_path / "runs.jsonl"
    kw = small(data, depths=(1, 2), activations=("sigmoid",), seeds=(0,), epochs=3, out=out)
    whole = sweep(**dict(kw, out=None))
    with monkeypatch.context() as m:  # in this process: the monkeypatch reaches the run
        cut_off_after_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            sweep(**dict(kw, workers=0))
    assert load_records(out) == [] and len(list((tmp_path / "runs.jsonl.partial").glob("*.npz"))) == 1
    resumed = sweep(**dict(kw, workers=workers, progress=True))
    assert "sweep: 1 run cut off earlier will go on from its last finished epoch where the checkpoint in " \
        in capsys.readouterr().err
    assert [r.get("resumed_at_epoch") for r in resumed] == [2, None, None, None]
    assert [without_times(r) for r in resumed] == [without_times(r) for r in whole]
    assert not (tmp_path / "runs.jsonl.partial").exists()
    assert [without_times(r) for r in load_records(out)] == [without_times(r) for r in whole]


def test_diverged_run_recorded_and_the_sweep_continues(data, tmp_path):
    """A huge SGD step on a linear-output net makes the loss NaN: that run is recorded as
    diverged, the others finish normally."""
    def lr_for(depth, activation):
        return optim.SGD(lr=1e10) if depth == 2 else optim.SGD(lr=0.05)

    out = tmp_path / "runs.jsonl"
    records = sweep(**small(data, optimizers={"SGD": lr_for}, output="linear", out=out))
    assert [ident(r) for r in records] == grid_order((1, 2), ("sigmoid", "relu"), ("SGD",), (0, 1))
    for r in records:
        if r["config"]["depth"] == 2:
            assert r["status"] == "diverged"
            assert "diverged" in r["error"] and "lr=10000000000.0" in r["error"]
            assert r["history"]["diverged"] == r["error"]
            assert math.isnan(r["final_error"])
            assert r["config"]["optimizer_config"] == {"name": "SGD", "lr": 1e10, "momentum": 0.0}
        else:
            assert r["status"] == "ok" and r["error"] is None
    assert len(load_records(out)) == len(records)
    # diverged runs are results, not failures: not rerun, even with retry_failed
    ex = CountingExecutor()
    again = sweep(**small(data, optimizers={"SGD": lr_for}, output="linear", out=out, executor=ex,
                          retry_failed=True))
    assert ex.submitted == []
    assert [r["status"] for r in again] == [r["status"] for r in records]


def test_failed_runs_recorded_skipped_then_retried(data, tmp_path, monkeypatch):
    """A run that fails while training (here: a bug, simulated in fit) has its own result: it is
    recorded as failed, skipped by a rerun, and run again with retry_failed."""
    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("a bug in training")

    out = tmp_path / "runs.jsonl"
    with monkeypatch.context() as m:
        m.setattr(sdagd.MLP, "fit", broken_fit)
        failed = sweep(**small(data, out=out))
    assert len(failed) == 16 and len(load_records(out)) == 16
    for r in failed:
        assert r["status"] == "failed"
        assert r["error"].startswith("RuntimeError: a bug in training")
        assert r["history"] is None and math.isnan(r["final_error"])

    ex = CountingExecutor()  # failed runs count as done by default
    skipped = sweep(**small(data, out=out, executor=ex))
    assert ex.submitted == [] and all(r["status"] == "failed" for r in skipped)

    ex = CountingExecutor()
    retried = sweep(**small(data, out=out, executor=ex, retry_failed=True))
    assert len(ex.submitted) == 16
    assert all(r["status"] == "ok" for r in retried)
    assert len(out.read_text().splitlines()) == 32  # appended, the failed lines stay
    # ... but read back once per run: the later (ok) record of each key
    assert len(load_records(out)) == 16 and all(r["status"] == "ok" for r in load_records(out))

    ex = CountingExecutor()  # the later ok record wins over the earlier failed one
    final = sweep(**small(data, out=out, executor=ex, retry_failed=True))
    assert ex.submitted == [] and all(r["status"] == "ok" for r in final)


def test_a_dead_worker_is_a_failed_record_that_a_rerun_retries(data, tmp_path):
    out = tmp_path / "runs.jsonl"
    ex = CountingExecutor(crash=lambda c: c["seed"] == 1 and c["depth"] == 2)
    records = sweep(**small(data, out=out, executor=ex))
    assert len(ex.submitted) == 16
    for r in records:
        if r["config"]["seed"] == 1 and r["config"]["depth"] == 2:
            assert r["status"] == "failed" and "RuntimeError: worker died" in r["error"]
        else:
            assert r["status"] == "ok"
    # An executor failure is not the run's verdict: it is not written, so a plain rerun (no
    # retry_failed needed) runs exactly those jobs again.
    assert len(load_records(out)) == 12
    ex = CountingExecutor()
    sweep(**small(data, out=out, executor=ex))
    assert ex.idents() == [(2, a, o, 1) for a in ("sigmoid", "relu") for o in ("SGD", "SDAGD")]
    assert len(load_records(out)) == 16


def test_validation_split_too_large_is_refused_before_any_run(data, tmp_path):
    """(It used to be recorded as a failed run of every configuration.)"""
    out = tmp_path / "runs.jsonl"
    with pytest.raises(ValueError, match=r"n_val must be below the 400 training images, got 400"):
        sweep(**small(data, depths=(1,), activations=("relu",), seeds=(0,), evaluate_on="validation",
                      n_val=N_TRAIN, out=out))
    assert not out.exists()


def test_run_job_never_raises(data):
    config = sweep(**small(data, depths=(1,), activations=("relu",), seeds=(0,)))[0]["config"]
    r = run_job(dict(config, activation="nope"), data)
    assert r["status"] == "failed" and "activation" in r["error"]
    r = run_job(dict(config, optimizer_config={"name": "NoSuchOptimizer"}), data)
    assert r["status"] == "failed" and r["error"]


def test_run_job_accepts_unaligned_arrays(data):
    (X, y), test = data
    raw = bytearray(X.nbytes + 1)
    X_unaligned = np.frombuffer(raw, dtype=np.float32, offset=1, count=X.size).reshape(X.shape)
    X_unaligned[...] = X
    assert not X_unaligned.flags.aligned and X_unaligned.flags.c_contiguous
    config = sweep(**small(data, depths=(1,), activations=("relu",), seeds=(0,)))[0]["config"]
    aligned = run_job(config, data)
    r = run_job(config, ((X_unaligned, y), test))
    assert r["status"] == "ok", r["error"]
    assert r["final_error"] == aligned["final_error"]


# ------------------------------------------------------------------------------ executors

def test_process_pool_matches_in_process(data):
    kw = small(data, depths=(1, 2), activations=("relu",), seeds=(0, 1), optimizers={"SGD": OPTIMIZERS["SGD"]},
               epochs=1)
    local = sweep(**kw)
    pooled = sweep(**dict(kw, workers=2))
    assert [ident(r) for r in pooled] == [ident(r) for r in local]
    assert all(r["status"] == "ok" for r in pooled), [r["error"] for r in pooled]
    assert all(r["pid"] != os.getpid() for r in pooled)
    assert [r["final_error"] for r in pooled] == [r["final_error"] for r in local]
    assert [r["history"]["train_loss"] for r in pooled] == [r["history"]["train_loss"] for r in local]


def test_same_sweep_twice_is_identical(data):
    a = sweep(**small(data))
    b = sweep(**small(data))
    assert [r["final_error"] for r in a] == [r["final_error"] for r in b]
    assert [r["history"]["train_loss"] for r in a] == [r["history"]["train_loss"] for r in b]
    assert [r["history"]["grad_rms"] for r in a] == [r["history"]["grad_rms"] for r in b]
    # ... and the seed matters (otherwise the check above would be vacuous)
    assert a[0]["history"]["train_loss"] != a[1]["history"]["train_loss"]


def write_fake_mnist(directory, n_train=N_TRAIN, n_test=N_TEST, seed=0):
    """IDX files in the MNIST layout (sizes differ from the real set, so no checksum check)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (images.reshape(n, -1)[:, :10].argmax(axis=1)).astype(np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">I3i", 0x0803, n, 28, 28) + images.tobytes())
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">Ii", 0x0801, n) + labels.tobytes())
    return directory


@pytest.fixture(scope="module")
def dask_executor():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield client.get_executor()


DASK_GRID = dict(depths=(1, 2), activations=("sigmoid", "relu"), seeds=(0, 1), optimizers={"SGD": OPTIMIZERS["SGD"]},
                 epochs=1)


def test_dask_executor_with_a_data_directory(dask_executor, tmp_path):
    directory = write_fake_mnist(tmp_path / "mnist")
    kw = dict(DASK_GRID, width=16, batch_size=50, data=str(directory), progress=False)
    remote = sweep(executor=dask_executor, **kw)
    local = sweep(workers=0, **kw)
    assert all(r["status"] == "ok" for r in remote), [r["error"] for r in remote]
    assert all(r["pid"] != os.getpid() for r in remote)
    assert [ident(r) for r in remote] == [ident(r) for r in local]
    assert [r["final_error"] for r in remote] == [r["final_error"] for r in local]


def test_dask_executor_with_in_memory_data(dask_executor, data):
    kw = dict(DASK_GRID, width=16, batch_size=50, data=data, progress=False)
    remote = sweep(executor=dask_executor, **kw)
    local = sweep(workers=0, **kw)
    assert all(r["status"] == "ok" for r in remote), {r["error"].splitlines()[0] for r in remote if r["error"]}
    assert [r["final_error"] for r in remote] == [r["final_error"] for r in local]


# ------------------------------------------------------------------------------ tuning

CANDIDATES = {"SGD": [optim.SGD(lr=0.05), optim.SGD(lr=1.0)],
              "SDAGD": [optim.SDAGD(radius=0.05), optim.SDAGD(radius=1.0)]}
N_VAL = 100


def tune_kw(data, **kw):
    args = dict(depths=(1, 2), activations=("sigmoid", "relu"), seeds=(0, 1), epochs=3, n_val=N_VAL, width=16,
                batch_size=10, data=data, workers=0, progress=False)
    args.update(kw)
    return args


@pytest.fixture(scope="module")
def tuned(data):
    return tune(CANDIDATES, **tune_kw(data))


def test_tune_picks_the_lowest_mean_validation_error(tuned):
    records = tuned.records
    assert len(records) == 2 * 2 * 4 * 2
    scores = {}
    for r in records:
        c = r["config"]
        assert c["evaluate_on"] == "validation" and c["n_val"] == N_VAL
        label = c["optimizer"].split("#")[0]
        key = (label, c["depth"], c["activation"], json.dumps(c["optimizer_config"], sort_keys=True))
        scores.setdefault(key, []).append(r["final_error"] if r["status"] == "ok" else 1.0)
    assert all(len(v) == 2 for v in scores.values())  # one value per seed
    assert tuned.scores == pytest.approx({k: float(np.mean(v)) for k, v in scores.items()})
    slots = {(label, d, a) for label in CANDIDATES for d in (1, 2) for a in ("sigmoid", "relu")}
    assert set(tuned.keys()) == slots
    chosen_index = []
    for slot in slots:
        options = {k[3]: float(np.mean(v)) for k, v in scores.items() if k[:3] == slot}
        best = min(options.values())
        chosen = tuned[slot]
        assert isinstance(chosen, optim.Optimizer)
        cfg = json.dumps(chosen.config(), sort_keys=True)
        assert options[cfg] == best
        if list(options.values()).count(best) == 1:
            assert cfg == min(options, key=options.get)
        chosen_index.append([json.dumps(o.config(), sort_keys=True) for o in CANDIDATES[slot[0]]].index(cfg))
        assert tuned(slot[0])(slot[1], slot[2]) is chosen
    assert 1 in chosen_index  # not always the first candidate
    table = tuned.table().splitlines()
    assert len(table) == 2 + len(slots)
    assert sum(line.startswith("| SGD | hl-") for line in table) == 4


def test_tune_validates_on_the_last_training_rows(tuned, data):
    (X, y), _ = data
    r = next(r for r in tuned.records if r["config"]["depth"] == 2 and r["config"]["activation"] == "sigmoid")
    c = r["config"]
    net = sdagd.MLP(paper.paper_sizes(c["depth"], c["width"]), activation=c["activation"], seed=c["seed"])
    net.fit(X[:-N_VAL], y[:-N_VAL], optim.from_config(c["optimizer_config"]), epochs=c["epochs"],
            batch_size=c["batch_size"], progress=False)
    assert net.evaluate(X[-N_VAL:], y[-N_VAL:]).error == r["final_error"]
    assert r["history"]["val_error"][-1] == r["final_error"]


def test_tune_never_looks_at_the_test_set(tuned, data):
    (X, y), (Xt, yt) = data
    rng = np.random.default_rng(99)
    garbage = ((X, y), (rng.random((Xt.shape[0], 784), dtype=np.float32), ((yt + 3) % 10).astype(np.uint8)))
    again = tune(CANDIDATES, **tune_kw(garbage))
    assert again.scores == tuned.scores
    assert {k: v.config() for k, v in again.items()} == {k: v.config() for k, v in tuned.items()}
    # whereas the held-out training labels do matter
    y2 = y.copy()
    y2[-N_VAL:] = (y2[-N_VAL:] + 1) % 10
    shifted = tune(CANDIDATES, **tune_kw(((X, y2), (Xt, yt)), depths=(1,), activations=("relu",)))
    assert all(shifted.scores[k] != tuned.scores[k] for k in shifted.scores)


def test_a_callable_that_returns_none_leaves_its_cell_out(data):
    # each label in its own cells: what the full protocol's grid extension runs in one sweep
    only = {"SGD": {(1, "relu")}, "SDAGD": {(2, "sigmoid"), (1, "sigmoid")}}
    optimizers = {label: (lambda cells, opt: lambda d, a: opt if (d, a) in cells else None)(only[label], opt)
                  for label, opt in OPTIMIZERS.items()}
    records = sweep(**small(data, optimizers=optimizers, seeds=(0,), epochs=1))
    ran = [(r["config"]["depth"], r["config"]["activation"], r["config"]["optimizer"]) for r in records]
    assert ran == [(1, "sigmoid", "SDAGD"), (1, "relu", "SGD"), (2, "sigmoid", "SDAGD")]
    assert all(r["status"] == "ok" for r in records)
    with pytest.raises(ValueError, match="the sweep is empty"):
        sweep(**small(data, optimizers={"SGD": lambda d, a: None}))


# ------------------------------------------------------------------------------ bad arguments

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(optimizers={}), ValueError, "optimizers is empty"),
    (dict(evaluate_on="x"), ValueError, "evaluate_on"),
    (dict(workers=-1), ValueError, "workers"),
    (dict(optimizers={"SGD": 0.5}), TypeError, "optimizers must map"),
    (dict(optimizers={"SGD": lambda depth, activation: "not an optimizer"}), TypeError, "optimizers must map"),
    (dict(depths=()), ValueError, "empty"),
    (dict(seeds=()), ValueError, "empty"),
])
def test_bad_sweep_arguments(kwargs, exc, match, tmp_path):
    out = tmp_path / "runs.jsonl"
    args = dict(depths=(1,), activations=("relu",), seeds=(0,), epochs=1, width=16, workers=0, progress=False,
                out=out, data=None)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        sweep(**args)
    assert not out.exists()  # nothing ran


def test_bad_tune_arguments(data):
    with pytest.raises(ValueError, match="no candidates"):
        tune({"SGD": []}, **tune_kw(data))
    with pytest.raises(TypeError):
        tune({"SGD": [0.5]}, **tune_kw(data))


@pytest.mark.parametrize("bad", [dict(epochs=-1), dict(batch_size=0), dict(width=0), dict(train_limit=-5),
                                 dict(n_val=0)], ids=lambda d: next(iter(d)))
def test_bad_protocol_is_rejected_before_any_run(data, tmp_path, bad):
    out = tmp_path / "runs.jsonl"
    with pytest.raises(ValueError, match=next(iter(bad))):
        sweep(**small(data, out=out, **bad))
    assert not out.exists()


# ------------------------------------------------------------------------------ checked up front

@pytest.mark.parametrize("where", ["missing-folder", "a-folder", "read-only"])
def test_an_unwritable_results_file_is_refused_before_the_first_run(data, tmp_path, where, request):
    """It used to fail when the first run finished, and that run was lost."""
    out = {"missing-folder": lambda: tmp_path / "no-such-folder" / "runs.jsonl",
           "a-folder": lambda: tmp_path,
           "read-only": lambda: request.getfixturevalue("read_only_dir") / "runs.jsonl"}[where]()
    ex = CountingExecutor()
    with pytest.raises(OSError, match=r"runs.jsonl|is a folder") as info:
        sweep(**small(data, out=out, executor=ex))
    assert str(out) in str(info.value)
    assert ex.submitted == []


BAD_GRIDS = [
    (dict(depths=(-1,)), ValueError, r"depths must hold integers from 1 to 998 \(hidden layers\), got -1"),
    (dict(depths=(1.7,)), ValueError, r"depths must hold integers .*got 1.7"),
    (dict(depths=(True,)), ValueError, r"depths must hold integers .*got True"),
    (dict(depths=3), TypeError, r"depths must be a sequence such as \(1, 2, 3\), got 3"),
    (dict(activations=("softplus",)), ValueError, r"invalid activation 'softplus'"),
    (dict(activations=(["relu"],)), TypeError, r"activation must be a string"),
    (dict(activations="relu"), TypeError, r"activations must be a sequence such as \('sigmoid',\), got 'relu'"),
    (dict(seeds=(-1,)), ValueError, r"seed must be an integer in \[0, 2\*\*64\), got -1"),
    (dict(seeds=(1.5,)), ValueError, r"seed must be an integer .*got 1.5"),
    (dict(output="softmax"), ValueError, r"output 'softmax' with loss 'mse'"),
    (dict(loss="hinge"), ValueError, r"invalid loss 'hinge'"),
    (dict(width=2**25), ValueError, r"each width must be in \[1, 2\*\*24\]"),
    (dict(batch_size=2**31), ValueError, r"batch_size must be at most 2\*\*31-1"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_GRIDS,
                         ids=[",".join(f"{k}={v!r}" for k, v in kw.items()) for kw, _, _ in BAD_GRIDS])
def test_a_bad_grid_is_refused_before_any_run(data, tmp_path, kwargs, exc, match):
    """These used to be run (depth -1 as a network without hidden layers, 1.7 as 1) or recorded
    as failed runs that a corrected rerun skips."""
    out = tmp_path / "runs.jsonl"
    ex = CountingExecutor()
    with pytest.raises(exc, match=match):
        sweep(**small(data, out=out, executor=ex, **kwargs))
    assert ex.submitted == [] and not out.exists()


def test_a_wrong_data_folder_is_refused_before_any_run(tmp_path):
    out = tmp_path / "runs.jsonl"
    with pytest.raises(DatasetNotFoundError, match="no-such-mnist"):
        sweep(**small(str(tmp_path / "no-such-mnist"), out=out))
    assert not out.exists()


@pytest.mark.parametrize("bad", ["wrong-width", "nan", "label-10", "not-arrays"])
def test_bad_in_memory_data_is_refused_before_any_run(data, tmp_path, bad):
    (X, y), (Xt, yt) = data
    X_nan = X.copy()
    X_nan[3, 5] = np.nan
    arrays = {"wrong-width": ((X[:, :700], y), (Xt[:, :700], yt)), "nan": ((X_nan, y), (Xt, yt)),
              "label-10": ((X, y), (Xt, np.r_[yt[:-1], 10])), "not-arrays": (X, y, Xt)}[bad]
    out = tmp_path / "runs.jsonl"
    ex = CountingExecutor()
    with pytest.raises((ValueError, TypeError), match=r"X_train|X_test|y_test|data must be"):
        sweep(**small(arrays, out=out, executor=ex))
    assert ex.submitted == [] and not out.exists()


def test_data_errors_in_workers_are_not_saved_and_a_rerun_retries_them(tmp_path):
    """With a custom executor the workers load a data folder themselves (it may be theirs, not
    this machine's); when they cannot, the runs fail, but not as results: nothing is saved and
    a rerun with the data in place runs them all."""
    folder = tmp_path / "mnist"
    out = tmp_path / "runs.jsonl"
    kw = small(str(folder), out=out, depths=(1,), activations=("relu",))
    ex = CountingExecutor()
    records = sweep(**dict(kw, executor=ex))
    assert len(ex.submitted) == 4
    assert all(r["status"] == "failed" and "DatasetNotFoundError" in r["error"] for r in records)
    assert all("not saved, a rerun retries it" in r["error"] and "retry" not in r for r in records)
    assert load_records(out) == []
    write_fake_mnist(folder)
    paper.jobs._DATA_CACHE.clear()
    ex = CountingExecutor()
    records = sweep(**dict(kw, executor=ex))
    assert len(ex.submitted) == 4 and all(r["status"] == "ok" for r in records)
    assert len(load_records(out)) == 4


def test_a_damaged_line_inside_the_results_file_is_skipped_with_a_warning(data, tmp_path):
    """Bad bytes, a JSON list and a bare number inside the file: each named in a warning and
    skipped; the runs whose lines were damaged run again, the others are kept."""
    out = tmp_path / "runs.jsonl"
    full = sweep(**small(data, out=out))
    lines = out.read_bytes().splitlines(keepends=True)
    lines[2] = b"\xff\xfe not UTF-8 \x00\n"
    lines[6] = b"[1, 2]\n"
    lines.insert(10, b"42\n")
    out.write_bytes(b"".join(lines))
    ex = CountingExecutor()
    with pytest.warns(UserWarning) as warned:
        resumed = sweep(**small(data, out=out, executor=ex))
    messages = [str(w.message) for w in warned]
    assert any("runs.jsonl, line 3: not a JSON line" in m for m in messages), messages
    assert any("runs.jsonl, line 7: not a record but list" in m for m in messages), messages
    assert any("runs.jsonl, line 11: not a record but int" in m for m in messages), messages
    assert ex.idents() == [ident(full[2]), ident(full[6])]
    assert [r["final_error"] for r in resumed] == [r["final_error"] for r in full]


# ------------------------------------------------------------------------------ worker processes

def children(pid):
    """Live (not zombie) child processes of ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def is_worker(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SWEEP_FOREVER = """
import numpy as np
from sdagd import optim, paper

if __name__ == "__main__":
    rng = np.random.default_rng(0)
    data = ((rng.random((40, 784), dtype=np.float32), rng.integers(0, 10, 40)),
            (rng.random((10, 784), dtype=np.float32), rng.integers(0, 10, 10)))
    paper.sweep(depths=(1,), activations=("relu",), seeds=(0, 1), optimizers={"SGD": optim.SGD(lr=0.01)},
                      epochs=10**9, width=8, batch_size=20, data=data, workers=2, progress=False)
"""

WATCHED_POOL = """
import concurrent.futures as cf, multiprocessing, os, time
from sdagd import paper


def job(marker):
    open(marker, "w").close()
    time.sleep(600)


if __name__ == "__main__":
    pool = cf.ProcessPoolExecutor(2, initializer=paper.workers._watch_parent, initargs=(os.getpid(), 0.2),
                                  mp_context=multiprocessing.get_context("spawn"))
    jobs = [pool.submit(job, f"started-{i}") for i in range(2)]
    time.sleep(600)
"""

# When the workers are surely inside their jobs: the sweep's are training (past the imports,
# about 0.5 s of CPU), the watched pool's have each left a marker.
READY = {"sweep": lambda workers, folder: all(cpu_seconds(p) > 1.5 for p in workers),
         "portable-watch": lambda workers, folder: len(list(folder.glob("started-*"))) == 2}


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the worker processes in /proc (Linux)")
@pytest.mark.parametrize("kind, script", [("sweep", SWEEP_FOREVER), ("portable-watch", WATCHED_POOL)],
                         ids=["sweep", "portable-watch"])
def test_workers_exit_when_the_sweep_process_is_killed(tmp_path, kind, script):
    """kill -9 of a sweep gives it no chance to stop its pool: the workers must notice by
    themselves (prctl on Linux, the parent-watching thread anywhere) and exit, instead of
    training on for hours. "sweep": the real default pool, its workers busy training;
    "portable-watch": the fallback alone, in workers sleeping inside a job."""
    (tmp_path / "parent.py").write_text(script)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    parent = subprocess.Popen([sys.executable, "parent.py"], cwd=tmp_path, env=env)
    workers = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            workers = [p for p in children(parent.pid) if is_worker(p)]  # not the resource tracker
            if len(workers) == 2 and READY[kind](workers, tmp_path):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the parent did not get 2 workers into their jobs: {workers}")
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [p for p in workers if alive(p)]
        assert survivors == [], f"workers {survivors} outlived their killed parent"
    finally:  # never leave processes behind, whatever happened
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for p in workers:
            if alive(p):
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)


# ------------------------------------------------------------------------------ grouped runs

def comparable(record):
    """A record without what depends on how it was run (time, host, process)."""
    out = {k: v for k, v in record.items() if k not in ("wall_time", "host", "pid", "group_size")}
    out["history"] = {k: v for k, v in record["history"].items() if k != "time"}
    return json.dumps(out, sort_keys=True)


def test_grouped_sweep_gives_the_same_records(data, tmp_path):
    """Runs trained together (fit_many, one group per shape and Hessian schedule) give exactly
    the records of runs trained one by one; the results file holds each run once."""
    optimizers = {"SGD": optim.SGD(lr=0.5), "SDAGD": optim.SDAGD(radius=0.3),
                  "SDAGD-global": optim.SDAGD(radius=0.3, norm="global")}
    alone = sweep(**small(data, optimizers=optimizers))
    together = sweep(**small(data, optimizers=optimizers, grouped=True, out=tmp_path / "runs.jsonl"))
    assert [comparable(r) for r in together] == [comparable(r) for r in alone]
    assert {r["group_size"] for r in together} == {4, 8}  # SGD runs apart from the SDAGD ones
    assert len(load_records(tmp_path / "runs.jsonl")) == len(alone)


def test_grouped_sweep_in_worker_processes(data):
    together = sweep(**small(data, grouped=True, workers=2))
    alone = sweep(**small(data))
    assert [comparable(r) for r in together] == [comparable(r) for r in alone]


def test_group_keys_keep_hessian_schedules_apart():
    base = dict(depth=1, width=16, activation="sigmoid", output="sigmoid", loss="mse", seed=0, epochs=1,
                batch_size=10, train_limit=None, evaluate_on="test", n_val=100)
    key = lambda opt, **kw: paper.group_key(dict(base, optimizer="x", optimizer_config=opt.config(), **kw))
    assert key(optim.SDAGD(radius=0.3)) == key(optim.SDLM(lr=0.1, mu=0.1)) == key(optim.SDAGD(radius=1.0), seed=3)
    assert key(optim.SDAGD(radius=0.3)) != key(optim.SDAGD(radius=0.3, hessian_every=2))
    assert key(optim.SGD(lr=0.1)) == key(optim.Adam(), activation="relu")
    assert key(optim.SGD(lr=0.1)) != key(optim.SDAGD(radius=0.3))
    assert key(optim.SGD(lr=0.1)) != key(optim.SGD(lr=0.1), depth=2)


@pytest.mark.skipif(sdagd.device_available("cuda")[0], reason="a GPU is present")
def test_cuda_sweep_without_a_gpu_fails_before_any_run(data, tmp_path):
    with pytest.raises(sdagd.DeviceError, match="CUDA"):
        sweep(**small(data, device="cuda", out=tmp_path / "runs.jsonl"))
    assert not (tmp_path / "runs.jsonl").exists()


def test_stability_table_and_phase_switch(data, tmp_path):
    from sdagd.paper import reproduce

    records = tune({"SGD": [optim.SGD(lr=0.05), optim.SGD(lr=0.5)]}, depths=(1,), activations=("relu",),
                   epochs=3, n_val=100, width=16, batch_size=20, data=data, workers=0, progress=False).records
    table = reproduce.stability_table(records, budget=1)
    assert "| SGD | hl-1 | relu |" in table and ("| yes |" in table or "| no |" in table)
    path = reproduce.phase_switch(str(tmp_path), scales=(1.0, 1e6), depth=1, epochs=2, data=data, workers=0,
                                  progress=False, train_limit=None, executor=None, activations=("sigmoid",),
                                  device="cpu")
    text = open(path).read()
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 1e+06 |")]
    assert len(rows) == 2
    phase1 = [float(row.split("|")[2].split(",")[-1]) for row in rows]
    assert phase1[0] > phase1[1]  # a larger h leaves fewer parameters in phase 1
