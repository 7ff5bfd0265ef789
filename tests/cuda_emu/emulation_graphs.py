"""The CUDA backend's recorded steps under the emulation: a plain first step before any capture
(the emulation loads modules lazily, refusing a kernel's first launch during a capture, as
older drivers do), and the fallback to plain launches, with a warning, when a capture fails at
any of its stages. Each run is its own process (the warning is printed once per process).
Run by tests/cuda_emu/run.sh, with SDAGD_EMU_LIBRARY and LD_LIBRARY_PATH set by it.
"""
import os
import re
import subprocess
import sys

import pytest

TRAIN = r"""
import hashlib, os, sys
import numpy as np
import sdagd
sdagd._core.set_cuda_library(os.environ["SDAGD_EMU_LIBRARY"])
rng = np.random.default_rng(0)
X, y = rng.standard_normal((150, 20)).astype(np.float32), rng.integers(0, 5, 150)
net = sdagd.MLP([20, 16, 12, 5], seed=4, device="cuda")
net.fit(X, y, sdagd.optim.SDAGD(radius=0.3), epochs=2, batch_size=32, progress=False)
print("params", hashlib.sha256(b"".join(a.tobytes() for pair in net.params for a in pair)).hexdigest())
"""


def train(**env):
    if "SDAGD_EMU_LIBRARY" not in os.environ:
        pytest.fail("run by tests/cuda_emu/run.sh: SDAGD_EMU_LIBRARY is not set")
    library = os.path.abspath(os.environ["SDAGD_EMU_LIBRARY"])
    env = dict(os.environ, SDAGD_EMU_LIBRARY=library, SDAGD_EMU_STATS="1", **env)
    env["LD_LIBRARY_PATH"] = os.path.join(os.path.dirname(library), "driver") + ":" + env.get("LD_LIBRARY_PATH", "")
    # not from the source folder, whose sdagd/ would shadow the installed one
    done = subprocess.run([sys.executable, "-c", TRAIN], env=env, capture_output=True, text=True, timeout=300, cwd="/")
    assert done.returncode == 0, done.stdout + done.stderr
    params = re.search(r"params (\w+)", done.stdout).group(1)
    graphs = int(re.search(r"(\d+) graph launches", done.stderr).group(1))
    return params, graphs, done.stderr


@pytest.fixture(scope="module")
def plain():
    params, graphs, _ = train(SDAGD_CUDA_GRAPHS="0")
    assert graphs == 0
    return params


def test_steps_are_recorded_after_a_plain_first_step(plain):
    params, graphs, err = train(SDAGD_EMU_LAZY_LOADING="1")
    assert "warning" not in err, err
    assert graphs > 0, "no step was replayed from a recording"
    assert params == plain, "a replayed step differs from a launched one"


@pytest.mark.parametrize("stage", ["begin", "launch", "end", "instantiate"])
def test_a_failed_capture_falls_back_to_plain_launches(plain, stage):
    params, graphs, err = train(SDAGD_EMU_CAPTURE_FAILS=stage)
    assert "sdagd: warning: CUDA graph capture failed" in err, err
    assert err.count("sdagd: warning") == 1, err
    assert graphs == 0
    assert params == plain, "the fallback trained differently from plain launches"
