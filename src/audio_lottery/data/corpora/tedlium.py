"""TED-LIUM 2/3: ``<split>/sph/<talk>.sph`` + ``<split>/stm/<talk>.stm``, one record per STM segment.

For TED-LIUM 3 the ``legacy/<split>`` layout (same splits as release 2) is used when present.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from audio_lottery.data.corpora.common import (
    CorpusLayoutError,
    SkipItem,
    SplitResult,
    check_segment,
    clean_transcript,
    collect,
    find_base,
    make_record,
    probe_duration,
)

IGNORE = "ignore_time_segment_in_scoring"
_MARKERS = re.compile(r"<[^>]*>|\{[^}]*\}|\([^)]*\)|\[[^\]]*\]")
_CONTRACTION = re.compile(r"(?<=\w) +(?=(?:'s|'re|'ve|'m|'ll|'d|'t|n't)\b)", re.IGNORECASE)


def clean_stm_text(raw: str) -> str:
    """Drop ``<unk>`` and other ``<...>``/``{...}``/``(...)`` markers, re-join split contractions."""
    text = _MARKERS.sub(" ", raw)
    text = " ".join(text.split())
    return _CONTRACTION.sub("", text)


def _is_split(folder: Path) -> bool:
    return (folder / "stm").is_dir() and any((folder / "stm").glob("*.stm"))


def _has_splits(folder: Path) -> bool:
    if (folder / "legacy").is_dir():
        folder = folder / "legacy"
    return any(_is_split(c) for c in folder.iterdir() if c.is_dir())


def find_splits(root: Path) -> dict[str, Path]:
    """Split name -> folder (``<root>/legacy/<split>`` preferred when it exists)."""
    base = find_base(Path(root), _has_splits, depth=1)
    if base is None:
        raise CorpusLayoutError(f"{root}: no TED-LIUM splits found (expected <split>/stm/*.stm and <split>/sph/*.sph)")
    if (base / "legacy").is_dir():
        base = base / "legacy"
    return {c.name: c for c in sorted(base.iterdir()) if c.is_dir() and _is_split(c)}


def _parse_line(line: str, where: str) -> tuple[str, str, float, float, str] | None:
    """(talk, speaker, start, end, transcript) of an STM line; None for comments and blank lines."""
    if not line.strip() or line.startswith(";;"):
        return None
    fields = line.split(maxsplit=6)
    if len(fields) < 5:
        raise SkipItem("malformed_line", where, f"expected at least 5 fields in STM line {line.strip()!r}")
    talk, _channel, speaker, start, end = fields[:5]
    rest = fields[5:]
    if rest and rest[0].startswith("<") and rest[0].endswith(">"):
        rest = rest[1:]  # the <o,f0,gender> label
    try:
        return talk, speaker, float(start), float(end), " ".join(rest)
    except ValueError:
        raise SkipItem("malformed_line", where, f"bad start/end times in {line.strip()!r}") from None


def _talk(stm: Path, split: str) -> Iterator[dict | SkipItem]:
    """Records of one talk's STM file; the talk's audio is probed once."""
    durations: dict[Path, float | SkipItem] = {}
    for lineno, line in enumerate(stm.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        where = f"{stm}:{lineno}"
        try:
            seg = _parse_line(line, where)
            if seg is None:
                continue
            talk, speaker, start, end, raw = seg
            if raw.strip() == IGNORE:
                raise SkipItem("ignored_segment", where, IGNORE, warn=False)
            audio = stm.parent.parent / "sph" / f"{talk}.sph"
            if audio not in durations:
                try:
                    durations[audio] = probe_duration(audio)
                except SkipItem as skip:
                    durations[audio] = skip
                    raise
            total = durations[audio]
            if isinstance(total, SkipItem):  # already warned once for this file
                raise SkipItem(total.reason, total.where, total.detail, warn=False)
            duration = check_segment(start, end, total, where)
            text = clean_transcript(clean_stm_text(raw), where)
        except SkipItem as skip:
            yield skip
            continue
        utt_id = f"{talk}-{round(start * 100):07d}-{round(end * 100):07d}"
        yield make_record(utt_id, audio, duration, text, speaker, offset=start, split=split, corpus="tedlium")


def collect_split(split: str, folder: Path, progress: bool = True) -> SplitResult:
    """Records of one TED-LIUM split folder."""
    stms = sorted((folder / "stm").glob("*.stm"))
    return collect(stms, lambda s: _talk(s, split), f"tedlium/{split}", progress)


def collect_tedlium(root: Path, progress: bool = True) -> dict[str, SplitResult]:
    """All TED-LIUM splits under ``root`` (train/dev/test, or ``legacy/<split>`` for release 3)."""
    return {name: collect_split(name, folder, progress) for name, folder in find_splits(root).items()}
