"""Grid search of the LM weight and word score on a dev set (acoustics computed once)."""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from audio_lottery.decoding.ctc import greedy_decode
from audio_lottery.lm.beam import CTCBeamDecoder
from audio_lottery.eval.evaluate import check_references, wave_batches
from audio_lottery.eval.normalize import references, score_texts
from audio_lottery.recognizer import Recognizer


def collect_log_probs(rec: Recognizer, records: Sequence[dict], progress: bool = False) -> list[Tensor]:
    """CTC log-probabilities ``[T, V]`` of every record (in ``records`` order)."""
    out: list[Tensor | None] = [None] * len(records)
    for idx, waves in wave_batches(rec, records, progress=progress, desc="acoustics"):
        log_probs, lens = rec.ctc_log_probs(*rec.features(waves))
        for i, lp, n in zip(idx, log_probs, lens):
            out[i] = lp[: int(n)].float().contiguous()
    return out  # type: ignore[return-value]


def greedy_texts(rec: Recognizer, emissions: Sequence[Tensor]) -> list[str]:
    """Greedy CTC transcripts of per-utterance log-probabilities."""
    return [rec.tokenizer.decode(greedy_decode(e[None], torch.tensor([e.shape[0]]))[0]) for e in emissions]


def grid_search(
    decoder: CTCBeamDecoder,
    emissions: Sequence[Tensor],
    refs: Sequence[str],
    lm_weights: Sequence[float],
    word_scores: Sequence[float],
    progress: bool = False,
    normalizer: str | None = None,
) -> dict:
    """WER/CER of every (lm_weight, word_score) pair; ``best`` is the lowest WER (then CER, then the
    smallest weight and score: the simplest setting among ties). ``normalizer``: see
    :func:`~audio_lottery.eval.normalize.score_texts`."""
    if decoder.mode == "lexicon-free" and decoder.sil == decoder.blank:
        word_scores = [0.0]  # BPE lexicon-free: no word-boundary token to score
    rows = []
    grid = list(itertools.product(lm_weights, word_scores))
    for lw, ws in tqdm(grid, desc="grid", disable=not progress, leave=False):
        hyps = decoder.with_options(lm_weight=lw, word_score=ws).decode_batch(emissions)
        r = score_texts(refs, hyps, normalizer)
        rows.append({"lm_weight": lw, "word_score": ws, "wer": r["wer"], "cer": r["cer"]})
    best = min(rows, key=lambda r: (r["wer"], r["cer"], abs(r["lm_weight"]), abs(r["word_score"])))
    return {"best": best, "grid": rows}


def tune(
    rec: Recognizer,
    records: Sequence[dict],
    decoder: CTCBeamDecoder,
    lm_weights: Sequence[float],
    word_scores: Sequence[float],
    progress: bool = False,
) -> dict:
    """Tune on ``records``; returns the decoder settings with the best values (what
    ``--decode-params`` reads) plus ``tuning``: greedy and best WER, the grid, utterance count."""
    check_references(records)
    emissions = collect_log_probs(rec, records, progress)
    refs, normalizer = references(records)
    result = grid_search(decoder, emissions, refs, lm_weights, word_scores, progress, normalizer)
    best = result["best"]
    greedy = score_texts(refs, greedy_texts(rec, emissions), normalizer)
    params = decoder.with_options(lm_weight=best["lm_weight"], word_score=best["word_score"]).describe()
    params["tuning"] = {"utterances": len(records), "greedy_wer": greedy["wer"], "greedy_cer": greedy["cer"],
                        "best_wer": best["wer"], "best_cer": best["cer"], "grid": result["grid"]}
    return params
