"""Transcript normalisation to the character vocabulary (a-z, apostrophe, space)."""

from __future__ import annotations

import re
import unicodedata

ALPHABET = "abcdefghijklmnopqrstuvwxyz' "
_ALLOWED = set(ALPHABET)
# name of the scoring normaliser for records that keep their raw transcript (``raw_text``): Whisper's
# English text normaliser on both sides (audio_lottery.eval.normalize applies it)
WHISPER_EN = "whisper-en"
_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _spell_digits(match: re.Match) -> str:
    return " " + " ".join(_NUMBERS[int(d)] for d in match.group(0)) + " "


def normalize_text(text: str, spell_digits: bool = True) -> str:
    """Lower-case, strip accents, map punctuation to spaces, keep a-z, apostrophe and single spaces.

    Hyphens and other separators become spaces; digits are spelled one by one when
    ``spell_digits`` (otherwise dropped). Apostrophes inside words survive ("don't"),
    stray ones at word edges are removed.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("\u2019", "'").replace("`", "'")
    if spell_digits:
        text = re.sub(r"\d+", _spell_digits, text)
    text = "".join(c if c in _ALLOWED else " " for c in text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def out_of_vocabulary(text: str) -> set[str]:
    """Characters of ``text`` outside the character vocabulary."""
    return set(text) - _ALLOWED
