"""Batched evaluation of a recognizer on manifest records: WER/CER and hypotheses."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from audio_lottery.data.audio import load_audio, reading_ahead
from audio_lottery.data.text import out_of_vocabulary
from audio_lottery.eval.normalize import score_records
from audio_lottery.recognizer import Recognizer


def evaluate(
    rec: Recognizer,
    records: Sequence[dict],
    batch_seconds: float = 320.0,
    max_batch_size: int = 32,
    transform: Callable[[np.ndarray, dict], np.ndarray] | None = None,
    progress: bool = False,
    desc: str = "eval",
    decoder: Callable | None = None,
) -> dict:
    """Decode ``records`` (sorted by duration, batched) and score them.

    ``transform(wave, record)`` may alter the audio (e.g. deterministic test noise); ``decoder``
    replaces greedy decoding (see :meth:`Recognizer.transcribe`).
    Returns the :func:`~audio_lottery.eval.normalize.score_records` dict (records with ``raw_text``,
    and every record for a cased recogniser such as Whisper, are scored with Whisper's English
    normaliser) plus ``utterances`` and ``hyps`` (id -> text).
    """
    check_references(records)
    hyps: dict[str, str] = {}
    for idx, waves in wave_batches(rec, records, batch_seconds, max_batch_size, transform, progress, desc):
        with torch.no_grad():
            for i, text in zip(idx, rec.transcribe(waves, decoder=decoder)):
                hyps[records[i]["id"]] = text
    out = score_records(records, [hyps[r["id"]] for r in records], cased=getattr(rec.tokenizer, "cased", False))
    out["utterances"] = len(records)
    out["hyps"] = hyps
    return out


def wave_batches(
    rec: Recognizer,
    records: Sequence[dict],
    batch_seconds: float = 320.0,
    max_batch_size: int = 32,
    transform: Callable[[np.ndarray, dict], np.ndarray] | None = None,
    progress: bool = False,
    desc: str = "eval",
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Duration-bucketed batches of ``records``: (indices into ``records``, their waveforms).

    The files of the next batch are read ahead (:func:`~audio_lottery.data.audio.read_ahead`) while
    the caller decodes this one.
    """
    from audio_lottery.data.pipeline.dataset import make_buckets

    sr = rec.cfg.data.features.sample_rate
    batches = make_buckets([r["duration"] for r in records], batch_seconds, max_batch_size)
    rec.model.eval()
    ahead = reading_ahead(batches, lambda idx: [records[i]["audio"] for i in idx])
    for idx in tqdm(ahead, total=len(batches), desc=desc, disable=not progress, leave=False):
        waves = []
        for i in idx:
            r = records[i]
            w = load_audio(r["audio"], sr, r.get("offset", 0.0), r["duration"])
            waves.append(transform(w, r) if transform else w)
        yield idx, waves


def check_references(records: Sequence[dict]) -> None:
    """Refuse an empty record list or references outside the character vocabulary
    (they would silently inflate WER); the message names the utterance and its audio."""
    if not records:
        raise ValueError("nothing to evaluate: the manifest has no utterances")
    for r in records:
        bad = out_of_vocabulary(r["text"])
        if bad:
            raise ValueError(f"{r['audio']} ({r['id']}): reference has characters outside the vocabulary "
                             f"{sorted(bad)}; normalise the manifest's text")
