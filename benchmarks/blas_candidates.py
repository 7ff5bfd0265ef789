"""Which BLAS should the core use? Times the GEMMs of one training step of hl-1..hl-5
(784-700xL-10, batch 100) and one large square GEMM (the machine's practical limit) through
each CBLAS found on this machine, each in its own process, at 1 and 2 threads.

    python benchmarks/blas_candidates.py            # all candidates found
    python benchmarks/blas_candidates.py --mkl DIR  # add MKL from an unpacked `mkl` wheel
    python benchmarks/blas_candidates.py --onednn DIR  # add oneDNN (an unpacked onednn-cpu-gomp wheel)

Candidates (skipped when absent): scipy-openblas32 (PyPI, what sdagd links) with the kernels
OpenBLAS picks for this processor and with its SkylakeX (AVX-512) kernels forced, Debian's
OpenBLAS (libopenblas0-pthread), Debian's BLIS (libblis4-pthread), the reference netlib BLAS
(libblas3), Intel MKL (PyPI `mkl`) and oneDNN's dnnl_sgemm (PyPI `onednn-cpu-gomp`), the
last two unpacked by hand.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEB = "/usr/lib/x86_64-linux-gnu"


def candidates(mkl_dir, onednn_dir=None):
    found = []
    try:
        import scipy_openblas32

        lib = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
        for core in ("Haswell", "SkylakeX"):
            found.append((f"scipy-openblas32 {scipy_openblas32.__version__}, {core} kernels", lib, "scipy_",
                          "OPENBLAS_NUM_THREADS", {"OPENBLAS_CORETYPE": core}))
    except ImportError:
        pass
    for name, path, env in [("Debian OpenBLAS 0.3.21", f"{DEB}/openblas-pthread/libopenblas.so.0", "OPENBLAS_NUM_THREADS"),
                            ("Debian BLIS 0.9", f"{DEB}/libblis.so.4", "BLIS_NUM_THREADS"),
                            ("netlib reference BLAS", f"{DEB}/blas/libblas.so.3", None)]:
        if os.path.exists(path):
            found.append((name, path, "", env, {}))
    if mkl_dir:
        libs = sorted(glob.glob(os.path.join(mkl_dir, "**", "libmkl_rt.so*"), recursive=True))
        if libs:
            found.append(("Intel MKL (PyPI mkl)", libs[0], "", "MKL_NUM_THREADS", {}))
    if onednn_dir:
        libs = sorted(glob.glob(os.path.join(onednn_dir, "**", "libdnnl.so*"), recursive=True))
        if libs:
            found.append(("oneDNN dnnl_sgemm (PyPI onednn-cpu-gomp)", libs[0], "dnnl", "OMP_NUM_THREADS", {}))
    return found


def measure(path, prefix):
    """Runs in a child process: returns GFLOP/s per depth and for the square GEMM."""
    sys.path.insert(0, HERE)
    from gemm import flops, load_cblas, load_dnnl, step_gemms, time_gemms

    _, sgemm = load_dnnl(path) if prefix == "dnnl" else load_cblas(path, prefix)
    out = {}
    for depth in range(1, 6):
        shapes = step_gemms([784] + [700] * depth + [10], 100)
        out[f"hl-{depth}"] = flops(shapes) / time_gemms(sgemm, shapes) / 1e9
    square = [(False, False, 2048, 2048, 2048)]
    out["square 2048"] = flops(square) / time_gemms(sgemm, square, seconds=2.0) / 1e9
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mkl", default=None, help="directory of an unpacked PyPI mkl wheel")
    parser.add_argument("--onednn", default=None, help="directory of an unpacked PyPI onednn-cpu-gomp wheel")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "PREFIX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1])))
        return
    cols = ["hl-1", "hl-2", "hl-3", "hl-4", "hl-5", "square 2048"]
    print("GFLOP/s of the GEMMs of one batch-100 SGD step (784-700xL-10), and of a 2048^3 GEMM\n")
    print(f"| BLAS | threads | " + " | ".join(cols) + " |")
    print("|" + " --- |" * (len(cols) + 2))
    for name, path, prefix, env_var, extra_env in candidates(args.mkl, args.onednn):
        for threads in (1, 2):
            if env_var is None and threads == 2:
                continue  # the reference BLAS is single-threaded
            env = dict(os.environ, MKL_THREADING_LAYER="GNU", **extra_env)  # MKL without Intel OpenMP
            for var in ("OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
                env[var] = str(threads)
            proc = subprocess.run([sys.executable, __file__, "--child", path, prefix], env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {name} | {threads} | failed: {proc.stderr.strip().splitlines()[-1:]} |")
                continue
            res = json.loads(proc.stdout)
            print(f"| {name} | {threads} | " + " | ".join(f"{res[c]:.0f}" for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
