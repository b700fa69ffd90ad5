"""Thread policy: full speed on an idle machine, a fair share of a busy one.

Why: the lab's heavy paths run in thread pools that, by default, spin on a core while they wait for
work or for a partner thread. When another process holds a core, the partner is descheduled and the
spinning thread burns its time slice waiting for it: a 2-thread torch loop ran 5x slower beside one
busy process instead of 2x. The pools and what tames each:
    torch (encoding, attribution, training)   libgomp / MKL / oneDNN: OMP_WAIT_POLICY=PASSIVE
                                              (Intel / LLVM OpenMP builds: KMP_BLOCKTIME=0)
    numpy / scipy BLAS (OpenBLAS, pthreads)   OPENBLAS_THREAD_TIMEOUT=4: workers sleep after a call
    scikit-learn fits (linear probes,         many tiny BLAS / OpenMP calls: one thread is faster
      modality gap, k-NN, k-means)            even alone -> `small_work()` around them
    numba (UMAP)                              seeded UMAP runs one thread; NUMBA_NUM_THREADS as below
    DataLoader workers (encoding, training)   one torch thread each, at most `available_cpus()`
Thread counts default to the CPUs this process may use (affinity and cgroup quota, e.g. a
JupyterHub limit), not the host's core count.

Most of these are read once, when a library loads its OpenMP / BLAS runtime. `import lab` (which the
CLI, the report, the trainer, the widgets and every notebook do first) puts them in os.environ
before torch or numpy load, without overriding what you set yourself; report kernels inherit them.
If torch was imported before lab, its OpenMP threads keep spinning: import lab first, or start
Python with OMP_WAIT_POLICY=PASSIVE set. Overrides:
    LAB_THREAD_POLICY=fair|spin    fair (default) as above; spin: the libraries' own defaults
    LAB_THREADS=N                  threads per pool (default: available_cpus())
    lab.threads.configure(policy="spin", threads=1)   # the same from Python; see settings()
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings

POLICIES = ("fair", "spin")
# read when each runtime loads: libgomp (torch, scikit-learn, numba), Intel/LLVM OpenMP, OpenBLAS
FAIR_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "OPENBLAS_THREAD_TIMEOUT": "4"}
COUNT_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
_RUNTIMES = ("torch", "numpy", "sklearn", "numba")  # what had loaded before the policy was set

_state: dict = {}


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    try:  # cgroup v2 "quota period", or "max"
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _policy(policy: str | None) -> str:
    policy = (policy or os.environ.get("LAB_THREAD_POLICY") or "fair").strip().lower()
    if policy not in POLICIES:
        raise ValueError(f"thread policy {policy!r} is not one of {POLICIES} (LAB_THREAD_POLICY or "
                         "lab.threads.configure(policy=...))")
    return policy


def _threads(threads: int | None) -> int | None:
    value = threads if threads is not None else os.environ.get("LAB_THREADS") or None
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"LAB_THREADS / threads= must be a positive integer; got {value!r}")
    return n


def environment(policy: str | None = None, threads: int | None = None) -> dict[str, str]:
    """The environment variables the policy sets (for a kernel or subprocess of your own)."""
    policy, n = _policy(policy), _threads(threads)
    env = dict(FAIR_ENV) if policy == "fair" else {}
    count = n or (available_cpus() if available_cpus() < (os.cpu_count() or 1) else None)
    if count:  # an explicit count, or a quota / affinity below the host's core count
        env.update({k: str(count) for k in COUNT_ENV})
    return env


def configure(policy: str | None = None, threads: int | None = None) -> dict:
    """Apply a thread policy ('fair' or 'spin'; default $LAB_THREAD_POLICY, else 'fair') and a
    thread count (default $LAB_THREADS, else the libraries' own unless the process may use fewer CPUs
    than the host has: then available_cpus()) -> settings(). Variables you set
    yourself are kept; those the lab set before are replaced. Wait policies take effect in runtimes
    that load afterwards and in subprocesses (report kernels, DataLoader workers); thread counts are
    also applied to torch and numba when they are already loaded."""
    policy, n = _policy(policy), _threads(threads)
    first, before = not _state, _state.get("threads")
    if first:
        _state.update(loaded_before=[m for m in _RUNTIMES if m in sys.modules], ours={})
    for k, v in _state["ours"].items():  # undo the lab's own previous choice
        if os.environ.get(k) == v:
            del os.environ[k]
    _state["ours"] = {}
    for k, v in environment(policy, n).items():
        if k not in os.environ:
            os.environ[k] = _state["ours"][k] = v
    _state.update(policy=policy, threads=n)
    if first and policy == "fair" and "torch" in _state["loaded_before"] and "OMP_WAIT_POLICY" in _state["ours"]:
        warnings.warn("torch was imported before lab, so its OpenMP threads spin-wait and slow down a lot when "
                      "another process is busy: import lab first, or start Python with OMP_WAIT_POLICY=PASSIVE",
                      RuntimeWarning, stacklevel=3)
    if n is not None or before is not None:  # loaded runtimes follow an explicit count (or its removal)
        count = n or available_cpus()
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(count)
        if "numba" in sys.modules:
            numba = sys.modules["numba"]
            numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    return settings()


def policy() -> str:
    return _state.get("policy") or _policy(None)


@contextlib.contextmanager
def small_work():
    """BLAS and OpenMP pools at one thread for many small calls (scikit-learn fits on a few thousand
    embeddings): their threads only cost there, and cost most on a busy machine. No-op under 'spin'."""
    if policy() == "spin":
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        yield


def settings() -> dict:
    """What is in force, for manifests: policy, thread count, CPUs, the variables, runtimes that
    loaded before the policy was set (their wait policy is the library default)."""
    out = {"policy": policy(), "threads": _state.get("threads"), "available_cpus": available_cpus(),
           "cpu_count": os.cpu_count(), "env": {k: os.environ.get(k) for k in (*FAIR_ENV, *COUNT_ENV)},
           "loaded_before_policy": _state.get("loaded_before", [])}
    if "torch" in sys.modules:
        out["torch_threads"] = sys.modules["torch"].get_num_threads()
    return out
