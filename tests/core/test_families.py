"""Image-tower families (lab.core.families) held to references computed without them: relevance on a timm
ViT with an attention-pooling head against the rule applied to attention probabilities from a forward pass
written out here, Grad-CAM on ConvNeXt against Grad-CAM by hand, the same CLIP weights in open_clip's and
transformers' layouts, batched against one by one, and every family of the model matrix offering a
non-pixel method first.

    pytest tests/core/test_families.py
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lab.studies import attribution as at
from test_model_matrix import FAMILIES, folders, load  # noqa: E402,F401  the matrix's families, folders, loader

TEXTS = ["a photo of a red circle.", "a photo of a blue square."]


@pytest.fixture(scope="module")
def images():
    from lab.data.shapeworld import WorldDataset
    world = WorldDataset("test", 3, image_size=48)
    return [world.source(i) for i in range(3)]


def pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_offers_its_own_method_first_and_batches_equal_one_by_one(family, folders, images, cache):
    model = load(family, folders, cache)
    first = at.list_methods(model)[0]
    assert first not in at.PIXEL_METHODS
    batched = at.attribute(model, images, TEXTS, method=first, batch_size=3, progress=False, cache=False)
    single = at.attribute(model, images, TEXTS, method=first, batch_size=1, progress=False, cache=False)
    np.testing.assert_allclose(batched.maps, single.maps, atol=2e-4)
    assert np.isfinite(batched.maps).all()  # (a random ResNet's Grad-CAM may be all zero: every weight negative)


def _timm_vit_scores_and_attention(model, pixels, text):
    """A timm ViT with a latent attention pool, forward written out block by block with explicit softmax
    attention (nothing of the lab's hooks) -> (score (N,), block probabilities, probe probabilities)."""
    visual = model.module.visual
    trunk = visual.trunk
    x = trunk.norm_pre(trunk.patch_drop(trunk._pos_embed(trunk.patch_embed(pixels))))  # (N, L, C)
    blocks = []
    for blk in trunk.blocks:
        a, h = blk.attn, blk.norm1(x)
        n, length, dim = h.shape
        q, k, v = a.qkv(h).reshape(n, length, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = a.q_norm(q), a.k_norm(k)
        probs = ((q * a.scale) @ k.transpose(-2, -1)).softmax(-1)  # (N, h, L, L)
        blocks.append(probs)
        x = x + blk.ls1(a.proj((probs @ v).transpose(1, 2).reshape(n, length, dim)))
        x = x + blk.ls2(blk.mlp(blk.norm2(x)))
    x = trunk.norm(x)
    start = 0 if trunk.pool_include_prefix else trunk.num_prefix_tokens
    x = x[:, start:]  # what the pool attends to
    pool = trunk.attn_pool
    n, length, dim = x.shape
    q = pool.q_norm(pool.q(pool.latent.expand(n, -1, -1)).reshape(n, 1, pool.num_heads, pool.head_dim).transpose(1, 2))
    k, v = pool.kv(x).reshape(n, length, 2, pool.num_heads, pool.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    probe = ((q * pool.scale) @ pool.k_norm(k).transpose(-2, -1)).softmax(-1)  # (N, h, 1, L)
    pooled = pool.proj((probe @ v).transpose(1, 2).reshape(n, 1, dim))
    pooled = (pooled + pool.mlp(pool.norm(pooled)))[:, 0]
    emb = F.normalize(visual.head(trunk.head(trunk.head_drop(trunk.fc_norm(pooled)))), dim=-1)  # (N, D)
    return model.logit_scale * (emb @ text), blocks, probe, start


def test_timm_vit_relevance_equals_the_rule_on_attention_taken_without_the_lab(images, cache):
    import lab
    model = lab.load_model("lab-test-vit-map-nano", pretrained="random", cache=cache, device="cpu")
    assert at.family(model).name == "timm ViT" and at.family(model).pooling(model.module.visual) == "map"
    ours = at.attribute(model, images, TEXTS[:1], method="relevance", start_layer=0, progress=False, cache=False)
    pixels, _ = at.model_inputs(model, images)
    text = torch.from_numpy(model.encode_texts(TEXTS[:1], progress=False))[0]  # (D,)
    with torch.enable_grad():
        score, blocks, probe, start = _timm_vit_scores_and_attention(model, pixels.requires_grad_(), text)
        grads = torch.autograd.grad(score.sum(), blocks + [probe])
    R = at.relevance_from_attention(blocks, grads[:-1], 0)  # (N, L, L)
    weights = (grads[-1] * probe).clamp(min=0).mean(1)[:, 0]  # (N, L)
    rows, cols = model.module.visual.trunk.patch_embed.grid_size
    prefix = model.module.visual.trunk.num_prefix_tokens
    tokens = (weights[:, None] @ R[:, start:])[:, 0, prefix:].reshape(-1, rows, cols)
    reference = F.interpolate(tokens[:, None], size=pixels.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    for i in range(len(images)):
        assert pearson(ours.maps[i, 0], reference[i].detach().numpy()) >= 0.99


def test_gradcam_on_convnext_equals_gradcam_by_hand(folders, images, cache):
    model = load("ConvNeXt (timm)", folders, cache)
    assert at.family(model).gradcam_layer(model.module.visual) == "trunk.stages.3"
    ours = at.attribute(model, images, TEXTS[:1], method="gradcam", progress=False, cache=False).maps[:, 0]
    pixels, _ = at.model_inputs(model, images)
    text = torch.from_numpy(model.encode_texts(TEXTS[:1], progress=False))[0]
    kept = {}
    handle = model.module.visual.trunk.stages[3].register_forward_hook(lambda m, i, o: kept.__setitem__("a", o))
    with torch.enable_grad():
        try:
            emb = F.normalize(model.module.encode_image(pixels.requires_grad_()), dim=-1)
        finally:
            handle.remove()
        grad = torch.autograd.grad((model.logit_scale * emb @ text).sum(), kept["a"])[0]  # (N, C, h, w)
    cam = F.relu((grad.mean((2, 3), keepdim=True) * kept["a"]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=pixels.shape[-2:], mode="bilinear", align_corners=False)[:, 0].detach()
    lo, hi = cam.flatten(1).min(1).values[:, None, None], cam.flatten(1).max(1).values[:, None, None]
    np.testing.assert_allclose(ours, ((cam - lo) / (hi - lo).clamp(min=1e-12)).numpy(), atol=1e-4)


def test_the_same_clip_in_open_clips_and_transformers_layouts_gives_the_same_maps(folders, images, cache):
    from lab.core import _hf
    from lab.core.models import ClipModel
    remapped = load("CLIP / MetaCLIP (transformers)", folders, cache)
    wrapped = ClipModel.build_now(lambda: _hf.from_transformers(folders["clip"], cache=cache, remap=False),
                                  device="cpu", precision="fp32", cache=cache)
    assert (at.family(remapped).name, at.family(wrapped).name) == ("open_clip ViT", "transformers ViT")
    for method in ("relevance", "rollout"):
        a = at.attribute(remapped, images, TEXTS, method=method, start_layer=0, progress=False, cache=False).maps
        b = at.attribute(wrapped, images, TEXTS, method=method, start_layer=0, progress=False, cache=False).maps
        assert pearson(a, b) >= 0.999, method


def test_layer_takes_any_module_name_and_names_the_children_when_wrong(folders, images, cache):
    from lab.errors import BadInput
    model = load("ConvNeXt (timm)", folders, cache)
    maps = at.attribute(model, images[:1], TEXTS[:1], method="gradcam", layer="trunk.stages.2", progress=False,
                        cache=False).maps
    assert maps.shape == (1, 1, model.image_size, model.image_size)
    with pytest.raises(BadInput, match=r"layer 'trunk.stage9' not found.*\['trunk', 'head'\]"):
        at.attribute(model, images[:1], TEXTS[:1], method="gradcam", layer="trunk.stage9", progress=False, cache=False)


def test_notebook_03_runs_on_an_eva02_a_convnext_and_a_transformers_siglip(folders, tmp_path, monkeypatch):
    """-p models with checkpoint files of random EVA02 and ConvNeXt towers (lab's format: the config travels
    in the file, so the notebook's kernel needs no test config) and a transformers SigLIP folder: every cell
    runs, each family's own method is measured and its metrics are finite, the randomized twin included."""
    from pathlib import Path

    import pandas as pd

    import lab
    from lab.core.checkpoints import LAB_FORMAT
    from lab.report import run_report
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    files = []
    for family in ("EVA02 (timm ViT, rope)", "ConvNeXt (timm)"):
        model = load(family, folders, lab.EmbeddingCache(tmp_path / "build"))
        files.append(tmp_path / f"{FAMILIES[family][1]}.pt")
        torch.save({"format": LAB_FORMAT, "arch": None, "model_cfg": model.model_cfg, "state_dict": model.module.state_dict()},
                   files[-1])
    nb = Path(__file__).parents[2] / "notebooks" / "03_attribution.ipynb"
    params = {"models": [str(f) for f in files] + [str(folders["siglip"])], "indices": [0], "n_metric": 6,
              "metric_methods": ["relevance", "gradcam", "random"], "methods": ["relevance", "gradcam"], "steps": 4,
              "device": "cpu", "batch_size": 6}
    entry = run_report([nb], params, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    metrics = pd.read_csv(tmp_path / "out" / "03_attribution" / "metrics.csv")
    assert sorted(metrics.groupby("model")["method"].apply(lambda m: sorted(set(m) - {"random"})[0])) == \
        ["gradcam", "relevance", "relevance"]
    assert np.isfinite(metrics[["pointing_game", "box_energy", "deletion_auc", "insertion_auc"]].to_numpy()).all()
    sanity = pd.read_csv(tmp_path / "out" / "03_attribution" / "sanity.csv")
    assert len(sanity) == 3 and np.isfinite(sanity.iloc[:, -1]).all()  # a randomized twin for each
