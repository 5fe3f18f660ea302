"""Asterisk core sounds (Debian ``asterisk-core-sounds-en`` + ``-g722``): real read speech, one speaker.

Layout, relative to ``root`` (``/`` for the installed packages; ``dpkg-deb -x PKG.deb DIR`` of both
packages gives the same tree under ``DIR``):

- ``usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``: ``name: transcript`` lines
  (``;`` comments), ``name`` a prompt path such as ``vm-intro`` or ``digits/1``;
- ``usr/share/asterisk/sounds/en_US_f_Allison/<name>.g722``: raw 16 kHz G.722, decoded with PyAV
  into ``<out>/wav/<name>.wav`` (16-bit PCM) which the manifests point at.

Transcript choices (see docs/bench_asterisk_corpus.md): ``[...]``, ``<...>`` and ``(...)`` are annotations, not
speech ("at [@]", "IAX (note: does not say "2")", "[sound of monkeys screaming]") and are removed;
the keypad symbols ``*`` and ``#`` are written as the words the prompts say ("star", "pound").
``raw_text`` is that spoken form with its case, punctuation and digits (what Whisper-style scoring
and fine-tuning read); ``source_text`` keeps the line verbatim where it differs; ``text`` is
:func:`normalize_text` of ``raw_text`` (digits spelled one by one).

Prompts are dropped only for: no usable transcript (no line, or only annotations), an audio
problem (:func:`audio_problem`), or a speaking rate outside :data:`RATE_RANGE` chars/s over the
whole file. Splits are assigned by a hash of the normalised transcript (:func:`split_of`), so a
transcript never appears in two splits and the assignment does not depend on what else is kept.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from audio_lottery.data.audio import audio_problem
from audio_lottery.data.corpora.common import (
    CorpusLayoutError,
    SkipItem,
    SplitResult,
    clean_transcript,
    collect,
    make_record,
)
from audio_lottery.data.text import WHISPER_EN, normalize_text
from audio_lottery.files import atomic_write_bytes, atomic_write_json

TRANSCRIPT_PACKAGE = "asterisk-core-sounds-en"
AUDIO_PACKAGE = "asterisk-core-sounds-en-g722"
TRANSCRIPTS = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
SPEAKER = "allison"
SAMPLE_RATE = 16000
RATE_RANGE = (4.0, 25.0)  # characters of ``text`` per second of audio
SPLITS = (("adapt", 60), ("dev", 20), ("test", 20))  # percent of transcripts
INFO = {
    "corpus": "asterisk",
    "speaker": {"id": SPEAKER, "description": "Allison Smith, professional US-English female voice talent"},
    "license": "CC-BY-SA-3.0",
    "attribution": "Asterisk core sound prompts (English), voice of Allison Smith, (c) Digium, Inc.; "
                   "Debian packages asterisk-core-sounds-en and asterisk-core-sounds-en-g722",
    "packages": [TRANSCRIPT_PACKAGE, AUDIO_PACKAGE],
    "sample_rate": SAMPLE_RATE,
    "scoring": WHISPER_EN,  # raw_text and hypotheses pass through Whisper's EnglishTextNormalizer
}

_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)")
_KEYPAD = {"*": " star ", "#": " pound "}


def spoken_form(line: str) -> str:
    """The spoken words of a transcript line: annotations removed, ``*``/``#`` as words, spaces collapsed."""
    text = _ANNOTATION.sub(" ", line)
    for symbol, word in _KEYPAD.items():
        text = text.replace(symbol, word)
    return " ".join(text.split())


def split_of(key: str) -> str:
    """``adapt``/``dev``/``test`` from the SHA-256 of ``key`` (the normalised transcript)."""
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    for name, share in SPLITS:
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("SPLITS must add up to 100")


def read_transcripts(path: Path) -> dict[str, tuple[int, str]]:
    """Prompt name -> (line number, transcript) from ``core-sounds-en.txt.gz``; a later repeat wins."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CorpusLayoutError(f"{path}: unreadable transcript file ({exc})") from None
    out: dict[str, tuple[int, str]] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        name, sep, text = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise CorpusLayoutError(f"{path}:{lineno}: expected 'name: transcript', got {line[:80]!r}")
        out[name.strip()] = (lineno, text.strip())
    return out


def find_layout(root: Path) -> tuple[Path, Path]:
    """(transcript file, sounds folder) under ``root``; a missing part names its Debian package."""
    transcripts, sounds = Path(root) / TRANSCRIPTS, Path(root) / SOUNDS
    for path, package, is_there in ((transcripts, TRANSCRIPT_PACKAGE, transcripts.is_file()),
                                    (sounds, AUDIO_PACKAGE, sounds.is_dir() and any(sounds.rglob("*.g722")))):
        if not is_there:
            raise CorpusLayoutError(f"{path}: not found; install the Debian package {package} "
                                    f"(`make setup` does) or pass --root to a folder holding its files")
    return transcripts, sounds


def decode_g722(path: Path, utt_id: str | None = None) -> np.ndarray:
    """Raw G.722 file -> int16 mono samples at 16 kHz (PyAV); raises :class:`SkipItem` when undecodable."""
    import av

    try:
        with av.open(str(path), format="g722") as container:
            frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    except (av.error.FFmpegError, ValueError) as exc:
        raise SkipItem("unreadable_audio", path, f"G.722 decoding failed ({exc})", utt_id=utt_id) from None
    if not frames:
        raise SkipItem("zero_duration", path, "no audio decoded", utt_id=utt_id)
    return np.concatenate(frames).astype(np.int16)


def _write_wav(path: Path, samples: np.ndarray) -> None:
    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    atomic_write_bytes(path, buf.getvalue())


def _split_key(name: str, line: str) -> str:
    """What :func:`split_of` hashes: the normalised transcript, else the verbatim line, else the name."""
    return normalize_text(spoken_form(line)) or line or name


def _prompt(name: str, g722: Path | None, line: tuple[int, str] | None, transcripts: Path,
            wav_dir: Path) -> Iterator[dict]:
    """The record of one prompt (raises :class:`SkipItem` to drop it)."""
    utt_id = name.replace("/", ".")
    where = g722 or transcripts
    if line is None:
        raise SkipItem("missing_transcript", where, f"no line for prompt {name!r} in {transcripts.name}",
                       utt_id=utt_id)
    lineno, source = line
    raw = spoken_form(source)
    if not raw:
        raise SkipItem("no_spoken_words", f"{transcripts}:{lineno}", f"transcript is only annotations ({source!r})",
                       warn=False, utt_id=utt_id)
    text = clean_transcript(raw, f"{transcripts}:{lineno}")
    if g722 is None:
        raise SkipItem("missing_audio", f"{transcripts}:{lineno}", f"no audio file {name}.g722", utt_id=utt_id)
    samples = decode_g722(g722, utt_id)
    duration = len(samples) / SAMPLE_RATE
    rate = len(text) / duration
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise SkipItem("speaking_rate", g722, f"{rate:.1f} chars/s outside {RATE_RANGE[0]:g}-{RATE_RANGE[1]:g} "
                       f"({len(text)} chars in {duration:.2f}s)", warn=False, utt_id=utt_id)
    wav = wav_dir / f"{name}.wav"
    _write_wav(wav, samples)
    extra = {"source_text": source} if " ".join(source.split()) != raw else {}
    record = make_record(utt_id, wav, duration, text, SPEAKER, raw_text=raw, **extra, prompt=name,
                         corpus="asterisk")
    problem, _ = audio_problem(record)
    if problem:
        wav.unlink()
        raise SkipItem(problem[0].replace(" ", "_"), g722, problem[1], utt_id=utt_id)
    yield record


def collect_asterisk(root: Path, out: Path, progress: bool = True) -> dict[str, SplitResult]:
    """adapt/dev/test splits of the Asterisk prompts under ``root``, audio decoded into ``<out>/wav``.

    Also writes ``<out>/corpus.json`` (speaker, licence, attribution, hours per split).
    """
    transcripts_file, sounds = find_layout(root)
    transcripts = read_transcripts(transcripts_file)
    audio = {p.relative_to(sounds).with_suffix("").as_posix(): p for p in sorted(sounds.rglob("*.g722"))}
    names: dict[str, list[str]] = {split: [] for split, _ in SPLITS}
    for name in sorted(set(audio) | set(transcripts)):
        line = transcripts.get(name)
        names[split_of(_split_key(name, line[1] if line else ""))].append(name)
    wav_dir = Path(out) / "wav"
    results = {
        split: collect(items, lambda n: _prompt(n, audio.get(n), transcripts.get(n), transcripts_file, wav_dir),
                       f"asterisk/{split}", progress)
        for split, items in names.items()
    }
    atomic_write_json(Path(out) / "corpus.json", {
        **INFO, "root": str(root), "transcripts": str(transcripts_file), "sounds": str(sounds),
        "hours": {k: round(sum(r["duration"] for r in v.records) / 3600, 4) for k, v in results.items()},
    })
    return results
