"""Widgets driven through their ipywidgets values, as a user's clicks would set them (no browser);
the explorer also through the messages plotly's page sends (a selection, a zoom), above DENSITY_ABOVE too."""
import datetime as dt
import io
import json

import numpy as np
import pytest
from PIL import Image

from figures.maps import DENSITY_ABOVE, SAMPLE_POINTS
from widgets.prompt_playground import PromptPlayground

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def playground():
    return PromptPlayground(n=20)


def test_playground_shows_probabilities_for_the_chosen_image(playground):
    p = playground
    assert p.status.startswith("lab-vit-tiny: ")
    assert len(p.classes) == 10 and p.classes["probability"].sum() == pytest.approx(1.0, abs=1e-5)
    assert list(p.figure.data[0].y)[0] == p.classes["name"][0]  # the bar chart shows the same ranking
    assert len(p.per_template) == len(p.templates_box.value.splitlines())
    truth = p.dataset.labels["shape"][p.index.value]
    assert p.classes["name"][0] == truth  # the built-in model gets clean ShapeWorld right
    p.index.value = 3
    assert p.classes["name"][0] == p.dataset.labels["shape"][3]


def test_a_widget_displays_its_box_and_a_hidden_rerun_note(playground):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from widgets._display import RERUN, RERUN_HTML
    InteractiveShell.instance()  # a shell to publish to, as in a kernel
    try:
        with capture_output() as shown:
            playground._ipython_display_()
    finally:
        InteractiveShell.clear_instance()
    note, widget = (o.data for o in shown.outputs)
    assert widget["application/vnd.jupyter.widget-view+json"]["model_id"] == playground.ui.model_id
    assert note["text/html"] == RERUN_HTML and RERUN in RERUN_HTML and "display:none" in RERUN_HTML


def test_editing_names_and_templates_updates_the_state(playground):
    p = playground
    p.names_box.value = "circle\nsquare\nbanana"
    assert sorted(p.classes["name"]) == ["banana", "circle", "square"]
    assert sorted(p.figure.data[0].y) == ["banana", "circle", "square"]
    p.templates_box.value = "a photo of a {}.\na drawing of a {}."
    assert list(p.per_template["template"]) == ["a photo of a {}.", "a drawing of a {}."]
    before = p.classes.copy()
    p.templates_box.value = "a photo without a placeholder"
    assert p.status.startswith("error:") and "'{}'" in p.message.value
    assert p.classes.equals(before)  # the last good result stays on screen


def test_upload_and_model_switch(playground):
    p = playground
    p.names_box.value = "red circle\nblue square"
    p.templates_box.value = "a photo of a {}."
    img = np.full((64, 64, 3), 255, np.uint8)
    yy, xx = np.mgrid[:64, :64]
    img[(yy - 32) ** 2 + (xx - 32) ** 2 < 18 ** 2] = (220, 40, 40)  # a red disk on white
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    p.upload.value = ({"name": "disk.png", "type": "image/png", "size": buf.tell(),
                       "content": memoryview(buf.getvalue()), "last_modified": NOW},)
    assert p.use_upload and p.classes["name"][0] == "red circle"
    p.model_box.value = "lab-rn-tiny"
    assert p.status.startswith("lab-rn-tiny: red circle")
    p.upload.value = ({"name": "bad.png", "type": "image/png", "size": 3, "content": memoryview(b"abc"),
                       "last_modified": NOW},)
    assert p.status.startswith("error:")
    p.index.value = 0  # moving the slider goes back to the dataset
    assert not p.use_upload and not p.status.startswith("error")


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    from widgets.embedding_explorer import EmbeddingExplorer
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("explorer-cache")))
        return EmbeddingExplorer(n=150, n_neighbors=10)


def test_explorer_lasso_selection_shows_the_selected_images(explorer):
    from plotly.callbacks import LassoSelector, Points
    e = explorer
    first, second = e.figure.data[0], e.figure.data[1]
    first._dispatch_on_selection(Points(point_inds=[0, 1], trace_index=0), LassoSelector())
    second._dispatch_on_selection(Points(point_inds=[0], trace_index=1), LassoSelector())
    expected = sorted([int(first.customdata[0]), int(first.customdata[1]), int(second.customdata[0])])
    assert e.selection.index.tolist() == expected  # selections in several traces add up
    assert "3 selected" in e.grid.value and e.grid.value.count("<img") == 3
    assert set(e.selection["class"]) == {first.name, second.name}


def test_explorer_click_query_and_recolour(explorer):
    from plotly.callbacks import Points
    e = explorer
    trace = e.figure.data[0]
    trace._dispatch_on_click(Points(point_inds=[0], trace_index=0), None)
    row = int(trace.customdata[0])
    assert row not in e.neighbours.index and len(e.neighbours) == 8
    assert (e.neighbours["class"] == e.points["class"][row]).mean() >= 0.75  # neighbours share its shape
    e.query_box.value = "a photo of a red circle."  # as typed + enter
    hits = e.neighbours
    red_circles = e.points.index[(e.points["class"] == "circle") & (e.points["colour"] == "red")]
    assert set(red_circles) <= set(hits.index[:max(len(red_circles), 1)])  # the red circles come first
    assert ((hits["class"] == "circle") | (hits["colour"] == "red"))[:3].all()
    assert [s.name for s in e.figure.layout.shapes] == ["nearest"] * 12 + ["query"] * 2 and "nearest to" in e.grid.value
    assert e.figure.layout.shapes[-1].label.text == "a photo of a red circle."  # the star's label
    e.color_box.value = "colour"
    assert {t.name for t in e.figure.data} == set(e.points["colour"]) and not e.figure.layout.shapes  # marks cleared
    assert e.projection.coords is e.coords  # the map itself was not recomputed


def brute_force_inside(coords, xs, ys) -> list[int]:
    """Rows inside the polygon by the even-odd rule, one point and one edge at a time."""
    rows = []
    for i, (x, y) in enumerate(coords.tolist()):
        inside = False
        for j in range(len(xs)):
            (x0, y0), (x1, y1) = (xs[j - 1], ys[j - 1]), (xs[j], ys[j])
            if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
        if inside:
            rows.append(i)
    return rows


def test_lasso_and_box_rows_agree_with_a_brute_force_check():
    from widgets.embedding_explorer import rows_in_box, rows_in_lasso
    rng = np.random.default_rng(3)
    coords = rng.uniform(-1, 1, (4000, 2)).astype(np.float32)
    angles, radii = np.sort(rng.uniform(0, 2 * np.pi, 80)), rng.uniform(0.2, 0.95, 80)
    jagged = (list(radii * np.cos(angles)) + [0.5, 0.8], list(radii * np.sin(angles)) + [-0.1, -0.1])  # a flat edge
    bow_tie = ([-0.9, 0.9, 0.9, -0.9], [-0.9, 0.9, -0.9, 0.9])  # crosses itself: even-odd, as plotly
    for xs, ys in (jagged, bow_tie):
        expected = brute_force_inside(coords, xs, ys)
        assert 200 < len(expected) < 3800 and rows_in_lasso(coords, xs, ys).tolist() == expected
    assert rows_in_lasso(coords, [0, 1], [0, 1]).tolist() == []  # not a polygon
    x, y = coords.T
    expected = np.flatnonzero((x >= -0.2) & (x <= 0.5) & (y >= -0.3) & (y <= 0.4)).tolist()
    assert rows_in_box(coords, (0.5, -0.2), (-0.3, 0.4)).tolist() == expected  # ends in either order


def test_explorer_maps_a_whole_folder_and_checks_arrays(explorer, tmp_path, monkeypatch):
    from widgets.embedding_explorer import EmbeddingExplorer
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    for k, (name, colour) in enumerate([("red", (220, 40, 40)), ("blue", (40, 40, 220))] * 3):
        (tmp_path / "photos" / name).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 48), colour).save(tmp_path / "photos" / name / f"{k}.png")
    folder = EmbeddingExplorer(dataset="folder", data_root=str(tmp_path / "photos"), n=0, method="pca")
    assert len(folder.points) == 6 and set(folder.points["class"]) == {"red", "blue"}  # split="all": every image
    e = explorer
    small = EmbeddingExplorer.from_arrays(e.x, e.coords, e.points, e.data, e.model)
    assert not small.large and not small.figure.layout.images and small.projection is None
    np.testing.assert_array_equal(small.coords, e.coords)  # the map as given, not refitted
    hits = small.query("a red circle")  # placed among its nearest points
    from lab.studies import maps as em
    where = em.place_by_neighbours(e.x, e.coords, e.model.encode_texts(["a red circle"], progress=False))[0]
    star = small.figure.layout.shapes[-2]
    np.testing.assert_allclose([star.xanchor, star.yanchor], where, rtol=1e-5)
    assert len(hits) == 12
    with pytest.raises(ValueError, match=r"coords \(N, 2\)"):
        EmbeddingExplorer.from_arrays(e.x, e.coords[:, :1], e.points, e.data, e.model)
    with pytest.raises(ValueError, match="10 rows for 150 embeddings"):
        EmbeddingExplorer.from_arrays(e.x, e.coords, e.points[:10], e.data, e.model)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['item'\]"):
        EmbeddingExplorer.from_arrays(e.x, e.coords, e.points.drop(columns="item"), e.data, e.model)


@pytest.fixture(scope="module")
def big(explorer):
    """The small explorer's 150 images as 120,000 points (above DENSITY_ABOVE): noisy copies, each near a
    seeded place of its image (not the small explorer's UMAP, so nothing below depends on how a map came out)."""
    from widgets.embedding_explorer import EmbeddingExplorer
    e, n = explorer, DENSITY_ABOVE + 20_000
    rng = np.random.default_rng(1)
    places = rng.normal(size=(len(e.points), 2))  # (150, 2)
    pick = rng.integers(0, len(e.points), n)
    coords = places[pick] + rng.normal(scale=0.02, size=(n, 2))
    x = e.x[pick] + 0.01 * rng.standard_normal((n, e.x.shape[1]), dtype=np.float32)
    return EmbeddingExplorer.from_arrays(x / np.linalg.norm(x, axis=1, keepdims=True), coords, e.points.iloc[pick],
                                         e.data, e.model)


def drawn_rows(e) -> np.ndarray:
    return np.concatenate([t.customdata for t in e.figure.data if t.customdata is not None])


def state_bytes(widget) -> int:
    """What the page receives for the widget: its JSON state and binary buffers (plotly's bundle left out)."""
    from ipywidgets.widgets.widget import _remove_buffers
    state = widget.get_state()
    state.pop("_plotly_esm")  # plotly's 5 MB page code, sent once whatever the figure
    rest, _, buffers = _remove_buffers(state)
    return len(json.dumps(rest)) + sum(memoryview(b).nbytes for b in buffers)


def selected_in_page(selector: dict) -> dict:
    """The message the page sends for a lasso or box selection, here one that holds no drawn point."""
    return {"new": {"event_type": "plotly_selected", "selector": selector,
                    "points": {"trace_indexes": [], "point_indexes": [], "xs": [], "ys": []}}}


def test_large_explorer_draws_a_sample_and_selects_every_point_in_data_space(big):
    from widgets.embedding_explorer import GRID_MAX, rows_in_box, rows_in_lasso
    e = big
    assert e.large and len(e.figure.layout.images) == 1 and e.figure.layout.images[0].layer == "below"
    drawn = drawn_rows(e)
    assert len(drawn) == SAMPLE_POINTS and state_bytes(e.figure) < 3_000_000  # not all 120,000 points
    np.testing.assert_array_equal(np.c_[e.figure.data[0].x, e.figure.data[0].y], e.coords[e.figure.data[0].customdata])
    row = np.setdiff1d(np.arange(len(e.points)), drawn)[0]  # a point that is not drawn
    (x, y), d = e.coords[row].tolist(), 1e-4 * float(np.ptp(e.coords))
    xs, ys = [x - d, x + d, x + d, x - d], [y - d, y - d, y + d, y + d]
    assert not len(rows_in_lasso(e.coords[drawn], xs, ys))  # nothing drawn inside
    e.figure._handler_js2py_pointsCallback(selected_in_page({"type": "lasso", "selector_state": {"xs": xs, "ys": ys}}))
    assert row in e.selection.index and e.selection.index.tolist() == brute_force_inside(e.coords, xs, ys)
    # a band of half the points in x, all in y: more than a sample, however the points lie
    (x0, x1), (y0, y1) = np.percentile(e.coords[:, 0], [25, 75]).tolist(), [e.coords[:, 1].min(), e.coords[:, 1].max()]
    e.figure._handler_js2py_pointsCallback(selected_in_page({"type": "box", "selector_state": {
        "xrange": [x0, x1], "yrange": [y0, y1]}}))
    inside = rows_in_box(e.coords, (x0, x1), (y0, y1))
    assert e.selection.index.tolist() == inside.tolist() and len(inside) > SAMPLE_POINTS
    assert f"{len(inside):,} selected (first {GRID_MAX} shown)" in e.grid.value and e.grid.value.count("<img") == GRID_MAX
    e.figure._handler_js2py_pointsCallback({"new": {"event_type": "plotly_deselect", "points": {
        "trace_indexes": [], "point_indexes": [], "xs": [], "ys": []}}})  # a double-click
    assert len(e.selection) == 0 and "0 selected" in e.grid.value


def test_large_explorer_redraws_the_points_in_view_and_keeps_a_query_on_top(big):
    from lab.studies import maps as em
    from plotly.callbacks import Points
    from widgets.embedding_explorer import rows_in_box
    e = big
    e.color_box.value = "colour"
    before = set(drawn_rows(e))
    # a band of a fifth of the points in x, all in y: more than a sample, fewer than all
    (x0, x1), (y0, y1) = np.percentile(e.coords[:, 0], [40, 60]).tolist(), [e.coords[:, 1].min(), e.coords[:, 1].max()]
    views, redraw = [], e.view
    e.view = lambda *ranges: views.append(ranges) or redraw(*ranges)
    e.figure._handler_js2py_relayout({"new": {"source_view_id": "page", "relayout_data": {  # a zoom in the page
        "xaxis.range[0]": x0, "xaxis.range[1]": x1, "yaxis.range[0]": y0, "yaxis.range[1]": y1}}})
    del e.view
    assert len(views) == 1  # one redraw per zoom, however often the map was recoloured
    inside, drawn = set(rows_in_box(e.coords, (x0, x1), (y0, y1))), set(drawn_rows(e))
    assert drawn <= inside and len(drawn) == min(SAMPLE_POINTS, len(inside)) > len(before & inside)
    assert before & inside <= drawn  # zooming in only adds points
    assert {t.name for t in e.figure.data} <= set(e.points["colour"])  # in the colouring shown

    hits = e.query("a photo of a red circle.")
    near, _ = em.nearest(e.x, e.model.encode_texts(["a photo of a red circle."], progress=False), 15)
    *rings, star, label = e.figure.layout.shapes
    assert len(rings) == len(hits) == 12 and label.label.text == "a photo of a red circle."
    np.testing.assert_allclose([(r.xanchor, r.yanchor) for r in rings], e.coords[hits.index], rtol=1e-6)
    box = e.coords[near[0]]  # (15, 2): the star sits among its nearest points
    assert (box.min(0) <= [star.xanchor, star.yanchor]).all() and ([star.xanchor, star.yanchor] <= box.max(0)).all()
    shapes = e.figure.layout.shapes
    e.view((x0 - 1, x1 + 1), (y0 - 1, y1 + 1))
    assert e.figure.layout.shapes == shapes  # the query's marks stay over the redrawn points

    layer = e.figure.data[0]
    layer._dispatch_on_click(Points(point_inds=[0], trace_index=0), None)
    row = int(layer.customdata[0])
    assert len(e.neighbours) == 8 and row not in e.neighbours.index
    assert e.detail.value.count("<img") == 9


def test_attribution_viewer_recomputes_on_inputs_and_reblends_on_opacity():
    from widgets.attribution_viewer import AttributionViewer
    v = AttributionViewer(n=10)
    assert v.method_box.value == "relevance" and v.result.maps.shape == (1, 1, 64, 64)
    assert v.view.value.count("<img") == 2 and v.layer_box.layout.display == "none"
    v.prompt2.value = "a photo of a blue square."
    assert v.result.maps.shape == (1, 2, 64, 64) and v.view.value.count("<img") == 3  # side by side
    before_maps, before_html = v.result.maps, v.view.value
    v.opacity.value = 0.9
    assert v.result.maps is before_maps and v.view.value != before_html  # re-blended, not recomputed
    v.method_box.value = "rollout"
    assert v.result.method == "rollout" and v.status.startswith("lab-vit-tiny / rollout")
    v.model_box.value = "lab-rn-tiny"
    assert v.method_box.value == "gradcam" and v.result.maps.shape == (1, 2, 96, 96)
    assert v.layer_box.layout.display is None
    v.layer_box.value = "layer3"
    assert v.status.startswith("lab-rn-tiny / gradcam")
    v.layer_box.value = "layer9"
    assert v.status.startswith("error:") and "layer9" in v.status and v.result.maps.shape == (1, 2, 96, 96)
    v.layer_box.value = "layer4"
    v.prompt.value, v.prompt2.value = "", ""
    assert v.status == "error: type a prompt"


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    from widgets.head_explorer import HeadExplorer
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("heads-cache")))
        return HeadExplorer(n=60, n_images=4)


def clicked_cell(x: str, y: str) -> dict:
    """The message the page sends for a click on a heat-map cell (plotly.js reports its [row, column])."""
    return {"new": {"event_type": "plotly_click", "points": {"trace_indexes": [0], "point_indexes": [[0, 0]],
                                                            "xs": [x], "ys": [y]}}}


def test_head_explorer_click_shows_the_heads_texts_ablation_and_maps(heads):
    import html
    import pandas as pd
    import lab
    from lab.data import load_dataset, prompts
    from lab.studies import decomposition as dc, textspan as ts, zeroshot
    e = heads
    cells = e.figure.data[0]
    z = np.asarray(cells.z, dtype=float)
    assert z.shape == (4, 4) and np.isfinite(z).all() and ((0 < z) & (z <= 1 + 1e-9)).all()  # one cell per head
    assert list(cells.x) == ["H0", "H1", "H2", "H3"] and list(cells.y) == ["L0", "L1", "L2", "L3"]
    assert e.detail.value == "" and e.maps is None  # nothing chosen yet

    # what the widget must show, computed here from the library alone
    model = lab.load_model("lab-vit-tiny")
    data = load_dataset("shapeworld", "", "test", 60, 0)
    d = dc.decompose_dataset(model, data, cache=False)
    pool = ts.world_pool()
    pool_emb = model.encode_texts(pool, progress=False)
    weights = zeroshot.class_weights(model, prompts.class_prompts(data.classes, ["a photo of a {}."]))
    ablations = dc.head_ablations(d, weights, data.labels["label"].to_numpy()).set_index("part")

    for layer, head in ((2, 2), (3, 1)):
        e.figure._handler_js2py_pointsCallback(clicked_cell(f"H{head}", f"L{layer}"))  # a click in the page
        span = ts.text_span(d.head(layer, head), pool_emb, pool, m=5)
        assert e.head == (layer, head)
        pd.testing.assert_frame_equal(e.texts, span.table)
        shown = e.detail.value
        assert f"<b>L{layer}.H{head}</b>" in shown and shown.count("<tr>") == 1 + len(span.table)
        positions = [shown.index(f">{html.escape(t)}</td>") for t in span.table["text"]]
        assert positions == sorted(positions)  # in pick order
        assert e.ablation["drop"] == ablations.loc[f"L{layer}.H{head}", "drop"]
        assert f"drop {100 * ablations.loc[f'L{layer}.H{head}', 'drop']:.1f} points" in shown
        assert e.maps.shape == (4, 64, 64) and np.isfinite(e.maps).all() and e.maps.min() == 0 and e.maps.max() == 1
        assert e.view.value.count("<img") == 8 and html.escape(span.table["text"][0]) in e.view.value  # image + overlay
        (box,) = e.figure.layout.shapes  # the clicked cell outlined
        assert (box.x0 + box.x1) / 2 == head and (box.y0 + box.y1) / 2 == layer
    # the maps: each patch's part of the head along the text; with the class token's, the head's whole part
    u = pool_emb[pool.index(e.texts["text"][0])]
    raw = e.shown.head_map(3, 1, u, (8, 8))
    np.testing.assert_allclose(raw.sum((1, 2)) + e.shown.tokens[:, 3, 1, 0] @ u, e.shown.head(3, 1) @ u, atol=1e-5)
    np.testing.assert_allclose(e.shown.parts, dc.decompose(model, [data.source(i) for i in range(4)]).parts, atol=1e-6)


def test_head_explorer_reads_a_timm_towers_grid(tmp_path, monkeypatch):
    """EVA02 (timm, patch 14 at 224: a 16 x 16 grid) decomposes, so the widget maps its heads too."""
    import lab
    from widgets.head_explorer import HeadExplorer
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path))
    eva = lab.load_model("lab-test-eva02-nano", pretrained="random", device="cpu")
    e = HeadExplorer(model=eva, n=8, n_images=2, last=1, m=2)
    assert e.grid == (16, 16)
    e.select(e.d.layers - 1, 0)
    assert e.maps.shape == (2, 224, 224) and np.isfinite(e.maps).all()


def test_head_explorer_cells_and_refusals(heads):
    from lab.errors import BadInput
    from widgets.head_explorer import HeadExplorer, cell_head, heat
    assert cell_head("H2", "L3") == (3, 2)
    maps = heat(np.arange(8, dtype=np.float32).reshape(2, 2, 2), (6, 4))
    assert maps.shape == (2, 6, 4) and (maps.min((1, 2)) == 0).all() and (maps.max((1, 2)) == 1).all()
    with pytest.raises(BadInput, match="no TextSpan for L7.H0"):
        heads.select(7, 0)
    with pytest.raises(BadInput, match="class-token ViT"):
        HeadExplorer(model="lab-rn-tiny", n=8)
