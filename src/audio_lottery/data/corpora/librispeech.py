"""LibriSpeech: ``<split>/<spk>/<chap>/<spk>-<chap>-<utt>.flac`` + ``<spk>-<chap>.trans.txt``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from audio_lottery.data.corpora.common import (
    CorpusLayoutError,
    SkipItem,
    SplitResult,
    clean_transcript,
    collect,
    find_base,
    make_record,
    probe_duration,
)


def _is_split(folder: Path) -> bool:
    return any(folder.glob("*/*/*.trans.txt"))


def _has_splits(folder: Path) -> bool:
    return folder.is_dir() and any(_is_split(c) for c in folder.iterdir() if c.is_dir())


def find_splits(root: Path) -> dict[str, Path]:
    """Split name -> folder, for ``root`` or a ``LibriSpeech/`` folder below it."""
    base = find_base(Path(root), _has_splits, depth=1)
    if base is None:
        raise CorpusLayoutError(
            f"{root}: no LibriSpeech splits found (expected <split>/<spk>/<chap>/<spk>-<chap>.trans.txt)"
        )
    return {c.name: c for c in sorted(base.iterdir()) if c.is_dir() and _is_split(c)}


def _chapter(trans: Path, split: str) -> Iterator[dict | SkipItem]:
    """Records of one chapter transcript; flac files without a transcript line are skipped."""
    folder = trans.parent
    seen: set[str] = set()
    for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt_id, _, raw = line.strip().partition(" ")
        seen.add(utt_id)
        audio = folder / f"{utt_id}.flac"
        try:
            text = clean_transcript(raw, f"{trans}:{lineno}")
            duration = probe_duration(audio)
        except SkipItem as skip:
            yield skip
            continue
        yield make_record(utt_id, audio, duration, text, utt_id.split("-")[0], split=split, corpus="librispeech")
    for flac in sorted(folder.glob("*.flac")):
        if flac.stem not in seen:
            yield SkipItem("missing_transcript", flac, f"no line for {flac.stem} in {trans.name}")


def collect_split(split: str, folder: Path, progress: bool = True) -> SplitResult:
    """Records of one LibriSpeech split folder."""
    chapters = sorted(folder.glob("*/*/*.trans.txt"))
    return collect(chapters, lambda t: _chapter(t, split), f"librispeech/{split}", progress)


def collect_librispeech(root: Path, progress: bool = True) -> dict[str, SplitResult]:
    """All LibriSpeech splits under ``root`` (split names are the folder names)."""
    return {name: collect_split(name, folder, progress) for name, folder in find_splits(root).items()}
