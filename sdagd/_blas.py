"""Loads OpenBLAS (the `scipy-openblas32` wheel) for the C core, with the right kernels.

The extension is linked against OpenBLAS's symbols without a fixed library path; importing
`scipy_openblas32` loads the library into the process (RTLD_GLOBAL) first, wherever pip put it.
This copy of OpenBLAS is sdagd's alone (NumPy ships and loads its own).

OpenBLAS picks its kernels when it loads, from OPENBLAS_CORETYPE or else the processor's model.
For a processor newer than the OpenBLAS build it falls back to an older family (0.3.34 runs
AVX2 "Haswell" kernels on AMD Zen 5, which has AVX-512), and some machines set
OPENBLAS_CORETYPE=Haswell for all programs. When the processor has the AVX-512 subsets that
OpenBLAS's SkylakeX kernels use, sdagd loads its copy with those kernels, which run the
paper's GEMMs faster (BENCHMARKS.md), and restores OPENBLAS_CORETYPE right after, so that
other libraries and child processes see the environment unchanged. SDAGD_CPU_ISA=avx2
(or baseline) keeps OpenBLAS to the kernels of that instruction set, as it does the core's
own loops (sdagd/_cpu.py). SDAGD_BLAS_CORETYPE overrides the choice: a core name (e.g.
"Haswell"), or "none" for OpenBLAS's own choice. sdagd.cpu_info() reports what ran and why.
"""
from __future__ import annotations

import os

_AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
coretype_why = "not loaded yet"  # why OpenBLAS runs the kernels it runs, for sdagd.cpu_info()


def cpu_fields() -> dict:
    """The first processor's fields in /proc/cpuinfo ("flags", "model name", "cpu family",
    "model", ...); empty where there is no such file or it cannot be read."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:  # the end of the first processor's block
                        break
                    continue
                key, colon, value = line.partition(":")
                if colon:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_flags() -> set:
    return set(cpu_fields().get("flags", "").split())


# The OpenBLAS kernels that match an instruction set sdagd is asked to keep to (SDAGD_CPU_ISA).
_CORETYPE_FOR_ISA = {"avx512": "SkylakeX", "avx2": "Haswell", "baseline": "Prescott"}


def choose_coretype(environ=os.environ, flags=None) -> tuple[str | None, str]:
    """(the OpenBLAS core type to load sdagd's OpenBLAS with, or None for OpenBLAS's own choice;
    why)."""
    wanted = environ.get("SDAGD_BLAS_CORETYPE", "auto").strip()
    if wanted.lower() == "none":
        return None, "OpenBLAS's own choice (SDAGD_BLAS_CORETYPE=none)"
    if wanted and wanted.lower() != "auto":
        return wanted, f"SDAGD_BLAS_CORETYPE={wanted}"
    isa = environ.get("SDAGD_CPU_ISA", "auto").strip().lower()
    if isa in _CORETYPE_FOR_ISA and isa != "avx512":
        return _CORETYPE_FOR_ISA[isa], f"SDAGD_CPU_ISA={isa}"
    if _AVX512 <= (_cpu_flags() if flags is None else flags):
        return "SkylakeX", "the processor has AVX-512 (F, CD, BW, DQ, VL)"
    return None, "OpenBLAS's own choice for this processor (no AVX-512)"


def _load():
    """Loads the library with these variables set, and restores them right after: the core
    runs OpenBLAS single-threaded in its own thread pool, so OpenBLAS's own threads (started
    at load, and spinning when idle) would only take time from it."""
    global coretype_why
    coretype, coretype_why = choose_coretype()
    wanted = {"OPENBLAS_CORETYPE": coretype, "OPENBLAS_NUM_THREADS": "1"}
    saved = {name: os.environ.get(name) for name in wanted}
    for name, value in wanted.items():
        if value:
            os.environ[name] = value
    try:
        import scipy_openblas32  # noqa: F401  (loads the library, RTLD_GLOBAL)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_load()
