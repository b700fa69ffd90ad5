"""Fixtures of the real-browser suite: a JupyterLab server (_jupyter.LabServer; always stopped) and
Debian's chromium driven by Playwright through `executable_path` (Playwright's own browser download
does not work offline).

    python -m pytest -q tests/browser          # screenshots: <pytest tmp>/screenshots (printed at the end)

Under CI (CI set) a missing chromium or playwright fails the run: a skipped browser test proves nothing.
"""
from pathlib import Path

import pytest

from ._jupyter import FLAGS, LabServer, Problems, chromium_path, missing


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots", numbered=False)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    server = LabServer(tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        missing("no chromium on PATH (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.problems = Problems(page)
    try:
        yield page
    finally:
        context.close()


def pytest_terminal_summary(terminalreporter):
    folder = Path(terminalreporter.config._tmp_path_factory.getbasetemp()) / "screenshots"
    if folder.is_dir():
        shots = sorted(folder.glob("*.png"))
        terminalreporter.write_line(f"browser suite: {len(shots)} screenshots in {folder}")
