"""Bulk tokenization (lab.core.tokens): the tokenizer's own ids, id for id, and the truncation count."""
import random

import open_clip
import pytest
import torch

from lab.core.tokens import tokenize

CORPUS = [
    "a photo of a dog.", "", "   ", "A PHOTO OF A DOG!!", "café crème brûlée", "東京の写真", "emoji 🐶🐱 pets",
    "html &amp; entities &lt;b&gt;", "it's a 'quoted' thing, isn't it?", "numbers 1234567 and 3.14",
    "tabs\tand\nnewlines", "mojibake cafÃ©", "control\x07chars", "a " * 100, "word " * 80 + "end",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("ViT-B-32")


def test_ids_are_the_tokenizers_own(tokenizer):
    texts = CORPUS + [f"a photo of a {i} thing number {i * 7}." for i in range(300)]
    tokens, truncated = tokenize(tokenizer, texts, 77)
    assert torch.equal(tokens, tokenizer(texts))
    assert truncated == sum(len(tokenizer.encode(t)) > 75 for t in texts) == 2
    again, _ = tokenize(tokenizer, texts, 77)  # from the remembered words
    assert torch.equal(again, tokens)


def test_a_shorter_context(tokenizer):
    tokens, truncated = tokenize(tokenizer, CORPUS, 16)
    assert torch.equal(tokens, tokenizer(CORPUS, context_length=16))
    assert truncated == sum(len(tokenizer.encode(t)) > 14 for t in CORPUS)


def test_a_tokenizer_with_a_reduction_strategy_is_called_as_it_is():
    reducing = open_clip.SimpleTokenizer(context_length=16, reduction_mask="simple")
    random.seed(0)
    tokens, truncated = tokenize(reducing, CORPUS, 16)
    random.seed(0)  # the strategy draws which tokens to keep
    assert torch.equal(tokens, reducing(CORPUS))
    assert truncated == sum(len(reducing.encode(t)) > 14 for t in CORPUS) > 0
