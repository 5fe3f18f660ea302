"""Corpus-level word and character error rates (computed with jiwer).

Strings are compared after collapsing runs of whitespace and stripping the ends; the
character error rate counts spaces as characters. An utterance whose reference is empty
is not given to jiwer: every hypothesis word (character) counts as an insertion, so the
corpus rates stay (S + D + I) / N over the non-empty references' N words (characters).
"""

from __future__ import annotations

import jiwer


def _clean(text: str) -> str:
    return " ".join(text.split())


def _rate(errors: int, total: int) -> float:
    """errors / total; 0.0 for no errors on no reference, ``inf`` for errors on none."""
    if total:
        return errors / total
    return 0.0 if errors == 0 else float("inf")


def _counts(out: object) -> dict[str, int]:
    s, d, i, h = out.substitutions, out.deletions, out.insertions, out.hits  # type: ignore[attr-defined]
    return {"substitutions": s, "deletions": d, "insertions": i, "ref": s + d + h}


def error_rates(refs: list[str], hyps: list[str]) -> dict[str, float | int]:
    """Corpus WER/CER and their error counts for paired reference and hypothesis strings.

    Keys: ``wer``, ``cer`` (corpus-level rates), ``substitutions``, ``deletions``,
    ``insertions``, ``ref_words``, ``word_errors``, ``char_substitutions``,
    ``char_deletions``, ``char_insertions``, ``ref_chars``, ``char_errors``,
    ``utterances``, ``empty_refs``.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    refs, hyps = [_clean(r) for r in refs], [_clean(h) for h in hyps]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    empty_hyps = [h for r, h in zip(refs, hyps) if not r]
    words = {"substitutions": 0, "deletions": 0, "insertions": 0, "ref": 0}
    chars = dict(words)
    if pairs:
        r, h = [p[0] for p in pairs], [p[1] for p in pairs]
        words = _counts(jiwer.process_words(r, h))
        chars = _counts(jiwer.process_characters(r, h))
    words["insertions"] += sum(len(h.split()) for h in empty_hyps)
    chars["insertions"] += sum(len(h) for h in empty_hyps)
    word_errors = words["substitutions"] + words["deletions"] + words["insertions"]
    char_errors = chars["substitutions"] + chars["deletions"] + chars["insertions"]
    return {
        "wer": _rate(word_errors, words["ref"]),
        "cer": _rate(char_errors, chars["ref"]),
        "substitutions": words["substitutions"],
        "deletions": words["deletions"],
        "insertions": words["insertions"],
        "ref_words": words["ref"],
        "word_errors": word_errors,
        "char_substitutions": chars["substitutions"],
        "char_deletions": chars["deletions"],
        "char_insertions": chars["insertions"],
        "ref_chars": chars["ref"],
        "char_errors": char_errors,
        "utterances": len(refs),
        "empty_refs": len(empty_hyps),
    }
