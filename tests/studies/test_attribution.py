"""Attribution: Grad-CAM against an independent implementation, Chefer relevance against a hand
computation on one block, the attention swap leaving the model untouched, batching, metrics on
hand cases, and the sanity check that a randomized model's maps differ. The models run on the CPU
(device="cpu") on any machine: the independent computations build CPU tensors at fp32 tolerances."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lab
from lab.studies import attribution as at
from lab.studies import attribution_metrics as am
from lab.data.world import SHAPES
from lab.data.shapeworld import WorldDataset
from lab.errors import BadInput

TEXTS = ["a red circle", "a blue square"]


@pytest.fixture(scope="module")
def world():
    ds = WorldDataset("test", 12)
    return ds, [ds.source(i) for i in range(12)]


@pytest.fixture(scope="module")
def rn():
    return lab.load_model("lab-rn-tiny", device="cpu")


@pytest.fixture(scope="module")
def vit():
    return lab.load_model("lab-vit-tiny", device="cpu")


def corr(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_gradcam_agrees_with_an_independent_implementation(rn, world):
    _, images = world
    result = at.attribute(rn, images, TEXTS, method="gradcam")
    pixels, _ = at.model_inputs(rn, images)
    text = F.normalize(torch.from_numpy(rn.encode_texts(TEXTS, progress=False)), dim=-1)
    acts = {}
    handle = rn.module.visual.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    img = F.normalize(rn.module.encode_image(pixels), dim=-1)
    handle.remove()
    scores = rn.logit_scale * img @ text.T  # (N, P)
    nonzero = 0
    for p in range(len(TEXTS)):
        grad = torch.autograd.grad(scores[:, p].sum(), acts["a"], retain_graph=True)[0]  # (N, C, h, w)
        cam = F.relu((grad.mean((2, 3), keepdim=True) * acts["a"]).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=pixels.shape[-2:], mode="bilinear", align_corners=False)[:, 0].detach()
        for n in range(len(images)):
            if cam[n].max() > 0:
                nonzero += 1
                assert corr(cam[n].numpy(), result.maps[n, p]) >= 0.99
            else:  # ReLU left nothing: lab's map is all zero too
                assert not result.maps[n, p].any()
    assert nonzero >= 20  # of 24 maps: the comparison is not vacuous
    np.testing.assert_allclose(result.scores, scores.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_relevance_on_one_block_equals_the_hand_computed_rule():
    model = lab.load_model("lab-test-vit-1block", pretrained="random", device="cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    result = at.attribute(model, images, ["a cat"], method="relevance")
    # by hand: the block's attention written out with einsum (independent of lab's code), checked
    # against the stock module, with the probabilities kept for their gradient
    block = model.module.visual.transformer.resblocks[0]
    mha, kept = block.attn, {}

    def attention(q_x, k_x=None, v_x=None, attn_mask=None):
        n, length, dim = q_x.shape
        h = mha.num_heads
        qkv = torch.einsum("nld,ed->nle", q_x, mha.in_proj_weight) + mha.in_proj_bias
        q, k, v = (t.reshape(n, length, h, dim // h) for t in qkv.split(dim, -1))
        A = torch.einsum("nqhd,nkhd->nhqk", q, k).div((dim // h) ** 0.5).softmax(-1)
        kept["A"] = A
        out = torch.einsum("nhqk,nkhd->nqhd", A, v).reshape(n, length, dim)
        out = torch.einsum("nld,ed->nle", out, mha.out_proj.weight) + mha.out_proj.bias
        stock = mha(q_x, q_x, q_x, need_weights=False)[0]
        torch.testing.assert_close(out, stock, atol=1e-5, rtol=1e-5)
        return out
    block.attention = attention
    try:
        pixels, _ = at.model_inputs(model, images)
        text = F.normalize(torch.from_numpy(model.encode_texts(["a cat"], progress=False)), dim=-1)
        score = (model.logit_scale * F.normalize(model.module.encode_image(pixels), dim=-1) @ text.T).sum()
        grad = torch.autograd.grad(score, kept["A"])[0]
    finally:
        del block.attention
    A = kept["A"]
    L = A.shape[-1]
    R = torch.eye(L) + (grad * A).clamp(min=0).mean(1) @ torch.eye(L)  # one block: R = I + cam @ I
    expected = F.interpolate(R[:, 0, 1:].reshape(-1, 1, 4, 4), size=(32, 32), mode="bilinear", align_corners=False)
    lo = expected.flatten(1).min(1).values[:, None, None, None]
    hi = expected.flatten(1).max(1).values[:, None, None, None]
    np.testing.assert_allclose(result.maps[:, 0], ((expected - lo) / (hi - lo))[:, 0].detach().numpy(), atol=1e-4)


def test_attention_swap_is_reversible_and_exact(vit, world):
    _, images = world
    pixels, _ = at.model_inputs(vit, images[:4])
    with torch.no_grad():
        before = vit.module.encode_image(pixels)
        with at.keep_attention(vit.module.visual.transformer) as attentions:
            during = vit.module.encode_image(pixels)
        after = vit.module.encode_image(pixels)
    assert len(attentions) == 4 and attentions[0].shape == (4, 4, 65, 65)  # blocks, (N, heads, 1 + 8x8, ...)
    torch.testing.assert_close(during, before, atol=1e-5, rtol=1e-5)  # explicit attention = stock attention
    torch.testing.assert_close(after, before)  # and the stock forward is back
    assert "forward" not in vars(vit.module.visual.transformer.resblocks[0].attn)


@pytest.mark.parametrize("method", ["relevance", "rollout", "integrated_gradients", "occlusion"])
def test_batched_maps_equal_one_by_one(vit, world, method):
    _, images = world
    batch = at.attribute(vit, images[:4], TEXTS, method=method, batch_size=4)
    single = [at.attribute(vit, [im], TEXTS, method=method, batch_size=1) for im in images[:4]]
    np.testing.assert_allclose(batch.maps, np.concatenate([s.maps for s in single]), atol=2e-4)
    np.testing.assert_allclose(batch.scores, np.concatenate([s.scores for s in single]), rtol=1e-5, atol=1e-5)


def test_occlusion_scores_every_text_from_one_set_of_forward_passes(vit, world):
    from captum.attr import Occlusion
    _, images = world
    result = at.attribute(vit, images[:2], TEXTS, method="occlusion", window=16)
    pixels, _ = at.model_inputs(vit, images[:2])
    f = at.score_fn(vit, torch.from_numpy(vit.encode_texts(TEXTS, progress=False)))
    for p in range(len(TEXTS)):  # captum, one text at a time
        a = Occlusion(f).attribute(pixels, target=p, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8),
                                   baselines=0.0).sum(1).clamp(min=0)
        np.testing.assert_allclose(result.maps[:, p], at._normalize_maps(a), atol=1e-5)
    chunked = at.attribute(vit, images[:2], TEXTS, method="occlusion", window=16, maps_per_pass=2)  # a text a pass
    np.testing.assert_allclose(chunked.maps, result.maps, atol=1e-6)
    own = at.attribute(vit, images[:2], TEXTS, method="occlusion", labels=[1, 0], window=16)
    np.testing.assert_allclose(own.maps[:, 0], result.maps[[0, 1], [1, 0]], atol=1e-5)


def test_maps_are_normalized_aligned_and_methods_are_checked(vit, rn, world):
    _, images = world
    r = at.attribute(vit, images[:3], TEXTS, method="smoothgrad", nt_samples=4)
    assert r.maps.shape == (3, 2, 64, 64) and r.views.shape == (3, 64, 64, 3)
    assert np.allclose(r.maps.max((2, 3)), 1) and np.allclose(r.maps.min((2, 3)), 0)
    assert at.attribute(rn, images[:2], TEXTS).maps.shape == (2, 2, 96, 96)  # RN's input view is 96 px
    assert at.attribute(rn, images[:2], TEXTS).method == "gradcam"
    with pytest.raises(BadInput, match="does not apply"):
        at.attribute(rn, images[:1], TEXTS, method="relevance")
    with pytest.raises(BadInput, match="layer 'layer9' not found"):
        at.attribute(rn, images[:1], TEXTS, method="gradcam", layer="layer9")


def test_text_relevance_names_the_tokens(vit, world):
    _, images = world
    words, rel = at.text_relevance(vit, images[0], "a photo of a red circle")
    assert words == ["a", "photo", "of", "a", "red", "circle"] and rel.shape == (6,) and rel.max() == 1.0


def test_metrics_on_hand_cases():
    maps = np.zeros((2, 8, 8))
    maps[0, 2, 2] = 1  # peak on the object
    maps[1, 7, 7] = 1  # peak two pixels (diagonally) away from it
    masks = np.zeros((2, 8, 8), bool)
    masks[:, 1:4, 1:4] = True
    masks[1, 4:6, 4:6] = True
    assert am.pointing_game(maps, masks).tolist() == [True, False]
    assert am.pointing_game(maps, masks, tolerance=2).tolist() == [True, True]
    m = np.ones((1, 4, 4))
    assert am.box_energy(m, [[(0, 0, 2, 2)]]).tolist() == [0.25]
    assert am.box_energy(m, [[(0, 0, 2, 2), (2, 2, 4, 4)]]).tolist() == [0.5]
    assert am._auc(np.array([[1.0, 1.0, 1.0], [0.0, 0.5, 1.0]])).tolist() == [1.0, 0.5]


def test_good_maps_beat_random_ones_and_randomized_models_differ(vit):
    ds = WorldDataset("test", 24)
    idx = range(24)
    images, labels = [ds.source(i) for i in idx], ds.labels["label"].to_numpy()
    texts = [f"a photo of a {s}." for s in SHAPES]
    masks, boxes = am.world_targets(vit, ds, idx)
    assert masks.shape == (24, 64, 64) and masks.any((1, 2)).all()
    smooth = at.attribute(vit, images, texts, method="smoothgrad", target="softmax").maps[np.arange(24), labels]
    noise = at.attribute(vit, images, texts, method="random").maps[:, 0]
    assert am.pointing_game(smooth, masks, 1).mean() > am.pointing_game(noise, masks, 1).mean() + 0.3
    assert am.box_energy(smooth, boxes).mean() > am.box_energy(noise, boxes).mean()
    d_good, i_good = am.deletion_insertion(vit, images, smooth, texts, labels)
    d_rand, i_rand = am.deletion_insertion(vit, images, noise, texts, labels)
    assert d_good.mean() < d_rand.mean() and i_good.mean() > i_rand.mean()
    # Adebayo et al.: a model with random weights must not give the same maps
    random_model = lab.load_model("lab-vit-tiny", pretrained="random", device="cpu")
    trained = at.attribute(vit, images[:8], texts[:1], method="relevance").maps
    scrambled = at.attribute(random_model, images[:8], texts[:1], method="relevance").maps
    assert np.mean([corr(a, b) for a, b in zip(trained, scrambled)]) < 0.5


def test_notebook_runs_through_papermill(tmp_path, monkeypatch):
    from pathlib import Path

    import pandas as pd

    from lab.report import run_report
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    nb = Path(__file__).parents[2] / "notebooks" / "03_attribution.ipynb"
    params = {"indices": [0, 1], "methods": ["rollout", "gradcam", "random"], "n_metric": 12,
              "metric_methods": ["rollout", "gradcam", "random"], "steps": 4, "device": "cpu"}
    entry = run_report([nb], params, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    metrics = pd.read_csv(tmp_path / "out" / "03_attribution" / "metrics.csv")
    assert set(zip(metrics["model"], metrics["method"])) == {
        ("lab-vit-tiny", "rollout"), ("lab-vit-tiny", "random"), ("lab-rn-tiny", "gradcam"), ("lab-rn-tiny", "random")}
    assert metrics[["pointing_game", "box_energy", "deletion_auc", "insertion_auc"]].stack().between(0, 1).all()
    assert entry["run"]["results"]["lab-vit-tiny/rollout/pointing_game"] == pytest.approx(
        metrics.set_index(["model", "method"]).loc[("lab-vit-tiny", "rollout"), "pointing_game"])
    assert any("prompts_lab-rn-tiny" in f for f in entry["figures"])


def test_attention_swap_checks_first_and_restores_what_was_there(vit):
    blocks = vit.module.visual.transformer.resblocks
    mine = lambda *a, **k: None  # noqa: E731  an instance-level forward set by someone else
    blocks[0].attn.forward = mine
    original = blocks[1].attn
    blocks[1].attn = torch.nn.Identity()  # a block lab cannot explain
    try:
        with pytest.raises(BadInput, match="Identity"):
            with at.keep_attention(vit.module.visual.transformer):
                pass
        assert vars(blocks[0].attn)["forward"] is mine and "forward" not in vars(blocks[2].attn)  # nothing patched
    finally:
        blocks[1].attn = original
    with at.keep_attention(vit.module.visual.transformer):
        assert vars(blocks[0].attn)["forward"] is not mine
    assert vars(blocks[0].attn)["forward"] is mine  # restored, not deleted
    del blocks[0].attn.forward


def test_rollout_and_relevance_rules_by_hand():
    A1 = torch.tensor([[[[0.5, 0.5], [0.2, 0.8]]]])  # (N=1, h=1, L=2, L=2)
    A2 = torch.tensor([[[[0.9, 0.1], [0.3, 0.7]]]])
    eye = torch.eye(2)

    def step(a):
        a = 0.5 * a[0, 0] + 0.5 * eye
        return a / a.sum(-1, keepdim=True)
    torch.testing.assert_close(at.rollout_from_attention([A1, A2])[0], step(A2) @ step(A1))
    G1, G2 = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]]), torch.tensor([[[[-1.0, 3.0], [1.0, 1.0]]]])
    R1 = eye + (G1 * A1).clamp(min=0)[0, 0] @ eye
    R2 = R1 + (G2 * A2).clamp(min=0)[0, 0] @ R1
    torch.testing.assert_close(at.relevance_from_attention([A1, A2], [G1, G2], start_layer=0)[0], R2)
    torch.testing.assert_close(at.relevance_from_attention([A1, A2], [G1, G2])[0],
                               eye + (G2 * A2).clamp(min=0)[0, 0])  # default: the last block only
    with pytest.raises(BadInput, match="start_layer=2"):
        at.relevance_from_attention([A1, A2], [G1, G2], start_layer=2)


def test_bad_targets_and_frozen_weights(vit, rn, world):
    _, images = world
    with pytest.raises(BadInput, match="must index the 2 texts"):
        at.attribute(vit, images[:2], TEXTS, labels=[0, 2])
    for p in vit.module.parameters():
        p.requires_grad_(False)
    try:
        words, rel = at.text_relevance(vit, images[0], "a red circle")  # works without weight gradients
        assert words == ["a", "red", "circle"] and np.isfinite(rel).all()
    finally:
        for p in vit.module.parameters():
            p.requires_grad_(True)
    plus = at.attribute(rn, images[:3], TEXTS, method="gradcam++").maps
    plain = at.attribute(rn, images[:3], TEXTS, method="gradcam").maps
    assert np.isfinite(plus).all() and plus.shape == plain.shape and not np.allclose(plus, plain)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_gradcam_on_a_layer_followed_by_an_in_place_op(rn, world, method):
    _, images = world
    pixels, _ = at.model_inputs(rn, images[:2])
    layer = rn.module.visual.layer4[0].bn1  # ReLU(inplace=True) follows it
    f = at.score_fn(rn, torch.from_numpy(rn.encode_texts(TEXTS, progress=False)))
    result = at.attribute(rn, images[:2], TEXTS, method=method, layer="layer4.0.bn1")
    if method == "gradcam":  # the same through a graph from the pixels
        from captum.attr import LayerAttribution, LayerGradCam
        a = LayerGradCam(f, layer).attribute(pixels.requires_grad_(), target=1, relu_attributions=True)
        expected = LayerAttribution.interpolate(a, (96, 96), interpolate_mode="bilinear")[:, 0]
        np.testing.assert_allclose(result.maps[:, 1], at._normalize_maps(expected), atol=1e-5)
    assert np.isfinite(result.maps).all() and result.maps.max() == 1


def test_smoothgrad_is_seeded(vit, world):
    _, images = world
    vit.module  # built first: building initialises weights from the global generator before loading them
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = at.attribute(vit, images[:2], TEXTS, method="smoothgrad", nt_samples=4, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    np.testing.assert_array_equal(a.maps, at.attribute(vit, images[:2], TEXTS, method="smoothgrad",
                                                       nt_samples=4, seed=5, cache=False).maps)
    assert not np.allclose(a.maps, at.attribute(vit, images[:2], TEXTS, method="smoothgrad",
                                                nt_samples=4, seed=6).maps)


def test_rank_correlation_of_maps_with_themselves_and_reversed():
    a = np.random.default_rng(0).random((3, 4, 4))
    assert am.rank_correlation(a, a) == pytest.approx(1.0)
    assert am.rank_correlation(a, -a) == pytest.approx(-1.0)


def test_object_shares_are_each_maps_mass_on_each_object():
    """A stand-in model whose preprocessing keeps the pixels, so the masks stay as drawn."""
    from types import SimpleNamespace
    model = SimpleNamespace(name="m", preprocess_image=lambda img: torch.from_numpy(np.array(img)).permute(2, 0, 1))
    maps = np.random.default_rng(1).random((1, 2, 4, 4)).astype(np.float32)
    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    found = am.object_shares(model, SimpleNamespace(maps=maps, scores=np.array([[3.0, 4.0]]), method="random",
                                                    texts=["a", "b"]), {"left": left, "right": ~left})
    assert list(found.columns) == ["model", "method", "prompt", "score", "share on left", "share on right"]
    assert found["share on left"].tolist() == pytest.approx([maps[0, p][:, :2].sum() / maps[0, p].sum() for p in (0, 1)])
    assert (found["share on left"] + found["share on right"]).tolist() == pytest.approx([1.0, 1.0])
    assert found["score"].tolist() == [3.0, 4.0]


def test_randomization_check_of_a_model_against_itself_is_one(vit, world):
    _, images = world
    table = am.randomization_check(vit, vit, images[:2], ["a red circle"], ["rollout"], [0, 0])
    assert table.to_dict("records") == [{"model": vit.name, "method": "rollout",
                                         "rank correlation trained vs random weights": pytest.approx(1.0)}]
