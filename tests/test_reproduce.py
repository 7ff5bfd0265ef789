"""The reproduction's recorded defaults against the records they come from."""
import json
from pathlib import Path

import pytest

from sdagd import paper
from sdagd.paper import report, reproduce

ROOT = Path(__file__).resolve().parents[1]
TUNE = ROOT / "results" / "full20" / "tune.jsonl"


def test_quick_choices_are_the_tuning_runs_best_after_the_quick_budget():
    """QUICK_CHOICES says where it comes from: the full protocol's tuning records, ranked by the
    validation error after the quick protocol's epochs (reproduce.QUICK). Recomputed here from that file."""
    if not TUNE.exists():
        pytest.skip("results/full20/tune.jsonl is not in this checkout")
    epochs = reproduce.QUICK["epochs"]
    best = {}
    for line in TUNE.read_text().splitlines():
        record = json.loads(line)
        config = record["config"]
        label = config["optimizer"].rsplit("#", 1)[0]
        if label not in reproduce.QUICK_CHOICES:
            continue
        errors = (record["history"] or {}).get("val_error", [])
        error = errors[epochs - 1] if len(errors) >= epochs else 1.0
        value = config["optimizer_config"]["lr" if label == "SGD" else "radius"]
        slot = (label, config["depth"], config["activation"])
        if slot not in best or error < best[slot][0]:
            best[slot] = (error, value)
    assert len(best) == sum(len(v) for v in reproduce.QUICK_CHOICES.values())
    for (label, depth, activation), (_, value) in best.items():
        assert reproduce.QUICK_CHOICES[label][(depth, activation)] == value, (label, depth, activation)


def test_quick_choices_module_is_generated_from_the_committed_records():
    """sdagd/paper/_quick_choices.py is what write_quick_choices makes of the committed tuning records,
    byte for byte: neither edited by hand nor left behind by a new tuning."""
    if not TUNE.exists():
        pytest.skip("results/full20/tune.jsonl is not in this checkout")
    derived = reproduce.quick_choices(paper.load_records(TUNE))
    assert derived == reproduce.QUICK_CHOICES
    module = Path(reproduce.__file__).with_name("_quick_choices.py")
    assert module.read_text(encoding="utf-8") == reproduce.quick_choices_source(derived), (
        "sdagd/paper/_quick_choices.py is out of date: run `python -c \"from sdagd.paper import reproduce; "
        "reproduce.write_quick_choices()\"` from the repository's root")


def _tuning_record(label, value, depth, activation, seed, val_error):
    name = "SGD" if label.startswith("SGD") else "SDAGD"
    return {"config": {"optimizer": label, "depth": depth, "activation": activation, "seed": seed,
                       "optimizer_config": {"name": name, "lr" if name == "SGD" else "radius": value}},
            "history": None if val_error is None else {"val_error": val_error}}


def test_quick_choices_ranks_the_mean_error_at_the_budget():
    """Hand-made records: the score is the validation error after the budget's epoch, averaged
    over seeds; a run that ended earlier (or failed) scores 1.0; a tie goes to the first."""
    records = [
        # SGD hl-1 sigmoid: lr 0.1 best at epoch 3 (but not at the end), lr 0.5 worse on average
        _tuning_record("SGD#0", 0.1, 1, "sigmoid", 0, [0.5, 0.4, 0.2, 0.9]),
        _tuning_record("SGD#1", 0.5, 1, "sigmoid", 0, [0.5, 0.4, 0.1, 0.1]),
        _tuning_record("SGD#1", 0.5, 1, "sigmoid", 1, [0.5, 0.4, 0.4, 0.1]),
        # SDAGD-layer hl-2 relu: R 0.1 stopped after 2 epochs, R 1.0 failed, R 0.3 and 3.0 tie
        _tuning_record("SDAGD-layer#0", 0.1, 2, "relu", 0, [0.01, 0.01]),
        _tuning_record("SDAGD-layer#1", 1.0, 2, "relu", 0, None),
        _tuning_record("SDAGD-layer#2", 0.3, 2, "relu", 0, [0.5, 0.4, 0.3]),
        _tuning_record("SDAGD-layer#3", 3.0, 2, "relu", 0, [0.9, 0.9, 0.3]),
        # other labels are not the quick protocol's
        _tuning_record("SDAGD-global#0", 30.0, 1, "sigmoid", 0, [0.0, 0.0, 0.0]),
    ]
    assert reproduce.quick_choices(records, epochs=3) == {"SGD": {(1, "sigmoid"): 0.1},
                                                          "SDAGD-layer": {(2, "relu"): 0.3}}
    assert reproduce.quick_choices(records, epochs=1) == {"SGD": {(1, "sigmoid"): 0.1},
                                                          "SDAGD-layer": {(2, "relu"): 0.1}}


def test_full_protocol_tunes_on_the_run_length_and_derives_the_untuned_column(monkeypatch, tmp_path):
    """The full protocol end to end on a tiny grid: tuning runs as long as the main runs, the
    budget check read off those runs, the untuned column taking the tuned per-layer R."""
    monkeypatch.setitem(reproduce.FULL, "depths", (1,))
    monkeypatch.setitem(reproduce.FULL, "activations", ("sigmoid",))
    monkeypatch.setitem(reproduce.FULL, "seeds", (0,))
    monkeypatch.setitem(reproduce.FULL, "epochs", 2)
    monkeypatch.setitem(reproduce.FULL, "stability_budget", 1)
    monkeypatch.setitem(reproduce.FULL, "phase_scales", (1.0,))
    monkeypatch.setitem(reproduce.FULL, "phase_epochs", 1)
    monkeypatch.setitem(reproduce.FULL, "n_val", 200)
    out = reproduce.run(str(tmp_path), protocol="full", train_limit=600, progress=False, figures=False, workers=0)
    protocol = json.loads(Path(out["protocol.json"]).read_text())
    assert protocol["tune_epochs"] == protocol["epochs"] == 2
    tune = [json.loads(line) for line in (tmp_path / "tune.jsonl").read_text().splitlines()]
    assert {r["config"]["epochs"] for r in tune} == {2}
    tuned_labels = {r["config"]["optimizer"].rsplit("#", 1)[0] for r in tune}
    assert tuned_labels == set(reproduce.tune_grid(2))
    # the grids were extended until no slot asks for more (an interior choice, the cap or a tie)
    assert report.grid_extensions(tune) == []
    chosen_cfgs = {(label, cfg["radius"] if "radius" in cfg else cfg["lr"])
                   for label, cells in json.loads(Path(out["protocol.json"]).read_text())["optimizers"].items()
                   for cfg in cells.values()}
    tried = {(r["config"]["optimizer"].rsplit("#", 1)[0], r["config"]["optimizer_config"].get(
        "radius", r["config"]["optimizer_config"].get("lr"))) for r in tune}
    assert {c for c in chosen_cfgs if c[0] in tuned_labels} <= tried
    stability = Path(out["tuning_stability.md"]).read_text()
    assert all(f"| {label} | hl-1 | sigmoid |" in stability for label in tuned_labels)
    chosen = protocol["optimizers"]
    derived, base = chosen["SDAGD-layer average h"]["hl-1 sigmoid"], chosen["SDAGD-layer"]["hl-1 sigmoid"]
    assert derived == dict(base, average=0.1)
    runs = [json.loads(line)["config"] for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert sorted(c["optimizer"] for c in runs) == sorted([*reproduce.tune_grid(2), *reproduce.UNTUNED])
    assert "hl-1 sigmoid" in Path(out["phase_switch.md"]).read_text()
    assert "| sigmoid | hl-1 |" in Path(out["paper_comparison.md"]).read_text()
    margin = [line for line in Path(out["phase_margin.md"]).read_text().splitlines() if line[:4] in ("| 0 ", "| 1 ", "| 2 ")]
    assert len(margin) == 3  # before training and after each of the 2 epochs
    fractions = [float(line.split("|")[3]) for line in margin]
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_deep_protocol_tunes_and_trains_sgd_and_per_layer_sdagd_only(monkeypatch, tmp_path):
    """The deep protocol as the full one, on its own labels, without the untuned column or the
    phase experiments (tiny depths here; hl-8 and hl-10 by default)."""
    assert reproduce.DEEP["depths"] == (8, 10) and reproduce.DEEP["epochs"] == reproduce.FULL["epochs"]
    for key, value in [("depths", (2,)), ("activations", ("sigmoid",)), ("seeds", (0,)), ("epochs", 1),
                       ("stability_budget", 0), ("n_val", 200)]:
        monkeypatch.setitem(reproduce.DEEP, key, value)
    out = reproduce.run(str(tmp_path), protocol="deep", train_limit=400, progress=False, figures=False, workers=0)
    protocol = json.loads(Path(out["protocol.json"]).read_text())
    assert protocol["protocol"] == "deep" and set(protocol["optimizers"]) == {"SGD", "SDAGD-layer"}
    assert set(protocol["tune_grid"]) == {"SGD", "SDAGD-layer"} and protocol["untuned"] is None
    runs = [json.loads(line)["config"] for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert sorted((c["optimizer"], c["depth"]) for c in runs) == [("SDAGD-layer", 2), ("SGD", 2)]
    assert not (tmp_path / "phase_margin.md").exists() and not (tmp_path / "paper_comparison.md").exists()


def test_load_results_reads_only_the_chosen_configurations(tmp_path):
    """A results file that also holds records of other settings (an earlier tuning, other
    epochs) must not leak them into Table I: load_results keeps the protocol's choices only."""
    chosen = {"SGD": {"hl-1 sigmoid": {"name": "SGD", "lr": 0.5, "momentum": 0.0}}}
    (tmp_path / "protocol.json").write_text(json.dumps(
        {"optimizers": chosen, "activations": ["sigmoid"], "epochs": 20, "train_limit": None}))

    def record(lr, seed, epochs=20, error=0.1):
        config = {"optimizer": "SGD", "depth": 1, "activation": "sigmoid", "seed": seed, "epochs": epochs,
                  "train_limit": None, "optimizer_config": {"name": "SGD", "lr": lr, "momentum": 0.0}}
        return {"key": json.dumps([lr, seed, epochs]), "config": config, "status": "ok", "final_error": error}

    lines = [record(0.5, 1, error=0.06), record(0.1, 0, error=0.09), record(0.5, 0, error=0.07),
             record(0.5, 2, epochs=5, error=0.2)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    records = reproduce.load_results(str(tmp_path))
    assert [(r["config"]["seed"], r["final_error"]) for r in records] == [(0, 0.07), (1, 0.06)]


def test_load_results_without_a_finished_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="protocol.json"):
        reproduce.load_results(str(tmp_path))


def test_every_tuning_grid_has_the_size_the_edge_report_assumes():
    """report.grid_edges and grid_extensions tell a slot's own grid from the values added
    beyond it by the first BASE_GRID_SIZE candidates recorded: a grid of another size would be
    misread as extended (or as not extended) and tuned further on a wrong count."""
    for label, grid in reproduce.tune_grid(20).items():
        assert len(grid) == report.BASE_GRID_SIZE, label
