#!/usr/bin/env bash
# The CUDA backend's tests without a GPU: cuda/backend_cuda.cu built against the CPU emulation
# of the CUDA runtime and cuBLAS (this folder), then
#   1. tests/test_cuda.py (GPU against CPU parity), with CUDA graphs;
#   2. the same without graphs, the emulated blocks and threads run in reverse order (results
#      must not depend on it), without the MNIST epoch (the slowest);
#   3. CPU tests with every network they make without device= put on the CUDA backend
#      (SDAGD_FORCE_CUDA=1), against tests/reference.py;
#   4. the recorded steps: a plain first step before capturing (the emulation refuses a
#      kernel's first launch during a capture, as lazily loading drivers do), and the fallback
#      to plain launches when a capture fails;
#   5. broken variants of the backend (a kernel index, a cuBLAS leading dimension, an
#      unemulated call, ...), each of which must be caught.
# A skipped test is a failure here (SDAGD_CUDA_REQUIRED=1). About 8 minutes on 2 cores.
#
#   bash tests/cuda_emu/run.sh            # from any folder, in the venv where sdagd is installed
#   bash tests/cuda_emu/run.sh -x -q      # extra arguments go to every pytest run
#
# Needs g++, gcc and pytest; SDAGD_DATA for the MNIST test (as the other tests).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
build="${SDAGD_EMU_BUILD:-$here/build}"

python3 "$here/build.py" --out "$build" >/dev/null

# The stub driver must be on the loader's path before Python starts (dlopen reads it then).
export LD_LIBRARY_PATH="$build/driver${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SDAGD_EMU_LIBRARY="$build/libsdagd_cuda_emu.so" SDAGD_CUDA_REQUIRED=1
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
# pytest, not python -m pytest: the installed sdagd, not the source folder, is tested
run_pytest() { pytest -p pytest_cuda_emu -p no:cacheprovider "$@"; }

# test_cuda.py's two tests of a machine without a usable GPU do not apply here.
not_here=(--deselect tests/test_cuda.py::test_unusable_cuda_says_why
          --deselect tests/test_cuda.py::test_cuda_library_is_built_where_required)

echo "== cuda_emu 1/5: tests/test_cuda.py, CUDA graphs on"
run_pytest -q tests/test_cuda.py "${not_here[@]}" "$@"

echo "== cuda_emu 2/5: tests/test_cuda.py, graphs off, blocks and threads in reverse order"
SDAGD_CUDA_GRAPHS=0 SDAGD_EMU_REVERSE=1 run_pytest -q tests/test_cuda.py "${not_here[@]}" -k "not mnist" "$@"

echo "== cuda_emu 3/5: CPU tests forced onto the CUDA backend"
# test_memory's thousand rounds take minutes here (and measure the emulation's memory), and
# test_cuda_error_is_runtime_error_mentioning_cuda needs CUDA to be unusable.
SDAGD_FORCE_CUDA=1 run_pytest -q -m "not slow" tests/test_network.py tests/test_optimizers.py tests/test_many.py \
    tests/test_diagnostics.py tests/test_phases.py tests/test_persistence.py tests/test_api_errors.py \
    tests/test_hostile_inputs.py --deselect tests/test_api_errors.py::test_cuda_error_is_runtime_error_mentioning_cuda "$@"

echo "== cuda_emu 4/5: recorded steps: a plain first step, and the fallback when capture fails"
run_pytest -q "$here/emulation_graphs.py" "$@"

echo "== cuda_emu 5/5: broken variants of the backend are caught"
run_pytest -q "$here/emulation_mutants.py" "$@"
