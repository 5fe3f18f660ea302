"""Scoring with a text normaliser on both sides: Whisper's English normaliser for real speech.

Corpora whose records carry ``raw_text`` (the transcript as written: case, punctuation, digits,
abbreviations; e.g. ``asterisk``) are scored on ``raw_text`` against the hypothesis, both passed
through ``EnglishTextNormalizer`` of the PyPI package ``openai-whisper`` ("Mr. Smith paid $20" and
"mister smith paid twenty dollars" both become "mister smith paid $20"). Records without
``raw_text`` are scored on their already normalised ``text`` exactly as before, unless the recogniser
writes cased, punctuated text (a tokenizer with ``cased = True``, Whisper's): then the normaliser runs on
both sides there too, so "Hello, world." is not scored as two errors against "hello world".

``openai-whisper`` is installed with ``--no-deps`` (``make setup``): it declares ``triton``, which
CPU use never needs; its own imports (numba, tiktoken, more-itertools, regex, torch, tqdm) are
project dependencies.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

from audio_lottery.data.text import WHISPER_EN
from audio_lottery.eval.metrics import error_rates

NORMALIZERS = (WHISPER_EN,)


@lru_cache(maxsize=None)
def get_normalizer(name: str) -> Callable[[str], str]:
    """The text normaliser called ``name`` (one of :data:`NORMALIZERS`)."""
    if name != WHISPER_EN:
        raise ValueError(f"unknown text normaliser {name!r}; known: {', '.join(NORMALIZERS)}")
    try:
        from whisper.normalizers import EnglishTextNormalizer
    except ImportError as exc:
        raise RuntimeError(
            f"scoring with {name!r} needs EnglishTextNormalizer from the PyPI package openai-whisper ({exc}); "
            "run `make setup` (it installs openai-whisper with --no-deps)"
        ) from None
    return EnglishTextNormalizer()


def score_texts(refs: Sequence[str], hyps: Sequence[str], normalizer: str | None = None) -> dict:
    """:func:`error_rates` of ``refs`` against ``hyps``, both first passed through ``normalizer``
    (None: compared as given, the result is exactly :func:`error_rates`'s). With a normaliser the
    result also names it under ``normalizer``."""
    if normalizer is None:
        return error_rates(list(refs), list(hyps))
    norm = get_normalizer(normalizer)
    return {**error_rates([norm(r) for r in refs], [norm(h) for h in hyps]), "normalizer": normalizer}


def references(records: Sequence[dict], cased: bool = False) -> tuple[list[str], str | None]:
    """(reference strings, normaliser) for scoring ``records``: ``raw_text`` with :data:`WHISPER_EN`
    when every record carries it, else ``text`` (with :data:`WHISPER_EN` when the hypotheses are
    ``cased``, else as is); a mix of both is refused."""
    raw = sum("raw_text" in r for r in records)
    if raw and raw != len(records):
        missing = next(r for r in records if "raw_text" not in r)
        raise ValueError(f"{missing.get('audio', '?')} ({missing['id']}): no raw_text, while {raw} of {len(records)} "
                         "records have one; score one corpus at a time")
    if raw:
        return [r["raw_text"] for r in records], WHISPER_EN
    return [r["text"] for r in records], WHISPER_EN if cased else None


def score_records(records: Sequence[dict], hyps: Sequence[str], cased: bool = False) -> dict:
    """WER/CER of ``hyps`` (in the order of ``records``) against their references (see :func:`references`;
    ``cased``: the recogniser writes case and punctuation)."""
    refs, normalizer = references(records, cased)
    return score_texts(refs, hyps, normalizer)
