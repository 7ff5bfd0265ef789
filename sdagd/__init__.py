"""sdagd: stochastic diagonal approximate greatest descent and the vanishing-gradient
experiments of Tan & Lim, on a C core.

>>> import sdagd
>>> net = sdagd.MLP([784, 700, 700, 10], activation="sigmoid")   # the paper's hl-2
>>> net.n_params
1047210

Main entry points: :class:`sdagd.MLP`, :func:`sdagd.fit_many`, :mod:`sdagd.optim`,
:func:`sdagd.datasets.load_mnist`.
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

from . import datasets, optim, phases  # noqa: E402
from .history import History  # noqa: E402
from .mlp import MLP, DeviceError, DivergenceError, Evaluation  # noqa: E402
from .many import fit_many  # noqa: E402

from ._version import __version__  # noqa: E402,F401  (the one version: sdagd/_version.py)
__all__ = ["MLP", "fit_many", "History", "Evaluation", "DivergenceError", "DeviceError", "optim", "datasets", "phases",
           "set_num_threads", "get_num_threads", "blas_info", "device_available"]


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
    return _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of CPU threads in use (default: the number of cores)."""
    return _core.get_num_threads()


def blas_info() -> str:
    """The BLAS library and the kernels it runs, e.g. for benchmark reports."""
    return _core.blas_info()


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
