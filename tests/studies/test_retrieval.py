"""Retrieval: recall@k against a direct computation, the tie rule, the caption-file parsers and the
world's caption set (exact and consistent positives)."""
import json

import numpy as np
import pytest

from lab.studies import retrieval
from lab.data import captions
from lab.errors import BadInput


def direct_recall(scores, positives, k):
    top = np.argsort(-scores, axis=1)[:, :k]
    return np.mean([positives[q, top[q]].any() for q in range(len(scores))])


@pytest.mark.parametrize("per_image", [1, 3])
def test_recall_at_k_equals_a_direct_computation_on_tie_free_embeddings(per_image):
    rng = np.random.default_rng(per_image)
    img = rng.normal(size=(40, 8))
    owner = np.repeat(np.arange(40), per_image)
    txt = img[owner] + 1.5 * rng.normal(size=(len(owner), 8))
    scores = txt @ img.T  # (T, N)
    pos = owner[:, None] == np.arange(40)[None, :]
    for s, p in ((scores, pos), (scores.T, pos.T)):  # text->image, image->text (multi-positive)
        got = retrieval.recall_at_k(s, p, ks=(1, 5, 10))
        assert got == {k: pytest.approx(direct_recall(s, p, k)) for k in (1, 5, 10)}
    assert 0 < got[1] < got[10] < 1


def test_tie_rule_counts_ties_against_the_query_and_reports_them():
    scores = np.array([[0.9, 0.9, 0.1],    # positive 0 ties with negative 1: rank 2
                       [0.2, 0.8, 0.8],    # positives 1 and 2 tie with each other only: rank 1
                       [0.5, 0.1, 0.7]])   # positive 1 below both: rank 3
    pos = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0]], bool)
    r, tied = retrieval.ranks(scores, pos)
    assert r.tolist() == [2, 1, 3] and tied.tolist() == [True, False, False]
    s = retrieval.summary(scores, pos, ks=(1, 2))
    assert s["R@1"] == pytest.approx(1 / 3) and s["R@2"] == pytest.approx(2 / 3)
    assert s["median_rank"] == 2 and s["tied"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no positive"):
        retrieval.ranks(scores, np.zeros_like(pos))


def test_flickr_parser_keeps_commas_and_six_captions(tmp_path):
    f = tmp_path / "flickr30k_test_karpathy.txt"
    f.write_text("image,caption\n1000.jpg,A dog, brown and white, runs.\n1000.jpg,A dog runs.\n"
                 + "".join(f"2000.jpg,Caption {i}.\n" for i in range(6)) + "\n")
    table = captions.read_flickr_annotations(f)
    assert table["1000.jpg"] == ["A dog, brown and white, runs.", "A dog runs."] and len(table["2000.jpg"]) == 6
    cs = captions.flickr30k(tmp_path)
    assert len(cs.images) == 2 and cs.image_of.tolist() == [0, 0] + [1] * 6
    assert cs.images.source(1) == str(tmp_path / "2000.jpg") and list(cs.positives()) == ["exact"]
    f.write_text("header\nno image here\n")
    with pytest.raises(BadInput, match="line 2"):
        captions.read_flickr_annotations(f)
    with pytest.raises(BadInput, match="does not exist"):
        captions.mscoco(tmp_path)


def test_coco_parser_reads_the_caption_json(tmp_path):
    data = {"images": [{"id": 7, "file_name": "COCO_val2014_7.jpg"}, {"id": 3, "file_name": "COCO_val2014_3.jpg"}],
            "annotations": [{"image_id": 3, "id": 1, "caption": "A cat, asleep."}]
            + [{"image_id": 7, "id": 10 + i, "caption": f"Caption {i} "} for i in range(6)]}
    (tmp_path / "coco_test_karpathy.json").write_text(json.dumps(data))
    cs = captions.mscoco(tmp_path)
    assert cs.captions[:2] == ["Caption 0", "Caption 1"] and cs.captions[-1] == "A cat, asleep."
    assert cs.image_of.tolist() == [0] * 6 + [1] and cs.images.source(1) == str(tmp_path / "val2014" / "COCO_val2014_3.jpg")
    (tmp_path / "coco_test_karpathy.json").write_text(json.dumps({"images": []}))
    with pytest.raises(BadInput, match="annotations"):
        captions.mscoco(tmp_path)


def test_world_captions_state_their_attributes_and_consistent_positives_hold():
    cs = captions.world_captions(n_images=60)
    assert len(cs.captions) == 300 and np.bincount(cs.image_of).tolist() == [5] * 60
    pos = cs.positives()
    assert (pos["exact"].sum(1) == 1).all() and (pos["consistent"] >= pos["exact"]).all()
    assert pos["consistent"].sum() > pos["exact"].sum()  # the grammar repeats
    labels = cs.images.labels
    for t in range(0, 300, 7):  # every stated value is in the caption's own image and in the words
        said = cs.stated.iloc[t].dropna()
        row = labels.iloc[cs.image_of[t]]
        assert said["shape"] == row["shape"] and said["colour"] == row["colour"] and said["count"] == row["count"]
        if "size" in said:
            assert said["size"] == row["size"]
        if "position" in said:
            assert said["position"] in cs.captions[t] and row["count"] == 1
        for n in np.flatnonzero(pos["consistent"][t]):  # consistent images share every stated attribute
            other = cs.image_attributes.iloc[n]
            assert all(other[a] == v for a, v in said.items())
    groups = cs.named()
    assert {"shape+colour only", "size", "position", "size+position"} <= set(groups)


def test_notebook_05_runs_through_papermill_and_its_recall_matches_the_cache(tmp_path, monkeypatch):
    from pathlib import Path

    import pandas as pd

    import lab
    from lab.report import run_report
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    nb = Path(__file__).parents[2] / "notebooks" / "05_probes_fewshot_retrieval.ipynb"
    params = {"models": ["lab-vit-tiny"], "tasks": ["shape", "count"], "n_train": 120, "n_val": 60, "n_test": 80,
              "shots": [1, 2], "seeds": [0], "n_caption_images": 40, "device": "cpu"}  # as the model below
    entry = run_report([nb], params, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    folder = tmp_path / "out" / "05_probes_fewshot_retrieval"
    probes = pd.read_csv(folder / "probe_vs_zero_shot.csv")
    assert list(probes["task"]) == ["shape", "count"] and set(pd.read_csv(folder / "few_shot.csv")["k"]) == {1, 2}
    table = pd.read_csv(folder / "retrieval.csv").set_index(["direction", "positives"])
    model = lab.load_model("lab-vit-tiny", cache=tmp_path / "cache", device="cpu")
    cs = captions.world_captions(40)
    img, txt = model.encode_images(cs.images, progress=False), model.encode_texts(cs.captions, progress=False)
    pos = cs.positives()["exact"]
    assert table.loc[("text→image", "exact"), "R@1"] == pytest.approx(direct_recall(txt @ img.T, pos, 1))
    assert entry["run"]["results"]["lab-vit-tiny/text→image/exact/R@1"] == pytest.approx(table.loc[("text→image", "exact"), "R@1"])
