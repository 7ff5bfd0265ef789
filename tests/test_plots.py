"""sdagd.paper.plots draws the paper's figures: stacked panels (a), (b) sharing a log y-axis, one
line and one band per depth (or layer), the legend outside every panel."""
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from sdagd.paper import plots  # noqa: E402


def run(label, depth, seed, errors, grad=None, act="sigmoid"):
    history = {"train_error": errors}
    if grad is not None:
        history["grad_rms"] = grad
    return {"config": {"optimizer": label, "depth": depth, "activation": act, "seed": seed}, "status": "ok",
            "history": history}


def records():
    out = []
    for label, base in (("SGD", 0.9), ("SDAGD", 0.2)):
        for depth in (1, 2):
            for seed in range(3):
                errors = [base / (e + 1) * (1 + 0.1 * seed) / depth for e in range(4)]
                grad = [[10.0 ** -(6 - layer) * (1 + seed) for layer in range(depth + 1)] for _ in range(4)]
                out.append(run(label, depth, seed, errors, grad))
    out.append(run("Other", 1, 0, [0.5] * 4))
    return out


def test_training_curves_panels_bands_and_legend(tmp_path):
    path = tmp_path / "fig.png"
    fig = plots.training_curves(records(), "sigmoid", path=path, optimizers=("SGD", "SDAGD"))
    assert path.stat().st_size > 0
    axes = fig.axes
    assert [ax.get_title(loc="left") for ax in axes] == ["(a) SGD", "(b) SDAGD"]
    assert all(ax.get_yscale() == "log" for ax in axes)
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    for ax, base in zip(axes, (0.9, 0.2)):
        lines = ax.get_lines()
        assert len(lines) == 2 and len(ax.collections) == 2  # one line and one band per depth
        # depth 1: mean over seeds of base / (e + 1) * (1, 1.1, 1.2), in %
        np.testing.assert_allclose(lines[0].get_ydata(), [100 * base * 1.1 / (e + 1) for e in range(4)])
    # the legend lies above both panels, over no data
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in axes:
        assert legend.y0 >= ax.get_window_extent(renderer).y1 - 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["hl-1", "hl-2"]


def test_training_curves_default_panels_and_unknown_optimizer():
    fig = plots.training_curves(records(), "sigmoid")
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["(a) SGD", "(b) SDAGD", "(c) Other"]
    with pytest.raises(ValueError, match=r"no records of optimizer\(s\) \['Adam'\]"):
        plots.training_curves(records(), "sigmoid", optimizers=("SGD", "Adam"))


def test_gradient_flow_lines_per_layer():
    fig = plots.gradient_flow(records(), depth=2, optimizers=("SGD", "SDAGD"))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.get_lines()) == 3
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1e-6 * 2] * 4)  # mean of 1, 2, 3 x 1e-6
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["layer 1", "layer 2", "output"]
    assert not any(math.isinf(v) for v in ax.get_ylim())
