"""The probe / few-shot / retrieval study's pieces that need no model (the study itself runs in
notebook 05's report test, tests/studies/test_retrieval.py)."""
import numpy as np

from lab.studies import probes_fewshot_retrieval as pfr
from conftest import write_images


def test_folder_splits_cut_the_val_half_80_20_and_hold_out_the_test_half(tmp_path):
    for name in ("cat", "dog"):
        write_images(tmp_path / name, 10, size=(16, 16))
    train, val, test = pfr.folder_splits(str(tmp_path), seed=3)
    pool = train.dataset
    assert (len(train), len(val), len(test)) == (8, 2, 10)
    keys = [set(ds.content_key(i) or ds.source(i) for i in range(len(ds))) for ds in (train, val, test)]
    assert not keys[0] & keys[1] and not (keys[0] | keys[1]) & keys[2]
    order = np.random.default_rng(3).permutation(len(pool))
    assert list(train.indices) == sorted(order[:8]) and list(val.indices) == sorted(order[8:])
