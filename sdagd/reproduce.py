"""The paper's experiment end to end: tune on a validation split, sweep, write Table I, the
figures and the raw records to a directory. Used by ``python -m sdagd reproduce``.

Protocols (every setting is written to ``protocol.json`` next to the results):

* quick: a reduced protocol that finishes in a few minutes on 2 CPU cores: 10,000 training
  images, 2 epochs, seed 0, untuned defaults (SGD lr 0.5, SDAGD R 0.3). Its numbers show the
  trend, not the paper's table.
* full: the paper's grid (hl-1..hl-5 x sigmoid, ReLU x SGD, SDAGD x 3 seeds) on all 60,000
  training images, SDAGD in both norm variants, lr and R chosen per configuration on the
  last 10,000 training images (never the test set).
"""
from __future__ import annotations

import json
import os
import sys
import time

from . import experiments, optim, report

QUICK = dict(depths=(1, 2, 3, 4, 5), activations=("sigmoid", "relu"), seeds=(0,), epochs=2, train_limit=10000)
FULL = dict(depths=(1, 2, 3, 4, 5), activations=("sigmoid", "relu"), seeds=(0, 1, 2), epochs=5, train_limit=None,
            tune_epochs=1, tune_seeds=(0,), n_val=10000)

#: Candidates tried on the validation split in the full protocol.
TUNE_GRID = {
    "SGD": [optim.SGD(lr=lr) for lr in (0.1, 0.5, 2.0, 8.0)],
    "SDAGD-layer": [optim.SDAGD(radius=r, norm="layer") for r in (0.1, 0.3, 1.0)],
    "SDAGD-global": [optim.SDAGD(radius=r, norm="global") for r in (0.3, 3.0, 30.0)],
}
#: Untuned defaults (the quick protocol).
DEFAULTS = {"SGD": optim.SGD(lr=0.5), "SDAGD-layer": optim.SDAGD(radius=0.3, norm="layer"),
            "SDAGD-global": optim.SDAGD(radius=0.3, norm="global")}


def _say(message):
    print(message, file=sys.stderr, flush=True)


def run(out_dir, protocol="quick", epochs=None, workers=None, data=None, seeds=None, train_limit=None,
        executor=None, progress=True, figures=True) -> dict:
    """Run a protocol ("quick" or "full") into ``out_dir``; returns the paths written, the
    markdown table ("table") and the number of successful runs ("ok_runs"). Resumable:
    rerunning with the same directory skips finished runs."""
    if protocol not in ("quick", "full"):
        raise ValueError(f"protocol must be 'quick' or 'full', got {protocol!r}")
    settings = dict(QUICK if protocol == "quick" else FULL)
    if epochs is not None:
        settings["epochs"] = int(epochs)
    if seeds is not None:
        settings["seeds"] = tuple(seeds)
    if train_limit is not None:
        if int(train_limit) < 1:
            raise ValueError(f"train_limit must be >= 1, got {train_limit}")
        settings["train_limit"] = int(train_limit)
    # Before any run: a path that is a file, or a folder that cannot be written, would otherwise
    # fail only when the first results are written.
    experiments._check_writable(out_dir, folder=True)
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    common = dict(depths=settings["depths"], activations=settings["activations"], data=data,
                  train_limit=settings["train_limit"], executor=executor, workers=workers, progress=progress)
    if protocol == "quick":
        _say(f"QUICK protocol (reduced, not the paper's): {settings['train_limit']} training images, "
             f"{settings['epochs']} epoch(s), seeds {settings['seeds']}, untuned lr / R {DEFAULTS}")
        optimizers = DEFAULTS
        tuned_table = None
    else:
        _say(f"FULL protocol: tuning lr and R on the last 10,000 training images "
             f"({settings['tune_epochs']} epoch each), then {settings['epochs']} epoch(s) x seeds {settings['seeds']}")
        tuned = experiments.tune(TUNE_GRID, seeds=settings["tune_seeds"], epochs=settings["tune_epochs"],
                                 n_val=settings["n_val"], out=os.path.join(out_dir, "tune.jsonl"), **common)
        optimizers = {label: tuned(label) for label in TUNE_GRID}
        tuned_table = tuned.table()
        with open(os.path.join(out_dir, "tuning.md"), "w", encoding="utf-8") as f:
            f.write(tuned_table + "\n")
    records = experiments.sweep(optimizers=optimizers, seeds=settings["seeds"], epochs=settings["epochs"],
                                out=os.path.join(out_dir, "runs.jsonl"), **common)
    written = {"records": os.path.join(out_dir, "runs.jsonl")}
    table = report.table1_markdown(records)
    for name, text in [("table1.md", table + "\n"), ("table1.csv", report.table1_csv(records))]:
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write(text)
        written[name] = os.path.join(out_dir, name)
    written["protocol.json"] = os.path.join(out_dir, "protocol.json")
    with open(written["protocol.json"], "w", encoding="utf-8") as f:
        chosen = {k: v.config() for k, v in optimizers.items()} if protocol == "quick" else {
            label: {f"hl-{d} {a}": optimizers[label](d, a).config() for d in settings["depths"]
                    for a in settings["activations"]} for label in optimizers}
        json.dump({"protocol": protocol, **settings, "optimizers": chosen,
                   "tune_grid": ({k: [o.config() for o in v] for k, v in TUNE_GRID.items()}
                                 if protocol == "full" else None),
                   "batch_size": 100, "width": 700, "output": "sigmoid", "loss": "mse", "init": "xavier",
                   "wall_time_s_this_invocation": time.perf_counter() - start}, f, indent=2)
    if figures:
        written.update(_figures(records, out_dir))
    written["table"] = table
    written["ok_runs"] = sum(r["status"] == "ok" for r in records)
    return written


def _figures(records, out_dir):
    from . import plots  # imports matplotlib only when drawing

    written = {}
    try:
        for activation, name in [("sigmoid", "fig3_sigmoid.png"), ("relu", "fig4_relu.png")]:
            if any(r["config"]["activation"] == activation for r in records):
                plots.training_curves(records, activation, path=os.path.join(out_dir, name))
                written[name] = os.path.join(out_dir, name)
        depth = max(r["config"]["depth"] for r in records)
        plots.gradient_flow(records, depth=depth, activation="sigmoid", path=os.path.join(out_dir, "gradient_flow.png"))
        written["gradient_flow.png"] = os.path.join(out_dir, "gradient_flow.png")
    except ImportError as exc:
        _say(f"figures skipped: {exc}")
    except ValueError as exc:
        _say(f"figure skipped: {exc}")
    return written
