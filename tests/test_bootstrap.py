"""audio_lottery.eval.bootstrap: per-utterance errors that add up to the corpus WER, and intervals."""

from __future__ import annotations

import numpy as np
import pytest

from audio_lottery.eval.bootstrap import (corpus_wer, interval, paired_difference, resampled_wers, resamples,
                                          utterance_errors)
from audio_lottery.eval.normalize import score_records

RECORDS = [{"id": "a", "text": "the cat sat"}, {"id": "b", "text": "on the mat"},
           {"id": "c", "text": "a dog barked loudly"}, {"id": "d", "text": "it rained"}]
HYPS = {"a": "the cat sat", "b": "on a mat", "c": "a dog park loud ly", "d": "it rained"}


def test_utterance_errors_add_up_to_the_corpus_wer_evaluate_reports():
    errs, words = utterance_errors(RECORDS, HYPS, cased=False)
    assert errs.tolist() == [0, 1, 3, 0] and words.tolist() == [3, 3, 4, 2]
    assert corpus_wer(errs, words) == pytest.approx(score_records(RECORDS, [HYPS[r["id"]] for r in RECORDS])["wer"])
    # raw_text references go through Whisper's normaliser: case and punctuation do not count
    raw = [{**r, "raw_text": r["text"].capitalize() + "."} for r in RECORDS]
    assert utterance_errors(raw, HYPS)[0].tolist() == [0, 1, 3, 0]


def test_resamples_are_reproducible_and_the_interval_holds_the_estimate():
    draws = resamples(4, count=500, seed=3)
    assert draws.shape == (500, 4) and np.array_equal(draws, resamples(4, count=500, seed=3))
    assert draws.min() >= 0 and draws.max() == 3
    errs, words = utterance_errors(RECORDS, HYPS, cased=False)
    lo, hi = interval(errs, words, draws)
    assert 0 <= lo < corpus_wer(errs, words) < hi <= 1
    w = resampled_wers(errs, words, np.array([[2, 2, 2, 2]]))  # only the utterance with 3 errors in 4 words
    assert w.tolist() == [0.75]


def test_a_paired_difference_is_exactly_zero_for_the_same_model_and_clear_for_a_worse_one():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 15, size=200).astype(float)
    base = np.floor(words * rng.uniform(0, 0.5, size=200))
    draws = resamples(200, count=2000)
    assert paired_difference((base, words), (base, words), draws) == (0.0, 0.0, 0.0)
    worse = base + 1  # one more error in every utterance: about +10 points, whatever utterances are drawn
    d, lo, hi = paired_difference((worse, words), (base, words), draws)
    assert d == pytest.approx(200 / words.sum()) and 0 < lo <= d <= hi
    # pairing removes what both share: the difference's interval is narrower than one model's own
    base_lo, base_hi = interval(base, words, draws)
    assert hi - lo < (base_hi - base_lo) / 2
