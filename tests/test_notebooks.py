"""The tutorial notebooks (notebooks/*.ipynb) run end to end, in their small mode, and the
outputs stored with them are the ones they produce now.

Each notebook is executed in a fresh Jupyter kernel with ``SDAGD_NOTEBOOK_SMALL=1`` (about a
minute each on 2 cores) on the real MNIST from ``SDAGD_DATA``, from the notebooks' own folder
(small mode writes no file there). The notebooks end in assertion cells, so a broken library
fails here, not only a broken notebook.

The notebooks are committed executed in small mode, so that a reader on a code host sees the
tables and plots. After a change to the library or a notebook, store fresh outputs with::

    SDAGD_DATA=/dir/with/mnist python tests/test_notebooks.py

:func:`comparable` says what must agree between a stored and a fresh run: every text and
markdown output, with wall-clock times masked and other numbers to 3 significant digits (a CPU
with another instruction set may round the last bits differently), and the number and size of
the figures (PNG bytes differ between matplotlib versions).

Needs the ``notebooks`` and ``plot`` extras (nbclient, nbformat, ipykernel, matplotlib);
skipped without them.
"""
import base64
import os
import re
import struct
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

import sdagd  # noqa: E402  (after the skips: the kernel must import the same sdagd)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 600  # seconds per cell


def _kernel_manager():
    """A manager for the "python3" kernel of *this* interpreter.

    ``kernel_dirs=[]`` makes jupyter_client use ipykernel's own kernel spec (``sys.executable
    -m ipykernel_launcher``), never a "python3" spec installed elsewhere that may point at
    another Python without sdagd."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


def _kernel_env(mnist_dir):
    # Two threads whatever the machine or what earlier tests left in the environment (a Dask
    # worker sets OMP_NUM_THREADS=1): the notebooks print the count, and the results are the
    # same bits for any number of threads.
    env = dict(os.environ, SDAGD_NOTEBOOK_SMALL="1", SDAGD_DATA=str(mnist_dir), SDAGD_NUM_THREADS="2")
    env.pop("MPLBACKEND", None)  # the notebooks select the inline backend themselves
    # The kernel must import the sdagd under test: when that is a source tree (an in-place
    # build, or `python -m pytest` from the checkout), put it first on the kernel's path.
    root = Path(sdagd.__file__).resolve().parent.parent
    if root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


def _execute(name, mnist_dir, workdir=NOTEBOOKS):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:  # start from a clean notebook whatever is stored
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", km=_kernel_manager(),
                                     resources={"metadata": {"path": str(workdir)}}, record_timing=False)
    start = time.perf_counter()
    client.execute(env=_kernel_env(mnist_dir), cwd=str(workdir))  # raises CellExecutionError on an error
    return nb, time.perf_counter() - start


NOTEBOOK_NAMES = ["reproduce_table1.ipynb", "vanishing_gradient.ipynb"]
_SECONDS = re.compile(r"\d+(?:\.\d+)?(?=\s*s\b)")  # "12.3 s", "40 s wall time"
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _round_number(match):
    text = match.group(0)
    value = float(text)
    return text if value == int(value) and "." not in text and "e" not in text.lower() else f"{value:.3g}"


def _text(value):
    return "".join(value) if isinstance(value, list) else str(value)


def _png_size(data):
    """(width, height) of a base64 PNG, read from its header."""
    raw = base64.b64decode(_text(data))
    return struct.unpack(">II", raw[16:24])


class _Size(tuple):
    """A figure's (width, height) in pixels, equal to another within 3 %: fonts and matplotlib
    versions move a figure's tight bounding box by a few pixels."""

    def __eq__(self, other):
        return len(self) == len(other) and all(abs(a - b) <= 0.03 * max(a, b) for a, b in zip(self, other))

    def __ne__(self, other):
        return not self == other

    __hash__ = tuple.__hash__


def comparable(nb):
    """Per code cell, what a fresh run must reproduce: (kind, text) pairs for streams and text
    or markdown outputs, wall-clock seconds masked and numbers to 3 significant digits, and
    ("image/png", (width, height)) per figure."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # a stream arrives in chunks that depend on timing, and stdout and stderr interleave by
        # timing too: compare each stream's whole text per cell
        streams = {name: "".join(_text(o.text) for o in cell.get("outputs", [])
                                 if o.output_type == "stream" and o.name == name) for name in ("stdout", "stderr")}
        out = [(name, text) for name, text in streams.items() if text]
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                continue
            elif o.output_type in ("display_data", "execute_result"):
                data = o.get("data", {})
                if "image/png" in data:
                    out.append(("image/png", _Size(_png_size(data["image/png"]))))
                for kind in ("text/markdown", "text/plain"):
                    if kind in data and "image/png" not in data:
                        out.append((kind, _text(data[kind])))
                        break
            elif o.output_type == "error":
                out.append(("error", f"{o.ename}: {o.evalue}"))
        cells.append([(kind, _NUMBER.sub(_round_number, _SECONDS.sub("<t>", value)) if isinstance(value, str)
                       else value) for kind, value in out])
    return cells


def regenerate(mnist_dir):
    """Execute every notebook in small mode and store it with its outputs."""
    for name in NOTEBOOK_NAMES:
        nb, seconds = _execute(name, mnist_dir)
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, NOTEBOOKS / name)
        print(f"{name}: executed in {seconds:.0f} s and stored")


def _outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


@pytest.mark.slow
@pytest.mark.parametrize("name, needles", [
    ("reproduce_table1.ipynb", ["| depth |", "paper SGD sigmoid", "paper SDAGD relu", "| hl-5 |"]),
    ("vanishing_gradient.ipynb", ["∂E/∂W", "μ_k"]),
])
def test_notebook_runs(name, needles, mnist_dir):
    nb, seconds = _execute(name, mnist_dir)
    outputs = list(_outputs(nb))

    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, "\n".join(f"{o.ename}: {o.evalue}" for o in errors)
    assert all(cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code"), "a cell did not run"

    data = [o.get("data", {}) for o in outputs if o.output_type in ("display_data", "execute_result")]
    markdown = "\n".join(d["text/markdown"] for d in data if "text/markdown" in d)
    for needle in needles:
        assert needle in markdown, f"{name}: no markdown output containing {needle!r}"
    images = sum("image/png" in d for d in data)
    assert images >= 1, f"{name}: no image/png output (is matplotlib's inline backend working?)"
    print(f"{name}: {seconds:.0f} s, {images} figures")

    # the outputs stored in the repository are this run's (see the module's docstring)
    stored = comparable(nbformat.read(NOTEBOOKS / name, as_version=4))
    fresh = comparable(nb)
    assert len(stored) == len(fresh)
    for i, (old, new) in enumerate(zip(stored, fresh)):
        assert old == new, (f"{name}, code cell {i + 1}: the stored outputs are not current; "
                            f"run `python tests/test_notebooks.py` to store fresh ones")


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_is_stored_executed(name):
    """Valid nbformat, stored with the outputs of one clean run in small mode: every code cell
    ran, in order, without an error, and the run was the small one."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), f"{name}: not one clean run"
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{name}: stored with an error"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name}: stored without its figures"
    text = "".join(_text(o.get("text", "")) for o in outputs if o.output_type == "stream")
    assert "SMALL" in text, f"{name}: not stored in small mode"
    assert not any("execution" in cell.metadata for cell in code), f"{name}: stores cell timings"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_comparable_masks_times_and_rounds_numbers():
    def nb_with(text):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=text)])])

    a = comparable(nb_with("9 runs, 41 s wall time: loss 0.123456, 12.5 s, hl-5\n"))
    b = comparable(nb_with("9 runs, 38 s wall time: loss 0.123457, 3.0 s, hl-5\n"))
    assert a == b == [[("stdout", "9 runs, <t> s wall time: loss 0.123, <t> s, hl-5\n")]]
    assert comparable(nb_with("loss 0.1240")) != comparable(nb_with("loss 0.1230"))
    assert comparable(nb_with("10 runs")) != comparable(nb_with("9 runs"))
    assert _Size((361, 590)) == _Size((365, 585)) and _Size((361, 590)) != _Size((400, 590))


if __name__ == "__main__":
    if not os.environ.get("SDAGD_DATA"):
        sys.exit("set SDAGD_DATA=/dir/with/mnist (the notebooks run on the real MNIST)")
    regenerate(Path(os.environ["SDAGD_DATA"]))
