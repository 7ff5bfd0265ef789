"""RESULTS.md's generated blocks match the committed records (sdagd.paper.writeup), and the
block machinery replaces exactly what it should."""
from pathlib import Path

import pytest

from sdagd.paper import report, writeup

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "results" / "full20"
DOCUMENT = ROOT / "RESULTS.md"
#: The deep protocol's records (hl-8, hl-10), once a finished run is committed.
DEEP_DIR = ROOT / "results" / "deep20"
DEEP = DEEP_DIR if (DEEP_DIR / "protocol.json").exists() else None
FIX = "python -m sdagd.paper.writeup results/full20 RESULTS.md" + (" results/deep20" if DEEP else "")


def test_document_has_every_block_and_no_unknown_one():
    names = set(writeup.document_blocks(DOCUMENT.read_text(encoding="utf-8")))
    assert names == set(writeup.blocks(RESULTS_DIR, deep_dir=DEEP)) | {"constant-predictions"}


def test_results_blocks_are_current():
    stored = writeup.document_blocks(DOCUMENT.read_text(encoding="utf-8"))
    for name, text in writeup.blocks(RESULTS_DIR, deep_dir=DEEP).items():
        assert name in stored, f"RESULTS.md has no block {name!r}: add its two marker lines, then run: {FIX}"
        assert stored[name] == text, f"RESULTS.md block {name!r} is stale; run: {FIX}"


def test_constant_prediction_block_is_current(mnist_dir):
    from sdagd.datasets import load_mnist

    (_, _), (_, y_test) = load_mnist(mnist_dir)
    stored = writeup.document_blocks(DOCUMENT.read_text(encoding="utf-8"))
    assert stored["constant-predictions"] == writeup.blocks(RESULTS_DIR, y_test)["constant-predictions"], FIX
    # the paper's two chance-level SGD numbers are the constants of classes "1" and "9"
    shares = report.class_shares(y_test)
    assert report.constant_prediction_class(0.8865, shares) == 1
    assert report.constant_prediction_class(0.8991, shares) == 9


def test_answer_states_the_global_failure_from_the_records():
    res = writeup.Results(RESULTS_DIR)
    hl5 = res.mcr("SDAGD-global", 5, "sigmoid")
    assert sum(m > 50 for m in hl5) == 1 and len(hl5) == 3
    assert "fails at hl-5 sigmoid in 1 of 3 seeds" in writeup.answer(res)
    # the validation split, not the test set, chose the variant: ReLU hl-3 is the cell where
    # the two disagree (per-layer on validation, global better on test)
    assert res.choice[(3, "relu")] == "SDAGD-layer"
    assert res.mean("SDAGD-global", 3, "relu") < res.mean("SDAGD-layer", 3, "relu")


def test_update_document_replaces_bodies_only():
    text = ("intro\n<!-- generated: a -->\nold a\n<!-- end generated: a -->\nmiddle "
            "<!-- generated: b -->\nold b\nmore\n<!-- end generated: b -->\nend\n")
    new = writeup.update_document(text, {"a": "new a", "b": "new b", "unused": "x"})
    assert new == ("intro\n<!-- generated: a -->\nnew a\n<!-- end generated: a -->\nmiddle "
                   "<!-- generated: b -->\nnew b\n<!-- end generated: b -->\nend\n")
    assert writeup.document_blocks(new) == {"a": "new a", "b": "new b"}
    with pytest.raises(ValueError, match=r"no generator for the document's blocks \['b'\]"):
        writeup.update_document(text, {"a": "x"})


def test_full_run_figures_are_the_papers(tmp_path):
    """reproduce's figures for a full run (tune.jsonl present): (a) SGD, (b) the SDAGD variant
    chosen on validation; the gradient flow (a) SGD, (b) SDAGD-layer."""
    pytest.importorskip("matplotlib")
    import shutil

    from sdagd.paper import reproduce

    shutil.copy(RESULTS_DIR / "tune.jsonl", tmp_path / "tune.jsonl")
    written = reproduce._figures(reproduce.load_results(RESULTS_DIR), str(tmp_path))
    assert sorted(written) == ["fig3_sigmoid.png", "fig4_relu.png", "gradient_flow.png"]
    assert all((tmp_path / name).stat().st_size > 10000 for name in written)


class _Cells:
    """A stand-in for writeup.Results: test MCR means per (label, depth, activation)."""

    depths = [1, 2, 3]

    def __init__(self, means):
        self.means = means

    def mcr(self, label, depth, activation):
        return [self.means[label][depth - 1]] if label in self.means else []

    def mean(self, label, depth, activation):
        return self.means[label][depth - 1]


def test_schedule_sentence_credits_the_schedule_only_when_sgd_has_it():
    cosine_r = [1.4, 1.3, 1.5]
    cos_diff = [-0.2, -0.3, -0.1]
    without = writeup._schedule_sentence(_Cells({writeup.COSINE: cosine_r}), cos_diff)
    assert "SGD has had no schedule yet (below, *A schedule for every optimizer*)" in without
    assert "-0.20, -0.30, -0.10" in without
    # the schedule helps SGD, which then is level with or ahead of cosine R at 2 of 3 depths
    level = _Cells({writeup.COSINE: cosine_r, "SGD": [1.6, 1.6, 1.6], writeup.SGD_COSINE: [1.3, 1.35, 1.45]})
    text = writeup._schedule_sentence(level, cos_diff)
    assert "helps SGD (cosine-lr minus plain SGD: -0.30, -0.25, -0.15)" in text
    assert "+0.10, -0.05, +0.05 (ahead at 1 of 3 depths): the schedule, not SDAGD, is what wins" in text
    # the schedule does not help SGD, and SDAGD stays ahead of it at every depth
    behind = _Cells({writeup.COSINE: cosine_r, "SGD": [1.6, 1.6, 1.6], writeup.SGD_COSINE: [1.6, 1.5, 1.7]})
    text = writeup._schedule_sentence(behind, cos_diff)
    assert "does not help SGD (cosine-lr minus plain SGD: +0.00, -0.10, +0.10)" in text
    assert "-0.20, -0.20, -0.20 (ahead at 3 of 3 depths): the lead of cosine-R SDAGD is not the schedule's" in text


def _deep_record(label, depth, activation, seed, final_error, grad_rms, train_error, status="ok"):
    config = ({"name": "SGD", "lr": 0.5, "momentum": 0.0} if label == "SGD"
              else {"name": "SDAGD", "radius": 0.3, "norm": "layer"})
    return {"config": {"optimizer": label, "depth": depth, "activation": activation, "seed": seed,
                       "optimizer_config": config},
            "status": status, "final_error": final_error if status == "ok" else None,
            "history": {"grad_rms": grad_rms.tolist(), "train_error": train_error.tolist()}}


def test_deep_table_reads_the_vanishing_gradient_off_the_records():
    """Every number of a deep row, recomputed here from the records: the mean ± std of the test
    MCR, the failed seeds, the first layer's RMS over the output's (each layer averaged over
    seeds first) and the plateau; rows ordered sigmoid then ReLU, by depth, SGD first."""
    import numpy as np

    rng = np.random.default_rng(7)
    records, expected = [], []
    for activation in ("relu", "sigmoid"):  # out of the table's order on purpose
        for depth in (10, 8):
            for label in ("SDAGD-layer", "SGD"):
                errors = rng.choice([0.02, 0.03, 0.8865], size=3)
                grads = rng.uniform(1e-7, 1e-2, size=(3, 4, depth + 1))  # seed, epoch, layer
                train = rng.uniform(0.0, 1.0, size=(3, 4))
                for seed in range(3):
                    records.append(_deep_record(label, depth, activation, seed, errors[seed], grads[seed], train[seed]))
                plateaus = [next((i for i, e in enumerate(t) if e <= 0.8), len(t)) for t in train]
                first, last = grads[:, 0, :].mean(axis=0), grads[:, -1, :].mean(axis=0)
                expected.append((activation, depth, label, 100 * errors, first[0] / first[-1], last[0] / last[-1],
                                 plateaus))
    # one more seed that diverged: counted, not averaged
    records.append(_deep_record("SGD", 8, "relu", 3, None, np.ones((4, 9)), np.ones(4), status="diverged"))
    rows = writeup.deep_table(records).splitlines()[2:]
    order = {"sigmoid": 0, "relu": 1}
    expected.sort(key=lambda e: (order[e[0]], e[1], writeup.DEEP_LABELS.index(e[2])))
    assert len(rows) == len(expected) == 8
    for row, (activation, depth, label, mcr, ratio_1, ratio_n, plateaus) in zip(rows, expected):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:3] == [f"{activation} hl-{depth}", label, "lr 0.5" if label == "SGD" else "R 0.3"]
        spread = f"{np.mean(mcr):.2f} ± {np.std(mcr, ddof=1):.2f}"
        diverged = " (1 diverged/failed)" if (activation, depth, label) == ("relu", 8, "SGD") else ""
        assert cells[3] == spread + diverged
        assert cells[4] == f"{int(np.sum(mcr >= 50))} of 3"
        assert cells[5] == f"{ratio_1:.1e}" and cells[6] == f"{ratio_n:.1e}"
        assert cells[7] == writeup._range(plateaus, 0)


def test_deep_answer_reads_its_numbers_off_the_records():
    """The answer's deep line, recomputed here: mean test MCR per depth, the seeds at 50 % or
    more over both depths, and the layer-1 / output gradient ratio after epoch 1."""
    import numpy as np

    records = []
    errors = {("SGD", "sigmoid"): ([0.8865, 0.9, 0.8865], [0.8865, 0.8865, 0.8865]),
              ("SDAGD-layer", "sigmoid"): ([0.02, 0.03, 0.025], [0.04, 0.05, 0.6]),
              ("SGD", "relu"): ([0.02, 0.02, 0.03], [0.025, 0.02, 0.02]),
              ("SDAGD-layer", "relu"): ([0.03, 0.02, 0.02], [0.02, 0.02, 0.02])}
    for (label, activation), (at_8, at_10) in errors.items():
        for depth, cell in ((8, at_8), (10, at_10)):
            for seed, error in enumerate(cell):
                grads = np.full((2, depth + 1), 1e-3)
                grads[0, 0] = 1e-9 if (label, activation) == ("SGD", "sigmoid") else 4e-4 + 1e-4 * seed
                records.append(_deep_record(label, depth, activation, seed, error, grads, np.zeros(2)))
    text = writeup.deep_answer(records)
    assert text == ("- **Deeper than the paper, at hl-8 and hl-10** (below; per optimizer: the test MCR at each "
                    "depth, the seeds that fail to train (ending at 50 % or more, or diverged) of all seeds, and the "
                    "first layer's gradient RMS over the output layer's after epoch 1): with sigmoid units SGD 89.10 "
                    "and 88.65 % (6 of 6; 1.0e-06 and 1.0e-06), per-layer SDAGD 2.50 and 23.00 % (1 of 6; 5.0e-01 "
                    "and 5.0e-01); with ReLU units SGD 2.33 and 2.17 % (0 of 6; 5.0e-01 and 5.0e-01), per-layer "
                    "SDAGD 2.33 and 2.00 % (0 of 6; 5.0e-01 and 5.0e-01).")
    diverged = _deep_record("SDAGD-layer", 10, "relu", 3, None, np.ones((2, 11)), np.ones(2), status="diverged")
    assert "per-layer SDAGD 2.33 and 2.00 % (1 of 7; " in writeup.deep_answer(records + [diverged])
    unfinished = [r for r in records if not (r["config"]["optimizer"] == "SGD" and r["config"]["depth"] == 10)]
    assert "with sigmoid units SGD lacks a finished run at hl-10, per-layer SDAGD 2.50" in writeup.deep_answer(unfinished)


def test_deep_table_names_a_cell_without_a_finished_run():
    import numpy as np

    records = [_deep_record("SGD", 8, "sigmoid", 0, None, np.ones((2, 9)), np.ones(2), status="failed"),
               _deep_record("SDAGD-layer", 8, "sigmoid", 0, 0.05, np.ones((2, 9)), np.zeros(2))]
    rows = writeup.deep_table(records).splitlines()[2:]
    assert rows[0] == "| sigmoid hl-8 | SGD | — | no finished run (1 diverged/failed) | | | | |"
    assert rows[1].startswith("| sigmoid hl-8 | SDAGD-layer | R 0.3 | 5.00 | 0 of 1 | 1.0e+00 | 1.0e+00 | 0 |")


def test_grid_edges_markdown_says_when_there_are_none():
    def tune_record(lr, error):
        return {"config": {"optimizer": "SGD", "depth": 8, "activation": "sigmoid", "seed": 0,
                           "optimizer_config": {"name": "SGD", "lr": lr, "momentum": 0.0}},
                "status": "ok", "final_error": error}

    inside = [tune_record(0.1, 0.05), tune_record(0.5, 0.03), tune_record(2.0, 0.04)]
    assert report.grid_edges_markdown(report.grid_edges(inside)) == "No tuned value lies on an edge of its grid."
    edge = [tune_record(0.1, 0.05), tune_record(0.5, 0.04), tune_record(2.0, 0.03)]
    table = report.grid_edges_markdown(report.grid_edges(edge))
    assert "| SGD hl-8 sigmoid | lr | 0.1, 0.5, 2 | 2 | upper | 5.00, 4.00, 3.00 |" in table


def test_deep_blocks_and_figures_from_a_run_folder(tmp_path):
    """deep_blocks and deep_figures read a deep run's folder through load_results (the chosen
    settings in protocol.json), as `python -m sdagd.paper.writeup ... results/deep20` does."""
    import json

    import numpy as np

    pytest.importorskip("matplotlib")
    records, chosen = [], {}
    for activation in ("sigmoid", "relu"):
        for depth in (8, 10):
            for label in writeup.DEEP_LABELS:
                for seed in range(2):
                    grads = np.geomspace(1e-7, 1e-2, depth + 1) * np.ones((3, 1))
                    r = _deep_record(label, depth, activation, seed, 0.02, grads, np.full(3, 0.1))
                    r["config"].update(epochs=3, train_limit=None)
                    r["key"] = json.dumps(r["config"], sort_keys=True)
                    records.append(r)
                    chosen.setdefault(label, {})[f"hl-{depth} {activation}"] = r["config"]["optimizer_config"]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "protocol.json").write_text(json.dumps({"optimizers": chosen, "epochs": 3, "train_limit": None,
                                                         "activations": ["sigmoid", "relu"]}))
    with pytest.raises(FileNotFoundError, match="tune.jsonl does not exist"):
        writeup.deep_blocks(str(tmp_path))  # no tuning records: nothing can be said of the grid edges
    # a tuning slot whose choice (lr 2, the upper edge) asks for a wider grid
    tune = [dict(r, key=json.dumps([lr]), config=dict(r["config"], optimizer_config={"name": "SGD", "lr": lr}),
                 final_error=error) for r in records[:1] for lr, error in ((0.5, 0.9), (1.0, 0.5), (2.0, 0.1))]
    (tmp_path / "tune.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tune))
    # an extra record of a setting protocol.json did not choose stays out of the table
    stray = dict(records[0], config=dict(records[0]["config"], seed=9, optimizer_config={"name": "SGD", "lr": 9.0}))
    stray["key"] = json.dumps(stray["config"], sort_keys=True)
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write(json.dumps(dict(stray, final_error=0.9)) + "\n")
    out = writeup.deep_blocks(str(tmp_path))
    assert out["deep-table"] == writeup.deep_table(records)
    assert out["deep-answer"] == writeup.deep_answer(records)
    assert "| SGD hl-8 sigmoid | lr | 0.5, 1, 2 | 2 | upper |" in out["deep-grid-edges"]
    paths = writeup.deep_figures(str(tmp_path))
    assert [Path(p).name for p in paths] == ["gradient_flow_sigmoid.png", "gradient_flow_relu.png"]
    assert all(Path(p).stat().st_size > 10000 for p in paths)


class _CellsByActivation:
    """A stand-in for writeup.Results: test MCR means per (label, activation), one per depth."""

    depths = [1, 2]

    failed = {}

    def __init__(self, means):
        self.means = means

    def mcr(self, label, depth, activation):
        return [self.means[(label, activation)][depth - 1]] if (label, activation) in self.means else []

    def mean(self, label, depth, activation):
        return self.means[(label, activation)][depth - 1]


def test_adam_bullet_counts_the_cells_where_adam_is_ahead():
    means = {(writeup.CHOSEN, "sigmoid"): [2.0, 3.0], (writeup.COSINE, "sigmoid"): [1.5, 2.5],
             (writeup.CHOSEN, "relu"): [1.6, 1.7], (writeup.COSINE, "relu"): [1.3, 1.4],
             (writeup.ADAM_COSINE, "sigmoid"): [1.75, 2.75]}
    # Adam's ReLU runs are missing: no line rather than a half comparison
    assert writeup._adam_bullet(_CellsByActivation(means)) == []
    means[(writeup.ADAM_COSINE, "relu")] = [1.5, 1.2]
    (line,) = writeup._adam_bullet(_CellsByActivation(means))
    assert line.startswith("- **For context, Adam is ahead of the paper's algorithm in 4 of 4 cells** (and of "
                           "cosine-R SDAGD in 1 of 4, by the mean over seeds).")
    assert line.endswith("SDAGD's lead is over plain SGD, not over adaptive methods in general.")
    assert ("at 1.75–2.75 % with sigmoid units (minus the paper's algorithm: -0.25, -0.25; minus cosine-R "
            "SDAGD: +0.25, +0.25)") in line
    assert "at 1.20–1.50 % with ReLU units (minus the paper's algorithm: -0.10, -0.50; minus cosine-R SDAGD: +0.20, -0.20)" in line
    # Adam stuck at chance at one sigmoid depth: the numbers, without the reading
    means[(writeup.ADAM_COSINE, "sigmoid")] = [1.75, 88.65]
    (line,) = writeup._adam_bullet(_CellsByActivation(means))
    assert "in 3 of 4 cells" in line and "adaptive methods" not in line


def test_phase1_lowest_is_the_minimum_over_the_table_runs():
    """The phase-1 table, checked against the raw records: each cell's value is the lowest
    phase-1 fraction of any epoch of the Table I runs of that column and activation."""
    from sdagd.paper import reproduce

    records = reproduce.load_results(RESULTS_DIR)
    rows = writeup.phase1_lowest(writeup.Results(RESULTS_DIR)).splitlines()[2:]
    for row in rows:
        label, *cells = [c.strip() for c in row.strip("|").split("|")]
        for activation, cell in zip(("sigmoid", "relu"), cells):
            lowest = min(min(r["history"]["phase1_fraction"]) for r in records if r["status"] == "ok"
                         and r["config"]["optimizer"] == label and r["config"]["activation"] == activation)
            assert cell == "1 in every run" if lowest == 1.0 else cell.startswith(f"{lowest:.7f} (hl-")
    assert {row.split("|")[1].strip() for row in rows} == {
        "SDAGD-layer", "SDAGD-global", "SDAGD-layer cosine R", "SDAGD-layer average h"}
