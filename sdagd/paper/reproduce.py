"""The paper's experiment end to end: tune on a validation split, sweep, write Table I, the
figures and the raw records to a directory. Used by ``sdagd reproduce``.

Protocols (every setting is written to ``protocol.json`` next to the results):

* quick (the default; BENCHMARKS.md, section 0, says how long it takes where): one epoch on
  all 60,000 training images, seed 0, SGD and SDAGD (per-layer norm), with the lr and R that
  the full protocol's tuning runs rank best after one epoch (:data:`QUICK_CHOICES`). It shows
  the paper's two findings: SGD with sigmoid units stuck near 90 % error at hl-4 and hl-5, and
  SDAGD training the same networks (in the tuning runs after one epoch, 16 % and 32 %
  validation error at hl-4 and hl-5, falling every epoch). One epoch, not two or three, so
  that it stays about three minutes on two AVX2 cores. One epoch is not the paper's table:
  the full protocol's numbers are in RESULTS.md.
* full: the paper's grid (hl-1..hl-5 x sigmoid, ReLU x 3 seeds) on all 60,000 training images
  for 20 epochs: SGD, SDAGD in both norm variants, and two SDAGD options of docs/algorithms.md section 5.3 as
  extra columns (a cosine schedule of R, tuned; a running average of h, one seed, with the
  per-layer variant's R); lr and R chosen per configuration on the last 10,000 training images
  (never the test set) by the validation error after the same 20 epochs (tuning_stability.md
  shows where a 5-epoch budget would have chosen otherwise); then the experiments on the two
  phases of SDAGD (h scaled by 1 to 10^6, and how far h is from mu_k during training).
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from .. import optim
from .._files import atomic_write_text, check_writable, output_lock
from . import _quick_choices, report
from .grid import paper_sizes
from .jobs import load_data, training_size
from .records import load_records
from .sweeps import sweep
from .tuning import choose_tuned, tune

QUICK = dict(depths=(1, 2, 3, 4, 5), activations=("sigmoid", "relu"), seeds=(0,), epochs=1, train_limit=None)
#: The full protocol tunes on the whole run length (tune_epochs None: = epochs). A shorter
#: budget picks other candidates in some (optimizer, cell) slots (results/full20/
#: tuning_stability.md counts them), so the 20-epoch tuning runs also report how a
#: ``stability_budget``-epoch tuning would have chosen.
FULL = dict(depths=(1, 2, 3, 4, 5), activations=("sigmoid", "relu"), seeds=(0, 1, 2), epochs=20, train_limit=None,
            tune_epochs=None, tune_seeds=(0,), n_val=10000, stability_budget=5,
            phase_scales=(1.0, 10.0, 100.0, 1e4, 1e6), phase_epochs=3, labels=None, untuned=True)
#: Deeper than the paper: hl-8 and hl-10, where the vanishing gradient is the whole story.
#: Tuned and trained as the full protocol does (20 epochs, 3 seeds, the same grids extended
#: at their edges), for SGD and SDAGD with the per-layer norm only (the global reading fails
#: at hl-5 already: RESULTS.md), without the untuned column or the phase experiments.
DEEP = dict(FULL, depths=(8, 10), labels=("SGD", "SDAGD-layer"), untuned=False, phase_scales=(), phase_epochs=0)
#: The protocols that tune on a validation split before their main runs.
TUNED_PROTOCOLS = {"full": FULL, "deep": DEEP}

#: The quick protocol's lr (SGD) and R (SDAGD, per-layer norm) per (depth, activation), as
#: :func:`quick_choices` derives them from the full protocol's tuning records
#: (results/full20/tune.jsonl). The records stay out of the installed package (they are 850 kB
#: for 20 numbers), so the table is generated into sdagd/paper/_quick_choices.py by
#: :func:`write_quick_choices`; tests/test_reproduce.py derives it again from the records and
#: fails when the two differ.
QUICK_CHOICES = _quick_choices.QUICK_CHOICES
#: The tuning records QUICK_CHOICES comes from, relative to the repository's root.
QUICK_CHOICES_SOURCE = "results/full20/tune.jsonl"
#: What each quick-protocol optimizer takes from its tuning candidates.
_QUICK_TUNED = {"SGD": "lr", "SDAGD-layer": "radius"}


def quick_choices(records, epochs=None) -> dict:
    """The quick protocol's table from tuning records (as :func:`sdagd.paper.tune` writes
    them): for each of SGD and SDAGD-layer and each (depth, activation), the lr or R of the
    candidate with the lowest validation error after ``epochs`` epochs (default: the quick
    protocol's), averaged over seeds as :func:`sdagd.paper.tune` scores them. A run that
    ended before that epoch scores 1.0; on a tie the candidate recorded first wins."""
    epochs = QUICK["epochs"] if epochs is None else int(epochs)
    errors = {}
    for record in records:
        config = record["config"]
        label = config["optimizer"].rsplit("#", 1)[0]
        if label not in _QUICK_TUNED:
            continue
        curve = (record.get("history") or {}).get("val_error") or []
        value = config["optimizer_config"][_QUICK_TUNED[label]]
        key = (label, config["depth"], config["activation"], value)
        errors.setdefault(key, []).append(curve[epochs - 1] if len(curve) >= epochs else 1.0)
    best = {}
    for (label, depth, activation, value), errs in errors.items():
        score = float(np.mean(errs))
        if (label, depth, activation) not in best or score < best[(label, depth, activation)][0]:
            best[(label, depth, activation)] = (score, value)
    table = {label: {} for label in _QUICK_TUNED}
    for (label, depth, activation), (_, value) in sorted(best.items(), key=lambda item: (
            list(_QUICK_TUNED).index(item[0][0]), QUICK["activations"].index(item[0][2]), item[0][1])):
        table[label][(depth, activation)] = value
    return table


def quick_choices_source(table) -> str:
    """The text of sdagd/paper/_quick_choices.py holding ``table`` (see :func:`quick_choices`)."""
    lines = ['"""Generated by sdagd.paper.reproduce.write_quick_choices from ' + QUICK_CHOICES_SOURCE
             + '; do not edit.',
             "",
             "The quick protocol's lr (SGD) and R (SDAGD-layer) per (depth, activation): for each, the",
             "candidate of the full protocol's tuning runs with the lowest validation error after "
             f"{QUICK['epochs']} epoch{'s' if QUICK['epochs'] != 1 else ''}.",
             '"""', "", "QUICK_CHOICES = {"]
    for label, cells in table.items():
        lines.append(f"    {json.dumps(label)}: {{")
        lines += [f"        ({depth}, {json.dumps(activation)}): {value!r},"
                  for (depth, activation), value in cells.items()]
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_quick_choices(tune_path=QUICK_CHOICES_SOURCE) -> str:
    """Regenerate sdagd/paper/_quick_choices.py from the tuning records at ``tune_path`` (run from
    the repository's root after a new full-protocol tuning); returns the path written."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_quick_choices.py")
    atomic_write_text(path, quick_choices_source(quick_choices(load_records(tune_path))))
    return path


def quick_optimizers():
    """The quick protocol's optimizers: callables (depth, activation) -> optimizer."""
    return {"SGD": lambda d, a: optim.SGD(lr=QUICK_CHOICES["SGD"][(d, a)]),
            "SDAGD-layer": lambda d, a: optim.SDAGD(radius=QUICK_CHOICES["SDAGD-layer"][(d, a)], norm="layer")}


def tune_grid(epochs: int) -> dict:
    """Candidates tried on the validation split in the full protocol. The cosine schedules
    decay R (SDAGD) or the lr (SGD, Adam) to 0 over the run's ``epochs`` (over the tuning budget
    while tuning)."""
    cosine = {"kind": "cosine", "epochs": int(epochs), "radius_min": 0.0}
    cosine_lr = {"kind": "cosine", "epochs": int(epochs), "lr_min": 0.0}
    # In Table I's column order: each baseline beside its schedule, then the paper's SDAGD
    # readings and options, then Adam for context.
    return {
        "SGD": [optim.SGD(lr=lr) for lr in (0.1, 0.5, 2.0)],
        # The cosine schedule for the baselines too, so that its gain is not credited to SDAGD alone.
        "SGD cosine lr": [optim.SGD(lr=lr, schedule=cosine_lr) for lr in (0.1, 0.5, 2.0)],
        "SDAGD-layer": [optim.SDAGD(radius=r, norm="layer") for r in (0.1, 0.3, 1.0)],
        "SDAGD-global": [optim.SDAGD(radius=r, norm="global") for r in (0.3, 3.0, 30.0)],
        "SDAGD-layer cosine R": [optim.SDAGD(radius=r, schedule=cosine) for r in (0.3, 1.0, 3.0)],
        "Adam cosine lr": [optim.Adam(lr=lr, schedule=cosine_lr) for lr in (3e-4, 1e-3, 3e-3)],
    }


#: Options beyond the paper that are not tuned: they take SDAGD-layer's tuned R and run one seed
#: (seed 0) only. The running average of h changes the update only where h comes near mu_k,
#: which these networks seldom reach (RESULTS.md), so this column checks the option rather than
#: searching for a gain.
UNTUNED = {"SDAGD-layer average h": ("SDAGD-layer", {"average": 0.1})}
ONE_SEED_LABELS = tuple(UNTUNED)


def _derived(base, changes):
    """``base`` (depth, activation) -> optimizer, with ``changes`` applied to its configuration."""
    return lambda d, a: optim.from_config(dict(base(d, a).config(), **changes))


def _say(message):
    print(message, file=sys.stderr, flush=True)


def _with_epochs(optimizer, epochs):
    """The optimizer with its step-size schedule (if any, R or lr) stretched over ``epochs``."""
    config = optimizer.config()
    if "schedule" in config and config["schedule"]["kind"] == "cosine":
        config["schedule"] = dict(config["schedule"], epochs=int(epochs))
    return optim.from_config(config)


def run(out_dir, protocol="quick", epochs=None, workers=None, data=None, seeds=None, train_limit=None,
        executor=None, progress=True, figures=True, device="cpu", tune_epochs=None) -> dict:
    """Run a protocol ("quick" or "full") into ``out_dir``; returns the paths written, the
    markdown table ("table"), the number of successful runs ("ok_runs") and, for the quick
    protocol, the paper's two findings checked on it ("findings"). Resumable: rerunning with
    the same directory skips finished runs."""
    if protocol not in ("quick", *TUNED_PROTOCOLS):
        raise ValueError(f"protocol must be 'quick', 'full' or 'deep', got {protocol!r}")
    settings = dict(QUICK if protocol == "quick" else TUNED_PROTOCOLS[protocol])
    if epochs is not None:
        settings["epochs"] = int(epochs)
    if seeds is not None:
        settings["seeds"] = tuple(seeds)
    if tune_epochs is not None:
        if protocol == "quick" or int(tune_epochs) < 1:
            raise ValueError(f"tune_epochs applies to the full and deep protocols and must be >= 1, got "
                             f"{tune_epochs!r}")
        settings["tune_epochs"] = int(tune_epochs)
    if protocol != "quick" and settings["epochs"] < 1:
        raise ValueError(f"the full protocol needs epochs >= 1 (it tunes and trains for that many), got "
                         f"{settings['epochs']}")
    if protocol != "quick" and settings["tune_epochs"] is None:
        settings["tune_epochs"] = settings["epochs"]
    if train_limit is not None:
        if int(train_limit) < 1:
            raise ValueError(f"train_limit must be >= 1, got {train_limit}")
        settings["train_limit"] = int(train_limit)
    # Before any run: a path that is a file, or a folder that cannot be written, would otherwise
    # fail only when the first results are written.
    check_writable(out_dir, folder=True)
    os.makedirs(out_dir, exist_ok=True)
    # One run per folder: a second one would redo all the work and append duplicate records.
    with output_lock(os.path.join(out_dir, ".sdagd-reproduce.lock"), f"the output folder {out_dir}"):
        return _run_locked(out_dir, protocol, settings, workers, data, executor, progress, figures, device)


def _run_locked(out_dir, protocol, settings, workers, data, executor, progress, figures, device):
    """run's work, once its arguments are checked and its output folder is locked."""
    start = time.perf_counter()
    common = dict(depths=settings["depths"], activations=settings["activations"], data=data,
                  train_limit=settings["train_limit"], executor=executor, workers=workers, progress=progress,
                  device=device)
    where = f" on {device}" if device != "cpu" else ""
    n_train = train_images(data, settings["train_limit"])
    images = f"{n_train:,}"  # what the runs will use, whatever was asked
    extra = {}
    if protocol == "quick":
        _say(f"QUICK protocol{where} (reduced, not the paper's): {images} training images, {settings['epochs']} "
             f"epoch(s), seed(s) {list(settings['seeds'])}, lr and R as the full protocol's tuning runs rank them "
             f"after {QUICK['epochs']} epoch(s) (sdagd.paper.reproduce.QUICK_CHOICES); the 20-epoch Table I is in "
             f"RESULTS.md")
        optimizers = quick_optimizers()
        records = sweep(optimizers=optimizers, seeds=settings["seeds"], epochs=settings["epochs"],
                                    out=os.path.join(out_dir, "runs.jsonl"), **common)
    else:
        records, optimizers, extra = _full(out_dir, protocol, settings, common, where, images)
    written = {"records": os.path.join(out_dir, "runs.jsonl")}
    table = report.table1_markdown(records)
    outputs = [("table1.md", table + "\n"), ("table1.csv", report.table1_csv(records))]
    if protocol == "full":
        outputs.append(("paper_comparison.md", _paper_comparison(records, out_dir) + "\n"))
    for name, text in outputs:
        atomic_write_text(os.path.join(out_dir, name), text)
        written[name] = os.path.join(out_dir, name)
    chosen = {label: {f"hl-{d} {a}": optimizers[label](d, a).config() for d in settings["depths"]
                      for a in settings["activations"]} for label in optimizers}
    written["protocol.json"] = os.path.join(out_dir, "protocol.json")
    atomic_write_text(written["protocol.json"], json.dumps(
        {"protocol": protocol, "device": device, **settings, "optimizers": chosen,
         "tune_grid": ({k: [o.config() for o in v] for k, v in _protocol_grid(settings).items()}
                       if protocol != "quick" else None),
         "untuned": ({k: {"radius_of": b, **c} for k, (b, c) in UNTUNED.items()}
                     if protocol != "quick" and settings["untuned"] else None),
         "one_seed_labels": list(ONE_SEED_LABELS) if protocol != "quick" and settings["untuned"] else None,
         "batch_size": 100, "width": 700, "output": "sigmoid", "loss": "mse", "init": "xavier",
         "wall_time_s_this_invocation": time.perf_counter() - start}, indent=2))
    written.update(extra)
    if figures:
        written.update(_figures(records, out_dir))
    written["table"] = table
    written["ok_runs"] = sum(r["status"] == "ok" for r in records)
    if protocol == "quick":
        written["findings"] = findings(records, n_train)
    return written


def _protocol_grid(settings) -> dict:
    """The tuning grid of a tuned protocol: :func:`tune_grid`'s, or the labels it names."""
    grid = tune_grid(settings["tune_epochs"])
    return grid if settings["labels"] is None else {label: grid[label] for label in settings["labels"]}


def _full(out_dir, protocol, settings, common, where, images):
    """Tuning (with its budget check), the 20-epoch sweep and, in the full protocol, the phase
    experiments."""
    E, E_tune = settings["epochs"], settings["tune_epochs"]
    _say(f"{protocol.upper()} protocol{where}: tuning lr and R on the last {settings['n_val']:,} training images ({E_tune} epochs each), "
         f"then {E} epochs x seeds {list(settings['seeds'])} on {images} images")
    grid = _protocol_grid(settings)
    tuned = tune(grid, seeds=settings["tune_seeds"], epochs=E_tune, n_val=settings["n_val"],
                             out=os.path.join(out_dir, "tune.jsonl"), **common)
    tuned = extend_grid_edges(tuned, settings, common, os.path.join(out_dir, "tune.jsonl"))
    atomic_write_text(os.path.join(out_dir, "tuning.md"), tuned.table() + "\n")
    extra = {"tuning.md": os.path.join(out_dir, "tuning.md")}
    extra["grid_edges.md"] = report_grid_edges(tuned.records, out_dir)
    # Would a shorter tuning budget have chosen the same? Read off the same runs.
    budget = settings["stability_budget"]
    if budget and budget < E_tune:
        atomic_write_text(os.path.join(out_dir, "tuning_stability.md"), stability_table(tuned.records, budget) + "\n")
        extra["tuning_stability.md"] = os.path.join(out_dir, "tuning_stability.md")
    optimizers = {label: (lambda lab: lambda d, a: _with_epochs(tuned(lab)(d, a), E))(label) for label in grid}
    if settings["untuned"]:
        optimizers.update({label: _derived(optimizers[base], changes) for label, (base, changes) in UNTUNED.items()})
    main = {k: v for k, v in optimizers.items() if k not in ONE_SEED_LABELS}
    records = sweep(optimizers=main, seeds=settings["seeds"], epochs=E, out=os.path.join(out_dir, "runs.jsonl"),
                    **common)
    one_seed = {k: v for k, v in optimizers.items() if k in ONE_SEED_LABELS}
    if one_seed:
        records += sweep(optimizers=one_seed, seeds=settings["seeds"][:1], epochs=E,
                         out=os.path.join(out_dir, "runs.jsonl"), **common)
    table_order(records, list(optimizers), settings["activations"])
    if not settings["phase_scales"]:
        return records, optimizers, extra
    # The deepest sigmoid network (hl-5 in the paper's grid) is where the phases matter.
    depth = max(settings["depths"])
    activation = "sigmoid" if "sigmoid" in settings["activations"] else settings["activations"][0]
    radius = tuned("SDAGD-layer")(depth, activation).hyperparameters["radius"]
    extra["phase_switch.md"] = phase_switch(out_dir, scales=settings["phase_scales"], epochs=settings["phase_epochs"],
                                            depth=depth, activation=activation, radius=radius, **common)
    extra["phase_margin.md"] = phase_margin(out_dir, depth=depth, activation=activation, epochs=E, radius=radius,
                                            **common)
    return records, optimizers, extra


def extend_grid_edges(tuned, settings, common, tune_path):
    """Tune further where a choice sits on the edge of its grid: add the candidates
    :func:`sdagd.paper.report.grid_extensions` names (one geometric step beyond the edge, per slot),
    train them as the grid's own candidates were (same seeds, budget and validation split, into
    the same records file, so a rerun resumes) and choose again, until no slot asks for more.
    Returns the final :class:`~sdagd.paper.tuning.TuneResult`."""
    records = list(tuned.records)
    while True:
        wanted = report.grid_extensions(records)  # every grid of tune_grid has report.BASE_GRID_SIZE values
        if not wanted:
            return choose_tuned(records)
        # One sweep per round, so that the workers share its runs: name -> {cell: config}.
        by_name, cells = {}, set()
        for extension in wanted:
            label, depth, activation = extension["slot"]
            name = f"{label}#{len(report.tuning_scores(records)[extension['slot']])}"
            _say(f"grid edge: {label} hl-{depth} {activation} also tries {extension['parameter']} = "
                 f"{extension['value']:g}")
            by_name.setdefault(name, {})[(depth, activation)] = extension["config"]
            cells.add((depth, activation))
        optimizers = {name: (lambda configs: lambda d, a: optim.from_config(configs[(d, a)])
                             if (d, a) in configs else None)(configs) for name, configs in by_name.items()}
        round_cells = dict(common, depths=sorted({d for d, _ in cells}),
                           activations=[a for a in common["activations"] if a in {b for _, b in cells}])
        records += sweep(optimizers=optimizers, seeds=settings["tune_seeds"], epochs=settings["tune_epochs"],
                         evaluate_on="validation", n_val=settings["n_val"], out=tune_path, **round_cells)


def load_results(out_dir) -> list:
    """The records behind a finished run's Table I: those of ``out_dir/runs.jsonl`` whose
    optimizer and settings are the ones ``out_dir/protocol.json`` chose, in the table's order.

    A results file can hold more than that: a rerun with other epochs or after a new tuning
    keeps the older records (they are what makes resuming cheap). Averaging them in would
    mix configurations, so read a finished run through this, not through ``load_records``."""
    protocol_path = os.path.join(out_dir, "protocol.json")
    if not os.path.exists(protocol_path):
        raise FileNotFoundError(f"{protocol_path} does not exist: load_results needs a finished "
                                f"'sdagd reproduce' run in {out_dir}")
    with open(protocol_path, encoding="utf-8") as f:
        protocol = json.load(f)
    chosen = protocol["optimizers"]
    records = []
    for r in load_records(os.path.join(out_dir, "runs.jsonl")):
        c = r["config"]
        cell = f"hl-{c['depth']} {c['activation']}"
        if (c["optimizer"] in chosen and chosen[c["optimizer"]].get(cell) == c["optimizer_config"]
                and c["epochs"] == protocol["epochs"] and c.get("train_limit") == protocol["train_limit"]):
            records.append(r)
    return table_order(records, list(chosen), protocol["activations"])


def table_order(records, labels, activations) -> list:
    """Sort ``records`` in place in Table I's order (depth, then each activation's optimizer
    columns together in ``labels`` order, then seed) and return them."""
    activations = list(activations)
    records.sort(key=lambda r: (r["config"]["depth"], activations.index(r["config"]["activation"]),
                                labels.index(r["config"]["optimizer"]), r["config"]["seed"]))
    return records


def stability_table(records, budget) -> str:
    """Markdown: per (optimizer, depth, activation), the candidate with the lowest validation
    error after ``budget`` epochs and after the last epoch, from the same runs."""
    slots = {}
    for r in records:
        c = r["config"]
        if r["status"] != "ok":
            continue
        slots.setdefault((c["optimizer"].rsplit("#", 1)[0], c["depth"], c["activation"]), []).append(r)
    lines = ["| optimizer | depth | activation | best after %d epochs | best after %s | same | validation MCR %% "
             "(budget / end) |" % (budget, "the last epoch"), "| --- | --- | --- | --- | --- | --- | --- |"]
    for (label, depth, activation), runs in sorted(slots.items()):
        def name(r):
            return ", ".join(f"{k}={v}" for k, v in r["config"]["optimizer_config"].items()
                             if k in ("lr", "radius"))
        at_budget = min(runs, key=lambda r: r["history"]["val_error"][budget - 1])
        at_end = min(runs, key=lambda r: r["history"]["val_error"][-1])
        lines.append(f"| {label} | hl-{depth} | {activation} | {name(at_budget)} | {name(at_end)} | "
                     f"{'yes' if at_budget is at_end else 'no'} | "
                     f"{100 * at_budget['history']['val_error'][budget - 1]:.2f} / "
                     f"{100 * at_end['history']['val_error'][-1]:.2f} |")
    return "\n".join(lines)


def phase_switch(out_dir, scales=(1.0, 10.0, 100.0, 1e4, 1e6), depth=5, activation="sigmoid", epochs=3,
                 radius=0.3, **common) -> str:
    """SDAGD's two phases: train hl-``depth`` with h multiplied by each of ``scales`` and record
    the phase-1 fraction (share of parameter updates with mu_k > h) and the test error per
    epoch; writes phase_switch.md (and the records to phase_switch.jsonl), returns its path."""
    common = dict(common, depths=(depth,), activations=(activation,))
    optimizers = {f"SDAGD h x {scale:g}": optim.SDAGD(radius=radius, hessian_scale=scale) for scale in scales}
    records = sweep(optimizers=optimizers, seeds=(0,), epochs=epochs,
                                out=os.path.join(out_dir, "phase_switch.jsonl"), **common)
    lines = [f"SDAGD (per-layer norm, R = {radius:g}) on hl-{depth} {activation}, h multiplied by a constant; "
             f"seed 0, {epochs} epochs, test MCR after the last.", "",
             "| h multiplied by | phase-1 fraction per epoch | mean mu_k per epoch | test MCR % |",
             "| --- | --- | --- | --- |"]
    for r in records:
        h = r["history"] or {}
        phase1 = ", ".join(f"{v:.6f}" for v in h.get("phase1_fraction", []))
        mu = ", ".join(f"{v:.3g}" for v in h.get("mu_mean", []))
        error = f"{100 * r['final_error']:.2f}" if r["status"] == "ok" else r["status"]
        lines.append(f"| {r['config']['optimizer'].split(' x ')[1]} | {phase1} | {mu} | {error} |")
    path = os.path.join(out_dir, "phase_switch.md")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def phase_margin(out_dir, depth=5, activation="sigmoid", radius=0.3, epochs=20, batches=10, data=None,
                 train_limit=None, device="cpu", shares=(0.5, 0.1, 0.01, 0.001), **_) -> str:
    """How far SDAGD is from its switch: train hl-``depth`` (seed 0, per-layer norm, R =
    ``radius``) and, before training and after each epoch, measure h / mu_k per parameter on
    ``batches`` fixed training mini-batches of 100 (:mod:`sdagd.phases`). Writes
    phase_margin.md: the phase-1 fraction and the factor h would need for a share of the
    parameters to enter phase 2, overall and per layer; returns its path."""
    from .. import phases
    from ..mlp import MLP

    (X_train, y_train), (X_test, y_test) = load_data(data)
    if train_limit:
        X_train, y_train = X_train[:train_limit], y_train[:train_limit]
    rows = np.random.default_rng(0).permutation(len(X_train))[:100 * batches]
    probes = [(X_train[rows[i:i + 100]], y_train[rows[i:i + 100]]) for i in range(0, len(rows), 100)]
    net = MLP(paper_sizes(depth), activation=activation, seed=0, device=device)
    optimizer = optim.SDAGD(radius=radius, norm="layer")
    _say(f"phase margin: hl-{depth} {activation}, SDAGD R = {radius:g}, {epochs} epochs")
    header = " | ".join(f"h x ? for {p:.1%}" for p in shares)
    lines = [f"SDAGD (per-layer norm, R = {radius:g}) on hl-{depth} {activation}, seed 0, "
             f"{len(X_train):,} training images; h / mu_k per parameter on {len(probes)} fixed training "
             f"mini-batches of 100 before training and after each epoch. \"h x ? for p\": the factor h "
             "must be multiplied by (just over) for a share p of the parameters to have h > mu_k.", "",
             f"| epoch | test MCR % | phase-1 fraction | {header} | per layer: h x ? for 50 % |",
             "|" + " --- |" * (4 + len(shares))]
    path = os.path.join(out_dir, "phase_margin.md")
    if _finished_table(path, lines, epochs + 1):  # a rerun resumes: the same experiment, already done
        _say(f"phase margin: {path} already holds this experiment; kept")
        return path
    for epoch in range(epochs + 1):
        if epoch:
            net.fit(X_train, y_train, optimizer, epochs=1, progress=False)
        per_batch = [phases.curvature_ratios(net, X, y, radius=radius) for X, y in probes]
        layers = [np.concatenate([b[layer] for b in per_batch]) for layer in range(depth + 1)]
        scales = phases.switch_scales(layers, shares)
        per_layer = ", ".join(f"{phases.switch_scales([r], (0.5,))[0.5]:.3g}" for r in layers)
        error = 100 * net.evaluate(X_test, y_test).error
        lines.append(f"| {epoch} | {error:.2f} | {phases.phase1_fraction(layers):.6f} | "
                     + " | ".join(f"{scales[p]:.3g}" for p in shares) + f" | {per_layer} |")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _finished_table(path, head, rows) -> bool:
    """Whether ``path`` holds a table that starts with the lines ``head`` and has ``rows``
    rows after them (what an experiment writes only once it has finished)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().splitlines()
    except OSError:
        return False
    return text[:len(head)] == head and len([line for line in text[len(head):] if line.startswith("| ")]) == rows


#: Training a run must do before the findings are checked on it (images seen, over all its
#: epochs): below it no network has trained, and "stuck near chance" would say nothing about a
#: vanishing gradient. The quick protocol sees 180,000 images.
MIN_IMAGES_FOR_FINDINGS = 30000


def train_images(data, train_limit) -> int:
    """How many training images the runs use: the data set's, or ``train_limit`` if that is
    fewer. A folder is read but not kept (the worker processes load their own copy)."""
    n = training_size(data)
    return min(n, train_limit) if train_limit else n


def findings(records, train_images=60000) -> list:
    """The paper's two findings, checked on a (quick) sweep: lines of text. A finding is checked
    only if every run it rests on saw at least :data:`MIN_IMAGES_FOR_FINDINGS` training images
    (epochs x images, ``train_images`` being the size of the training set used); otherwise its
    line gives the numbers and says it was not checked."""
    by = {(r["config"]["depth"], r["config"]["activation"], r["config"]["optimizer"]): r for r in records
          if r["status"] == "ok"}
    lines = []
    deep = [d for d in (4, 5) if (d, "sigmoid", "SGD") in by and (d, "sigmoid", "SDAGD-layer") in by]
    if not deep:
        return ["(the sweep has no hl-4 or hl-5 sigmoid runs of both optimizers to check the findings on)"]
    sgd = [100 * by[(d, "sigmoid", "SGD")]["final_error"] for d in deep]
    sdagd = [100 * by[(d, "sigmoid", "SDAGD-layer")]["final_error"] for d in deep]
    names = " and ".join(f"hl-{d}" for d in deep)

    def seen(r):
        c = r["config"]
        return c["epochs"] * (min(c["train_limit"], train_images) if c.get("train_limit") else train_images)

    least = min(seen(by[(d, "sigmoid", o)]) for d in deep for o in ("SGD", "SDAGD-layer"))
    if least < MIN_IMAGES_FOR_FINDINGS:
        verdict = (f"not checked: {least:,} training images seen (epochs x images) is too little training to "
                   f"show it; it needs at least {MIN_IMAGES_FOR_FINDINGS:,}")
        stuck_text = trained_text = verdict
    else:
        stuck_text = ("stuck near chance, 90 %: the vanishing gradient" if all(e > 80 for e in sgd)
                      else "NOT stuck: the finding does not show here")
        trained_text = "trained" if all(e < 50 for e in sdagd) else "NOT trained: the finding does not show here"
    lines.append(f"1. SGD with sigmoid units at {names}: test MCR {', '.join(f'{e:.1f} %' for e in sgd)} "
                 f"({stuck_text}).")
    lines.append(f"2. SDAGD on the same networks: {', '.join(f'{e:.1f} %' for e in sdagd)} ({trained_text}).")
    return lines


def report_grid_edges(tune_records, out_dir) -> str:
    """Write grid_edges.md (the tuned values on an edge of their grid, :func:`sdagd.paper.report.grid_edges`)
    and warn about each: an edge choice means the grid may not hold the best value. Returns
    the path written."""
    edges = report.grid_edges(tune_records)
    path = os.path.join(out_dir, "grid_edges.md")
    text = report.grid_edges_markdown(edges)
    atomic_write_text(path, text + "\n")
    for e in edges:
        label, depth, activation = e["slot"]
        _say(f"WARNING: {label} hl-{depth} {activation}: {e['parameter']} = {e['chosen']:g} is on the "
             f"{e['side']} edge of its grid {e['grid']}: {report.grid_edge_reason(e)}")
    return path


def _paper_comparison(records, out_dir) -> str:
    """paper_comparison.md, judging the SDAGD variant the validation split chose per cell (both
    norm variants need tuning records in ``out_dir``); without them, the best on test as before."""
    from . import writeup

    tune_path = os.path.join(out_dir, "tune.jsonl")
    try:
        tune_records = load_records(tune_path) if os.path.exists(tune_path) else []
        choice = report.choose_variant(tune_records, writeup.VARIANTS) if tune_records else {}
    except ValueError:
        choice = {}
    if not choice:
        return report.paper_comparison_markdown(records)
    chosen = report.variant_records(records, choice, writeup.CHOSEN)
    return report.paper_comparison_markdown(records + chosen, judge=writeup.CHOSEN)


def _figures(records, out_dir):
    from . import plots  # imports matplotlib only when drawing

    written = {}
    tune_path = os.path.join(out_dir, "tune.jsonl")
    if os.path.exists(tune_path):  # a full run: the paper's figures, (a) SGD, (b) SDAGD chosen on validation
        from . import writeup

        try:
            choice = report.choose_variant(load_records(tune_path), writeup.VARIANTS)
            paths = writeup.figures_from(records, report.variant_records(records, choice, writeup.CHOSEN), out_dir)
            return {os.path.basename(p): p for p in paths}
        except ImportError as exc:
            _say(f"figures skipped: {exc}")
            return written
        except ValueError as exc:
            _say(f"paper-style figures skipped ({exc}); drawing every optimizer instead")
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
