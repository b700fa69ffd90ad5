"""The contrastive trainer (micro-runs on CPU, resume after a kill, user CSV data) and the
built-in tiny models it produced. Training and the models' checks run on the CPU (device="cpu") on any
machine: on a GPU the trainer's default is CUDA with fp16 autocast, and a run there is too quick to be
killed mid-way."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import lab
from lab.studies import zeroshot
from lab.data import shapeworld, world
from lab.training.train import TrainConfig, train

from conftest import NANO

ROOT = Path(__file__).parents[2]


def test_micro_run_loss_falls_and_checkpoint_loads(tmp_path):
    out = tmp_path / "rn-nano.pt"
    log = train(TrainConfig(arch="lab-test-rn-nano", steps=40, batch_size=40, epoch_steps=10, val_n=40, warmup=4,
                            lr=1e-3, workers=0, device="cpu", out=str(out)), progress=False)
    assert [r["step"] for r in log] == [10, 20, 30, 40]
    assert log[-1]["loss"] < log[0]["loss"] - 0.3  # from about ln(40) = 3.7 at chance
    model = lab.load_model(out)
    assert model.embed_dim == 32 and model.image_size == 64
    assert not Path(str(out) + ".resume").exists()


def test_resume_after_kill(tmp_path):
    out = tmp_path / "nano.pt"
    code = ("import open_clip, sys; open_clip.add_model_config('tests/model_configs');"
            "from lab.training.train import TrainConfig, train;"
            f"train(TrainConfig(arch='{NANO}', steps=400, batch_size=16, epoch_steps=5, val_n=16, warmup=2, "
            f"workers=0, device='cpu', out=sys.argv[1]), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=ROOT)
    resume = Path(str(out) + ".resume")
    deadline = time.time() + 120
    while not resume.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(resume, weights_only=True)["step"]
    assert 5 <= saved < 400
    log = train(TrainConfig(arch=NANO, steps=saved + 10, batch_size=16, epoch_steps=5, val_n=16, warmup=2,
                            workers=0, device="cpu", out=str(out)), progress=False)
    steps = [r["step"] for r in log]
    assert steps == list(range(5, saved + 11, 5))  # continued where the checkpoint left off


def test_trains_on_user_csv(tmp_path):
    ds = shapeworld.WorldDataset("val", n=24)
    rows = ["path,caption"]
    for i in range(24):
        ds.source(i).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{ds.sample(i).caption}")
    rows.append("missing.png,a photo of nothing.")
    (tmp_path / "pairs.csv").write_text("\n".join(rows))
    log = train(TrainConfig(arch=NANO, data=str(tmp_path / "pairs.csv"), steps=6, batch_size=8, epoch_steps=3,
                            warmup=1, workers=0, device="cpu", out=str(tmp_path / "csv.pt")), progress=False)
    assert len(log) == 2 and all(np.isfinite(r["loss"]) for r in log)


@pytest.mark.parametrize("name", ["lab-vit-tiny", "lab-rn-tiny", "lab-vit-literate"])
def test_builtin_models_load_offline_and_know_the_world(name):
    assert name in lab.list_models(available=True)
    model = lab.load_model(name, device="cpu")  # the floors are the model cards' fp32 numbers
    test = shapeworld.WorldDataset("test", n=300)
    emb = model.encode_images(test, progress=False)
    for task, floor in (("shape", 0.8), ("colour", 0.9)):
        weights = zeroshot.class_weights(model, world.task_prompts(task))
        assert zeroshot.accuracy(emb, weights, test.task_labels(task)) >= floor, task
    card = lab.core.registry.builtin_models()[name].with_suffix(".md").read_text()
    assert "python -m lab train" in card and "Training time" in card


def test_background_batches_leave_the_light_world_and_seeds_give_fresh_batches():
    from lab.training.train import WorldPairs
    images, captions = WorldPairs(backgrounds=1.0).batch(5, 80)
    assert len(set(captions)) == 80
    corners = np.array([np.asarray(im)[[0, 0, -1, -1], [0, -1, 0, -1]].mean(0) for im in images])  # (80, 3)
    assert (corners.max(1) < 150).mean() > 0.4  # the world's own backgrounds are all light (~200+)
    light, _ = WorldPairs().batch(5, 80)
    assert all(np.asarray(im)[0, 0].min() > 150 for im in light)
    _, again = WorldPairs().batch(5, 80)
    _, other = WorldPairs(seed=1).batch(5, 80)  # a later stage can train on fresh batches
    assert again == WorldPairs().batch(5, 80)[1] and sum(a != b for a, b in zip(again, other)) > 60


def test_literate_batches_and_fine_tuning_from_a_checkpoint(tmp_path):
    from lab.data.studies import band_box
    from lab.training.train import WorldPairs
    plain, plain_captions = WorldPairs().batch(3, 40)
    images, captions = WorldPairs(literate=0.4, word_only=0.3).batch(3, 40)
    assert len(set(captions)) == 40  # still one (shape, colour) per batch: no false negatives
    assert sum(c.startswith("a picture of") and " in the " not in c for c in captions) >= 5
    bands = [np.asarray(im)[slice(*band_box(t)[1::2]), :] for im in images for t in (True, False)]
    assert sum((b == 248).all(-1).mean() > 0.5 for b in bands) >= 10  # light bands with a word on them
    again, again_captions = WorldPairs().batch(3, 40)  # plain batches are unchanged by the option
    assert again_captions == plain_captions and all((np.asarray(a) == np.asarray(b)).all() for a, b in zip(plain, again))
    first = tmp_path / "first.pt"
    train(TrainConfig(arch=NANO, steps=2, batch_size=8, epoch_steps=2, val_n=8, warmup=1, workers=0, device="cpu",
                      out=str(first)), progress=False)
    tuned = train(TrainConfig(arch=NANO, steps=2, batch_size=8, epoch_steps=2, val_n=8, warmup=1, workers=0, lr=0.0,
                              device="cpu", init=str(first), literate=0.5, word_only=0.2,
                              out=str(tmp_path / "tuned.pt")), progress=False)
    parent, child = (torch.load(p, weights_only=True) for p in (first, tmp_path / "tuned.pt"))
    a, b = parent["state_dict"], child["state_dict"]
    assert tuned and all(torch.equal(a[k], b[k]) for k in a if "logit_scale" not in k)  # lr 0: the init weights
    assert parent["lineage"] == [] and [s["train_cfg"] for s in child["lineage"]] == [parent["train_cfg"]]
    assert child["lineage"][0]["log"] == parent["log"]  # the card can say how the weights it started from were made
