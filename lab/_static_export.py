"""PNG / SVG export of plotly figures through one headless Chromium per process, with deadlines.

kaleido's own sync server waits forever when its browser fails to start (the error is raised in its
background thread; the caller's queue never answers). Here the lab owns the browser's lifecycle:

    png = export(fig, "png", scale=2)      # bytes, or StaticExportFailed within the deadline

- One kaleido browser, opened on first use in a daemon thread with its own event loop; every call
  waits at most `timeout()` seconds ($LAB_FIGURE_TIMEOUT, default 60) for the browser to start and
  for each image.
- A failure or a timeout kills the browser and disables static export for the rest of the process
  (one failure, one wait: the callers keep their HTML copies).
- The browser runs in its own session; a GroupWatch kills its process group when this process ends
  in any way (a kernel killed while the browser was busy leaves no Chromium behind).
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading

from .processes import GroupWatch

__all__ = ["FIGURE_TIMEOUT", "StaticExportFailed", "timeout", "export"]

FIGURE_TIMEOUT = 60.0  # Chromium starts in ~3 s and draws a figure in ~1 s on an idle 2-core machine


class StaticExportFailed(RuntimeError):
    """The browser could not draw the figure in time (or at all); the message says why."""


def timeout() -> float:
    value = os.environ.get("LAB_FIGURE_TIMEOUT")
    try:
        seconds = FIGURE_TIMEOUT if value is None else float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(f"LAB_FIGURE_TIMEOUT must be a positive number of seconds; got {value!r}")
    return seconds


class _Browser:
    """A kaleido browser on an event loop in a daemon thread (a stuck browser never blocks exit)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, context: None)  # an abandoned browser's last words
        threading.Thread(target=self.loop.run_forever, name="lab-static-export", daemon=True).start()
        self.kaleido = self.watch = None
        self.broken: str | None = None

    def _call(self, coro, what: str):
        limit = timeout()
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StaticExportFailed(f"{what} took longer than {limit:g} s (LAB_FIGURE_TIMEOUT)") from None
        except Exception as e:
            words = " ".join(str(a) for a in e.args)[:200]  # choreographer's errors carry several sentences
            raise StaticExportFailed(f"{what} failed: {type(e).__name__}: {words}") from e

    async def _open(self):
        import kaleido
        k = kaleido.Kaleido(n=1, timeout=None)  # our deadline, not kaleido's, bounds each call
        try:
            await k.open()
        finally:
            process = getattr(k, "subprocess", None)
            if process is not None:  # started in its own session: its pid is the group's id
                self.watch = GroupWatch(process.pid)
        return k

    def export(self, fig_dict: dict, opts: dict) -> bytes:
        if self.broken:
            raise StaticExportFailed(self.broken)
        try:
            if self.kaleido is None:
                self.kaleido = self._call(self._open(), "starting the headless browser")
            return self._call(self.kaleido.calc_fig(fig_dict, opts=opts), f"drawing a {opts['format']}")
        except StaticExportFailed as e:
            self.broken = f"{e}; static export is off for this session"
            self.close(graceful=False)
            raise StaticExportFailed(self.broken) from e

    def close(self, graceful: bool = True):
        if graceful and self.kaleido is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.kaleido.close(), self.loop).result(10)
            except Exception:  # the watch below kills whatever is left
                pass
        self.kaleido = None
        if self.watch is not None:
            self.watch.close()
            self.watch = None


_browser: _Browser | None = None
_lock = threading.Lock()


def export(fig, fmt: str, scale: float = 1) -> bytes:
    """A plotly figure as `fmt` ('png', 'svg', ...) bytes at plotly's default size unless the figure
    sets one. Raises StaticExportFailed (never hangs longer than timeout() per step)."""
    import plotly.io as pio
    global _browser
    fig_dict = fig.to_dict() if hasattr(fig, "to_dict") else dict(fig)
    layout = fig_dict.get("layout", {})
    template = layout.get("template", {}).get("layout", {}) if isinstance(layout.get("template"), dict) else {}
    opts = {"format": fmt, "scale": scale,
            "width": layout.get("width") or template.get("width") or pio.defaults.default_width,
            "height": layout.get("height") or template.get("height") or pio.defaults.default_height}
    with _lock:
        if _browser is None:
            _browser = _Browser()
            atexit.register(_browser.close)
        return _browser.export(fig_dict, opts)
