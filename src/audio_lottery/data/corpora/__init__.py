"""Corpus building: the synthetic corpus (``synth``, ``sentences``), domain splits of a manifest
(``domains``) and the real-corpus preparers: official layouts (LibriSpeech, TED-LIUM 2/3, Common Voice,
Asterisk) -> JSONL manifests.

Each preparer in :data:`PREPARERS` takes ``(root: Path, progress: bool = True)`` and returns
``{split: SplitResult}``; those in :data:`CONVERTING` also take ``out=`` (they decode audio into
it). :func:`prepare_corpus` writes the splits as ``<out>/<split>.jsonl`` plus
``<out>/prepare_report.json`` (counts per split and every skipped item with its reason).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from audio_lottery.data.corpora.asterisk import collect_asterisk
from audio_lottery.data.corpora.common import CorpusLayoutError, SkipItem, SplitResult
from audio_lottery.data.corpora.commonvoice import collect_commonvoice
from audio_lottery.data.corpora.librispeech import collect_librispeech
from audio_lottery.data.corpora.tedlium import collect_tedlium
from audio_lottery.data.manifest import write_manifest
from audio_lottery.files import atomic_write_json

PREPARERS: dict[str, Callable[..., dict[str, SplitResult]]] = {
    "librispeech": collect_librispeech,
    "tedlium": collect_tedlium,
    "commonvoice": collect_commonvoice,
    "asterisk": collect_asterisk,
}
CONVERTING = {"asterisk"}  # preparers that write decoded audio under ``out``
DEFAULT_ROOTS = {"asterisk": Path("/")}  # installed Debian packages; the others need --root

_ALIASES = {"tedlium2": "tedlium", "tedlium3": "tedlium", "cv": "commonvoice"}


def resolve_name(name: str) -> str:
    """Canonical preparer name ("TED-LIUM3" -> "tedlium"); unknown names raise ValueError listing the known ones."""
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in PREPARERS:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(PREPARERS))}")
    return key


def prepare_corpus(name: str, root: Path | None, out: Path, progress: bool = True) -> dict[str, dict]:
    """Prepare corpus ``name`` found at ``root`` (None: its :data:`DEFAULT_ROOTS` entry) into
    ``<out>/<split>.jsonl`` manifests.

    Returns ``{split: {"written", "skipped", "reasons"}}``, also saved in ``<out>/prepare_report.json``
    with the list of skipped items per split.
    """
    key = resolve_name(name)
    if root is None:
        if key not in DEFAULT_ROOTS:
            raise ValueError(f"{key}: give the corpus folder (--root); only {', '.join(sorted(DEFAULT_ROOTS))} "
                             "has a default")
        root = DEFAULT_ROOTS[key]
    root = Path(root).resolve()
    if not root.is_dir():
        raise CorpusLayoutError(f"{root}: corpus folder not found")
    out = Path(out)
    extra = {"out": out} if key in CONVERTING else {}
    splits = PREPARERS[key](root, progress=progress, **extra)
    if not splits:
        raise CorpusLayoutError(f"{root}: no {key} splits found")
    report: dict[str, dict] = {}
    for split, result in splits.items():
        write_manifest(out / f"{split}.jsonl", result.records)
        report[split] = result.report()
    atomic_write_json(out / "prepare_report.json", {
        "corpus": key, "root": str(root), "splits": report,
        "skipped_items": {split: result.dropped for split, result in splits.items()},
    })
    return report


__all__ = [
    "CONVERTING", "DEFAULT_ROOTS", "PREPARERS", "CorpusLayoutError", "SkipItem", "SplitResult", "prepare_corpus",
    "resolve_name",
]
