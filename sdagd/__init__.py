"""sdagd: stochastic diagonal approximate greatest descent and the vanishing-gradient
experiments of Tan & Lim, on a C core.

>>> import sdagd
>>> net = sdagd.MLP([784, 700, 700, 10], activation="sigmoid")   # the paper's hl-2
>>> net.n_params
1047210

Main entry points: :class:`sdagd.MLP`, :mod:`sdagd.optim`, :func:`sdagd.datasets.load_mnist`.
"""
# OpenBLAS must be in the process (loaded RTLD_GLOBAL by this import) before the extension,
# which is linked against its symbols without a fixed library path (see setup.py).
import scipy_openblas32 as _openblas  # noqa: F401

import numpy as _np

from . import _core, datasets, optim
from .history import History
from .mlp import MLP, DivergenceError, Evaluation

__version__ = "0.1.0"
__all__ = ["MLP", "History", "Evaluation", "DivergenceError", "optim", "datasets",
           "set_num_threads", "get_num_threads"]


def set_num_threads(n: int) -> int:
    """Set the number of BLAS threads the core uses (an integer from 1 to 4096); returns the
    previous number. Worker processes of a sweep use 1 each, so that they do not oversubscribe
    the cores."""
    # Checked here: the core would take True for 1, and raise OverflowError beyond a C long.
    if isinstance(n, bool) or not isinstance(n, (int, _np.integer)):
        raise TypeError(f"set_num_threads: n must be an integer from 1 to 4096, got {n!r}")
    if not 1 <= n <= 4096:
        raise ValueError(f"set_num_threads: n must be an integer from 1 to 4096, got {n}")
    return _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of BLAS threads in use."""
    return _core.get_num_threads()
