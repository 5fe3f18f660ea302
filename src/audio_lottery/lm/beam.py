"""CTC beam search with an n-gram LM through flashlight-text (its own KenLM inside).

Two modes:

- ``lexicon-free``: the LM's tokens are the acoustic tokens (a char LM with ``|`` for the space
  for a char model, an LM over BPE pieces for a BPE model: ``audio-lottery lm build --unit
  char|bpe``); any token sequence can come out. The word score is added on every frame that
  emits the space token; CTC emits it on about one frame per word boundary, so it acts as a
  word insertion bonus. BPE has no word-boundary token: there the word score must be 0.
- ``lexicon``: a word LM and a lexicon (word -> spelling in tokenizer tokens; by default every
  word of the LM spelled by the tokenizer); only lexicon words come out, and the word score is
  added per word.

Scores: ``sum(acoustic log-probs) + lm_weight * log10 p_LM + word_score * words``.
Only CTC outputs (``[B, T, V]`` log-probabilities, blank 0) are decoded here.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import Tensor

from audio_lottery.layout import TOKENIZER
from audio_lottery.lm.units import SPECIAL, UNK, infer_unit, tokenizer_units, word_boundary_id

MODES = ("lexicon-free", "lexicon")


@dataclass(frozen=True)
class BeamSearchOptions:
    """Search settings (flashlight-text's names in brackets)."""

    beam: int = 50  # hypotheses kept per frame [beam_size]
    beam_size_token: int = 0  # best tokens tried per frame; 0: all [beam_size_token]
    beam_threshold: float = 25.0  # drop hypotheses this far below the best [beam_threshold]
    lm_weight: float = 1.0  # weight of log10 p_LM [lm_weight]; tune it (audio-lottery lm tune)
    word_score: float = 0.0  # bonus per word (lexicon) or per space frame (lexicon-free)
    unk_score: float = -math.inf  # lexicon mode: score of a word outside the lexicon; -inf: never
    log_add: bool = False  # merge equal hypotheses by log-add instead of max

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise ValueError(f"beam must be at least 1, got {self.beam}")
        if self.beam_size_token < 0 or self.beam_threshold <= 0:
            raise ValueError("beam_size_token must be >= 0 and beam_threshold > 0")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _flashlight():
    try:
        from flashlight.lib.text import decoder, dictionary
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("beam search needs flashlight-text: pip install flashlight-text") from exc
    return decoder, dictionary


def read_lexicon(path: str | Path, token_ids: dict[str, int]) -> dict[str, list[list[int]]]:
    """Read ``word tok tok ...`` lines (several spellings of a word allowed) into token ids.

    Tokens are tokenizer symbols (``a``..``z``, ``'`` or BPE pieces); an unknown one is an error
    naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: lexicon not found")
    lexicon: dict[str, list[list[int]]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: expected 'word token token ...', got {line!r}")
        unknown = [t for t in parts[1:] if t not in token_ids]
        if unknown:
            raise ValueError(f"{path}:{lineno}: token(s) {unknown} are not in the model's vocabulary")
        lexicon.setdefault(parts[0], []).append([token_ids[t] for t in parts[1:]])
    if not lexicon:
        raise ValueError(f"{path}: the lexicon is empty")
    return lexicon


def spell_words(words: list[str], tokenizer) -> dict[str, list[list[int]]]:
    """Lexicon of ``words`` spelled by the tokenizer (words it cannot spell are left out)."""
    lexicon = {}
    for w in words:
        if w in SPECIAL:
            continue
        try:
            ids = tokenizer.encode(w)
        except ValueError:
            continue
        if ids:
            lexicon[w] = [ids]
    return lexicon


class CTCBeamDecoder:
    """Beam search over CTC log-probabilities with an optional n-gram LM (an ARPA file, read by KenLM).

    The LM, word dictionary and lexicon trie are loaded once; :meth:`with_options` gives a
    decoder with other search settings sharing them (for grid searches).
    """

    def __init__(self, tokenizer, options: BeamSearchOptions | None = None, lm: str | Path | None = None,
                 mode: str = "lexicon-free", lexicon: str | Path | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown decoding mode {mode!r}; use one of {', '.join(MODES)}")
        fl, fl_dict = _flashlight()
        self.tokenizer, self.mode = tokenizer, mode
        self.options = options or BeamSearchOptions()
        self.lm_path = str(lm) if lm else None
        self.lexicon_path = str(lexicon) if lexicon else None
        self.units = tokenizer_units(tokenizer)
        self.blank = tokenizer.blank
        space = word_boundary_id(tokenizer)
        self.sil = space if space is not None else self.blank
        lm_vocab = _lm_vocabulary(self.lm_path) if self.lm_path else None
        if mode == "lexicon-free":
            self._check_token_lm(lm_vocab)
            self._dict = fl_dict.Dictionary(self.units)
            self._lm = self._load_lm(self._dict) if self.lm_path else fl.ZeroLM()
            self._trie = None
        else:
            self._setup_lexicon(lm_vocab)
        self._check_options()

    # ------------------------------------------------------------------ set-up

    def _load_lm(self, usr_dict):
        from flashlight.lib.text.decoder.kenlm import KenLM

        try:
            return KenLM(self.lm_path, usr_dict)
        except RuntimeError as exc:
            raise ValueError(f"{self.lm_path}: KenLM could not load the language model ({exc})") from None

    def _check_token_lm(self, lm_vocab: list[str] | None) -> None:
        if lm_vocab is None:
            return
        unit = infer_unit(lm_vocab)
        wanted = "char" if self.tokenizer.kind == "char" else "bpe"
        if unit != wanted:
            raise ValueError(
                f"{self.lm_path}: a {unit}-level LM cannot drive lexicon-free decoding of a {self.tokenizer.kind} "
                f"model (its tokens must be the model's tokens): build one with `audio-lottery lm build "
                f"--unit {wanted}`{f' --tokenizer RUN/{TOKENIZER}' if wanted == 'bpe' else ''}, or use --lexicon lm "
                f"with a word LM")
        if not set(self.units[1:]) & set(lm_vocab):
            raise ValueError(f"{self.lm_path}: none of the model's tokens is in the LM")

    def _setup_lexicon(self, lm_vocab: list[str] | None) -> None:
        fl, fl_dict = _flashlight()
        if lm_vocab is not None and infer_unit(lm_vocab) != "word":
            raise ValueError(f"{self.lm_path}: lexicon decoding needs a word-level LM (audio-lottery lm build "
                             f"--unit word), this one is {infer_unit(lm_vocab)}-level")
        if self.lexicon_path:
            lexicon = read_lexicon(self.lexicon_path, {u: i for i, u in enumerate(self.units) if i != self.blank})
        elif lm_vocab is not None:
            lexicon = spell_words(lm_vocab, self.tokenizer)
        else:
            raise ValueError("lexicon decoding needs a lexicon file or a word LM to take the words from")
        words = sorted(set(lexicon) | {UNK})
        self._dict = fl_dict.Dictionary(words)
        self._lm = self._load_lm(self._dict) if self.lm_path else fl.ZeroLM()
        self._unk_word = self._dict.get_index(UNK)
        self._trie = fl.Trie(len(self.units), self.sil)
        start = self._lm.start(False)
        for word, spellings in lexicon.items():
            idx = self._dict.get_index(word)
            score = self._lm.score(start, idx)[1]
            for ids in spellings:
                self._trie.insert(ids, idx, score)
        self._trie.smear(fl.SmearingMode.MAX)

    def _check_options(self) -> None:
        if self.mode == "lexicon-free" and self.sil == self.blank and self.options.word_score != 0:
            raise ValueError("a word score needs a word-boundary token: lexicon-free decoding of a BPE model "
                             "has none (use --word-score 0, or --lexicon lm with a word LM)")

    def with_options(self, **changes) -> "CTCBeamDecoder":
        """A decoder with some options changed, sharing this one's LM and lexicon."""
        other = copy.copy(self)
        other.options = replace(self.options, **changes)
        other._check_options()
        return other

    def describe(self) -> dict:
        """Settings as a JSON-able dict (what ``--decode-params`` reads back)."""
        opts = asdict(self.options)
        opts["unk_score"] = None if math.isinf(opts["unk_score"]) else opts["unk_score"]  # JSON has no -inf
        lexicon = self.lexicon_path or ("lm" if self.mode == "lexicon" else None)
        return {"mode": self.mode, "lm": self.lm_path, "lexicon": lexicon, **opts}

    # ------------------------------------------------------------------ search

    def _search(self):
        fl, _ = _flashlight()
        o = self.options
        token_beam = o.beam_size_token or len(self.units)
        crit = fl.CriterionType.CTC
        if self.mode == "lexicon-free":
            opts = fl.LexiconFreeDecoderOptions(o.beam, token_beam, o.beam_threshold, o.lm_weight,
                                                o.word_score, o.log_add, crit)
            return fl.LexiconFreeDecoder(opts, self._lm, self.sil, self.blank, [])
        opts = fl.LexiconDecoderOptions(o.beam, token_beam, o.beam_threshold, o.lm_weight, o.word_score,
                                        o.unk_score, 0.0, o.log_add, crit)
        return fl.LexiconDecoder(opts, self._trie, self._lm, self.sil, self.blank, self._unk_word, [], False)

    def decode_one(self, emissions: Tensor) -> str:
        """Best transcript of one utterance's ``[T, V]`` log-probabilities."""
        return self.decode_batch([emissions])[0]

    def decode_batch(self, emissions: list[Tensor]) -> list[str]:
        """Best transcripts of several utterances, each ``[T, V]``."""
        search = self._search()
        out = []
        for em in emissions:
            em = torch.as_tensor(em).detach().to("cpu", torch.float32).contiguous()
            if em.ndim != 2 or em.shape[1] != len(self.units):
                raise ValueError(f"expected emissions [T, {len(self.units)}], got {list(em.shape)}")
            if em.shape[0] == 0:
                out.append("")
                continue
            best = search.decode(em.data_ptr(), em.shape[0], em.shape[1])[0]
            out.append(self._text(best))
        return out

    def __call__(self, log_probs: Tensor, lens: Tensor) -> list[str]:
        """Transcripts of a padded batch ``[B, T, V]`` with output lengths ``[B]``."""
        return self.decode_batch([lp[: int(n)] for lp, n in zip(log_probs, lens)])

    def _text(self, result) -> str:
        if self.mode == "lexicon":
            return " ".join(self._dict.get_entry(w) for w in result.words if w >= 0)
        frames = list(result.tokens)[1:-1]  # the search adds a word boundary before and after
        ids = [t for t, _ in itertools.groupby(frames) if t != self.blank]
        return " ".join(self.tokenizer.decode(ids).split())


def _lm_vocabulary(path: str) -> list[str]:
    from audio_lottery.lm.ngram import arpa_vocabulary

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: language model not found")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if b"\\data\\" not in head:
        raise ValueError(f"{path}: not an ARPA file (binary KenLM models are not supported here; pass the .arpa)")
    return arpa_vocabulary(path)


