"""Stored embeddings as a dataset: a points file round trip, its errors, and halves of it."""
import numpy as np
import pytest

from lab.data import PointFile, load_dataset, points_embeddings, save_points
from lab.errors import BadInput


def test_points_file_round_trip_and_halves(tmp_path):
    emb = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    file = save_points(tmp_path / "p.npz", emb, [0, 1] * 5, [f"img{i}.png" for i in range(10)], ["cat", "dog"],
                       model="lab-vit-tiny")
    data = PointFile(file)
    assert len(data) == 10 and data.classes == ["cat", "dog"] and data.model == "lab-vit-tiny"
    assert data.source(3) == "img3.png" and data.labels["label"].tolist() == [0, 1] * 5
    np.testing.assert_array_equal(points_embeddings(data), emb)
    half = load_dataset("points", str(file), "test", 0, 0)
    assert len(half) == 5 and half.classes == ["cat", "dog"]
    np.testing.assert_array_equal(points_embeddings(half), emb[half.indices])  # rows follow the items
    assert [half.source(i) for i in range(5)] == [f"img{i}.png" for i in half.indices]
    assert len(load_dataset("points", str(file), "all", 0, 0)) == 10


def test_points_errors_name_the_fix(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        PointFile(tmp_path / "missing.npz")
    np.savez(tmp_path / "bare.npz", emb=np.zeros((2, 3)))
    with pytest.raises(BadInput, match="save_points"):
        PointFile(tmp_path / "bare.npz")
    with pytest.raises(BadInput, match="one label and one path per row"):
        save_points(tmp_path / "x.npz", np.zeros((3, 2)), [0, 1], ["a", "b", "c"], ["k"])
    with pytest.raises(BadInput, match="use dataset='points'"):
        points_embeddings(load_dataset("shapeworld", n=4))
    with pytest.raises(BadInput, match="needs data_root"):
        load_dataset("points")
