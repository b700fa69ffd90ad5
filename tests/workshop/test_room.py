"""The room: `workshop prepare` writes what its cache.zip was built with, `workshop check --cache` says
whether this machine reads it (and how many entries), `check --hub` checks the Jupyter server's
environment, and every map the workshop shows draws with the colour-blind-safe palette and a symbol
per class.

Real runs: a real prepare (M0), real caches filled by the lab, the server check run in real Pythons (this
venv as server and kernel; its base interpreter as a server environment without the extensions).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab.cli import main
from lab.workshop import cache_check, room, server_check

NO_GPU = ("CUDA_VISIBLE_DEVICES", "")  # a hand-out for laptops: CPU (fp32) rows


def _cache_from_the_lab(folder: Path) -> dict:
    """A cache folder filled as a module fills it: lab-vit-tiny's embeddings of a few world images and
    texts, and a memoized projection (lab.studies.maps keys it by numpy / scikit-learn and its code)."""
    import lab
    from lab.data.shapeworld import WorldDataset
    from lab.studies import maps as em
    model = lab.load_model("lab-vit-tiny", cache=folder)
    data = WorldDataset("test", n=6)
    x = model.encode_images([data.source(i) for i in range(6)], progress=False)
    model.encode_texts([f"a {c}." for c in data.classes[:4]], progress=False)
    em.project(x, "pca", 2, seed=0, cache=folder)
    return room.manifest(folder, ["test"])


def _zip(folder: Path, about: dict, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.name.endswith(("-wal", "-shm")):
                z.write(p, p.relative_to(folder))
        z.writestr(room.MANIFEST, json.dumps(about))
    return out


# -- prepare writes its manifest; check reads it --------------------------------------------------------

def test_prepare_writes_the_versions_and_check_says_this_machine_reads_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(*NO_GPU)
    out = tmp_path / "cache.zip"
    assert main(["workshop", "prepare", "--modules", "M0", "--out", str(out)]) == 0
    assert "prepared on cpu" in capsys.readouterr().out
    about = json.loads(zipfile.ZipFile(out).read(room.MANIFEST))
    code, packages = room.memo_inputs()
    assert set(about["packages"]) == set(packages) >= {"torch", "captum", "scikit-learn", "numpy"}
    assert set(about["code"]) == set(code) >= {"lab.studies.maps", "lab.studies.attribution", "lab.studies.robustness"}
    assert about["device"] == "cpu" and about["precision"] == "fp32" and about["modules"] == ["M0"]
    [vit] = about["models"]  # M0 encodes with lab-vit-tiny
    import lab
    assert vit["name"] == "lab-vit-tiny" and vit["precision"] == "fp32"
    assert vit["fingerprint"] == lab.load_model("lab-vit-tiny", device="cpu", cache=tmp_path / "other").fingerprint
    n = sum(vit["embeddings"].values())
    assert n > 0

    info: list[str] = []
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "before"))
    [problem] = room.check_cache(out, info)  # not unpacked yet: the one thing to do
    assert problem.startswith(f"{out} is not unpacked") and f"unzip -o {out} -d {tmp_path / 'before'}" in problem
    assert f"will read all of it: {n} of {n} embeddings" in info[-1]

    folder = tmp_path / "learner"  # unpacked before anything opens its database, as the setup page says
    zipfile.ZipFile(out).extractall(folder)
    monkeypatch.setenv("LAB_CACHE_DIR", str(folder))
    assert main(["workshop", "check", "--cache", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"will read all of it: {n} of {n} embeddings" in text and "workshop check: ready" in text
    info = []
    assert room.check_cache(None, info) == []  # the unpacked folder itself: its manifest and its database
    assert f"{n} of {n} embeddings" in info[-1]


def test_check_counts_what_a_cache_built_with_other_versions_will_miss(tmp_path, monkeypatch):
    monkeypatch.setenv(*NO_GPU)
    folder = tmp_path / "built"
    about = _cache_from_the_lab(folder)
    [vit] = about["models"]
    n_emb, n_memo = sum(vit["embeddings"].values()), sum(about["memoized"].values())
    assert n_emb == 10 and about["memoized"] == {"projections": n_memo} and n_memo >= 1

    info: list[str] = []
    assert room.check_cache(_zip(folder, about, tmp_path / "same.zip"), info)[0].endswith(
        f"-d {os.environ['LAB_CACHE_DIR']}")  # only "unzip it"
    assert f"will read all of it: {n_emb} of {n_emb} embeddings and {n_memo} of {n_memo} memoized" in info[-1]

    other = json.loads(json.dumps(about))
    other["packages"]["scikit-learn"] = "0.99.0"
    other["code"]["lab.studies.maps"] = "0" * 16
    problems = room.check_cache(_zip(folder, other, tmp_path / "other.zip"), info := [])
    miss = problems[0]
    assert f"{n_emb} of {n_emb} embeddings, 0 of {n_memo} memoized results" in miss  # embeddings hold, results miss
    assert "scikit-learn 0.99.0 there" in miss and "pip install 'scikit-learn==0.99.0'" in miss
    assert "code differs in lab.studies.maps" in miss and "will miss" in info[-1]

    gpu = json.loads(json.dumps(about))  # a zip prepared on a GPU: fp16 rows under another fingerprint
    gpu.update(device="cuda", precision="fp16")
    gpu["models"][0].update(precision="fp16", fingerprint="f" * 64)
    [miss, _] = room.check_cache(_zip(tmp_path / "empty", gpu, tmp_path / "gpu.zip"), [])
    assert "computed in fp16 on a GPU, this machine computes in fp32 on cpu" in miss
    assert f"0 of {n_emb} embeddings" in miss and "CUDA_VISIBLE_DEVICES= python -m lab workshop prepare" in miss


def test_a_gpu_machine_is_told_a_cpu_zip_misses_and_how_to_hit_it(tmp_path, monkeypatch):
    """This machine has no GPU: what a GPU laptop computes with (fp16, another fingerprint) stands in."""
    monkeypatch.setenv(*NO_GPU)
    folder = tmp_path / "built"
    about = _cache_from_the_lab(folder)
    monkeypatch.setattr(cache_check, "_this_machine", lambda: {"device": "cuda", "precision": "fp16"})
    monkeypatch.setattr(cache_check, "_local_fingerprint", lambda name: "e" * 64)
    [miss, _] = room.check_cache(_zip(folder, about, tmp_path / "cpu.zip"), [])
    assert "computed in fp32 on a CPU, this machine computes in fp16 on cuda" in miss
    assert "start Jupyter with CUDA_VISIBLE_DEVICES=" in miss and "0 of 10 embeddings" in miss


def test_check_without_a_manifest_or_zip_names_the_fix(tmp_path):
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(bare, "w") as z:
        z.writestr("embeddings.sqlite3", b"")
    [problem] = room.check_cache(bare)
    assert f"has no {room.MANIFEST}" in problem and "workshop prepare" in problem
    [problem] = room.check_cache(tmp_path / "missing.zip")
    assert "does not exist" in problem
    assert room.check_cache() == []  # a fresh cache folder: nothing handed out, nothing to say


def test_memo_inputs_cover_every_memo_key():
    code, packages = room.memo_inputs()
    assert {"lab.studies.maps", "lab.studies.attribution", "lab.studies.robustness", "lab.studies.baselines",
            "lab.studies.probes_fewshot_retrieval", "lab.studies.attribution_metrics"} <= set(code)
    assert {"torch", "captum", "scikit-learn", "numpy"} <= set(packages)
    from importlib.util import find_spec
    assert all(find_spec(m) for m in code)


# -- check --hub: the Jupyter server's environment ------------------------------------------------------

def _bare_python() -> str:
    """This venv's base interpreter: a Python environment without JupyterLab or its extensions."""
    for name in ("python3", "python"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.exists():
            break
    else:
        pytest.skip("no base interpreter beside this venv")
    probe = subprocess.run([str(candidate), "-c", "import jupyterlab_widgets"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{candidate} has the widgets extension: not a bare server environment")
    return str(candidate)


def test_hub_check_on_this_venv_as_server_and_kernel():
    start = time.perf_counter()
    info: list[str] = []
    assert room.check_server(sys.executable, info) == []  # JupyterLab, the three extensions, a kernel running here
    assert time.perf_counter() - start < 10
    assert info == [f"Jupyter server's environment: {sys.prefix} (given by --hub {sys.executable})"]
    assert room.check_server(sys.prefix) == []  # the environment's prefix names it too


def test_hub_check_names_each_missing_piece_with_its_fix(capsys):
    server = _bare_python()
    problems = room.check_server(server)
    prefix = subprocess.run([server, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True).stdout
    prefix = prefix.strip()
    from importlib.metadata import version
    pip = f"{server} -m pip install"
    fixes = {"@jupyter-widgets/jupyterlab-manager": f"{pip} 'jupyterlab_widgets=={version('jupyterlab_widgets')}'",
             "anywidget": f"{pip} 'anywidget=={version('anywidget')}'",
             "jupyterlab-plotly": f"{pip} 'plotly=={version('plotly')}'"}
    assert f"the Jupyter server's environment ({prefix}) has no JupyterLab" in problems[0]
    for ext, fix in fixes.items():
        [line] = [p for p in problems if f"extension {ext} " in p]
        assert fix in line and "restart the server" in line
    assert main(["workshop", "check", "--hub", server]) == 1  # the whole check, from the command line
    out = capsys.readouterr().out
    assert f"· Jupyter server's environment: {prefix} (given by --hub {server})" in out
    assert out.count("✗ ") == len(problems) and "4 problem(s)" in out


def test_hub_check_finds_the_running_server(tmp_path):
    """A check started from inside a Jupyter server (a terminal or a kernel of it) checks that server's
    Python, not the kernel's: here a stand-in `jupyter-lab` process run by the bare Python."""
    server = _bare_python()
    fake = tmp_path / "jupyter-lab"
    fake.write_text(textwrap.dedent(f"""\
        #!{server}
        import subprocess, sys
        code = "from lab.workshop import room; print(repr(room.server_python()))"
        sys.exit(subprocess.call([{sys.executable!r}, "-c", code]))
        """))
    fake.chmod(0o755)
    out = subprocess.run([server, str(fake)], capture_output=True, text=True, timeout=60)
    python, how = eval(out.stdout.strip())
    assert python == server and how.startswith("the running Jupyter server (pid ")
    bad = tmp_path / "nothing"
    bad.mkdir()
    [problem] = room.check_server(bad)
    assert "cannot be checked" in problem and "no bin/python" in problem


def test_server_python_reads_console_scripts(tmp_path):
    script = tmp_path / "jupyter"
    script.write_text("#!/bin/sh\n'''exec' /opt/hub/env/bin/python \"$0\" \"$@\"\n' '''\n")
    assert server_check._shebang_python(str(script)) == "/opt/hub/env/bin/python"  # pip's launcher for long paths
    script.write_text("#!/opt/tljh/user/bin/python3\n")
    assert room.server_python(script) == ("/opt/tljh/user/bin/python3", f"given by --hub {script}")


# -- the palette: every map the workshop shows -----------------------------------------------------------

def _marker_styles(fig) -> list[tuple[str, str, str]]:
    return [(t.name, t.marker.color, t.marker.symbol) for t in fig.data if t.mode and "markers" in t.mode]


def test_embedding_maps_use_the_palette_and_a_symbol_per_class():
    from figures.palette import PALETTE
    from widgets.embedding_explorer import EmbeddingExplorer
    e = EmbeddingExplorer(n=120, method="pca")  # M2's explorer, as the module shows it
    for column in ("class", "colour", "size"):
        e.recolor(column)
        styles = _marker_styles(e.figure)
        assert styles and all(colour in PALETTE for _, colour, _ in styles), column
        values = list(dict.fromkeys(str(v) for v in e.points[column]))
        per_value = {name: (colour, symbol) for name, colour, symbol in styles}
        assert len({per_value[v][1] for v in values}) == len(values) <= 11, column  # distinct symbols
        assert len(set(per_value.values())) == len(values)
    e.recolor("class")
    shapes = {name: symbol for name, _, symbol in _marker_styles(e.figure)}
    assert shapes["triangle"] == "triangle-up" and shapes["star"] == "star"  # a shape class is drawn as itself

    from figures.maps import scatter_map  # prompts (text modality) share their class's colour and symbol
    points = pd.DataFrame({"class": ["circle", "heart", "circle", "heart"], "modality": ["image"] * 2 + ["text"] * 2})
    fig = scatter_map(np.random.default_rng(0).random((4, 2)), points, "class")
    styles = {n: (c, s) for n, c, s in _marker_styles(fig)}
    assert styles["circle"] == styles["circle (text)"] and styles["heart"] == styles["heart (text)"]


def test_robustness_maps_use_the_palette_and_distinct_symbols():
    from figures.palette import NEUTRAL, PALETTE
    from figures.robustness import effective_robustness_plot, severity_curves, shift_bars
    rows = []
    for kind, models in (("baseline", ["b0", "b1", "b2"]), ("evaluated", ["lab-vit-tiny", "lab-rn-tiny", "mine"]),
                         ("published", ["paper"])):
        for k, m in enumerate(models):
            a, b = 0.6 + 0.1 * k, 0.3 + 0.1 * k
            rows.append(dict(model=m, kind=kind, id_top1=a, shift_top1=b, id_top1_low=a - 0.05, id_top1_high=a + 0.05,
                             shift_top1_low=b - 0.05, shift_top1_high=b + 0.05, id_fit=a, shift_fit=b))
    fig = effective_robustness_plot(pd.DataFrame(rows), "sketch", n_boot=20)
    styles = _marker_styles(fig)
    assert all(colour in (*PALETTE, NEUTRAL) for _, colour, _ in styles)
    evaluated = [(c, s) for name, c, s in styles if name in ("lab-vit-tiny", "lab-rn-tiny", "mine")]
    assert len(evaluated) == 3 and len({s for _, s in evaluated}) == 3 and len({c for c, _ in evaluated}) == 3
    assert all(s not in ("circle-open", "diamond") for _, s in evaluated)  # never the baselines' or the paper's
    table = pd.DataFrame([dict(model=m, corruption=c, severity=s, top1=0.9 - 0.1 * s, shift="id", top1_low=0.5,
                               top1_high=0.9) for m in ("a", "b") for c in ("blur", "noise") for s in (1, 2, 3)])
    curves = [t for t in severity_curves(table).data if t.mode == "lines+markers"]
    assert [t.marker.symbol for t in curves] == ["circle", "square"] and all(t.line.color in PALETTE for t in curves)
    assert all(t.marker.color in PALETTE for t in shift_bars(table).data)


def test_a_map_drawn_by_hand_gets_the_palette_from_the_default_template():
    """M2 draws one map itself (a go.Scatter per class): importing `figures` made the palette plotly's
    default, and plotly.js resolves each trace's colour and symbol from it."""
    import plotly.graph_objects as go
    from figures.palette import PALETTE, SYMBOLS  # importing figures (as the notebooks do) sets the default
    from lab.data.shapeworld import WorldDataset
    classes = WorldDataset("test", n=4).classes
    fig = go.Figure([go.Scatter(x=[k], y=[k], mode="markers", name=c) for k, c in enumerate(classes)]
                    + [go.Scatter(x=[0], y=[1], mode="markers", name="prompts",
                                  marker=dict(symbol="star", size=10, color="black"))])
    assert tuple(fig.layout.template.layout.colorway) == PALETTE
    assert [t.marker.symbol for t in fig.layout.template.data.scatter] == list(SYMBOLS)
    try:
        full = fig.full_figure_for_development(warn=False)  # plotly.js itself, through kaleido
    except Exception as e:  # no browser for kaleido on this machine
        pytest.skip(f"plotly.js not available to resolve the figure: {e}")
    resolved = [(t.marker.color, t.marker.symbol) for t in full.data[:len(classes)]]
    assert all(colour in PALETTE for colour, _ in resolved)
    assert len({s for _, s in resolved}) == len(classes) and len(set(resolved)) == len(classes)
    assert (full.data[-1].marker.color, full.data[-1].marker.symbol) == ("black", "star")
