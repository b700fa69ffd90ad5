"""Independent oracles for the algorithms the lab writes itself: each test recomputes the answer from
the published rule (or with captum) without calling the lab helper under test, so a broken
implementation fails here. `python tests/mutations.py` checks that every listed breakage is caught.
The models and the trainer run on the CPU (device="cpu") on any machine: the oracles build CPU tensors
and compare at fp32 tolerances."""
import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

import lab
from lab.studies import attribution as at
from lab.studies import attribution_metrics as am
from lab.training import train as tr
from lab.training.train import TrainConfig

from conftest import NANO

TEXTS = ["a red circle", "a blue square"]


@pytest.fixture(scope="module")
def block1():
    return lab.load_model("lab-test-vit-1block", pretrained="random", device="cpu")


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]


# -- the oracle's own forward pass: preprocessing, scores, explicit attention ---------------------

def pixels_of(model, images) -> torch.Tensor:
    """Normalized (N, 3, H, W) through the model's own open_clip transform."""
    return torch.stack([model.preprocess(Image.fromarray(im) if isinstance(im, np.ndarray) else im) for im in images])


def text_unit(model, texts) -> torch.Tensor:
    with torch.no_grad():
        t = model.module.encode_text(model.tokenizer(texts))
    return t / t.norm(dim=-1, keepdim=True)  # (P, D)


def similarity(model, texts):
    """x -> (N, P): logit_scale * cosine of the image to each text."""
    t = text_unit(model, texts)

    def f(x):
        img = model.module.encode_image(x)
        return model.logit_scale * (img / img.norm(dim=-1, keepdim=True)) @ t.T
    return f


@contextlib.contextmanager
def einsum_attention(blocks, kept: list):
    """Every block's attention written out with einsum (softmax(QK^T / sqrt(d) + mask) V), the
    probabilities (N, h, L, L) appended to `kept`; patched on the open_clip block, not on lab's path."""
    def explicit(block):
        mha = block.attn

        def attention(q_x, k_x=None, v_x=None, attn_mask=None):
            n, length, dim = q_x.shape
            h = mha.num_heads
            qkv = torch.einsum("nld,ed->nle", q_x, mha.in_proj_weight) + mha.in_proj_bias
            q, k, v = (t.reshape(n, length, h, dim // h) for t in qkv.split(dim, -1))
            logits = torch.einsum("nqhd,nkhd->nhqk", q, k) / (dim // h) ** 0.5
            if attn_mask is not None:
                logits = logits + attn_mask
            A = logits.softmax(-1)
            kept.append(A)
            out = torch.einsum("nhqk,nkhd->nqhd", A, v).reshape(n, length, dim)
            return torch.einsum("nld,ed->nle", out, mha.out_proj.weight) + mha.out_proj.bias
        return attention
    for b in blocks:
        assert b.attn.batch_first  # the einsums read (N, L, D)
        b.attention = explicit(b)
    try:
        yield kept
    finally:
        for b in blocks:
            del b.attention


def minmax(m: np.ndarray) -> np.ndarray:
    lo, hi = m.min(axis=(-2, -1), keepdims=True), m.max(axis=(-2, -1), keepdims=True)
    return (m - lo) / np.maximum(hi - lo, 1e-12)


def bilinear(m: torch.Tensor, size) -> np.ndarray:
    return F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].detach().numpy()


# -- training -------------------------------------------------------------------------------------

def test_clip_loss_on_random_unpaired_features_equals_the_two_cross_entropies():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)  # logits far from symmetric
    scale = torch.tensor(1.3)
    i = img / img.norm(dim=1, keepdim=True)
    t = txt / txt.norm(dim=1, keepdim=True)
    L = np.exp(1.3) * (i @ t.T).numpy().astype(np.float64)  # (B, B) image rows, text columns

    def ce(z):  # mean over rows of -log softmax at the diagonal, written out
        return np.mean([np.log(np.exp(row).sum()) - row[k] for k, row in enumerate(z)])
    expected = (ce(L) + ce(L.T)) / 2
    assert abs(ce(L) - ce(L.T)) > 0.05  # the two directions differ: a one-sided loss would fail below
    assert tr.clip_loss(img, txt, scale).item() == pytest.approx(expected, rel=1e-5)


def test_lr_schedule_end_points():
    cfg = TrainConfig(lr=2e-3, warmup=10, steps=110)
    assert tr.lr_at(0, cfg) == pytest.approx(2e-3 / 10)  # warm-up starts at lr / warmup
    assert tr.lr_at(9, cfg) == pytest.approx(2e-3)  # and reaches lr at its last step
    assert tr.lr_at(10, cfg) == pytest.approx(2e-3)  # cosine from lr ...
    assert tr.lr_at(60, cfg) == pytest.approx(1e-3)  # half-way: lr / 2
    assert tr.lr_at(110, cfg) == pytest.approx(0.0, abs=1e-12)  # ... to 0 at the end


def test_resumed_training_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """Stop after the checkpoint at step 2 of 4, resume: the weights at the end and every loss after
    the restart are those of a run that never stopped (same seed, CPU, no workers)."""
    real_save, real_loss = tr._save, tr.clip_loss
    finals, losses, stop_at = {}, [], None

    def spy_save(path, module, cfg, *a, **k):
        real_save(path, module, cfg, *a, **k)
        if path == cfg.out:  # the final save: keep the fp32 weights (the file holds fp16)
            finals[path] = {n: v.detach().clone() for n, v in module.state_dict().items()}
        elif stop_at and a[3] == stop_at:  # (model_cfg, preprocess_cfg, log, step, ...)
            raise KeyboardInterrupt  # killed right after the resume checkpoint was written

    def spy_loss(*a):
        loss = real_loss(*a)
        losses.append(loss.item())
        return loss
    monkeypatch.setattr(tr, "_save", spy_save)
    monkeypatch.setattr(tr, "clip_loss", spy_loss)
    from lab.data.shapeworld import WorldDataset
    ds = WorldDataset("val", n=16)
    rows = ["path,caption"]
    for k in range(16):
        ds.source(k).save(tmp_path / f"{k}.png")
        rows.append(f"{k}.png,{ds.sample(k).caption}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows))  # a user's pairs file: no validation passes to wait for
    cfg = dict(arch=NANO, data=str(tmp_path / "pairs.csv"), steps=4, batch_size=8, epoch_steps=2, warmup=2,
               workers=0, lr=5e-3, device="cpu")
    log_a = tr.train(TrainConfig(**cfg, out=str(tmp_path / "a.pt")), progress=False)
    straight = losses[:]
    stop_at = 2
    with pytest.raises(KeyboardInterrupt):
        tr.train(TrainConfig(**cfg, out=str(tmp_path / "b.pt")), progress=False)
    assert losses[4:] == straight[:2] and (tmp_path / "b.pt.resume").exists()
    stop_at = None
    del losses[:]
    log_b = tr.train(TrainConfig(**cfg, out=str(tmp_path / "b.pt")), progress=False)
    assert len(losses) == 2 and losses == pytest.approx(straight[2:], rel=1e-5)  # the curve continues
    assert losses[0] != pytest.approx(straight[0], rel=1e-3)  # ... from where it was, not from the start
    a, b = finals[str(tmp_path / "a.pt")], finals[str(tmp_path / "b.pt")]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
    assert [r["step"] for r in log_b] == [2, 4] and log_b[1]["loss"] == pytest.approx(log_a[1]["loss"], rel=1e-5)


# -- Grad-CAM++ -----------------------------------------------------------------------------------

def test_gradcam_plus_plus_equals_the_papers_formula():
    """Chattopadhay et al. 2018, eq. 19 with exp(score) (so higher derivatives are powers of the
    first): alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), w_k = sum_ij alpha relu(g), map = relu(sum_k w_k A_k),
    with g = dY/dA at layer4's output, computed here channel by channel in float64 numpy."""
    model = lab.load_model("lab-rn-tiny", device="cpu")
    from lab.data.shapeworld import WorldDataset
    ds = WorldDataset("test", 4)
    images = [ds.source(i) for i in range(4)]
    result = at.attribute(model, images, TEXTS, method="gradcam++")
    plain = at.attribute(model, images, TEXTS, method="gradcam")
    x = pixels_of(model, images)
    acts = {}
    handle = model.module.visual.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    scores = similarity(model, TEXTS)(x)
    handle.remove()
    nonzero = 0
    for p in range(len(TEXTS)):
        grad = torch.autograd.grad(scores[:, p].sum(), acts["a"], retain_graph=True)[0].double().numpy()
        A = acts["a"].detach().double().numpy()  # (N, C, h, w)
        cams = []
        for n in range(len(images)):
            cam = np.zeros(A.shape[2:])
            for c in range(A.shape[1]):
                g = grad[n, c]
                denom = 2 * g ** 2 + (A[n, c] * g ** 3).sum()
                alpha = np.divide(g ** 2, denom, out=np.zeros_like(g), where=denom != 0)
                cam += (alpha * np.maximum(g, 0)).sum() * A[n, c]
            cams.append(np.maximum(cam, 0))
        expected = bilinear(torch.tensor(np.stack(cams)).float(), x.shape[-2:])
        for n in range(len(images)):
            if expected[n].max() > 0:
                nonzero += 1
                np.testing.assert_allclose(result.maps[n, p], minmax(expected[n]), atol=2e-4)
            else:
                assert not result.maps[n, p].any()
    assert nonzero >= 6  # of 8 maps: the comparison is not vacuous
    assert np.abs(result.maps - plain.maps).max() > 0.05  # and the weighting matters on these images


# -- attention relevance ----------------------------------------------------------------------------

def chefer(attentions, grads, start: int) -> torch.Tensor:
    """R = I; for each block from `start`: R = R + mean_heads(relu(grad * A)) @ R."""
    n, _, length, _ = attentions[0].shape
    R = torch.eye(length).repeat(n, 1, 1)
    for A, g in list(zip(attentions, grads))[start:]:
        R = R + torch.einsum("nhij->nij", torch.relu(g * A)) / A.shape[1] @ R
    return R


@pytest.fixture(scope="module")
def vit_and_images():
    from lab.data.shapeworld import WorldDataset
    ds = WorldDataset("test", 3)
    return lab.load_model("lab-vit-tiny", device="cpu"), [ds.source(i) for i in range(3)]


@pytest.mark.parametrize("start", [0, 2, -1])
def test_relevance_equals_an_independent_rule_on_the_whole_graph(vit_and_images, start):
    """attribute() runs the blocks before the start block without a graph; the rule written here
    with its own attention capture and a graph from the pixels through every block gives the same maps."""
    model, images = vit_and_images
    result = at.attribute(model, images, TEXTS[:1], method="relevance", start_layer=start)
    x = pixels_of(model, images).requires_grad_()
    blocks = model.module.visual.transformer.resblocks
    with einsum_attention(blocks, []) as kept:
        score = similarity(model, TEXTS[:1])(x)[:, 0].sum()
    R = chefer(kept, torch.autograd.grad(score, kept), start % len(blocks))
    expected = bilinear(R[:, 0, 1:].reshape(-1, 8, 8), (64, 64))
    np.testing.assert_allclose(result.maps[:, 0], minmax(expected), atol=1e-4)


@pytest.mark.parametrize("text", ["a photo of a red circle", "two small blue stars"])
def test_text_relevance_by_hand_on_a_one_block_text_transformer(block1, pictures, text):
    """The rule at the end-of-text token's row of R = I + relu(grad * A) over one causal text block."""
    words, rel = at.text_relevance(block1, pictures[0], text)
    tokens = block1.tokenizer([text])[0]
    eot = int((tokens == block1.tokenizer.eot_token_id).nonzero()[0, 0])
    img = F.normalize(block1.module.encode_image(pixels_of(block1, pictures[:1])), dim=-1).detach()
    with einsum_attention(block1.module.transformer.resblocks, []) as kept:
        txt = block1.module.encode_text(tokens[None])
        score = block1.logit_scale * (img * txt / txt.norm()).sum()
    grad = torch.autograd.grad(score, kept[0])[0]
    R = torch.eye(len(tokens)) + torch.relu(grad * kept[0])[0, 0]  # one head, one block
    row = R[eot, 1:eot].detach().numpy()  # the words, without the start and end tokens
    expected = (row - row.min()) / (row.max() - row.min())
    assert words == text.split() and len(set(np.round(expected, 3))) > 2  # distinct values: order matters
    np.testing.assert_allclose(rel, expected, atol=1e-4)


# -- captum methods ---------------------------------------------------------------------------------

def test_integrated_gradients_and_smoothgrad_equal_captum(block1, pictures):
    """SmoothGrad (Smilkov et al. 2017) is captum's Saliency averaged over noisy copies; the lab draws
    the noise from a CPU generator seeded with `seed` (the same on any device), as this oracle does."""
    from captum.attr import IntegratedGradients, Saliency
    images = pictures[:2]
    x = pixels_of(block1, images)
    f = similarity(block1, TEXTS)
    ig = at.attribute(block1, images, TEXTS, method="integrated_gradients", n_steps=6)
    sg = at.attribute(block1, images, TEXTS, method="smoothgrad", nt_samples=5, stdevs=0.2, seed=7)
    for p in range(len(TEXTS)):
        a = IntegratedGradients(f).attribute(x, target=p, n_steps=6).abs().sum(1)
        np.testing.assert_allclose(ig.maps[:, p], minmax(a.detach().numpy()), atol=1e-4)
        g = torch.Generator().manual_seed(7)  # the seed of the first (only) batch
        noise = [torch.randn(x.shape, generator=g) * 0.2 for _ in range(5)]
        s = torch.stack([Saliency(f).attribute(x + e, target=p, abs=True) for e in noise]).mean(0).sum(1)
        np.testing.assert_allclose(sg.maps[:, p], minmax(s.detach().numpy()), atol=1e-4)


# -- deletion / insertion ---------------------------------------------------------------------------

def _probs(model, views, texts, label) -> np.ndarray:
    """Softmax probability of text `label` for uint8 views (N, H, W, 3), computed from scratch."""
    mean = np.array(model.preprocess_cfg["mean"]).reshape(1, 3, 1, 1)
    std = np.array(model.preprocess_cfg["std"]).reshape(1, 3, 1, 1)
    x = torch.tensor((np.stack(views).transpose(0, 3, 1, 2) / 255 - mean) / std, dtype=torch.float32)
    with torch.no_grad():
        return similarity(model, texts)(x).softmax(-1)[:, label].numpy()


def test_deletion_and_insertion_on_hand_worked_cases(block1, pictures):
    texts = ["a red circle", "a blue square", "a green star"]
    views = [np.asarray(block1.preprocess_image(Image.fromarray(im))).transpose(1, 2, 0) for im in pictures]
    blurred = [np.asarray(Image.fromarray(v).filter(ImageFilter.GaussianBlur(4.0))) for v in views]
    labels = [0, 2, 1]
    full, none = (np.array([_probs(block1, [v], texts, k)[0] for v, k in zip(vs, labels)]) for vs in (views, blurred))
    assert np.abs(full - none).min() > 1e-3  # blurring changes every score: the cases below can tell
    # one step: both curves join the original and the fully blurred score, AUC = their mean
    maps = np.random.default_rng(0).random((3, 32, 32))
    d, i = am.deletion_insertion(block1, pictures, maps, texts, labels, steps=1)
    np.testing.assert_allclose(d, (full + none) / 2, atol=1e-5)
    np.testing.assert_allclose(i, (full + none) / 2, atol=1e-5)
    # two steps on a map that ranks the left half first: the midpoint blurs (deletion) or keeps
    # (insertion) exactly the left half
    maps = np.zeros((3, 32, 32))
    maps[:, :, :16] = 1 + np.random.default_rng(1).random((3, 32, 16))
    left = np.zeros((32, 32, 1), bool)
    left[:, :16] = True
    mid_del = np.array([_probs(block1, [np.where(left, b, v)], texts, k)[0] for v, b, k in zip(views, blurred, labels)])
    mid_ins = np.array([_probs(block1, [np.where(left, v, b)], texts, k)[0] for v, b, k in zip(views, blurred, labels)])
    d, i = am.deletion_insertion(block1, pictures, maps, texts, labels, steps=2)
    np.testing.assert_allclose(d, (full + 2 * mid_del + none) / 4, atol=1e-5)  # trapezoid on 0, 1/2, 1
    np.testing.assert_allclose(i, (none + 2 * mid_ins + full) / 4, atol=1e-5)
