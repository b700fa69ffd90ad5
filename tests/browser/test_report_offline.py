"""A report made by the command line (`python -m lab report`, notebook 01 on tiny parameters) opened
in the browser with every non-local request refused: the figures draw and the page raises nothing."""
import os
import re
import subprocess
import sys

from . import _lab
from ._jupyter import ROOT


def test_report_html_renders_offline(browser, tmp_path, screenshots):
    out = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "lab", "report", "--notebooks", "notebooks/01_prompt_engineering.ipynb",
                          "-p", "n_samples", "60", "-p", "n_val", "40", "-p", "max_selected", "3", "--out", str(out)],
                         cwd=ROOT, env={**os.environ, "LAB_CACHE_DIR": str(tmp_path / "cache")},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    html = (out / "01_prompt_engineering.html").read_text()
    expected = html.count("Plotly.newPlot")
    assert expected >= 6
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    refused = []

    def offline(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()
    context.route("**/*", offline)
    try:
        page = context.new_page()
        from ._jupyter import Problems
        problems = Problems(page)
        page.goto((out / "01_prompt_engineering.html").as_uri())
        page.wait_for_function("(n) => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
                               arg=expected, timeout=30_000)
        _lab.shot(page, screenshots, "report-offline")
        page.goto((out / "index.html").as_uri())
        for ext in ("png", "svg"):  # the static copies are linked and load
            link = page.locator(f"a[href$='.{ext}']").first
            target = out / link.get_attribute("href")
            assert target.is_file()
        _lab.shot(page, screenshots, "report-index")
        assert not refused, f"the report asked the network for {refused}"
        problems.check()
    finally:
        context.close()
    assert not re.findall(r"<script[^>]+src=[\"']https?://", html)
