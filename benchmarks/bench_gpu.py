"""Speed of the CUDA backend on one GPU, against PyTorch on the same GPU, in one run.

    python benchmarks/bench_gpu.py                    # the tables of BENCHMARKS.md (GPU section)
    python benchmarks/bench_gpu.py --quick            # small sizes: checks the script itself
    python benchmarks/bench_gpu.py --device cpu --quick   # dry run on a machine without a GPU

Sections, each printed as a markdown table:
1. The machine's limits, measured: FP32 SGEMM rate (8192^3 through PyTorch with TF32 off) and
   device-to-device copy bandwidth.
2. One network (K = 1), hl-1..hl-5, SGD and SDAGD: ms per batch-100 step with the step
   recorded as a CUDA graph and without (every kernel launched), epoch time for 60,000 rows,
   GFLOP/s; and the same steps in PyTorch eager (SGD: autograd + torch.optim.SGD; SDAGD: the
   algorithm written by hand in tensors, as a user would).
3. K networks trained together (sdagd.fit_many), K = 1, 6, 30, 90: network-steps per second and
   GFLOP/s against the measured SGEMM rate.
4. The full protocol of RESULTS.md (hl-1..hl-5, sigmoid and ReLU, SGD + both SDAGD norms, 3
   seeds, lr and R tuned on a validation split) at 20 epochs on 60,000 images, end to end,
   timed; and what the same sweep costs in PyTorch, run one training after another, from its
   measured epoch times (running it would take most of an hour).

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

def time_sdagd_epoch(sizes, optimizer, X, y, device, graphs=True, repeats=2):
    os.environ["SDAGD_CUDA_GRAPHS"] = "1" if graphs else "0"  # read when a trainer is made
    net = sdagd.MLP(sizes, activation="sigmoid", device=device)
    opt = make_optimizer(optimizer)
    net.fit(X[:2000], y[:2000], opt, epochs=1, progress=False)  # warm up: buffers, graphs, cuBLAS
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.fit(X, y, opt, epochs=1, progress=False)  # returns after the epoch's last read-back
        best = min(best, time.perf_counter() - t0)
    os.environ.pop("SDAGD_CUDA_GRAPHS", None)
    return best


def time_fit_many(sizes, optimizer, K, X, y, device):
    nets = [sdagd.MLP(sizes, activation="sigmoid", seed=k, device=device) for k in range(K)]
    opts = [make_optimizer(optimizer) for _ in range(K)]
    sdagd.fit_many(nets, opts, X[:2000], y[:2000], epochs=1, progress=False)
    t0 = time.perf_counter()
    sdagd.fit_many(nets, opts, X, y, epochs=1, progress=False)
    return time.perf_counter() - t0


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

    epoch(limit=2000)
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


# -- the protocol ---------------------------------------------------------------------------

def protocol(device, epochs, quick, out):
    from sdagd import reproduce

    t0 = time.perf_counter()
    written = reproduce.run(out, protocol="full", epochs=epochs, device=device, progress=False, figures=False,
                            train_limit=2000 if quick else None, tune_epochs=1 if quick else None)
    return time.perf_counter() - t0, written


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--skip-protocol", action="store_true")
    parser.add_argument("--protocol-epochs", type=int, default=20)
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp"), help="folder for JSON and protocol output")
    args = parser.parse_args()
    device, quick = args.device, args.quick
    if device == "cuda":
        ok, why = sdagd.device_available("cuda")
        if not ok:
            sys.exit(f"bench_gpu: {why}")
    try:
        import torch
    except ImportError:
        torch = None
    depths = (1, 2) if quick else (1, 2, 3, 4, 5)
    rows = 2000 if quick else 60000
    rng = np.random.default_rng(0)
    X = rng.random((rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    results = {"device": device, "quick": quick}

    sgemm = bandwidth = None
    if torch is not None:
        sgemm, bandwidth = machine_limits(torch, device, quick)
    gpu_name = torch.cuda.get_device_name() if torch is not None and device == "cuda" else "none"
    print(f"GPU: {gpu_name}; torch {torch.__version__ if torch else 'not installed'}; sdagd {sdagd.__version__}; "
          f"FP32 SGEMM {sgemm or float('nan'):.0f} GFLOP/s, copy {bandwidth or float('nan'):.0f} GB/s (measured); "
          f"TF32 {'on' if os.environ.get('SDAGD_CUDA_TF32') == '1' else 'off'}")
    results.update(sgemm_gflops=sgemm, copy_gbs=bandwidth, gpu=gpu_name)

    steps = rows // B
    rows_out, single = [], []
    for depth in depths:
        sizes = paper_sizes(depth)
        for optimizer in ("SGD", "SDAGD"):
            graph = time_sdagd_epoch(sizes, optimizer, X, y, device, graphs=True)
            plain = time_sdagd_epoch(sizes, optimizer, X, y, device, graphs=False)
            peer = time_torch_epoch(torch, sizes, optimizer, X, y, device) if torch is not None else float("nan")
            f = step_flops(sizes, optimizer)
            entry = dict(depth=depth, optimizer=optimizer, graph_ms=1e3 * graph / steps, plain_ms=1e3 * plain / steps,
                         torch_ms=1e3 * peer / steps, epoch_s=graph * 60000 / rows, gflops=f * steps / graph / 1e9)
            single.append(entry)
            rows_out.append([f"hl-{depth}", optimizer, f"{entry['graph_ms']:.3f}", f"{entry['plain_ms']:.3f}",
                             f"{entry['plain_ms'] / entry['graph_ms']:.2f}", f"{entry['torch_ms']:.3f}",
                             f"{entry['torch_ms'] / entry['graph_ms']:.1f}", f"{entry['epoch_s']:.2f}",
                             f"{entry['gflops']:.0f}"])
    table("One network, batch 100 (ms per step; epoch = 60,000 rows)",
          ["net", "optimizer", "sdagd graph", "sdagd launches", "graph gain", "PyTorch eager", "PyTorch / sdagd",
           "epoch s", "GFLOP/s"], rows_out)
    results["single"] = single

    many, rows_out = [], []
    sizes = paper_sizes(2 if quick else 5)
    for optimizer in ("SGD", "SDAGD"):
        for K in ((1, 2, 4) if quick else (1, 6, 30, 90)):
            seconds = time_fit_many(sizes, optimizer, K, X, y, device)
            f = step_flops(sizes, optimizer) * K * steps
            entry = dict(optimizer=optimizer, K=K, seconds=seconds, net_steps_per_s=K * steps / seconds,
                         gflops=f / seconds / 1e9)
            many.append(entry)
            share = f"{entry['gflops'] / sgemm:.2f}" if sgemm else "-"
            rows_out.append([optimizer, str(K), f"{seconds:.2f}", f"{entry['net_steps_per_s']:,.0f}",
                             f"{entry['gflops']:.0f}", share])
    table(f"K networks of hl-{len(sizes) - 2} together (one epoch of {rows:,} rows each)",
          ["optimizer", "K", "epoch s", "network-steps/s", "GFLOP/s", "of the SGEMM rate"], rows_out)
    results["many"] = many

    if not args.skip_protocol:
        epochs = 1 if quick else args.protocol_epochs
        seconds, _ = protocol(device, epochs, quick, os.path.join(args.out, "protocol"))
        # PyTorch, one run after another: every run's epochs at the measured epoch times.
        per_run = {(e["depth"], e["optimizer"]): e["torch_ms"] * steps / 1e3 * 60000 / rows for e in single}
        from sdagd import reproduce

        seeds = {label: 1 if label in reproduce.ONE_SEED_LABELS else len(reproduce.FULL["seeds"])
                 for label in reproduce.tune_grid(epochs)}
        torch_total = sum(per_run.get((d, "SGD" if label == "SGD" else "SDAGD"), float("nan")) * epochs
                          * 2 * seeds[label] for d in depths for label in seeds)
        table(f"The full protocol at {epochs} epochs (tuning included)",
              ["sdagd s (measured)", "PyTorch s (main runs only, from epoch times)", "PyTorch / sdagd"],
              [[f"{seconds:.1f}", f"{torch_total:.0f}", f"{torch_total / seconds:.1f}"]])
        results["protocol"] = dict(epochs=epochs, seconds=seconds, torch_estimate_s=torch_total)
    with open(os.path.join(args.out, "bench_gpu.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
