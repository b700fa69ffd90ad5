"""The embedding's decomposition (lab.studies.decomposition), TextSpan (textspan) and sparse concepts
(sparse_concepts) held to their invariants: parts that sum to the embedding, mean ablations at both ends,
TextSpan's monotone variance, orthogonal picks and exact reconstruction, the positive Lasso's optimality
conditions and scikit-learn's solution, and the decomposition's spatial maps scored like any attribution.

    pytest tests/studies/test_decomposition.py
"""
from __future__ import annotations

import numpy as np
import pytest

import lab
from lab.data import prompts
from lab.data.shapeworld import WorldDataset
from lab.errors import BadInput
from lab.studies import attribution as at, attribution_metrics as am, decomposition as dc, sparse_concepts as sc, \
    textspan as ts, zeroshot


@pytest.fixture(scope="module")
def world():
    return WorldDataset("test", 24, image_size=64)


@pytest.fixture(scope="module")
def tiny():
    return lab.load_model("lab-vit-tiny", device="cpu")


def images(world, n=None):
    return [world.source(i) for i in range(n or len(world))]


def _nonzero_vectors(model):
    """Random biases, layer scales and norm gains (timm's start at 0 or 1): every share of them is tested."""
    import torch
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.module.visual.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


# open_clip's ViT (built-in, OpenAI's B/32, a remapped transformers CLIP); timm's ViT (class token, linear head
# with a bias), EVA02 (fused qkv with q/v biases, rope, SwiGLU) and EVA02-CLIP's B/16 (inner LayerNorm, v_proj)
@pytest.mark.parametrize("name", ["lab-vit-tiny", "ViT-B-32", "transformers-clip", "lab-test-timm-vit-nano",
                                  "lab-test-eva02-nano", "EVA02-B-16"])
def test_parts_sum_to_the_embedding_and_tokens_to_their_head(name, world, cache, tmp_path):
    from _transformers_checkpoints import save_checkpoint
    if name == "transformers-clip":
        model = lab.load_model(save_checkpoint("clip", tmp_path), cache=cache, device="cpu")
    else:
        model = lab.load_model(name, pretrained=None if name == "lab-vit-tiny" else "random", cache=cache, device="cpu")
    if name.startswith(("lab-test", "EVA")):
        _nonzero_vectors(model)
    some = images(world, 6 if name != "EVA02-B-16" else 3)
    d = dc.decompose(model, some, tokens=True, batch_size=4 if name != "EVA02-B-16" else 2)
    assert d.parts.shape[1] == 1 + d.layers * (d.heads + 1) and d.labels[:3] == ["embed", "L0.H0", "L0.H1"]
    assert np.abs(d.parts.sum(1) - model.encode_images(some, progress=False)).max() <= 1e-5
    heads = np.stack([d.head(l, h) for l in range(d.layers) for h in range(d.heads)], 1)  # (N, L*H, D)
    per_token = d.tokens.sum(3).reshape(len(some), -1, d.parts.shape[2])
    assert np.abs(per_token - heads).max() <= 1e-5
    texts = ["a photo of a red circle.", "two blue stars"]
    t = dc.decompose_texts(model, texts)
    assert np.abs(t.parts.sum(1) - model.encode_texts(texts, progress=False)).max() <= 1e-5


def test_other_towers_are_refused_saying_why(cache, tmp_path):
    from _transformers_checkpoints import save_checkpoint
    blank = [np.zeros((32, 32, 3), np.uint8)]
    model = lab.load_model("lab-rn-tiny", device="cpu", cache=cache)
    assert not dc.decomposable(model) and "decomposition" not in at.list_methods(model)
    with pytest.raises(BadInput, match="class-token ViT.*ModifiedResNet"):
        dc.decompose(model, blank)
    with pytest.raises(BadInput, match="class-token ViT.*ModifiedResNet"):
        dc.neuron_effects(model, blank)
    siglip_like = lab.load_model("lab-test-vit-map-nano", pretrained="random", device="cpu", cache=cache)
    with pytest.raises(BadInput, match="pools with 'map', not a class token"):
        dc.decompose(siglip_like, blank)
    siglip = lab.load_model(save_checkpoint("siglip", tmp_path), device="cpu", cache=cache)
    with pytest.raises(BadInput, match="transformers' own tower"):
        dc.decompose(siglip, blank)
    with pytest.raises(BadInput, match="causal text transformer"):
        dc.decompose_texts(siglip, ["a red circle"])


def test_mean_ablation_of_everything_is_one_vector_and_of_nothing_the_embedding(tiny, world):
    d = dc.decompose(tiny, images(world))
    everything = dc.mean_ablate(d.parts, range(d.parts.shape[1]))
    assert np.abs(everything - everything[0]).max() <= 1e-6
    np.testing.assert_allclose(dc.mean_ablate(d.parts, []), tiny.encode_images(images(world), progress=False),
                               atol=1e-5)
    w = zeroshot.class_weights(tiny, prompts.class_prompts(world.classes, ["a photo of a {}."]))
    curve = dc.ablation_curve(d, w, world.labels["label"])
    assert curve["layers_ablated"].tolist() == list(range(d.layers + 1))
    assert curve["accuracy"].iloc[0] == pytest.approx(zeroshot.accuracy(d.parts.sum(1), w, world.labels["label"]))
    constant = (everything[0] @ w.T).argmax()  # every part ablated: one prediction for every image
    assert curve["accuracy"].iloc[-1] == pytest.approx(float((world.labels["label"] == constant).mean()))
    single = dc.head_ablations(d, w, world.labels["label"])
    assert len(single) == d.parts.shape[1] and np.isfinite(single["drop"]).all()


def test_neuron_effects_and_the_output_bias_sum_to_the_mlp_part(tiny, world):
    import torch
    some = images(world, 4)
    d = dc.decompose(tiny, some)
    effects, layers = dc.neuron_effects(tiny, some)  # (N, layers, neurons, D)
    visual = tiny.module.visual
    ln, proj = visual.ln_post, visual.proj
    with torch.no_grad():
        pooled = visual.transformer(visual._embeds(torch.stack([tiny.preprocess(im) for im in some])))[:, 0]
        scale = torch.sqrt(pooled.var(-1, unbiased=False) + ln.eps)[:, None]
        norm = (ln(pooled) @ proj).norm(dim=-1)[:, None]
        for l in layers:
            b = visual.transformer.resblocks[l].mlp.c_proj.bias  # what no neuron writes
            bias_part = (((b - b.mean()) / scale * ln.weight) @ proj + (ln.bias @ proj) / d.parts.shape[1]) / norm
            np.testing.assert_allclose(effects[:, l].sum(1) + bias_part.numpy(), d.parts[:, d.index(f"L{l}.mlp")],
                                       atol=1e-5)


@pytest.mark.parametrize("name", ["lab-test-timm-vit-nano", "EVA02-B-16"])
def test_timm_neuron_writes_and_the_biases_sum_to_the_mlp_output(name, world, cache):
    import torch

    from lab.studies import _neurons
    model = lab.load_model(name, pretrained="random", cache=cache, device="cpu")
    _nonzero_vectors(model)
    visual = model.module.visual
    blocks = visual.trunk.blocks
    assert isinstance(blocks[0].mlp.norm, torch.nn.LayerNorm) == (name == "EVA02-B-16")  # both paths tested
    outputs = {}
    hooks = [b.mlp.register_forward_hook(lambda m, a, out, l=l: outputs.__setitem__(l, out[:, 0]))
             for l, b in enumerate(blocks)]
    pixels = torch.stack([model.preprocess(im) for im in images(world, 2)])
    with torch.no_grad():
        neurons = _neurons.read_neurons(visual, pixels, [0, len(blocks) - 1])
    for h in hooks:
        h.remove()
    for l in neurons.scalars:
        w = neurons.writes(l)  # (N, neurons, W)
        mlp = blocks[l].mlp
        gamma = getattr(blocks[l].ls2, "gamma", 1.0) if hasattr(blocks[l], "ls2") else 1.0
        no_neuron = mlp.fc2.bias + (mlp.fc2.weight @ mlp.norm.bias if isinstance(mlp.norm, torch.nn.LayerNorm) else 0)
        np.testing.assert_allclose((w.sum(1) + no_neuron * gamma).detach().numpy(),
                                   (outputs[l] * gamma).detach().numpy(), atol=1e-5)


def _carried(visual, inputs, probs, z_rows, later_layers, r):
    """A per-token residual write r (N, T, W) carried to the class token by the heads of later_layers, written
    out as the blocks compute it (concatenated heads, then the output projection), every LayerNorm's mean and
    scale frozen at the values the run had, the biases left out -> (N, W)."""
    import torch

    from lab.studies import _neurons, _streams
    blocks = _neurons.blocks_of(visual)
    total = 0
    for l in later_layers:
        block = blocks[l]
        attn, ln = block.attn, block.ln_1 if hasattr(block, "ln_1") else block.norm1
        x = inputs[l]
        y = (r - r.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + ln.eps) * ln.weight
        v = (y @ _streams.value_weight(attn).T).reshape(*y.shape[:2], attn.num_heads, -1).transpose(1, 2)
        z = torch.einsum("nht,nhtd->nhd", probs[l], v).flatten(1)  # (N, H*d): the heads, concatenated
        if isinstance(attn, torch.nn.MultiheadAttention):
            out = z @ attn.out_proj.weight.T
        else:
            if isinstance(attn.norm, torch.nn.LayerNorm):
                z_row = z_rows[l]
                z = (z - z.mean(-1, keepdim=True)) / torch.sqrt(z_row.var(-1, unbiased=False, keepdim=True) +
                                                                attn.norm.eps) * attn.norm.weight
            out = z @ attn.proj.weight.T
        total = total + out * _streams.branch_scale(block, 1)
    return total


@pytest.mark.parametrize("name", ["lab-vit-tiny", "EVA02-B-16"])
def test_second_order_effects_of_a_layers_neurons_and_its_bias_carry_its_mlp_output(name, world, cache):
    """Summed over the neurons (plus the output bias, which no neuron writes), the second-order effects are
    the MLP's whole output at every token carried by the later heads, computed the way the blocks do."""
    import torch

    from lab.studies import _neurons, _streams
    model = lab.load_model(name, pretrained=None if name == "lab-vit-tiny" else "random", cache=cache, device="cpu")
    if name == "EVA02-B-16":
        _nonzero_vectors(model)
    visual = model.module.visual
    blocks = _neurons.blocks_of(visual)
    layer = len(blocks) - 3  # two later layers carry it
    outputs = {}
    hook = blocks[layer].mlp.register_forward_hook(lambda m, a, out: outputs.__setitem__("mlp", out))
    pixels = torch.stack([model.preprocess(im) for im in images(world, 2)])
    with torch.no_grad():
        neurons = _neurons.read_neurons(visual, pixels, [layer], carried=True)
        effects = _neurons.second_order(visual, neurons, layer)  # (N, neurons, W)
    hook.remove()
    mlp = blocks[layer].mlp
    fc, norm = _neurons.mlp_output(mlp)
    no_neuron = fc.bias + (fc.weight @ norm.bias if isinstance(norm, torch.nn.LayerNorm) else 0)
    gamma = _streams.branch_scale(blocks[layer], 2)
    later = range(layer + 1, len(blocks))
    with torch.no_grad():
        whole = _carried(visual, neurons.inputs, neurons.probs, neurons.z_rows, later, outputs["mlp"] * gamma)
        bias = _carried(visual, neurons.inputs, neurons.probs, neurons.z_rows, later,
                        (no_neuron * gamma).expand_as(outputs["mlp"]))
    assert whole.abs().max() > 1e-3  # something is carried
    np.testing.assert_allclose((effects.sum(1) + bias).numpy(), whole.numpy(), atol=1e-4 * whole.abs().max().item())
    table, layers = dc.neuron_effects(model, images(world, 2), order=2)  # (N, layers, neurons, D)
    assert layers == list(range(len(blocks) - 1)) and np.isfinite(table).all()


def test_concept_neurons_rank_the_neurons_writing_along_each_concept(tiny, world, tmp_path):
    table = dc.concept_neurons(tiny, world, ["red", "circle"], k=2, cache=tmp_path, batch_size=10)
    effects, layers = dc.neuron_effects(tiny, images(world))  # (N, layers, neurons, D), every image at once
    assert table["concept"].tolist() == ["red", "red", "circle", "circle"]
    emb = tiny.encode_texts(["red", "circle"], progress=False)
    for c, (concept, rows) in enumerate(table.groupby("concept", sort=False)):
        score = (effects @ (emb[c] - emb.mean(0))).mean(0)  # (layers, neurons), along the centred direction
        assert rows["direct_effect"].tolist() == pytest.approx(np.sort(score.ravel())[::-1][:2], abs=1e-5)
        top = rows.iloc[0]
        assert score[layers.index(top["layer"]), top["neuron"]] == pytest.approx(top["direct_effect"], abs=1e-5)


def test_textspan_explains_more_with_each_pick_orthogonally_and_exactly_at_full_rank():
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 16))  # a head writing in a 3-d subspace of 16
    texts = [f"t{i}" for i in range(30)]
    text_emb = rng.normal(size=(30, 16))  # rich enough: its projection spans the subspace
    span = ts.text_span(outputs, text_emb, texts, m=3)
    explained = span.table["variance_explained"].to_numpy()
    assert (np.diff(explained) >= -1e-12).all() and len(span.subspace) == 3
    gram = span.basis @ span.basis.T
    assert np.abs(gram - np.eye(3)).max() <= 1e-6
    np.testing.assert_allclose(span.reconstruct(outputs), outputs, atol=1e-8)
    assert explained[-1] == pytest.approx(1.0)


def test_describe_heads_names_texts_for_every_head_of_the_last_layers(tiny, world):
    d = dc.decompose(tiny, images(world))
    pool = ts.world_pool(10)
    heads = ts.describe_heads(d, tiny.encode_texts(pool, progress=False), pool, last=1, m=3)
    assert set(heads["layer"]) == {d.layers - 1} and len(heads) == d.heads * 3
    assert heads["text"].isin(pool).all()


def test_sparse_concepts_meet_the_positive_lasso_optimality_and_equal_scikit_learn():
    from sklearn.linear_model import Lasso
    rng = np.random.default_rng(1)
    concepts = rng.normal(size=(25, 12))
    images_emb = np.abs(rng.normal(size=(5, 25))) @ concepts + 0.1 * rng.normal(size=(5, 12))
    fit = sc.sparse_concepts(images_emb, concepts, l1=0.01, tol=1e-12)
    assert sc.kkt_violation(fit) <= 1e-4 and (fit.weights >= 0).all()
    for i in range(5):
        ref = Lasso(alpha=0.01, positive=True, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(
            fit.dictionary.T, fit.targets[i]).coef_
        assert set(np.flatnonzero(ref > 1e-9)) == set(np.flatnonzero(fit.weights[i] > 1e-9))
        np.testing.assert_allclose(fit.weights[i], ref, atol=1e-3)
    top = sc.top_concepts(fit, [f"c{j}" for j in range(25)], k=2)
    assert (top["weight"] > 0).all() and set(top["rank"]) <= {1, 2}


def test_token_parts_from_a_layer_are_the_decompositions_per_token_parts_of_those_layers(tiny, world):
    import torch
    some = images(world, 3)
    full = dc.decompose(tiny, some, tokens=True)  # (N, L, H, T, D)
    pixels = torch.stack([tiny.preprocess(im) for im in some])
    for first in (-1, 1, 0):
        np.testing.assert_allclose(dc.token_parts(tiny, pixels, first).numpy(),
                                   full.tokens[:, first % full.layers:].sum((1, 2)), atol=1e-6)
    with pytest.raises(BadInput, match=f"first_layer={full.layers}: .* has layers 0 .. {full.layers - 1}"):
        dc.token_parts(tiny, pixels, full.layers)


def test_decomposition_maps_are_an_attribution_method_scored_by_the_same_metrics(tiny, world):
    assert at.list_methods(tiny)[:3] == ["relevance", "rollout", "decomposition"]
    some = images(world, 8)
    labels = world.labels["label"].to_numpy()[:8]
    texts = [f"a photo of a {c}." for c in world.classes]
    r = at.attribute(tiny, some, texts, method="decomposition", labels=labels, progress=False, cache=False)
    assert r.maps.shape == (8, 1, tiny.image_size, tiny.image_size) and np.isfinite(r.maps).all()
    masks, boxes = am.world_targets(tiny, world, range(8))
    assert np.isfinite(am.pointing_game(r.maps[:, 0], masks, 2)).all()
    deletion, insertion = am.deletion_insertion(tiny, some, r.maps[:, 0], texts, labels, steps=4)
    assert np.isfinite(deletion).all() and np.isfinite(insertion).all()


def test_notebook_07_runs_through_papermill(tmp_path, monkeypatch):
    from pathlib import Path

    from lab.report import run_report
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    nb = Path(__file__).parents[2] / "notebooks" / "07_inside_the_embedding.ipynb"
    params = {"n_images": 40, "n_metric": 8, "n_show": 2, "last_layers": 1, "m": 3, "device": "cpu"}
    entry = run_report([nb], params, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    results = entry["run"]["results"]
    assert results["max_sum_gap"] <= 1e-5 and 0 < results["sparse/mean_l0"]
    assert {"spatial/decomposition/pointing_game", "spatial/random/pointing_game"} <= set(results)
    assert any("textspan" in f for f in entry["figures"])
