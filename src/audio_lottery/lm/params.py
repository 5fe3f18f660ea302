"""The ``--decode-params`` JSON that ``audio-lottery lm tune`` writes and ``eval``/``transcribe`` read:
beam-search settings with the LM and lexicon paths relative to the JSON file's folder."""

from __future__ import annotations

import os
from pathlib import Path

from audio_lottery.files import read_json

PARAM_FILES = ("lm", "lexicon")  # --decode-params keys naming files, relative to the JSON's folder
_PARAM_NUMBERS = {"beam": int, "beam_size_token": int, "beam_threshold": float, "lm_weight": float,
                  "word_score": float, "unk_score": float}


def read_decode_params(path: Path) -> dict:
    """The settings of a ``--decode-params`` JSON (``lm tune``'s output), validated: the LM and lexicon
    paths are resolved relative to the JSON file's folder and must be regular files; the search options
    must be numbers. A problem raises ValueError (FileNotFoundError) naming the JSON file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path} (--decode-params)")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of decoder settings (from `audio-lottery lm tune`)")
    settings = {k: v for k, v in raw.items() if v is not None}
    for key, kind in _PARAM_NUMBERS.items():
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or (kind is int and not float(value).is_integer())):
            raise ValueError(f"{path}: {key!r} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    for key in PARAM_FILES:
        value = settings.get(key)
        if value is None or (key == "lexicon" and value == "lm"):
            continue
        if not isinstance(value, str) or not value:
            raise ValueError(f"{path}: {key!r} must be a file name, got {value!r}")
        target = path.parent / value  # an absolute value stays absolute
        if not target.exists():
            raise FileNotFoundError(f"{path}: {key!r} names {value!r}, but there is no such file: {target}")
        if not target.is_file():
            raise ValueError(f"{path}: {key!r} names {value!r}, which is not a regular file: {target}")
        settings[key] = str(target)
    return settings


def relative_params(params: dict, out: Path) -> dict:
    """``params`` with the LM and lexicon paths made relative to the folder of ``out`` (the JSON file
    :func:`read_decode_params` will read them from)."""
    folder = Path(out).resolve().parent
    rel = dict(params)
    for key in PARAM_FILES:
        value = rel.get(key)
        if value and not (key == "lexicon" and value == "lm"):
            rel[key] = os.path.relpath(Path(value).resolve(), folder)
    return rel
