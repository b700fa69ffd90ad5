"""The thread policy (lab.threads): set by `import lab` before torch / numpy load, overridable by
environment variables and configure(), inherited by report kernels and recorded in the manifest."""
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


def test_import_lab_sets_the_fair_policy_before_torch_loads():
    got = probe()
    assert got["env"]["OMP_WAIT_POLICY"] == "PASSIVE" and got["env"]["OPENBLAS_THREAD_TIMEOUT"] == "4"
    assert got["settings"]["policy"] == "fair" and got["settings"]["loaded_before_policy"] == []
    assert got["torch"] == threads.available_cpus() and "RuntimeWarning" not in got["stderr"]


def test_overrides_by_environment():
    spin = probe(LAB_THREAD_POLICY="spin")
    assert spin["env"]["OMP_WAIT_POLICY"] is None and spin["settings"]["policy"] == "spin"
    one = probe(LAB_THREADS="1")
    assert one["torch"] == 1 and one["env"]["OMP_NUM_THREADS"] == "1" and set(one["blas"]) == {1}
    mine = probe(OMP_WAIT_POLICY="ACTIVE")  # what the user set is kept
    assert mine["env"]["OMP_WAIT_POLICY"] == "ACTIVE"
    bad = subprocess.run([sys.executable, "-c", "import lab"], capture_output=True, text=True,
                         env={**os.environ, "LAB_THREAD_POLICY": "fast", "PYTHONPATH": str(ROOT)})
    assert bad.returncode != 0 and "LAB_THREAD_POLICY" in bad.stderr and "fair" in bad.stderr


def test_torch_imported_first_is_named_in_a_warning():
    got = probe(before="import torch; ")
    assert "torch" in got["settings"]["loaded_before_policy"]
    assert "torch was imported before lab" in got["stderr"] and "import lab first" in got["stderr"]


def test_configure_and_small_work_at_run_time():
    import torch
    from threadpoolctl import threadpool_info
    try:
        assert threads.configure(threads=1)["torch_threads"] == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        threads.configure("spin")
        assert "OMP_WAIT_POLICY" not in os.environ and torch.get_num_threads() == threads.available_cpus()
        with threads.small_work():  # 'spin': the libraries' own pools
            assert max(p["num_threads"] for p in threadpool_info()) == threads.available_cpus()
    finally:
        threads.configure("fair")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and "OMP_NUM_THREADS" not in os.environ
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
        f"import json, os\nopen({str(seen)!r}, 'w').write(json.dumps(os.environ.get('OMP_WAIT_POLICY')))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "00_env.ipynb")
    manifest = run_report([tmp_path / "00_env.ipynb"], {}, {}, tmp_path / "out", progress=False)
    assert manifest["ok"] and json.loads(seen.read_text()) == "PASSIVE"
    recorded = json.loads((tmp_path / "out" / "manifest.json").read_text())["threads"]
    assert recorded["policy"] == "fair" and recorded["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert recorded["available_cpus"] == threads.available_cpus()
