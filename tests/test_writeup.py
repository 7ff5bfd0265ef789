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
