"""The command line, run as a user would: `python -m lab ...` in a real subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_images

ROOT = Path(__file__).parent.parent


def run(*args, cache_dir):
    env = {**os.environ, "LAB_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_models_lists_card_names(tmp_path):
    out = run("models", cache_dir=tmp_path)
    assert out.returncode == 0 and "ViT-L/14@336px" in out.stdout.splitlines()


def test_encode_folder_then_cache_info_and_clear(tmp_path):
    paths = write_images(tmp_path / "imgs" / "sub", 5)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"nope")
    out = run("encode", str(tmp_path / "imgs"), "--model", "RN50", "--pretrained", "random", "--device", "cpu",
              "--out", str(tmp_path / "out" / "emb.npy"), cache_dir=tmp_path / "c")
    assert out.returncode == 1, out.stderr  # one bad file: reported, exit code says so
    emb = np.load(tmp_path / "out" / "emb.npy")
    index = pd.read_csv(tmp_path / "out" / "emb.index.csv")
    assert emb.shape == (6, 1024) and len(index) == 6
    bad = index[index.ok == 0]
    assert list(bad.item) == [str(tmp_path / "imgs" / "broken.png")] and np.isnan(emb[bad.row]).all()
    assert sorted(index[index.ok == 1].item) == sorted(paths)
    import lab
    with pytest.warns(UserWarning, match="broken.png"):  # each row is its own item's embedding, not just the set
        api = lab.load_model("RN50", pretrained="random", cache=tmp_path / "api", device="cpu").encode_images(
            list(index.item), cache=False, progress=False)
    np.testing.assert_allclose(emb, api, atol=1e-5, equal_nan=True)
    info = run("cache", "info", cache_dir=tmp_path / "c")
    assert "RN50:random" in info.stdout and "5 entries" in info.stdout
    cleared = run("cache", "clear", "--model", "RN50:random", cache_dir=tmp_path / "c")
    assert "removed 5 embeddings" in cleared.stdout
    from lab.core import memo
    memo.memoized("probe", [np.arange(3)], lambda: {"top1": 0.5}, tmp_path / "c", kind="json")
    memo.memoized("umap", [np.arange(3)], lambda: {"xy": np.ones((3, 2))}, tmp_path / "c",
                  folder_name="projections", kind="npz")
    assert len(list((tmp_path / "c").glob("*/*-*.*"))) == 2
    everything = run("cache", "clear", cache_dir=tmp_path / "c")
    assert "removed 2 memoized results" in everything.stdout, everything.stdout
    assert not list((tmp_path / "c").glob("*/*-*.*")) and (tmp_path / "c" / "embeddings.sqlite3").exists()


def test_encode_texts_and_errors_are_one_line(tmp_path):
    (tmp_path / "t.txt").write_text("a photo of a cat\na photo of a dog\n")
    out = run("encode", "--texts", str(tmp_path / "t.txt"), "--model", "RN50", "--pretrained", "random",
              "--out", str(tmp_path / "t.npy"), cache_dir=tmp_path / "c")
    assert out.returncode == 0 and np.load(tmp_path / "t.npy").shape == (2, 1024)
    bad = run("encode", str(tmp_path), "--model", "no-such-model", "--out", str(tmp_path / "x.npy"),
              cache_dir=tmp_path / "c")
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown model") and "Traceback" not in bad.stderr
    world = run("encode", "--world", "tst:10", "--model", "lab-vit-tiny", "--out", str(tmp_path / "w"),
                cache_dir=tmp_path / "c")
    assert world.returncode == 2 and "SPLIT[:N]" in world.stderr and "Traceback" not in world.stderr
