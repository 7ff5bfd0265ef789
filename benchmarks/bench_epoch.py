"""Speed of one training epoch of the paper's networks (784-700xL-10, batch 100) in the C
core, against the bare GEMMs of the same shapes through the same BLAS, in the same run.

    python benchmarks/bench_epoch.py                  # SGD and SDAGD, hl-1..hl-5
    python benchmarks/bench_epoch.py --rows 60000     # a full MNIST-sized epoch

Each configuration is timed --repeat times, alternating with its bare GEMMs, and the best of
each is kept: on a shared 2-core VM single timings vary by tens of percent.

FLOPs counted: the three GEMMs per layer of a step (forward 2*B*n_in*n_out, weight gradient
the same, backward delta W the same except for the first layer), plus for SDAGD the two
Hessian GEMMs (s^T (h o h) and s (W o W)). Elementwise work (activations, optimizer, squares)
is left out of the count but not out of the time, so "core / bare GEMM" is the share of the
GEMM speed the whole step keeps. Data are random (speed does not depend on the values).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdagd  # noqa: E402
from gemm import flops, load_cblas, step_gemms, time_gemms  # noqa: E402


def hessian_gemms(sizes, batch):
    """The extra GEMMs the truncated Hessian adds: same shapes as dW and delta W."""
    return [s for s in step_gemms(sizes, batch)[len(sizes) - 1:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10000, help="training rows per timed epoch (default 10000)")
    parser.add_argument("--depths", default="1,2,3,4,5")
    parser.add_argument("--threads", type=int, default=0, help="BLAS threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed epochs per configuration, alternating with the bare GEMMs; the best "
                             "of each is reported (shared machines are noisy; default 3)")
    args = parser.parse_args()
    if args.threads:
        sdagd.set_num_threads(args.threads)
    import scipy_openblas32 as sob

    _, sgemm = load_cblas(os.path.join(sob.get_lib_dir(), sob.get_library(fullname=True)), "scipy_")
    rng = np.random.default_rng(0)
    X = rng.random((args.rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.rows)
    square = [(False, False, 2048, 2048, 2048)]
    peak = flops(square) / time_gemms(sgemm, square, seconds=2.0) / 1e9
    print(f"BLAS: scipy-openblas32 {sob.__version__}, {sdagd.get_num_threads()} threads; "
          f"2048^3 SGEMM: {peak:.0f} GFLOP/s (the practical limit of this machine)\n")
    print("| net | optimizer | samples/s | core GFLOP/s | bare GEMM GFLOP/s | core / bare GEMM | bare GEMM / 2048^3 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for depth in (int(d) for d in args.depths.split(",")):
        sizes = [784] + [700] * depth + [10]
        for name, opt_factory in [("SGD", lambda: sdagd.optim.SGD(lr=0.1)),
                                  ("SDAGD", lambda: sdagd.optim.SDAGD(radius=0.3))]:
            shapes = step_gemms(sizes, 100) + (hessian_gemms(sizes, 100) if name == "SDAGD" else [])
            net = sdagd.MLP(sizes, activation="sigmoid")
            opt = opt_factory()
            net.fit(X[:1000], y[:1000], opt, epochs=1, progress=False)  # warm up
            seconds, gemm_seconds = float("inf"), float("inf")
            for _ in range(args.repeat):  # alternate, so both see the same machine conditions
                t0 = time.perf_counter()
                net.fit(X, y, opt, epochs=1, progress=False)
                seconds = min(seconds, time.perf_counter() - t0)
                gemm_seconds = min(gemm_seconds, time_gemms(sgemm, shapes, seconds=0.5))
            steps = -(-args.rows // 100)
            core = flops(shapes) * steps / seconds / 1e9
            bare = flops(shapes) / gemm_seconds / 1e9
            print(f"| hl-{depth} | {name} | {args.rows / seconds:,.0f} | {core:.0f} | {bare:.0f} | "
                  f"{core / bare:.2f} | {bare / peak:.2f} |", flush=True)


if __name__ == "__main__":
    main()
