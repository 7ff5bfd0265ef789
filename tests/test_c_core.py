"""Builds the C core with its plain-C test program (csrc/tests/test_core.c) under
AddressSanitizer, LeakSanitizer and UBSan, warnings as errors, and runs it: memory errors,
leaks and undefined behaviour in the core fail this test even where Python would not notice.
The sources and flags come from build_core.py, the recipe setup.py builds the extension with."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_c_core_under_sanitizers(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    if not (ROOT / "csrc" / "tests" / "test_core.c").exists() or not (ROOT / "build_core.py").exists():
        pytest.skip("C sources not present (installed package without the source tree)")
    scipy_openblas32 = pytest.importorskip("scipy_openblas32")
    sys.path.insert(0, str(ROOT))
    try:
        import build_core
    finally:
        sys.path.remove(str(ROOT))
    lib_dir = scipy_openblas32.get_lib_dir()
    exe = tmp_path / "test_core"
    sources = [str(ROOT / s) for s in build_core.core_sources()]
    build = subprocess.run(
        [cc, *build_core.C_FLAGS, *build_core.SANITIZE_FLAGS, "-o", str(exe),
         str(ROOT / "csrc" / "tests" / "test_core.c"), *sources, f"-I{ROOT / 'csrc'}", f"-L{lib_dir}",
         "-l" + scipy_openblas32.get_library(), f"-Wl,-rpath,{lib_dir}", *build_core.LINK_FLAGS],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all C core checks passed" in run.stdout
