"""The batch report: real papermill runs of notebook 01 on tiny parameters next to a notebook that
fails on purpose; the notebook's key number against an independent computation from the cache; each
figure stored once (plotly's JSON, typed arrays as base64) and drawn once in the HTML, 1M points included;
index.html's results tables (a column per model) and figure thumbnails.

    python -m pytest -q tests/test_report.py
"""
import base64
import json
import signal
from html.parser import HTMLParser
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from conftest import count_forward
from lab import cli, processes
from lab.data import prompts
from lab.errors import BadInput
from lab.report import PLOTLY, THUMBNAIL, coerce, figure_html, figure_title, plan, results_html, results_table, \
    run_report

ROOT = Path(__file__).parent.parent
NB01 = ROOT / "notebooks" / "01_prompt_engineering.ipynb"
TINY = {"n_samples": 60, "n_val": 40, "max_selected": 3, "device": "cpu"}  # the CPU, as the checks in this process


def failing_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x: int = 1  # a number")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("y = x + 1"),
                nbformat.v4.new_code_cell("raise RuntimeError('deliberate failure')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "99_fails.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp / "cache"))
        manifest = run_report([NB01, failing_notebook(tmp)], TINY, {}, tmp / "out", progress=False)
    return tmp, manifest


def test_failing_notebook_is_reported_and_the_others_still_run(report):
    tmp, manifest = report
    out = tmp / "out"
    first, second = manifest["notebooks"]
    assert first["status"] == "ok" and not manifest["ok"]
    assert second["status"] == "failed" and second["error"]["ename"] == "RuntimeError"
    assert second["error"]["cell"] == 3 and "deliberate" in second["error"]["evalue"]
    assert json.loads((out / "manifest.json").read_text())["ok"] is False
    index = (out / "index.html").read_text()
    assert 'href="01_prompt_engineering.html"' in index and "failed in cell 3" in index
    assert (out / "99_fails.html").exists()  # the failed notebook is exported too, error included


def test_manifest_records_parameters_model_dataset_versions_timings(report):
    _, manifest = report
    entry = manifest["notebooks"][0]
    assert entry["parameters"]["n_samples"] == 60 and entry["parameters"]["output_dir"].endswith("01_prompt_engineering")
    run = entry["run"]
    assert run["model"]["name"] == "lab-vit-tiny" and len(run["model"]["fingerprint"]) == 64
    assert run["dataset"]["n"] == 60 and run["dataset"]["name"].endswith("test/rendition")
    assert entry["seconds"] > 0 and manifest["packages"]["torch"]
    assert "figures/per_template.html" in "".join(entry["figures"])


def test_html_export_keeps_the_plotly_figures(report):
    tmp, _ = report
    html = (tmp / "out" / "01_prompt_engineering.html").read_text()
    assert html.count("Plotly.newPlot") >= 6  # every figure is drawn, not dropped as a bare mimetype
    assert "plotly.js v" in html  # the library is embedded: the report opens offline


def figure_outputs(nb) -> list[dict]:
    return [o.data for c in nb.cells if c.cell_type == "code" for o in c.outputs if PLOTLY in o.get("data", {})]


def test_each_figure_is_stored_once_and_drawn_once_with_plotly_js_once(report):
    tmp, _ = report
    nb = nbformat.read(tmp / "out" / "01_prompt_engineering.ipynb", as_version=4)
    figures = figure_outputs(nb)
    assert len(figures) >= 6 and all(set(data) == {PLOTLY} for data in figures)  # no text/html copy beside it
    html_outputs = [o.data["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                    if "text/html" in o.get("data", {})]
    assert not [h for h in html_outputs if "plotly" in h.lower()]  # nor a plotly.js loader output
    html = (tmp / "out" / "01_prompt_engineering.html").read_text()
    for n in range(1, len(figures) + 1):
        assert f'id="figure-{n}"' in html and f'Plotly.newPlot("figure-{n}",' in html  # nbconvert reorders attributes
    assert html.count('class="lab-figure"') == len(figures) and html.count("plotly.js v") == 1
    assert "plotly" not in (tmp / "out" / "99_fails.html").read_text().lower()  # no figure: no plotly.js


BIG = 1_000_000


def big_figure_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f"output_dir: str = 'out'  # folder\nn: int = {BIG}  # points")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import numpy as np\nimport plotly.graph_objects as go\n"
        "from lab import notebook\nout = notebook.setup(output_dir)\n"
        "xy = np.random.default_rng(0).standard_normal((2, n)).astype(np.float32)\n"
        "go.Figure(go.Scattergl(x=xy[0], y=xy[1], mode='markers')).show()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "90_big_figure.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_million_point_figure_stays_base64_in_the_notebook_and_the_html(tmp_path):
    """1M float32 points: 2 x 5.3 MB of base64. The old double storage (JSON + HTML copy + plotly.js)
    made a 30 MB notebook and a 18.7 MB page; lists of floats would be ~40 MB."""
    from plotly.offline import get_plotlyjs
    assert run_report([big_figure_notebook(tmp_path)], {}, {}, tmp_path / "out", progress=False)["ok"]
    executed, page = tmp_path / "out" / "90_big_figure.ipynb", tmp_path / "out" / "90_big_figure.html"
    [figure] = figure_outputs(nbformat.read(executed, as_version=4))
    trace = figure[PLOTLY]["data"][0]
    assert trace["x"]["dtype"] == trace["y"]["dtype"] == "f4"
    packed = len(trace["x"]["bdata"]) + len(trace["y"]["bdata"])
    assert packed == 2 * len(base64.b64encode(bytes(4 * BIG)))  # base64 of 2 x 4 MB
    assert executed.stat().st_size < packed + 200_000, executed.stat().st_size
    html = page.read_text()
    assert trace["x"]["bdata"] in html and trace["y"]["bdata"] in html  # written as stored, not re-encoded
    assert page.stat().st_size < packed + len(get_plotlyjs()) + 1_000_000, page.stat().st_size


def test_figure_json_cannot_close_its_script():
    html = figure_html({"data": [{"type": "bar", "x": ["</script><!--<script>", "a<br>b"], "y": [1, 2]}],
                        "layout": {"height": 300}}, "figure-1")
    assert html.count("</script>") == 1 and html.endswith("</script>") and "<!--" not in html
    assert '"<\\/script>\\u003c!--<script>","a<br>b"' in html  # the same strings to JavaScript; <br> as is
    assert 'style="height:300px;width:100%"' in html and '"responsive":true' in html


def test_html_export_loads_nothing_from_the_network(report):
    import re
    tmp, _ = report
    for page in ("01_prompt_engineering.html", "99_fails.html"):
        html = (tmp / "out" / page).read_text()
        remote = re.findall(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
        remote += re.findall(r"""import\s*\(?\s*["']https?://""", html)  # ES modules (mermaid)
        assert not remote, f"{page} loads from the network: {remote}"
        assert "require.min.js" not in html and "cdnjs" not in html


def test_every_figure_has_png_and_svg_linked_from_the_index(report):
    from lab.notebook import static_figures_missing
    if static_figures_missing():
        assert "CI" not in __import__("os").environ, f"CI needs PNG/SVG figures: run `{static_figures_missing()}`"
        pytest.skip(f"no headless browser for PNG/SVG: `{static_figures_missing()}`")
    tmp, manifest = report
    out, entry = tmp / "out", manifest["notebooks"][0]
    index = (out / "index.html").read_text()
    for fig in entry["figures"]:
        for ext in ("png", "svg"):
            static = out / Path(fig).with_suffix(f".{ext}")
            assert static.stat().st_size > 1000, static
            assert f'href="{static.relative_to(out)}"' in index
    png = (out / entry["figures"][0]).with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / entry["figures"][0]).with_suffix(".svg").read_text()[:500]


class Tags(HTMLParser):
    """Every tag of a page as (name, attributes, the href of the link it sits in)."""
    def __init__(self, page: str):
        super().__init__()
        self.found, self.links = [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.found.append((tag, attrs, self.links[-1] if self.links else None))
        if tag == "a":
            self.links.append(attrs.get("href"))

    def handle_endtag(self, tag):
        if tag == "a" and self.links:
            self.links.pop()

    def __call__(self, name: str) -> list[tuple[dict, str | None]]:
        return [(attrs, link) for tag, attrs, link in self.found if tag == name]


def test_index_shows_the_results_table_and_a_thumbnail_or_link_per_figure(report):
    tmp, manifest = report
    out, entry = tmp / "out", manifest["notebooks"][0]
    index = (out / "index.html").read_text()
    results = entry["run"]["results"]
    assert '<table class="results"><thead><tr><th>metric</th><th>value</th></tr></thead>' in index  # no model/... keys
    assert f'<tr><th>ensemble_top1</th><td class="num">{results["ensemble_top1"]:.3g}</td></tr>' in index
    assert entry["titles"][f"{entry['notebook']}/figures/per_template.html"] == "Top-1 of each template alone"
    order = ["samples", "per_template", "methods", "template_count", "classname_changes", "confusion_worst",
             "confident_mistakes"]  # as the notebook saves them
    assert [Path(f).stem for f in entry["figures"]] == [n for n in order if any(f.endswith(f"/{n}.html")
                                                                                 for f in entry["figures"])]
    tags = Tags(index)
    thumbnails = {link: img for img, link in tags("img")}
    for figure in entry["figures"]:
        assert f"<figcaption>{entry['titles'][figure]}" in index
        if str(Path(figure).with_suffix(".png")) in entry["images"]:  # chromium made a PNG: its thumbnail
            img = thumbnails[figure]
            assert (out / img["src"]).is_file() and img["loading"] == "lazy"
            assert int(img["width"]) <= THUMBNAIL[0] and int(img["height"]) <= THUMBNAIL[1]
        else:
            assert figure not in thumbnails and (dict(href=figure), None) in tags("a")
    assert "data:image" not in index and "http" not in index  # files beside the page, nothing from the network
    assert 'href="#99_fails"' in index and '<section id="99_fails" class="failed">' in index


def test_results_table_has_a_row_per_metric_and_a_column_per_recorded_model():
    run = {"models": [{"name": "lab-vit-tiny", "fingerprint": "a"}, {"name": "lab-rn-tiny", "fingerprint": "b"}],
           "reading_models": [{"name": "lab-vit-literate", "fingerprint": "c"}], "dataset": {"name": "world", "n": 9},
           "results": {"lab-vit-tiny/relevance/pointing_game": 0.73512, "lab-vit-tiny/random/pointing_game": 0.25,
                       "lab-rn-tiny/gradcam/pointing_game": 0.6, "lab-rn-tiny/random/pointing_game": 0.2468,
                       "lab-vit-literate/typographic/reading_effect": -0.0123456, "n_images": 12000,
                       "other-model/top1": 0.5, "range": [0.41, 0.6], "best": "<b>rollout</b>"}}
    table = results_table({"run": run})
    assert list(table.columns) == ["lab-vit-tiny", "lab-rn-tiny", "lab-vit-literate", "value"]
    assert list(table.index) == ["relevance/pointing_game", "random/pointing_game", "gradcam/pointing_game",
                                 "typographic/reading_effect", "n_images", "other-model/top1", "range", "best"]
    assert table.loc["random/pointing_game"].tolist() == [0.25, 0.2468, None, None]
    assert table.loc["other-model/top1", "value"] == 0.5  # not a recorded model: the whole key is the row
    page = results_html(table)
    assert "<th>metric</th><th>lab-vit-tiny</th><th>lab-rn-tiny</th><th>lab-vit-literate</th><th>value</th>" in page
    assert ('<tr><th>random/pointing_game</th><td class="num">0.25</td><td class="num">0.247</td><td></td><td></td>'
            in page)
    for shown in ('<td class="num">0.735</td>', '<td class="num">-0.0123</td>', '<td class="num">12,000</td>',
                  '<td class="num">0.41, 0.6</td>', "<td>&lt;b&gt;rollout&lt;/b&gt;</td>"):
        assert shown in page
    assert results_table({"run": None}).empty and results_table({"run": {"model": run["models"][0]}}).empty


def test_index_thumbnails_are_the_saved_pngs_at_their_aspect_ratio(tmp_path):
    """A report folder as run_notebook leaves it: a wide and a tall figure with PNGs beside their HTML, one
    figure without."""
    import plotly.graph_objects as go
    from PIL import Image

    from lab import report
    figures = tmp_path / "03_attribution" / "figures"
    figures.mkdir(parents=True)
    go.Figure(go.Bar(x=["a"], y=[1]), layout={"title": "Pointing game<br><sup>by model & method</sup>"}).write_html(
        figures / "metrics.html", include_plotlyjs="directory")
    go.Figure(go.Bar(x=["a"], y=[1])).write_html(figures / "methods_lab-rn-tiny.html", include_plotlyjs="directory")
    go.Figure(go.Bar(x=["a"], y=[1]), layout={"title": "every method"}).write_html(
        figures / "methods_lab-vit-tiny.html", include_plotlyjs="directory")
    Image.new("RGB", (1400, 700), "white").save(figures / "metrics.png")
    Image.new("RGB", (400, 1600), "white").save(figures / "methods_lab-vit-tiny.png")
    entry = {"notebook": "03_attribution", "status": "ok", "seconds": 3.0, "executed": "03_attribution.ipynb",
             "html": "03_attribution.html", "figures": [f"03_attribution/figures/{name}.html" for name in
                                                        ("metrics", "methods_lab-rn-tiny", "methods_lab-vit-tiny")],
             "images": ["03_attribution/figures/metrics.png", "03_attribution/figures/methods_lab-vit-tiny.png"],
             "run": {"models": [{"name": "lab-vit-tiny", "fingerprint": "a"},
                                {"name": "lab-rn-tiny", "fingerprint": "b"}],
                     "results": {"lab-vit-tiny/rollout/pointing_game": 0.5, "lab-rn-tiny/gradcam/pointing_game": 0.75}}}
    entry["titles"] = {f: figure_title(tmp_path / f) for f in entry["figures"]}
    assert list(entry["titles"].values()) == ["Pointing game by model & method", None, "every method"]
    report._write(tmp_path, {"created": "now", "planned": 1, "notebooks": [entry]})
    index = (tmp_path / "index.html").read_text()
    tags = Tags(index)
    (wide, link), (tall, _) = tags("img")
    assert link == "03_attribution/figures/metrics.html" and (tmp_path / wide["src"]).is_file()
    assert (wide["width"], wide["height"], wide["loading"]) == (str(THUMBNAIL[0]), str(THUMBNAIL[0] // 2), "lazy")
    assert (tall["src"], tall["width"], tall["height"]) == (
        "03_attribution/figures/methods_lab-vit-tiny.png", str(THUMBNAIL[1] // 4), str(THUMBNAIL[1]))  # fits the box
    assert "<figcaption>Pointing game by model &amp; method" in index
    assert ({"href": "03_attribution/figures/methods_lab-rn-tiny.html"}, None) in tags("a")  # no PNG: a link
    assert "<figcaption>methods_lab-rn-tiny</figcaption>" in index  # no title: the file's name
    assert "<th>metric</th><th>lab-vit-tiny</th><th>lab-rn-tiny</th>" in index
    assert 'href="03_attribution.html"' in index and 'href="03_attribution.ipynb"' in index


def test_ensemble_accuracy_equals_an_independent_computation_from_the_cache(report):
    import lab
    from lab.data.shapeworld import WorldDataset
    tmp, manifest = report
    reported = manifest["notebooks"][0]["run"]["results"]["ensemble_top1"]
    model = lab.load_model("lab-vit-tiny", cache=tmp / "cache", device="cpu")  # the notebook's fingerprint
    seen = count_forward(model)  # counts forwards in this process: num_workers=0
    test = WorldDataset("test", 60, suite="rendition")
    x = model.encode_images(test, progress=False, num_workers=0)  # (60, D)
    texts = [t.replace("{}", c) for c in test.classes for t in prompts.templates("shapeworld")]
    t = model.encode_texts(texts, progress=False).reshape(len(test.classes), -1, x.shape[1])  # (C, T, D)
    assert seen == {"images": 0, "texts": 0}  # both came from the cache the notebook filled
    w = (t / np.linalg.norm(t, axis=2, keepdims=True)).mean(1)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    accuracy = float(((x @ w.T).argmax(1) == test.labels["label"].to_numpy()).mean())
    assert reported == pytest.approx(accuracy)


def test_bad_parameters_are_rejected_before_anything_runs(tmp_path):
    with pytest.raises(BadInput) as err:
        run_report([NB01], {"n_sample": 5, "seed": "x"}, {}, tmp_path / "out")
    text = str(err.value)
    assert "unknown parameter 'n_sample'" in text and "seed: expected int" in text
    assert "n_samples (int)" in text  # the valid parameters are listed
    assert not (tmp_path / "out").exists()
    with pytest.raises(BadInput, match="not among"):
        plan([NB01], {}, {"02_nope": {"seed": 1}})


def test_parameter_types_are_checked_and_converted():
    assert coerce("3", "int", "p") == 3 and coerce(2, "float", "p") == 2.0 and coerce("off", "bool", "p") is False
    assert coerce("1e-3", "float", "p") == 0.001 and coerce("010", "int", "p") == 10
    assert coerce("[a, b]", "list[str]", "p") == ["a", "b"] and coerce("3", "str", "p") == "3"
    for value, annotation in (("x", "int"), (True, "int"), ("maybe", "bool"), (1, "str")):
        with pytest.raises(BadInput, match="expected"):
            coerce(value, annotation, "p")
    with pytest.raises(BadInput, match="cannot check"):
        coerce("3", "Optional", "p")


def test_output_dir_belongs_to_the_report():
    with pytest.raises(BadInput, match="pass --out"):
        plan([NB01], {"output_dir": "/tmp/x"}, {})


def test_a_rerun_never_shows_the_previous_runs_results(tmp_path):
    bad = failing_notebook(tmp_path)
    stale = tmp_path / "out" / "99_fails"
    (stale / "figures").mkdir(parents=True)
    (stale / "run.json").write_text('{"results": {"top1": 0.99}}')
    (stale / "figures" / "old.html").write_text("old")
    entry = run_report([bad], {}, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "failed" and entry["run"] is None and entry["figures"] == []
    assert "0.99" not in (tmp_path / "out" / "index.html").read_text()


def test_cli_exit_status_says_whether_all_passed(tmp_path, capsys):
    bad = failing_notebook(tmp_path)
    assert cli.main(["report", "--notebooks", str(bad), "--out", str(tmp_path / "r"), "--no-progress"]) == 1
    assert "99_fails: failed" in capsys.readouterr().out
    config = tmp_path / "report.yaml"
    config.write_text(f"notebooks: [{bad}]\nparameters: {{x: 2.5}}\n")
    assert cli.main(["report", "--config", str(config)]) == 2  # a float for an int: refused up front


def test_executed_notebooks_keep_their_kernelspec(report):
    tmp, _ = report
    nb = nbformat.read(tmp / "out" / "01_prompt_engineering.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "clip-lab"  # the project's kernel, not the report's temporary one


def test_static_figures_are_kept_in_the_cache_and_copied_on_a_rerun(tmp_path):
    import plotly.graph_objects as go

    from lab import notebook
    assert notebook.static_figures_missing() is None, "PNG/SVG export needs kaleido and chromium here"
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    first = notebook.save_figure(fig, tmp_path / "one", "bars")
    assert [p.suffix for p in first] == [".html", ".png", ".svg"]
    assert first[1].read_bytes().startswith(b"\x89PNG") and b"<svg" in first[2].read_bytes()
    kept = list((tmp_path / "cache" / "figures").glob("*.svg"))
    assert len(kept) == 1
    kept[0].write_bytes(b"<svg>kept</svg>")  # a re-run must copy the kept file, not export again
    again = notebook.save_figure(fig, tmp_path / "two", "bars")
    assert again[2].read_bytes() == b"<svg>kept</svg>"
    other = notebook.save_figure(go.Figure(go.Bar(x=["a"], y=[3])), tmp_path / "three", "bars")
    assert b"kept" not in other[2].read_bytes()  # another figure, another key


def test_a_stuck_cell_fails_its_notebook_and_the_next_notebook_still_runs(tmp_path):
    """A cell that never ends (its child process too) is stopped at the deadline: the notebook is
    reported failed in that cell, the kernel and its children are gone, the next notebook runs."""
    pid_file = tmp_path / "child.pid"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x: int = 1  # a number")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        f"import subprocess, time\nopen({str(pid_file)!r}, 'w').write(str(subprocess.Popen(['sleep', '3600']).pid))"),
        nbformat.v4.new_code_cell("while True:\n    try:\n        time.sleep(3600)\n    except KeyboardInterrupt:\n"
                                  "        pass  # deaf to the interrupt as a deadlocked library is")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "98_stuck.ipynb")
    manifest = run_report([tmp_path / "98_stuck.ipynb", failing_notebook(tmp_path)], {}, {}, tmp_path / "out",
                          progress=False, cell_timeout=5)
    stuck, after = manifest["notebooks"]
    assert stuck["status"] == "failed" and stuck["error"]["cell"] == 3 and stuck["error"]["ename"] == "CellTimeoutError"
    assert "timed out after 5 s" in stuck["error"]["evalue"] and stuck["seconds"] < 60
    assert after["error"]["ename"] == "RuntimeError"  # it ran (and failed on purpose)
    assert "timed out after 5 s" in (tmp_path / "out" / "index.html").read_text()
    assert (tmp_path / "out" / "98_stuck.html").exists()  # saved up to the stuck cell, its outputs kept
    child = int(pid_file.read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3]


def test_cell_timeout_is_a_cli_flag_and_a_config_key(tmp_path):
    config = tmp_path / "report.yaml"
    config.write_text("cell_timeout: -3\n")
    assert cli.main(["report", "--config", str(config), "--notebooks", str(NB01)]) == 2
    with pytest.raises(BadInput, match="cell_timeout"):
        run_report([NB01], {}, {}, tmp_path / "out", cell_timeout=-1)


STALLED_ENCODE = '''import time
import lab

class Stalls:  # a dataset whose items never arrive: its DataLoader workers are stuck for good
    def __len__(self): return 64
    def content_key(self, i): return f"stalls:{i}"
    def source(self, i): time.sleep(3600)

lab.load_model("lab-vit-tiny", device="cpu").encode_images(Stalls(), batch_size=8, num_workers=2, progress=False)'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_report_leaves_no_kernel_or_worker_behind(tmp_path, sig):
    """A report stopped while its notebook is stuck in encode_images: SIGTERM runs the report's cleanup;
    after SIGKILL nothing of the report's runs, the kernel notices its parent is gone and the workers
    die with the kernel. Either way no kernel and no DataLoader worker is left."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x: int = 1  # a number")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(STALLED_ENCODE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "97_stalls.ipynb")
    report = subprocess.Popen([sys.executable, "-m", "lab", "report", "--no-progress", "--out", str(tmp_path / "out"),
                               "--notebooks", str(tmp_path / "97_stalls.ipynb")], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, below = time.monotonic() + 120, []
        while len(below) < 3 and time.monotonic() < deadline:  # the kernel and its two workers
            time.sleep(0.5)
            below = processes.descendants(report.pid)
        assert len(below) >= 3, f"the notebook's workers did not start: {below}"
        time.sleep(1)
        report.send_signal(sig)
        assert report.wait(30) == (-sig if sig == signal.SIGKILL else 128 + sig)
    finally:
        if report.poll() is None:
            report.kill()
    deadline = time.monotonic() + 20
    while [p for p in below if processes._running(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in below if processes._running(p)], f"left behind: {below}"


def test_a_transformers_checkpoint_runs_the_notebook_by_parameter_and_the_manifest_says_what_it_was(tmp_path,
                                                                                                    monkeypatch):
    """-p model <a transformers folder>: notebook 01 runs top to bottom on a SigLIP checkpoint; the manifest
    records its source, format and link, and the zero-shot probabilities it wrote are per-class sigmoids."""
    import pandas as pd

    from _transformers_checkpoints import save_checkpoint
    folder = save_checkpoint("siglip", tmp_path / "hf")
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    manifest = run_report([NB01], {**TINY, "model": str(folder)}, {}, tmp_path / "out", progress=False)
    entry = manifest["notebooks"][0]
    assert manifest["ok"], entry.get("error")
    model = entry["run"]["model"]
    assert model["source"] == str(folder.resolve()) and model["format"] == "transformers"
    assert model["link"] == "sigmoid" and model["revision"] is None
    predictions = pd.read_csv(tmp_path / "out" / "01_prompt_engineering" / "predictions.csv")
    assert ((predictions["confidence"] > 0) & (predictions["confidence"] < 1)).all()
