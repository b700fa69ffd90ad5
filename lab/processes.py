"""Child processes that neither outlive nor silently hang the process that started them.

The lab starts processes in three places: DataLoader workers (encoding, the trainer's batch renderer),
report kernels (papermill) and kaleido's headless Chromium (PNG/SVG figures). Each gets a deadline and
a way to die with its parent, whatever state it is in (a worker deadlocked inside a library ignores
every polite request):

    die_with_parent(parent_pid)   in a forked worker: the kernel sends it SIGKILL when its parent dies
                                  (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)
    worker_timeout()              seconds a DataLoader waits for one batch ($LAB_WORKER_TIMEOUT,
                                  default 600; 0 waits forever)
    GroupWatch(pgid)              a watchdog process that kills a process group (a browser started in
                                  its own session) as soon as this process ends, however it ends
    descendants(pid), reap(pids)  every live process below pid (/proc); SIGTERM, a grace, SIGKILL
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from functools import partial

__all__ = ["WORKER_TIMEOUT", "worker_timeout", "die_with_parent", "loader_options", "GroupWatch", "descendants", "reap"]

WORKER_TIMEOUT = 600.0  # the largest CLIP (ViT-L/14@336) takes ~4 min for a CPU batch of 32 on one busy thread
_PR_SET_PDEATHSIG = 1

# The watchdog: blocks on its stdin, whose write end only its parent holds; end of file means the
# parent closed it or died (even by SIGKILL), and the watched group is killed.
_WATCH = """import os, signal, sys
sys.stdin.buffer.read()
try:
    os.killpg(int(sys.argv[1]), signal.SIGKILL)
except OSError:
    pass
"""


def worker_timeout() -> float:
    """Seconds a DataLoader may wait for one batch before the run stops with an error naming it
    ($LAB_WORKER_TIMEOUT; 0 = no limit, returned as 0)."""
    value = os.environ.get("LAB_WORKER_TIMEOUT")
    if value is None:
        return WORKER_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ValueError(f"LAB_WORKER_TIMEOUT must be a number of seconds >= 0 (0: no limit); got {value!r}")
    return seconds


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a forked child: it is killed (SIGKILL) when `parent_pid` dies. If the parent
    died before this call, the child exits now. A no-op where prctl does not exist (not Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent is already gone: nobody will read our results
        os._exit(1)


def _loader_worker_init(parent_pid: int, _worker_id: int) -> None:
    die_with_parent(parent_pid)
    torch = sys.modules.get("torch")  # the DataLoader set one thread already; keep it so (lab.threads: fork safety)
    if torch is not None:
        torch.set_num_threads(1)


def loader_options(num_workers: int) -> dict:
    """DataLoader keywords for the lab's worker pools: workers die with this process, and a batch
    that does not arrive within worker_timeout() raises instead of waiting forever. Workers are
    forked (they share the model's memory and start at once); that is safe because a forked lab
    process never raises torch above the one thread the DataLoader gives it (lab.threads)."""
    if not num_workers:
        return {}
    return {"worker_init_fn": partial(_loader_worker_init, os.getpid()), "timeout": worker_timeout()}


class GroupWatch:
    """Kill process group `pgid` when this process ends (normally, by an exception, or killed), or
    when close() is called. The watchdog runs in its own session, so a kill of this process's group
    does not take it down before it has acted."""

    def __init__(self, pgid: int):
        self.pgid = pgid
        self._proc = subprocess.Popen([sys.executable, "-c", _WATCH, str(pgid)], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def close(self, wait: float = 5.0) -> None:
        """Kill the group now (closing the watchdog's stdin) and wait for the watchdog."""
        if self._proc.stdin and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(wait)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def descendants(pid: int | None = None) -> list[int]:
    """Live processes below `pid` (default: this one), parents before their children; [] without /proc."""
    pid = os.getpid() if pid is None else pid
    found, todo = [], [pid]
    while todo:
        parent = todo.pop(0)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in found:
                    found.append(kid)
                    todo.append(kid)
    return found


def reap(pids: list[int], grace: float = 5.0) -> list[int]:
    """SIGTERM each process, wait up to `grace` seconds, SIGKILL what is left -> the pids that needed it."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _running(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return alive


def _running(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child: collect it if it ended
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
