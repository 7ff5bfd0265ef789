"""Tables from sweep records: the paper's Table I (test MCR, mean +/- std over seeds) side by
side with the paper's own numbers, as markdown and CSV. Needs only NumPy."""
from __future__ import annotations

import csv
import io
import math

import numpy as np

__all__ = ["PAPER_TABLE1", "table1_rows", "table1_markdown", "table1_csv", "paper_comparison_markdown"]

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


def _cell(values):
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
    # not pass for two seeds.
    last = {r.get("key", i): i for i, r in enumerate(records)}
    records = [r for i, r in enumerate(records) if last[r.get("key", i)] == i]
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
        if paper and _paper_optimizer(opt):
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
            text = _cell(by_cell.get((depth, (opt, act)), []))
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


def paper_comparison_markdown(records, optimizer="SDAGD", aim=0.10) -> str:
    """Markdown, one line per cell of the paper's ``optimizer`` column: the paper's MCR, each of
    our columns that compares with it (mean over seeds and the difference relative to the
    paper), and a verdict for the best of them: "beats" or "trails" when the paper's value lies
    outside our mean +/- one standard deviation over seeds (and the relative difference is at
    least 2 %), "matches" otherwise; "aim met" when the best is at least ``aim`` (relative)
    below the paper."""
    depths, columns, by_cell, _ = table1_rows(records)
    activations = []
    for opt, act in columns:
        if _paper_optimizer(opt) == optimizer and act not in activations:
            activations.append(act)
    ours = {act: [opt for opt, a in columns if a == act and _paper_optimizer(opt) == optimizer]
            for act in activations}
    lines = [f"| activation | depth | paper % | ours: mean % (vs paper) | best | verdict | aim ({aim:.0%} below) |",
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
            best = min(means, key=lambda opt: means[opt][0])
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
