"""The model matrix: one small seeded-random model per CLIP family, loaded offline, run through what
every study needs (both towers, zero-shot under the family's link, a map, a linear probe, a cached
re-run), and, where transformers is the source, held to transformers' own numbers.

    pytest tests/core/test_model_matrix.py
    python tests/core/test_model_matrix.py --write    # regenerate README.md's model table

open_clip families come from tiny configs in tests/model_configs (the real architectures' towers:
timm's EVA02, ConvNeXt, FastViT and ViTamin at small sizes); transformers families are folders saved
as the hub serves them (tests/_transformers_checkpoints.py), tokenizers made offline.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: tests/ helpers, lab
import tests.conftest  # noqa: E402,F401  registers tests/model_configs with open_clip
from tests._transformers_checkpoints import save_checkpoint  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"
# family -> (loader, how the matrix names it: an open_clip config in tests/model_configs, or a transformers family)
FAMILIES = {
    "OpenAI-style ViT": ("open_clip", "lab-test-nano"),
    "ModifiedResNet (OpenAI RN)": ("open_clip", "lab-test-rn-nano"),
    "CoCa": ("open_clip", "lab-test-coca-nano"),
    "EVA02 (timm ViT, rope)": ("open_clip", "lab-test-eva02-nano"),
    "ConvNeXt (timm)": ("open_clip", "lab-test-convnext-nano"),
    "MobileCLIP (timm FastViT)": ("open_clip", "lab-test-mobileclip-nano"),
    "ViTamin (timm hybrid)": ("open_clip", "lab-test-vitamin-nano"),
    "CLIP / MetaCLIP (transformers)": ("transformers", "clip"),
    "SigLIP (transformers)": ("transformers", "siglip"),
    "SigLIP 2, fixed resolution (transformers)": ("transformers", "siglip2"),
    "MetaCLIP 2 (transformers)": ("transformers", "metaclip_2"),
}
N_IMAGES = 40


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {f: save_checkpoint(f, root) for loader, f in FAMILIES.values() if loader == "transformers"}


@pytest.fixture(scope="module")
def world():
    from lab.data.shapeworld import WorldDataset
    return WorldDataset("test", N_IMAGES, image_size=48)


def load(family: str, folders, cache):
    import lab
    loader, name = FAMILIES[family]
    if loader == "open_clip":
        return lab.load_model(name, pretrained="random", cache=cache, device="cpu")
    return lab.load_model(folders[name], cache=cache, device="cpu")


def matrix_row(family: str, model, world) -> dict:
    """What the family does in the lab, measured: each cell is computed, not written down."""
    from lab.data import prompts
    from lab.studies import attribution, linear_probe as lp, maps, zeroshot
    x = model.encode_images(world, progress=False)  # (N, D)
    w = zeroshot.class_weights(model, prompts.class_prompts(world.classes, ["a photo of a {}."]))  # (C, D)
    y = world.labels["label"].to_numpy()
    result = zeroshot.evaluate(x, w, y, world.classes, **zeroshot.score_args(model))
    cos = x @ w.T  # (N, C)
    probs = zeroshot.probabilities(zeroshot.logits(x, w, model.logit_scale, model.logit_bias), model.link)
    if model.link == "softmax":  # one distribution over the classes
        np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    else:  # an independent sigmoid per class, the checkpoint's bias included
        np.testing.assert_allclose(probs, 1 / (1 + np.exp(-(model.logit_scale * cos + model.logit_bias))), rtol=1e-5)
    confidence = result.predictions["confidence"].to_numpy()
    np.testing.assert_allclose(confidence, probs[result.predictions["item"], result.predictions["pred"]], rtol=1e-6)
    assert ((confidence > 0) & (confidence <= 1)).all()
    coords = maps.project(x, method="pca", cache=False).coords  # (N, 2)
    half = N_IMAGES // 2
    probe = lp.probe(x[:half], y[:half], x[half:], y[half:], x[half:], y[half:], n_classes=len(world.classes))
    assert np.isfinite(x).all() and np.isfinite(w).all() and np.isfinite(coords).all()
    assert 0 <= result.top1 <= 1 and np.isfinite(probe.top1)
    return {"family": family, "loader": model.model_cfg.get("runs_on", "open_clip"), "load": "yes", "encode": "yes",
            "zero-shot link": model.link, "attribution": ", ".join(attribution.list_methods(model)[:3]) + ", …",
            "maps": "yes", "probes": "yes"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_loads_offline_encodes_and_runs_the_studies_and_reruns_from_the_cache(family, folders, world, cache,
                                                                                    no_network):
    model = load(family, folders, cache)
    row = matrix_row(family, model, world)
    siglip = "SigLIP" in family
    assert row["zero-shot link"] == ("sigmoid" if siglip else "softmax")
    # the values the checkpoints were made with: SigLIP's scale 10 and bias -10 (tests/_transformers_checkpoints),
    # every CLIP's initial temperature 1/0.07 and no bias
    assert (model.logit_scale, model.logit_bias) == (pytest.approx(10.0 if siglip else 1 / 0.07, rel=1e-4),
                                                      pytest.approx(-10.0 if siglip else 0.0, abs=1e-6))
    first = model.encode_images(world, progress=False)
    again = load(family, folders, cache)
    np.testing.assert_array_equal(again.encode_images(world, progress=False), first)
    assert again.fingerprint == model.fingerprint
    if FAMILIES[family][0] == "transformers":
        assert not again.built  # known by its files' digests: a cached run builds nothing


def reference(folder):
    import transformers
    return (transformers.AutoModel.from_pretrained(folder).eval(), transformers.AutoImageProcessor.from_pretrained(folder),
            transformers.AutoTokenizer.from_pretrained(folder))


def features(out) -> torch.Tensor:
    return torch.nn.functional.normalize(out if isinstance(out, torch.Tensor) else out.pooler_output, dim=-1)


TEXTS = ["a photo of a red circle.", "two small stars at the top left", "a drawing of a big blue heart."]


@pytest.mark.parametrize("name", ["clip", "siglip", "siglip2", "metaclip_2"])
def test_transformers_family_equals_transformers_own_features_and_probabilities(name, folders, cache, no_network):
    import lab
    from lab.studies import zeroshot
    from PIL import Image
    folder = folders[name]
    model = lab.load_model(folder, cache=cache, device="cpu")
    ref, processor, tokenizer = reference(folder)
    rng = np.random.default_rng(0)
    square = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    odd = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(45, 37), (50, 61), (33, 97)]]
    # texts as the model was trained: SigLIP padded to 64 with no mask; CLIP and MetaCLIP 2 with theirs
    tokenizer.padding_side = "right"
    kw = dict(padding="max_length", max_length=64) if "siglip" in name else dict(padding=True)
    inputs = tokenizer(TEXTS, return_tensors="pt", **kw)
    inputs = {k: v for k, v in inputs.items() if k == "input_ids" or (k == "attention_mask" and "siglip" not in name)}
    with torch.no_grad():
        pixels = torch.stack([model.preprocess(im) for im in square])  # (3, 3, 32, 32): the model's size
        ref_same = features(ref.get_image_features(pixel_values=pixels)).numpy()
        ref_odd = features(ref.get_image_features(pixel_values=processor(images=odd, return_tensors="pt")[
            "pixel_values"])).numpy()
        ref_text = features(ref.get_text_features(**inputs)).numpy()
        logits = ref(pixel_values=pixels, **inputs).logits_per_image.numpy()  # (3 images, 3 texts)
    same = model.encode_images(square, progress=False)
    assert (np.sum(same * ref_same, 1) >= 0.99999).all()
    assert (np.sum(model.encode_images(odd, progress=False) * ref_odd, 1) >= 0.999).all()
    text = model.encode_texts(TEXTS, progress=False)
    assert (np.sum(text * ref_text, 1) >= 0.99999).all()
    expected = zeroshot.softmax(logits) if model.link == "softmax" else 1 / (1 + np.exp(-logits))
    ours = zeroshot.probabilities(zeroshot.logits(same, text, **{k: v for k, v in zeroshot.score_args(model).items()
                                                                   if k != "link"}), model.link)
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    assert model.logit_scale == pytest.approx(float(ref.logit_scale.detach().exp()), rel=1e-6)  # unclamped, as trained


def test_a_clip_checkpoint_runs_as_open_clip_with_every_hook_and_its_own_crop_rounding(folders, cache):
    import lab
    from lab.core._towers import CenterCropFloor
    from lab.studies import attribution
    model = lab.load_model(folders["clip"], cache=cache, device="cpu")
    assert type(model.module).__name__ == "CLIP" and attribution.list_methods(model)[0] == "relevance"
    assert any(isinstance(op, CenterCropFloor) for op in model.preprocess.transforms)
    from PIL import Image
    odd = Image.fromarray(np.arange(35 * 32 * 3, dtype=np.uint8).reshape(35, 32, 3))  # a 3-pixel margin
    assert torch.equal(model.preprocess(odd), torch.from_numpy(
        np.asarray(odd)[1:33].astype(np.float32) / 255).permute(2, 0, 1).sub(
        torch.tensor(model.preprocess_cfg["mean"]).view(3, 1, 1)).div(torch.tensor(model.preprocess_cfg["std"]).view(3, 1, 1)))


def test_a_naflex_siglip2_checkpoint_is_refused_saying_why_and_what_to_use(tmp_path):
    import json

    import lab
    from lab.errors import ModelNotAvailable
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip2"}))
    with pytest.raises(ModelNotAvailable, match="NaFlex.*fixed-resolution SigLIP 2 checkpoint"):
        lab.load_model(tmp_path)


def test_a_hub_model_missing_offline_fails_at_once_naming_the_file(monkeypatch, tmp_path):
    import time

    import lab
    from lab.errors import ModelNotAvailable
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    for name, kwargs, needs in [("hf-hub:google/siglip-base-patch16-224", {}, "config.json"),
                                ("ViT-B-16-SigLIP", {"pretrained": "random"}, "tokenizer_config.json")]:
        start = time.perf_counter()
        with pytest.raises(ModelNotAvailable, match=f"{re.escape(name)} needs .*{needs}.*offline"):
            lab.load_model(name, **kwargs)
        assert time.perf_counter() - start < 5


def test_cached_transformers_checkpoints_are_listed_as_available(folders, tmp_path, monkeypatch):
    """A repo in the Hugging Face cache's layout (models--org--name/snapshots/<rev>/...) is listed and loads."""
    import shutil

    import lab
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = tmp_path / "models--lab--tiny-siglip" / "snapshots" / ("0" * 40)
    shutil.copytree(folders["siglip"], snapshot)
    (tmp_path / "models--lab--tiny-siglip" / "refs").mkdir()
    (tmp_path / "models--lab--tiny-siglip" / "refs" / "main").write_text("0" * 40)
    assert "hf-hub:lab/tiny-siglip" in lab.list_models(available=True)
    assert lab.load_model("hf-hub:lab/tiny-siglip", device="cpu").link == "sigmoid"


def _odd_images():
    from PIL import Image
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(45, 37), (50, 61), (33, 97)]]


def test_an_integer_processor_size_is_a_shortest_edge_as_transformers_reads_it(folders, tmp_path, cache):
    """OpenAI's hub configs say "size": 224, "crop_size": 224: a shortest-edge resize and a centre crop."""
    import json
    import shutil

    import lab
    folder = shutil.copytree(folders["clip"], tmp_path / "clip-int-size")
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config.update(size=32, crop_size=32)
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    model = lab.load_model(folder, cache=cache, device="cpu")
    assert (model.preprocess_cfg["resize"], model.preprocess_cfg["crop"]) == (32, [32, 32])
    ref, processor, _ = reference(folder)
    with torch.no_grad():
        expected = features(ref.get_image_features(pixel_values=processor(images=_odd_images(), return_tensors="pt")[
            "pixel_values"])).numpy()
    assert (np.sum(model.encode_images(_odd_images(), progress=False) * expected, 1) >= 0.999).all()


def test_a_half_precision_pytorch_bin_checkpoint_loads_as_fp32_tensors_only(folders, tmp_path, cache):
    import shutil

    import lab
    import transformers
    folder = tmp_path / "siglip-bin"
    shutil.copytree(folders["siglip"], folder, ignore=shutil.ignore_patterns("model.safetensors"))
    half = transformers.AutoModel.from_pretrained(folders["siglip"]).to(torch.bfloat16)
    torch.save(half.state_dict(), folder / "pytorch_model.bin")  # the pickled layout of older hub repos
    assert (folder / "pytorch_model.bin").is_file() and not (folder / "model.safetensors").exists()
    model = lab.load_model(folder, cache=cache, device="cpu")
    assert all(p.dtype == torch.float32 for p in model.module.parameters())
    full = lab.load_model(folders["siglip"], cache=cache, device="cpu")
    assert (np.sum(model.encode_texts(TEXTS, progress=False) * full.encode_texts(TEXTS, progress=False), 1) > 0.99).all()


def test_a_wrapped_clip_and_a_legacy_eos_config_equal_transformers_text_features(folders, tmp_path, cache):
    """CLIP through transformers' own modules (its mask: every token up to the first end-of-text, which is
    also the padding), and a CLIP whose config names end-of-text 2 (transformers' legacy argmax pooling)."""
    import json
    import shutil

    import lab
    from lab.core import _hf
    from lab.core.models import ClipModel
    legacy = shutil.copytree(folders["clip"], tmp_path / "clip-legacy")
    config = json.loads((legacy / "config.json").read_text())
    config["text_config"]["eos_token_id"] = 2
    (legacy / "config.json").write_text(json.dumps(config))
    wrapped = ClipModel.build_now(lambda: _hf.from_transformers(folders["clip"], cache=cache, remap=False),
                                  device="cpu", precision="fp32", cache=cache)
    for folder, model in [(folders["clip"], wrapped), (legacy, lab.load_model(legacy, cache=cache, device="cpu"))]:
        ref, _, tokenizer = reference(folder)
        with torch.no_grad():
            expected = features(ref.get_text_features(**tokenizer(TEXTS, padding=True, return_tensors="pt"))).numpy()
        assert (np.sum(model.encode_texts(TEXTS, progress=False) * expected, 1) >= 0.99999).all()
    assert type(wrapped.module).__name__ == "TransformersCLIP"


def test_a_partly_cached_hub_repo_is_not_a_model_offline_it_names_what_is_missing(folders, tmp_path, monkeypatch):
    """A cache that holds a repo's config alone (AutoConfig ran once) is neither listed nor loaded as complete."""
    import shutil

    import lab
    from lab.errors import ModelNotAvailable
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = tmp_path / "models--lab--half-siglip" / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(folders["siglip"] / "config.json", snapshot)
    (tmp_path / "models--lab--half-siglip" / "refs").mkdir()
    (tmp_path / "models--lab--half-siglip" / "refs" / "main").write_text("1" * 40)
    assert "hf-hub:lab/half-siglip" not in lab.list_models(available=True)
    with pytest.raises(ModelNotAvailable, match="needs model.safetensors or pytorch_model.bin; .*offline"):
        lab.load_model("hf-hub:lab/half-siglip")


def readme_table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows])


BEGIN, END = "<!-- model matrix: begin -->", "<!-- model matrix: end -->"


def readme_block() -> str:
    text = README.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def test_readme_model_table_is_the_one_this_matrix_measures(folders, world, cache, no_network):
    rows = [matrix_row(f, load(f, folders, cache), world) for f in FAMILIES]
    assert readme_block() == readme_table(rows), "README.md's model table is stale: python " \
        "tests/core/test_model_matrix.py --write"


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    import lab
    from lab.data.shapeworld import WorldDataset
    with tempfile.TemporaryDirectory() as tmp:
        hf = {f: save_checkpoint(f, Path(tmp)) for loader, f in FAMILIES.values() if loader == "transformers"}
        cache = lab.EmbeddingCache(Path(tmp) / "cache")
        world = WorldDataset("test", N_IMAGES, image_size=48)
        table = readme_table([matrix_row(f, load(f, hf, cache), world) for f in FAMILIES])
    text = README.read_text()
    README.write_text(text[:text.index(BEGIN) + len(BEGIN)] + "\n" + table + "\n" + text[text.index(END):])
    print(table)
