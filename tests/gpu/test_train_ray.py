"""A few training steps with automatic mixed precision on the device lower the loss; the Ray engine with
one worker on the device equals in-process encoding (issue 23, item 6)."""
import warnings

import numpy as np
import pytest

import lab
from lab.training.train import TrainConfig, train

from .conftest import CUDA, DEVICE, MIN_COS, cosines, load


# the ResNet learns within 40 steps (as in tests/training on the CPU); the ViT, whose attention and
# LayerNorm are what fp16 could break, only falls from its start above chance (3.83 -> 3.69 on the CPU)
@pytest.mark.parametrize("arch,drop", [("lab-test-rn-nano", 0.3), ("lab-test-nano", 0.05)])
def test_a_few_amp_steps_lower_the_loss(tmp_path, arch, drop):
    """On CUDA train() runs fp16 autocast with a GradScaler; the loss must fall (chance: ln 40 = 3.69)."""
    out = tmp_path / f"{arch}.pt"
    log = train(TrainConfig(arch=arch, steps=40, batch_size=40, epoch_steps=10, val_n=40, warmup=4,
                            lr=1e-3 if "rn" in arch else 3e-3, workers=0, device=DEVICE, out=str(out)), progress=False)
    assert [r["step"] for r in log] == [10, 20, 30, 40]
    losses = [r["loss"] for r in log]
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - drop, losses
    model = lab.load_model(out, device=DEVICE)  # the checkpoint (fp16 weights on disk) loads and encodes
    assert np.isfinite(model.encode_texts(["a red circle"], cache=False, progress=False)).all()


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray cluster of this machine's GPU (or CPUs), stopped at the end."""
    ray = pytest.importorskip("ray", reason="the dist extra (ray) is not installed")
    ray.init(num_cpus=2, num_gpus=1 if CUDA else 0, include_dashboard=False, log_to_driver=False,
             object_store_memory=300 << 20)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("decode", ["auto", "cpu"])
def test_ray_one_worker_on_the_device_equals_in_process(ray_local, image_set, tmp_path, decode):
    from lab import dist
    from lab.dist import runs
    paths = image_set["world"] + [image_set["odd"][k] for k in ("cmyk", "png", "grey", "exif_rotated")]
    whole = open(image_set["world"][0], "rb").read()
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(whole[:len(whole) // 2])
    paths.append(str(bad))
    model = load("lab-vit-tiny", cache=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one corrupt file's summary
        ref, failures = model.encode_images(paths, cache=False, progress=False, return_failures=True, decode=decode)
    manifest = dist.encode_images(model, paths, tmp_path / "run", workers=1, gpus_per_worker=1 if CUDA else 0,
                                  cpus_per_worker=1, batch_size=16, cache_import=False, progress=False,
                                  decode=decode)
    assert manifest["status"] == "complete" and manifest["counts"] == {"items": len(paths), "ok": len(paths) - 1,
                                                                       "failed": 1}
    table, emb = runs.read_run(tmp_path / "run")
    assert table["item"].tolist() == paths
    assert {r.item for r in table[~table["ok"]].itertuples()} == {f.item for f in failures} == {str(bad)}
    ok = table["ok"].to_numpy()
    assert np.isnan(emb[~ok]).all() and np.isfinite(emb[ok]).all()
    np.testing.assert_allclose(emb[ok], ref[ok], atol=2e-3 if CUDA else 1e-5)
    assert cosines(emb[ok], ref[ok]).min() >= max(MIN_COS, 0.9999)
