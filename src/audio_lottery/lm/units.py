"""LM units: how a transcript becomes LM tokens, and which LM token each tokenizer id is.

Three units:

- ``word``: whitespace-separated words (a word LM, for lexicon-based decoding);
- ``char``: characters with the space written as :data:`WORD_BOUNDARY` (``|``), because an
  ARPA token cannot contain a space ("hi you" -> ``h i | y o u``); the tokens of a char
  tokenizer, for lexicon-free decoding of a char model;
- ``bpe``: the sentencepiece pieces of a BPE tokenizer ("hi you" -> ``▁hi ▁you``), for
  lexicon-free decoding of a BPE model.
"""

from __future__ import annotations

from typing import Iterable

from audio_lottery.data.text import ALPHABET
from audio_lottery.layout import TOKENIZER

UNITS = ("word", "char", "bpe")
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPECIAL = (BOS, EOS, UNK)
WORD_BOUNDARY = "|"
BLANK_TOKEN = "<blank>"  # the LM string of the CTC blank: never in an LM, never scored
CHAR_UNITS = frozenset(ALPHABET.replace(" ", "")) | {WORD_BOUNDARY}


def check_unit(unit: str, tokenizer=None) -> None:
    """Raise ValueError for an unknown unit, or ``bpe`` without a BPE tokenizer."""
    if unit not in UNITS:
        raise ValueError(f"unknown LM unit {unit!r}; use one of {', '.join(UNITS)}")
    if unit == "bpe" and getattr(tokenizer, "kind", None) != "bpe":
        raise ValueError(f"an LM in BPE units needs the model's BPE tokenizer (--tokenizer RUN/{TOKENIZER})")


def text_units(text: str, unit: str, tokenizer=None) -> list[str]:
    """LM tokens of one normalised transcript (no sentence markers)."""
    words = text.split()
    if unit == "word":
        return words
    if unit == "char":
        return list(WORD_BOUNDARY.join(words))
    if unit == "bpe":
        return tokenizer.sp.encode(" ".join(words), out_type=str)
    raise ValueError(f"unknown LM unit {unit!r}; use one of {', '.join(UNITS)}")


def tokenizer_units(tokenizer) -> list[str]:
    """The LM token of every tokenizer id (index = id); the blank is :data:`BLANK_TOKEN`.

    Char tokenizer: its characters with the space as ``|``; BPE tokenizer: its pieces.
    """
    if tokenizer.kind == "char":
        return [BLANK_TOKEN] + [WORD_BOUNDARY if s == " " else s for s in tokenizer.symbols[1:]]
    if tokenizer.kind == "bpe":
        return [BLANK_TOKEN] + [tokenizer.sp.id_to_piece(i) for i in range(tokenizer.vocab_size - 1)]
    raise ValueError(f"no LM units for tokenizer kind {tokenizer.kind!r}")


def word_boundary_id(tokenizer) -> int | None:
    """Tokenizer id of the word boundary (the space of a char tokenizer); None for BPE."""
    if tokenizer.kind == "char":
        return tokenizer.symbols.index(" ")
    return None


def infer_unit(vocabulary: Iterable[str]) -> str:
    """Guess an LM's unit from its unigrams: all single characters or ``|`` -> char; pieces
    starting with ``▁`` -> bpe; otherwise word."""
    tokens = [t for t in vocabulary if t not in SPECIAL]
    if tokens and all(t in CHAR_UNITS for t in tokens) and WORD_BOUNDARY in tokens:
        return "char"
    if any(t.startswith("\u2581") for t in tokens):
        return "bpe"
    return "word"
