"""Tuning: each optimizer's hyperparameters chosen per (depth, activation) by a sweep scored on a
validation split held out of the training set, never on the test set."""
from __future__ import annotations

import json
from typing import Iterable, Mapping

import numpy as np

from .. import optim
from .sweeps import sweep

__all__ = ["tune", "choose_tuned", "TuneResult"]


class TuneResult(dict):
    """``{(label, depth, activation): best optimizer}`` plus ``records`` and ``scores``
    (mean validation error per candidate). Call it as ``result(label)`` to get the callable
    ``(depth, activation) -> optimizer`` that :func:`sweep` accepts."""

    def __init__(self, best, records, scores):
        super().__init__(best)
        self.records, self.scores = records, scores

    def __call__(self, label):
        def choose(depth, activation):
            if (label, depth, activation) not in self:
                tuned = sorted(f"{k[0]} hl-{k[1]} {k[2]}" for k in self)
                raise ValueError(f"no tuned {label} for hl-{depth} {activation}; tuned: {', '.join(tuned)}")
            return self[(label, depth, activation)]

        return choose

    def table(self) -> str:
        """Markdown: the chosen hyperparameters and their validation MCR."""
        lines = ["| optimizer | depth | activation | chosen | validation MCR % |", "| --- | --- | --- | --- | --- |"]
        for (label, depth, activation), opt in sorted(self.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            score = self.scores[(label, depth, activation, json.dumps(opt.config(), sort_keys=True))]
            lines.append(f"| {label} | hl-{depth} | {activation} | {opt!r} | {100 * score:.2f} |")
        return "\n".join(lines)


def tune(candidates: Mapping[str, Iterable], depths=(1, 2, 3, 4, 5), activations=("sigmoid", "relu"),
         seeds=(0,), epochs: int = 2, n_val: int = 10000, **sweep_kwargs) -> TuneResult:
    """Pick each optimizer's hyperparameters per (depth, activation) on a validation split.

    ``candidates`` maps a label to the optimizers to try, e.g.
    ``{"SGD": [SGD(lr=0.1), SGD(lr=0.5)], "SDAGD": [SDAGD(radius=0.1), SDAGD(radius=0.3)]}``.
    Every candidate trains on the training set minus its last ``n_val`` images and is scored
    by the mean misclassification rate on those held-out images (never on the test set, as
    the paper's "fine-tuned" parameters require). Diverged or failed runs score 1.0. Other
    keyword arguments go to :func:`sweep` (``data``, ``executor``, ``workers``, ``out``...).
    """
    flat = {}
    for label, options in candidates.items():
        options = list(options)
        if not options:
            raise ValueError(f"no candidates for {label!r}")
        for i, optimizer in enumerate(options):
            flat[f"{label}#{i}"] = optimizer
    records = sweep(depths=depths, activations=activations, optimizers=flat, seeds=seeds, epochs=epochs,
                    evaluate_on="validation", n_val=n_val, **sweep_kwargs)
    return choose_tuned(records)


def choose_tuned(records) -> TuneResult:
    """The choice :func:`tune` makes from its runs' records (candidates labelled
    ``"<label>#<i>"``), also for records gathered from several sweeps (a grid extended per
    cell): per (label, depth, activation), the candidate with the lowest mean validation
    error over seeds; diverged or failed runs score 1.0."""
    errors, crashed = {}, {}
    for r in records:
        c = r["config"]
        label = c["optimizer"].rsplit("#", 1)[0]
        key = (label, c["depth"], c["activation"], json.dumps(c["optimizer_config"], sort_keys=True))
        errors.setdefault(key, []).append(r["final_error"] if r["status"] == "ok" else 1.0)
        slot = key[:3]
        crashed.setdefault(slot, []).append(r["status"] == "failed")
    for slot, flags in crashed.items():
        if all(flags):  # diverging is a verdict on a candidate; crashing everywhere is a bug
            first = next(r["error"] for r in records if r["status"] == "failed")
            raise RuntimeError(f"every tuning run for {slot[0]} hl-{slot[1]} {slot[2]} failed; first error: {first}")
    scores = {k: float(np.mean(v)) for k, v in errors.items()}
    best = {}
    for (label, depth, activation, cfg), score in scores.items():
        slot = (label, depth, activation)
        if slot not in best or score < best[slot][0]:
            best[slot] = (score, cfg)
    chosen = {slot: optim.from_config(json.loads(cfg)) for slot, (score, cfg) in best.items()}
    return TuneResult(chosen, records, scores)
