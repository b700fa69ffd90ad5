"""The Ray engine (lab.dist) on a real local multi-node cluster: a head node and two worker nodes on
this machine, each encoder pinned to a worker node by a custom resource; logical CPUs (1) stay below
the physical ones, so nothing starves. One cluster for the module; no Ray process outlives it.

Ray is the `dist` extra: without it these tests skip locally, and fail under CI (CI=true).
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import lab
from lab.dist import runs
from lab.cli import main as cli_main
from conftest import count_forward, write_images

if os.environ.get("CI"):
    import ray  # noqa: F401  a CI without the dist extra fails here instead of skipping
else:
    pytest.importorskip("ray", reason="the dist extra is not installed: pip install 'clip-lab[dist]'")

from lab import dist  # noqa: E402

ROOT = Path(__file__).parents[2]
ENCODER = {"lab_encoder": 1}  # only the two worker nodes have it
ON_WORKERS = dict(workers=2, cpus_per_worker=0, resources=ENCODER, batch_size=4)


def _ray_children():
    import psutil
    return [p for p in psutil.Process().children(recursive=True)
            if any(n in " ".join(p.cmdline()) for n in ("raylet", "gcs_server", "ray::", "default_worker"))]


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                      "object_store_memory": 150 << 20})
    nodes = [c.add_node(num_cpus=0, resources=ENCODER, object_store_memory=100 << 20, wait=False) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c, {n.node_id for n in nodes}
    ray.shutdown()
    c.shutdown()
    assert not ray.is_initialized()
    import psutil
    _, alive = psutil.wait_procs(_ray_children(), timeout=15)  # reaps them too
    assert not alive, f"Ray processes outlived the cluster: {[p.cmdline()[:2] for p in alive]}"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder of 24 images and one corrupt file; the same bytes as three webdataset shards."""
    root = tmp_path_factory.mktemp("dist")
    paths = write_images(root / "imgs", 24)
    (root / "imgs" / "img9999.png").write_bytes(b"\x89PNG not really")
    files = sorted((root / "imgs").iterdir())
    (root / "shards").mkdir()
    for s in range(3):
        with tarfile.open(root / "shards" / f"{s:05d}.tar", "w") as tf:
            for f in files[s * 9:(s + 1) * 9]:
                tf.add(f, arcname=f"sample{f.stem[3:]}.png")
            tf.addfile(tarfile.TarInfo(f"sample{s}.txt"), io.BytesIO(b""))  # captions are not images
    ref_model = lab.load_model("lab-vit-tiny", cache=root / "ref-cache", device="cpu")  # as the CPU workers
    with pytest.warns(UserWarning, match="1 of 25 images"):
        ref, failures = ref_model.encode_images([str(f) for f in files], cache=False, progress=False,
                                                return_failures=True)
    return dict(root=root, paths=paths, files=[str(f) for f in files], ref=ref, failures=failures)


def _db_state(cache):
    """Bytes of the SQLite database and its WAL: what an engine stage must leave alone."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(cache.directory.glob("*.sqlite3*"))
            if not p.name.endswith("-shm")}


@pytest.mark.filterwarnings("ignore:1 of 25 images")
def test_folder_runs_on_both_worker_nodes_and_matches_in_process(cluster, data, tmp_path):
    _, worker_nodes = cluster
    cache = lab.EmbeddingCache(tmp_path / "cache")
    model = lab.load_model("lab-vit-tiny", cache=cache, device="cpu")  # the CPU workers load it as the driver did
    before = _db_state(cache)
    out = tmp_path / "run"
    manifest = dist.encode_images(model, [str(data["root"] / "imgs")], out, wave_size=10, cache_import=False,
                                  progress=False, **ON_WORKERS)
    assert _db_state(cache) == before  # the engine stage never wrote the SQLite cache
    assert manifest["status"] == "complete" and manifest["last_run"]["dispatched"] == 25
    table, emb = runs.read_run(out)
    assert table["item"].tolist() == data["files"]  # input order
    engine = table[table["origin"] == "engine"]
    assert set(engine["node"]) == worker_nodes  # rows from both worker nodes, none from the head
    assert os.getpid() not in set(engine["pid"]) and engine["pid"].nunique() == 2
    np.testing.assert_allclose(emb, data["ref"], atol=1e-5)  # NaN rows compare equal
    assert {r.item: r.error for r in table[~table["ok"]].itertuples()} == \
        {f.item: f.reason for f in data["failures"]}
    meta = runs.part_meta(runs.parts(out)[0])
    assert meta["fingerprint"] == model.fingerprint and len(runs.parts(out)) == 3
    again = dist.encode_images(model, [str(data["root"] / "imgs")], out, wave_size=10, progress=False,
                               cache_import=False, **ON_WORKERS)
    assert again["last_run"]["dispatched"] == 0 and again["last_run"]["waves_written"] == 0
    with pytest.raises(lab.LabError, match="differs in its inputs"):
        dist.encode_images(model, data["files"][:5], out, wave_size=10, progress=False)
    with pytest.raises(lab.LabError, match="differs in its model"):
        dist.encode_images("lab-rn-tiny", [str(data["root"] / "imgs")], out, wave_size=10, progress=False)
    assert runs.import_run(out, cache)["rows"] == 24 and runs.import_run(out, cache)["rows"] == 24  # idempotent
    fresh = lab.load_model("lab-vit-tiny", cache=cache, device="cpu")
    good = data["files"][:24]  # a failed item is tried again in-process: it was never cached
    np.testing.assert_allclose(fresh.encode_images(good, progress=False), data["ref"][:24], atol=1e-5)
    assert not fresh.built  # after the import an in-process encode computes (and reads) nothing
    cached = dist.encode_images(model, good, tmp_path / "again", progress=False, **ON_WORKERS)
    assert cached["last_run"]["dispatched"] == 0 and cached["last_run"]["from_cache"] == 24  # the driver skips them
    with pytest.raises(lab.LabError, match="not the driver's"):
        from lab.dist.worker import load_worker_model
        load_worker_model(model.load_args, "0" * 64, "cpu", 1)


@pytest.mark.filterwarnings("ignore:1 of 25 images")
def test_shards_interrupted_resumed_from_the_cli_imported_and_exported(cluster, data, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    model = lab.load_model("lab-vit-tiny", cache=cache_dir, device="cpu")
    pattern = str(data["root"] / "shards" / "{00000..00002}.tar")
    out = tmp_path / "run.parts"  # where the CLI's --out run.npy keeps its run folder

    def fault(wave, path):
        raise KeyboardInterrupt("injected: the driver dies after its first wave")
    with pytest.raises(KeyboardInterrupt):
        dist.encode_images(model, [pattern], out, wave_size=1, progress=False, on_wave=fault,
                           **{**ON_WORKERS, "workers": 1})
    assert len(runs.parts(out)) == 1 and runs.read_manifest(out)["status"] == "running"
    first, _ = runs.read_run(out)
    env = {**os.environ, "LAB_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    cli = subprocess.run(
        [sys.executable, "-m", "lab", "encode", pattern, "--model", "lab-vit-tiny", "--device", "cpu",
         "--engine", "ray", "--address", cluster[0].address, "--workers", "2", "--cpus-per-worker", "0", "--resources",
         json.dumps(ENCODER), "--batch-size", "4", "--wave-size", "1", "--no-import",
         "--out", str(tmp_path / "run.npy")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert cli.returncode == 1, cli.stderr[-2000:]  # one corrupt member: reported in the exit status
    import ray
    assert ray.cluster_resources().get("lab_encoder") == 2  # the CLI attached, and left the cluster running
    manifest = runs.read_manifest(out)
    assert manifest["status"] == "complete" and manifest["last_run"]["waves_skipped"] == 1
    assert manifest["last_run"]["dispatched"] == 25 - len(first)  # only what was missing
    table, emb = runs.read_run(out)
    assert table["key"].is_unique and len(table) == 25 and table["item"].is_unique
    np.testing.assert_array_equal(np.load(tmp_path / "run.npy"), emb)
    index = pd.read_csv(tmp_path / "run.index.csv")
    assert index["item"].tolist() == table["item"].tolist() and index["ok"].sum() == 24
    by_key = dict(zip(table["key"], emb))
    files = data["files"]
    ref_keys = {f: "file:" + hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}
    for f, v in zip(files, data["ref"]):  # a tar member and the same file on disk: one key, one vector
        np.testing.assert_allclose(by_key[ref_keys[f]], v, atol=1e-5)
    bad = table[~table["ok"]]
    assert len(bad) == 1 and bad["item"].iloc[0].endswith("00002.tar::sample9999.png")
    assert bad["error"].iloc[0] == data["failures"][0].reason
    assert lab.EmbeddingCache(cache_dir).info() == []  # --no-import: the cache is still empty
    assert cli_main(["--cache-dir", str(cache_dir), "cache", "import", str(out)]) == 0
    assert "imported 24 rows" in capsys.readouterr().out
    fresh = lab.load_model("lab-vit-tiny", cache=cache_dir, device="cpu")
    seen = count_forward(fresh)  # in this process: num_workers=0
    again = fresh.encode_images(files, progress=False, num_workers=0)
    assert seen["images"] == 0  # the folder's files hash to the tar members' keys: nothing computed
    np.testing.assert_allclose(again, data["ref"], atol=1e-5)
    members = dist.encode_images(model, [str(data["root"] / "shards" / "{00000..00001}.tar")], tmp_path / "again",
                                 progress=False, **ON_WORKERS)  # members known by "<shard>::<member>" and its stat
    assert members["last_run"]["dispatched"] == 0 and members["last_run"]["from_cache"] == 18
    assert cli_main(["export", str(out), "--format", "clip-retrieval"]) == 0
    img = np.load(out / "clip-retrieval" / "img_emb" / "img_emb_0.npy")
    meta = pd.read_parquet(out / "clip-retrieval" / "metadata" / "metadata_0.parquet")
    assert img.shape == (24, model.embed_dim) and len(meta) == 24 and "image_path" in meta
    np.testing.assert_allclose(img.astype(np.float32), np.stack([by_key[k] for k in meta["key"]]), atol=2e-3)


def test_patterns_and_braces_fail_before_anything_starts(tmp_path):
    assert dist.expand_braces("s/{00008..00011}.tar") == [f"s/{i:05d}.tar" for i in range(8, 12)]
    assert dist.expand_braces("{a,b}-{1..2}") == ["a-1", "a-2", "b-1", "b-2"]
    with pytest.raises(lab.LabError, match="matches no file"):
        dist.expand_sources([str(tmp_path / "*.tar")])
    with pytest.raises(lab.LabError, match="do not exist"):
        dist.expand_sources([str(tmp_path / "{0..3}.tar")])


def test_grid_equals_in_process_and_a_rerun_skips_every_pair(cluster, tmp_path):
    from lab.data.shapeworld import WorldDataset
    from lab.studies.robustness import score, zero_shot_classifier
    sets = {"test": WorldDataset("test", n=16), "sketch": WorldDataset("test", n=16, suite="sketch")}
    models = [lab.load_model(name, device="cpu") for name in ("lab-vit-tiny", "lab-rn-tiny")]  # as the CPU tasks
    grid = dist.run_grid(models, sets, tmp_path / "grid", resources=ENCODER, cpus_per_worker=0, progress=False)
    assert len(grid) == 4 and grid["computed"].all() and set(grid["node"]) <= cluster[1]
    for row in grid.itertuples():
        m = lab.load_model(row.model, cache=tmp_path / "cache", device="cpu")
        expected = score(zero_shot_classifier(m)(sets[row.dataset]), sets[row.dataset].labels)
        assert row.top1 == expected["top1"] and row.n == expected["n"]
    again = dist.run_grid(models, sets, tmp_path / "grid", resources=ENCODER, cpus_per_worker=0, progress=False)
    assert not again["computed"].any()
    pd.testing.assert_frame_equal(again.drop(columns="computed"), grid.drop(columns="computed"))


def test_texts_on_the_engine_equal_in_process(cluster, tmp_path):
    model = lab.load_model("lab-vit-tiny", cache=tmp_path / "cache", device="cpu")
    texts = [f"a photo of {n} red circles" for n in range(12)] + ["a photo of 0 red circles"]  # a repeat
    manifest = dist.encode_texts(model, texts, tmp_path / "run", workers=1, cpus_per_worker=0, resources=ENCODER,
                                 batch_size=4, wave_size=5, progress=False)
    assert manifest["counts"] == {"items": 12, "ok": 12, "failed": 0}  # each distinct text once
    table, emb = runs.read_run(tmp_path / "run")
    np.testing.assert_allclose(emb, model.encode_texts(texts[:12], cache=False, progress=False), atol=1e-5)
    assert set(table["node"]) <= cluster[1]
    again = dist.encode_texts(model, texts, tmp_path / "other", workers=1, progress=False)
    assert again["last_run"]["dispatched"] == 0 and again["last_run"]["from_cache"] == 12  # imported: no Ray
    with pytest.raises(lab.LabError, match=r"need 1 GPU \(the cluster has 0\)"):  # refused, not waited for
        dist.encode_texts(model, ["a photo of a gpu"], tmp_path / "gpu", gpus_per_worker=1, progress=False)


def test_jpegs_decoded_in_the_encoders_match_in_process(cluster, tmp_path):
    """decode="gpu": the decode tasks only hash JPEG files and pass their bytes on; each encoder decodes
    and resizes them on its device (CPU tensors here, nvJPEG on a GPU: tests/gpu); other files and
    refused ones take the PIL path, with the in-process words."""
    folder = tmp_path / "imgs"
    write_images(folder, 12, size=(70, 90), ext="jpg")
    write_images(folder, 2, seed=1, ext="png")
    Image.new("CMYK", (50, 40), (10, 200, 30, 0)).save(folder / "cmyk.jpg")
    (folder / "truncated.jpg").write_bytes((folder / "img0000.jpg").read_bytes()[:700])
    model = lab.load_model("lab-vit-tiny", cache=tmp_path / "cache", device="cpu")
    files = lab.data.list_images(folder)
    ref, failures = model.encode_images(files, decode="cpu", cache=False, progress=False, return_failures=True)
    from lab.dist.worker import decode_batch
    rows = decode_batch({"item": np.array(files, dtype=object), "data": [Path(f).read_bytes() for f in files]},
                        model.preprocess_cfg, model.max_image_pixels, device_jpegs=True)
    assert rows["on_device"].sum() == 13 and "pixels" not in rows  # 12 JPEGs and the truncated one go as bytes
    out = tmp_path / "run"
    dist.encode_images(model, [str(folder)], out, decode="gpu", cache_import=False, progress=False, **ON_WORKERS)
    table, emb = runs.read_run(out)
    assert table["item"].tolist() == files
    ok = np.isfinite(ref).all(1)
    assert (emb[ok] * ref[ok]).sum(1).min() >= 0.9999 and not np.isfinite(emb[~ok]).any()
    assert {r.item: r.error for r in table[~table["ok"]].itertuples()} == {f.item: f.reason for f in failures}
    assert [os.path.basename(f.item) for f in failures] == ["truncated.jpg"]
    with pytest.raises(lab.LabError, match="decode='pil' is not one of"):
        dist.encode_images(model, [str(folder)], tmp_path / "other", decode="pil")
