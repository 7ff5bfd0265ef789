#!/usr/bin/env bash
# The GPU check: one call of at most 7 minutes (420 s), build included, on a machine with an
# NVIDIA GPU, nvcc, PyTorch and Python 3.12 but no network. It builds sdagd with its CUDA backend
# in a fresh venv from carried wheels, stops at once (saying why) unless the GPU can be used,
# runs the GPU tests (a skipped test is a failure there), compute-sanitizer's memcheck with CUDA
# graphs on and off, and a bounded benchmark whose results are written as they come.
#
# Budget in seconds; every step has its timeout, so the sum bounds the run:
#   machine and toolchain          10
#   venv, install, build          150   pip from the wheels; C core; nvcc (sm_90, -lineinfo)
#   device gate                    10
#   GPU tests                      90   tests/test_cuda.py 50; CPU tests forced onto the GPU 40
#   memcheck, graphs on and off    70   35 each
#   benchmark                      90   bench_gpu.py --budget 60: no measurement starts after 60 s
#   total                         420
#
#   bash benchmarks/gpu_check.sh --prepare   # here, with network: every wheel the run needs for
#                                            # CPython 3.12 manylinux x86_64 into .whl/, MNIST
#                                            # into .mnist/ (ignored folders: carry them), then
#                                            # a dry run of this script offline in a fresh venv
#   bash benchmarks/gpu_check.sh             # there (the device tool, carry [".whl", ".mnist"])
#   DRY_RUN=1 bash benchmarks/gpu_check.sh   # here, after --prepare, without a GPU: the same
#                                            # steps from --prepare's wheels for this Python, the
#                                            # CUDA backend under the CPU emulation
#                                            # (tests/cuda_emu), no memcheck, a small CPU benchmark
#
# Results and logs go to $OUT (the device tool's folder that comes back) or /tmp/gpu_check.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
py=${PYTHON:-python3}
local_wheels=/tmp/gpu_check_local_wheels   # --prepare's wheels for this machine's Python
if [ -n "${DRY_RUN:-}" ]; then wheels=${WHEELS:-$local_wheels}; else wheels=${WHEELS:-$root/.whl}; fi
export PYTHONUNBUFFERED=1
# nvcc and compute-sanitizer, where the toolkit puts them (as .ci/run does)
export PATH="$PATH:/usr/local/cuda/bin:/usr/local/cuda/compute-sanitizer"

# What the run installs: sdagd's build requirements, its dependencies and its test extra.
requirements() {
    "$py" - <<'EOF'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(project["build-system"]["requires"] + project["project"]["dependencies"]
                + project["project"]["optional-dependencies"]["test"]))
EOF
}
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

if [ "${1:-}" = "--prepare" ]; then
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    for folder in .whl .mnist; do
        grep -qx "/$folder/" "$exclude" 2>/dev/null || echo "/$folder/" >> "$exclude"
    done
    rm -rf .whl && mkdir -p .whl .mnist
    mapfile -t reqs < <(requirements)
    echo "gpu_check --prepare: wheels for CPython 3.12 of: ${reqs[*]} (and what they need)"
    "$py" -m pip download -q "${TARGET[@]}" -d .whl "${reqs[@]}" || exit 1
    echo "gpu_check --prepare: do they suffice offline, for 3.12?"
    "$py" -m pip install -q --dry-run --ignore-installed --no-index --find-links .whl "${TARGET[@]}" \
        --target /tmp/gpu_check_resolve "${reqs[@]}" || { echo "gpu_check --prepare: .whl is incomplete"; exit 1; }
    cp "${SDAGD_DATA:-$root/../shared/data/mnist}"/*-ubyte.gz .mnist/ || exit 1
    ls -la .whl .mnist
    du -sh .whl .mnist
    # The dry run: this script offline, in a fresh venv, from the same requirements as wheels for
    # this machine's Python (kept out of .whl, which travels).
    rm -rf "$local_wheels"
    "$py" -m pip download -q --only-binary=:all: -d "$local_wheels" "${reqs[@]}" || exit 1
    echo "gpu_check --prepare: dry run, offline, in a fresh venv"
    DRY_RUN=1 OUT=$out/dry_run bash "$0"
    rc=$?
    echo "gpu_check --prepare: dry run exit $rc (logs in $out/dry_run)"
    exit $rc
fi

step() { echo; echo "== $* ($(date +%T), ${SECONDS}s)"; }
status=0
# the budget's timeouts; a dry run here (2 busy cores, the emulation) gets more room
build_s=150 cuda_tests_s=50 forced_s=40 forced_tests=(tests/test_network.py tests/test_optimizers.py tests/test_many.py tests/test_diagnostics.py)
if [ -n "${DRY_RUN:-}" ]; then build_s=600 cuda_tests_s=300 forced_s=300 forced_tests=(tests/test_network.py tests/test_many.py); fi

step "machine and toolchain"
if [ -z "${DRY_RUN:-}" ]; then
    timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || status=1
fi
nvcc --version | tail -2
command -v compute-sanitizer || echo "compute-sanitizer not found"
"$py" -c "import sys; print('python', sys.version.split()[0])"

step "fresh venv, install from $wheels with no index, build (CUDA part without -Werror, with -lineinfo)"
venv=/tmp/gpu_check_venv
rm -rf "$venv"
venv_flags=()
[ -n "${DRY_RUN:-}" ] || venv_flags=(--system-site-packages)   # keeps the machine's PyTorch
pip_cmd=("$venv/bin/python" -m pip)
if ! "$py" -m venv "${venv_flags[@]}" "$venv" >"$out/venv.log" 2>&1; then
    # no ensurepip (Debian's python3-venv missing): a venv without pip, filled by this pip
    rm -rf "$venv"
    "$py" -m venv --without-pip "${venv_flags[@]}" "$venv" || { cat "$out/venv.log"; echo "gpu_check: no venv"; exit 1; }
    pip_cmd=("$py" -m pip --python "$venv/bin/python")
fi
export SDAGD_CUDA=1 SDAGD_CUDA_LINEINFO=1
unset SDAGD_CUDA_WERROR
if ! timeout $build_s "${pip_cmd[@]}" install -v --no-index --find-links "$wheels" ".[test]" >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log"
    echo "gpu_check: the install or the build failed (log: $out/build.log)"
    exit 1
fi
grep -E "building the CUDA backend|nvcc" "$out/build.log" | head -2
vpy="$venv/bin/python"
# -P: not the source folder on sys.path (its sdagd/ would shadow the installed one); pytest
# may come from the machine's site-packages, so it is run as a module
vpytest=("$vpy" -P -m pytest)
if [ -d .mnist ]; then export SDAGD_DATA=$root/.mnist; fi
export SDAGD_REQUIRE_DATA=1

if [ -n "${DRY_RUN:-}" ]; then
    step "dry run: the CUDA backend under the CPU emulation instead of a GPU"
    "$vpy" tests/cuda_emu/build.py --out /tmp/gpu_check_emu >/dev/null || exit 1
    export SDAGD_EMU_LIBRARY=/tmp/gpu_check_emu/libsdagd_cuda_emu.so
    export LD_LIBRARY_PATH=/tmp/gpu_check_emu/driver${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

step "device gate"
# from / : the installed sdagd, not the source folder
(cd / && timeout 10 "$vpy" - <<'EOF')
import ctypes, ctypes.util, os, subprocess, sys
import sdagd
if os.environ.get("SDAGD_EMU_LIBRARY"):
    sdagd._core.set_cuda_library(os.environ["SDAGD_EMU_LIBRARY"])
ok, why = sdagd.device_available("cuda")
print("sdagd", sdagd.__version__, "| BLAS:", sdagd.blas_info())
print("cuda usable:", ok, why)
if not ok:
    try:
        v = ctypes.c_int()
        ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(v))
        print(f"driver supports CUDA up to {v.value // 1000}.{v.value % 1000 // 10}")
    except OSError as e:
        print("no NVIDIA driver library:", e)
    release = [line for line in subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.splitlines()
               if "release" in line]
    print("toolkit that built sdagd:", release, "(the driver must support at least its CUDA version)")
    print("cuBLAS:", ctypes.util.find_library("cublas") or "not found by the loader")
    lib = os.path.join(os.path.dirname(sdagd.__file__), "libsdagd_cuda.so")
    print(lib, "exists" if os.path.exists(lib) else "is missing (the CUDA part was not built)")
    if os.path.exists(lib):
        print(subprocess.run(["ldd", lib], capture_output=True, text=True).stdout)
    sys.exit(1)
EOF
if [ $? -ne 0 ]; then
    echo "gpu_check: the GPU cannot be used (above); nothing else would test it, so the check stops"
    exit 1
fi

step "GPU tests: CPU/GPU parity, then CPU tests forced onto the GPU (a skip is a failure)"
export PYTHONPATH=$root/tests/cuda_emu SDAGD_CUDA_REQUIRED=1 SDAGD_REQUIRE_CUDA_BUILD=1
tests_opts=(-p pytest_cuda_emu -p no:cacheprovider -q --deselect tests/test_cuda.py::test_unusable_cuda_says_why)
if [ -n "${DRY_RUN:-}" ]; then
    unset SDAGD_REQUIRE_CUDA_BUILD      # the emulated library stands in for the installed one
    tests_opts+=(-k "not mnist and not is_built_where_required")  # the emulation is slow on MNIST
fi
timeout $cuda_tests_s "${vpytest[@]}" "${tests_opts[@]}" tests/test_cuda.py 2>&1 | tee "$out/pytest_cuda.log" | tail -15
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu_check: GPU tests failed or timed out"; status=1; }
SDAGD_FORCE_CUDA=1 timeout $forced_s "${vpytest[@]}" -p pytest_cuda_emu -p no:cacheprovider -q -m "not slow" \
    "${forced_tests[@]}" 2>&1 | tee "$out/pytest_forced.log" | tail -8
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu_check: forced CPU tests failed or timed out"; status=1; }
unset SDAGD_FORCE_CUDA SDAGD_CUDA_REQUIRED

step "compute-sanitizer memcheck on a short training, CUDA graphs on and off"
cat >"$out/short_training.py" <<'EOF'
import numpy as np, sdagd
rng = np.random.default_rng(0)
X, y = rng.random((300, 784), dtype=np.float32), rng.integers(0, 10, 300)
nets = [sdagd.MLP([784, 64, 64, 10], activation=a, device="cuda", seed=s) for a, s in (("sigmoid", 0), ("relu", 1))]
opts = [sdagd.optim.SDAGD(radius=0.3, max_step=1.0), sdagd.optim.Adam()]
sdagd.fit_many(nets, opts, X, y, epochs=2, batch_size=64, validation_data=(X[:100], y[:100]), progress=False)
net = sdagd.MLP([784, 32, 10], output="softmax", loss="ce", device="cuda")
net.fit(X, y, sdagd.optim.SDLM(lr=0.1, mu=0.1), epochs=2, batch_size=50, progress=False)
print("short training done:", net.evaluate(X, y))
EOF
if [ -z "${DRY_RUN:-}" ] && command -v compute-sanitizer >/dev/null; then
    for graphs in 1 0; do
        (cd / && SDAGD_CUDA_GRAPHS=$graphs timeout 35 compute-sanitizer --tool memcheck --error-exitcode 3 \
            "$vpy" "$out/short_training.py" >"$out/memcheck_graphs$graphs.log" 2>&1)
        rc=$?
        echo "graphs=$graphs: exit $rc"; tail -3 "$out/memcheck_graphs$graphs.log"
        [ $rc -eq 0 ] || { echo "gpu_check: memcheck (graphs=$graphs) exit $rc"; status=1; }
    done
elif [ -z "${DRY_RUN:-}" ]; then
    echo "gpu_check: compute-sanitizer not found"; status=1
else
    echo "dry run: no memcheck"
fi

step "benchmark (bounded; bench_gpu.json written as it goes)"
if [ -z "${DRY_RUN:-}" ]; then
    (cd / && timeout 90 "$vpy" "$root/benchmarks/bench_gpu.py" --budget 60 --out "$out") 2>&1 | tee "$out/bench.log" | grep -v "^$"
else
    unset SDAGD_EMU_LIBRARY
    (cd / && timeout 60 "$vpy" "$root/benchmarks/bench_gpu.py" --device cpu --quick --budget 20 --out "$out") 2>&1 | tee "$out/bench.log" | grep -v "^$"
fi
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu_check: the benchmark failed or timed out (partial results in $out/bench_gpu.json)"; status=1; }

step "done: status $status in ${SECONDS}s; logs in $out"
exit $status
