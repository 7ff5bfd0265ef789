"""pytest plugin for running the tests on the CUDA backend: under the CPU emulation, or on a GPU.

Load it with ``-p pytest_cuda_emu`` (this folder on PYTHONPATH). Environment:
  SDAGD_EMU_LIBRARY=PATH   use this CUDA backend library (the emulated one, from build.py)
                           instead of the one installed beside sdagd
  SDAGD_CUDA_REQUIRED=1    the session stops before any test unless device_available("cuda"),
                           printing why; and any skipped test is a failure (a GPU test that
                           skips has tested nothing)
  SDAGD_FORCE_CUDA=1       networks made without a device= argument go to device="cuda", so
                           the CPU tests (against tests/reference.py) run on the CUDA backend
"""
import functools
import inspect
import os

import pytest


@pytest.hookimpl(trylast=True)  # after faulthandler's: the emulation's fault report comes first
def pytest_configure(config):
    import sdagd

    library = os.environ.get("SDAGD_EMU_LIBRARY")
    if library:
        if not os.path.exists(library):
            raise pytest.UsageError(f"SDAGD_EMU_LIBRARY={library} does not exist: build it with "
                                    "python tests/cuda_emu/build.py")
        sdagd._core.set_cuda_library(os.path.abspath(library))
    if os.environ.get("SDAGD_CUDA_REQUIRED") == "1":
        ok, why = sdagd.device_available("cuda")
        if not ok:
            raise pytest.UsageError(f"SDAGD_CUDA_REQUIRED=1 but the CUDA backend cannot be used: {why}")
    if os.environ.get("SDAGD_FORCE_CUDA") == "1":
        _default_device_cuda(sdagd.MLP)


def _default_device_cuda(cls):
    original = cls.__init__
    position = list(inspect.signature(original).parameters).index("device")  # counting self

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        if "device" not in kwargs and len(args) < position:
            kwargs["device"] = "cuda"
        original(self, *args, **kwargs)

    cls.__init__ = init


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("SDAGD_CUDA_REQUIRED") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped while SDAGD_CUDA_REQUIRED=1 (every test must run on the CUDA backend): {reason}"
