"""The CPU engine's scaling, memory and sweep throughput (BENCHMARKS.md, "CPU engine").

    python benchmarks/bench_cpu.py                 # all three sections (~5 minutes on 2 cores)
    python benchmarks/bench_cpu.py --section sweep

1. threads: ms per batch-100 step of hl-5 (SGD and SDAGD) with 1 and with 2 threads of the
   core's pool, and the ratio.
2. memory: the peak resident memory a fit of hl-5 with SDAGD adds to the process (VmHWM, read
   from /proc/self/status in a fresh subprocess, minus what it held before the network was
   made), against parameters + gradient + Hessian diagonal + optimizer state + one batch's
   activations (and their squares, which the Hessian's recursion needs).
3. sweep: runs per hour of one sweep (hl-1..hl-5 x sigmoid, ReLU x SGD, SDAGD, one epoch of
   10,000 random rows each), run as one worker per core with one thread each, as one worker
   with 2 threads, and as groups trained together (fit_many) in one worker with 2 threads.
4. tiles (not in "all"): GFLOP/s of one hidden layer's three products (784/700 -> 700, batch
   100) on one thread through the core's OpenBLAS, whole and cut into 2, 4 and 8 blocks as the
   CPU backend cuts them: what smaller blocks, which let a busy core's thread take fewer of
   them, cost in GEMM speed.
5. load (not in "all"): ms per step of hl-1, hl-3 and hl-5 with 1 and with 2 threads, on an
   idle machine and beside one busy process (a Python loop), each setting in its own worker
   process, interleaved round by round; the best and the median of the rounds.
Random data: speed does not depend on the values.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

ROWS = 10000


def warm_net(depth, optimizer, threads, rows):
    """(net, optimizer, X, y): an hl-``depth`` network on ``threads`` threads, random data of
    ``rows`` rows, after one short warm-up fit (buffers grown, pages touched)."""
    import sdagd

    sdagd.set_num_threads(threads)
    rng = np.random.default_rng(0)
    X, y = rng.random((rows, 784), dtype=np.float32), rng.integers(0, 10, rows)
    net = sdagd.MLP([784] + [700] * depth + [10])
    opt = sdagd.optim.SGD(lr=0.1) if optimizer == "SGD" else sdagd.optim.SDAGD(radius=0.3)
    net.fit(X[:1000], y[:1000], opt, progress=False)
    return net, opt, X, y


def step_ms(depth, optimizer, threads, repeats=3):
    net, opt, X, y = warm_net(depth, optimizer, threads, ROWS)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.fit(X, y, opt, progress=False)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / (ROWS / 100)


def threads_section():
    print("\n| net | optimizer | 1 thread ms/step | 2 threads ms/step | speed-up |\n| --- | --- | --- | --- | --- |")
    for optimizer in ("SGD", "SDAGD"):
        one, two = step_ms(5, optimizer, 1), step_ms(5, optimizer, 2)
        print(f"| hl-5 | {optimizer} | {one:.2f} | {two:.2f} | {one / two:.2f} |", flush=True)


MEMORY_PROBE = textwrap.dedent("""
    import json, numpy as np, sdagd
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    rng = np.random.default_rng(0)
    X, y = rng.random((10000, 784), dtype=np.float32), rng.integers(0, 10, 10000)
    Xv, yv = X[:2000].copy(), y[:2000].copy()
    before = status("VmRSS")
    net = sdagd.MLP([784] + [700] * 5 + [10])
    net.fit(X, y, sdagd.optim.SDAGD(radius=0.3), epochs=2, validation_data=(Xv, yv), progress=False)
    print(json.dumps({"added": status("VmHWM") - before, "P": net.n_params}))
""")


def memory_section():
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    P, B, widths = result["P"], 100, [700] * 5 + [10]
    # parameters, gradient, Hessian diagonal, SDAGD's state (the h in use): 4 slabs of P
    reference = 4 * P * 4 + 2 * B * sum(widths) * 4 + 2 * B * 784 * 4
    mib = 1 << 20
    print(f"\nhl-5 SDAGD fit (2 epochs of {ROWS:,} rows, validation every epoch): the process grew by "
          f"{result['added'] / mib:.1f} MiB at its peak; parameters + gradient + Hessian diagonal + optimizer "
          f"state + one batch's activations and their squares = {reference / mib:.1f} MiB; ratio "
          f"{result['added'] / reference:.2f}", flush=True)


def sweep_section():  # (the pool's spawned workers need main()'s __main__ guard)
    from sdagd import optim, paper

    rng = np.random.default_rng(0)
    data = ((rng.random((ROWS + 2000, 784), dtype=np.float32), rng.integers(0, 10, ROWS + 2000)),
            (rng.random((2000, 784), dtype=np.float32), rng.integers(0, 10, 2000)))
    grid = dict(depths=(1, 2, 3, 4, 5), activations=("sigmoid", "relu"), seeds=(0,), epochs=1,
                optimizers={"SGD": optim.SGD(lr=0.1), "SDAGD": optim.SDAGD(radius=0.3)}, data=data,
                train_limit=ROWS, progress=False)
    import sdagd

    modes = [("one worker per core, 1 thread each", dict(workers=2), 1),
             ("one worker, 2 threads", dict(workers=0), 2),
             ("groups together (fit_many), one worker, 2 threads", dict(workers=0, grouped=True), 2)]
    print("\n| sweep mode | wall s | runs per hour |\n| --- | --- | --- |")
    for name, kwargs, threads in modes:
        old = sdagd.set_num_threads(threads)
        t0 = time.perf_counter()
        records = paper.sweep(**grid, **kwargs)
        seconds = time.perf_counter() - t0
        sdagd.set_num_threads(old)
        assert all(r["status"] == "ok" for r in records), [r["error"] for r in records if r["status"] != "ok"]
        print(f"| {name} | {seconds:.1f} | {len(records) * 3600 / seconds:.0f} |", flush=True)


def tiles_section(seconds=0.5):
    import sdagd  # noqa: F401  (loads its OpenBLAS first)
    import scipy_openblas32 as sob
    from gemm import load_cblas, time_gemms

    lib, sgemm = load_cblas(os.path.join(sob.get_lib_dir(), sob.get_library(fullname=True)), "scipy_")
    lib.scipy_openblas_set_num_threads(1)

    def cut(n, blocks):  # as block_range in csrc/cpu/backend_cpu.c: boundaries on 16 floats
        edges = [0] + [n * j // blocks // 16 * 16 for j in range(1, blocks)] + [n]
        return [hi - lo for lo, hi in zip(edges[:-1], edges[1:])]

    print("\n| blocks | forward 784 -> 700 | weight gradient 700 x 784 | delta below 700 -> 700 | all three |")
    print("| --- | --- | --- | --- | --- |")
    for blocks in (1, 2, 4, 8):
        shapes = {"forward": [(False, True, 100, w, 784) for w in cut(700, blocks)],
                  "gradient": [(True, False, w, 784, 100) for w in cut(700, blocks)],
                  "below": [(False, False, 100, w, 700) for w in cut(700, blocks)]}
        rates = {k: 2 * sum(m * n * k_ for _, _, m, n, k_ in v) / time_gemms(sgemm, v, seconds) / 1e9
                 for k, v in shapes.items()}
        total = [x for v in shapes.values() for x in v]
        rate = 2 * sum(m * n * k_ for _, _, m, n, k_ in total) / time_gemms(sgemm, total, seconds) / 1e9
        print(f"| {blocks} | {rates['forward']:.1f} | {rates['gradient']:.1f} | {rates['below']:.1f} | {rate:.1f} |",
              flush=True)


def load_worker(depth, optimizer, threads, rows):
    """One setting of the load section, in its own process: an epoch of ``rows`` rows per line
    read from stdin, its ms per step written back."""
    net, opt, X, y = warm_net(depth, optimizer, threads, rows)
    print("ready", flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        net.fit(X, y, opt, progress=False)
        print(1e3 * (time.perf_counter() - t0) / (rows / 100), flush=True)


def load_section(rounds=6, rows=5000):
    import statistics

    print("\n| net | optimizer | competing busy processes | 1 thread ms/step (best, median) | "
          "2 threads ms/step (best, median) | 2 threads' speed-up (median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for depth, optimizer in ((1, "SGD"), (3, "SGD"), (3, "SDAGD"), (5, "SGD"), (5, "SDAGD")):
        workers = {t: subprocess.Popen([sys.executable, os.path.abspath(__file__), "--load-worker", str(depth), optimizer,
                                        str(t), str(rows)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                   for t in (1, 2)}
        for w in workers.values():
            assert w.stdout.readline().strip() == "ready"
        for load in (0, 1):
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
            times = {1: [], 2: []}
            try:
                for r in range(rounds):
                    for t in ((1, 2) if r % 2 == 0 else (2, 1)):
                        workers[t].stdin.write("go\n")
                        workers[t].stdin.flush()
                        times[t].append(float(workers[t].stdout.readline()))
            finally:
                for b in busy:
                    b.kill()
                    b.wait()
            med = {t: statistics.median(v) for t, v in times.items()}
            print(f"| hl-{depth} | {optimizer} | {load} | {min(times[1]):.2f}, {med[1]:.2f} | "
                  f"{min(times[2]):.2f}, {med[2]:.2f} | {med[1] / med[2]:.2f} |", flush=True)
        for w in workers.values():
            w.stdin.close()
            w.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=["threads", "memory", "sweep", "tiles", "load", "all"], default="all")
    parser.add_argument("--load-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_worker:
        depth, optimizer, threads, rows = args.load_worker
        return load_worker(int(depth), optimizer, int(threads), int(rows))
    import sdagd

    print(f"sdagd {sdagd.__version__}, {sdagd.blas_info()}, {os.cpu_count()} cores")
    if args.section in ("threads", "all"):
        threads_section()
    if args.section in ("memory", "all"):
        memory_section()
    if args.section in ("sweep", "all"):
        sweep_section()
    if args.section == "tiles":
        tiles_section()
    if args.section == "load":
        load_section()


if __name__ == "__main__":
    main()
