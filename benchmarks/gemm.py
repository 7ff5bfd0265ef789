"""Timing of bare single-precision GEMMs through a CBLAS loaded with ctypes.

Used by both benchmarks: the same matrix products a training step of the paper's networks
performs, without the rest of the step, as the peer every figure is compared with.
"""
from __future__ import annotations

import ctypes
import time

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def load_cblas(path: str, prefix: str = ""):
    """The sgemm function of the CBLAS in the shared library at ``path``."""
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    fn = getattr(lib, prefix + "cblas_sgemm")
    f, p, i = ctypes.c_float, ctypes.c_void_p, ctypes.c_int
    fn.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    fn.restype = None
    return lib, fn


def load_dnnl(path: str):
    """oneDNN's dnnl_sgemm (row-major, transposes as 'N'/'T') behind the CBLAS signature that
    load_cblas returns, so that the same timing code measures it."""
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    fn = lib.dnnl_sgemm
    i64, f, p = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    fn.argtypes = [ctypes.c_char, ctypes.c_char, i64, i64, i64, f, p, i64, p, i64, f, p, i64]

    def sgemm(order, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        assert order == ROW_MAJOR
        fn(b"T" if ta == TRANS else b"N", b"T" if tb == TRANS else b"N", m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)

    return lib, sgemm


def step_gemms(sizes, batch):
    """(trans_a, trans_b, M, N, K) of one SGD training step of an MLP with these widths,
    as the core runs them (csrc/mlp.c): forward a = h W^T, weight gradient dW = delta^T h,
    and the backward product delta W for every layer but the first."""
    shapes = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        shapes.append((False, True, batch, n_out, n_in))
    for l in range(len(sizes) - 2, -1, -1):
        n_in, n_out = sizes[l], sizes[l + 1]
        shapes.append((True, False, n_out, n_in, batch))
        if l > 0:
            shapes.append((False, False, batch, n_in, n_out))
    return shapes


def hessian_gemms(sizes, batch):
    """The GEMMs SDAGD's truncated Hessian adds to a step: s^T (h o h) per layer and s (W o W)
    for every layer but the first, the shapes of the weight gradient and backward products."""
    return step_gemms(sizes, batch)[len(sizes) - 1:]


def flops(shapes) -> float:
    return float(sum(2 * m * n * k for _, _, m, n, k in shapes))


def time_gemms(sgemm, shapes, seconds=1.0):
    """Seconds per pass over ``shapes`` (best of repeated timed blocks)."""
    rng = np.random.default_rng(0)
    bufs = []
    for ta, tb, m, n, k in shapes:
        A = rng.random((k, m) if ta else (m, k), dtype=np.float32)
        B = rng.random((n, k) if tb else (k, n), dtype=np.float32)
        C = np.zeros((m, n), dtype=np.float32)
        bufs.append((ta, tb, m, n, k, A, B, C))

    def one_pass():
        for ta, tb, m, n, k, A, B, C in bufs:
            sgemm(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, 1.0,
                  A.ctypes.data, A.shape[1], B.ctypes.data, B.shape[1], 0.0, C.ctypes.data, n)

    one_pass()  # warm up threads and caches
    reps, best = 1, float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        t0 = time.perf_counter()
        for _ in range(reps):
            one_pass()
        elapsed = (time.perf_counter() - t0) / reps
        best = min(best, elapsed)
        if elapsed * reps < 0.05:
            reps *= 2
    return best
