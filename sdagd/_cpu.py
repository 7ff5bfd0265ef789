"""How the CPU backend runs on this machine: how many threads, which instruction set, and why.

Decided once, at import, from the environment and the machine; `sdagd.cpu_info()` reports
the outcome with the reason for each choice, and `sdagd.set_num_threads` changes the thread
count later.

Threads, first that applies:
  1. SDAGD_NUM_THREADS (sdagd's own setting);
  2. OMP_NUM_THREADS (the usual way to limit a program's threads, e.g. under Slurm or in a
     sweep's worker processes; its first entry when it is a list);
  3. the CPUs this process may run on: its affinity mask (taskset, cpusets, Slurm's binding),
     lowered to a cgroup CPU quota when there is one (containers: docker --cpus, Kubernetes
     limits), rounded up to whole CPUs.
A thread per CPU it may use, no more: an extra thread on a busy core only waits.

Instruction set of the elementwise loops (the GEMMs go to OpenBLAS, whose kernels follow the
same choice, see _blas.py): SDAGD_CPU_ISA = auto (default: the best this processor has),
avx512, avx2 or baseline. Asking for less than the processor has is how the AVX2 code is
measured on an AVX-512 machine. The loops compute the same bits in every instruction set;
OpenBLAS's kernels for different instruction sets do not (they sum in other orders), so a
run with another SDAGD_CPU_ISA can differ from the default one in the last bits.
"""
from __future__ import annotations

import math
import os
import warnings

ISAS = ("auto", "avx512", "avx2", "baseline")
MAX_THREADS = 256


def _positive_int(text: str) -> int | None:
    try:
        n = int(text.strip().split(",")[0])
    except ValueError:
        return None
    return n if n >= 1 else None


def _cgroup_v2_quota(cgroup_root: str, lines: list) -> float | None:
    """The tightest cpu.max quota (in CPUs) on the way from this process's cgroup up to the root."""
    path = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
    if path is None:
        return None
    best = None
    parts = [p for p in path.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        try:
            with open(os.path.join(cgroup_root, *parts[:depth], "cpu.max"), encoding="ascii") as f:
                quota, period = f.read().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max" and float(period) > 0:
            cpus = float(quota) / float(period)
            best = cpus if best is None else min(best, cpus)
    return best


def _cgroup_v1_quota(cgroup_root: str, lines: list) -> float | None:
    """cpu.cfs_quota_us / cpu.cfs_period_us of this process's cgroup (v1), in CPUs."""
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) == 3 and "cpu" in fields[1].split(","):
            for mount in ("cpu,cpuacct", "cpu"):
                base = os.path.join(cgroup_root, mount)
                for sub in (fields[2].strip("/"), ""):
                    try:
                        with open(os.path.join(base, sub, "cpu.cfs_quota_us"), encoding="ascii") as f:
                            quota = int(f.read())
                        with open(os.path.join(base, sub, "cpu.cfs_period_us"), encoding="ascii") as f:
                            period = int(f.read())
                    except (OSError, ValueError):
                        continue
                    return quota / period if quota > 0 and period > 0 else None
    return None


def cgroup_cpu_quota(cgroup_root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), or None when there is none."""
    try:  # this process's cgroups, one "id:controllers:path" line each
        with open(proc_cgroup, encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    quota = _cgroup_v2_quota(cgroup_root, lines)
    return quota if quota is not None else _cgroup_v1_quota(cgroup_root, lines)


def default_threads(environ=os.environ, affinity: int | None = None, quota: float | None = -1.0) -> tuple[int, str]:
    """(threads, why) for this process: see the module's docstring. ``affinity`` and ``quota``
    stand in for the machine's in tests (quota -1: read it)."""
    for name in ("SDAGD_NUM_THREADS", "OMP_NUM_THREADS"):
        text = environ.get(name)
        if text is None or not text.strip():
            continue
        n = _positive_int(text)
        if n is None:
            warnings.warn(f"{name}={text!r} is not a positive integer; sdagd ignores it", RuntimeWarning, stacklevel=3)
            continue
        clipped = min(n, MAX_THREADS)
        return clipped, f"{name}={text.strip()}" + (f" (at most {MAX_THREADS})" if clipped != n else "")
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = os.cpu_count() or 1
    if quota == -1.0:
        quota = cgroup_cpu_quota()
    why = f"{affinity} CPU{'s' if affinity != 1 else ''} in this process's affinity mask"
    n = affinity
    if quota is not None and math.ceil(quota) < n:
        n = max(1, math.ceil(quota))
        why += f", a cgroup CPU quota of {quota:g}"
    return max(1, min(n, MAX_THREADS)), why


def wanted_isa(environ=os.environ) -> str:
    """SDAGD_CPU_ISA, checked: auto unless one of ISAS is asked for."""
    text = environ.get("SDAGD_CPU_ISA", "auto").strip().lower() or "auto"
    if text not in ISAS:
        warnings.warn(f"SDAGD_CPU_ISA={text!r} is not one of {', '.join(ISAS)}; sdagd uses auto",
                      RuntimeWarning, stacklevel=3)
        return "auto"
    return text


def configure(core) -> dict:
    """Applies the choices to the loaded core; returns the reasons for cpu_info()."""
    threads, threads_why = default_threads()
    core.set_num_threads(threads)
    wanted = wanted_isa()
    chosen = core.cpu_loops(wanted)
    if chosen is None:
        chosen = core.cpu_loops("auto")
        isa_why = f"SDAGD_CPU_ISA={wanted}, which this processor cannot run; the best it has instead"
        warnings.warn(f"SDAGD_CPU_ISA={wanted}: this processor cannot run it; sdagd uses {chosen}",
                      RuntimeWarning, stacklevel=3)
    elif wanted == "auto":
        isa_why = "the best this processor has (SDAGD_CPU_ISA=avx2 or baseline asks for less)"
    else:
        isa_why = f"SDAGD_CPU_ISA={wanted}"
    return {"threads_why": threads_why, "isa_why": isa_why}
