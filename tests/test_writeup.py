"""RESULTS.md's generated blocks match the committed records (sdagd.paper.writeup), and the
block machinery replaces exactly what it should."""
from pathlib import Path

import pytest

from sdagd.paper import report, writeup

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "results" / "full20"
DOCUMENT = ROOT / "RESULTS.md"
FIX = "python -m sdagd.paper.writeup results/full20 RESULTS.md"


def test_document_has_every_block_and_no_unknown_one():
    names = set(writeup.document_blocks(DOCUMENT.read_text(encoding="utf-8")))
    assert names == set(writeup.blocks(RESULTS_DIR)) | {"constant-predictions"}


def test_results_blocks_are_current():
    stored = writeup.document_blocks(DOCUMENT.read_text(encoding="utf-8"))
    for name, text in writeup.blocks(RESULTS_DIR).items():
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
