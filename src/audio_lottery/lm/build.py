"""``audio-lottery lm build``: transcripts (text files or manifests) -> an ARPA language model."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from audio_lottery.data.text import normalize_text
from audio_lottery.lm.ngram import build_kneser_ney
from audio_lottery.lm.units import check_unit, text_units


def read_texts(text_files: Sequence[str | Path] = (), manifests: Sequence[str | Path] = ()) -> list[str]:
    """Normalised sentences: one per non-empty line of each text file, one per manifest record."""
    from audio_lottery.data.manifest import read_manifest

    texts: list[str] = []
    for path in text_files:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: text file not found")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc})") from None
        texts += [normalize_text(line) for line in lines]
    for path in manifests:
        texts += [normalize_text(r["text"]) for r in read_manifest(path, resolve_audio=False)]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"no text to build a language model from in {[*map(str, text_files), *map(str, manifests)]}")
    return texts


def build_lm(texts: Iterable[str], order: int, out: str | Path, unit: str = "word", tokenizer=None) -> dict:
    """Estimate a modified Kneser-Ney model of ``order`` over ``unit`` tokens and write ``out`` (ARPA).

    Returns a summary: path, unit, order, sentence count, n-gram counts, discounts per order and
    the orders that used the fallback discounts.
    """
    check_unit(unit, tokenizer)
    sentences = [text_units(t, unit, tokenizer) for t in texts]
    lm = build_kneser_ney(sentences, order)
    lm.write_arpa(out)
    return {
        "out": str(out),
        "unit": unit,
        "order": order,
        "sentences": len(sentences),
        "ngrams": lm.counts(),
        "discounts": [[round(d.d1, 4), round(d.d2, 4), round(d.d3, 4)] for d in lm.discounts],
        "fallback_orders": lm.fallback_orders,
    }
