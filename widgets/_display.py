"""How a lab widget shows itself in a notebook, and what the page says once its kernel is gone.

A kernel restart or shutdown leaves a widget's controls on the page greyed out and dead (ipywidgets
marks its views `jupyter-widgets-disconnected`); a page re-opened after a restart finds no model and
shows "Error displaying widget: model not found". Each lab widget is displayed with a small HTML
output above it: a note, hidden by CSS while the widget below it is live, that either state reveals:
re-run the cell. Plain HTML and CSS, so it works in any JupyterLab without a front-end extension.

    class MyTool(LabWidget):
        def __init__(self):
            self.ui = w.VBox([...])     # MyTool() as a cell's last expression displays ui and the note
"""
from __future__ import annotations

import base64
import io

RERUN = "This widget lost its kernel (restarted or shut down): re-run this cell to use it again."
# The output just above a widget whose views are disconnected, or whose renderer found no model (it
# then holds only that error text and carries the class jupyter-widgets itself).
_DEAD = (".jp-OutputArea-child:has(+ .jp-OutputArea-child .jupyter-widgets-disconnected,"
         " + .jp-OutputArea-child > .jp-OutputArea-output.jupyter-widgets) .clip-lab-rerun")
RERUN_HTML = (f"<style>.clip-lab-rerun{{display:none;color:#b00;font-weight:600}} {_DEAD}{{display:block}}</style>"
              f"<div class='clip-lab-rerun'>{RERUN}</div>")


class LabWidget:
    """Displays the re-run note, then `self.ui`, when the object is a cell's last expression (or is
    passed to `display`)."""

    def _ipython_display_(self):
        from IPython.display import HTML, display
        display(HTML(RERUN_HTML))
        display(self.ui)


def png_data_url(array) -> str:
    """An (H, W, 3) uint8 image as a data: URL, for an <img> in a widget's HTML."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
