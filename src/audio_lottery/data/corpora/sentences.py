"""Sentence sources for the embedded corpus: Debian fortunes, WordNet glosses and the KJV Bible.

Every source yields raw sentences (cased, punctuated: what the TTS engine reads). A sentence
is kept only when a speech engine will say exactly its normalised transcript: no digits,
symbols, acronyms or abbreviations that engines expand ("Dr." -> "doctor", "IBM" -> "i b m").
"""

from __future__ import annotations

import functools
import random
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from audio_lottery.data.text import normalize_text

FORTUNE_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
KJV_RANGE = "Gen1:1-Rev22:21"
# Fortune files that are mostly pictures, code or non-English.
_FORTUNE_SKIP = {"ascii-art", "perl", "translate-me", "linux", "computers", "debian"}

_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(]?[A-Z])")
_CLAUSE_END = re.compile(r"(?<=[;:])\s+")
_ALLOWED_RAW = re.compile(r"^[A-Za-z ,.;:!?'\"()\-\u2019]+$")
_ABBREV = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Capt|Lt|Sgt|Rev|Mt|No|vs|etc|ca|cf|viz)\.", re.I)
_INITIAL = re.compile(r"(^|[\s(])[A-Za-z]\.|\b[A-Za-z]\.[A-Za-z]")
_ACRONYM = re.compile(r"[A-Z][A-Z]")
_ROMAN = re.compile(r"\b[IVXLC]{2,}\b")


@dataclass(frozen=True)
class Sentence:
    """One sentence: ``raw`` is spoken by the engine, ``text`` is the normalised transcript."""

    raw: str
    text: str
    source: str


class SentenceSourceError(RuntimeError):
    """No sentence source is available; the message names the Debian packages to install."""


def split_sentences(paragraph: str, max_words: int = 20) -> list[str]:
    """Split a paragraph into sentences; over-long ones are split again at ';' and ':'."""
    paragraph = " ".join(paragraph.split())
    out: list[str] = []
    for sent in _SENT_END.split(paragraph):
        if len(sent.split()) > max_words:
            out.extend(_CLAUSE_END.split(sent))
        else:
            out.append(sent)
    return [s.strip() for s in out if s.strip()]


def speakable(raw: str) -> bool:
    """True when an engine will read ``raw`` as its normalised transcript (no digits/symbols/acronyms)."""
    if not _ALLOWED_RAW.match(raw) or "--" in raw[-3:]:
        return False
    if _ACRONYM.search(raw) or _ROMAN.search(raw):
        return False
    inner = raw[:-1]  # abbreviations and initials need a full stop before the end
    return "." not in inner or not (_ABBREV.search(inner + " ") or _INITIAL.search(inner + " "))


def _clean_raw(raw: str) -> str:
    raw = raw.replace("\u2019", "'").replace("(", "").replace(")", "")
    raw = re.sub(r"\s*--\s*", ", ", raw).strip(" \"'-:;,")
    raw = raw[:1].upper() + raw[1:]
    return raw if raw.endswith((".", "!", "?")) else raw + "."


def _fortune_paragraphs() -> Iterable[str]:
    if not FORTUNE_DIR.is_dir():
        raise SentenceSourceError(f"fortunes not found in {FORTUNE_DIR}: apt-get install fortunes fortunes-min")
    for path in sorted(FORTUNE_DIR.iterdir()):
        if path.suffix or not path.is_file() or path.name in _FORTUNE_SKIP:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.M):
            lines = [ln for ln in entry.splitlines() if not ln.strip().startswith("--")]
            yield " ".join(lines)


def _wordnet_paragraphs() -> Iterable[str]:
    files = sorted(WORDNET_DIR.glob("data.*")) if WORDNET_DIR.is_dir() else []
    if not files:
        raise SentenceSourceError(f"WordNet data not found in {WORDNET_DIR}: apt-get install wordnet-base")
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(" ") or "|" not in line:
                    continue
                for part in line.split("|", 1)[1].split(";"):
                    part = part.strip().strip('"').strip()
                    if part:
                        yield part[0].upper() + part[1:]


def _kjv_paragraphs() -> Iterable[str]:
    exe = shutil.which("bible")
    if exe is None:
        raise SentenceSourceError("KJV Bible reader not found: apt-get install bible-kjv bible-kjv-text")
    proc = subprocess.run([exe, "-f", KJV_RANGE], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SentenceSourceError(f"`bible -f {KJV_RANGE}` failed ({proc.stderr.strip()}): install bible-kjv-text")
    for line in proc.stdout.splitlines():
        verse = line.split(" ", 1)[1] if " " in line else ""
        yield verse.replace("LORD", "Lord").replace("GOD", "God")


SOURCES: dict[str, Callable[[], Iterable[str]]] = {
    "fortunes": _fortune_paragraphs,
    "wordnet": _wordnet_paragraphs,
    "kjv": _kjv_paragraphs,
}


@functools.lru_cache(maxsize=16)
def _candidates(name: str, max_words: int, max_chars: int) -> tuple[str, ...]:
    """Sorted unique raw sentences of one source that pass the cheap checks (normalised later)."""
    found: set[str] = set()
    for para in SOURCES[name]():
        for raw in split_sentences(para, max_words):
            raw = _clean_raw(raw)
            if len(raw) <= 2 * max_chars and speakable(raw):
                found.add(raw)
    return tuple(sorted(found))


def load_sentence_records(
    seed: int = 0,
    min_words: int = 4,
    max_words: int = 20,
    max_chars: int = 120,
    sources: Iterable[str] = tuple(SOURCES),
    limit: int | None = None,
) -> list[Sentence]:
    """Deduplicated sentences of all available sources, shuffled per source and interleaved.

    Interleaving gives every source the same share of any prefix of the list, and ``limit``
    returns a prefix of the full list (faster: only that many are normalised). Missing sources
    are skipped with a warning; :class:`SentenceSourceError` names the packages if none exists.
    ``max_chars`` bounds the transcript length (about 12 s of speech at 10 characters/s).
    """
    per_source: list[tuple[str, list[str]]] = []
    errors: list[str] = []
    for name in sources:
        try:
            raws = list(_candidates(name, max_words, max_chars))
        except SentenceSourceError as exc:
            errors.append(str(exc))
            continue
        random.Random(f"{seed}:{name}").shuffle(raws)
        per_source.append((name, raws))
    if not per_source:
        raise SentenceSourceError("no sentence source available: " + "; ".join(errors))
    for err in errors:
        warnings.warn(f"sentence source skipped: {err}", stacklevel=2)
    return _interleave_unique(per_source, min_words, max_words, max_chars, limit)


def _interleave_unique(
    per_source: list[tuple[str, list[str]]], min_words: int, max_words: int, max_chars: int, limit: int | None
) -> list[Sentence]:
    seen: set[str] = set()
    out: list[Sentence] = []
    limit = limit if limit is not None else sum(len(raws) for _, raws in per_source)
    for i in range(max(len(raws) for _, raws in per_source)):
        for name, raws in per_source:
            if i >= len(raws) or len(out) >= limit:
                continue
            text = normalize_text(raws[i])
            if min_words <= text.count(" ") + 1 <= max_words and len(text) <= max_chars and text not in seen:
                seen.add(text)
                out.append(Sentence(raws[i], text, name))
        if len(out) >= limit:
            break
    return out


def load_sentences(
    seed: int = 0, min_words: int = 4, max_words: int = 20, max_chars: int = 120, limit: int | None = None
) -> list[str]:
    """Normalised, deduplicated sentences from fortunes, WordNet glosses and the KJV, shuffled by ``seed``."""
    return [s.text for s in load_sentence_records(seed, min_words, max_words, max_chars, limit=limit)]
