"""JSONL manifests: the one contract between corpus preparation and training.

One utterance per line with at least ``audio`` (path, absolute or relative to the
manifest), ``duration`` (s), ``text``, ``speaker``; optional ``offset`` (s) for a
segment inside a long file, ``id`` and free extra fields (``engine``, ``voice``, ...).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from audio_lottery.io import atomic_write_jsonl

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
    ``offset`` (default 0). Duplicate ids are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    records: list[dict] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise ManifestError(f"{path}:{lineno}: expected a JSON object")
            missing = [k for k in REQUIRED_FIELDS if k not in rec]
            if missing:
                raise ManifestError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            try:
                rec["duration"] = float(rec["duration"])
                rec["offset"] = float(rec.get("offset", 0.0) or 0.0)
            except (TypeError, ValueError):
                raise ManifestError(f"{path}:{lineno}: duration/offset must be numbers") from None
            if not math.isfinite(rec["duration"]) or rec["duration"] <= 0:
                raise ManifestError(f"{path}:{lineno}: duration must be a positive number, got {rec['duration']}")
            if not math.isfinite(rec["offset"]) or rec["offset"] < 0:
                raise ManifestError(f"{path}:{lineno}: offset must be a non-negative number, got {rec['offset']}")
            if not isinstance(rec["text"], str):
                raise ManifestError(f"{path}:{lineno}: text must be a string")
            rec["speaker"] = str(rec["speaker"])
            if resolve_audio and not Path(rec["audio"]).is_absolute():
                rec["audio"] = str((path.parent / rec["audio"]).resolve())
            if "id" not in rec:
                stem = Path(rec["audio"]).stem
                rec["id"] = stem if rec["offset"] == 0 else f"{stem}@{rec['offset']:.2f}"
            rec["id"] = str(rec["id"])
            if rec["id"] in seen:
                raise ManifestError(f"{path}:{lineno}: duplicate utterance id {rec['id']!r}")
            seen.add(rec["id"])
            records.append(rec)
    return records
