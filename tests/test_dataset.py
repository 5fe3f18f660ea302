import logging

import numpy as np
import soundfile as sf
import torch

from audio_lottery.data.pipeline.dataset import BucketBatchSampler, collate, filter_records, make_buckets
from audio_lottery.data.pipeline.tokenizers import CharTokenizer


def test_buckets_respect_limits_and_cover_everything():
    rng = np.random.default_rng(0)
    durs = list(rng.uniform(0.5, 12, size=300))
    batches = make_buckets(durs, batch_seconds=60, max_batch_size=16)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or len(b) * max(durs[i] for i in b) <= 60


def test_sampler_is_deterministic_and_sortagrad_first_epoch():
    durs = list(np.linspace(1, 10, 50))
    s1 = BucketBatchSampler(durs, 20, 8, seed=3, sortagrad=True)
    s2 = BucketBatchSampler(durs, 20, 8, seed=3, sortagrad=True)
    first = list(s1)
    assert first == sorted(first, key=lambda b: durs[b[0]])  # shortest first
    s1.set_epoch(1), s2.set_epoch(1)
    assert list(s1) == list(s2) and list(s1) != first


def test_collate_pads():
    items = [{"feats": torch.ones(5, 3), "tokens": [1, 2], "id": "a", "text": "ab"},
             {"feats": torch.ones(2, 3), "tokens": [3], "id": "b", "text": "c"}]
    b = collate(items)
    assert b.feats.shape == (2, 5, 3) and b.feats[1, 2:].abs().sum() == 0
    assert b.targets.tolist() == [[1, 2], [3, 0]] and b.target_lens.tolist() == [2, 1]


def test_filter_names_each_problem(tmp_path, caplog):
    good = tmp_path / "good.wav"
    sf.write(good, 0.1 * np.sin(np.arange(16000, dtype=np.float32) / 3), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....garbage")
    recs = [
        {"id": "ok", "audio": str(good), "duration": 1.0, "text": "hello", "offset": 0.0},
        {"id": "empty", "audio": str(good), "duration": 1.0, "text": "", "offset": 0.0},
        {"id": "oov", "audio": str(good), "duration": 1.0, "text": "caf\u00e9", "offset": 0.0},
        {"id": "short", "audio": str(good), "duration": 1.0, "text": "a" * 40, "offset": 0.0},
        {"id": "bad", "audio": str(corrupt), "duration": 1.0, "text": "hi", "offset": 0.0},
        {"id": "missing", "audio": str(tmp_path / "nope.wav"), "duration": 1.0, "text": "hi", "offset": 0.0},
        {"id": "beyond", "audio": str(good), "duration": 1.0, "text": "hi", "offset": 0.5},
    ]
    with caplog.at_level(logging.WARNING):
        kept, report = filter_records(recs, CharTokenizer(), lambda d: int(d * 25), 0.1, 20.0)
    assert [r["id"] for r in kept] == ["ok"]
    assert report.dropped == {"empty transcript": 1, "text outside the vocabulary": 1,
                              "audio too short for its transcript": 1, "unreadable audio": 1, "missing audio file": 1,
                              "segment beyond the end of the audio": 1}
    assert "corrupt.wav" in caplog.text and "nope.wav" in caplog.text
