"""Tokenizers: characters and sentencepiece BPE (CTC blank at id 0), and Whisper's BPE (no blank).

Common API: ``kind``, ``vocab_size``, ``blank`` (the CTC blank id, 0, or None for a tokenizer of
an attention decoder without blank, see :mod:`audio_lottery.data.pipeline.whisper_tokenizer`),
``encode(text) -> list[int]`` (never blank), ``decode(ids) -> str`` (blanks are skipped),
``save(dir)``, ``<Class>.load(dir)`` and :func:`load_tokenizer`. For the char and BPE
tokenizers texts are expected to be normalised (a-z, apostrophe, space); any other character
raises a ValueError naming it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Union

import sentencepiece as spm

from audio_lottery.config import DataConfig
from audio_lottery.data.text import ALPHABET
from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer
from audio_lottery.files import atomic_write_bytes, atomic_write_json, file_beside, read_json

BLANK = 0
META_FILE = "tokenizer.json"
BPE_MODEL_FILE = "bpe.model"
_CHAR_TO_ID = {c: i + 1 for i, c in enumerate(ALPHABET)}


def tokenizer_saved(folder: str | Path) -> bool:
    """Whether ``folder`` holds a saved tokenizer."""
    return (Path(folder) / META_FILE).is_file()


def check_vocabulary(text: str) -> None:
    """Raise ValueError naming the first character of ``text`` outside a-z, apostrophe, space."""
    for pos, ch in enumerate(text):
        if ch not in _CHAR_TO_ID:
            raise ValueError(f"character {ch!r} (U+{ord(ch):04X}) at position {pos} of {text!r} is not in the vocabulary")



def non_blank_ids(ids: Iterable[int], vocab_size: int) -> list[int]:
    """``ids`` without blanks; an id outside the vocabulary raises ValueError."""
    out = []
    for i in map(int, ids):
        if i == BLANK:
            continue
        if not 0 < i < vocab_size:
            raise ValueError(f"token id {i} out of range for vocab_size {vocab_size}")
        out.append(i)
    return out


class CharTokenizer:
    """Blank (0), a-z (1-26), apostrophe (27), space (28): ``vocab_size == 29``."""

    kind = "char"
    blank = BLANK

    def __init__(self) -> None:
        self.symbols = ["<blank>"] + list(ALPHABET)

    @property
    def vocab_size(self) -> int:
        """Number of output classes including the blank."""
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no blank)."""
        check_vocabulary(text)
        return [_CHAR_TO_ID[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; blanks are skipped."""
        return "".join(self.symbols[i] for i in non_blank_ids(ids, self.vocab_size))

    def save(self, out_dir: Path) -> None:
        """Write ``tokenizer.json`` into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / META_FILE, {"kind": self.kind, "vocab_size": self.vocab_size, "symbols": self.symbols})

    @classmethod
    def load(cls, in_dir: Path) -> "CharTokenizer":
        """Read a tokenizer saved by :meth:`save`."""
        meta = _read_meta(Path(in_dir), cls.kind)
        tok = cls()
        if meta.get("symbols", tok.symbols) != tok.symbols:
            raise ValueError(f"{in_dir}: character vocabulary differs from this version's")
        return tok


class BpeTokenizer:
    """Sentencepiece BPE with ids shifted by one so that 0 is the CTC blank."""

    kind = "bpe"
    blank = BLANK

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

    @property
    def vocab_size(self) -> int:
        """Number of output classes: sentencepiece pieces plus the blank."""
        return self.sp.get_piece_size() + 1

    @classmethod
    def train(cls, texts: list[str], vocab_size: int, out_dir: Path) -> "BpeTokenizer":
        """Train deterministically on ``texts`` (``vocab_size`` includes the blank) and save to ``out_dir``.

        The vocabulary may come out smaller than requested on tiny corpora.
        """
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise ValueError("cannot train a BPE tokenizer on no text")
        for t in texts:
            check_vocabulary(t)
        proto = _train_sentencepiece(texts, vocab_size - 1)
        tok = cls(proto)
        tok.save(out_dir)
        return tok

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no blank)."""
        check_vocabulary(text)
        return [i + 1 for i in self.sp.encode(text, out_type=int)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; blanks are skipped."""
        return self.sp.decode([i - 1 for i in non_blank_ids(ids, self.vocab_size)])

    def save(self, out_dir: Path) -> None:
        """Write ``tokenizer.json`` and ``bpe.model`` into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / BPE_MODEL_FILE, self.model_proto)
        atomic_write_json(out_dir / META_FILE, {"kind": self.kind, "vocab_size": self.vocab_size, "model": BPE_MODEL_FILE})

    @classmethod
    def load(cls, in_dir: Path) -> "BpeTokenizer":
        """Read a tokenizer saved by :meth:`save`."""
        in_dir = Path(in_dir)
        meta = _read_meta(in_dir, cls.kind)
        model = file_beside(in_dir / META_FILE, meta.get("model", BPE_MODEL_FILE), BPE_MODEL_FILE, "model")
        try:
            return cls(model.read_bytes())
        except RuntimeError as exc:
            raise ValueError(f"{model}: not a sentencepiece model ({exc})") from None


def _train_sentencepiece(texts: list[str], piece_count: int) -> bytes:
    required = ALPHABET.replace(" ", "")
    missing = sorted(set(required) - set("".join(texts)))
    if missing:  # every required char needs a count: sentencepiece < 0.2.3 aborts the process otherwise
        texts = [*texts, " ".join(missing)]
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=buf,
            vocab_size=piece_count,
            model_type="bpe",
            character_coverage=1.0,
            required_chars=required,
            normalization_rule_name="identity",
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
            hard_vocab_limit=False,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise ValueError(f"sentencepiece training failed: {exc}") from None
    return buf.getvalue()


Tokenizer = Union[CharTokenizer, BpeTokenizer, WhisperTokenizer]
_KINDS: dict[str, type] = {"char": CharTokenizer, "bpe": BpeTokenizer, "whisper": WhisperTokenizer}


def _read_meta(in_dir: Path, kind: str | None = None) -> dict:
    path = in_dir / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer description missing")
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a tokenizer description (a JSON object)")
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{path}: tokenizer kind is {meta.get('kind')!r}, expected {kind!r}")
    return meta


def load_tokenizer(in_dir: Path) -> Tokenizer:
    """Load whichever tokenizer ``in_dir`` holds (from its ``tokenizer.json``)."""
    meta = _read_meta(Path(in_dir))
    kind = meta.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"{in_dir}/{META_FILE}: unknown tokenizer kind {kind!r}")
    return _KINDS[kind].load(in_dir)


def build_tokenizer(data_cfg: DataConfig, train_texts: list[str], out_dir: Path) -> Tokenizer:
    """The tokenizer named by ``data_cfg.tokenizer`` (BPE trained on ``train_texts``; whisper: the
    pip-installed tiny.en's), saved to ``out_dir``."""
    if data_cfg.tokenizer == "char":
        tok: Tokenizer = CharTokenizer()
        tok.save(out_dir)
        return tok
    if data_cfg.tokenizer == "bpe":
        return BpeTokenizer.train(train_texts, data_cfg.bpe_vocab_size, out_dir)
    if data_cfg.tokenizer == "whisper":
        tok = WhisperTokenizer.from_wheel()
        tok.save(out_dir)
        return tok
    raise ValueError(f"unknown tokenizer {data_cfg.tokenizer!r}; use char, bpe or whisper")
