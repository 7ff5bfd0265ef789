"""The paper's grid as data: network sizes, the default optimizers, one JSON-able configuration
per run, the run keys that identify runs in results files, and the groups of runs that can
train together."""
from __future__ import annotations

import json
from typing import Mapping

from .. import optim
from ..mlp import MAX_WIDTHS, check_config, is_int

__all__ = ["DEFAULT_OPTIMIZERS", "paper_sizes", "run_key", "group_key", "group_configs", "grid_configs",
           "check_grid"]

#: The paper's two optimizers with the untuned defaults of docs/algorithms.md section 6.
DEFAULT_OPTIMIZERS = {"SGD": optim.SGD(lr=0.5), "SDAGD": optim.SDAGD(radius=0.3)}


def paper_sizes(depth: int, width: int = 700) -> list:
    """784-700xL-10: the paper's hl-L network."""
    return [784] + [width] * depth + [10]


def run_key(config: Mapping) -> str:
    """Identity of a run in a results file: its whole configuration, canonically."""
    return json.dumps(config, sort_keys=True)


def group_key(config: Mapping) -> str:
    """Runs with the same key train together (:func:`sdagd.paper.jobs.run_group`): one network
    shape and one protocol, and optimizers that need the Hessian diagonal at the same steps
    (none, every step, or every N steps), so that no network computes work it does not use."""
    opt = config["optimizer_config"]
    curvature = optim.curvature_schedule(opt)  # from the core's optimizer table
    shared = {k: v for k, v in config.items() if k not in ("activation", "optimizer", "optimizer_config", "seed")}
    return json.dumps([shared, curvature], sort_keys=True)


def group_configs(configs, limit=128):
    """Configurations in :func:`group_key` groups of at most ``limit``, in grid order."""
    groups = {}
    for config in configs:
        groups.setdefault(group_key(config), []).append(config)
    return [members[i:i + limit] for members in groups.values() for i in range(0, len(members), limit)]


def _resolve_optimizer(spec, depth, activation):
    """The optimizer ``spec`` gives the cell, or None where a callable leaves the cell out."""
    from_callable = callable(spec) and not isinstance(spec, optim.Optimizer)
    optimizer = spec(depth, activation) if from_callable else spec
    if optimizer is None and from_callable:
        return None
    if not isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"optimizers must map names to sdagd.optim optimizers (or callables "
                        f"(depth, activation) -> optimizer or None), got {type(optimizer).__name__}")
    return optimizer


def grid_configs(depths, activations, optimizers, seeds, epochs, batch_size, width, output, loss, train_limit,
                 evaluate_on, n_val, device="cpu"):
    """One configuration per run of the grid, in grid order (depth, activation, optimizer, seed)."""
    for depth in depths:
        for activation in activations:
            for label, spec in optimizers.items():
                optimizer = _resolve_optimizer(spec, depth, activation)
                if optimizer is None:  # the callable leaves this cell out
                    continue
                for seed in seeds:
                    config = {"depth": int(depth), "width": int(width), "activation": activation, "output": output,
                              "loss": loss, "optimizer": label, "optimizer_config": optimizer.config(),
                              "seed": int(seed), "epochs": int(epochs), "batch_size": int(batch_size),
                              "train_limit": int(train_limit) if train_limit else None,
                              "evaluate_on": evaluate_on, "n_val": int(n_val)}
                    if device != "cpu":  # GPU runs differ from CPU runs in rounding: their own key
                        config["device"] = device
                    yield config


def check_grid(depths, activations, seeds, width, output, loss):
    """The grid as lists, every value checked as the runs would check it, before any run."""
    grid = []
    for name, values, example in [("depths", depths, "(1, 2, 3)"), ("activations", activations, "('sigmoid',)"),
                                  ("seeds", seeds, "(0, 1, 2)")]:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{name} must be a sequence such as {example}, got {values!r}")
        grid.append(list(values))
    depths, activations, seeds = grid
    for name, values in [("depths", depths), ("activations", activations), ("seeds", seeds)]:
        repeated = sorted({repr(v) for v in values if sum(1 for w in values if w == v) > 1})
        if repeated:  # the same run twice: twice the work, and a spread of 0 taken for two seeds
            raise ValueError(f"{name} lists {', '.join(repeated)} more than once; give each value once")
    for depth in depths:  # int() would quietly make 1.7 a 1, and -1 a network without hidden layers
        if not is_int(depth) or not 1 <= depth <= MAX_WIDTHS - 2:
            raise ValueError(f"depths must hold integers from 1 to {MAX_WIDTHS - 2} (hidden layers), "
                             f"got {depth!r}")
    for depth in depths[:1]:
        for activation in activations:
            for seed in seeds:
                check_config(paper_sizes(depth, width), activation, output, loss, seed=seed)
    return depths, activations, seeds
