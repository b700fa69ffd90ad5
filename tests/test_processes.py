"""Process hygiene (lab.processes): workers and helper browsers never outlive the process that started
them, whatever state they are in; reaping escalates from SIGTERM to SIGKILL. Real processes, killed for real."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import processes

ROOT = Path(__file__).parent.parent

STUCK_WORKERS = r"""import json, os, sys, threading, time
import lab, numpy as np
import pytest

from lab import processes

class Stalls:
    def __len__(self): return 64
    def content_key(self, i): return f"stalls:{i}"
    def source(self, i): time.sleep(3600)

def report():
    time.sleep(4)  # the workers are forked and stuck by now
    print(json.dumps(processes.descendants()), flush=True)

threading.Thread(target=report, daemon=True).start()
model = lab.load_model("lab-test-nano", pretrained="random", device="cpu")
model.encode_images(Stalls(), batch_size=8, num_workers=2, progress=False)
"""

GROUP = r"""import subprocess, sys, time
from lab.processes import GroupWatch
browser = subprocess.Popen(["sh", "-c", "sleep 3600 & sleep 3600"], start_new_session=True)
watch = GroupWatch(browser.pid)
print(browser.pid, flush=True)
time.sleep(3600)
"""


def _gone(pids, within=10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not [p for p in pids if processes._running(p)]:
            return True
        time.sleep(0.1)
    return False


def _group(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _start(code: str, **env):
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", **env})


def test_stuck_dataloader_workers_die_when_their_parent_is_killed(tmp_path):
    setup = "import open_clip; open_clip.add_model_config('tests/model_configs')\n"
    parent = _start(setup + STUCK_WORKERS, LAB_CACHE_DIR=str(tmp_path / "cache"))
    try:
        workers = json.loads(parent.stdout.readline())
        assert len(workers) >= 2 and all(processes._running(p) for p in workers)
    finally:
        parent.kill()  # SIGKILL: no cleanup code of the parent's runs
        parent.wait()
    assert _gone(workers), f"workers {workers} outlived their killed parent"


def test_a_watched_group_dies_with_its_owner_even_when_the_owner_is_killed():
    owner = _start(GROUP)
    try:
        pgid = int(owner.stdout.readline())
        assert len(_group(pgid)) >= 2  # the shell and its sleeps, in their own session
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group(pgid) == []


def test_reap_escalates_to_sigkill_and_descendants_walks_the_tree():
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 3600 & wait"])
    try:
        time.sleep(0.3)
        below = processes.descendants()
        assert stubborn.pid in below and len(below) >= 2  # the shell and its sleep
        mine = [p for p in below if p == stubborn.pid or p in processes.descendants(stubborn.pid)]
        killed = processes.reap(mine, grace=0.5)
        assert stubborn.pid in killed  # it ignored SIGTERM
        assert _gone(mine)
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
        stubborn.wait()
    assert processes.reap([stubborn.pid]) == []  # already gone: nothing to do


def test_worker_timeout_reads_the_environment(monkeypatch):
    monkeypatch.delenv("LAB_WORKER_TIMEOUT", raising=False)
    assert processes.worker_timeout() == processes.WORKER_TIMEOUT
    monkeypatch.setenv("LAB_WORKER_TIMEOUT", "0")
    assert processes.worker_timeout() == 0
    assert processes.loader_options(0) == {}
    monkeypatch.setenv("LAB_WORKER_TIMEOUT", "-1")
    with pytest.raises(ValueError, match="LAB_WORKER_TIMEOUT"):
        processes.worker_timeout()
