"""Texts to token ids in bulk, with the number of texts the context cut short, in one pass.

    tokens, truncated = tokenize(model.tokenizer, texts, model.context_length)  # (B, L) int64

For open_clip's SimpleTokenizer (OpenAI's BPE, every OpenAI and most LAION models) the ids of each
word are remembered, so a batch costs one text clean-up and one regex pass per text; the result is
the tokenizer's own, id for id (tests/core/test_tokens.py). Other tokenizers (open_clip's Hugging Face
ones, a transformers checkpoint's own through lab.core._hf.TransformersTokenizer) are called as they are.
"""
from __future__ import annotations

import numpy as np

__all__ = ["tokenize"]

_MAX_WORDS = 1_000_000  # remembered words per tokenizer before the memo starts over


def _simple(tokenizer) -> bool:
    """An open_clip SimpleTokenizer that truncates (no reduction strategy)."""
    return (type(tokenizer).__name__ == "SimpleTokenizer" and getattr(tokenizer, "reduction_fn", None) is None
            and all(hasattr(tokenizer, a) for a in ("clean_fn", "pat", "bpe", "byte_encoder", "encoder")))


def _word_ids(tokenizer, memo: dict, word: str) -> list[int]:
    ids = memo.get(word)
    if ids is None:
        if len(memo) >= _MAX_WORDS:
            memo.clear()
        byte_word = "".join(tokenizer.byte_encoder[b] for b in word.encode("utf-8"))
        ids = memo[word] = [tokenizer.encoder[t] for t in tokenizer.bpe(byte_word).split(" ")]
    return ids


def tokenize(tokenizer, texts: list[str], context_length: int):
    """-> (token ids (B, context_length) int64 torch tensor, how many texts were truncated)."""
    import torch
    if hasattr(tokenizer, "tokenize_counted"):  # a transformers checkpoint's tokenizer counts its own cuts
        return tokenizer.tokenize_counted(texts)
    if not _simple(tokenizer):
        encode = getattr(tokenizer, "encode", None)
        truncated = 0 if encode is None else sum(len(encode(t)) > context_length - 2 for t in texts)
        return tokenizer(texts), truncated
    memo = tokenizer.__dict__.setdefault("_lab_word_ids", {})
    sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
    clean, findall = tokenizer.clean_fn, tokenizer.pat.findall
    out = np.zeros((len(texts), context_length), dtype=np.int64)  # (B, L)
    truncated = 0
    for i, text in enumerate(texts):
        ids = [sot]
        for word in findall(clean(text)):
            ids += _word_ids(tokenizer, memo, word)
        ids.append(eot)
        if len(ids) > context_length:
            truncated += 1
            ids = ids[:context_length]
            ids[-1] = eot
        out[i, :len(ids)] = ids
    return torch.from_numpy(out), truncated
