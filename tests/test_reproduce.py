"""The reproduction's recorded defaults against the records they come from."""
import json
from pathlib import Path

import pytest

from sdagd import reproduce

ROOT = Path(__file__).resolve().parents[1]
TUNE = ROOT / "results" / "full20" / "tune.jsonl"


def test_quick_choices_are_the_tuning_runs_best_after_three_epochs():
    """QUICK_CHOICES says where it comes from: the full protocol's tuning records, ranked by the
    validation error after the quick protocol's 3 epochs. Recomputed here from that file."""
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
