"""Speed of the CUDA backend on one GPU, against PyTorch on the same GPU, in a bounded run.

    python benchmarks/bench_gpu.py --budget 100       # the tables of BENCHMARKS.md (GPU section)
    python benchmarks/bench_gpu.py --quick            # small sizes: checks the script itself
    python benchmarks/bench_gpu.py --device cpu --quick   # dry run on a machine without a GPU

Each result is added to bench_gpu.json (in --out) as soon as it is measured, so a run cut short
(by --budget, which no new measurement starts after, or by a timeout) keeps what it finished.
Sections, each printed as a markdown table, most wanted first:
1. The machine's limits, measured: FP32 SGEMM rate (8192^3 through PyTorch with TF32 off) and
   device-to-device copy bandwidth.
2. K networks trained together (sdagd.fit_many), K = 1, 6, 30, 90, hl-5: network-steps per
   second and GFLOP/s against the measured SGEMM rate, in steady state.
3. A fixed slice of the protocol of RESULTS.md: per depth, its 18 main networks (sigmoid and
   ReLU; SGD and SDAGD with both norms; 3 seeds) trained together by fit_many for two epochs,
   and what 20 epochs of them cost at that rate (tuning not included).
4. One network (K = 1), hl-1..hl-5, SGD and SDAGD: ms per batch-100 step with the step recorded
   as a CUDA graph and without (every kernel launched), and the same steps in PyTorch eager.
Every fit is timed in three parts: the setup (the upload of the 188 MB training set from
pageable memory, the buffers), the first epoch (which also records the CUDA graphs) and the
steady-state epochs after it; rates are of the steady state.

FLOPs counted per step: 2*B*n_in*n_out per GEMM; forward 1, weight gradient 1, backward delta
1 (not in the first layer); SDAGD adds the two Hessian GEMMs. Elementwise work is not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

# PyTorch before sdagd's CUDA library: loaded first, torch binds its own cuBLAS, not the
# toolkit's that libsdagd_cuda.so links (both then use their own).
try:
    import torch
except ImportError:
    torch = None

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sdagd  # noqa: E402
from gemm import flops, hessian_gemms, step_gemms  # noqa: E402

B = 100


def step_flops(sizes, optimizer):
    return flops(step_gemms(sizes, B) + (hessian_gemms(sizes, B) if optimizer == "SDAGD" else []))


def paper_sizes(depth):
    return [784] + [700] * depth + [10]


def make_optimizer(name):
    return sdagd.optim.SGD(lr=0.1) if name == "SGD" else sdagd.optim.SDAGD(radius=0.3)


def table(title, header, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


# -- sdagd ----------------------------------------------------------------------------------

def timed_fit(fit):
    """(setup s, first epoch s, steady epoch s) of `fit()`, which returns the histories: setup is
    what the fit spends outside its epochs (the upload of the data, the buffers); steady is the
    fastest epoch after the first, which recorded the CUDA graphs."""
    t0 = time.perf_counter()
    histories = fit()
    total = time.perf_counter() - t0
    times = list(histories[0].time)
    return total - sum(times), times[0], min(times[1:]) if len(times) > 1 else float("nan")


def time_sdagd_epoch(sizes, optimizer, X, y, device, graphs=True, epochs=3):
    os.environ["SDAGD_CUDA_GRAPHS"] = "1" if graphs else "0"  # read when a trainer is made
    net = sdagd.MLP(sizes, activation="sigmoid", device=device)
    opt = make_optimizer(optimizer)
    try:
        return timed_fit(lambda: [net.fit(X, y, opt, epochs=epochs, progress=False)])
    finally:
        os.environ.pop("SDAGD_CUDA_GRAPHS", None)


def time_fit_many(nets, opts, X, y, epochs=2):
    return timed_fit(lambda: sdagd.fit_many(nets, opts, X, y, epochs=epochs, progress=False))


# -- PyTorch --------------------------------------------------------------------------------

class TorchNet:
    """The paper's network in PyTorch: sigmoid units, sigmoid output, MSE (1/B sum 1/2 ||.||^2)."""

    def __init__(self, torch, sizes, device):
        self.torch = torch
        g = torch.Generator().manual_seed(0)
        self.params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            r = (6.0 / (n_in + n_out)) ** 0.5
            W = ((torch.rand(n_out, n_in, generator=g) * 2 - 1) * r).to(device)
            self.params.append([W.requires_grad_(), torch.zeros(n_out, device=device).requires_grad_()])
        self.flat = [p for pair in self.params for p in pair]
        self.sgd = torch.optim.SGD(self.flat, lr=0.1)

    def sgd_step(self, X, D):
        h = X
        for W, b in self.params:
            h = self.torch.sigmoid(h @ W.T + b)
        loss = 0.5 * ((h - D) ** 2).sum() / X.shape[0]
        self.sgd.zero_grad(set_to_none=True)
        loss.backward()
        self.sgd.step()

    def sdagd_step(self, X, D, R=0.3, eps=1e-8):
        """SDAGD (docs/algorithms.md sections 4-5) by hand: forward, then backprop of delta and of the truncated
        Hessian's s, each layer updated with mu = ||g_layer|| / R once its products are done."""
        torch = self.torch
        with torch.no_grad():
            hs = [X]
            for W, b in self.params:
                hs.append(torch.sigmoid(hs[-1] @ W.T + b))
            Y, n = hs[-1], X.shape[0]
            f = Y * (1 - Y)
            delta, s = (Y - D) * f, f * f
            for l in range(len(self.params) - 1, -1, -1):
                W, b = self.params[l]
                inp = hs[l]
                dW, db = delta.T @ inp / n, delta.mean(0)
                hW, hb = s.T @ (inp * inp) / n, s.mean(0)
                if l > 0:
                    fp = inp * (1 - inp)
                    delta, s = (delta @ W) * fp, (s @ (W * W)) * fp * fp
                mu = torch.sqrt((dW * dW).sum() + (db * db).sum()) / R
                W -= dW / (mu + hW + eps)
                b -= db / (mu + hb + eps)


def time_torch_epoch(torch, sizes, optimizer, X, y, device, repeats=2):
    net = TorchNet(torch, sizes, device)
    Xd = torch.from_numpy(X).to(device)
    D = torch.nn.functional.one_hot(torch.from_numpy(y.astype(np.int64)), 10).float().to(device)
    step = net.sgd_step if optimizer == "SGD" else net.sdagd_step
    rows = X.shape[0]

    def epoch(limit=None):
        perm = torch.randperm(rows, device=device)
        for start in range(0, rows if limit is None else limit, B):
            idx = perm[start:start + B]
            step(Xd[idx], D[idx])
        if device == "cuda":
            torch.cuda.synchronize()

    epoch(limit=2000)  # warm up: cuBLAS handles, the caching allocator
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        epoch()
        best = min(best, time.perf_counter() - t0)
    return best


def machine_limits(torch, device, quick):
    if device != "cuda":
        return None, None
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 2048 if quick else 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    reps = 10
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    sgemm = 2 * n ** 3 * reps / (start.elapsed_time(end) / 1e3) / 1e9
    x = torch.empty(2 ** 28 if not quick else 2 ** 24, dtype=torch.float32, device=device)
    yb = torch.empty_like(x)
    yb.copy_(x)
    torch.cuda.synchronize()
    start.record()
    for _ in range(10):
        yb.copy_(x)
    end.record()
    torch.cuda.synchronize()
    bandwidth = 2 * x.numel() * 4 * 10 / (start.elapsed_time(end) / 1e3) / 1e9
    return sgemm, bandwidth


# -- the run ------------------------------------------------------------------------------

class Results:
    """bench_gpu.json, rewritten (atomically) after every measurement."""

    def __init__(self, folder, **fields):
        self.path = os.path.join(folder, "bench_gpu.json")
        os.makedirs(folder, exist_ok=True)
        self.data = dict(fields, finished=False)
        self.write()

    def add(self, section, entry):
        self.data.setdefault(section, []).append(entry)
        self.write()

    def set(self, **fields):
        self.data.update(fields)
        self.write()

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)


def protocol_group(depth, device, seeds):
    """One depth's main networks of the full protocol (its tuned lr and R aside)."""
    nets, opts = [], []
    for activation in ("sigmoid", "relu"):
        for make in (lambda: sdagd.optim.SGD(lr=0.1), lambda: sdagd.optim.SDAGD(radius=0.3),
                     lambda: sdagd.optim.SDAGD(radius=0.3, norm="global")):
            for seed in seeds:
                nets.append(sdagd.MLP(paper_sizes(depth), activation=activation, seed=seed, device=device))
                opts.append(make())
    return nets, opts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--budget", type=float, default=100.0,
                        help="seconds after which no new measurement starts (default 100)")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp"), help="folder for bench_gpu.json")
    args = parser.parse_args()
    device, quick = args.device, args.quick
    deadline = time.perf_counter() + args.budget
    if device == "cuda":
        ok, why = sdagd.device_available("cuda")
        if not ok:
            sys.exit(f"bench_gpu: {why}")
    depths = (1, 2) if quick else (1, 2, 3, 4, 5)
    rows = 2000 if quick else 60000
    rng = np.random.default_rng(0)
    X = rng.random((rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    steps = rows // B

    sgemm = bandwidth = None
    if torch is not None:
        sgemm, bandwidth = machine_limits(torch, device, quick)
    gpu_name = torch.cuda.get_device_name() if torch is not None and device == "cuda" else "none"
    print(f"GPU: {gpu_name}; torch {torch.__version__ if torch else 'not installed'}; sdagd {sdagd.__version__}; "
          f"FP32 SGEMM {sgemm or float('nan'):.0f} GFLOP/s, copy {bandwidth or float('nan'):.0f} GB/s (measured); "
          f"TF32 {'on' if os.environ.get('SDAGD_CUDA_TF32') == '1' else 'off'}; rows {rows}", flush=True)
    results = Results(args.out, device=device, quick=quick, rows=rows, gpu=gpu_name, sgemm_gflops=sgemm,
                      copy_gbs=bandwidth, budget_s=args.budget)

    def over_budget(section):
        if time.perf_counter() < deadline:
            return False
        if results.data.get("stopped_by_budget_in") is None:
            print(f"(budget of {args.budget:.0f} s spent: {section} and what follows are not measured)", flush=True)
            results.set(stopped_by_budget_in=section)
        return True

    # K networks together
    sizes = paper_sizes(2 if quick else 5)
    rows_out, stopped = [], False
    for optimizer in ("SGD", "SDAGD"):
        for K in ((1, 2, 4) if quick else (1, 6, 30, 90)):
            if stopped or over_budget("many"):
                stopped = True
                break
            nets = [sdagd.MLP(sizes, activation="sigmoid", seed=k, device=device) for k in range(K)]
            setup, first, steady = time_fit_many(nets, [make_optimizer(optimizer) for _ in range(K)], X, y)
            f = step_flops(sizes, optimizer) * K * steps
            entry = dict(optimizer=optimizer, K=K, setup_s=setup, first_epoch_s=first, epoch_s=steady,
                         net_steps_per_s=K * steps / steady, gflops=f / steady / 1e9)
            results.add("many", entry)
            share = f"{entry['gflops'] / sgemm:.2f}" if sgemm else "-"
            rows_out.append([optimizer, str(K), f"{setup:.2f}", f"{first:.2f}", f"{steady:.2f}",
                             f"{entry['net_steps_per_s']:,.0f}", f"{entry['gflops']:.0f}", share])
    table(f"K networks of hl-{len(sizes) - 2} together (one epoch of {rows:,} rows each; rates from the steady epoch)",
          ["optimizer", "K", "setup s", "first epoch s", "steady epoch s", "network-steps/s", "GFLOP/s",
           "of the SGEMM rate"], rows_out)

    # a slice of the protocol
    rows_out, main_runs = [], 0.0
    seeds = (0,) if quick else (0, 1, 2)
    for depth in ((1,) if quick else depths):
        if over_budget("protocol slice"):
            break
        nets, opts = protocol_group(depth, device, seeds)
        setup, first, steady = time_fit_many(nets, opts, X, y)
        estimate = 20 * steady * 60000 / rows  # 20 epochs of 60,000 rows, in steady state
        main_runs += estimate
        results.add("protocol_slice", dict(depth=depth, networks=len(nets), setup_s=setup, first_epoch_s=first,
                                           epoch_s=steady, main_runs_20_epochs_s=estimate))
        rows_out.append([f"hl-{depth}", str(len(nets)), f"{setup:.2f}", f"{first:.2f}", f"{steady:.2f}",
                         f"{estimate:.0f}"])
    table("A slice of the full protocol: each depth's networks together, one epoch "
          f"(20-epoch main runs of all depths measured: about {main_runs:.0f} s, tuning not included)",
          ["net", "networks", "setup s", "first epoch s", "steady epoch s", "20 epochs of 60,000 rows, s"], rows_out)

    # one network: graphs, plain launches, PyTorch
    rows_out = []
    for depth in depths:
        for optimizer in ("SGD", "SDAGD"):
            if over_budget("single"):
                break
            sizes = paper_sizes(depth)
            g_setup, g_first, graph = time_sdagd_epoch(sizes, optimizer, X, y, device, graphs=True)
            _, p_first, plain = time_sdagd_epoch(sizes, optimizer, X, y, device, graphs=False)
            peer = time_torch_epoch(torch, sizes, optimizer, X, y, device) if torch is not None else float("nan")
            f = step_flops(sizes, optimizer)
            entry = dict(depth=depth, optimizer=optimizer, setup_s=g_setup, first_epoch_s=g_first,
                         graph_ms=1e3 * graph / steps, plain_ms=1e3 * plain / steps, torch_ms=1e3 * peer / steps,
                         epoch_s=graph * 60000 / rows, gflops=f * steps / graph / 1e9)
            results.add("single", entry)
            rows_out.append([f"hl-{depth}", optimizer, f"{g_setup:.2f}", f"{g_first:.2f}", f"{entry['graph_ms']:.3f}",
                             f"{entry['plain_ms']:.3f}", f"{entry['plain_ms'] / entry['graph_ms']:.2f}",
                             f"{entry['torch_ms']:.3f}", f"{entry['torch_ms'] / entry['graph_ms']:.1f}",
                             f"{entry['epoch_s']:.2f}", f"{entry['gflops']:.0f}"])
    table("One network, batch 100 (ms per steady-state step; epoch = 60,000 rows)",
          ["net", "optimizer", "setup s", "first epoch s", "sdagd graph", "sdagd launches", "graph gain",
           "PyTorch eager", "PyTorch / sdagd", "epoch s", "GFLOP/s"], rows_out)
    results.set(finished=True)
    print(f"\nwritten: {results.path}")


if __name__ == "__main__":
    main()
