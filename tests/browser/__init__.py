"""Real-browser tests: JupyterLab in Debian's chromium, driven by Playwright (see conftest.py)."""
