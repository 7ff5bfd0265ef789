"""The tutorial notebooks (notebooks/*.ipynb) run end to end, in their small mode.

Each notebook is executed in a fresh Jupyter kernel with ``SDAGD_NOTEBOOK_SMALL=1`` (about a
minute each on 2 cores) on the real MNIST from ``SDAGD_DATA``, in a temporary directory. The
notebooks end in assertion cells, so a broken library fails here, not only a broken notebook.
Needs the ``notebooks`` and ``plot`` extras (nbclient, nbformat, ipykernel, matplotlib);
skipped without them.
"""
import os
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
    env = dict(os.environ, SDAGD_NOTEBOOK_SMALL="1", SDAGD_DATA=str(mnist_dir))
    env.pop("MPLBACKEND", None)  # the notebooks select the inline backend themselves
    # The kernel must import the sdagd under test: when that is a source tree (an in-place
    # build, or `python -m pytest` from the checkout), put it first on the kernel's path.
    root = Path(sdagd.__file__).resolve().parent.parent
    if root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


def _execute(name, mnist_dir, workdir):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", km=_kernel_manager(),
                                     resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute(env=_kernel_env(mnist_dir), cwd=str(workdir))  # raises CellExecutionError on an error
    return nb, time.perf_counter() - start


def _outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


@pytest.mark.slow
@pytest.mark.parametrize("name, needles", [
    ("reproduce_table1.ipynb", ["| depth |", "paper SGD sigmoid", "paper SDAGD relu", "| hl-5 |"]),
    ("vanishing_gradient.ipynb", ["∂E/∂W", "μ_k"]),
])
def test_notebook_runs(name, needles, mnist_dir, tmp_path):
    nb, seconds = _execute(name, mnist_dir, tmp_path)
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


@pytest.mark.parametrize("name", ["reproduce_table1.ipynb", "vanishing_gradient.ipynb"])
def test_notebook_is_stored_clean(name):
    """Valid nbformat, stored without outputs (outputs belong to a run, not to the repository)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: cell {cell.get('id')} has outputs"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
