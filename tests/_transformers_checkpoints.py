"""Small seeded-random transformers checkpoints, saved as folders the way the hub serves them
(config.json, model.safetensors, tokenizer and processor files), made offline: CLIP with OpenAI's BPE
(vocab.json / merges.txt rebuilt from open_clip's bundled bpe_simple_vocab_16e6.txt.gz), SigLIP with a
sentencepiece model trained on ShapeWorld's words, SigLIP 2 (fixed resolution: model_type siglip) with
Gemma's BPE tokenizer (left padding by default, as the hub's SigLIP 2 repos ship it), and MetaCLIP 2 with an XLM-R-style unigram tokenizer.

    folder = save_checkpoint("siglip", tmp_path)   # -> tmp_path / "siglip"
    FAMILIES                                       # the names save_checkpoint takes

Used by tests/core/test_model_matrix.py and benchmarks/bench_transformers.py.
"""
from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

__all__ = ["FAMILIES", "IMAGE_SIZE", "PATCH_SIZE", "TOWER", "corpus", "save_checkpoint"]

FAMILIES = ("clip", "siglip", "siglip2", "metaclip_2")
IMAGE_SIZE, PATCH_SIZE = 32, 8
TOWER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)


def corpus() -> list[str]:
    """ShapeWorld's words in the sentences its prompts make: what the small tokenizers are trained on."""
    from lab.data.world import COLOURS, COUNTS, POSITIONS, SHAPES, SIZES, TEMPLATES
    things = [f"{s} {c} {shape}" for s, c, shape in itertools.product(SIZES, COLOURS, SHAPES)]
    extra = [f"{n} {shape}s at the {p}" for n, shape, p in itertools.product(COUNTS, SHAPES, POSITIONS)]
    return [t.format(x) for t, x in itertools.product(TEMPLATES, things)] + extra


def _clip_tokenizer(folder: Path):
    import open_clip
    from transformers import CLIPTokenizer
    bpe = open_clip.SimpleTokenizer()
    merges = [" ".join(pair) for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])]
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # OpenAI's spelling
    (folder / "vocab.json").write_text(json.dumps({names.get(k, k): i for k, i in bpe.encoder.items()}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)


def _sentencepiece(vocab_size: int = 160) -> bytes:
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus()), model_writer=model, vocab_size=vocab_size,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    return model.getvalue()


def _siglip_tokenizer(folder: Path):
    from transformers import SiglipTokenizer
    (folder / "spiece.model").write_bytes(_sentencepiece())
    return SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=64)


def _siglip2_tokenizer(folder: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizer
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return GemmaTokenizer(vocab=model["vocab"], merges=merges, model_max_length=64)  # as google/siglip2-* ship


def _metaclip2_tokenizer(folder: Path):
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer
    sp = spm.SentencePieceProcessor(model_proto=_sentencepiece())
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size()) if not sp.is_control(i)
              and not sp.is_unknown(i)]
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + pieces + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=77)


def _image_processor(family: str, image_size: int):
    from transformers import CLIPImageProcessor, SiglipImageProcessor
    if family in ("clip", "metaclip_2"):
        return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size,
                                                                                 "width": image_size})
    resample = 2 if family == "siglip2" else 3  # SigLIP 2's processors resize bilinearly
    return SiglipImageProcessor(size={"height": image_size, "width": image_size}, resample=resample)


def _model(family: str, tokenizer, image_size: int, patch_size: int, tower: dict):
    import transformers as tf
    vision = dict(tower, image_size=image_size, patch_size=patch_size)
    text = dict(tower, vocab_size=len(tokenizer), max_position_embeddings=tokenizer.model_max_length)
    if family == "clip":
        text |= dict(vocab_size=49408, bos_token_id=49406)  # OpenAI's BPE: end-of-text is the last id, where open_clip pools
        return tf.CLIPModel(tf.CLIPConfig(text_config=dict(text, hidden_act="quick_gelu"), projection_dim=32,
                                          vision_config=dict(vision, hidden_act="quick_gelu")))
    text |= dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                 bos_token_id=tokenizer.bos_token_id)
    if family == "metaclip_2":
        return tf.MetaClip2Model(tf.MetaClip2Config(text_config=text, vision_config=vision, projection_dim=32))
    return tf.SiglipModel(tf.SiglipConfig(text_config=text, vision_config=vision))


def save_checkpoint(family: str, root: Path, seed: int = 0, image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE,
                    tower: dict = TOWER) -> Path:
    """A random `family` checkpoint (one of FAMILIES) saved in root / family -> that folder; image_size,
    patch_size and tower (transformers' layer sizes, both towers) make a bigger one for benchmarks."""
    import torch
    folder = Path(root) / family
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = {"clip": _clip_tokenizer, "siglip": _siglip_tokenizer, "siglip2": _siglip2_tokenizer,
                 "metaclip_2": _metaclip2_tokenizer}[family](folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model(family, tokenizer, image_size, patch_size, tower)
        if family in ("siglip", "siglip2"):  # SigLIP's initial scale and bias, as its paper starts training
            model.logit_scale.data.fill_(float(torch.log(torch.tensor(10.0))))
            model.logit_bias.data.fill_(-10.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    if config.get("extra_special_tokens") == []:  # transformers 5 writes it; 4.x reads only a dict there
        del config["extra_special_tokens"]
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    _image_processor(family, image_size).save_pretrained(folder)
    return folder
