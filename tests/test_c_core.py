"""Builds the C core with its plain-C test program (csrc/tests/test_core.c) under
AddressSanitizer, LeakSanitizer and UBSan, warnings as errors, and runs it: memory errors,
leaks and undefined behaviour in the core fail this test even where Python would not notice."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_c_core_under_sanitizers(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    if not (ROOT / "csrc" / "tests" / "test_core.c").exists():
        pytest.skip("C sources not present (installed package without the source tree)")
    scipy_openblas32 = pytest.importorskip("scipy_openblas32")
    lib_dir = scipy_openblas32.get_lib_dir()
    exe = tmp_path / "test_core"
    sources = [str(p) for p in sorted((ROOT / "csrc").glob("*.c"))]
    build = subprocess.run(
        [cc, "-std=c11", "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
         "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-o", str(exe), str(ROOT / "csrc" / "tests" / "test_core.c"),
         *sources, f"-L{lib_dir}", "-l" + scipy_openblas32.get_library(), f"-Wl,-rpath,{lib_dir}", "-lm"],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all C core checks passed" in run.stdout
