"""The one build recipe of the sdagd C core and its CUDA backend.

Used by setup.py (the CPython extension and, when nvcc is found, libsdagd_cuda.so) and by
tests/test_c_core.py (the plain-C test under sanitizers), so that both compile the same
sources with the same flags. Needs only the standard library.

Environment:
  SDAGD_DEBUG=1          -O0 -g instead of -O3
  SDAGD_CUDA=auto|0|1    build the CUDA backend: when nvcc and cuBLAS are found (auto, the
                         default), never (0), or fail the build without them (1)
  SDAGD_CUDA_WERROR=1    CUDA warnings are errors (CI)
  SDAGD_CUDA_ARCH=90     compute capability to build machine code for (plus its PTX)
  SDAGD_CUDA_LINEINFO=1  source lines in the CUDA code, for compute-sanitizer's reports
  CUDA_HOME              where the CUDA toolkit is (else nvcc's folder's parent)
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORE_DIR = ROOT / "csrc"
CUDA_DIR = ROOT / "cuda"
CUDA_LIBRARY = "libsdagd_cuda.so"

# No -ffast-math: the divergence checks rely on NaN and inf behaving as IEEE says, and -std=c11
# (not gnu11) keeps floating-point contraction off, so every build gives the same bits;
# -fno-math-errno only lets sqrtf vectorise (nothing reads errno; results are unchanged), and
# -fno-trapping-math lets the compiler turn the clamps and selects of the activations into
# vector blends and min/max (without it the sigmoid loop stays scalar, 7x slower): nothing
# reads the floating-point exception flags, and every value is still computed as IEEE says.
WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter"]
C_FLAGS = ["-std=c11", "-fno-strict-aliasing", "-fno-math-errno", "-fno-trapping-math", "-pthread", *WARNINGS]
LINK_FLAGS = ["-pthread", "-ldl", "-lm"]
SANITIZE_FLAGS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-Wpedantic", "-Werror"]


def core_sources(root: Path = ROOT) -> list[str]:
    """The C core's sources (plain C, no Python), relative to ``root``."""
    files = sorted((root / "csrc").glob("*.c")) + sorted((root / "csrc" / "cpu").glob("*.c"))
    return [str(f.relative_to(root)) for f in files]


def core_headers(root: Path = ROOT) -> list[str]:
    files = sorted((root / "csrc").glob("*.h")) + sorted((root / "csrc" / "cpu").glob("*.h"))
    return [str(f.relative_to(root)) for f in files]


def optimisation_flags() -> list[str]:
    return ["-O0", "-g"] if os.environ.get("SDAGD_DEBUG") else ["-O3"]


# -- CUDA ---------------------------------------------------------------------------------------

def cuda_mode() -> str:
    mode = os.environ.get("SDAGD_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        raise SystemExit(f"SDAGD_CUDA must be auto, 0 or 1, got {mode!r}")
    return mode


def find_cuda() -> tuple[str, Path] | None:
    """(nvcc, the toolkit's root) when nvcc and the cuBLAS headers are found, else None."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = str(Path(home) / "bin" / "nvcc") if home else shutil.which("nvcc")
    if not nvcc or not Path(nvcc).exists():
        return None
    root = Path(home) if home else Path(nvcc).resolve().parent.parent
    if not (root / "include" / "cublas_v2.h").exists():
        return None
    return nvcc, root


def cuda_command(nvcc: str, root: Path, output: Path, werror: bool | None = None) -> list[str]:
    """The nvcc command that builds the CUDA backend as its own shared library: machine code for
    the chosen architecture (sm_90, the H100/H200, by default) plus PTX that newer GPUs can
    compile at load time. The runtime and cuBLAS are linked dynamically, with an rpath to the
    toolkit that built it."""
    if werror is None:
        werror = os.environ.get("SDAGD_CUDA_WERROR") == "1"
    arch = os.environ.get("SDAGD_CUDA_ARCH", "90")
    lib = root / "lib64" if (root / "lib64").exists() else root / "lib"
    host_flags = ["-fPIC", "-fvisibility=hidden", *WARNINGS] + (["-Werror"] if werror else [])
    cmd = [nvcc, "-O3", "-std=c++17", "-shared", "-Xcompiler", ",".join(host_flags),
           "-gencode", f"arch=compute_{arch},code=sm_{arch}", "-gencode", f"arch=compute_{arch},code=compute_{arch}",
           "-I", str(CORE_DIR), "-o", str(output)]
    if werror:
        cmd += ["-Werror", "all-warnings"]
    if os.environ.get("SDAGD_CUDA_LINEINFO") == "1":
        cmd += ["-lineinfo"]
    cmd += [str(p) for p in sorted(CUDA_DIR.glob("*.cu"))]
    cmd += ["-lcublas", "-Xlinker", f"-rpath,{lib}"]
    return cmd


def build_cuda(output: Path, log=print) -> Path | None:
    """Builds libsdagd_cuda.so at ``output`` when SDAGD_CUDA allows and the toolkit is found;
    returns its path, or None when it is skipped (with a line to ``log`` saying why)."""
    mode = cuda_mode()
    if mode == "0":
        log("sdagd: SDAGD_CUDA=0, the CUDA backend is not built")
        return None
    found = find_cuda()
    if not found or not list(CUDA_DIR.glob("*.cu")):
        if mode == "1":
            raise SystemExit("SDAGD_CUDA=1 but nvcc and the cuBLAS headers were not found "
                             "(set CUDA_HOME to the CUDA toolkit)")
        log("sdagd: nvcc or cuBLAS not found, the CUDA backend is not built (device='cuda' will say so)")
        return None
    nvcc, root = found
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = cuda_command(nvcc, root, output)
    log("sdagd: building the CUDA backend: " + " ".join(cmd))
    subprocess.run(cmd, check=True)
    return output
