"""Greedy CTC decoding and WER/CER."""

from __future__ import annotations

import math

import pytest
import torch

from audio_lottery.decoding.ctc import greedy_decode
from audio_lottery.eval.metrics import error_rates


def one_hot_log_probs(paths: list[list[int]], vocab: int = 5) -> torch.Tensor:
    t_max = max(len(p) for p in paths)
    lp = torch.full((len(paths), t_max, vocab), -10.0)
    for b, path in enumerate(paths):
        for t, tok in enumerate(path):
            lp[b, t, tok] = -0.01
    return lp


def test_greedy_decode_collapses_and_drops_blank() -> None:
    paths = [[0, 1, 1, 0, 1, 2, 2, 0, 3], [4, 4, 4, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0]]
    out = greedy_decode(one_hot_log_probs(paths), torch.tensor([9, 3, 9]))
    assert out == [[1, 1, 2, 3], [4], []]


def test_greedy_decode_respects_lengths_and_blank_id() -> None:
    paths = [[2, 2, 3, 1, 4]]
    lp = one_hot_log_probs(paths)
    assert greedy_decode(lp, torch.tensor([3])) == [[2, 3]]
    assert greedy_decode(lp, torch.tensor([5]), blank=3) == [[2, 1, 4]]


def test_error_rates_hand_example() -> None:
    r = error_rates(["the cat sat"], ["the bat sat down"])
    assert r["wer"] == pytest.approx(2 / 3)
    assert (r["substitutions"], r["deletions"], r["insertions"], r["ref_words"]) == (1, 0, 1, 3)
    # characters: c->b substitution plus " down" inserted (5) over 11 reference characters
    assert r["cer"] == pytest.approx(6 / 11)
    assert (r["char_substitutions"], r["char_insertions"], r["ref_chars"]) == (1, 5, 11)


def test_error_rates_corpus_level_and_whitespace() -> None:
    r = error_rates(["a b c d", "e"], ["a  b c d ", "f"])
    assert r["wer"] == pytest.approx(1 / 5)  # corpus level, not the mean of 0 and 1
    assert r["deletions"] == 0 and r["substitutions"] == 1
    r = error_rates(["hello world"], [""])
    assert r["wer"] == 1.0 and r["deletions"] == 2 and r["cer"] == 1.0


def test_error_rates_empty_reference_counts_insertions() -> None:
    r = error_rates(["", "one two"], ["uh oh", "one two"])
    assert r["empty_refs"] == 1 and r["insertions"] == 2 and r["ref_words"] == 2
    assert r["wer"] == pytest.approx(1.0) and r["char_insertions"] == 5
    assert error_rates([""], [""])["wer"] == 0.0
    assert math.isinf(error_rates([""], ["x"])["wer"])
    with pytest.raises(ValueError):
        error_rates(["a"], [])
