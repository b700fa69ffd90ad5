"""Shared fixtures: a fresh cache per test, seeded random CLIPs saved as users' files would be.

The tests load models on the CPU (device="cpu", `--device cpu`, a notebook's `device` parameter) wherever
they compare numbers: on a machine with a GPU, lab.load_model's default is CUDA with fp16 autocast, and the
references here are CPU tensors at fp32 tolerances."""
import warnings
from pathlib import Path

import lab  # noqa: F401  first: the lab's thread policy is in place before torch and numpy load
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

TESTS = Path(__file__).parent
open_clip.add_model_config(TESTS / "model_configs")
NANO = "lab-test-nano"  # 32 px ViT, 32-d embeddings: fast enough to load in every test


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def cache(tmp_path):
    import lab
    return lab.EmbeddingCache(tmp_path / "cache")


@pytest.fixture
def nano(cache):
    import lab
    return lab.load_model(NANO, pretrained="random", cache=cache, device="cpu")  # fp32, as the references


def count_forward(model):
    """Instrument a real model: count the images and texts that go through its towers (the module,
    and the fp16 copy that encodes on CUDA) in this process. CPU DataLoader workers run forwards of
    their own that this counter cannot see: pass num_workers=0 where a count matters."""
    seen = {"images": 0, "texts": 0}

    def counting(module):
        encode_image, encode_text = module.encode_image, module.encode_text

        def counted_image(x, *a, **k):
            seen["images"] += x.shape[0]
            return encode_image(x, *a, **k)

        def counted_text(t, *a, **k):
            seen["texts"] += t.shape[0]
            return encode_text(t, *a, **k)

        module.encode_image, module.encode_text = counted_image, counted_text

    counting(model.module)
    if model._runtime["inference"] is not model.module:
        counting(model._runtime["inference"])
    return seen


def write_images(folder: Path, n: int, size=(40, 48), seed=0, ext="png") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img{i:04d}.{ext}"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def openai_model(arch: str, seed: int = 0):
    """A seeded random open_clip model in OpenAI's layout and activation, weights rounded to fp16
    as in OpenAI's release files."""
    cfg = dict(open_clip.get_model_config(arch))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**cfg, quick_gelu=True)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model.eval()


def lab_image_size(model) -> int:
    size = model.visual.image_size
    return size if isinstance(size, int) else size[0]


@pytest.fixture(scope="session")
def openai_files(tmp_path_factory):
    """{arch: (reference module, state-dict file, TorchScript file)} for RN50 and ViT-B-32."""
    out = {}
    root = tmp_path_factory.mktemp("openai")
    for arch in ("RN50", "ViT-B-32"):
        model = openai_model(arch)
        sd_path = root / f"{arch}-state.pt"
        torch.save({k: v.half() for k, v in model.state_dict().items()}, sd_path)
        ts_path = root / f"{arch}.pt"
        size = lab_image_size(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on data-dependent branches
            traced = torch.jit.trace_module(model, {
                "encode_image": (torch.ones(1, 3, size, size),),
                "encode_text": (torch.zeros(1, model.context_length, dtype=torch.long),)}, check_trace=False)
        traced.save(str(ts_path))  # a TorchScript archive, like OpenAI's release files
        out[arch] = (model, sd_path, ts_path)
    return out


@pytest.fixture
def no_network(monkeypatch):
    """Make name resolution fail, as on an offline machine."""
    import socket

    def offline(*a, **k):
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", offline)
