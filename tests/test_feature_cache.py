"""The in-memory cache of decoded training input: same features as without it, decoded once,
bounded; features where the augmentation leaves the front-end's input alone, else the audio."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_lottery.config import AugmentConfig, FeatureConfig, config_hash, load_config
from audio_lottery.data.pipeline import dataset as dataset_module
from audio_lottery.data.audio import AudioError
from audio_lottery.data.pipeline.augmentation import Augmentation, build_augmentation
from audio_lottery.data.pipeline.dataset import SpeechDataset
from audio_lottery.data.pipeline.feature_cache import (
    FeatureCache,
    pack_wave,
    shared_cache,
    unpack_wave,
    utterance_key,
    wave_key,
)
from audio_lottery.data.pipeline.features import FeatureExtractor
from audio_lottery.data.pipeline.tokenizers import CharTokenizer

from conftest import TINY_CONFIG, noise_utterances

SR = 16000


def _records(tmp_path, n: int = 4) -> list[dict]:
    return noise_utterances(tmp_path, n, first=SR // 2, step=1600)


def _dataset(records, augment_cfg: AugmentConfig, cache: FeatureCache | None) -> SpeechDataset:
    featurizer = FeatureExtractor(FeatureConfig())
    aug = build_augmentation(augment_cfg, SR, featurizer)
    return SpeechDataset(records, featurizer, CharTokenizer(), SR, aug, seed=5, cache=cache)


def _epoch(ds: SpeechDataset, epoch: int) -> list[torch.Tensor]:
    ds.set_epoch(epoch)
    return [ds[i]["feats"] for i in range(len(ds))]


SPEC_ONLY = AugmentConfig(freq_masks=2, freq_width=20, time_masks=2, time_width=10)


def test_cached_features_equal_uncached_ones_in_every_epoch(tmp_path):
    records = _records(tmp_path)
    cache = FeatureCache(1 << 30)
    cached, plain = _dataset(records, SPEC_ONLY, cache), _dataset(records, SPEC_ONLY, None)
    for epoch in (0, 1, 0):
        a, b = _epoch(cached, epoch), _epoch(plain, epoch)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert (cache.misses, cache.hits, len(cache)) == (4, 8, 4)
    # SpecAugment masked copies: the cached features themselves hold no zeroed band
    assert all((v != 0).all() for v in cache._entries.values())
    assert any(not torch.equal(x, y) for x, y in zip(_epoch(cached, 0), _epoch(cached, 1)))


def test_cache_is_shared_by_datasets_and_never_read_from_disk_again(tmp_path, monkeypatch):
    records = _records(tmp_path)
    cache = FeatureCache(1 << 30)
    _epoch(_dataset(records, SPEC_ONLY, cache), 0)
    monkeypatch.setattr(dataset_module, "load_audio", lambda *a, **k: pytest.fail("decoded a cached utterance"))
    second = _epoch(_dataset(records, AugmentConfig(), cache), 0)  # another training, no SpecAugment
    assert all(torch.equal(f, v) for f, v in zip(second, cache._entries.values()))


def test_changed_audio_file_is_decoded_again(tmp_path):
    records = _records(tmp_path, 1)
    cache = FeatureCache(1 << 30)
    before = _epoch(_dataset(records, AugmentConfig(), cache), 0)[0]
    sf.write(records[0]["audio"], np.zeros(SR // 2, dtype=np.float32) + 0.05, SR)
    os.utime(records[0]["audio"], ns=(1, 1))  # a new modification time even on a coarse clock
    after = _epoch(_dataset(records, AugmentConfig(), cache), 0)[0]
    assert cache.misses == 2 and not torch.equal(before, after)


def test_budget_bounds_the_cache(tmp_path):
    records = _records(tmp_path)
    one = FeatureExtractor()(torch.zeros(int(records[0]["duration"] * SR)))
    cache = FeatureCache(one.element_size() * one.nelement())  # room for the shortest utterance only
    _epoch(_dataset(records, AugmentConfig(), cache), 0)
    assert len(cache) == 1 and cache.bytes <= cache.budget_bytes
    cache.resize(0)
    assert len(cache) == 0 and cache.bytes == 0


@pytest.mark.parametrize("augment", [AugmentConfig(vtlp_prob=1.0), AugmentConfig(speed_prob=1.0)])
def test_augmented_audio_keeps_the_waveform_not_the_features(tmp_path, augment, monkeypatch):
    records = _records(tmp_path, 2)
    cache = FeatureCache(1 << 30)
    cached, plain = _dataset(records, augment, cache), _dataset(records, augment, None)
    first = _epoch(cached, 0)
    assert all(torch.equal(x, y) for x, y in zip(first, _epoch(plain, 0)))
    assert any(not torch.equal(x, y) for x, y in zip(first, _epoch(cached, 1)))  # augmented per epoch
    assert (cache.misses, len(cache)) == (2, 2)  # the audio, decoded once
    assert all(key[0] == "wave" and v.dtype == torch.int16 for key, v in cache._entries.items())
    monkeypatch.setattr(dataset_module, "load_audio", lambda *a, **k: pytest.fail("decoded a cached utterance"))
    assert all(torch.equal(x, y) for x, y in zip(_epoch(cached, 1), _epoch(_dataset(records, augment, cache), 1)))


def test_a_waveform_round_trips_exactly_and_comes_back_as_a_fresh_array():
    pcm16 = (np.arange(-32768, 32768, 97, dtype=np.int16).astype(np.float32) / 32768).astype(np.float32)
    packed = pack_wave(pcm16)
    assert packed.dtype == torch.int16 and packed.nelement() == pcm16.size
    back = unpack_wave(packed)
    assert back.dtype == np.float32 and np.array_equal(back, pcm16)
    back[:] = 0  # the caller may change what it got
    assert np.array_equal(unpack_wave(packed), pcm16)
    for not_pcm16 in (pcm16 + np.float32(1e-6), np.array([1.0, -0.5], dtype=np.float32)):  # off the grid; 1.0 > int16
        kept = pack_wave(not_pcm16)
        assert kept.dtype == torch.float32 and np.array_equal(unpack_wave(kept), not_pcm16)


def test_wave_and_feature_keys_never_meet(tmp_path):
    rec = _records(tmp_path, 1)[0]
    assert wave_key(rec, SR)[0] == "wave" and wave_key(rec, SR) != utterance_key(rec, FeatureExtractor(), SR)
    assert wave_key(rec, SR) != wave_key({**rec, "offset": 0.1}, SR) and wave_key(rec, SR) != wave_key(rec, 8000)
    assert wave_key({**rec, "audio": str(tmp_path / "missing.flac")}, SR) is None


def test_key_names_file_segment_rate_and_front_end(tmp_path):
    rec = _records(tmp_path, 1)[0]
    key = utterance_key(rec, FeatureExtractor(FeatureConfig()), SR)
    assert key != utterance_key(rec, FeatureExtractor(FeatureConfig(n_mels=40)), SR)
    assert key != utterance_key({**rec, "offset": 0.1}, FeatureExtractor(FeatureConfig()), SR)
    assert key != utterance_key(rec, FeatureExtractor(FeatureConfig()), 8000)
    assert utterance_key({**rec, "audio": str(tmp_path / "missing.flac")}, FeatureExtractor(), SR) is None
    assert utterance_key(rec, torch.nn.Identity(), SR) is None


def test_unreadable_audio_skips_the_utterance_but_a_failing_augmentation_stops(tmp_path, caplog):
    records = _records(tmp_path, 1)
    bad = {**records[0], "id": "gone", "audio": str(tmp_path / "gone.flac")}
    assert _dataset([bad], SPEC_ONLY, FeatureCache(1 << 30))[0] is None and "gone" in caplog.text

    def broken_noise(wave, rng):
        raise AudioError("noise.flac: unreadable audio")

    cache = FeatureCache(1 << 30)
    ds = SpeechDataset(records, FeatureExtractor(), CharTokenizer(), SR, Augmentation(noise=broken_noise), seed=5,
                       cache=cache)
    with pytest.raises(AudioError, match="noise.flac"):
        ds[0]
    assert [key[0] for key in cache._entries] == ["wave"]  # noise changes what the front-end sees: audio kept


def test_shared_cache_budget_is_a_runtime_setting():
    assert shared_cache(0) is None
    assert shared_cache(1).budget_bytes == 1 << 20
    base = load_config(TINY_CONFIG)
    assert config_hash(base) == config_hash(load_config(TINY_CONFIG, ["data.feature_cache_mb=0"]))


def test_a_pickled_cache_keeps_its_budget_and_starts_empty(tmp_path):
    import pickle

    records = _records(tmp_path, 2)
    cache = FeatureCache(1 << 30)
    ds = _dataset(records, SPEC_ONLY, cache)
    first = _epoch(ds, 0)
    copy = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker started by spawn receives
    assert copy.cache.budget_bytes == 1 << 30 and len(copy.cache) == 0
    assert all(torch.equal(a, b) for a, b in zip(first, _epoch(copy, 0)))
