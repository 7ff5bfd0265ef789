"""sdagd: stochastic diagonal approximate greatest descent and the vanishing-gradient
experiments of Tan & Lim, on a C core.

>>> import sdagd
>>> net = sdagd.MLP([784, 700, 700, 10], activation="sigmoid")   # the paper's hl-2
>>> net.n_params
1047210

Main entry points: :class:`sdagd.MLP`, :func:`sdagd.fit_many`, :mod:`sdagd.optim`,
:func:`sdagd.datasets.load_mnist`. The paper's reproduction (sweeps, tuning, tables, figures)
is the subpackage :mod:`sdagd.paper`, imported on first use.
"""
import os as _os

import numpy as _np

from . import _blas  # noqa: F401  (OpenBLAS, with the right kernels, before the extension)


def _unbuilt_message(error: ImportError) -> str:
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.exists(_os.path.join(_os.path.dirname(here), "setup.py")):
        return (f"sdagd is being imported from its source tree ({here}), where the C extension is not "
                f"built. To use the installed sdagd, run from another directory or use the `sdagd` "
                f"command (e.g. `sdagd reproduce` rather than `python -m sdagd reproduce`); to work on "
                f"the source tree, build it in place with `pip install -e .`.")
    return f"the sdagd C extension cannot be loaded; reinstall sdagd (pip install --force-reinstall sdagd). ({error})"


try:
    from . import _core
except ImportError as _error:
    raise ImportError(_unbuilt_message(_error)) from None

# The CUDA backend is its own library beside the extension, loaded on first use of a GPU.
_cuda_library = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "libsdagd_cuda.so")
if _os.path.exists(_cuda_library):
    _core.set_cuda_library(_cuda_library)

from . import _cpu  # noqa: E402

# Threads and instruction set from the environment and the machine (sdagd/_cpu.py).
_cpu_reasons = _cpu.configure(_core)

from . import datasets, optim, phases  # noqa: E402
from .history import History  # noqa: E402
from .mlp import MLP, DeviceError, DivergenceError, Evaluation  # noqa: E402
from .many import fit_many  # noqa: E402

from ._version import __version__  # noqa: E402,F401  (the one version: sdagd/_version.py)
__all__ = ["MLP", "fit_many", "History", "Evaluation", "DivergenceError", "DeviceError", "optim", "datasets", "phases",
           "set_num_threads", "get_num_threads", "blas_info", "cpu_info", "device_available"]


def set_num_threads(n: int) -> int:
    """Set the number of CPU threads the core uses (an integer from 1 to 256); returns the
    previous number. The core runs independent matrix products side by side on its own
    threads, each with a single-threaded BLAS. Worker processes of a sweep use 1 each, so
    that they do not oversubscribe the cores."""
    # Checked here: the core would take True for 1, and raise OverflowError beyond a C long.
    if isinstance(n, bool) or not isinstance(n, (int, _np.integer)):
        raise TypeError(f"set_num_threads: n must be an integer from 1 to 256, got {n!r}")
    if not 1 <= n <= 256:
        raise ValueError(f"set_num_threads: n must be an integer from 1 to 256, got {n}")
    previous = _core.set_num_threads(int(n))
    _cpu_reasons["threads_why"] = "set_num_threads"
    return previous


def get_num_threads() -> int:
    """Number of CPU threads in use. The default is one per CPU this process may use (its
    affinity mask and cgroup quota), unless SDAGD_NUM_THREADS or OMP_NUM_THREADS say otherwise;
    cpu_info() says which applied."""
    return _core.get_num_threads()


def cpu_info() -> dict:
    """How the CPU backend runs here, each choice with the reason for it: ``threads`` and
    ``threads_why``, ``isa`` (the instruction set of the elementwise loops: avx512, avx2 or
    baseline) and ``isa_why``, ``blas`` (the OpenBLAS build and its kernels) and ``blas_why``;
    ``solo_spans``: how many times so far the threads ran slower than one thread would have
    (another process holding a core) and the core ran alone for a while instead."""
    return {"threads": _core.get_num_threads(), "threads_why": _cpu_reasons["threads_why"],
            "solo_spans": _core.cpu_solo_spans(),
            "isa": _core.cpu_loops(None), "isa_why": _cpu_reasons["isa_why"],
            "blas": _core.blas_info(), "blas_why": _blas.coretype_why}


def blas_info() -> str:
    """cpu_info() in one line, e.g. for benchmark reports: the BLAS library and the kernels it
    runs, the loops' instruction set and the threads, each with its reason."""
    i = cpu_info()
    return (f"{i['blas']} ({i['blas_why']}); loops: {i['isa']} ({i['isa_why']}); "
            f"threads: {i['threads']} ({i['threads_why']})")


def device_available(device: str = "cuda") -> tuple:
    """``(True, "")`` when ``device`` can be used here, else ``(False, why)``: the CUDA part was
    not built, its libraries or the driver cannot be loaded, or there is no GPU."""
    if device not in _core.DEVICES:
        raise ValueError(f"invalid device {device!r}; choose one of {sorted(_core.DEVICES)}")
    try:
        _core.device_check(_core.DEVICES[device])
    except _core.DeviceError as exc:
        return False, str(exc)
    return True, ""


def __getattr__(name):
    # sdagd.paper, the paper's reproduction, is not imported with the library: on first use of
    # `sdagd.paper` (an `import sdagd.paper` or `from sdagd import paper` needs no help).
    if name == "paper":
        import importlib

        return importlib.import_module(".paper", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
