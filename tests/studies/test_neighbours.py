"""k-NN graphs (exact against brute force, the HNSW graph's recall measured and reported), the
vote, and the maps that use them at scale: UMAP on the lab's graph, fit on a sample and place the
rest, k-NN accuracy from the graph, trustworthiness on a sample with its interval."""
import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from lab.studies import maps as em
from lab.studies import neighbours as nb


def clustered(n, d=32, k=12, seed=0, spread=0.35):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(k, d))[y] + spread * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def brute(x, k, metric):
    d = 1 - x @ x.T if metric == "cosine" else np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_graph_is_brute_force(metric, tmp_path):
    x, _ = clustered(600)
    x[5] = x[7]  # a duplicate: ties go to the lower row, and neither row is its own neighbour
    g = nb.knn_graph(x, 8, metric, cache=tmp_path)
    assert g.exact and g.how == "exact" and g.indices.shape == (600, 8) and g.recall == 1.0
    np.testing.assert_array_equal(g.indices, brute(x, 8, metric))
    assert (g.indices != np.arange(600)[:, None]).all() and (np.diff(g.distances, axis=1) >= -1e-6).all()
    rows, dists = g.with_self()  # umap-learn's layout
    assert (rows[:, 0] == np.arange(600)).all() and (dists[:, 0] == 0).all() and rows.shape == (600, 9)
    assert nb.knn_graph(x, 8, metric, cache=tmp_path).indices.tolist() == g.indices.tolist()  # from the cache


def test_approximate_graph_measures_and_states_its_recall(tmp_path):
    x, _ = clustered(6000)
    g = nb.knn_graph(x, 10, exact=False, cache=tmp_path)
    truth = brute(x, 10, "cosine")
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(g.indices, truth)])
    assert not g.exact and g.sample == nb.RECALL_SAMPLE and recall > 0.9
    assert abs(g.recall - recall) < 0.03  # the sample's recall estimates the whole graph's
    assert g.how == f"approximate (recall@10 {g.recall:.3f} on 1,000 rows)"
    assert (g.indices != np.arange(6000)[:, None]).all()
    with pytest.raises(ValueError, match="drop failed"):
        nb.knn_graph(np.full((20, 4), np.nan))
    with pytest.raises(ValueError, match="metric"):
        nb.knn_graph(x, metric="manhattan")


def test_vote_and_knn_accuracy_from_a_graph_match_the_exact_path():
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    assert nb.knn_vote(neighbours, np.array([0, 1, 1, 0])).tolist() == [1, 0, 0, 0]  # a tie goes to label 0
    x, y = clustered(800)
    exact = em.knn_accuracy(x, y, 10, metric="cosine", cache=False)
    g = nb.knn_graph(x, 15, cache=False)
    assert em.knn_accuracy(x, y, 10, graph=g) == exact
    with pytest.raises(ValueError, match="at least k=20"):
        em.knn_accuracy(x, y, 20, graph=g)


def test_trustworthiness_interval_holds_the_exact_value():
    x, _ = clustered(1500, d=16)
    low = x[:, :2] + 0.05 * np.random.default_rng(1).normal(size=(1500, 2)).astype(np.float32)
    exact = em.trustworthiness_interval(x, low, 10, sample=None, cache=False)
    assert exact["value"] == exact["low"] == exact["high"] and exact["queries"] == 1500
    assert exact["value"] == pytest.approx(sk_trustworthiness(x, low, n_neighbors=10), abs=1e-6)
    sampled = em.trustworthiness_interval(x, low, 10, sample=300, cache=False)
    assert sampled["queries"] == 300 and sampled["low"] < sampled["value"] < sampled["high"]
    assert sampled["low"] <= exact["value"] <= sampled["high"]


def test_umap_at_scale_uses_the_graph_and_a_sample_fit_places_every_point(tmp_path):
    x, y = clustered(5000)
    full = em.project(x, "umap", seed=0, cache=tmp_path, reproducible=False)  # above UMAP_OWN_KNN_UP_TO
    assert full.params["knn"] == "lab" and full.params["reproducible"] is False
    assert np.isfinite(full.coords).all() and em.knn_accuracy(full.coords, y, 10, cache=False) > 0.9
    placed = full.transform(x[:3])  # no umap index: placed by neighbours instead, near the points themselves
    assert np.linalg.norm(placed - full.coords[:3], axis=1).max() < np.ptp(full.coords, axis=0).max() / 10
    part = em.project(x, "umap", seed=0, cache=tmp_path, fit_sample=1000)
    assert part.params["fit_sample"] == 1000 and part.coords.shape == (5000, 2) and np.isfinite(part.coords).all()
    assert em.knn_accuracy(part.coords, y, 10, cache=False) > 0.9  # placed points land among their class
    small = em.project(x[:500], "umap", seed=0, cache=tmp_path)  # the default maps: umap-learn's own neighbours
    assert "knn" not in small.params and "reproducible" not in small.params
