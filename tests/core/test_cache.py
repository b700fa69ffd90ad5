"""The embedding cache: hits and misses, growth, model separation, stat memo, concurrent
writers and SIGKILL safety with real processes, info and clear."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import lab
import lab.core.encoding

from conftest import NANO, count_forward, write_images

ROOT = Path(__file__).parents[2]
WORKER = """
import sys, open_clip, lab
open_clip.add_model_config('tests/model_configs')
paths = open(sys.argv[1]).read().split()
model = lab.load_model(sys.argv[4], pretrained='random', cache=sys.argv[2], device='cpu')
model.encode_images(paths, batch_size=int(sys.argv[3]), progress=False, num_workers=0)
print('done', flush=True)
"""


def _worker(tmp_path, paths, cache_dir, batch_size, model=NANO) -> subprocess.Popen:
    lst = tmp_path / f"list{len(list(tmp_path.glob('list*')))}.txt"
    lst.write_text("\n".join(paths))
    return subprocess.Popen([sys.executable, "-c", WORKER, str(lst), str(cache_dir), str(batch_size), model],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(cache_dir, fingerprint):
    with sqlite3.connect(Path(cache_dir) / "embeddings.sqlite3") as c:
        return c.execute("SELECT COUNT(*) FROM embeddings WHERE fingerprint=? AND modality='image'",
                         (fingerprint,)).fetchone()[0]


def test_second_pass_computes_nothing_and_growth_only_new(nano, tmp_path):
    paths = write_images(tmp_path / "imgs", 12)
    seen = count_forward(nano)  # in-process runs (num_workers=0), so the counter sees every forward
    first = nano.encode_images(paths[:8], progress=False, batch_size=4, num_workers=0)
    assert seen["images"] == 8
    again = nano.encode_images(paths[:8], progress=False, num_workers=0)
    assert seen["images"] == 8
    np.testing.assert_array_equal(first, again)
    grown = nano.encode_images(paths, progress=False, num_workers=0)
    assert seen["images"] == 12
    np.testing.assert_array_equal(grown[:8], first)
    texts = ["a red circle", "a blue square"]
    nano.encode_texts(texts)
    nano.encode_texts(texts + ["a green star", "a red circle"])
    assert seen["texts"] == 3


def test_models_do_not_collide(cache, tmp_path):
    paths = write_images(tmp_path / "imgs", 3)
    a = lab.load_model(NANO, pretrained="random", cache=cache, device="cpu")
    b = lab.load_model(NANO, pretrained="random", cache=cache, quick_gelu=True, device="cpu")
    ea, eb = a.encode_images(paths, progress=False), b.encode_images(paths, progress=False)
    assert a.fingerprint != b.fingerprint and np.abs(ea - eb).max() > 1e-4
    assert {r["model"] for r in cache.info()} == {a.name}  # same display name, two fingerprints
    assert len(cache.info()) == 2


def test_warm_pass_only_stats_and_rewrites_are_seen(nano, tmp_path, monkeypatch):
    paths = write_images(tmp_path, 3)
    first = nano.encode_images(paths, progress=False)
    loads = {"n": 0}
    original = lab.core.encoding._Pending.__getitem__

    def counted(self, j):
        loads["n"] += 1
        return original(self, j)
    monkeypatch.setattr(lab.core.encoding._Pending, "__getitem__", counted)
    np.testing.assert_array_equal(nano.encode_images(paths, progress=False, num_workers=0), first)
    assert loads["n"] == 0  # every key came from the (size, mtime, ctime) memo: no file was opened
    path = Path(paths[0])
    st = os.stat(path)
    other = Path(write_images(tmp_path / "o", 1, seed=9)[0]).read_bytes()
    path.write_bytes(other)  # new bytes with the old mtime restored, as `cp -p` or `rsync -a` would leave
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = nano.encode_images(paths, progress=False, num_workers=0)
    assert loads["n"] == 1 and np.abs(again[0] - first[0]).max() > 1e-4  # ctime changed: re-hashed
    np.testing.assert_array_equal(again[1:], first[1:])


def test_two_processes_overlapping_inputs(nano, tmp_path):
    paths = write_images(tmp_path / "imgs", 60)
    cache_dir = tmp_path / "shared-cache"
    procs = [_worker(tmp_path, paths[:40], cache_dir, 2), _worker(tmp_path, paths[20:], cache_dir, 2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert _rows(cache_dir, nano.fingerprint) == 60
    with sqlite3.connect(cache_dir / "embeddings.sqlite3") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    shared = lab.load_model(NANO, pretrained="random", cache=cache_dir, device="cpu")  # the workers' fingerprint
    seen = count_forward(shared)
    cached = shared.encode_images(paths, progress=False, num_workers=0)
    assert seen["images"] == 0
    np.testing.assert_allclose(cached, nano.encode_images(paths, cache=False, progress=False), atol=1e-6)


def test_sigkill_mid_run_keeps_committed_batches(tmp_path):
    # RN50 at 224 px keeps the worker busy for seconds on the CPU, so the kill lands mid-run.
    paths = write_images(tmp_path / "imgs", 60, size=(64, 64))
    cache_dir = tmp_path / "kill-cache"
    proc = _worker(tmp_path, paths, cache_dir, 4, model="RN50")
    reference = lab.load_model("RN50", pretrained="random", cache=tmp_path / "ref", device="cpu")
    deadline = time.time() + 300
    while time.time() < deadline:
        if (cache_dir / "embeddings.sqlite3").exists():
            try:
                if _rows(cache_dir, reference.fingerprint) >= 8:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _rows(cache_dir, reference.fingerprint)
    assert 8 <= done < 60 and done % 4 == 0  # whole batches only
    with sqlite3.connect(cache_dir / "embeddings.sqlite3") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    resumed = lab.load_model("RN50", pretrained="random", cache=cache_dir, device="cpu")
    seen = count_forward(resumed)
    emb = resumed.encode_images(paths, progress=False, num_workers=0)
    assert seen["images"] == 60 - done
    np.testing.assert_allclose(emb, reference.encode_images(paths, progress=False), atol=1e-5)


def test_cache_location_info_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "env-cache"))
    assert lab.EmbeddingCache().directory == tmp_path / "env-cache"
    model = lab.load_model(NANO, pretrained="random")
    model.encode_texts(["a", "b", "c"])
    info = lab.EmbeddingCache().info()
    assert info == [dict(fingerprint=model.fingerprint, model=model.name, modality="text", entries=3,
                         bytes=3 * model.embed_dim * 4)]
    assert lab.EmbeddingCache().clear(model=model.name) == 3
    assert lab.EmbeddingCache().info() == []


def test_reading_many_vectors_is_exact(cache):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((5000, 16)).astype(np.float32)
    keys = [f"k{i}" for i in range(5000)]
    cache.put("fp", "image", keys, vecs)
    got = cache.get("fp", "image", keys[::-1] + ["missing"])
    assert len(got) == 5000
    np.testing.assert_array_equal(np.stack([got[k] for k in keys]), vecs)


@pytest.mark.parametrize("wal", [True, False], ids=["copied-in-use", "checkpointed"])
def test_a_read_only_cache_is_read_and_never_written(tmp_path, wal):
    """A shared cache on a hub (read-only files): hits are read, misses computed and not stored (said
    once), nothing in the folder changes. Root ignores file modes, so the reader drops that power."""
    import hashlib
    import shutil
    from lab.data.shapeworld import WorldDataset
    model = lab.load_model("lab-vit-tiny", device="cpu", cache=tmp_path / "rw")
    ref = model.encode_images(WorldDataset("test", n=40), progress=False, num_workers=0)
    if not wal:
        model.cache.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shared = tmp_path / "shared"
    shutil.copytree(tmp_path / "rw", shared)
    np.save(tmp_path / "ref.npy", ref)
    for path in [*shared.rglob("*"), shared]:
        path.chmod(0o444 if path.is_file() else 0o555)
    state = lambda: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shared.iterdir())}  # noqa: E731
    before = state()
    code = f"""
import warnings, numpy as np, lab
from lab.data.shapeworld import WorldDataset
model = lab.load_model("lab-vit-tiny", device="cpu", cache={str(shared)!r})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    hits = model.encode_images(WorldDataset("test", n=40), progress=False, num_workers=0)
    assert not caught and not model.built, [str(w.message) for w in caught]  # read without building the model
    new = model.encode_images(WorldDataset("val", n=6), progress=False, num_workers=0)
    again = model.encode_images(WorldDataset("val", n=6), progress=False, num_workers=0)
assert np.array_equal(hits, np.load({str(tmp_path / 'ref.npy')!r})) and np.isfinite(new).all()
np.testing.assert_allclose(new, again, atol=1e-6)
said = [str(w.message) for w in caught]
assert len(said) == 1 and "cannot be written" in said[0] and "LAB_CACHE_DIR" in said[0], said
"""
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner"] \
        if os.geteuid() == 0 else []
    run = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert state() == before  # not a byte written, no file added
