"""The thread policy (lab.threads): set by `import lab` before numpy loads, torch's count fitted to
the load at run time, overridable by environment variables and configure(), inherited by report
kernels and recorded in the manifest."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lab import threads

ROOT = Path(__file__).parent.parent
PROBE = ("import json, os, sys; {before}import lab, torch, threadpoolctl; "
         "print(json.dumps({{'env': {{k: os.environ.get(k) for k in ('OMP_WAIT_POLICY', 'OPENBLAS_THREAD_TIMEOUT', "
         "'OMP_NUM_THREADS')}}, 'torch': torch.get_num_threads(), 'settings': lab.threads.settings(), "
         "'blas': [p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']}}))")


def probe(before: str = "", **env) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "OPENBLAS_THREAD_TIMEOUT", *threads.COUNT_ENV)}
    out = subprocess.run([sys.executable, "-W", "always", "-c", PROBE.format(before=before)], capture_output=True,
                         text=True, env={**clean, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return {**json.loads(out.stdout), "stderr": out.stderr}


def test_import_lab_sets_the_fair_policy_before_numpy_loads():
    got = probe()
    assert got["env"]["OPENBLAS_THREAD_TIMEOUT"] == "4" and got["env"]["OMP_WAIT_POLICY"] is None  # fast waits
    assert got["settings"]["policy"] == "fair" and got["settings"]["loaded_before_policy"] == []
    assert got["torch"] == threads.available_cpus() and "RuntimeWarning" not in got["stderr"]


def test_overrides_by_environment():
    passive = probe(LAB_THREAD_POLICY="passive")
    assert passive["env"]["OMP_WAIT_POLICY"] == "PASSIVE" and passive["settings"]["policy"] == "passive"
    spin = probe(LAB_THREAD_POLICY="spin")
    assert spin["env"]["OPENBLAS_THREAD_TIMEOUT"] is None and spin["settings"]["policy"] == "spin"
    one = probe(LAB_THREADS="1")
    assert one["torch"] == 1 and one["env"]["OMP_NUM_THREADS"] == "1" and set(one["blas"]) == {1}
    mine = probe(LAB_THREAD_POLICY="passive", OMP_WAIT_POLICY="ACTIVE")  # what the user set is kept
    assert mine["env"]["OMP_WAIT_POLICY"] == "ACTIVE"
    bad = subprocess.run([sys.executable, "-c", "import lab"], capture_output=True, text=True,
                         env={**os.environ, "LAB_THREAD_POLICY": "fast", "PYTHONPATH": str(ROOT)})
    assert bad.returncode != 0 and "LAB_THREAD_POLICY" in bad.stderr and "fair" in bad.stderr


def test_torch_imported_first_is_named_in_a_warning_where_it_matters():
    got = probe(before="import torch; ", LAB_THREAD_POLICY="passive")  # libgomp read its wait policy already
    assert "torch" in got["settings"]["loaded_before_policy"]
    assert "torch was imported before lab" in got["stderr"] and "import lab first" in got["stderr"]
    assert "RuntimeWarning" not in probe(before="import torch; ")["stderr"]  # 'fair' sets counts at run time


FIT = r"""import json, os, signal, subprocess, sys, time
os.sched_setaffinity(0, set(json.loads(os.environ["CPUS"])))
import lab, torch
from lab import threads
SPIN = f"import os; os.sched_setaffinity(0, {{{os.environ['BUSY_CPU']}}})\nwhile True: pass"
torch.set_num_threads(2)
seen = {}
threads.fit_torch(); seen["idle"] = torch.get_num_threads(), threads.settings()["busy_elsewhere"]
child = subprocess.Popen([sys.executable, "-c", SPIN])  # the lab's own helper, as a DataLoader worker is
time.sleep(1)
threads.fit_torch(); seen["own_child"] = torch.get_num_threads(), threads.settings()["busy_elsewhere"]
child.kill(); child.wait()
other = int(subprocess.run(["sh", "-c", '"$0" -c "$1" >/dev/null 2>&1 & echo $!', sys.executable, SPIN],
                           capture_output=True, text=True).stdout)  # another process: its parent has exited
try:
    time.sleep(1)
    threads.fit_torch(); seen["busy"] = torch.get_num_threads(), threads.settings()["busy_elsewhere"]
    seen["settings"] = threads.settings()
    threads.configure(); seen["reconfigured"] = torch.get_num_threads()  # the lab's fitting undone
    threads.fit_torch(); seen["busy_again"] = torch.get_num_threads(), threads.settings()["busy_elsewhere"]
finally:
    os.kill(other, signal.SIGKILL)
time.sleep(2 * threads.WINDOW)
threads.fit_torch(); seen["idle_again"] = torch.get_num_threads(), threads.settings()["busy_elsewhere"]
torch.set_num_threads(1); time.sleep(2 * threads.WINDOW)  # someone else's count stands
threads.fit_torch(); seen["theirs"] = torch.get_num_threads()
print(json.dumps(seen))
"""


def test_fair_policy_gives_torch_the_cpus_a_busy_process_leaves():
    """Two CPUs, then one of them spinning in another process: torch goes from 2 threads to 1 and
    back (on a quiet machine; on a busy one, to what the load read then leaves). A busy child of the
    lab's own (a DataLoader worker) does not count."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    out = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "LAB_THREAD_POLICY": "fair",
                              "CPUS": json.dumps(cpus), "BUSY_CPU": str(cpus[0])})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    # Each count is the fair rule applied to the load read at that moment (what else runs on this machine
    # moves the readings, never the rule): 2 CPUs less the busy ones rounded, at least 1.
    for phase in ("idle", "own_child", "busy", "busy_again", "idle_again"):
        count, load = seen[phase]
        assert count == max(1, min(2, 2 - int(load + 0.5))), (phase, seen)
    # The spinning process of another parent is counted, the lab's own spinning child is not.
    assert seen["busy"][1] - seen["own_child"][1] > 0.5 and seen["busy_again"][1] > 0.5, seen
    assert seen["reconfigured"] == 2 and seen["theirs"] == 1 and seen["settings"]["fitted_most"] == 2, seen


def test_configure_and_small_work_at_run_time():
    import torch
    from threadpoolctl import threadpool_info
    try:
        assert threads.configure(threads=1)["torch_threads"] == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        threads.fit_torch()  # an explicit count is never fitted
        assert torch.get_num_threads() == 1
        threads.configure("spin")
        assert "OPENBLAS_THREAD_TIMEOUT" not in os.environ and torch.get_num_threads() == threads.available_cpus()
        with threads.small_work():  # 'spin': the libraries' own pools
            assert max(p["num_threads"] for p in threadpool_info()) == threads.available_cpus()
    finally:
        threads.configure("fair")
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "4" and "OMP_NUM_THREADS" not in os.environ
    with threads.small_work():
        assert {p["num_threads"] for p in threadpool_info()} == {1}
    with pytest.raises(ValueError, match="positive integer"):
        threads.configure(threads=0)


def test_report_kernels_run_under_the_policy_and_the_manifest_records_it(tmp_path):
    from lab.report import run_report
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x: int = 0  # unused")
    params.metadata["tags"] = ["parameters"]
    seen = tmp_path / "seen.json"
    nb.cells = [params, nbformat.v4.new_code_cell(
        f"import json, os\nopen({str(seen)!r}, 'w').write(json.dumps(os.environ.get('OPENBLAS_THREAD_TIMEOUT')))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "00_env.ipynb")
    manifest = run_report([tmp_path / "00_env.ipynb"], {}, {}, tmp_path / "out", progress=False)
    assert manifest["ok"] and json.loads(seen.read_text()) == "4"
    recorded = json.loads((tmp_path / "out" / "manifest.json").read_text())["threads"]
    assert recorded["policy"] == "fair" and recorded["env"]["OPENBLAS_THREAD_TIMEOUT"] == "4"
    assert recorded["available_cpus"] == threads.available_cpus()


FORK = r"""import os, sys, tempfile
import lab, numpy as np, torch
from lab import threads
parent = os.getpid()
torch.set_num_threads(2)
(torch.rand(4_000_000) * 2).sum()  # a parallel region: GNU OpenMP's pool now holds a second thread
threads.fair_count = lambda most: 1 if os.getpid() == parent else most  # the parent reads busy, its workers idle
threads.fit_torch()  # the parent fits one thread: fitted {most 2, set 1}, which its forked workers inherit
model = lab.load_model("lab-vit-tiny", device="cpu", cache=tempfile.mkdtemp())
images = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(256)]
emb = model.encode_images(images, num_workers=2, batch_size=32, cache=False, progress=False)
print("encoded", emb.shape[0], int(np.isfinite(emb).all()), torch.get_num_threads())
"""


def test_forked_workers_never_raise_torch_threads(tmp_path):
    """Issue 21's deadlock, made deterministic: a parent that ran a 2-thread parallel region and then
    fitted 1 thread forks DataLoader workers whose own load reading says 2. Before the fix each worker
    raised torch to 2 threads and waited forever inside GNU OpenMP; now a forked process never fits
    (the subprocess timeout turns a regression into a failure, not a hung CI)."""
    try:
        out = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, cwd=ROOT, timeout=180,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "LAB_THREAD_POLICY": "fair"})
    except subprocess.TimeoutExpired:
        pytest.fail("encode_images with 2 forked workers hung (the OpenMP-after-fork deadlock is back)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["encoded", "256", "1", "1"]  # every image; the parent kept its fitted count


def test_a_forked_process_does_not_own_the_policy():
    import torch
    assert threads.owns_process()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's exit handlers
        torch.set_num_threads(1)
        threads.fit_torch()
        threads.configure()
        os.write(write, json.dumps([threads.owns_process(), torch.get_num_threads()]).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert json.loads(os.read(read, 100)) == [False, 1]
