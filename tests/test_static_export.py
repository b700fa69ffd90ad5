"""PNG/SVG figures (lab._static_export): a real headless Chromium draws them; a browser that dies at
launch or never answers costs one deadline, keeps the HTML copy, and leaves no process behind."""
import os
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest

from lab import notebook

ROOT = Path(__file__).parent.parent
SAVE_TWO = r"""import sys, time, tempfile
import plotly.graph_objects as go
from lab import notebook
for name in ("first", "second"):
    start = time.monotonic()
    written = notebook.save_figure(go.Figure(go.Scatter(x=[1, 2], y=[3, 1])), tempfile.mkdtemp(), name)
    print(name, [p.suffix for p in written], round(time.monotonic() - start, 1), flush=True)
"""


def _save_two(browser: str) -> str:
    out = subprocess.run([sys.executable, "-c", SAVE_TWO], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "BROWSER_PATH": browser,
                              "LAB_FIGURE_TIMEOUT": "4"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.skipif(notebook.static_figures_missing() is not None, reason="needs kaleido and chromium")
def test_a_real_browser_draws_png_and_svg(tmp_path):
    written = notebook.save_figure(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])), tmp_path, "bars")
    assert [p.suffix for p in written] == [".html", ".png", ".svg"]
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in written[2].read_bytes()[:200]


def test_a_browser_that_dies_at_launch_costs_nothing_but_the_png(tmp_path):
    out = _save_two("/bin/false")
    assert "starting the headless browser failed" in out and "static export is off for this session" in out
    assert "first ['.html']" in out and "second ['.html']" in out


def test_a_browser_that_never_answers_costs_one_deadline_and_leaves_nothing(tmp_path):
    marker = f"lab-test-hung-browser-{os.getpid()}"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/bash\nexec -a {marker} sleep 3600\n")
    browser.chmod(0o755)
    out = _save_two(str(browser))
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith(("first", "second")))
    assert "took longer than 4 s (LAB_FIGURE_TIMEOUT)" in out
    assert lines["first"].startswith("['.html']") and float(lines["first"].split()[-1]) < 30
    assert lines["second"].startswith("['.html']") and float(lines["second"].split()[-1]) < 2  # no second wait
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert left == [], f"the hung browser outlived its process: {left}"
