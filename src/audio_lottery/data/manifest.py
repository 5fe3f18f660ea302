"""JSONL manifests: the one contract between corpus preparation and training.

One utterance per line with at least ``audio`` (path, absolute or relative to the
manifest), ``duration`` (s), ``text``, ``speaker``; optional ``offset`` (s) for a
segment inside a long file, ``id`` and free extra fields (``engine``, ``voice``, ...).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Iterator

from audio_lottery.files import atomic_write_jsonl

REQUIRED_FIELDS = ("audio", "duration", "text", "speaker")


class ManifestError(ValueError):
    """A manifest line is malformed; the message names the file and the line."""


def write_manifest(path: str | Path, records: Iterable[dict]) -> int:
    """Atomically write ``records`` as JSONL; returns the number of lines."""
    rows = list(records)
    atomic_write_jsonl(Path(path), rows)
    return len(rows)


def read_manifest(path: str | Path, resolve_audio: bool = True) -> list[dict]:
    """Read and validate a manifest. Relative audio paths are resolved against its folder.

    Every record gets an ``id`` (the one in the file, else ``<stem>[@offset]``) and an
    ``offset`` (default 0). The first malformed line (invalid JSON or UTF-8, missing or
    invalid field, duplicate id) raises :class:`ManifestError` naming the file and line;
    ``audio-lottery data check`` lists them all.
    """
    records = []
    for _, item in iter_manifest(path, resolve_audio):
        if isinstance(item, ManifestError):
            raise ManifestError(f"{item} (`audio-lottery data check --manifest {path}` lists every problem)")
        records.append(item)
    return records


def iter_manifest(path: str | Path, resolve_audio: bool = True) -> Iterator[tuple[int, dict | ManifestError]]:
    """(line number, record or the :class:`ManifestError` of that line) for every non-blank line.

    A missing or unreadable manifest raises ManifestError at once.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    seen: dict[str, int] = {}
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    rec = _parse_line(raw, lineno, path, resolve_audio)
                except ManifestError as exc:
                    yield lineno, exc
                    continue
                if rec is None:
                    continue
                if rec["id"] in seen:
                    yield lineno, ManifestError(f"{path}:{lineno}: duplicate utterance id {rec['id']!r} "
                                                f"(first on line {seen[rec['id']]})")
                    continue
                seen[rec["id"]] = lineno
                yield lineno, rec
    except OSError as exc:
        raise ManifestError(f"{path}: manifest unreadable ({exc})") from None


def _parse_line(raw: bytes, lineno: int, path: Path, resolve_audio: bool) -> dict | None:
    """One record from one line (None for a blank line); ManifestError names the file and line."""
    where = f"{path}:{lineno}"
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not line.strip():
        return None
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    missing = [k for k in REQUIRED_FIELDS if k not in rec]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        if isinstance(rec["duration"], bool) or isinstance(rec.get("offset"), bool):
            raise TypeError
        rec["duration"] = float(rec["duration"])
        rec["offset"] = float(rec.get("offset", 0.0) or 0.0)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: duration/offset must be numbers") from None
    if not math.isfinite(rec["duration"]) or rec["duration"] <= 0:
        raise ManifestError(f"{where}: duration must be a positive number, got {rec['duration']}")
    if not math.isfinite(rec["offset"]) or rec["offset"] < 0:
        raise ManifestError(f"{where}: offset must be a non-negative number, got {rec['offset']}")
    if not isinstance(rec["text"], str):
        raise ManifestError(f"{where}: text must be a string")
    if not isinstance(rec["audio"], str) or not rec["audio"].strip():
        raise ManifestError(f"{where}: audio must be a non-empty path string")
    rec["speaker"] = str(rec["speaker"])
    if resolve_audio and not Path(rec["audio"]).is_absolute():
        rec["audio"] = str((path.parent / rec["audio"]).resolve())
    if "id" not in rec:
        stem = Path(rec["audio"]).stem
        rec["id"] = stem if rec["offset"] == 0 else f"{stem}@{rec['offset']:.2f}"
    rec["id"] = str(rec["id"])
    return rec


def combine_manifests(sources: Iterable[str | Path], out: str | Path) -> dict:
    """Write the records of every manifest in ``sources`` (in order) to ``out``, audio paths relative to
    ``out``'s folder, so one training run can read several corpora. Every source is validated; an id that
    occurs in two sources raises :class:`ManifestError` naming both files. Returns the count per source."""
    out = Path(out)
    rows, origin, counts = [], {}, {}
    for src in sources:
        records = read_manifest(src)
        for rec in records:
            if rec["id"] in origin:
                raise ManifestError(f"{src}: utterance id {rec['id']!r} is also in {origin[rec['id']]}; "
                                    "ids must be unique across the combined manifests")
            origin[rec["id"]] = src
            rows.append({**rec, "audio": os.path.relpath(rec["audio"], out.parent.resolve())})
        counts[str(src)] = len(records)
    if not rows:
        raise ManifestError(f"{out}: nothing to combine (no source manifest or only empty ones)")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out, rows)
    return {"out": str(out), "utterances": len(rows), "sources": counts}
