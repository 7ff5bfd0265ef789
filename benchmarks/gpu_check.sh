#!/usr/bin/env bash
# The GPU check: build sdagd with its CUDA backend, run the GPU tests, run a short training
# under compute-sanitizer, and print the GPU benchmark tables, in one call of at most 5
# minutes on a machine with an NVIDIA GPU, nvcc, PyTorch, NumPy and pytest but no network.
#
#   bash benchmarks/gpu_check.sh --prepare   # here, once: the scipy-openblas32 wheel for the
#                                            # GPU machine's Python and MNIST, into ignored
#                                            # folders .whl/ and .mnist/ that travel with it
#   bash benchmarks/gpu_check.sh             # there (the device tool: carry .whl and .mnist)
#   DRY_RUN=1 bash benchmarks/gpu_check.sh   # here, without a GPU: every step that does not
#                                            # need one, and the benchmark on the CPU, small
#
# Results and logs go to $OUT (the device tool's folder that comes back) or /tmp/gpu_check.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if [ "${1:-}" = "--prepare" ]; then
    for folder in .whl .mnist; do
        grep -qx "/$folder/" .git/info/exclude 2>/dev/null || echo "/$folder/" >> .git/info/exclude
    done
    mkdir -p .whl .mnist
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "scipy-openblas32>=0.3.27" || exit 1
    cp "${SDAGD_DATA:-$root/../shared/data/mnist}"/*-ubyte.gz .mnist/ || exit 1
    ls -la .whl .mnist
    exit 0
fi

step() { echo; echo "== $* ($(date +%T))"; }
status=0

step "machine"
if [ -z "${DRY_RUN:-}" ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || status=1
fi
nvcc --version | tail -1
"$py" -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"

step "install the carried wheels"
if ls .whl/*.whl >/dev/null 2>&1; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
        .whl/*.whl && export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
fi

step "build (CUDA part with warnings as errors)"
export SDAGD_CUDA=1 SDAGD_CUDA_WERROR=1
if ! "$py" setup.py -q build_ext --inplace >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log"
    echo "gpu_check: the build failed"
    exit 1
fi
ls -la sdagd/*.so
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
if [ -d .mnist ]; then export SDAGD_DATA=$root/.mnist; fi
"$py" -c "import sdagd; print('sdagd', sdagd.__version__, '| BLAS:', sdagd.blas_info()); print('cuda:', sdagd.device_available('cuda'))"

step "GPU tests (CPU/GPU parity), fit_many, and the network tests"
timeout 150 "$py" -m pytest -q -p no:cacheprovider -x tests/test_cuda.py tests/test_many.py tests/test_network.py \
    2>&1 | tee "$out/pytest.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "compute-sanitizer memcheck on a short training"
cat >"$out/short_training.py" <<'EOF'
import numpy as np, sdagd
rng = np.random.default_rng(0)
X, y = rng.random((300, 784), dtype=np.float32), rng.integers(0, 10, 300)
nets = [sdagd.MLP([784, 64, 64, 10], activation=a, device="cuda", seed=s) for a, s in (("sigmoid", 0), ("relu", 1))]
opts = [sdagd.optim.SDAGD(radius=0.3, max_step=1.0), sdagd.optim.Adam()]
sdagd.fit_many(nets, opts, X, y, epochs=2, batch_size=64, validation_data=(X[:100], y[:100]), progress=False)
net = sdagd.MLP([784, 32, 10], output="softmax", loss="ce", device="cuda")
net.fit(X, y, sdagd.optim.SDLM(lr=0.1, mu=0.1), epochs=1, batch_size=50, progress=False)
print("short training done:", net.evaluate(X, y))
EOF
if [ -z "${DRY_RUN:-}" ] && command -v compute-sanitizer >/dev/null; then
    timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$py" "$out/short_training.py" \
        >"$out/memcheck.log" 2>&1
    rc=$?
    tail -5 "$out/memcheck.log"
    [ $rc -eq 0 ] || { echo "gpu_check: memcheck exit $rc"; status=1; }
else
    echo "skipped (dry run or no compute-sanitizer)"
fi

step "benchmarks"
if [ -z "${DRY_RUN:-}" ]; then
    timeout 170 "$py" benchmarks/bench_gpu.py --out "$out" 2>&1 | tee "$out/bench.log" | grep -v "^$"
else
    timeout 300 "$py" benchmarks/bench_gpu.py --device cpu --quick --out "$out" 2>&1 | tee "$out/bench.log"
fi
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "done: status $status; logs in $out"
exit $status
