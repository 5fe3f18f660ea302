"""Domains from manifest fields: e.g. the embedded corpus's espeak voices against flite + festival.

``filter_records(records, "engine", ["espeak"])`` keeps the espeak utterances;
``exclude=True`` keeps the others. :func:`write_domain` applies one filter to several manifests
(train, dev, test) and writes them, with absolute audio paths, into one folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from audio_lottery.data.manifest import ManifestError, read_manifest, write_manifest


def filter_records(records: Sequence[dict], field: str, values: Sequence[str], exclude: bool = False) -> list[dict]:
    """Records whose ``field`` is one of ``values`` (or is not, with ``exclude``)."""
    wanted = {str(v) for v in values}
    return [r for r in records if (str(r.get(field)) in wanted) != exclude]


def write_domain(manifests: Sequence[str | Path], field: str, values: Sequence[str], out_dir: str | Path,
                 exclude: bool = False) -> dict[str, int]:
    """Filter each manifest and write it as ``out_dir/<same file name>``; returns name -> kept count.

    A manifest without ``field`` or a filter that keeps nothing raises :class:`ManifestError`.
    """
    out_dir = Path(out_dir)
    if not values:
        raise ValueError("give at least one value to filter on")
    names = [Path(m).name for m in manifests]
    if len(set(names)) != len(names):
        raise ValueError(f"manifests must have distinct file names to share {out_dir}: {names}")
    counts = {}
    for manifest in manifests:
        records = read_manifest(manifest)
        if records and not any(field in r for r in records):
            raise ManifestError(f"{manifest}: no record has the field {field!r}")
        kept = filter_records(records, field, values, exclude)
        if not kept:
            present = sorted({str(r.get(field)) for r in records})
            raise ManifestError(f"{manifest}: no record has {field} {'not ' if exclude else ''}in {list(values)} "
                                f"(values present: {present[:20]})")
        write_manifest(out_dir / Path(manifest).name, kept)
        counts[Path(manifest).name] = len(kept)
    return counts
