"""How the CPU backend is set up on a machine: the default thread count (affinity mask, cgroup
quota, SDAGD_NUM_THREADS, OMP_NUM_THREADS), the instruction set of the elementwise loops
(SDAGD_CPU_ISA), and that every instruction set computes the same bits."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sdagd
from sdagd import _core, _cpu, optim


# ---- the default thread count -----------------------------------------------------------------

@pytest.mark.parametrize("environ, affinity, quota, expected, why", [
    ({}, 4, None, 4, "4 CPUs in this process's affinity mask"),
    ({}, 1, None, 1, "1 CPU in this process's affinity mask"),
    ({}, 8, 1.5, 2, "a cgroup CPU quota of 1.5"),        # rounded up to whole CPUs
    ({}, 8, 0.2, 1, "a cgroup CPU quota of 0.2"),
    ({}, 2, 16.0, 2, "affinity mask"),                   # a quota above the mask changes nothing
    ({"OMP_NUM_THREADS": "1"}, 8, None, 1, "OMP_NUM_THREADS=1"),
    ({"OMP_NUM_THREADS": "3,2"}, 8, None, 3, "OMP_NUM_THREADS=3,2"),   # nested OpenMP: the outer level
    ({"SDAGD_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}, 8, None, 2, "SDAGD_NUM_THREADS=2"),
    ({"SDAGD_NUM_THREADS": "999"}, 8, None, 256, "at most 256"),
    ({"SDAGD_NUM_THREADS": " "}, 3, None, 3, "affinity mask"),         # empty: not set
])
def test_default_threads_follow_the_environment_then_the_cpus_this_process_may_use(environ, affinity, quota,
                                                                                  expected, why):
    n, reason = _cpu.default_threads(environ, affinity=affinity, quota=quota)
    assert n == expected
    assert why in reason


@pytest.mark.parametrize("value", ["zero", "0", "-2", "1.5"])
def test_a_bad_thread_variable_is_named_and_ignored(value):
    with pytest.warns(RuntimeWarning, match="OMP_NUM_THREADS"):
        n, reason = _cpu.default_threads({"OMP_NUM_THREADS": value}, affinity=2, quota=None)
    assert (n, reason) == (2, "2 CPUs in this process's affinity mask")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_on_the_way_to_the_root(tmp_path):
    _write(tmp_path / "self_cgroup", "0::/outer/inner\n")
    _write(tmp_path / "fs" / "cpu.max", "max 100000\n")
    _write(tmp_path / "fs" / "outer" / "cpu.max", "150000 100000\n")
    _write(tmp_path / "fs" / "outer" / "inner" / "cpu.max", "max 100000\n")
    assert _cpu.cgroup_cpu_quota(str(tmp_path / "fs"), str(tmp_path / "self_cgroup")) == 1.5
    _write(tmp_path / "fs" / "outer" / "inner" / "cpu.max", "50000 100000\n")
    assert _cpu.cgroup_cpu_quota(str(tmp_path / "fs"), str(tmp_path / "self_cgroup")) == 0.5


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    _write(tmp_path / "self_cgroup", "4:cpu,cpuacct:/job\n3:memory:/job\n")
    _write(tmp_path / "fs" / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "300000\n")
    _write(tmp_path / "fs" / "cpu,cpuacct" / "job" / "cpu.cfs_period_us", "100000\n")
    assert _cpu.cgroup_cpu_quota(str(tmp_path / "fs"), str(tmp_path / "self_cgroup")) == 3.0
    _write(tmp_path / "fs" / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "-1\n")
    assert _cpu.cgroup_cpu_quota(str(tmp_path / "fs"), str(tmp_path / "self_cgroup")) is None
    assert _cpu.cgroup_cpu_quota(str(tmp_path / "absent"), str(tmp_path / "absent_cgroup")) is None


def _info_in_child(env_changes, prefix=()):
    """sdagd.cpu_info() of a fresh interpreter with the environment changed."""
    env = {k: v for k, v in os.environ.items() if k not in ("SDAGD_NUM_THREADS", "OMP_NUM_THREADS", "SDAGD_CPU_ISA")}
    env.update(env_changes)
    out = subprocess.run([*prefix, sys.executable, "-c", "import json, sdagd; print(json.dumps(sdagd.cpu_info()))"],
                         env=env, capture_output=True, text=True, check=True, cwd=os.path.dirname(__file__))
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_under_taskset_one_cpu_means_one_thread():
    info = _info_in_child({}, prefix=("taskset", "-c", "0"))
    assert info["threads"] == 1
    assert "affinity mask" in info["threads_why"]


def test_the_variables_set_the_thread_count_of_a_new_process():
    assert _info_in_child({"OMP_NUM_THREADS": "1"})["threads"] == 1
    info = _info_in_child({"OMP_NUM_THREADS": "1", "SDAGD_NUM_THREADS": "3"})
    assert (info["threads"], info["threads_why"]) == (3, "SDAGD_NUM_THREADS=3")


def test_set_num_threads_is_reported_as_the_reason():
    old = sdagd.get_num_threads()
    try:
        sdagd.set_num_threads(1)
        assert sdagd.cpu_info()["threads"] == 1 and sdagd.cpu_info()["threads_why"] == "set_num_threads"
        assert "threads: 1 (set_num_threads)" in sdagd.blas_info()
    finally:
        sdagd.set_num_threads(old)


# ---- the instruction set ----------------------------------------------------------------------

def _supported_isas():
    current = _core.cpu_loops(None)
    try:
        return [isa for isa in ("avx512", "avx2", "baseline") if _core.cpu_loops(isa) is not None]
    finally:
        _core.cpu_loops(current)


def test_the_isa_variable_chooses_the_loops_and_the_blas_kernels():
    info = _info_in_child({"SDAGD_CPU_ISA": "baseline"})
    assert info["isa"] == "baseline" and info["isa_why"] == "SDAGD_CPU_ISA=baseline"
    assert "SDAGD_CPU_ISA=baseline" in info["blas_why"]
    default = _info_in_child({})
    assert default["isa"] == _supported_isas()[0]


def test_an_isa_the_processor_lacks_or_a_misspelt_one_warns_and_falls_back():
    with pytest.warns(RuntimeWarning, match="SDAGD_CPU_ISA"):
        assert _cpu.wanted_isa({"SDAGD_CPU_ISA": "avx9000"}) == "auto"
    assert _cpu.wanted_isa({"SDAGD_CPU_ISA": " AVX2 "}) == "avx2"
    if "avx512" not in _supported_isas():
        assert _core.cpu_loops("avx512") is None  # refused; the choice is unchanged
        info = _info_in_child({"SDAGD_CPU_ISA": "avx512"})
        assert info["isa"] == _supported_isas()[0] and "cannot run" in info["isa_why"]


def _train_everything():
    """Every loop of the table: each hidden activation forward and backward (diagnostics
    included), each optimizer's update (SDAGD with max_step, averaging and a kept h), the
    finiteness check; returns the parameters and losses."""
    rng = np.random.default_rng(7)
    X, y = rng.random((120, 37), dtype=np.float32), rng.integers(0, 4, 120)
    out = []
    makers = [lambda: optim.SGD(lr=0.2, momentum=0.5),
              lambda: optim.SDAGD(radius=0.3, max_step=0.2, average=0.1, hessian_every=2),
              lambda: optim.SDAGD(radius=0.3, norm="global"),
              lambda: optim.SDLM(lr=0.1, mu=0.1), lambda: optim.AdaGrad(), lambda: optim.AdaDelta(),
              lambda: optim.Adam()]
    for act in _core.HIDDEN_ACTIVATIONS:
        for make in makers:
            net = sdagd.MLP([37, 45, 29, 4], activation=act, seed=2)
            h = net.fit(X, y, make(), epochs=2, batch_size=40, progress=False)
            out.append((act, [p.copy() for pair in net.params for p in pair], h.train_loss, (h.saturated, h.dead, h.phase1_fraction)))
    return out


def test_every_instruction_set_computes_the_same_bits():
    """No FMA contraction and the same summation order in every copy: AVX-512, AVX2 and the
    baseline loops give bit-identical training runs (on this processor, the sets it runs)."""
    isas = _supported_isas()
    current = _core.cpu_loops(None)
    runs = {}
    try:
        for isa in isas:
            assert _core.cpu_loops(isa) == isa
            runs[isa] = _train_everything()
    finally:
        _core.cpu_loops(current)
    assert "baseline" in runs and len(runs) >= 2 or len(isas) == 1
    first = runs[isas[0]]
    for isa in isas[1:]:
        for (act, p1, l1, s1), (_, p2, l2, s2) in zip(first, runs[isa]):
            assert l1 == l2, (isa, act)
            assert s1 == s2, (isa, act)
            for a, b in zip(p1, p2):
                np.testing.assert_array_equal(a, b, err_msg=f"{isa} vs {isas[0]}, {act}")


# ---- never slower than one thread -----------------------------------------------------------------

_SOLO_CHILD = """
import json, os, numpy as np, sdagd
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # two threads on one CPU: always slower
rng = np.random.default_rng(0)
X = rng.random((1000, 64), dtype=np.float32)
y = rng.integers(0, 10, 1000)
net = sdagd.MLP([64, 256, 256, 10], activation="sigmoid", seed=0)
net.fit(X, y, sdagd.optim.SDAGD(radius=0.3), epochs=3, batch_size=50, progress=False)
print(json.dumps({"threads": sdagd.get_num_threads(), "solo_spans": sdagd.cpu_info()["solo_spans"],
                  "params": [float(np.sum(np.abs(p))) for layer in net.params for p in layer]}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_threads_that_lose_to_one_thread_give_way_with_the_same_bits():
    """Two threads forced onto one CPU run every parallel operation slower than one thread would;
    the pool sees it (its time per run against the caller's own time per task) and runs alone,
    and the trained network is bit for bit the one-thread network."""
    def run(threads):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
        env["SDAGD_NUM_THREADS"] = str(threads)
        out = subprocess.run([sys.executable, "-c", _SOLO_CHILD], env=env, capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(__file__))
        return json.loads(out.stdout.strip().splitlines()[-1])

    two, one = run(2), run(1)
    assert two["threads"] == 2 and one["threads"] == 1
    assert two["solo_spans"] >= 1, two
    assert one["solo_spans"] == 0
    assert two["params"] == one["params"]
