"""Helpers shared by the corpus preparers: skip accounting, audio probing, record building."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import soundfile as sf
from tqdm import tqdm

from audio_lottery.data.text import normalize_text

log = logging.getLogger("audio_lottery.data.corpora")

T = TypeVar("T")

# Segments may end this far (s) past the end of their audio file and are then clipped;
# further than that they are skipped as "segment_beyond_audio".
SEGMENT_TOLERANCE = 0.05


class CorpusLayoutError(FileNotFoundError):
    """The folder does not look like the expected corpus layout."""


class SkipItem(Exception):
    """Raised while building one record: the item is skipped and counted under ``reason``."""

    def __init__(
        self, reason: str, where: str | Path, detail: str, warn: bool = True, utt_id: str | None = None
    ) -> None:
        super().__init__(f"{where}: {detail}")
        self.reason, self.where, self.detail, self.warn, self.utt_id = reason, str(where), detail, warn, utt_id

    def to_dict(self) -> dict:
        """``{"id" (when known), "where", "reason", "detail"}`` for the prepare report."""
        head = {"id": self.utt_id} if self.utt_id else {}
        return {**head, "where": self.where, "reason": self.reason, "detail": self.detail}


@dataclass
class SplitResult:
    """Records of one split plus the skipped items (counted per reason and listed)."""

    records: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    dropped: list[dict] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set, repr=False)

    def add(self, record: dict) -> None:
        """Keep ``record`` unless its id was already seen (then it is skipped as a duplicate)."""
        if record["id"] in self._ids:
            self.skip(SkipItem("duplicate_id", record["audio"], f"duplicate utterance id {record['id']!r}",
                               utt_id=record["id"]))
            return
        self._ids.add(record["id"])
        self.records.append(record)

    def skip(self, item: SkipItem) -> None:
        """Count a skipped item, with a warning naming the file and the problem."""
        self.skipped[item.reason] += 1
        self.dropped.append(item.to_dict())
        if item.warn:
            log.warning("skipped %s: %s", item.where, item.detail)

    def report(self) -> dict:
        """``{"written", "skipped", "reasons"}`` summary of this split."""
        return {
            "written": len(self.records),
            "skipped": sum(self.skipped.values()),
            "reasons": dict(sorted(self.skipped.items())),
        }


def probe_duration(path: Path) -> float:
    """Duration (s) of an audio file from its header; raises :class:`SkipItem` if unusable."""
    if not path.is_file():
        raise SkipItem("missing_audio", path, "audio file not found")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types
        raise SkipItem("unreadable_audio", path, f"unreadable or corrupt audio ({exc})") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise SkipItem("zero_duration", path, "audio has no samples")
    return info.frames / info.samplerate


def clean_transcript(raw: str, where: str | Path) -> str:
    """Normalised transcript; raises :class:`SkipItem` when nothing is left."""
    text = normalize_text(raw)
    if not text:
        raise SkipItem("empty_transcript", where, f"empty transcript after normalisation ({raw!r})")
    return text


def check_segment(start: float, end: float, audio_duration: float, where: str | Path) -> float:
    """Validated segment duration (clipped to the audio end within :data:`SEGMENT_TOLERANCE`)."""
    if end - start <= 0:
        raise SkipItem("zero_duration", where, f"segment {start:.2f}-{end:.2f}s has no duration")
    if end > audio_duration + SEGMENT_TOLERANCE:
        raise SkipItem(
            "segment_beyond_audio", where, f"segment {start:.2f}-{end:.2f}s ends after the audio ({audio_duration:.2f}s)"
        )
    duration = min(end, audio_duration) - start
    if duration <= 0:
        raise SkipItem("zero_duration", where, f"segment {start:.2f}-{end:.2f}s has no duration")
    return duration


def make_record(
    utt_id: str, audio: Path, duration: float, text: str, speaker: str, offset: float = 0.0, **extra: object
) -> dict:
    """A manifest record with an absolute audio path (extra fields appended)."""
    return {
        "id": utt_id,
        "audio": str(Path(audio).resolve()),
        "duration": round(duration, 6),
        "text": text,
        "speaker": str(speaker),
        "offset": round(offset, 6),
        **extra,
    }


def collect(
    items: Iterable[T], build: Callable[[T], Iterable[dict | SkipItem]], desc: str, progress: bool = True
) -> SplitResult:
    """Run ``build`` on each item (it yields records or raises :class:`SkipItem`) into a sorted split.

    ``build`` may also yield :class:`SkipItem` instances to skip part of an item and go on.
    """
    items = list(items)
    result = SplitResult()
    for item in tqdm(items, desc=desc, disable=not progress, unit="item", leave=False):
        try:
            for rec in build(item):
                if isinstance(rec, SkipItem):
                    result.skip(rec)
                else:
                    result.add(rec)
        except SkipItem as skip:
            result.skip(skip)
    result.records.sort(key=lambda r: r["id"])
    return result


def find_base(root: Path, looks_right: Callable[[Path], bool], depth: int = 2) -> Path | None:
    """``root`` or its first descendant (up to ``depth`` levels, sorted) for which ``looks_right`` holds."""
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            if looks_right(folder):
                return folder
        level = [c for f in level for c in sorted(f.iterdir()) if c.is_dir()] if level else []
    return None
