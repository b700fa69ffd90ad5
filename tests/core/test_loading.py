"""Loading: OpenAI release files (TorchScript and state dict), inference of the architecture,
QuickGELU, model-card names, offline errors, and refusing to run code from checkpoints."""
import argparse
import os
import pickle

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

import lab
from lab.core.checkpoints import read_torchscript_tensors

from conftest import NANO

CARD = {  # name: (input resolution, embedding size) from the CLIP model card
    "RN50": (224, 1024), "RN101": (224, 512), "RN50x4": (288, 640), "RN50x16": (384, 768),
    "RN50x64": (448, 1024), "ViT-B/32": (224, 512), "ViT-B/16": (224, 512), "ViT-L/14": (224, 768),
    "ViT-L/14@336px": (336, 768),
}


@pytest.mark.parametrize("name", list(CARD))
def test_model_card_names_resolve(name):
    info = lab.model_info(name)
    assert (info["image_size"], info["embed_dim"]) == CARD[name]
    assert info["pretrained"] == "openai" and info["quick_gelu"]


def test_list_models_knows_card_names_and_open_clip():
    names = lab.list_models()
    assert set(CARD) <= set(names)
    assert "ViT-B-32:laion2b_s34b_b79k" in names and "ViT-L-14-336" in names


def _images(n=3, size=(70, 90)):
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def _reference(module, model, images):
    """A direct open_clip forward pass with open_clip's own preprocessing."""
    preprocess = open_clip.image_transform(model.image_size, is_train=False)
    with torch.no_grad():
        f = module.encode_image(torch.stack([preprocess(im) for im in images]))
    return torch.nn.functional.normalize(f, dim=-1).numpy()


@pytest.mark.parametrize("arch,kind", [("RN50", "torchscript"), ("RN50", "state"),
                                       ("ViT-B-32", "torchscript"), ("ViT-B-32", "state")])
def test_openai_files_load_as_released(openai_files, cache, arch, kind):
    reference, sd_path, ts_path = openai_files[arch]
    path = ts_path if kind == "torchscript" else sd_path
    model = lab.load_model(path, cache=cache, device="cpu")  # the reference runs on the CPU in fp32
    expected = lab.model_info(arch)
    assert model.name.startswith(arch)
    assert (model.image_size, model.embed_dim) == (expected["image_size"], expected["embed_dim"])
    assert model.quick_gelu
    images = _images()
    got = model.encode_images(images, progress=False)
    np.testing.assert_allclose(got, _reference(reference, model, images), atol=2e-5)
    texts = ["a photo of a dog", "a diagram", "an extremely long caption " + "of many words " * 30]
    with torch.no_grad():  # the text tower too: OpenAI's tokenizer, truncation and the reference's encode_text
        want = torch.nn.functional.normalize(reference.encode_text(open_clip.tokenize(texts)), dim=-1).numpy()
    with pytest.warns(UserWarning, match="1 of 3 texts are longer"):
        got = model.encode_texts(texts, progress=False)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_quick_gelu_matters_numerically(openai_files, cache):
    reference, sd_path, _ = openai_files["ViT-B-32"]
    images = _images(2)
    quick = lab.load_model(sd_path, cache=cache, device="cpu").encode_images(images, progress=False)
    gelu_model = lab.load_model(sd_path, cache=cache, quick_gelu=False, device="cpu")
    assert not gelu_model.quick_gelu
    gelu = gelu_model.encode_images(images, progress=False)
    want = _reference(reference, gelu_model, images)
    assert np.abs(quick - want).max() < 2e-5
    assert np.abs(gelu - want).max() > 3e-4  # >10x the tolerance: the wrong activation changes the embeddings


def test_torchscript_reader_runs_no_code(openai_files):
    _, sd_path, ts_path = openai_files["RN50"]
    tensors = read_torchscript_tensors(str(ts_path))
    saved = torch.load(sd_path, weights_only=True)
    for k, v in saved.items():
        assert torch.equal(tensors[k].half(), v), k


def test_named_arch_with_file_and_tags(openai_files, cache):
    _, sd_path, _ = openai_files["RN50"]
    model = lab.load_model("RN50", pretrained=str(sd_path), cache=cache)
    assert model.quick_gelu and model.embed_dim == 1024
    with pytest.raises(lab.ModelNotAvailable, match="not a pretrained tag"):
        lab.load_model("RN50", pretrained="no-such-tag", cache=cache)
    with pytest.raises(lab.ModelNotAvailable, match="say which weights"):
        lab.load_model("ViT-B-32-256", cache=cache)
    with pytest.raises(lab.ModelNotAvailable, match="unknown model"):
        lab.load_model("ViT-Q-99", cache=cache)


def test_offline_error_is_clear(cache, tmp_path, no_network):
    with pytest.raises(lab.ModelNotAvailable) as e:
        lab.load_model("ViT-B/32", cache=cache, cache_dir=str(tmp_path / "downloads"))
    msg = str(e.value)
    assert "ViT-B-32" in msg and "openai" in msg and "pretrained='/path/to/file'" in msg
    available = lab.list_models(available=True, cache_dir=str(tmp_path / "downloads"))
    assert "ViT-B-32:openai" not in available and available == list(lab.core.registry.builtin_models())


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['LAB_EVIL_MARKER']}",))


def test_checkpoint_code_never_runs_without_opt_in(tmp_path, cache, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("LAB_EVIL_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {}, "payload": _Evil()}, f)
    with pytest.raises(lab.UnsafeCheckpoint, match="trust_checkpoint=True"):
        lab.load_model(path, cache=cache)
    assert not marker.exists()


def test_non_checkpoints_get_a_plain_error(tmp_path, cache):
    png = tmp_path / "photo.pt"
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    text = tmp_path / "notes.pt"
    text.write_text("hello world")
    for path in (png, text):
        with pytest.raises(lab.ModelNotAvailable, match="not a"):
            lab.load_model(path, cache=cache)


def test_legacy_pickle_loads_with_trust_flag(tmp_path, cache, nano):
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": nano.module.state_dict(), "args": argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(lab.UnsafeCheckpoint):
        lab.load_model(NANO, pretrained=str(path), cache=cache)
    model = lab.load_model(NANO, pretrained=str(path), cache=cache, trust_checkpoint=True, device="cpu")
    np.testing.assert_allclose(model.encode_texts(["x"], cache=False), nano.encode_texts(["x"], cache=False), atol=1e-6)


def test_wrong_architecture_is_named(openai_files, cache):
    _, sd_path, _ = openai_files["RN50"]
    with pytest.raises(lab.ModelNotAvailable, match="does not fit the architecture"):
        lab.load_model("RN101", pretrained=str(sd_path), cache=cache, quick_gelu=True)


def test_fingerprint_stable_and_sensitive(tmp_path, cache, nano):
    again = lab.load_model(NANO, pretrained="random", cache=cache, device="cpu")  # nano's device and precision
    assert again.fingerprint == nano.fingerprint
    assert lab.load_model(NANO, pretrained="random", cache=cache, quick_gelu=True,
                          device="cpu").fingerprint != nano.fingerprint
    base = {"format": "clip-lab", "arch": NANO, "model_cfg": open_clip.get_model_config(NANO),
            "state_dict": nano.module.state_dict()}
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({**base, "preprocess_cfg": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}}, a)
    torch.save({**base, "preprocess_cfg": {"mean": (0.4, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}}, b)
    fa, fb = lab.load_model(a, cache=cache).fingerprint, lab.load_model(b, cache=cache).fingerprint
    assert fa != fb


def test_fingerprint_same_in_another_process(tmp_path, cache, nano):
    import subprocess
    import sys
    code = ("import open_clip, lab; open_clip.add_model_config('tests/model_configs'); "
            f"print(lab.load_model('{NANO}', pretrained='random', device='cpu').fingerprint)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip().splitlines()[-1] == nano.fingerprint


def test_checkpoint_digest_is_memoized(tmp_path, cache, nano, monkeypatch):
    import hashlib
    path = tmp_path / "w.pt"
    torch.save(nano.module.state_dict(), path)
    hashed = []
    real = lab.core.cache.sha256_file
    monkeypatch.setattr(lab.core.cache, "sha256_file", lambda p, *a, **k: hashed.append(p) or real(p, *a, **k))
    first = lab.load_model(NANO, pretrained=str(path), cache=cache).fingerprint
    assert len(hashed) == 1
    digest = cache.file_digest(str(path))
    assert len(hashed) == 1 and digest == hashlib.sha256(path.read_bytes()).hexdigest()  # remembered, and right
    assert lab.load_model(NANO, pretrained=str(path), cache=cache).fingerprint == first and len(hashed) == 1
    torch.save({k: v + 1 for k, v in nano.module.state_dict().items()}, path)  # new weights, same size
    assert lab.load_model(NANO, pretrained=str(path), cache=cache).fingerprint != first and len(hashed) == 2


def test_a_model_loaded_before_is_built_only_when_needed(tmp_path, cache, nano):
    path = tmp_path / "w.pt"
    torch.save(nano.module.state_dict(), path)
    first = lab.load_model(NANO, pretrained=str(path), cache=cache, device="cpu")
    assert first.built
    cached = first.encode_texts(["a red circle"], progress=False)
    again = lab.load_model(NANO, pretrained=str(path), cache=cache, device="cpu")
    assert not again.built  # known by the file's hash: nothing built yet
    assert (again.fingerprint, again.embed_dim, again.context_length, again.logit_scale) == \
        (first.fingerprint, first.embed_dim, first.context_length, first.logit_scale)
    np.testing.assert_array_equal(again.encode_texts(["a red circle"], progress=False), cached)
    assert not again.built  # a cache hit needs no model
    new = again.encode_texts(["a blue star"], progress=False)
    assert again.built  # a miss builds it, and it computes what the eager model does
    np.testing.assert_allclose(new, first.encode_texts(["a blue star"], cache=False, progress=False), atol=1e-6)
    copy = tmp_path / "copy.pt"
    copy.write_bytes(path.read_bytes())
    copied = lab.load_model(NANO, pretrained=str(copy), cache=cache, device="cpu")
    assert copied.source == str(copy)  # its own name, not path's
    torch.save({k: v + 1 for k, v in nano.module.state_dict().items()}, path)  # new weights: built again
    changed = lab.load_model(NANO, pretrained=str(path), cache=cache, device="cpu")
    assert changed.built and changed.fingerprint != first.fingerprint


def test_a_fully_cached_run_imports_no_torch(tmp_path):
    import subprocess
    import sys
    code = ("import sys, lab; from lab.data import load_dataset; "
            "m = lab.load_model('lab-vit-tiny', device='cpu'); "
            "x = m.encode_images(load_dataset('shapeworld', '', 'test', 12, 0), progress=False); "
            "t = m.encode_texts(['a red circle'], progress=False); "
            "print(x.shape, t.shape, m.built, 'torch' in sys.modules, 'open_clip' in sys.modules)")
    env = {**os.environ, "LAB_CACHE_DIR": str(tmp_path / "c")}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            .stdout.strip().splitlines()[-1] for _ in range(2)]
    assert runs[0] == "(12, 128) (1, 128) True True True"
    assert runs[1] == "(12, 128) (1, 128) False False False"
