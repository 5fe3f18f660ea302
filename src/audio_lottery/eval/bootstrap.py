"""Bootstrap intervals over utterances for corpus WER and for the WER difference of two models.

Corpus WER is a ratio of sums (word errors over reference words), so a resample draws whole
utterances with replacement and recomputes the ratio. A paired comparison resamples the same
utterances for both models: the spread of the difference then leaves out what the two models
share (the hard utterances are hard for both), which is what makes small differences testable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audio_lottery.eval.metrics import error_rates
from audio_lottery.eval.normalize import get_normalizer, references

RESAMPLES = 10_000

Errors = tuple[np.ndarray, np.ndarray]  # per utterance: word errors, reference words


def utterance_errors(records: Sequence[dict], hyps: dict[str, str], cased: bool = True) -> Errors:
    """Per utterance (word errors, reference words) of ``hyps`` (id -> text) after the normaliser that
    :func:`~audio_lottery.eval.evaluate.evaluate` applies (``cased``: the recogniser writes case and
    punctuation), so that :func:`corpus_wer` of the result equals evaluate()'s WER."""
    refs, name = references(records, cased)
    norm = get_normalizer(name) if name else (lambda s: s)
    errs, words = [], []
    for ref, r in zip(refs, records):
        e = error_rates([norm(ref)], [norm(hyps[r["id"]])])
        errs.append(e["word_errors"])
        words.append(e["ref_words"])
    return np.asarray(errs, float), np.asarray(words, float)


def resamples(n: int, count: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``[count, n]`` utterance indices drawn with replacement; pass the same draws to every model
    compared (paired comparisons)."""
    return np.random.default_rng(seed).integers(0, n, size=(count, n))


def corpus_wer(errs: np.ndarray, words: np.ndarray) -> float:
    """Sum of word errors over sum of reference words."""
    return float(errs.sum() / max(words.sum(), 1))


def resampled_wers(errs: np.ndarray, words: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Corpus WER of every resample ``draws[i]`` of the utterances."""
    return errs[draws].sum(1) / np.maximum(words[draws].sum(1), 1)


def interval(errs: np.ndarray, words: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """95 % bootstrap (percentile) interval of corpus WER."""
    w = resampled_wers(errs, words, draws)
    return float(np.percentile(w, 2.5)), float(np.percentile(w, 97.5))


def paired_difference(a: Errors, b: Errors, draws: np.ndarray) -> tuple[float, float, float]:
    """WER(a) - WER(b) and its 95 % paired bootstrap interval (the same resampled utterances for both)."""
    d = resampled_wers(*a, draws) - resampled_wers(*b, draws)
    return corpus_wer(*a) - corpus_wer(*b), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))
