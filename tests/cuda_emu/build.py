"""Builds the CUDA backend against the CPU emulation of the CUDA runtime and cuBLAS (test code).

    python tests/cuda_emu/build.py [--source cuda/backend_cuda.cu] [--out tests/cuda_emu/build]

makes, in the output folder:
  libsdagd_cuda_emu.so   the backend (its launches rewritten by rewrite_launches.py) compiled
                         by g++ as C++17 together with emu_runtime.cpp and emu_cublas.cpp,
                         linked with --no-undefined
  driver/libcuda.so.1    a stub for the NVIDIA driver, which the backend checks can be loaded
                         (put the folder on LD_LIBRARY_PATH before Python starts)

The emulated headers (include/) declare only what is emulated, so a backend that calls
anything else does not compile; the error is then named ("the CUDA emulation lacks ...").
Needs g++ and gcc; x86-64 Linux (the fiber switch is written in its assembly).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LIBRARY = "libsdagd_cuda_emu.so"

WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter"]
MISSING = [re.compile(r"[‘']((?:cuda|cublas|cu|__)\w*)[’'] was not declared"),
           re.compile(r"[‘']((?:cuda|cublas|__)\w*)[’'] (?:has not been declared|does not name a type)"),
           re.compile(r"undefined reference to `((?:cuda|cublas|__)\w*)"),
           re.compile(r"undefined symbol: ((?:cuda|cublas|__)\w*)")]


def missing_names(log: str) -> list[str]:
    """The CUDA or cuBLAS names a failed build could not find."""
    names = []
    for pattern in MISSING:
        names += [m.group(1) for m in pattern.finditer(log) if m.group(1) not in names]
    return names


def build(source: Path, out: Path, log=print) -> Path:
    """The emulated backend built from ``source`` into ``out``; SystemExit with the reason if
    it cannot be built."""
    out.mkdir(parents=True, exist_ok=True)
    rewritten = out / (source.stem + "_emu.cpp")
    subprocess.run([sys.executable, str(HERE / "rewrite_launches.py"), str(source), str(rewritten)], check=True)
    library = out / LIBRARY
    cmd = ["g++", "-std=c++17", os.environ.get("SDAGD_EMU_OPT", "-O2"), "-g", "-fPIC", "-shared",
           "-fvisibility=hidden", *WARNINGS, "-I", str(HERE / "include"), "-I", str(ROOT / "csrc"),
           str(HERE / "emu_runtime.cpp"), str(HERE / "emu_cublas.cpp"), str(rewritten),
           "-Wl,--no-undefined", "-ldl", "-lm", "-pthread", "-o", str(library)]
    log("cuda_emu: " + " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        names = missing_names(done.stdout + done.stderr)
        if names:
            raise SystemExit(f"cuda_emu: the CUDA emulation lacks {', '.join(names)}, which {source} uses: add "
                             "it to tests/cuda_emu/include and emu_runtime.cpp or emu_cublas.cpp")
        raise SystemExit(f"cuda_emu: building {source} against the emulation failed (see the compiler's messages above)")
    driver = out / "driver"
    driver.mkdir(exist_ok=True)
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", "-Wall", str(HERE / "libcuda_stub.c"), "-o",
                    str(driver / "libcuda.so.1")], check=True)
    return library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "cuda" / "backend_cuda.cu")
    parser.add_argument("--out", type=Path, default=HERE / "build")
    args = parser.parse_args()
    print(build(args.source.resolve(), args.out.resolve()))


if __name__ == "__main__":
    main()
