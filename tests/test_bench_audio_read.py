"""bench/bench_audio_read.py on a tiny manifest: every part timed, the cached audio identical."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_audio_read as bench  # noqa: E402
from results_io import parse_tables  # noqa: E402


def _manifest(tmp_path: Path, n: int = 5) -> Path:
    rng = np.random.default_rng(3)
    lines = []
    for i in range(n):
        samples = 8000 + 1600 * i
        sf.write(tmp_path / f"u{i}.flac", (0.1 * rng.standard_normal(samples)).astype(np.float32), 16000)
        lines.append(json.dumps({"id": f"u{i}", "audio": f"u{i}.flac", "duration": samples / 16000, "text": "a b",
                                 "speaker": "s0"}))
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "train.jsonl"


def test_parts_interleave_and_cover_every_record():
    parts = bench.parts([{"id": i} for i in range(7)], 3)
    assert [[r["id"] for r in p] for p in parts] == [[0, 3, 6], [1, 4], [2, 5]]


def test_page_times_every_step_and_finds_the_cached_audio_exact(tmp_path):
    out = tmp_path / "bench_audio_read.md"
    bench.main(["--manifest", str(_manifest(tmp_path, 11)), "--threads", "3", "--out", str(out)])
    text = out.read_text()
    rows = {r[0]: r for r in parse_tables(text)[0]["rows"]}
    assert list(rows) == ["check, one by one", "check, 3 threads", "check, 3 threads reading ahead",
                          "epoch audio, decoded from disk", "epoch audio, decoded from disk, next batch read ahead",
                          "epoch audio, from the in-memory cache"]
    assert [rows[k][1] for k in rows] == ["3", "2", "2", "2", "2", "2"]
    assert "the very same samples." in text and "2 of 2 files as 16-bit integers" in text
    assert "(no `--cold`)" in text
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["data"]["exact"] is True


def test_an_epoch_read_ahead_gives_the_same_audio_in_the_same_order(tmp_path):
    from audio_lottery.data.manifest import read_manifest

    records = read_manifest(_manifest(tmp_path, 7))
    plain, ahead = bench.read_epoch(records, ahead=False), bench.read_epoch(records, ahead=True)
    assert len(plain) == 7 and all(np.array_equal(a, b) for a, b in zip(plain, ahead, strict=True))


def test_cold_steps_drop_the_page_cache_first(monkeypatch):
    dropped = []
    monkeypatch.setattr(bench, "drop_page_cache", lambda: dropped.append(True))
    bench.timed(lambda: None)
    assert dropped == []
    seconds, _ = bench.timed(lambda: None, cold=True)
    assert dropped == [True] and seconds >= 0
