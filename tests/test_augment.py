"""SpecAugment, SNR-exact noise mixing, NoiseMixer and synthetic noise generation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_lottery.config import AugmentConfig
from audio_lottery.data.audio import AudioError, load_audio
from audio_lottery.data.noise.mix import NoiseMixer, mix_at_snr
from audio_lottery.data.pipeline.augment import SpecAugment
from audio_lottery.data.noise.synthetic import generate_sox_noises

SR = 16000


def _snr(speech: np.ndarray, mixed: np.ndarray) -> float:
    noise = mixed.astype(np.float64) - speech.astype(np.float64)
    return 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))


# ----------------------------------------------------------------- SpecAugment


def test_specaugment_masks_number_and_width():
    cfg = AugmentConfig(freq_masks=2, freq_width=27, time_masks=10, time_width=70, time_width_ratio=0.05)
    aug = SpecAugment(cfg)
    gen = torch.Generator().manual_seed(0)
    frames, dim = 400, 80
    for _ in range(50):
        freq, time = aug.sample_masks(frames, dim, gen)
        assert len(freq) == 2 and len(time) == 10
        assert all(0 <= w <= 27 and 0 <= s and s + w <= dim for s, w in freq)
        assert all(0 <= w <= 20 and 0 <= s and s + w <= frames for s, w in time)  # min(70, 0.05*400)


def test_specaugment_zeroes_exactly_the_sampled_spans():
    aug = SpecAugment(AugmentConfig(freq_masks=1, freq_width=10, time_masks=2, time_width=30, time_width_ratio=1.0))
    feats = torch.ones(200, 40)
    out = aug(feats, torch.Generator().manual_seed(3))
    freq, time = aug.sample_masks(200, 40, torch.Generator().manual_seed(3))
    expected = torch.ones(200, 40)
    for s, w in freq:
        expected[:, s : s + w] = 0
    for s, w in time:
        expected[s : s + w] = 0
    assert torch.equal(out, expected)
    assert torch.all(feats == 1)  # input untouched


def test_specaugment_deterministic_with_generator():
    aug = SpecAugment(AugmentConfig(freq_masks=2, time_masks=2))
    feats = torch.randn(300, 80)
    a = aug(feats, torch.Generator().manual_seed(7))
    b = aug(feats, torch.Generator().manual_seed(7))
    c = aug(feats, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_specaugment_batch_respects_lengths_and_disabled_is_identity():
    aug = SpecAugment(AugmentConfig(time_masks=3, time_width=50, time_width_ratio=1.0))
    feats = torch.ones(2, 100, 8)
    out = aug(feats, torch.Generator().manual_seed(1), lengths=torch.tensor([100, 10]))
    assert torch.all(out[1, 10:] == 1)
    off = SpecAugment(AugmentConfig())
    assert not off.enabled
    assert torch.equal(off(feats), feats)


# ----------------------------------------------------------------- mix_at_snr


@pytest.mark.parametrize("snr_db", [-10.0, -5.0, 0.0, 5.0, 12.5, 30.0])
def test_mix_at_snr_exact(snr_db):
    rng = np.random.default_rng(0)
    speech = (rng.standard_normal(SR) * 0.1).astype(np.float32)
    noise = rng.standard_normal(SR // 3).astype(np.float32)  # shorter: tiled
    mixed = mix_at_snr(speech, noise, snr_db)
    assert isinstance(mixed, np.ndarray) and mixed.dtype == np.float32 and mixed.shape == speech.shape
    assert abs(_snr(speech, mixed) - snr_db) < 1e-3


def test_mix_at_snr_tensor_and_long_noise():
    speech = torch.randn(8000) * 0.2
    noise = torch.randn(50000)
    mixed = mix_at_snr(speech, noise, 3.0)
    assert isinstance(mixed, torch.Tensor) and mixed.dtype == torch.float32 and mixed.shape == speech.shape
    assert abs(_snr(speech.numpy(), mixed.numpy()) - 3.0) < 1e-3


def test_mix_at_snr_silent_inputs_do_not_nan():
    speech = np.zeros(1000, dtype=np.float32)
    out = mix_at_snr(speech, np.random.default_rng(0).standard_normal(1000), 5.0)
    assert np.all(np.isfinite(out))
    loud = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    out = mix_at_snr(loud, np.zeros(500, dtype=np.float32), 5.0)
    assert np.array_equal(out, loud)
    assert mix_at_snr(np.zeros(0, dtype=np.float32), np.ones(10), 0.0).size == 0


# ----------------------------------------------------------------- NoiseMixer


@pytest.fixture(scope="module")
def noise_manifest(tmp_path_factory) -> Path:
    return generate_sox_noises(tmp_path_factory.mktemp("noise"), seconds=2.0)


def test_generate_noises_manifest_and_determinism(noise_manifest, tmp_path):
    rows = [json.loads(line) for line in noise_manifest.read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["white", "pink", "brown"]
    for r in rows:
        assert r["text"] == "" and r["speaker"] == r["kind"] and abs(r["duration"] - 2.0) < 1e-3
        info = sf.info(str(noise_manifest.parent / r["audio"]))
        assert info.samplerate == SR and info.channels == 1 and info.format == "FLAC"
    again = generate_sox_noises(tmp_path, seconds=2.0, kinds=("pink",))
    a = load_audio(noise_manifest.parent / "pink.flac")
    b = load_audio(again.parent / "pink.flac")
    assert np.array_equal(a, b)
    assert np.std(a) > 0.01


def test_noise_mixer_prob_zero_and_one(noise_manifest):
    wave = (np.random.default_rng(0).standard_normal(SR) * 0.1).astype(np.float32)
    never = NoiseMixer(noise_manifest, prob=0.0, snr_min=0.0, snr_max=10.0, sample_rate=SR)
    rng = np.random.default_rng(0)
    assert all(never(wave, rng) is wave for _ in range(20))
    always = NoiseMixer(noise_manifest, prob=1.0, snr_min=0.0, snr_max=10.0, sample_rate=SR)
    for _ in range(20):
        mixed = always(wave, rng)
        assert mixed.shape == wave.shape and not np.array_equal(mixed, wave)
        assert -1e-3 <= _snr(wave, mixed) <= 10.0 + 1e-3


def test_noise_mixer_seeded_rng_reproducible(noise_manifest):
    mixer = NoiseMixer(noise_manifest, prob=0.5, snr_min=0.0, snr_max=20.0, sample_rate=SR)
    wave = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(10):
        assert np.array_equal(mixer(wave, r1), mixer(wave, r2))


def test_mix_fixed_reproducible(noise_manifest):
    wave = np.random.default_rng(2).standard_normal(SR).astype(np.float32)
    a = NoiseMixer(noise_manifest, prob=0.0, snr_min=0, snr_max=0, sample_rate=SR).mix_fixed(wave, "utt-1", 5.0)
    b = NoiseMixer(noise_manifest, prob=1.0, snr_min=0, snr_max=0, sample_rate=SR).mix_fixed(wave, "utt-1", 5.0)
    assert np.array_equal(a, b)
    assert abs(_snr(wave, a) - 5.0) < 1e-3
    others = [NoiseMixer(noise_manifest, 0.0, 0, 0, SR).mix_fixed(wave, f"utt-{i}", 5.0) for i in range(2, 6)]
    assert any(not np.array_equal(a, o) for o in others)
    c = NoiseMixer(noise_manifest, 0.0, 0, 0, SR, seed=1).mix_fixed(wave, "utt-1", 5.0)
    assert not np.array_equal(a, c)


def test_noise_mixer_bad_entry_names_file(tmp_path):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"not audio at all")
    manifest = tmp_path / "noise.jsonl"
    manifest.write_text(json.dumps({"audio": "broken.flac", "duration": 1.0, "text": "", "speaker": "x"}) + "\n")
    with pytest.raises(AudioError, match="broken.flac"):
        NoiseMixer(manifest, prob=1.0, snr_min=0, snr_max=5, sample_rate=SR)


def test_numpy_fallback_without_sox(tmp_path, monkeypatch):
    import audio_lottery.data.noise.synthetic as noise_mod

    monkeypatch.setattr(noise_mod.shutil, "which", lambda name: None)
    m1 = generate_sox_noises(tmp_path / "a", seconds=1.0, seed=3)
    m2 = generate_sox_noises(tmp_path / "b", seconds=1.0, seed=3)
    for kind in ("white", "pink", "brown"):
        a, b = load_audio(m1.parent / f"{kind}.flac"), load_audio(m2.parent / f"{kind}.flac")
        assert a.shape == (SR,) and np.array_equal(a, b) and np.std(a) > 0.01
