"""Tables from sweep records: the paper's Table I (test MCR, mean +/- std over seeds) side by
side with the paper's own numbers, as markdown and CSV; and, from tuning records, the choices
made on the validation split (which SDAGD variant, which grid values sit on an edge). Needs
only NumPy."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

__all__ = ["PAPER_TABLE1", "table1_rows", "mcr_cell", "table1_markdown", "table1_csv", "paper_comparison_markdown",
           "tuning_scores", "tuned_choices", "choose_variant", "variant_records", "variant_choice_markdown",
           "grid_edges", "grid_edge_reason", "grid_edges_markdown", "class_shares", "constant_prediction_class"]

#: Tan & Lim, Table I: test MCR (%), mean of 3 runs: (depth, optimizer, activation) -> value.
PAPER_TABLE1 = {
    (1, "SGD", "sigmoid"): 10.73, (1, "SGD", "relu"): 10.95, (1, "SDAGD", "sigmoid"): 3.34, (1, "SDAGD", "relu"): 1.77,
    (2, "SGD", "sigmoid"): 12.98, (2, "SGD", "relu"): 10.07, (2, "SDAGD", "sigmoid"): 3.66, (2, "SDAGD", "relu"): 1.96,
    (3, "SGD", "sigmoid"): 33.71, (3, "SGD", "relu"): 9.32, (3, "SDAGD", "sigmoid"): 4.00, (3, "SDAGD", "relu"): 2.09,
    (4, "SGD", "sigmoid"): 88.65, (4, "SGD", "relu"): 9.24, (4, "SDAGD", "sigmoid"): 4.11, (4, "SDAGD", "relu"): 2.09,
    (5, "SGD", "sigmoid"): 89.91, (5, "SGD", "relu"): 9.22, (5, "SDAGD", "sigmoid"): 5.07, (5, "SDAGD", "relu"): 2.34,
}


def _paper_optimizer(label):
    """Which of the paper's columns an optimizer label compares with ("SDAGD-layer" -> SDAGD)."""
    for name in ("SDAGD", "SGD"):
        if label == name or label.startswith(name + "-") or label.startswith(name + " "):
            return name
    return None


def mcr_cell(values):
    """A table cell of test MCR % over seeds: "mean ± std", the mean alone for one seed, empty
    for none."""
    if not values:
        return ""
    mean = float(np.mean(values))
    if len(values) == 1:  # one seed: no spread to report
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {float(np.std(values, ddof=1)):.2f}"


def table1_rows(records) -> list:
    """``(depths, columns, by_cell, failed)``: the sorted depths, the (optimizer, activation)
    columns in order of appearance, ``by_cell[(depth, column)]`` = MCR % per successful seed,
    and ``failed[(depth, column)]`` = diverged or failed runs (they enter no mean)."""
    columns, by_cell, failed = [], {}, {}
    # One record per run (the last given): the same run twice (two sweeps into one file) must
    # not pass for two seeds. The run is named by its configuration as given (what
    # sdagd.paper.grid.run_key stores), so that relabelled copies (variant_records) stay apart.
    keys = [json.dumps(r["config"], sort_keys=True) for r in records]
    last = {key: i for i, key in enumerate(keys)}
    records = [r for i, r in enumerate(records) if last[keys[i]] == i]
    for r in records:
        c = r["config"]
        col = (c["optimizer"], c["activation"])
        if col not in columns:
            columns.append(col)
        cell = (c["depth"], col)
        if r["status"] == "ok":
            by_cell.setdefault(cell, []).append(100.0 * r["final_error"])
        else:
            failed[cell] = failed.get(cell, 0) + 1
    depths = sorted({r["config"]["depth"] for r in records})
    return depths, columns, by_cell, failed


def table1_markdown(records, paper: bool = True) -> str:
    """Markdown Table I: test MCR % as mean ± std over seeds (the mean alone for a single
    seed), with the paper's values."""
    depths, columns, by_cell, failed = table1_rows(records)
    # The paper's value goes after the last of our columns that compares with it (both SDAGD
    # norm variants compare with the paper's single SDAGD column).
    paper_after = {}
    for i, (opt, act) in enumerate(columns):
        # a paper column only where the paper has a number at one of these depths (none at hl-8)
        if paper and _paper_optimizer(opt) and any((d, _paper_optimizer(opt), act) in PAPER_TABLE1 for d in depths):
            paper_after[(_paper_optimizer(opt), act)] = i
    paper_at = {i: key for key, i in paper_after.items()}
    header = ["depth"]
    for i, (opt, act) in enumerate(columns):
        header.append(f"{opt} {act}")
        if i in paper_at:
            header.append(f"paper {paper_at[i][0]} {act}")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for depth in depths:
        row = [f"hl-{depth}"]
        for i, (opt, act) in enumerate(columns):
            text = mcr_cell(by_cell.get((depth, (opt, act)), []))
            n_bad = failed.get((depth, (opt, act)), 0)
            if n_bad:
                text = f"{text} ({n_bad} diverged/failed)".strip()
            row.append(text)
            if i in paper_at:
                value = PAPER_TABLE1.get((depth, *paper_at[i]))
                row.append("" if value is None else f"{value:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def table1_csv(records) -> str:
    """CSV, one line per (depth, optimizer, activation): mean, std, runs, failed, paper."""
    depths, columns, by_cell, failed = table1_rows(records)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["depth", "optimizer", "activation", "mcr_mean", "mcr_std", "runs", "failed", "paper_mcr"])
    for depth in depths:
        for opt, act in columns:
            values = by_cell.get((depth, (opt, act)), [])
            mean = float(np.mean(values)) if values else math.nan
            std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan  # one seed: no spread
            paper = PAPER_TABLE1.get((depth, _paper_optimizer(opt), act)) if _paper_optimizer(opt) else None
            w.writerow([depth, opt, act, f"{mean:.4f}", f"{std:.4f}", len(values), failed.get((depth, (opt, act)), 0),
                        "" if paper is None else f"{paper:.2f}"])
    return buf.getvalue()


def paper_comparison_markdown(records, optimizer="SDAGD", aim=0.10, judge=None) -> str:
    """Markdown, one line per cell of the paper's ``optimizer`` column: the paper's MCR, each of
    our columns that compares with it (mean over seeds and the difference relative to the
    paper), and a verdict for the best of them: "beats" or "trails" when the paper's value lies
    outside our mean +/- one standard deviation over seeds (and the relative difference is at
    least 2 %), "matches" otherwise; "aim met" when the best is at least ``aim`` (relative)
    below the paper.

    The best on the test set is a choice made on the test set: pass ``judge``, the label of a
    column chosen on the validation split (:func:`variant_records`), to judge that column
    instead; the "best" column then names it as "judged"."""
    depths, columns, by_cell, _ = table1_rows(records)
    activations = []
    for opt, act in columns:
        if _paper_optimizer(opt) == optimizer and act not in activations:
            activations.append(act)
    ours = {act: [opt for opt, a in columns if a == act and _paper_optimizer(opt) == optimizer]
            for act in activations}
    lines = [f"| activation | depth | paper % | ours: mean % (vs paper) | {'judged' if judge else 'best on test'} "
             f"| verdict | aim ({aim:.0%} below) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for act in activations:
        for depth in depths:
            paper = PAPER_TABLE1.get((depth, optimizer, act))
            if paper is None:
                continue
            means = {}
            for opt in ours[act]:
                values = by_cell.get((depth, (opt, act)), [])
                if values:
                    means[opt] = (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
            if not means:
                continue
            parts = [f"{opt} {m:.2f} ({(m - paper) / paper:+.0%})" for opt, (m, _) in means.items()]
            best = judge if judge in means else min(means, key=lambda opt: means[opt][0])
            mean, std = means[best]
            relative = (mean - paper) / paper
            if abs(mean - paper) <= std or abs(relative) < 0.02:
                verdict = "matches"
            else:
                verdict = "beats" if mean < paper else "trails"
            verdict += f" by {abs(relative):.0%}" if verdict != "matches" else f" ({relative:+.0%})"
            met = "yes" if relative <= -aim else "no"
            lines.append(f"| {act} | hl-{depth} | {paper:.2f} | {'; '.join(parts)} | {best} | {verdict} | {met} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tuning records
# The functions below read the records of :func:`sdagd.paper.tune` (one per candidate,
# labelled "<label>#<index>", scored on the validation split) and score them as tune() does:
# the mean over seeds of the final validation error, 1.0 for a run that did not finish; the
# lowest score wins, the candidate recorded first on a tie.

def tuning_scores(tune_records) -> dict:
    """``{(label, depth, activation): [(optimizer_config, score), ...]}``, the candidates of
    each tuning slot in the order they were recorded, each with its validation score (the
    mean over seeds of the final validation MCR as a fraction; 1.0 for a run that did not
    finish, as :func:`sdagd.paper.tune` scores it)."""
    errors = {}
    for r in tune_records:
        c = r["config"]
        slot = (c["optimizer"].rsplit("#", 1)[0], c["depth"], c["activation"])
        key = json.dumps(c["optimizer_config"], sort_keys=True)
        errors.setdefault(slot, {}).setdefault(key, []).append(r["final_error"] if r["status"] == "ok" else 1.0)
    return {slot: [(json.loads(key), float(np.mean(errs))) for key, errs in by_key.items()]
            for slot, by_key in errors.items()}


def tuned_choices(tune_records) -> dict:
    """``{(label, depth, activation): (optimizer_config, score)}``: the candidate each tuning
    slot chose (the lowest score; the first recorded on a tie), as tune() chooses."""
    out = {}
    for slot, candidates in tuning_scores(tune_records).items():
        best = candidates[0]
        for candidate in candidates[1:]:
            if candidate[1] < best[1]:
                best = candidate
        out[slot] = best
    return out


def choose_variant(tune_records, labels=("SDAGD-layer", "SDAGD-global")) -> dict:
    """``{(depth, activation): label}``: which of ``labels`` (here the two readings of the
    paper's mu_k) the validation split prefers in each cell, comparing the tuned candidate of
    each label by its validation score, exactly as lr and R are chosen. The variant is one
    more hyperparameter, so the test set plays no part; on a tie the first label wins."""
    choices = tuned_choices(tune_records)
    activations = list(dict.fromkeys(a for (label, d, a) in choices if label in labels))
    cells = sorted({(d, a) for (label, d, a) in choices if label in labels},
                   key=lambda cell: (activations.index(cell[1]), cell[0]))
    out = {}
    for depth, activation in cells:
        scored = [(choices[(label, depth, activation)][1], i, label) for i, label in enumerate(labels)
                  if (label, depth, activation) in choices]
        if len(scored) < len(labels):
            missing = [lab for lab in labels if (lab, depth, activation) not in choices]
            raise ValueError(f"hl-{depth} {activation}: no tuning records for {missing}; choose_variant "
                             f"needs validation scores of every variant in {list(labels)}")
        out[(depth, activation)] = min(scored)[2]
    return out


def variant_records(records, choice, label="SDAGD") -> list:
    """Copies of the records of the variant ``choice`` picked in each cell (see
    :func:`choose_variant`), relabelled ``label``; ``config["variant"]`` keeps the original
    label. Feeding them to :func:`table1_markdown` or :func:`sdagd.paper.plots.training_curves`
    gives the column or the panel of the validation-chosen variant."""
    out = []
    for r in records:
        c = r["config"]
        if choice.get((c["depth"], c["activation"])) == c["optimizer"]:
            out.append(dict(r, config=dict(c, optimizer=label, variant=c["optimizer"])))
    return out


def variant_choice_markdown(tune_records, records, labels=("SDAGD-layer", "SDAGD-global")) -> str:
    """Markdown, one line per cell: each variant's validation MCR (tuned candidate, seed 0 as
    tuned), the variant the validation split chooses, and the test MCR (mean ± std over seeds)
    of each variant, the chosen one in bold."""
    choices = tuned_choices(tune_records)
    chosen = choose_variant(tune_records, labels)
    _, _, by_cell, failed = table1_rows(records)
    head = ["cell"] + [f"{lab} validation %" for lab in labels] + ["chosen on validation"] + \
           [f"{lab} test %" for lab in labels]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (depth, activation), pick in chosen.items():
        row = [f"hl-{depth} {activation}"]
        row += [f"{100 * choices[(lab, depth, activation)][1]:.2f}" for lab in labels]
        row.append(pick)
        for lab in labels:
            text = mcr_cell(by_cell.get((depth, (lab, activation)), []))
            n_bad = failed.get((depth, (lab, activation)), 0)
            text = f"{text} ({n_bad} diverged/failed)".strip() if n_bad else text
            row.append(f"**{text}**" if lab == pick and text else text)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _tuned_parameters(candidates):
    """The optimizer settings that differ between a slot's candidates (lr, radius, ...)."""
    keys = sorted({k for cfg, _ in candidates for k in cfg})
    return [k for k in keys if len({json.dumps(cfg.get(k), sort_keys=True) for cfg, _ in candidates}) > 1]


#: At most this many values are added beyond one side of a slot's grid (:func:`grid_extensions`):
#: a score still improving after that many geometric steps is reported, not chased further.
MAX_GRID_EXTENSIONS = 3
#: Candidates per slot in the protocol's own grids (the first ones recorded in a slot); the
#: values after them were added by :func:`grid_extensions`.
BASE_GRID_SIZE = 3


def grid_edges(tune_records, flat_tolerance=0.005) -> list:
    """Tuning slots whose chosen value lies on an edge of its grid, as dicts: ``slot``
    (label, depth, activation), ``parameter``, ``grid`` (the values tried, sorted), ``chosen``,
    ``side`` ("lower" or "upper"), ``scores`` (validation MCR fraction per grid value) and
    ``flat`` (True when every candidate scored within ``flat_tolerance`` of the chosen one, so
    the grid gave no evidence either way: a tie, not an edge the optimum lies beyond).

    An edge choice means the optimum may lie outside the grid: extend the grid beyond that
    edge, or state why the edge is a natural bound. Only slots whose candidates differ in
    exactly one numeric setting can be judged; others are skipped."""
    chosen = tuned_choices(tune_records)
    edges = []
    for slot, candidates in tuning_scores(tune_records).items():
        varying = _tuned_parameters(candidates)
        if len(varying) != 1 or len(candidates) < 2:
            continue
        parameter = varying[0]
        values = [cfg.get(parameter) for cfg, _ in candidates]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        grid = sorted(set(values))
        pick = chosen[slot][0][parameter]
        if pick not in (grid[0], grid[-1]):
            continue
        scores = {cfg[parameter]: score for cfg, score in candidates}
        base = {cfg.get(parameter) for cfg, _ in candidates[:BASE_GRID_SIZE]}
        edges.append(dict(slot=slot, parameter=parameter, grid=grid, chosen=pick,
                          side="lower" if pick == grid[0] else "upper", scores=scores,
                          flat=all(abs(s - chosen[slot][1]) <= flat_tolerance for s in scores.values()),
                          added=[v for v in grid if v not in base]))
    edges.sort(key=lambda e: (e["slot"][0], e["slot"][2], e["slot"][1]))
    return edges



def _beyond(grid, side):
    """The next value of a geometric grid past its ``side`` edge (two significant digits)."""
    edge, neighbour = (grid[0], grid[1]) if side == "lower" else (grid[-1], grid[-2])
    value = edge * (edge / neighbour)
    return float(f"{value:.2g}")


def grid_extensions(tune_records, max_extensions=MAX_GRID_EXTENSIONS) -> list:
    """The candidates to add so that no tuned value stays on the edge of its grid without a
    reason: one ``(slot, optimizer_config)`` per slot whose choice is an edge in
    :func:`grid_edges`, the chosen configuration with the tuned parameter moved one
    geometric grid step beyond the edge (0.1, 0.3, 1 -> 0.033). A tie (every candidate within
    the flat tolerance, e.g. all at chance level) is extended upward only, once: only a larger
    step can leave a plateau sooner. Nothing is added to a side already extended
    ``max_extensions`` times (counted as values beyond the slot's first ``BASE_GRID_SIZE``), to
    a non-positive value, or to a flat slot already extended; :func:`grid_edges` then reports
    what is left. Repeating tune-and-extend until this is empty gives every slot an interior
    choice or a stated reason. Each entry is a dict: ``slot``, ``parameter``, ``value``,
    ``config`` (the candidate's optimizer configuration)."""
    out = []
    by_slot = tuning_scores(tune_records)
    for edge in grid_edges(tune_records):
        candidates = by_slot[edge["slot"]]
        grid, parameter = edge["grid"], edge["parameter"]
        base = sorted({cfg[parameter] for cfg, _ in candidates[:BASE_GRID_SIZE]})
        added = [v for v in grid if v not in base]
        if edge["flat"]:
            if added:
                continue
            side = "upper"
        else:
            side = edge["side"]
            beyond = [v for v in added if (v < base[0] if side == "lower" else v > base[-1])]
            if len(beyond) >= max_extensions:
                continue
        value = _beyond(grid, side)
        if value <= 0 or value in grid:
            continue
        chosen = tuned_choices(tune_records)[edge["slot"]][0]
        out.append(dict(slot=edge["slot"], parameter=parameter, value=value, config=dict(chosen, **{parameter: value})))
    return out


def grid_edge_reason(edge) -> str:
    """Plain words for one :func:`grid_edges` entry: what the edge means and what to do."""
    values = ", ".join(f"{v:g}" for v in edge["grid"])
    added = edge.get("added") or []
    if edge["flat"] and added:
        spread = [100 * s for s in edge["scores"].values()]
        return (f"a tie at every value tried ({values}; {', '.join(f'{v:g}' for v in added)} added beyond the grid), "
                f"{min(spread):.2f}–{max(spread):.2f} %: no {edge['parameter']} from {edge['grid'][0]:g} to "
                f"{edge['grid'][-1]:g} trains this cell in the budget, so the extension stops")
    beyond_added = [v for v in added if (v < edge["chosen"]) == (edge["side"] == "lower") and v != edge["chosen"]]
    if not edge["flat"] and len(added) >= MAX_GRID_EXTENSIONS and not beyond_added:
        return (f"still the best after {len(added)} values added {'below' if edge['side'] == 'lower' else 'above'} "
                f"the grid, the most the protocol adds: the optimum may lie further out")
    if edge["flat"]:
        spread = [100 * s for s in edge["scores"].values()]
        return (f"a tie, not a choice: every candidate ({values}) ends at {min(spread):.2f}–{max(spread):.2f} %, "
                f"so the first recorded is taken; whether any {edge['parameter']} trains this cell in the budget "
                "needs a wider grid")
    beyond = "below" if edge["side"] == "lower" else "above"
    return (f"no natural bound ({edge['parameter']} may be any positive number): the grid must be "
            f"extended {beyond} {edge['chosen']:g}")


def grid_edges_markdown(edges) -> str:
    """Markdown table of :func:`grid_edges`: slot, grid, choice, validation MCR per grid value
    and :func:`grid_edge_reason`; a sentence when there are none."""
    if not edges:
        return "No tuned value lies on an edge of its grid."
    lines = ["| slot | parameter | grid | chosen | edge | validation MCR % per value | what it means |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for e in edges:
        label, depth, activation = e["slot"]
        scores = ", ".join(f"{100 * e['scores'][v]:.2f}" for v in e["grid"])
        lines.append(f"| {label} hl-{depth} {activation} | {e['parameter']} | "
                     f"{', '.join(f'{v:g}' for v in e['grid'])} | {e['chosen']:g} | {e['side']} | {scores} | "
                     f"{grid_edge_reason(e)} |")
    return "\n".join(lines)


def class_shares(labels, n_classes=10) -> np.ndarray:
    """The share of each class among ``labels``."""
    labels = np.asarray(labels)
    return np.bincount(labels.astype(np.int64), minlength=n_classes)[:n_classes] / float(labels.size)


def constant_prediction_class(error, shares, tolerance=5e-5):
    """The class ``c`` whose always-predict-``c`` error ``1 - shares[c]`` equals the MCR
    ``error`` (a fraction) within ``tolerance`` (half a test image of 10,000), or None. An
    error that equals such a constant is what a network that outputs one class for every
    image scores; a network that trains essentially never lands on one exactly."""
    hits = [c for c, share in enumerate(shares) if abs((1.0 - share) - error) <= tolerance]
    return hits[0] if len(hits) == 1 else None
