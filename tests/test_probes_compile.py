"""The C probes in benchmarks/ back decisions recorded in BENCHMARKS.md (no own GEMM kernel);
they are not built with the package, so this keeps them compiling for whoever re-measures."""
import shutil
import subprocess
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("probe", sorted(p.name for p in BENCHMARKS.glob("*.c")))
def test_probe_compiles(probe):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    result = subprocess.run([gcc, "-std=gnu11", "-Wall", "-Werror", "-fsyntax-only", str(BENCHMARKS / probe)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"benchmarks/{probe} no longer compiles:\n{result.stderr}"
