"""Character and BPE tokenizers: blank 0, round trips, determinism, save/load, OOV errors."""

from __future__ import annotations

import pytest

from audio_lottery.config import DataConfig
from audio_lottery.data.pipeline.tokenizers import BpeTokenizer, CharTokenizer, build_tokenizer, load_tokenizer

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "don't count your chickens before they hatch",
    "a stitch in time saves nine",
    "all that glitters is not gold",
    "the early bird catches the worm",
    "where there's smoke there's fire",
] * 5


def test_char_tokenizer_vocab_and_round_trip(tmp_path):
    tok = CharTokenizer()
    assert tok.vocab_size == 29 and tok.blank == 0
    assert tok.encode("a") == [1] and tok.encode("z") == [26] and tok.encode("'") == [27] and tok.encode(" ") == [28]
    text = "it's a test of the char tokenizer"
    ids = tok.encode(text)
    assert 0 not in ids
    assert tok.decode(ids) == text
    assert tok.decode([0] + ids + [0]) == text  # blanks skipped
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, CharTokenizer) and loaded.encode(text) == ids


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_oov_character_raises_naming_it(kind, tmp_path):
    tok = CharTokenizer() if kind == "char" else BpeTokenizer.train(CORPUS, 64, tmp_path)
    with pytest.raises(ValueError, match="'Q'"):
        tok.encode("hello Queen")
    with pytest.raises(ValueError, match="'7'"):
        tok.encode("route 7")


def test_bpe_round_trip_and_blank(tmp_path):
    tok = BpeTokenizer.train(CORPUS, 64, tmp_path)
    assert tok.blank == 0 and 29 < tok.vocab_size <= 64
    for text in CORPUS[:6] + ["zebras quizzically vex jumpy wolves", "x", "y'all"]:
        ids = tok.encode(text)
        assert ids and min(ids) >= 1 and max(ids) < tok.vocab_size
        assert 1 not in ids  # shifted sentencepiece <unk>
        assert tok.decode(ids) == text
    assert len(tok.encode(CORPUS[0])) < len(CORPUS[0])  # merges happened


def test_bpe_training_is_deterministic_and_saved(tmp_path):
    a = BpeTokenizer.train(CORPUS, 60, tmp_path / "a")
    b = BpeTokenizer.train(CORPUS, 60, tmp_path / "b")
    assert (tmp_path / "a" / "bpe.model").read_bytes() == (tmp_path / "b" / "bpe.model").read_bytes()
    assert (tmp_path / "a" / "tokenizer.json").is_file()
    loaded = load_tokenizer(tmp_path / "a")
    assert isinstance(loaded, BpeTokenizer) and loaded.vocab_size == a.vocab_size
    assert loaded.encode(CORPUS[1]) == b.encode(CORPUS[1])
    assert BpeTokenizer.load(tmp_path / "a").decode(a.encode(CORPUS[2])) == CORPUS[2]


def test_build_tokenizer_from_config(tmp_path):
    char = build_tokenizer(DataConfig(tokenizer="char"), [], tmp_path / "c")
    assert isinstance(char, CharTokenizer) and isinstance(load_tokenizer(tmp_path / "c"), CharTokenizer)
    bpe = build_tokenizer(DataConfig(tokenizer="bpe", bpe_vocab_size=50), CORPUS, tmp_path / "b")
    assert isinstance(bpe, BpeTokenizer) and bpe.vocab_size <= 50
    assert isinstance(load_tokenizer(tmp_path / "b"), BpeTokenizer)


def test_load_missing_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


def test_bpe_on_text_missing_letters_still_covers_the_alphabet(tmp_path):
    """A corpus lacking letters (sentencepiece < 0.2.3 aborted the process here) still encodes every letter."""
    texts = ["the of and to in is was that for it with as his on be at by this had not are but from"] * 20
    assert not set("jqxz'") & set("".join(texts))
    tok = BpeTokenizer.train(texts, 256, tmp_path)
    for text in ["jazz quiz", "x", "y'all"]:
        ids = tok.encode(text)
        assert 1 not in ids and tok.decode(ids) == text
