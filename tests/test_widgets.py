"""Widgets driven through their ipywidgets values, as a user's clicks would set them (no browser)."""
import datetime as dt
import io

import numpy as np
import pytest
from PIL import Image

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
    assert [t.name for t in e.figure.data][-2:] == ["nearest", "query"] and "nearest to" in e.grid.value
    e.color_box.value = "colour"
    assert {t.name for t in e.figure.data} == set(e.points["colour"])  # recoloured, query markers cleared
    assert e.projection.coords is e.coords  # the map itself was not recomputed


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
