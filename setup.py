"""Build of the C core (csrc/), its CPython extension (sdagd/_core.c) and, when nvcc is found,
the CUDA backend (cuda/ -> sdagd/libsdagd_cuda.so). Sources and flags: build_core.py.

The core's matrix products go through OpenBLAS from the `scipy-openblas32` wheel (the build
NumPy itself ships). Its symbols carry a ``scipy_`` prefix. The extension is linked without a
hard path to the library: `sdagd/_blas.py` loads it (RTLD_GLOBAL) before `_core` is imported,
so the package works wherever pip put the wheel, including build isolation.
"""
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_core  # noqa: E402  (the build recipe beside this file)


def blas_include_dir():
    try:
        import scipy_openblas32
    except ImportError:
        sys.exit(
            "sdagd needs the 'scipy-openblas32' package to build (it provides OpenBLAS).\n"
            "Install it with:  pip install scipy-openblas32   (pip install . does this for you)"
        )
    return scipy_openblas32.get_include_dir()


def numpy_include_dir():
    import numpy

    return numpy.get_include()


class build_ext_with_cuda(build_ext):
    """Builds the extension, then the CUDA backend's shared library next to it."""

    def run(self):
        super().run()
        package_dir = Path("sdagd") if self.inplace else Path(self.build_lib) / "sdagd"
        build_core.build_cuda(package_dir / build_core.CUDA_LIBRARY, log=lambda m: print(m, file=sys.stderr))


core = Extension(
    "sdagd._core",
    sources=build_core.core_sources() + ["sdagd/_core.c"],
    include_dirs=["csrc", numpy_include_dir(), blas_include_dir()],
    extra_compile_args=build_core.C_FLAGS + build_core.optimisation_flags(),
    extra_link_args=build_core.LINK_FLAGS,
    depends=build_core.core_headers(),
)

setup(ext_modules=[core], cmdclass={"build_ext": build_ext_with_cuda})
