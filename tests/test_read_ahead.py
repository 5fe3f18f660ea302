"""Reading audio ahead: the kernel is asked for the files of the next batch (training and evaluation)
while the current one is worked on, only for files the in-memory cache does not hold, and the batches
and their order stay exactly those of the sampler."""

from __future__ import annotations

import os

import pytest

from audio_lottery.config import AugmentConfig, FeatureConfig
from audio_lottery.data import audio as audio_module
from audio_lottery.data.audio import inspect_many, read_ahead, reading_ahead
from audio_lottery.data.pipeline.augmentation import build_augmentation
from audio_lottery.data.pipeline.dataset import BucketBatchSampler, ReadAheadBatches, SpeechDataset
from audio_lottery.data.pipeline.feature_cache import FeatureCache
from audio_lottery.data.pipeline.features import FeatureExtractor
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.eval import evaluate as evaluate_module

from conftest import noise_utterances

SR = 16000


def _records(tmp_path, n: int = 6) -> list[dict]:
    return noise_utterances(tmp_path, n, first=SR // 4, step=800)


@pytest.fixture
def advised(monkeypatch) -> list[tuple[int, int, int, int]]:
    """Every posix_fadvise call: (inode, offset, length, advice)."""
    calls = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, length, advice:
                        calls.append((os.fstat(fd).st_ino, off, length, advice)), raising=False)
    return calls


def test_read_ahead_advises_each_readable_small_file_whole(tmp_path, advised, monkeypatch):
    recs = _records(tmp_path, 3)
    limit = max(os.path.getsize(r["audio"]) for r in recs)
    big = tmp_path / "big.flac"
    big.write_bytes(b"\0" * (limit + 1))
    monkeypatch.setattr(audio_module, "READ_AHEAD_MAX_BYTES", limit)
    n = read_ahead([r["audio"] for r in recs] + [str(tmp_path / "missing.flac"), str(big)])
    assert n == 3
    assert advised == [(os.stat(r["audio"]).st_ino, 0, 0, os.POSIX_FADV_WILLNEED) for r in recs]


def test_read_ahead_does_nothing_without_posix_fadvise(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "posix_fadvise", raising=False)
    assert read_ahead([r["audio"] for r in _records(tmp_path, 2)]) == 0


def _dataset(records, cache: FeatureCache | None, augment: AugmentConfig) -> SpeechDataset:
    featurizer = FeatureExtractor(FeatureConfig())
    return SpeechDataset(records, featurizer, CharTokenizer(), SR, build_augmentation(augment, SR, featurizer),
                         cache=cache)


@pytest.mark.parametrize("augment", [AugmentConfig(freq_masks=1), AugmentConfig(vtlp_prob=1.0)],
                         ids=["features kept", "audio kept"])
def test_files_to_read_leaves_out_what_the_cache_holds(tmp_path, augment):
    records = _records(tmp_path, 4)
    uncached = _dataset(records, None, augment)
    uncached[0]
    assert uncached.files_to_read(range(4)) == [r["audio"] for r in records]
    ds = _dataset(records, FeatureCache(1 << 30), augment)
    assert ds.files_to_read([2, 0]) == [records[2]["audio"], records[0]["audio"]]
    ds[0], ds[3]
    assert ds.files_to_read(range(4)) == [records[1]["audio"], records[2]["audio"]]


def test_read_ahead_batches_keeps_the_order_and_reads_one_batch_ahead(tmp_path, monkeypatch):
    durations = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    inner = BucketBatchSampler(durations, batch_seconds=3.0, max_batch_size=2, seed=3)
    events: list[tuple[str, list[int]]] = []
    monkeypatch.setattr(audio_module, "read_ahead", lambda files: events.append(("read", list(files))))
    sampler = ReadAheadBatches(inner, lambda batch: [i * 10 for i in batch])
    assert len(sampler) == len(inner)
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch)
        expected = list(inner)
        events.clear()
        for batch in sampler:
            events.append(("yield", batch))
        assert [b for kind, b in events if kind == "yield"] == expected
        # batch k+1's files are asked for before batch k is handed out; the first batch's before it
        reads = [i for i, (kind, _) in enumerate(events) if kind == "read"]
        yields = [i for i, (kind, _) in enumerate(events) if kind == "yield"]
        assert [events[i][1] for i in reads] == [[i * 10 for i in b] for b in expected]
        assert all(reads[k + 1] < yields[k] for k in range(len(expected) - 1))
        assert reads[0] < yields[0]


def test_evaluation_reads_the_next_batch_ahead(tmp_path, monkeypatch):
    records = _records(tmp_path, 6)
    read: list[list[str]] = []
    monkeypatch.setattr(audio_module, "read_ahead", lambda files: read.append(list(files)))

    class Rec:  # wave_batches only needs the sample rate and a model to put in eval mode
        class cfg:
            class data:
                features = FeatureConfig()
        model = FeatureExtractor(FeatureConfig())

    got = []
    for idx, waves in evaluate_module.wave_batches(Rec(), records, batch_seconds=0.7, max_batch_size=2):
        got.append(([records[i]["audio"] for i in idx], len(read)))
        assert all(len(w) == round(records[i]["duration"] * SR) for i, w in zip(idx, waves))
    batches = [files for files, _ in got]
    assert len(batches) > 2
    assert read == batches  # every batch asked for once, in order
    assert [n for _, n in got] == [min(k + 2, len(batches)) for k in range(len(batches))]  # one batch ahead


def test_reading_ahead_hands_out_every_group_after_asking_for_the_next():
    log: list[str] = []
    groups = reading_ahead(iter(["a", "b", "c"]), lambda g: log.append(f"read {g}") or [])
    for g in groups:
        log.append(f"use {g}")
    assert log == ["read a", "read b", "use a", "read c", "use b", "use c"]
    assert list(reading_ahead([], lambda g: [])) == []


def test_the_data_check_reads_ahead_only_files_it_has_not_inspected(tmp_path, monkeypatch):
    records = _records(tmp_path, 5)
    monkeypatch.setattr(audio_module, "INSPECT_CHUNK", 2)
    read: list[list[str]] = []
    monkeypatch.setattr(audio_module, "read_ahead", lambda files: read.append(list(files)))
    inspect_many(records[:2], threads=2, ahead=False)
    assert read == [[]]  # one chunk, nothing asked for
    read.clear()
    inspect_many(records, threads=2)
    assert read == [[], [records[2]["audio"], records[3]["audio"]], [records[4]["audio"]]]
    read.clear()
    inspect_many(records, threads=2)  # all inspected: nothing left to read
    assert read == [[], [], []]
