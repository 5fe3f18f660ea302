"""Tokenizers: characters and sentencepiece BPE (CTC blank at id 0), and Whisper's BPE (no blank).

Common API: ``kind``, ``vocab_size``, ``blank`` (the CTC blank id, 0, or None for a tokenizer of
an attention decoder without blank, see :mod:`audio_lottery.data.pipeline.whisper_tokenizer`),
``encode(text) -> list[int]`` (never blank), ``decode(ids) -> str`` (blanks are skipped),
``save(dir)``, ``<Class>.load(dir)`` and :func:`load_tokenizer`. Optional: ``cased = True`` for a
tokenizer of text as written (Whisper's): it learns a record's ``raw_text`` and is scored through
Whisper's English normaliser; absent means False (callers read it with ``getattr``). For the char and BPE
tokenizers texts are expected to be normalised (a-z, apostrophe, space); any other character
raises a ValueError naming it.

Tokenizer kinds are plug-ins (:func:`register_tokenizer`): each registered class also has
``build(data_cfg, train_texts, out_dir)`` (make and save it for a run) and ``stand_in(data_cfg)``
(an object with the run's ``vocab_size`` without training data, for ``audio-lottery info``);
its kind becomes a choice of ``data.tokenizer``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, TypeVar

import sentencepiece as spm

from audio_lottery.config import DataConfig, register_plugin
from audio_lottery.data.text import ALPHABET
from audio_lottery.files import atomic_write_bytes, atomic_write_json, file_beside, read_json

BLANK = 0
META_FILE = "tokenizer.json"
BPE_MODEL_FILE = "bpe.model"
_CHAR_TO_ID = {c: i + 1 for i, c in enumerate(ALPHABET)}


class Tokenizer(Protocol):
    """What the pipeline, models and decoders use of a tokenizer."""

    kind: str
    blank: int | None

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def save(self, out_dir: Path) -> None: ...


TOKENIZERS: dict[str, Any] = {}
T = TypeVar("T", bound=type)


def register_tokenizer(kind: str, help: str) -> Callable[[T], T]:
    """Class decorator: the class (with ``kind``, ``load``, ``build`` and ``stand_in``) is the
    tokenizer ``kind``, a choice of ``data.tokenizer`` described by the one-line ``help``."""
    def deco(cls: T) -> T:
        if getattr(cls, "kind", None) != kind:
            raise ValueError(f"{cls.__name__}.kind is {getattr(cls, 'kind', None)!r}, registered as {kind!r}")
        register_plugin(TOKENIZERS, "data.tokenizer", kind, cls, help)
        return cls
    return deco


class VocabSize:
    """Stand-in tokenizer of a given size (``audio-lottery info`` on a config whose tokenizer is
    trained from data: only the size matters)."""

    def __init__(self, kind: str, vocab_size: int, blank: int | None = BLANK) -> None:
        self.kind, self.vocab_size, self.blank = kind, vocab_size, blank


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


@register_tokenizer("char", "blank, a-z, ', space")
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

    @classmethod
    def build(cls, data_cfg: DataConfig, train_texts: list[str], out_dir: Path) -> "CharTokenizer":
        """The fixed alphabet, saved to ``out_dir``."""
        tok = cls()
        tok.save(out_dir)
        return tok

    @classmethod
    def stand_in(cls, data_cfg: DataConfig) -> "CharTokenizer":
        return cls()


@register_tokenizer("bpe", "sentencepiece BPE trained on the training texts, data.bpe_vocab_size")
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

    @classmethod
    def build(cls, data_cfg: DataConfig, train_texts: list[str], out_dir: Path) -> "BpeTokenizer":
        """Trained on ``train_texts`` with ``data_cfg.bpe_vocab_size``, saved to ``out_dir``."""
        return cls.train(train_texts, data_cfg.bpe_vocab_size, out_dir)

    @classmethod
    def stand_in(cls, data_cfg: DataConfig) -> VocabSize:
        return VocabSize(cls.kind, data_cfg.bpe_vocab_size)

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
    if not isinstance(kind, str) or kind not in TOKENIZERS:
        raise ValueError(f"{in_dir}/{META_FILE}: unknown tokenizer kind {kind!r}")
    return TOKENIZERS[kind].load(in_dir)


def _registered(data_cfg: DataConfig) -> Any:
    if data_cfg.tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {data_cfg.tokenizer!r}; registered: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[data_cfg.tokenizer]


def build_tokenizer(data_cfg: DataConfig, train_texts: list[str], out_dir: Path) -> Tokenizer:
    """The tokenizer named by ``data_cfg.tokenizer`` (made from ``train_texts`` if it learns from
    data), saved to ``out_dir``."""
    return _registered(data_cfg).build(data_cfg, train_texts, out_dir)


def tokenizer_stand_in(data_cfg: DataConfig) -> Tokenizer | VocabSize:
    """A tokenizer, or a stand-in, with the vocabulary size a run of ``data_cfg`` gets, built
    without training data (for ``audio-lottery info``)."""
    return _registered(data_cfg).stand_in(data_cfg)
