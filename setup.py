"""Build of the C core (csrc/) and its CPython extension (sdagd/_core.c).

The core's matrix products go through OpenBLAS from the `scipy-openblas32` wheel (the build
NumPy itself ships). Its symbols carry a ``scipy_`` prefix. The extension is linked without a
hard path to the library: `sdagd/_blas.py` loads it (RTLD_GLOBAL) before `_core` is imported,
so the package works wherever pip put the wheel, including build isolation.

Environment knobs:
  SDAGD_DEBUG=1     -O0 -g with AddressSanitizer/UBSan flags left to the caller's CFLAGS.
"""
import glob
import os
import sys

from setuptools import Extension, setup


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


# No -ffast-math: the divergence checks rely on NaN and inf behaving as IEEE says.
compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"]
compile_args += ["-O0", "-g"] if os.environ.get("SDAGD_DEBUG") else ["-O3"]

core = Extension(
    "sdagd._core",
    sources=sorted(glob.glob("csrc/*.c")) + ["sdagd/_core.c"],
    include_dirs=["csrc", numpy_include_dir(), blas_include_dir()],
    extra_compile_args=compile_args,
    depends=glob.glob("csrc/*.h"),
)

setup(ext_modules=[core])
