"""Batch reports: execute lab notebooks with papermill into one folder per run, with an HTML export
of each, their figures, a manifest.json and an index.html.

    python -m lab report                                     # every notebooks/NN_*.ipynb, defaults
    python -m lab report -p model lab-rn-tiny -p n_samples 500 --out runs/rn
    python -m lab report --config report.yaml --notebooks notebooks/01_prompt_engineering.ipynb

report.yaml (every key optional):
    out: runs/my-report
    notebooks: [notebooks/01_prompt_engineering.ipynb]
    parameters: {model: lab-rn-tiny}                      # for every notebook that declares them
    notebook_parameters: {01_prompt_engineering: {n_samples: 500}}
    cell_timeout: 3600                                    # seconds per cell (0: no limit)

Parameters are checked against each notebook's `parameters` cell (names and annotated types)
before anything runs. A failing notebook is recorded (cell, error) and the others still run;
the exit status is 0 when all passed, 1 otherwise (2: bad arguments).

Nothing waits forever: each cell has --cell-timeout seconds (default 1800; 0: no limit), after which
the notebook is recorded as failed in that cell ("timed out after N s") and the next one runs.
manifest.json and index.html are rewritten after every notebook, so a run stopped early still has
them. Processes a notebook started (its kernel, DataLoader workers, the figures' browser) are
reaped when it ends, and when the report is stopped with SIGTERM or Ctrl-C (lab.processes).

index.html lists every notebook (status, error, time, links to its HTML export and executed notebook),
then one section per notebook: its results as a table (`results_table`: a row per metric, a column per
model for keys named model/...) and its figures as thumbnails of their PNGs (links when there is no
PNG), each linking to the interactive figure. The page loads nothing from the network.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import math
import os
import platform
import re
import shutil
import signal
import struct
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

import yaml

from . import processes, threads
from .errors import BadInput

__all__ = ["PACKAGES", "KERNEL", "CELL_TIMEOUT", "OFFLINE_TEMPLATE", "PLOTLY", "FIGURE_HEIGHT", "default_notebooks",
           "notebook_parameters", "coerce", "plan", "figure_html", "interactive_figures", "finish_notebook",
           "this_python_kernel", "figure_title", "run_notebook", "THUMBNAIL", "results_table", "results_html",
           "run_report", "load_config"]

PACKAGES = ["clip-lab", "torch", "torchvision", "open_clip_torch", "numpy", "pandas", "plotly", "papermill",
            "nbconvert", "scikit-learn", "pillow"]
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}
KERNEL = "clip-lab-python"
CELL_TIMEOUT = 1800  # seconds one cell may run; the slowest default cell takes ~2 min on a busy 2-core CPU
# The HTML export opens offline: nbconvert's lab template pulls require.js, MathJax, mermaid and the
# widget manager from public CDNs; the notebooks use none of them, so they are left out. plotly.js is
# inlined once per page (resources["plotly_js"]), for the figures interactive_figures turned into divs.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{{ super() }}
{%- if resources.plotly_js %}<script type="text/javascript">{{ resources.plotly_js }}</script>{% endif -%}
{%- endblock html_head_js -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def default_notebooks() -> list[Path]:
    """The numbered notebooks of ./notebooks, or of the source tree lab was installed from."""
    for folder in (Path.cwd() / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"):
        found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
        if found:
            return found
    raise BadInput("no notebooks found (expected notebooks/NN_*.ipynb); pass --notebooks")


def notebook_parameters(path: Path) -> dict[str, dict]:
    """{name: {inferred_type_name, default, help}} of a notebook's `parameters` cell."""
    import papermill
    try:
        return papermill.inspect_notebook(str(path))
    except Exception as e:  # unreadable / not a notebook
        raise BadInput(f"{path}: cannot read its parameters ({type(e).__name__}: {e})") from e


def coerce(value, annotation: str, where: str):
    """Check (YAML values) or convert (command-line strings) a value to a parameter's annotated type
    (int, float, bool, str, list[...], dict[...]; other annotations are refused)."""
    kind = annotation.split("[")[0].strip().lower()
    if kind not in ("int", "float", "bool", "str", "list", "dict"):
        raise BadInput(f"{where}: the report runner cannot check parameters annotated {annotation!r}; "
                       "annotate it int, float, bool, str, list[...] or dict[...]")
    if isinstance(value, str) and kind != "str":
        try:
            if kind == "bool":
                if value.lower() not in _TRUE | _FALSE:
                    raise ValueError
                return value.lower() in _TRUE
            value = {"int": int, "float": float}.get(kind, yaml.safe_load)(value)
        except (ValueError, yaml.YAMLError):
            raise BadInput(f"{where}: expected {annotation}, got {value!r}") from None
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
          "list": lambda v: isinstance(v, list), "dict": lambda v: isinstance(v, dict)}.get(kind)
    if ok is not None and not ok(value):
        raise BadInput(f"{where}: expected {annotation}, got {value!r} ({type(value).__name__})")
    return float(value) if kind == "float" else value


def plan(notebooks: list[Path], parameters: dict, per_notebook: dict[str, dict]) -> dict[Path, dict]:
    """Validate every parameter against the notebooks before running anything -> {notebook: parameters}.
    Raises BadInput listing every problem and the valid parameters."""
    declared = {nb: notebook_parameters(nb) for nb in notebooks}
    problems = []
    for nb in notebooks:
        if not declared[nb]:
            problems.append(f"{nb}: has no `parameters` cell")
    all_names = {n for d in declared.values() for n in d}
    for name in parameters:
        if name not in all_names:
            problems.append(f"unknown parameter {name!r}")
    if "output_dir" in parameters or any("output_dir" in p for p in per_notebook.values()):
        problems.append("output_dir is set by the report (one folder per notebook under --out); pass --out instead")
    stems = {nb.stem: nb for nb in notebooks}
    for stem, params in per_notebook.items():
        if stem not in stems:
            problems.append(f"notebook_parameters names {stem!r}, which is not among {list(stems)}")
            continue
        problems += [f"{stem}: unknown parameter {n!r}" for n in params if n not in declared[stems[stem]]]
    out = {}
    for nb in notebooks:
        chosen = {n: v for n, v in parameters.items() if n in declared[nb]}
        chosen.update(per_notebook.get(nb.stem, {}))
        for name, value in list(chosen.items()):
            if name in declared[nb]:
                try:
                    chosen[name] = coerce(value, declared[nb][name]["inferred_type_name"], f"{nb.stem}: {name}")
                except BadInput as e:
                    problems.append(str(e))
        if "output_dir" in declared[nb]:
            chosen["output_dir"] = None  # filled by run_notebook with the notebook's folder under --out
        out[nb] = chosen
    if problems:
        valid = "\n".join(f"  {nb.stem}: " + ", ".join(f"{n} ({d['inferred_type_name']})" for n, d in declared[nb].items())
                          for nb in notebooks)
        raise BadInput("report not started:\n  " + "\n  ".join(problems) + f"\nvalid parameters:\n{valid}")
    return out


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


PLOTLY = "application/vnd.plotly.v1+json"  # the one copy of a figure a notebook stores (lab.notebook.RENDERERS)
FIGURE_HEIGHT = 525  # px, for a figure whose layout sets no height (as in plotly's own notebook HTML)


def figure_html(figure: dict, div_id: str) -> str:
    """A plotly figure (the JSON of its mimetype output) as a div and a script drawing it with the
    page's plotly.js. Typed arrays stay base64 ("bdata"): the JSON is written as stored, with only
    "</" and "<!--" escaped so no string can close the script (hover text's "<br>" stays one tag)."""
    layout = figure.get("layout") or {}
    width = f"{layout['width']}px" if layout.get("width") else "100%"
    spec = {"data": figure.get("data") or [], "layout": layout,
            "config": {"responsive": True, **(figure.get("config") or {})}}
    if figure.get("frames"):
        spec["frames"] = figure["frames"]
    code = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "\\u003c!--")
    return (f'<div id="{div_id}" class="lab-figure" style="height:{layout.get("height") or FIGURE_HEIGHT}px;'
            f'width:{width}"></div><script type="text/javascript">Plotly.newPlot("{div_id}",{code});</script>')


def interactive_figures(nb) -> int:
    """Replace, in this notebook node, each plotly figure output by its figure_html (nbconvert drops
    plotly's mimetype); an image/png that JupyterLab saved beside it goes too. Returns how many."""
    n = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            figure = output.get("data", {}).get(PLOTLY)
            if figure is not None:
                n += 1
                output["data"] = {"text/html": figure_html(figure, f"figure-{n}")}
    return n


def finish_notebook(executed: Path, source: Path, target: Path) -> Path:
    """Give the executed notebook back its own kernelspec (it ran under this interpreter's temporary
    one) and export it as standalone HTML that loads nothing from the network: each plotly figure an
    interactive div, plotly.js inlined once when there is a figure."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(executed, as_version=4)
    kernelspec = nbformat.read(source, as_version=4).metadata.get("kernelspec")
    if kernelspec:
        nb.metadata["kernelspec"] = kernelspec
        nbformat.write(nb, executed)
    resources = {}
    if interactive_figures(nb):
        from plotly.offline import get_plotlyjs
        resources["plotly_js"] = get_plotlyjs()
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
                            template_file="offline.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    target.write_text(body, encoding="utf-8")
    return target


@contextlib.contextmanager
def this_python_kernel():
    """A kernelspec that runs notebooks in this very interpreter (a user-level `python3` kernel
    elsewhere on Jupyter's path would otherwise win and lack lab) -> its name."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "kernels" / KERNEL
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})", "language": "python"}))
        before = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [tmp, before]))
        try:
            yield KERNEL
        finally:
            if before is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = before


def _deadline_engine():
    """papermill's nbclient engine, except that a cell past its deadline becomes that cell's error
    (ename CellTimeoutError), so papermill saves the notebook up to there and reports the cell as it
    reports any failing cell. nbclient has already interrupted, then shut down, the kernel."""
    import nbformat
    from papermill.engines import NBClientEngine

    class DeadlineEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, execution_timeout=None, **kwargs):
            try:
                return super().execute_managed_notebook(nb_man, kernel_name, execution_timeout=execution_timeout,
                                                        **kwargs)
            except TimeoutError:  # nbclient's CellTimeoutError
                started = [c for c in nb_man.nb.cells  # papermill has marked the stuck cell complete already
                           if c.cell_type == "code" and c.metadata.get("papermill", {}).get("start_time")]
                if not started:
                    raise
                cell = started[-1]
                words = f"timed out after {execution_timeout:g} s (raise --cell-timeout, or 0 for no limit)"
                cell.outputs.append(nbformat.v4.new_output("error", ename="CellTimeoutError", evalue=words,
                                                           traceback=[f"CellTimeoutError: {words}"]))
    return DeadlineEngine


def figure_title(path: Path) -> str | None:
    """The title of a figure saved by lab.notebook.save_figure (plotly's write_html: the div's id, the
    traces and the layout are JSON arguments of Plotly.newPlot) as plain text; None without one."""
    text = path.read_text(encoding="utf-8", errors="replace")
    start = text.find("Plotly.newPlot(")
    if start < 0:
        return None
    decoder, gap, pos = json.JSONDecoder(), re.compile(r"[\s,]*"), start + len("Plotly.newPlot(")
    try:
        for _ in range(3):  # the id, the traces, the layout
            layout, pos = decoder.raw_decode(text, gap.match(text, pos).end())
    except json.JSONDecodeError:
        return None
    title = layout.get("title") if isinstance(layout, dict) else None
    title = title.get("text") if isinstance(title, dict) else title
    if not isinstance(title, str):
        return None
    plain = html.unescape(re.sub(r"<[^>]*>", "", re.sub(r"<br\s*/?>", " ", title, flags=re.I)))
    return " ".join(plain.split()) or None


def run_notebook(nb: Path, params: dict, out: Path, kernel: str, progress: bool = True,
                 cell_timeout: float = CELL_TIMEOUT) -> dict:
    """Execute one notebook into `out` (replacing an earlier run's files) with the parameters `plan`
    checked; never raises for a failure inside the notebook, and reaps what the notebook started."""
    import papermill
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError
    papermill_engines.register("lab", _deadline_engine())
    folder, executed, exported = out / nb.stem, out / f"{nb.stem}.ipynb", out / f"{nb.stem}.html"
    shutil.rmtree(folder, ignore_errors=True)
    for stale in (executed, exported):
        stale.unlink(missing_ok=True)
    if "output_dir" in params:  # declared by the notebook (plan put a placeholder there)
        params = {**params, "output_dir": str(folder)}
    entry = {"notebook": nb.stem, "input": str(nb), "parameters": params, "executed": executed.name}
    before = set(processes.descendants())
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(nb), str(executed), parameters=params, progress_bar=progress,
                                   kernel_name=kernel, cwd=str(Path.cwd()), engine_name="lab",
                                   execution_timeout=cell_timeout or None,
                                   request_save_on_cell_execute=False)  # one write at the end (and every 30 s),
        # not the whole notebook (megabytes of figures) after every cell
        entry["status"] = "ok"
    except PapermillExecutionError as e:
        entry["status"] = "failed"
        entry["error"] = {"cell": e.exec_count, "cell_index": e.cell_index, "ename": e.ename, "evalue": e.evalue}
    except Exception as e:  # kernel died, notebook unreadable, ...
        entry["status"] = "failed"
        entry["error"] = {"cell": None, "ename": type(e).__name__, "evalue": str(e)}
    finally:
        processes.reap([p for p in processes.descendants() if p not in before])  # a kernel that would not stop
    entry["seconds"] = round(time.perf_counter() - start, 2)
    if executed.exists():
        entry["html"] = finish_notebook(executed, nb, exported).name
    run_file = folder / "run.json"
    entry["run"] = json.loads(run_file.read_text()) if run_file.exists() else None
    figures = sorted((folder / "figures").glob("*.*"), key=lambda p: (p.stat().st_mtime_ns, p.name)) \
        if folder.exists() else []  # in the order the notebook saved them
    entry["figures"] = [str(p.relative_to(out)) for p in figures if p.suffix == ".html"]
    entry["images"] = [str(p.relative_to(out)) for p in figures if p.suffix in (".png", ".svg")]  # static copies
    entry["titles"] = {f: figure_title(out / f) for f in entry["figures"]}
    return entry


THUMBNAIL = (240, 320)  # px: the box a figure's thumbnail fits in index.html (its PNG is 2x the figure's size)


def _link(target: str, text: str) -> str:
    return f'<a href="{html.escape(quote(target))}">{html.escape(text)}</a>'


def _model_names(run: dict) -> list[str]:
    """The names of the models a notebook recorded (lab.notebook.record: model=, models=, reading_models=...)."""
    names = []
    for value in run.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "fingerprint" in item and item.get("name") not in names:
                names.append(item.get("name"))
    return names


def results_table(entry: dict):
    """A manifest entry's results (run.json's `results`) as a DataFrame: a key `model/rest` whose first
    part names a model the notebook recorded becomes row `rest`, column `model`; any other key a row
    with its value in the column "value". Rows and columns in recording order; a missing cell is None."""
    import pandas as pd
    run = entry.get("run") or {}
    models = _model_names(run)
    cells = {}
    for key, value in (run.get("results") or {}).items():
        model, _, rest = key.partition("/")
        cells[(rest, model) if model in models and rest else (key, "value")] = value
    rows = list(dict.fromkeys(row for row, _ in cells))
    used = {column for _, column in cells}
    columns = [m for m in [*models, "value"] if m in used]
    return pd.DataFrame([[cells.get((row, column)) for column in columns] for row in rows],
                        index=pd.Index(rows, name="metric"), columns=columns, dtype=object)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: int | float) -> str:
    """3 significant digits (thousands and up: whole, with separators); ints as they are."""
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _cell(value) -> str:
    """A table cell: numbers (and lists of numbers, such as a range) right-aligned, anything else as text."""
    if value is None:
        return "<td></td>"
    if _is_number(value) or isinstance(value, list) and value and all(map(_is_number, value)):
        return f'<td class="num">{", ".join(_number(v) for v in (value if isinstance(value, list) else [value]))}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def results_html(table) -> str:
    """A results_table as an HTML table: numbers to 3 significant digits, right-aligned."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [table.index.name, *table.columns])
    body = "".join(f"<tr><th>{html.escape(str(row))}</th>{''.join(_cell(v) for v in values)}</tr>"
                   for row, values in zip(table.index, table.itertuples(index=False)))
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header; None when the file is missing or not a PNG."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _thumbnail(entry: dict, figure: str, out: Path) -> str:
    """One figure: its PNG as a lazy thumbnail linking to the interactive HTML (a text link when there is
    no PNG), its title as caption, links to the PNG and SVG."""
    title = (entry.get("titles") or {}).get(figure) or Path(figure).stem
    static = {ext: img for ext in ("png", "svg")
              if (img := str(Path(figure).with_suffix(f".{ext}"))) in entry["images"]}
    size = _png_size(out / static["png"]) if "png" in static else None
    if size and all(size):
        scale = min(THUMBNAIL[0] / size[0], THUMBNAIL[1] / size[1])
        shown = (f'<a href="{html.escape(quote(figure))}"><img src="{html.escape(quote(static["png"]))}" '
                 f'width="{round(size[0] * scale)}" height="{round(size[1] * scale)}" loading="lazy" '
                 f'alt="{html.escape(title)}"></a>')
    else:
        shown = f'<div class="nothumb">{_link(figure, title)}</div>'
    files = " · ".join(_link(img, ext) for ext, img in static.items())
    return (f"<figure>{shown}<figcaption>{html.escape(title)}"
            + (f" <small>{files}</small>" if files else "") + "</figcaption></figure>")


def _section(entry: dict, out: Path) -> str:
    """A notebook's results table and figure thumbnails."""
    table = results_table(entry)
    parts = [results_html(table) if len(table) else "<p>no results recorded</p>"]
    if entry["figures"]:
        parts.append('<div class="figures">' + "".join(_thumbnail(entry, f, out) for f in entry["figures"]) + "</div>")
    name = html.escape(entry["notebook"])
    return f'<section id="{name}" class="{entry["status"]}"><h2>{name}</h2>{"".join(parts)}</section>'


def _state(manifest: dict) -> str:
    done, total = len(manifest["notebooks"]), manifest["planned"]
    if done < total:
        return f"stopped or still running: {done} of {total} notebooks done"
    return "all notebooks passed" if manifest["ok"] else "some notebooks failed"


def _index_html(manifest: dict, out: Path) -> str:
    rows = []
    for e in manifest["notebooks"]:
        err = e.get("error")
        status = "ok" if e["status"] == "ok" else (
            f"failed in cell {err['cell']}: {html.escape(err['ename'])}: {html.escape(str(err['evalue'])[:300])}")
        link = _link(e["html"], e["notebook"]) if e.get("html") else html.escape(e["notebook"])
        n_results = len((e.get("run") or {}).get("results") or {})
        contents = f'<a href="#{html.escape(e["notebook"])}">{n_results} results · {len(e["figures"])} figures</a>'
        rows.append(f'<tr class="{e["status"]}"><td>{link}<br><small>{_link(e["executed"], ".ipynb")}</small></td>'
                    f"<td>{status}</td><td class=\"num\">{e['seconds']:.1f} s</td><td>{contents}</td></tr>")
    sections = "".join(_section(e, out) for e in manifest["notebooks"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>CLIP Lab report</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;text-align:left}} tr.failed td{{background:#fde8e8}}
td.num{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}} thead th{{background:#f3f3f3}}
table.results tbody th{{font-weight:normal;font-family:ui-monospace,monospace;font-size:.9em}}
section{{margin-top:2.5em}} section.failed h2::after{{content:" (failed)";color:#b00}}
.figures{{display:flex;flex-wrap:wrap;align-items:flex-start;gap:1.2em;margin-top:1em}}
figure{{margin:0;width:{THUMBNAIL[0]}px}} figure img{{border:1px solid #ddd;display:block}}
figcaption{{font-size:.85em;margin-top:.3em}} .nothumb{{border:1px dashed #bbb;padding:1em}}
</style></head><body><h1>CLIP Lab report</h1>
<p>{manifest['created']} · {_state(manifest)} ·
<a href="manifest.json">manifest.json</a></p>
<table><tr><th>notebook</th><th>status</th><th>time</th><th>contents</th></tr>
{''.join(rows)}</table>
{sections}</body></html>"""


def _write(out: Path, manifest: dict) -> None:
    manifest["ok"] = all(e["status"] == "ok" for e in manifest["notebooks"]) \
        and len(manifest["notebooks"]) == manifest["planned"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    (out / "index.html").write_text(_index_html(manifest, out), encoding="utf-8")


@contextlib.contextmanager
def _sigterm_as_exit():
    """SIGTERM raises SystemExit(143) for the duration (main thread only), so cleanup runs."""
    try:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_report(notebooks: list[Path] | None = None, parameters: dict | None = None,
               per_notebook: dict | None = None, out: str | Path | None = None, progress: bool = True,
               cell_timeout: float = CELL_TIMEOUT) -> dict:
    """Validate, then execute every notebook (each cell at most `cell_timeout` s; 0: no limit);
    write manifest.json and index.html after each; return the manifest."""
    if cell_timeout < 0:
        raise BadInput(f"cell_timeout must be >= 0 seconds (0: no limit); got {cell_timeout}")
    notebooks = [Path(n) for n in (notebooks or default_notebooks())]
    missing = [str(n) for n in notebooks if not n.is_file()]
    if missing:
        raise BadInput(f"notebooks not found: {missing}")
    planned = plan(notebooks, parameters or {}, per_notebook or {})
    out = Path(out or f"runs/report-{dt.datetime.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"created": dt.datetime.now().isoformat(timespec="seconds"), "command": sys.argv,
                "packages": _versions(), "threads": threads.settings(),  # kernels inherit its variables
                "cell_timeout": cell_timeout, "planned": len(planned), "notebooks": []}
    with this_python_kernel() as kernel, _sigterm_as_exit():
        for k, (nb, params) in enumerate(planned.items(), 1):
            print(f"[{k}/{len(planned)}] {nb.stem}", flush=True)
            entry = run_notebook(nb, params, out, kernel, progress, cell_timeout)
            manifest["notebooks"].append(entry)
            _write(out, manifest)
            print(f"[{k}/{len(planned)}] {nb.stem}: {entry['status']} in {entry['seconds']:.1f} s"
                  + (f" (cell {entry['error']['cell']}: {entry['error']['ename']}: {entry['error']['evalue']})"
                     if entry["status"] != "ok" else ""), flush=True)
    _write(out, manifest)
    print(f"report: {out / 'index.html'}")
    return manifest


def load_config(path: str | Path | None) -> dict:
    if not path:
        return {}
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise BadInput(f"report config {path}: {e}") from e
    allowed = ("out", "notebooks", "parameters", "notebook_parameters", "cell_timeout")
    unknown = set(config) - set(allowed) if isinstance(config, dict) else {"(not a mapping)"}
    if unknown:
        raise BadInput(f"report config {path}: unknown keys {sorted(unknown)}; allowed: {', '.join(allowed)}")
    return config
