"""Embedding maps: projection cache, placing new points, the faithfulness measures against
scikit-learn, the figures (a million points as a density image), and notebook 02 through papermill."""
import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.colors
import pytest
from PIL import Image
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from lab.studies import maps as em
from lab.report import run_report
from figures.maps import DENSITY_ABOVE, SAMPLE_POINTS, density_image, map_extent, scatter_map

NB02 = Path(__file__).parents[2] / "notebooks" / "02_embedding_maps.ipynb"


def blobs(n=120, d=16, classes=3, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, d)) * spread + 3 * np.eye(classes, d)[y]
    return x.astype(np.float32), y


def test_projection_cache_hit_and_miss(tmp_path):
    x, _ = blobs()
    first = em.project(x, "pca", cache=tmp_path)
    again = em.project(x, "pca", cache=tmp_path)
    assert not first.cached and again.cached and again.key == first.key
    np.testing.assert_array_equal(first.coords, again.coords)
    assert not em.project(x, "pca", n_components=3, cache=tmp_path).cached  # other parameters: a miss
    assert not em.project(x[:-1], "pca", cache=tmp_path).cached  # other embeddings: a miss
    u = em.project(x, "umap", n_neighbors=10, cache=tmp_path)
    u2 = em.project(x, "umap", n_neighbors=10, cache=tmp_path)  # how fast a hit is: benchmarks/bench_maps.py
    assert not u.cached and u2.cached
    np.testing.assert_array_equal(u.coords, u2.coords)
    assert not em.project(x, "umap", n_neighbors=10, min_dist=0.5, cache=tmp_path).cached
    with pytest.raises(ValueError, match="drop failed"):
        em.project(np.full((5, 3), np.nan))


def test_new_points_land_among_their_class_on_the_built_in_world(tmp_path):
    import lab
    from lab.data.shapeworld import WorldDataset
    model = lab.load_model("lab-vit-tiny", device="cpu")
    data = WorldDataset("test", 300)
    x, y = model.encode_images(data, progress=False), data.labels["label"].to_numpy()
    fit, new = np.arange(250), np.arange(250, 300)
    proj = em.project(x[fit], "umap", n_neighbors=10, cache=tmp_path)
    for placed in (proj.transform(x[new]), proj.place(x[new])):
        d = ((placed[:, None, :] - proj.coords[None, :, :]) ** 2).sum(-1)  # (50, 250)
        votes = y[fit][np.argsort(d, axis=1)[:, :5]]
        majority = np.array([np.bincount(v).argmax() for v in votes])
        assert (majority == y[new]).mean() >= 0.8
    # a transform read back from the cache (fresh Projection, refit once) gives the same coordinates
    again = em.project(x[fit], "umap", n_neighbors=10, cache=tmp_path)
    np.testing.assert_allclose(again.transform(x[new]), proj.transform(x[new]))


def test_knn_accuracy_and_trustworthiness_match_scikit_learn():
    x, y = blobs(spread=1.5)
    loo = cross_val_predict(KNeighborsClassifier(5), x, y, cv=LeaveOneOut())
    assert em.knn_accuracy(x, y, k=5) == pytest.approx((loo == y).mean())
    low = em.project(x, "pca", cache=False).coords
    assert em.trustworthiness(x, low, k=5, sample=None) == pytest.approx(sk_trustworthiness(x, low, n_neighbors=5))
    sampled = em.trustworthiness(x, low, k=5, sample=60)
    assert abs(sampled - sk_trustworthiness(x, low, n_neighbors=5)) < 0.05


def test_modality_gap_nearest_and_clusters():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(100, 8))
    gap = em.modality_gap(img, img + 5.0)
    assert gap["centroid_distance"] == pytest.approx(5.0 * np.sqrt(8)) and gap["linear_separability"] == 1.0
    assert em.modality_gap(img[:50], img[50:])["linear_separability"] < 0.75
    emb = np.array([[1.0, 0], [0, 1.0], [np.nan, np.nan], [0.6, 0.8]])
    idx, sims = em.nearest(emb, np.array([[0.0, 1.0]]), k=3)
    assert idx.tolist() == [[1, 3, 0]] and sims[0].tolist() == pytest.approx([1.0, 0.8, 0.0])
    x, y = blobs(classes=3, spread=0.1)
    clusters, exemplars = em.cluster_exemplars(x[:, :3], n_clusters=3, per_cluster=4)
    assert pd.crosstab(clusters, y).gt(0).sum(axis=1).eq(1).all()  # every cluster is one class
    assert exemplars.groupby("cluster").size().tolist() == [4, 4, 4]


def test_measures_are_cached_by_their_inputs(tmp_path):
    x, y = blobs()
    names = np.array(["cat", "dog", "café"])[y]  # string labels are keyed by their text
    first = em.knn_accuracy(x, names, 5, cache=tmp_path)
    assert len(list((tmp_path / "projections").glob("knn-*.json"))) == 1
    assert em.knn_accuracy(x, names, 5, cache=tmp_path) == first == em.knn_accuracy(x, names, 5, cache=False)
    next((tmp_path / "projections").glob("knn-*.json")).write_text("0.125")  # a hit reads the file back
    assert em.knn_accuracy(x, names, 5, cache=tmp_path) == 0.125
    em.knn_accuracy(x, names[::-1], 5, cache=tmp_path)  # other labels, other entry
    em.knn_accuracy(x, names, 3, cache=tmp_path)  # other k, other entry
    assert len(list((tmp_path / "projections").glob("knn-*.json"))) == 3
    gap = em.modality_gap(x[:60], x[60:], cache=tmp_path)
    assert em.modality_gap(x[:60], x[60:], cache=tmp_path) == gap == em.modality_gap(x[:60], x[60:], cache=False)
    assert len(list((tmp_path / "projections").glob("modality_gap-*.json"))) == 1
    clusters, exemplars = em.cluster_exemplars(x[:, :2], 3, 4, cache=tmp_path)
    again, exemplars_again = em.cluster_exemplars(x[:, :2], 3, 4, cache=tmp_path)
    np.testing.assert_array_equal(clusters, again)
    pd.testing.assert_frame_equal(exemplars, exemplars_again)


def test_image_grid_is_one_mosaic_with_captions():
    from figures.images import image_grid
    pictures = [np.full((32, 48, 3), v, np.uint8) for v in (0, 80, 160, 240, 255)]
    fig = image_grid(pictures, ["a", "b", "c", "d", "e"], cols=3)
    image, hover = fig.data
    assert image.type == "image" and image.source.startswith("data:image/png;base64,")
    assert [a.text for a in fig.layout.annotations] == ["a", "b", "c", "d", "e"]
    assert list(hover.hovertext) == ["a", "b", "c", "d", "e"] and len(set(hover.y)) == 2  # two rows


def test_scatter_map_traces_carry_row_ids_and_a_colour_dropdown():
    points = pd.DataFrame({"class": ["a", "b", "a", "b"], "colour": ["red", "red", "blue", "blue"],
                           "modality": ["image", "image", "image", "text"]})
    coords = np.arange(8, dtype=float).reshape(4, 2)
    fig = scatter_map(coords, points, ["class", "colour"], hover=["class"])
    rows = sorted(int(r) for t in fig.data if t.visible for r in t.customdata)
    assert rows == [0, 1, 2, 3]  # first colouring visible, every point once
    hover = {int(r): h for t in fig.data if t.visible for r, h in zip(t.customdata, t.hovertext)}
    assert hover == {0: "class: a", 1: "class: b", 2: "class: a", 3: "class: b"}
    assert [t.name for t in fig.data if t.visible] == ["a", "b", "b (text)"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["colour: class", "colour: colour"]
    with pytest.raises(KeyError, match="not in the point table"):
        scatter_map(coords, points, "shape")


def clusters(n: int, seed: int = 0):
    """n points in four class clusters, a random colour each and a continuous `size` -> (coords (n, 2), points)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 4, n)
    coords = (np.array([[-6, -6], [6, -6], [-6, 6], [6, 6]])[k] + rng.normal(size=(n, 2))).astype(np.float32)
    points = pd.DataFrame({"class": np.array(["circle", "square", "star", "cross"])[k],
                           "colour": rng.choice(["red", "blue"], n), "size": rng.random(n), "item": np.arange(n)})
    return coords, points


def png_pixels(source: str) -> np.ndarray:
    """The RGBA pixels (H, W, 4) of a PNG data URI."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGBA"))


def test_scatter_map_of_a_million_points_is_a_density_image_and_a_sample():
    coords, points = clusters(1_000_000)
    fig = scatter_map(coords, points, ["class", "colour"], hover=["class", "item"])
    assert len(fig.to_json()) <= 5_000_000  # 56 MB when every point was drawn
    first, second = fig.layout.images
    assert first.visible and not second.visible and first.layer == "below" and first.sizing == "stretch"
    x0, x1, y0, y1 = map_extent(coords)
    assert (first.x, first.y, first.sizex, first.sizey) == pytest.approx((x0, y1, x1 - x0, y1 - y0))
    assert list(fig.layout.xaxis.range) == pytest.approx([x0, x1]) and list(fig.layout.yaxis.range) == pytest.approx([y0, y1])
    drawn = [t for t in fig.data if t.visible]
    rows = np.concatenate([t.customdata for t in drawn])
    assert len(rows) == SAMPLE_POINTS == len(set(rows))  # at most SAMPLE_POINTS, each once
    assert {t.name for t in drawn} == set(points["class"])  # every class (not ordered by the data's own seed)
    for t in drawn:  # customdata: rows of the full table, with their positions, classes and hover text
        np.testing.assert_array_equal(np.c_[t.x, t.y], coords[t.customdata])
        assert set(points["class"][t.customdata]) == {t.name}
        assert list(t.hovertext) == [f"class: {c}<br>item: {i}" for c, i in points.iloc[t.customdata][["class", "item"]].values]
    assert sorted(np.concatenate([t.customdata for t in fig.data if not t.visible])) == sorted(rows)  # one sample
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.args[1]["images[0].visible"] for b in buttons] == [True, False]  # the dropdown switches the image
    assert [b.args[1]["images[1].visible"] for b in buttons] == [False, True]
    pixels = png_pixels(first.source)  # (600, 900, 4): each cluster's centre has its class's colour, in the legend's order
    for centre, name in zip([(-6, -6), (6, -6), (-6, 6), (6, 6)], ["circle", "square", "star", "cross"]):
        col, row = int((centre[0] - x0) / (x1 - x0) * 900), int((y1 - centre[1]) / (y1 - y0) * 600)
        legend = next(t for t in drawn if t.name == name).marker.color
        assert np.abs(pixels[row, col, :3].astype(int) - list(bytes.fromhex(legend[1:]))).max() <= 8, name
        assert pixels[row, col, 3] > 200  # dense: nearly opaque
    assert pixels[300, 450, 3] == 0  # the empty middle of the map is transparent


def test_density_image_mixes_categories_by_count_and_averages_a_continuous_column():
    coords = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [1.5, 0.5]], dtype=np.float32)  # three in pixel (0, 1)
    image = density_image(coords, np.array([0, 0, 1, 1]), ["#FF0000", "#0000FF"], extent=(0, 2, 0, 1), px=(2, 1))
    pixels = png_pixels(image["source"])  # (1, 2, 4)
    assert np.abs(pixels[0, 0, :3].astype(int) - [170, 0, 85]).max() <= 2  # two red, one blue
    assert np.abs(pixels[0, 1, :3].astype(int) - [0, 0, 255]).max() <= 2 and pixels[0, 0, 3] > pixels[0, 1, 3]
    values = np.array([0.0, 1.0, np.nan, 0.5])  # NaN left out: the first pixel's mean is 0.5, as the second's
    image = density_image(coords, values, "Viridis", extent=(0, 2, 0, 1), px=(2, 1))
    middle = plotly.colors.unlabel_rgb(plotly.colors.sample_colorscale("Viridis", [0.5])[0])
    assert np.abs(png_pixels(image["source"])[0, :, :3].astype(int) - middle).max() <= 3


def test_scatter_map_below_the_threshold_draws_every_point():
    coords, points = clusters(2000)
    fig = scatter_map(coords, points, ["class", "size"], hover=["class"])
    assert not fig.layout.images and fig.layout.xaxis.range is None  # as before: every point, no image
    assert sorted(int(r) for t in fig.data if t.visible for r in t.customdata) == list(range(2000))
    assert DENSITY_ABOVE == 100_000
    dense = scatter_map(coords, points, ["class", "size"], hover=["class"], max_points=1000)  # the threshold moved
    assert len(dense.layout.images) == 2 and sum(len(t.x) for t in dense.data if t.visible) == 2000
    assert dense.data[-1].marker.cmax == pytest.approx(points["size"].max())  # the sample on the column's scale
    flat = scatter_map(np.c_[coords, coords[:, :1]], points, "class", max_points=1000)  # 3-D: never an image
    assert not flat.layout.images and sum(len(t.x) for t in flat.data) == 2000


def test_notebook_runs_through_papermill(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    manifest = run_report([NB02], {"n_samples": 150, "n_neighbors": 10, "n_clusters": 3, "queries": "a red circle",
                                   "device": "cpu"}, {}, tmp_path / "out", progress=False)
    entry = manifest["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    results = entry["run"]["results"]
    assert results["k-NN accuracy, full embedding (cosine)"] > 0.8
    assert 0.5 < results["trustworthiness of the map (k=10)"] <= 1.0
    assert any("cluster_2" in f for f in entry["figures"]) and any("nearest_a_red_circle" in f for f in entry["figures"])


def test_point_table_leaves_out_failed_items_and_names_classes():
    from types import SimpleNamespace
    data = SimpleNamespace(labels=pd.DataFrame({"label": [0, 1, -1, 1], "shape": ["a", "b", "c", "d"]}),
                           classes=["circle", "square"])
    emb = np.arange(8, dtype=np.float32).reshape(4, 2)
    emb[1] = np.nan  # a failed image
    points, x = em.point_table(data, emb)
    assert list(points["item"]) == [0, 2, 3] and list(points["class"]) == ["circle", "?", "square"]
    assert list(points["shape"]) == ["a", "c", "d"] and np.array_equal(x, emb[[0, 2, 3]])


def test_notebook_maps_stored_points_at_scale(tmp_path, monkeypatch):
    """25,000 stored points (above the exact limits): the whole file mapped, UMAP fitted on a
    sample and the rest placed, prompts placed in the map, and every number says how it was computed."""
    import lab
    from lab.data import load_dataset, save_points
    from lab.data.shapeworld import materialize
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    data = load_dataset("shapeworld", n=200)
    folder = materialize(data, tmp_path / "images")
    emb = lab.load_model("lab-vit-tiny", device="cpu").encode_images(data, progress=False)  # (200, D)
    rng = np.random.default_rng(0)
    pick = np.arange(25_000) % 200
    x = emb[pick] + 0.02 * rng.normal(size=(25_000, emb.shape[1])).astype(np.float32)
    paths = [str(folder / data.labels.loc[i, "shape"] / f"{i:06d}.png") for i in pick]
    file = save_points(tmp_path / "points.npz", x / np.linalg.norm(x, axis=1, keepdims=True), data.labels["label"][pick],
                       paths, data.classes, "lab-vit-tiny")
    manifest = run_report([NB02], {"dataset": "points", "data_root": str(file), "n_samples": 0, "fit_sample": 3000,
                                   "reproducible": False, "n_clusters": 3, "queries": "a red circle",
                                   "trust_sample": 300, "device": "cpu"}, {}, tmp_path / "out", progress=False)
    entry = manifest["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    run = entry["run"]
    assert run["projection"]["fit_sample"] == 3000 and run["projection"]["knn"] == "lab"
    assert run["results"]["k-NN accuracy, full embedding (cosine)"] > 0.8
    assert run["how"]["k-NN accuracy, full embedding (cosine)"].startswith("approximate (recall@14 ")
    assert "300 query points, 95% interval" in run["how"]["trustworthiness of the map (k=10)"]
    assert run["dataset"]["n"] == 25_000  # every stored point, not a held-out half
