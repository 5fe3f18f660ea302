"""Common Voice: ``clips/*.mp3`` + ``{train,dev,test}.tsv`` (tab separated, header with client_id, path, sentence)."""

from __future__ import annotations

import csv
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

SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")


def _looks_right(folder: Path) -> bool:
    return (folder / "clips").is_dir() and any((folder / f"{s}.tsv").is_file() for s in SPLITS)


def find_splits(root: Path) -> dict[str, Path]:
    """Split name -> TSV file, for ``root`` or a folder up to two levels below (``cv-corpus-*/en``)."""
    base = find_base(Path(root), _looks_right, depth=2)
    if base is None:
        raise CorpusLayoutError(f"{root}: no Common Voice layout found (expected clips/ and train/dev/test.tsv)")
    return {s: base / f"{s}.tsv" for s in SPLITS if (base / f"{s}.tsv").is_file()}


def read_tsv(tsv: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a Common Voice TSV; a missing column is an error naming the file."""
    with tsv.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusLayoutError(f"{tsv}: missing column(s) {', '.join(missing)} in the header")
        return [(reader.line_num, row) for row in reader]


def _row(item: tuple[int, dict[str, str]], tsv: Path, split: str) -> Iterator[dict]:
    lineno, row = item
    where = f"{tsv}:{lineno}"
    if not row.get("path"):
        raise SkipItem("malformed_line", where, "no clip path")
    audio = tsv.parent / "clips" / row["path"]
    text = clean_transcript(row.get("sentence") or "", where)
    duration = probe_duration(audio)
    extra = {k: row[k] for k in ("accent", "accents", "gender", "age", "locale") if row.get(k)}
    yield make_record(
        Path(row["path"]).stem, audio, duration, text, row["client_id"], split=split, corpus="commonvoice", **extra
    )


def collect_split(split: str, tsv: Path, progress: bool = True) -> SplitResult:
    """Records of one Common Voice TSV."""
    return collect(read_tsv(tsv), lambda item: _row(item, tsv, split), f"commonvoice/{split}", progress)


def collect_commonvoice(root: Path, progress: bool = True) -> dict[str, SplitResult]:
    """The train/dev/test splits of a Common Voice language folder."""
    return {name: collect_split(name, tsv, progress) for name, tsv in find_splits(root).items()}
