"""Thread policy: full speed on an idle machine, a fair share of a busy one.

Why: the lab's heavy paths run in thread pools that, by default, spin on a core while they wait for
work or for a partner thread. When another process holds a core, the partner is descheduled and the
spinning thread burns its time slice waiting for it: a 2-thread torch loop ran 5x slower beside one
busy process instead of 2x. Making every pool wait passively (OMP_WAIT_POLICY=PASSIVE) cures that but
costs an idle machine up to 1.6x on the tiny models' many small parallel regions. So the default,
'fair', keeps the libraries' fast waiting and instead gives torch only the CPUs nobody else is using:
    torch (encoding, attribution, training)   before each batch / step, fit_torch() sets torch's thread
                                              count to the CPUs other processes left idle over the last
                                              quarter second (/proc/stat; at least one thread)
    numpy / scipy BLAS (OpenBLAS, pthreads)   OPENBLAS_THREAD_TIMEOUT=4: workers sleep after a call
    scikit-learn fits (linear probes,         many tiny BLAS / OpenMP calls: one thread is faster
      modality gap, k-NN, k-means)            even alone -> `small_work()` around them
    numba (UMAP)                              seeded UMAP runs one thread; NUMBA_NUM_THREADS as below
    DataLoader workers (encoding, training)   one torch thread each, at most `available_cpus()`
Thread counts start at the CPUs this process may use (affinity and cgroup quota, e.g. a JupyterHub
limit), not the host's core count. A count that someone else set (torch.set_num_threads in your code,
a DataLoader or Ray worker) is left alone. Without /proc (macOS, Windows) 'fair' keeps the full count.

Fork safety: the policy belongs to the process that configured it (`import lab`). In a process forked
from it (DataLoader workers, multiprocessing children) fit_torch() does nothing: GNU OpenMP's thread
pool does not survive fork, and a forked child that raises torch above one thread and enters a parallel
region waits forever for pool threads that exist only in its parent. A spawned process (Ray workers,
report kernels) imports lab afresh and owns its own policy.

`import lab` (which the CLI, the report, the trainer, the widgets and every notebook do first) puts
the variables in os.environ before numpy loads, without overriding what you set yourself; report
kernels inherit them. Importing torch before lab is fine under 'fair' (its count is set at run time);
under 'passive' import lab first or start Python with OMP_WAIT_POLICY=PASSIVE. Overrides:
    LAB_THREAD_POLICY=fair|passive|spin   fair (default) as above; passive: every OpenMP pool waits
                                          passively at a fixed count (for loads that change within a
                                          batch); spin: the libraries' own defaults
    LAB_THREADS=N                         threads per pool, fixed (default: fitted as above)
    lab.threads.configure(policy="spin", threads=1)   # the same from Python; see settings()
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings

__all__ = ["POLICIES", "POLICY_ENV", "COUNT_ENV", "WINDOW", "available_cpus", "environment", "configure", "policy",
           "busy_elsewhere", "fair_count", "owns_process", "fit_torch", "small_work", "settings"]

POLICIES = ("fair", "passive", "spin")
# read when each runtime loads: OpenBLAS (numpy, scipy); under 'passive' also libgomp (torch,
# scikit-learn, numba) and Intel / LLVM OpenMP
POLICY_ENV = {"fair": {"OPENBLAS_THREAD_TIMEOUT": "4"},
              "passive": {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "OPENBLAS_THREAD_TIMEOUT": "4"},
              "spin": {}}
COUNT_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
_RUNTIMES = ("torch", "numpy", "sklearn", "numba")  # what had loaded before the policy was set
WINDOW = 0.25  # seconds of CPU accounting behind each fitted count
FIRST_WINDOW, STALE = 0.1, 5.0  # a reading older than STALE is replaced by a fresh FIRST_WINDOW one

_state: dict = {}  # "pid": the process that configured the policy; only it fits thread counts
_load: dict = {}  # the last /proc reading and what it said


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
    env = dict(POLICY_ENV[policy])
    count = n or (available_cpus() if available_cpus() < (os.cpu_count() or 1) else None)
    if count:  # an explicit count, or a quota / affinity below the host's core count
        env.update({k: str(count) for k in COUNT_ENV})
    return env


def configure(policy: str | None = None, threads: int | None = None) -> dict:
    """Apply a thread policy ('fair', 'passive' or 'spin'; default $LAB_THREAD_POLICY, else 'fair')
    and a thread count (default $LAB_THREADS, else fitted to the load under 'fair' and the libraries'
    own otherwise, capped by available_cpus()) -> settings(). Variables you set yourself are kept;
    those the lab set before are replaced. Variables take effect in runtimes that load afterwards and
    in subprocesses (report kernels, DataLoader workers); thread counts are also applied to torch and
    numba when they are already loaded, except in a process forked from the configured one (see fork
    safety in the module docstring)."""
    policy, n = _policy(policy), _threads(threads)
    first, before = not _state, _state.get("threads")
    if first:
        _state.update(loaded_before=[m for m in _RUNTIMES if m in sys.modules], ours={}, pid=os.getpid())
    for k, v in _state["ours"].items():  # undo the lab's own previous choice
        if os.environ.get(k) == v:
            del os.environ[k]
    _state["ours"] = {}
    for k, v in environment(policy, n).items():
        if k not in os.environ:
            os.environ[k] = _state["ours"][k] = v
    _state.update(policy=policy, threads=n)
    fitted = _state.pop("fitted", None)  # fit_torch starts afresh from the count set below (or torch's own)
    if not owns_process():  # a forked child: variables only, never a thread count (see the docstring)
        return settings()
    if fitted and "torch" in sys.modules and sys.modules["torch"].get_num_threads() == fitted["set"]:
        sys.modules["torch"].set_num_threads(fitted["most"])  # undo the lab's own fitting first
    if policy == "fair" and "reading" not in _load:  # the first fit reads the load since now, without waiting
        _load["reading"] = _ticks(_affinity())
    if first and "torch" in _state["loaded_before"] and "OMP_WAIT_POLICY" in _state["ours"]:
        warnings.warn("torch was imported before lab, so its OpenMP threads ignore the 'passive' policy and "
                      "slow down a lot when another process is busy: import lab first, or start Python with "
                      "OMP_WAIT_POLICY=PASSIVE", RuntimeWarning, stacklevel=3)
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


def _affinity() -> set[int] | None:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # macOS, Windows
        return None


def _stat_ticks(pid: str, children: bool = False) -> int:
    """Clock ticks a process used (utime + stime; with `children`, also its reaped children's)."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()  # past the command name, which may hold spaces
    return sum(int(v) for v in f[11:15 if children else 13])


def _own_ticks() -> int:
    """Clock ticks of this process and its children, live (DataLoader workers) or reaped: work the
    lab itself asked for, which the libraries' defaults already ran beside torch's full count."""
    total = _stat_ticks("self", children=True)
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as fh:
                kids = fh.read().split()
        except OSError:  # a thread that ended, or a kernel without the children file
            continue
        for pid in kids:
            try:
                total += _stat_ticks(pid)
            except (OSError, ValueError, IndexError):  # it ended meanwhile
                pass
    return total


def _ticks(cpus) -> tuple[float, int, int] | None:
    """(time, busy clock ticks of these CPUs, clock ticks of this process and its children) from
    /proc, or None."""
    if cpus is None:
        return None
    try:
        busy = 0
        with open("/proc/stat") as fh:
            for line in fh:
                name, *v = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                    v = [int(x) for x in v[:8]]  # user nice system idle iowait irq softirq steal
                    busy += sum(v) - v[3] - v[4]
        return time.monotonic(), busy, _own_ticks()
    except (OSError, ValueError, IndexError):
        return None


def busy_elsewhere() -> float | None:
    """CPUs of this process's affinity set that other processes (not its own children) kept busy,
    averaged over the time since the previous reading (WINDOW s or more; the first is taken by
    configure(); after more than STALE s this waits FIRST_WINDOW s for a fresh one) -> None without
    /proc."""
    last = _load.get("reading")
    if last is not None and time.monotonic() - last[0] < WINDOW and "value" in _load:
        return _load["value"]  # too recent to say more than last time
    cpus = _affinity()
    now = _ticks(cpus)
    if now is None:
        return None
    if last is None or now[0] - last[0] > STALE:
        time.sleep(FIRST_WINDOW)
        last, now = now, _ticks(cpus)
    hz = os.sysconf("SC_CLK_TCK")
    value = max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / (hz * (now[0] - last[0])))
    _load.update(reading=now, value=value)
    return value


def fair_count(most: int) -> int:
    """Threads for heavy work now under 'fair': `most` less the CPUs other processes keep busy, >= 1."""
    others = busy_elsewhere()
    if others is None:
        return most
    return max(1, min(most, available_cpus() - int(others + 0.5)))


def owns_process() -> bool:
    """True in the process that configured the policy; False in one forked from it (see the docstring)."""
    return _state.get("pid") == os.getpid()


def fit_torch() -> None:
    """Before a batch or training step: under 'fair', without an explicit LAB_THREADS, set torch's
    intra-op threads to fair_count(). The first call takes torch's count then as the most; a count
    that someone else has set since (a DataLoader or Ray worker, your own code) stands. Never in a
    forked process (owns_process). Cheap: the load is read at most every WINDOW seconds."""
    torch = sys.modules.get("torch")
    if torch is None or policy() != "fair" or _state.get("threads") is not None or not owns_process():
        return
    current = torch.get_num_threads()
    fitted = _state.setdefault("fitted", {"most": current, "set": current})
    if current != fitted["set"] or fitted["most"] == 1:
        return
    n = fair_count(fitted["most"])
    if n != current:
        torch.set_num_threads(n)
    fitted["set"] = n


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
    loaded before the policy was set, and under 'fair' the last load reading and fitted count."""
    names = dict.fromkeys(k for env in POLICY_ENV.values() for k in env)
    out = {"policy": policy(), "threads": _state.get("threads"), "available_cpus": available_cpus(),
           "cpu_count": os.cpu_count(), "env": {k: os.environ.get(k) for k in (*names, *COUNT_ENV)},
           "loaded_before_policy": _state.get("loaded_before", [])}
    if "fitted" in _state:
        out.update(fitted_most=_state["fitted"]["most"], busy_elsewhere=_load.get("value"))
    if "torch" in sys.modules:
        out["torch_threads"] = sys.modules["torch"].get_num_threads()
    return out
