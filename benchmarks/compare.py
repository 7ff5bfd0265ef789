"""sdagd against PyTorch (eager and torch.compile) and JAX (jit): milliseconds per batch-100
training step of the paper's networks (784-700xL-10, L = 1..5), on this machine's CPU cores.

    python benchmarks/compare.py                                  # the full table (~10-25 min)
    python benchmarks/compare.py --nets 1 --rows 2000 --repeats 2 # a quick look
    python benchmarks/compare.py --only sdagd,jax --opts sdagd --json out.json

Install (the anchors are never dependencies of sdagd; each one missing is skipped with a note),
in a virtual environment of your choice, here `VENV`:

    python3 -m venv VENV
    VENV/bin/pip install numpy torch "jax[cpu]"
    VENV/bin/pip install -e .        # sdagd itself, from this checkout (builds the C core)
    VENV/bin/python benchmarks/compare.py

(The project's `bench` extra installs the same.) The peers may also live in an environment of
their own, without sdagd: `--peer-python PATH` (or the environment variable
SDAGD_BENCH_PYTHON) names the Python that runs the torch and JAX workers; the sdagd worker
always runs under the Python that runs this script. PyPI's Linux torch wheel is the CUDA
build: it pulls some GB of nvidia-* and cuda-* wheels, and `pip install --no-deps torch` does not
work around that, because libtorch is linked against those libraries and `import torch` fails
without them. They are only loaded, never used: every torch figure here runs on the CPU.
PyTorch's own CPU-only (`+cpu`) wheel index avoids the download where it is reachable.

What is timed (the same work in every framework)
-------------------------------------------------
One step: gather 100 shuffled rows, forward, MSE loss E = (1/B) sum 1/2 ||Y - onehot||^2 on a
sigmoid output, backward, update. Hidden activation sigmoid or relu. Optimizers:

* SGD, lr 0.1: sdagd's `optim.SGD`; torch: nn.Linear layers, autograd and `torch.optim.SGD`;
  JAX: `jax.value_and_grad` and `p - lr * g`.
* SDAGD, R = 0.3, per-layer norm: theta <- theta - g / (mu_l + h + 1e-8), mu_l = ||g_l|| / R
  over W_l and b_l together, h the truncated diagonal (Gauss-Newton) Hessian of the same
  batch. sdagd's `optim.SDAGD`; torch and JAX by hand: forward keeping the activations, one
  backward sweep computing delta and s with matmuls, the update per layer (no autograd).

A timed epoch visits --rows random rows (uniform in [0, 1), labels 0..9) in a fresh random
order, batch 100; ms/step = epoch time / steps. sdagd: `net.fit(..., epochs=1)` per epoch;
torch: `torch.randperm` and `index_select` per step; JAX: a numpy permutation sent to the
device per epoch, the gather inside the jitted step, `block_until_ready` at the end of the
epoch. torch.compile compiles the same step function as eager (default mode; for SGD Dynamo
splits it at `loss.backward()`, see the graph-break count in --json); JAX jits the whole step
with the parameters donated. Every framework gets one untimed warm-up epoch (this is where
compilation happens), then timed epochs; the best epoch is reported.

Fairness on a shared, noisy machine: each framework runs in its own worker process (so
OpenBLAS, MKL/OpenMP and XLA thread pools never share a process); the parent starts all
workers, then for each (net, activation, optimizer) runs one epoch in each framework in turn,
--repeats rounds, the order rotated every round, with a short pause between frameworks so
that spinning pool threads of the previous one have gone to sleep. Drift therefore hits all
frameworks alike, and the best epoch is kept for each. A best-of-3 is not enough when another
process holds a core: OpenBLAS and MKL (OpenMP) split each GEMM evenly over the threads, so one
stolen core can make an epoch 10x slower, while XLA's work-stealing pool loses far less, so a
busy minute would skew the comparison. Hence each worker reads /proc/stat around every epoch and
reports the share of the machine's CPU that other processes took meanwhile; an epoch counts
only when that share is at most --quiet, and more rounds follow (for all frameworks alike, up
to --max-repeats) until every framework has two quiet epochs within --settle of each other. A
figure that never got there is starred in the table; contended epochs show [bracketed].

Threads (--threads N, default 2): sdagd `sdagd.set_num_threads(N)` (OpenBLAS) and
OPENBLAS_NUM_THREADS=N; torch `torch.set_num_threads(N)` with OMP_NUM_THREADS=MKL_NUM_THREADS=N;
torch.compile also TORCHINDUCTOR_COMPILE_THREADS=1 (no compile-worker processes that could run
beside another framework's timing); JAX PJRT_NPROC=N, which sizes XLA's CPU intra-op pool (the
worker counts the pool's threads and the header reports it). The often-quoted
XLA_FLAGS="--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=N" does not take in
current jaxlib: the second token is ignored and the pool keeps one thread per core.
The header also prints OPENBLAS_CORETYPE and the kernel OpenBLAS chose: an environment that
forces a core type (e.g. Haswell on an AVX-512 machine) changes sdagd's GEMM speed.

FLOPs per step: the GEMMs only, 2*B*n_in*n_out each: forward, weight gradient, and the delta
for the layer below (not for the first layer); SDAGD adds s^T (h o h) per layer and s (W o W)
for all but the first layer (benchmarks/gemm.py `step_gemms` and `hessian_gemms`). "step / bare GEMM" is a cell's time over the time of exactly these GEMM
shapes through sdagd's BLAS (scipy-openblas32), with nothing else, timed in the sdagd worker
in the same rounds (benchmarks/gemm.py `time_gemms`); < 1 means the framework's own GEMMs
beat that BLAS.

Before timing, one small net (784-32-32-10) takes two steps of every optimizer and activation
in every framework from sdagd's initial parameters, and the parameters must match sdagd's
(`net.train_step`, `net.params`) to 1e-4 of the distance they moved (float32 throughout:
sdagd has no float64 path). It prints "anchors agree" or stops with the deviations and exit
status 2.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import queue
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gemm import flops, hessian_gemms, step_gemms  # noqa: E402  (the parent runs no BLAS work itself)

FRAMEWORKS = ("sdagd", "torch", "torch-compile", "jax")
PEERS = ("torch", "torch-compile", "jax")
BATCH = 100
LR, RADIUS, EPS = 0.1, 0.3, 1e-8
CHECK_SIZES = [784, 32, 32, 10]
CHECK_TOL = 1e-4  # deviation from sdagd / distance moved, per parameter array


def net_sizes(depth):
    return [784] + [700] * depth + [10]


def step_shapes(sizes, opt):
    return step_gemms(sizes, BATCH) + (hessian_gemms(sizes, BATCH) if opt == "sdagd" else [])


def step_flops(sizes, opt):
    return flops(step_shapes(sizes, opt))


def xavier(sizes, seed=0):
    """Xavier-uniform weights (n_out, n_in) and zero biases, as sdagd initialises them."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        r = np.sqrt(6.0 / (n_in + n_out))
        params.append((rng.uniform(-r, r, (n_out, n_in)).astype(np.float32), np.zeros(n_out, np.float32)))
    return params


def make_data(rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    return X, y, np.eye(10, dtype=np.float32)[y]


def save_params(path, cases):
    """cases: {name: [(W, b), ...]} -> one npz."""
    arrays = {}
    for name, params in cases.items():
        for l, (W, b) in enumerate(params):
            arrays[f"{name}/W{l}"], arrays[f"{name}/b{l}"] = np.asarray(W), np.asarray(b)
    np.savez(path, **arrays)


def load_params(npz, name):
    params, l = [], 0
    while f"{name}/W{l}" in npz:
        params.append((npz[f"{name}/W{l}"], npz[f"{name}/b{l}"]))
        l += 1
    return params


# ================================================================================================
# Workers: one process per framework, driven by JSON lines on stdin/stdout
# ================================================================================================

class SdagdBackend:
    def __init__(self, threads):
        import sdagd  # first: it loads its OpenBLAS with the kernels it chose (sdagd/_blas.py)
        import scipy_openblas32 as sob
        from gemm import load_cblas, time_gemms

        self.sdagd, self.time_gemms = sdagd, time_gemms
        sdagd.set_num_threads(threads)
        lib, self.sgemm = load_cblas(os.path.join(sob.get_lib_dir(), sob.get_library(fullname=True)), "scipy_")
        config = lib.scipy_openblas_get_config
        config.restype = ctypes.c_char_p
        self.set_blas_threads = lib.scipy_openblas_set_num_threads
        self.threads = threads
        self.info = {"sdagd": sdagd.__version__, "numpy": np.__version__,
                     "blas": f"scipy-openblas32 {sob.__version__} ({sdagd.blas_info()})",
                     "threads": sdagd.get_num_threads(),
                     "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)") + " in the environment"}
        self.net = None

    def _opt(self, opt):
        o = self.sdagd.optim
        return o.SGD(lr=LR) if opt == "sgd" else o.SDAGD(radius=RADIUS)

    def setup(self, depth, act, opt, X, y, D):
        self.X, self.y = X, y
        self.net = self.sdagd.MLP(net_sizes(depth), activation=act, seed=0)
        self.optimizer = self._opt(opt)
        self.shapes = step_shapes(net_sizes(depth), opt)
        return {}

    def epoch(self):
        self.net.fit(self.X, self.y, self.optimizer, epochs=1, batch_size=BATCH, progress=False)

    def gemm(self):
        # The bare GEMMs on the same BLAS and threads: OpenBLAS's own threads for the time of the
        # measurement (sdagd runs OpenBLAS single-threaded inside its own thread pool).
        self.set_blas_threads(self.threads)
        try:
            return self.time_gemms(self.sgemm, self.shapes, seconds=0.5)
        finally:
            self.set_blas_threads(1)

    def limit(self):
        """GFLOP/s of a large square SGEMM (2048^3) on all the threads: the machine's limit."""
        self.set_blas_threads(self.threads)
        try:
            shape = [(False, False, 2048, 2048, 2048)]
            return flops(shape) / self.time_gemms(self.sgemm, shape, seconds=2.0) / 1e9
        finally:
            self.set_blas_threads(1)

    def check_reference(self, path, acts, opts):
        X, y, _ = make_data(2 * BATCH, seed=1)
        cases = {}
        for act in acts:
            for opt in opts:
                net = self.sdagd.MLP(CHECK_SIZES, activation=act, seed=0)
                cases[f"{act}-{opt}/p0"] = net.params
                optimizer = self._opt(opt)
                net.train_step(X[:BATCH], y[:BATCH], optimizer)
                net.train_step(X[BATCH:], y[BATCH:], optimizer)
                cases[f"{act}-{opt}/p2"] = net.params
        save_params(path, cases)


class TorchBackend:
    """Eager, or torch.compile of the same step functions (compile=True)."""

    def __init__(self, threads, compile=False):
        import torch

        self.torch, self.compile = torch, compile
        torch.set_num_threads(threads)
        cfg = torch.__config__.show().splitlines()
        mkl = next((l.strip(" -") for l in cfg if "Math Kernel Library Version" in l), "?")
        dnn = next((l.strip(" -") for l in cfg if "MKL-DNN" in l or "oneDNN" in l), "?")
        self.info = {"torch": torch.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
                     "blas": f"{mkl.split(' Build')[0].split('-Product')[0]}; {dnn.split(' (Git')[0]}"}

    def build(self, sizes, act, opt, params, X, D):
        torch, nn = self.torch, self.torch.nn
        self.X, self.D = torch.from_numpy(X), torch.from_numpy(D)
        self.gen = torch.Generator().manual_seed(0)
        L = len(sizes) - 1
        if opt == "sgd":
            layers = []
            for l in range(L):
                lin = nn.Linear(sizes[l], sizes[l + 1])
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(params[l][0]))
                    lin.bias.copy_(torch.from_numpy(params[l][1]))
                layers += [lin, nn.Sigmoid() if l == L - 1 or act == "sigmoid" else nn.ReLU()]
            model = nn.Sequential(*layers)
            optimizer = torch.optim.SGD(model.parameters(), lr=LR)
            self.get_params = lambda: [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
                                       for m in model if isinstance(m, nn.Linear)]

            def step(X, D, idx):
                xb, db = X.index_select(0, idx), D.index_select(0, idx)
                optimizer.zero_grad(set_to_none=True)
                out = model(xb)
                loss = 0.5 * ((out - db) ** 2).sum() / xb.shape[0]
                loss.backward()
                optimizer.step()
                return loss.detach()
        else:
            # plain tensors, no requires_grad: autograd records nothing
            Ws = [torch.from_numpy(W.copy()) for W, _ in params]
            bs = [torch.from_numpy(b.copy()) for _, b in params]
            self.get_params = lambda: [(W.numpy().copy(), b.numpy().copy()) for W, b in zip(Ws, bs)]
            hidden = torch.sigmoid if act == "sigmoid" else torch.relu

            def step(X, D, idx):
                xb, db = X.index_select(0, idx), D.index_select(0, idx)
                inv_b = 1.0 / xb.shape[0]
                hs = [xb]
                for l in range(L):
                    a = torch.addmm(bs[l], hs[-1], Ws[l].t())
                    hs.append(torch.sigmoid(a) if l == L - 1 else hidden(a))
                y = hs[-1]
                diff = y - db
                loss = 0.5 * (diff * diff).sum() * inv_b
                fp = y * (1 - y)
                delta = diff * fp * inv_b  # 1/B folded in here: delta and s are linear in it
                s = fp * fp * inv_b
                for l in range(L - 1, -1, -1):
                    h_in, W, b = hs[l], Ws[l], bs[l]
                    gW, gb = delta.t() @ h_in, delta.sum(0)
                    hW, hb = s.t() @ (h_in * h_in), s.sum(0)
                    if l > 0:  # propagate with the weights before their update
                        d_below, s_below = delta @ W, s @ (W * W)
                        if act == "sigmoid":
                            fp = h_in * (1 - h_in)
                            delta, s = d_below.mul_(fp), s_below.mul_(fp * fp)
                        else:
                            fp = (h_in > 0).to(h_in.dtype)
                            delta, s = d_below.mul_(fp), s_below.mul_(fp)
                    mu = torch.sqrt((gW * gW).sum() + (gb * gb).sum()) / RADIUS
                    W.sub_(gW.div_(hW.add_(mu).add_(EPS)))  # in place: no temporaries in eager mode
                    b.sub_(gb.div_(hb.add_(mu).add_(EPS)))
                return loss

        if self.compile:
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            step = torch.compile(step)
        self.step = step

    def setup(self, depth, act, opt, X, y, D):
        sizes = net_sizes(depth)
        self.build(sizes, act, opt, xavier(sizes), X, D)
        self.rows = X.shape[0]
        return {}

    def epoch(self):
        torch = self.torch
        perm = torch.randperm(self.rows, generator=self.gen)
        for i in range(0, self.rows, BATCH):
            self.step(self.X, self.D, perm[i:i + BATCH])

    def after_warmup(self):
        if not self.compile:
            return {}
        breaks = self.torch._dynamo.utils.counters["graph_break"]
        return {"graph_breaks": int(sum(breaks.values())),
                "graph_break_reasons": sorted({reason.splitlines()[0][:120] for reason in breaks})}

    def check(self, ref, acts, opts, out):
        X, _, D = make_data(2 * BATCH, seed=1)
        cases = {}
        for act in acts:
            for opt in opts:
                self.build(CHECK_SIZES, act, opt, load_params(ref, f"{act}-{opt}/p0"), X, D)
                for i in (0, BATCH):
                    self.step(self.X, self.D, self.torch.arange(i, i + BATCH))
                cases[f"{act}-{opt}/p2"] = self.get_params()
        save_params(out, cases)


class JaxBackend:
    def __init__(self, threads):
        import jax
        import jax.numpy as jnp
        import jaxlib

        self.jax, self.jnp = jax, jnp
        self.info = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__,
                     "PJRT_NPROC": os.environ.get("PJRT_NPROC"), "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
                     "device": str(jax.devices()[0])}

    def build(self, sizes, act, opt, params, X, D):
        jax, jnp = self.jax, self.jnp
        L = len(sizes) - 1
        hidden = jax.nn.sigmoid if act == "sigmoid" else jax.nn.relu
        self.X, self.D = jnp.asarray(X), jnp.asarray(D)
        self.params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]

        def forward(params, xb):
            hs = [xb]
            for l, (W, b) in enumerate(params):
                a = hs[-1] @ W.T + b
                hs.append(jax.nn.sigmoid(a) if l == L - 1 else hidden(a))
            return hs

        if opt == "sgd":
            def loss_fn(params, xb, db):
                y = forward(params, xb)[-1]
                return 0.5 * jnp.sum((y - db) ** 2) / xb.shape[0]

            def step(params, X, D, perm, i):
                idx = perm[i]
                loss, g = jax.value_and_grad(loss_fn)(params, X[idx], D[idx])
                return jax.tree.map(lambda p, gp: p - LR * gp, params, g), loss
        else:
            def step(params, X, D, perm, i):
                idx = perm[i]
                xb, db = X[idx], D[idx]
                inv_b = 1.0 / xb.shape[0]
                hs = forward(params, xb)
                y = hs[-1]
                diff = y - db
                loss = 0.5 * jnp.sum(diff * diff) * inv_b
                fp = y * (1 - y)
                delta, s = diff * fp * inv_b, fp * fp * inv_b
                new = [None] * L
                for l in range(L - 1, -1, -1):
                    (W, b), h_in = params[l], hs[l]
                    gW, gb = delta.T @ h_in, delta.sum(0)
                    hW, hb = s.T @ (h_in * h_in), s.sum(0)
                    mu = jnp.sqrt(jnp.sum(gW * gW) + jnp.sum(gb * gb)) / RADIUS
                    new[l] = (W - gW / (hW + mu + EPS), b - gb / (hb + mu + EPS))
                    if l > 0:
                        d_below, s_below = delta @ W, s @ (W * W)
                        if act == "sigmoid":
                            fp = h_in * (1 - h_in)
                            delta, s = d_below * fp, s_below * (fp * fp)
                        else:
                            fp = (h_in > 0).astype(h_in.dtype)
                            delta, s = d_below * fp, s_below * fp
                return new, loss

        self.step = jax.jit(step, donate_argnums=0)
        self.get_params = lambda: [(np.asarray(W), np.asarray(b)) for W, b in self.params]

    def run(self, perm_rows):
        """Steps over the rows of perm_rows (steps, B) int32, on the device."""
        jnp = self.jnp
        perm = jnp.asarray(perm_rows)
        params = self.params
        for i in self.step_index[:perm_rows.shape[0]]:
            params, _ = self.step(params, self.X, self.D, perm, i)
        self.params = params
        self.jax.block_until_ready(self.params)

    def setup(self, depth, act, opt, X, y, D):
        sizes = net_sizes(depth)
        self.build(sizes, act, opt, xavier(sizes), X, D)
        self.rows = X.shape[0]
        self.rng = np.random.default_rng(0)
        self.step_index = [self.jnp.int32(i) for i in range(self.rows // BATCH)]
        return {}

    def epoch(self):
        self.run(self.rng.permutation(self.rows).astype(np.int32).reshape(-1, BATCH))

    def after_warmup(self):
        info = {"xla_pool_threads": _thread_names().get("tf_XLAEigen", 0)}
        try:  # which library XLA handed the dots to (YNNPACK, oneDNN, XNNPACK or its own)
            perm = self.jnp.zeros((self.rows // BATCH, BATCH), self.jnp.int32)
            text = self.step.lower(self.params, self.X, self.D, perm, self.step_index[0]).compile().as_text()
            info["dot_fusions"] = {k: text.count(k) for k in ("__ynn_fusion", "__onednn", "__xnn_fusion")
                                   if k in text} or "XLA's own"
        except Exception as exc:  # informative only
            info["dot_fusions"] = f"? ({type(exc).__name__})"
        return info

    def check(self, ref, acts, opts, out):
        X, _, D = make_data(2 * BATCH, seed=1)
        cases = {}
        for act in acts:
            for opt in opts:
                self.build(CHECK_SIZES, act, opt, load_params(ref, f"{act}-{opt}/p0"), X, D)
                self.step_index = [self.jnp.int32(0), self.jnp.int32(1)]
                self.run(np.arange(2 * BATCH, dtype=np.int32).reshape(2, BATCH))
                cases[f"{act}-{opt}/p2"] = self.get_params()
        save_params(out, cases)


def cpu_snapshot():
    """(wall s, CPU s all processes spent busy, CPU s this process spent), for foreign_share."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    ru = resource.getrusage(resource.RUSAGE_SELF)
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    return time.perf_counter(), busy, ru.ru_utime + ru.ru_stime


def foreign_share(before):
    """Share of the machine's CPU time that other processes (or the hypervisor: steal) took since
    ``before``: 0 on a quiet machine, 0.5 when someone else kept one of two cores busy. /proc/stat
    counts in ticks (10 ms), so short intervals read a few percent either way."""
    wall0, busy0, own0 = before
    wall1, busy1, own1 = cpu_snapshot()
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / max(wall1 - wall0, 1e-9) / (os.cpu_count() or 1)


def _thread_names():
    names = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        names[name] = names.get(name, 0) + 1
    return names


def worker_main(framework, threads, rows):
    """Answer JSON commands, one per line, on the original stdout; anything a library prints
    goes to stderr instead, so the protocol stays clean."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj):
        proto.write(json.dumps(obj) + "\n")

    try:
        if framework == "sdagd":
            backend = SdagdBackend(threads)
        elif framework in ("torch", "torch-compile"):
            backend = TorchBackend(threads, compile=framework == "torch-compile")
        elif framework == "jax":
            backend = JaxBackend(threads)
        else:
            raise ValueError(f"unknown framework {framework!r}")
    except ImportError as exc:
        send({"ok": False, "missing": True, "error": f"not installed ({exc})"})
        return
    except Exception as exc:
        traceback.print_exc()
        send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    send({"ok": True, "info": backend.info})
    X, y, D = make_data(rows)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            kind = cmd["cmd"]
            if kind == "quit":
                send({"ok": True})
                return
            if kind == "setup":  # build, then one untimed warm-up epoch (compiles)
                t0 = time.perf_counter()
                backend.setup(cmd["net"], cmd["act"], cmd["opt"], X, y, D)
                backend.epoch()
                reply = {"ok": True, "setup_s": time.perf_counter() - t0}
                reply.update(getattr(backend, "after_warmup", dict)())
            elif kind == "epoch":
                before = cpu_snapshot()
                t0 = time.perf_counter()
                backend.epoch()
                reply = {"ok": True, "seconds": time.perf_counter() - t0, "foreign": foreign_share(before)}
            elif kind == "limit":
                before = cpu_snapshot()
                reply = {"ok": True, "gflops": backend.limit(), "foreign": foreign_share(before)}
            elif kind == "gemm":
                before = cpu_snapshot()
                reply = {"ok": True, "seconds": backend.gemm(), "foreign": foreign_share(before)}
            elif kind == "check_reference":
                backend.check_reference(cmd["path"], cmd["acts"], cmd["opts"])
                reply = {"ok": True}
            elif kind == "check":
                with np.load(cmd["ref"]) as ref:
                    backend.check(ref, cmd["acts"], cmd["opts"], cmd["out"])
                reply = {"ok": True}
            else:
                raise ValueError(f"unknown command {kind!r}")
        except Exception as exc:
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        send(reply)


# ================================================================================================
# Parent: starts the workers, checks them, interleaves the timings, prints the tables
# ================================================================================================

class WorkerError(RuntimeError):
    pass


class Worker:
    def __init__(self, framework, args, logdir):
        self.framework = framework
        env = dict(os.environ)
        n = str(args.threads)
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, PYTHONUNBUFFERED="1")
        if framework == "jax":
            env["PJRT_NPROC"] = n  # sizes XLA's CPU intra-op thread pool
        if framework == "torch-compile":
            env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # compile in-process: no pool busy in the background
        if args.isa == "avx2":  # every framework kept to AVX2 (+FMA) code, on a machine with more
            env.update(SDAGD_CPU_ISA="avx2", ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
            if framework == "jax":
                env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX2").strip()
        self.log_path = os.path.join(logdir, f"{framework}.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable if framework == "sdagd" else args.peer_python, os.path.abspath(__file__),
             "--worker", framework, "--threads", n,
             "--rows", str(args.rows)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True, bufsize=1)
        self.replies = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self._wait(300)

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.replies.put(json.loads(line))
            except json.JSONDecodeError:
                pass
        self.replies.put(None)

    def _tail(self):
        try:
            with open(self.log_path, "rb") as f:
                lines = [l for l in f.read().decode(errors="replace").splitlines() if l.strip()]
            return lines[-1][:200] if lines else ""
        except OSError:
            return ""

    def _wait(self, timeout):
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerError(f"no answer in {timeout} s") from None
        if reply is None:
            self.proc.wait()
            raise WorkerError(f"worker died (exit {self.proc.returncode}): {self._tail()}")
        return reply

    @property
    def alive(self):
        return self.proc.poll() is None

    def request(self, timeout=900, **cmd):
        if not self.alive:
            raise WorkerError("worker is not running")
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(f"worker died: {self._tail()}") from None
        reply = self._wait(timeout)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error", "failed"))
        return reply

    def close(self):
        if self.alive:
            try:
                self.request(timeout=30, cmd="quit")
            except WorkerError:
                pass
        self.kill()
        self.log.close()

    def kill(self):
        if self.alive:
            self.proc.kill()
        self.proc.wait()


def start_load(n):
    """n competing processes, each a busy pure-Python loop (one core's worth of work)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def model_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return ""
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""


def say(*parts):
    print(*parts, file=sys.stderr, flush=True)


def run_check(workers, ref_worker, args, tmp):
    """Two steps on a small net in every framework from sdagd's start; returns (ok, report)."""
    ref_path = os.path.join(tmp, "ref.npz")
    ref_worker.request(cmd="check_reference", path=ref_path, acts=args.acts, opts=args.opts)
    ref = np.load(ref_path)
    report, ok = {}, True
    for fw, w in workers.items():
        if fw == "sdagd":
            continue
        out = os.path.join(tmp, f"check-{fw}.npz")
        try:
            w.request(cmd="check", ref=ref_path, out=out, acts=args.acts, opts=args.opts)
        except WorkerError as exc:
            report[fw] = {"error": str(exc)}
            say(f"check {fw}: could not run: {exc}")
            continue
        got = np.load(out)
        report[fw] = {}
        for act in args.acts:
            for opt in args.opts:
                case = f"{act}-{opt}"
                p0, want, have = (load_params(ref, f"{case}/p0"), load_params(ref, f"{case}/p2"),
                                  load_params(got, f"{case}/p2"))
                worst, worst_param = 0.0, 0.0
                for (W0, b0), (W, b), (Wh, bh) in zip(p0, want, have):
                    for a0, a, ah in ((W0, W, Wh), (b0, b, bh)):
                        moved = np.linalg.norm(a - a0)
                        dev = np.linalg.norm(ah.astype(np.float64) - a)
                        worst = max(worst, dev / moved if moved > 0 else (0.0 if dev == 0 else np.inf))
                        worst_param = max(worst_param, dev / max(np.linalg.norm(a), 1e-30))
                report[fw][case] = {"dev_over_moved": worst, "dev_over_params": worst_param}
                if not worst <= CHECK_TOL:
                    ok = False
    return ok, report


def pick(series, args):
    """(best time, trustworthy) of one framework's epochs in a cell. Only quiet epochs count (other
    processes took at most --quiet of the CPU meanwhile); trustworthy when at least two were quiet
    and the two fastest of those agree within --settle. Without a quiet epoch: the best of all."""
    quiet = sorted(t for t, f in zip(series["ms"], series["foreign"]) if f <= args.quiet)
    if not quiet:
        return min(series["ms"]), False
    return quiet[0], len(quiet) >= 2 and quiet[1] <= quiet[0] * (1 + args.settle)


def gflop_s(cell, ms):
    return f"{cell['flops_per_step'] / ms / 1e6:.0f}" if ms and cell.get("flops_per_step") else "—"


def fmt_ms(cell):
    if cell is None:
        return "—"
    if "ms" in cell:
        return f"{cell['ms']:.2f}" + ("" if cell.get("settled", True) else "*")
    return cell["note"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See the module docstring for what is timed.")
    p.add_argument("--nets", default="1,2,3,4,5", help="hidden-layer counts L of 784-700xL-10 (default 1,2,3,4,5)")
    p.add_argument("--acts", default="sigmoid,relu", help="hidden activations (default sigmoid,relu)")
    p.add_argument("--opts", default="sgd,sdagd", help="optimizers (default sgd,sdagd)")
    p.add_argument("--rows", type=int, default=10000, help="rows per timed epoch, a multiple of 100 (default 10000)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed epochs per cell and framework, at least; the best is kept (default 3)")
    p.add_argument("--max-repeats", type=int, default=8,
                   help="more rounds, up to this many, while some framework lacks two quiet epochs that agree "
                        "within --settle (default 8)")
    p.add_argument("--quiet", type=float, default=0.25,
                   help="an epoch counts only if other processes took at most this share of the machine's CPU "
                        "meanwhile, from /proc/stat (default 0.25: one busy competing thread reads about 0.4 "
                        "on 2 cores; tick noise up to 0.1)")
    p.add_argument("--settle", type=float, default=0.10,
                   help="relative agreement of the two best quiet epochs that ends the rounds (default 0.10)")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    p.add_argument("--only", default=",".join(FRAMEWORKS), help="frameworks (default sdagd,torch,torch-compile,jax)")
    p.add_argument("--json", metavar="PATH", help="also save the raw numbers here")
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds between two frameworks' epochs, so spinning pool threads go to sleep (default 0.3)")
    p.add_argument("--no-check", action="store_true", help="skip the agreement check (the header then says so)")
    p.add_argument("--load", type=int, default=0, metavar="N",
                   help="N competing busy processes (a plain Python loop each) run during the timings, as on a "
                        "laptop with a browser or a shared node; --quiet then counts only CPU taken beyond them "
                        "(default 0)")
    p.add_argument("--isa", choices=("native", "avx2"), default="native",
                   help="avx2: keep every framework to AVX2 code (sdagd SDAGD_CPU_ISA=avx2, torch "
                        "ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2, JAX --xla_cpu_max_isa=AVX2), to measure "
                        "the AVX2 paths on an AVX-512 machine (default native)")
    p.add_argument("--peer-python", metavar="PATH", default=os.environ.get("SDAGD_BENCH_PYTHON") or sys.executable,
                   help="the Python that runs the torch and JAX workers, e.g. another virtual environment's "
                        "bin/python (default: $SDAGD_BENCH_PYTHON, else this Python)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.threads, args.rows)

    def split(text, allowed, name):
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            p.error(f"--{name}: {bad or 'nothing'} not in {list(allowed)}")
        return items

    args.nets = [int(n) for n in split(args.nets, [str(i) for i in range(1, 10)], "nets")]
    args.acts = split(args.acts, ("sigmoid", "relu"), "acts")
    args.opts = split(args.opts, ("sgd", "sdagd"), "opts")
    frameworks = [f for f in FRAMEWORKS if f in split(args.only, FRAMEWORKS, "only")]
    if args.rows < BATCH or args.rows % BATCH:
        p.error("--rows must be a positive multiple of 100")
    if args.repeats < 1 or args.threads < 1 or args.load < 0:
        p.error("--repeats and --threads must be >= 1, --load >= 0")
    args.max_repeats = max(args.max_repeats, args.repeats)
    if shutil.which(args.peer_python) is None:
        p.error(f"--peer-python (or SDAGD_BENCH_PYTHON): {args.peer_python!r} is not an executable Python")
    steps = args.rows // BATCH
    command = " ".join(shlex.quote(a) for a in [sys.executable, os.path.relpath(os.path.abspath(__file__))]
                       + sys.argv[1:])

    tmp = tempfile.mkdtemp(prefix="sdagd-compare-")
    workers, notes, infos = {}, {}, {}
    say(f"starting workers ({', '.join(frameworks)}); logs in {tmp}")
    need = list(frameworks) + (["sdagd"] if "sdagd" not in frameworks and not args.no_check else [])
    for fw in need:
        try:
            w = Worker(fw, args, tmp)
        except WorkerError as exc:
            notes[fw] = f"skipped: {exc}"
            continue
        if w.hello.get("ok"):
            workers[fw], infos[fw] = w, w.hello["info"]
        else:
            notes[fw] = "skipped: not installed" if w.hello.get("missing") else f"skipped: {w.hello.get('error')}"
            w.close()
    for fw, note in notes.items():
        say(f"{fw}: {note}")

    result = {"command": command, "machine": model_name(), "isa": cpu_flags(), "cores": os.cpu_count(),
              "threads": args.threads, "peer_python": args.peer_python,
              "rows": args.rows, "repeats": args.repeats, "max_repeats": args.max_repeats, "settle": args.settle,
              "quiet": args.quiet, "load": args.load, "isa_mode": args.isa, "infos": infos, "notes": notes,
              "cells": []}

    # -- agreement check ---------------------------------------------------------------------
    if args.no_check:
        result["check"] = "not run (--no-check)"
    elif "sdagd" not in workers:
        result["check"] = "not run: sdagd is not available"
    else:
        say("checking that every framework runs the same algorithm (784-32-32-10, two steps) ...")
        ok, report = run_check({f: w for f, w in workers.items() if f in frameworks}, workers["sdagd"], args, tmp)
        result["check"] = report
        lines = []
        for fw, cases in report.items():
            if "error" in cases:
                lines.append(f"  {fw}: check could not run: {cases['error']}")
                continue
            for case, r in cases.items():
                flag = "" if r["dev_over_moved"] <= CHECK_TOL else "   <-- DISAGREES"
                lines.append(f"  {fw:14s} {case:14s} |dev| / |moved| {r['dev_over_moved']:.1e}   "
                             f"|dev| / |params| {r['dev_over_params']:.1e}{flag}")
        say("\n".join(lines))
        if not ok:
            say("ANCHORS DISAGREE: a framework does not run the same algorithm as sdagd; not timing.")
            for w in workers.values():
                w.close()
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(result, f, indent=1)
            return 2
        devs = [r["dev_over_moved"] for cases in report.values() if "error" not in cases for r in cases.values()]
        checked = sorted(fw for fw, cases in report.items() if "error" not in cases)
        unchecked = sorted(set(report) - set(checked))
        result["check_summary"] = (
            (f"anchors agree ({', '.join(checked)} against sdagd): after two steps of 784-32-32-10 the parameters "
             f"match within {max(devs):.1e} of the distance moved (tolerance {CHECK_TOL:g})" if checked
             else "no peer to check") + (f"; check could not run for {', '.join(unchecked)}" if unchecked else ""))
        say(result["check_summary"])
        if "sdagd" not in frameworks:
            workers.pop("sdagd").close()

    # -- the machine's limit, measured before any load ------------------------------------------
    if "sdagd" in workers:
        r = workers["sdagd"].request(cmd="limit")
        result["limit_gflops"], result["limit_foreign"] = r["gflops"], r["foreign"]
        say(f"machine limit: {r['gflops']:.0f} GFLOP/s (2048^3 SGEMM on {args.threads} threads, OpenBLAS)")

    # -- timings, interleaved ----------------------------------------------------------------
    load = start_load(args.load)
    if args.load:  # the busy processes take about load / cores of the machine; CPU beyond that is noise
        args.quiet += args.load / (os.cpu_count() or 1)
        say(f"{args.load} busy process(es) running; an epoch counts as quiet when others took at most "
            f"{args.quiet:.0%} of the CPU")
    timed = [f for f in frameworks if f in workers]
    for depth in args.nets:
        sizes = net_sizes(depth)
        for act in args.acts:
            for opt in args.opts:
                cell = {"net": depth, "act": act, "opt": opt, "flops_per_step": step_flops(sizes, opt),
                        "results": {}}
                res = cell["results"]
                say(f"hl-{depth} {act} {opt}: setting up ...")
                active = []
                for fw in timed:
                    w = workers.get(fw)
                    if w is None or not w.alive:  # restart a worker that died in an earlier cell
                        try:
                            w = workers[fw] = Worker(fw, args, tmp)
                        except WorkerError as exc:
                            res[fw] = {"error": str(exc), "epochs_ms": []}
                            continue
                    try:
                        r = w.request(cmd="setup", net=depth, act=act, opt=opt)
                        r.pop("ok")
                        res[fw] = {"epochs_ms": [], **r}
                        active.append(fw)
                    except WorkerError as exc:
                        res[fw] = {"error": str(exc), "epochs_ms": []}
                        say(f"  {fw}: setup failed: {exc}")
                    time.sleep(args.pause)
                entries = active + (["gemm"] if "sdagd" in active else [])
                series = {e: {"ms": [], "foreign": []} for e in entries}
                rnd = 0
                while entries:
                    if rnd >= args.repeats:  # enough rounds, unless a series has no quiet, settled best yet
                        live = [series[e] for e in entries if e == "gemm" or "error" not in res[e]]
                        if rnd >= args.max_repeats or all(pick(x, args)[1] for x in live if x["ms"]):
                            break
                    k = rnd % len(entries)
                    rnd += 1
                    for entry in entries[k:] + entries[:k]:  # order rotated every round
                        fw = "sdagd" if entry == "gemm" else entry
                        if "error" in res[fw] and entry != "gemm":
                            continue
                        try:
                            r = workers[fw].request(cmd="gemm" if entry == "gemm" else "epoch")
                        except WorkerError as exc:
                            res[fw]["error"] = str(exc)
                            say(f"  {entry}: failed: {exc}")
                            continue
                        series[entry]["ms"].append(r["seconds"] * 1e3 / (1 if entry == "gemm" else steps))
                        series[entry]["foreign"].append(r["foreign"])
                        time.sleep(args.pause)
                cell["rounds"] = rnd
                for entry, x in series.items():
                    if not x["ms"]:
                        continue
                    best, ok = pick(x, args)
                    if entry == "gemm":
                        cell.update(gemm_ms=best, gemm_settled=ok, gemm_ms_all=x["ms"], gemm_foreign=x["foreign"])
                    else:
                        res[entry].update(ms=best, settled=ok, epochs_ms=x["ms"], epochs_foreign=x["foreign"])
                result["cells"].append(cell)
                line = ", ".join(f"{fw} {res[fw]['ms']:.2f}" if "ms" in res.get(fw, {}) else f"{fw} failed"
                                 for fw in timed)
                if "gemm_ms" in cell:
                    line += f", bare GEMM {cell['gemm_ms']:.2f}"
                say(f"  {line} ms/step ({rnd} rounds)")
    for w in workers.values():
        w.close()
    for proc in load:
        proc.kill()
        proc.wait()

    print_tables(result, frameworks, notes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        say(f"raw numbers saved to {args.json}")
    failed = any("error" in r for c in result["cells"] for r in c["results"].values())
    if isinstance(result["check"], dict):
        failed = failed or any("error" in cases for cases in result["check"].values())
    if failed:
        say(f"worker logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def print_tables(result, frameworks, notes):
    infos = result["infos"]
    get = lambda fw, key: infos.get(fw, {}).get(key)  # noqa: E731
    versions = [f"Python {platform.python_version()}", f"numpy {get('sdagd', 'numpy') or np.__version__}"]
    if "sdagd" in infos:
        versions.append(f"sdagd {get('sdagd', 'sdagd')} on {get('sdagd', 'blas')}, "
                        f"OPENBLAS_CORETYPE={get('sdagd', 'OPENBLAS_CORETYPE')}")
    tinfo = infos.get("torch") or infos.get("torch-compile")
    if tinfo:
        versions.append(f"torch {tinfo['torch']} ({tinfo['blas']})")
    if "jax" in infos:
        versions.append(f"jax {get('jax', 'jax')} / jaxlib {get('jax', 'jaxlib')}")
    threads = [f"{result['threads']} threads per framework"]
    for fw in ("sdagd", "torch", "torch-compile"):
        if fw in infos:
            threads.append(f"{fw} reports {infos[fw]['threads']}")
    jax_pool = {c["results"]["jax"].get("xla_pool_threads") for c in result["cells"] if "jax" in c["results"]} - {None}
    if "jax" in infos:
        threads.append(f"JAX PJRT_NPROC={get('jax', 'PJRT_NPROC')}, XLA pool threads seen: "
                       f"{','.join(map(str, sorted(jax_pool))) or '?'}")
        dots = [c["results"]["jax"].get("dot_fusions") for c in result["cells"] if "jax" in c["results"]]
        dots = [d for d in dots if d]
        if dots:
            threads.append(f"XLA dots: {', '.join(sorted(dots[0])) if isinstance(dots[0], dict) else dots[0]}")
    print(f"Machine: {result['machine']} ({result.get('isa') or '?'}), {result['cores']} cores visible")
    print("Versions: " + "; ".join(versions))
    print("Threads: " + "; ".join(threads))
    print(f"Command: {result['command']}")
    if result.get("load"):
        print(f"Load: {result['load']} busy process(es) (a Python loop each) ran beside every timing")
    if result.get("isa_mode") == "avx2":
        print("ISA: every framework kept to AVX2 code (--isa avx2)")
    if result.get("limit_gflops"):
        print(f"Machine limit: {result['limit_gflops']:.0f} GFLOP/s (a 2048^3 SGEMM on all {result['threads']} "
              f"threads through OpenBLAS, before any load); 'of limit' = a step's GEMM GFLOP/s over it")
    print(f"Timed: best epoch of {result['rows']:,} random rows, batch 100, after one warm-up epoch; frameworks "
          f"interleaved, each in its own process; only quiet epochs count (other processes took <= "
          f"{result['quiet']:.0%} of the CPU meanwhile); {result['repeats']} rounds, more (up to "
          f"{result['max_repeats']}) until every framework has two quiet epochs within {result['settle']:.0%} "
          f"of each other")
    check = result.get("check_summary") or (result["check"] if isinstance(result["check"], str) else "?")
    print(f"Check: {check}")
    print()
    print("ms per training step (lower is better). speedup = best peer's time / sdagd's time (> 1: sdagd "
          "faster). step / bare GEMM = sdagd's step time / the same GEMMs through its BLAS alone. "
          f"* = not settled after {result['max_repeats']} rounds: fewer than two quiet epochs within "
          f"{result['settle']:.0%} of each other (the machine was busy); read it as an upper bound.")
    print()

    def cell_of(c, fw):
        if c is None:
            return None
        if fw not in frameworks:
            return None
        if fw in notes:
            return {"note": notes[fw]}
        r = c["results"].get(fw)
        if r is None:
            return {"note": "not run"}
        if "ms" in r:
            return {"ms": r["ms"], "settled": r.get("settled", True)}
        return {"note": "failed: " + r.get("error", "?")[:80].replace("|", "/")}

    by_key = {(c["net"], c["act"], c["opt"]): c for c in result["cells"]}
    print("| net | act | sdagd SGD | torch SGD eager / compiled | JAX SGD | sdagd SDAGD | torch SDAGD eager / compiled "
          "| JAX SDAGD | speedup vs best peer (SGD, SDAGD) | sdagd GFLOP/s (SGD, SDAGD) "
          "| sdagd of limit (SGD, SDAGD) | step / bare GEMM (SGD, SDAGD) |")
    print("|" + " --- |" * 12)
    rows = sorted({(c["net"], c["act"]) for c in result["cells"]}, key=lambda k: (k[0], k[1] != "sigmoid"))
    for depth, act in rows:
        cols = [f"hl-{depth}", act]
        speed, gflops, ratio, of_limit = [], [], [], []
        for opt in ("sgd", "sdagd"):
            c = by_key.get((depth, act, opt))
            if c is None:
                cols += ["—", "—", "—"]
                speed.append("—"), gflops.append("—"), ratio.append("—"), of_limit.append("—")
                continue
            cols.append(fmt_ms(cell_of(c, "sdagd")))
            cols.append(f"{fmt_ms(cell_of(c, 'torch'))} / {fmt_ms(cell_of(c, 'torch-compile'))}")
            cols.append(fmt_ms(cell_of(c, "jax")))
            s = cell_of(c, "sdagd") or {}
            peers = {fw: cell_of(c, fw)["ms"] for fw in PEERS if (cell_of(c, fw) or {}).get("ms")}
            if "ms" in s and peers:
                best = min(peers, key=peers.get)
                speed.append(f"{peers[best] / s['ms']:.2f} ({best})")
            else:
                speed.append("—")
            gflops.append(gflop_s(c, s.get("ms")))
            of_limit.append(f"{c['flops_per_step'] / s['ms'] / 1e6 / result['limit_gflops']:.2f}"
                            if s.get("ms") and result.get("limit_gflops") else "—")
            ratio.append(f"{s['ms'] / c['gemm_ms']:.2f}" + ("" if c.get("gemm_settled", True) else "*")
                         if "ms" in s and c.get("gemm_ms") else "—")
        cols += [", ".join(speed), ", ".join(gflops), ", ".join(of_limit), ", ".join(ratio)]
        print("| " + " | ".join(cols) + " |")

    print()
    print("Every cell: ms/step (best quiet epoch), GFLOP/s of the step's GEMMs at that speed, the step's time "
          "over its bare GEMMs through scipy-openblas32, and all timed epochs (ms/step) in the order run, "
          "[bracketed] when other processes took more than the --quiet share of the CPU meanwhile.")
    print()
    print("| net | act | opt | framework | ms/step | GFLOP/s | step / bare GEMM | epochs (ms/step) | warm-up s |")
    print("|" + " --- |" * 9)
    for c in result["cells"]:
        for fw in frameworks + ["bare GEMM"]:
            if fw == "bare GEMM":
                if not c.get("gemm_ms"):
                    continue
                ms, epochs, foreign, setup = c["gemm_ms"], c["gemm_ms_all"], c["gemm_foreign"], ""
            else:
                cc = cell_of(c, fw)
                if cc is None:
                    continue
                if "ms" not in cc:
                    print(f"| hl-{c['net']} | {c['act']} | {c['opt']} | {fw} | {cc['note']} | | | | |")
                    continue
                r = c["results"][fw]
                ms, epochs, foreign, setup = r["ms"], r["epochs_ms"], r["epochs_foreign"], f"{r['setup_s']:.1f}"
                if fw == "torch-compile" and "graph_breaks" in r:
                    setup += f" ({r['graph_breaks']} graph breaks)"
            ratio = f"{ms / c['gemm_ms']:.2f}" if c.get("gemm_ms") else "—"
            marked = ", ".join(f"{e:.2f}" if f <= result["quiet"] else f"[{e:.2f}]" for e, f in zip(epochs, foreign))
            ok = c.get("gemm_settled", True) if fw == "bare GEMM" else c["results"][fw].get("settled", True)
            print(f"| hl-{c['net']} | {c['act']} | {c['opt']} | {fw} | {ms:.2f}{'' if ok else '*'} | {gflop_s(c, ms)} "
                  f"| {ratio} | {marked} "
                  f"| {setup} |")


if __name__ == "__main__":
    sys.exit(main())
