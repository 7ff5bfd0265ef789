"""The paper's reproduction, apart from the library: Tan & Lim's vanishing-gradient experiment
(SDAGD against SGD over depth and activation on MNIST) as sweeps, tuning, results files, the
reproduction's protocols, tables, figures and the write-up.

>>> from sdagd import optim, paper
>>> records = paper.sweep(depths=(1, 2), activations=("relu",), seeds=(0,), epochs=1,
...                       train_limit=2000, workers=0, progress=False)   # doctest: +SKIP

Modules: :mod:`~sdagd.paper.grid` (configurations, run keys, the paper's sizes),
:mod:`~sdagd.paper.jobs` (one run or one group of runs), :mod:`~sdagd.paper.records` (results
files), :mod:`~sdagd.paper.workers` (worker processes), :mod:`~sdagd.paper.sweeps`,
:mod:`~sdagd.paper.tuning`, :mod:`~sdagd.paper.reproduce` (``sdagd reproduce``),
:mod:`~sdagd.paper.report` (tables), :mod:`~sdagd.paper.plots` (figures, matplotlib) and
:mod:`~sdagd.paper.writeup` (RESULTS.md).
"""
from .grid import DEFAULT_OPTIMIZERS, group_key, paper_sizes, run_key
from .jobs import run_group, run_job
from .records import load_records
from .sweeps import sweep
from .tuning import TuneResult, tune

__all__ = ["sweep", "tune", "TuneResult", "run_job", "run_group", "run_key", "group_key", "load_records",
           "paper_sizes", "DEFAULT_OPTIMIZERS"]
