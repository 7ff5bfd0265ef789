"""The CUDA emulation catches a broken backend: each mutant below is cuda/backend_cuda.cu with one
deliberate bug, built against the emulation, and the GPU tests must fail on it, with the
emulation's own diagnosis where it has one. Run by tests/cuda_emu/run.sh (not collected by a
plain `pytest`: building a mutant takes a few seconds each).

A mutant whose `before` text is no longer in the backend fails here with a request to update
it, rather than silently testing nothing.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BACKEND = ROOT / "cuda" / "backend_cuda.cu"

_spec = importlib.util.spec_from_file_location("cuda_emu_build", HERE / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

PARITY = "tests/test_cuda.py::test_twenty_optimizer_steps_match_cpu"

# name: (before, after, the tests to run, what the output must say: one of these texts)
MUTANTS = {
    # a kernel reads the next column: wrong bias gradients
    "kernel-index": ("sum += M[(size_t)k * m_stride + (size_t)r * n + c];",
                     "sum += M[(size_t)k * m_stride + (size_t)r * n + c + 1];",
                     [PARITY, "-k", "sigmoid-SGD]"], ("assert", "became NaN")),  # NaN: the memory never written
    # a grid-stride loop one element too far: the guard page after a buffer
    "kernel-bounds": ("for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);",
                      "for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i <= (n);",
                      [PARITY, "-k", "sigmoid-SGD]"], ("sdagd CUDA emulation: kernel",)),
    # a leading dimension smaller than the rows: cuBLAS itself refuses it
    "ld-too-small": ("st = gemm(ctx, 0, 1, B, n_out, n_in, 1.0f, a->in, n_in, a->in_stride,",
                     "st = gemm(ctx, 0, 1, B, n_out, n_in, 1.0f, a->in, n_in - 1, a->in_stride,",
                     [PARITY, "-k", "sigmoid-SGD]"], ("CUBLAS_STATUS_INVALID_VALUE",)),
    # a leading dimension too large: accepted by cuBLAS, reads past the matrix on a GPU
    "ld-too-large": ("st = gemm(ctx, 0, 1, B, n_out, n_in, 1.0f, a->in, n_in, a->in_stride,",
                     "st = gemm(ctx, 0, 1, B, n_out, n_in, 1.0f, a->in, n_in + 3, a->in_stride,",
                     [PARITY, "-k", "sigmoid-SGD]"], ("of device memory lie there", "is nan", "became NaN")),
    # host code reads device memory
    "host-reads-device": ("for (int k = 0; k < K; k++) ok_host[k] = !ok_host[k];",
                          "for (int k = 0; k < K; k++) ok_host[k] = !c->flags[k];",
                          ["tests/test_cuda.py::test_divergence_on_gpu_names_the_same_step_as_cpu"],
                          ("host code accessed",)),
    # a barrier that only some threads of a block reach
    "divergent-barrier": ("    shared[threadIdx.x] = v;\n    __syncthreads();",
                          "    shared[threadIdx.x] = v;\n    if (threadIdx.x == 7) return v;\n    __syncthreads();",
                          [PARITY, "-k", "sigmoid-SGD]"], ("__syncthreads number",)),
}


def mutate(name, tmp_path):
    before, after, _, _ = MUTANTS[name]
    text = BACKEND.read_text()
    assert text.count(before) >= 1, (f"mutant {name!r}: its text is no longer in {BACKEND.name}; update MUTANTS in "
                                     f"{Path(__file__).name} to break the backend as it now is")
    source = tmp_path / "backend_cuda.cu"
    source.write_text(text.replace(before, after, 1))
    return source


def run_tests(library, tests):
    """pytest on `tests` with the backend `library`; its output with the emulation's reports."""
    log = library.parent / "emulation.log"
    env = dict(os.environ, SDAGD_EMU_LIBRARY=str(library), SDAGD_CUDA_REQUIRED="1", SDAGD_EMU_LOG=str(log))
    env["LD_LIBRARY_PATH"] = f"{library.parent / 'driver'}:{env.get('LD_LIBRARY_PATH', '')}"
    env["PYTHONPATH"] = f"{HERE}:{env.get('PYTHONPATH', '')}"
    cmd = [sys.executable, "-m", "pytest", "-p", "pytest_cuda_emu", "-p", "no:cacheprovider", "-x", "-q",
           "--rootdir", str(ROOT), *tests]
    done = subprocess.run(cmd, cwd=tmp_cwd(), env=env, capture_output=True, text=True, timeout=600)
    reports = log.read_text() if log.exists() else ""
    return done.returncode, done.stdout + done.stderr + reports


def tmp_cwd():
    """Not the source folder: `python -m pytest` there would import it instead of the installed sdagd."""
    return "/"


@pytest.mark.parametrize("name", list(MUTANTS))
def test_a_broken_backend_fails_under_the_emulation(name, tmp_path):
    source = mutate(name, tmp_path)
    library = build.build(source, tmp_path / "build", log=lambda line: None)
    _, _, tests, expected = MUTANTS[name]
    returncode, output = run_tests(library, [str(ROOT / t) if t.startswith("tests/") else t for t in tests])
    assert returncode != 0, f"mutant {name!r} passed the tests:\n{output[-3000:]}"
    assert any(text in output for text in expected), f"mutant {name!r} failed, but without {expected}:\n{output[-3000:]}"


def test_a_call_the_emulation_lacks_fails_the_build_naming_it(tmp_path):
    text = BACKEND.read_text()
    before = "static sdagd_status cuda_sync(void *ctx) {\n"
    assert before in text, "update this test: cuda_sync is no longer defined as it was"
    source = tmp_path / "backend_cuda.cu"
    source.write_text(text.replace(before, before + "    cudaDeviceSynchronize();\n", 1))
    with pytest.raises(SystemExit, match="the CUDA emulation lacks cudaDeviceSynchronize"):
        build.build(source, tmp_path / "build", log=lambda line: None)


def test_the_unbroken_backend_passes_the_same_tests(tmp_path):
    """The control: the mutants fail because of their bug, not because of how they are run."""
    library = build.build(BACKEND, tmp_path / "build", log=lambda line: None)
    tests = {t for _, _, ts, _ in MUTANTS.values() for t in ts if t.startswith("tests/")}
    returncode, output = run_tests(library, [str(ROOT / t) for t in sorted(tests)] + ["-k", "sigmoid-SGD] or not twenty"])
    assert returncode == 0, output[-3000:]
