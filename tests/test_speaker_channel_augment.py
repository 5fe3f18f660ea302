"""Speaker and channel augmentation: speed perturbation, VTLP, room reverberation, the telephone
channel, and their composition (deterministic per seed, epoch and utterance, whatever the workers)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audio_lottery.config import AugmentConfig, ConfigError, FeatureConfig, load_config
from audio_lottery.data.pipeline.augment import SpecAugment
from audio_lottery.data.pipeline.augmentation import (
    Augmentation, Sometimes, VocalTractWarp, build_augmentation, shortest_duration_factor, utterance_rng,
)
from audio_lottery.data.pipeline.dataset import SpeechDataset
from audio_lottery.data.pipeline.features import FeatureExtractor
from audio_lottery.data.pipeline.mel import mel_filterbank, vtlp_warp
from audio_lottery.data.pipeline.reverb import Room, cached_bank, load_bank, reverberate, simulate_rirs
from audio_lottery.data.pipeline.speed import SpeedPerturbation, change_speed
from audio_lottery.data.pipeline.telephone import alaw_roundtrip, mulaw_roundtrip, telephone_channel
from audio_lottery.data.pipeline.tokenizers import CharTokenizer

from conftest import TINY_CONFIG

SR = 16000
TINY_ROOMS = (Room("test", (3.0, 3.5, 2.5), (0.2,)),)


def _tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def _peak_hz(wave: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(wave.size), n=8 * wave.size))
    return float(np.argmax(spec) * SR / (8 * wave.size))


def _band_energy(wave: np.ndarray, low: float, high: float) -> float:
    spec = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(wave.size, 1 / SR)
    return float(spec[(freqs >= low) & (freqs < high)].sum())


@pytest.fixture(scope="module")
def tiny_bank():
    return simulate_rirs(SR, TINY_ROOMS, placements=2)


# ----------------------------------------------------------------- speed perturbation


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_and_frequency_by_the_factor(factor):
    wave = _tone(1000.0)
    out = change_speed(wave, factor, SR)
    assert abs(out.size - wave.size / factor) <= 1 and out.dtype == np.float32
    assert _peak_hz(out) == pytest.approx(1000.0 * factor, abs=2.0)
    assert change_speed(wave, 1.0, SR) is wave


def test_speed_perturbation_draws_each_factor():
    sp = SpeedPerturbation([0.9, 1.0, 1.1], SR)
    rng = np.random.default_rng(0)
    lengths = {sp(np.zeros(11000, np.float32), rng).size for _ in range(60)}
    assert lengths == {12222, 11000, 10000}
    with pytest.raises(ValueError, match="speed_factors"):
        SpeedPerturbation([1.0, -1.0], SR)


# ----------------------------------------------------------------- VTLP


def test_warped_filterbank_with_factor_one_is_the_plain_one():
    assert torch.equal(mel_filterbank(SR, 512, 80, warp=1.0), mel_filterbank(SR, 512, 80))
    assert not torch.equal(mel_filterbank(SR, 512, 80, warp=1.05), mel_filterbank(SR, 512, 80))


def test_vtlp_warp_is_linear_below_the_boundary_and_keeps_nyquist():
    f = np.linspace(0, SR / 2, 1001)
    for alpha in (0.9, 1.1):
        w = vtlp_warp(f, alpha, SR)
        assert w[0] == 0 and w[-1] == pytest.approx(SR / 2) and np.all(np.diff(w) > 0)
        low = f < 0.6 * (SR / 2) * min(alpha, 1) / alpha
        np.testing.assert_allclose(w[low], alpha * f[low])
    np.testing.assert_array_equal(vtlp_warp(f, 1.0, SR), f)


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_vtlp_moves_a_tone_to_the_bin_of_the_scaled_frequency(alpha):
    fe = FeatureExtractor(FeatureConfig(normalize=False))
    warped = fe(torch.from_numpy(_tone(1200.0)), warp=alpha)[5:-5].mean(0)
    plain_scaled = fe(torch.from_numpy(_tone(1200.0 * alpha)))[5:-5].mean(0)
    plain = fe(torch.from_numpy(_tone(1200.0)))[5:-5].mean(0)
    assert int(warped.argmax()) == int(plain_scaled.argmax()) != int(plain.argmax())
    torch.testing.assert_close(fe(torch.from_numpy(_tone(500.0)), warp=1.0), fe(torch.from_numpy(_tone(500.0))))


def test_vtlp_needs_a_mel_front_end():
    linear = FeatureExtractor(FeatureConfig(kind="linear", win_ms=20.0))
    with pytest.raises(ValueError, match="data.augment.vtlp_prob"):
        linear(torch.zeros(1600), warp=1.1)
    with pytest.raises(ValueError, match="data.augment.vtlp_prob.*'linear'"):
        build_augmentation(AugmentConfig(vtlp_prob=1.0), SR, linear)


# ----------------------------------------------------------------- reverberation


def test_rir_bank_is_deterministic_and_direct_path_comes_first(tiny_bank):
    again = simulate_rirs(SR, TINY_ROOMS, placements=2)
    assert len(tiny_bank) == 2 and all(np.array_equal(a, b) for a, b in zip(tiny_bank.rirs, again.rirs))
    for rir, info in zip(tiny_bank.rirs, tiny_bank.info):
        onset = int(np.argmax(np.abs(rir) > 0.3 * np.abs(rir).max()))
        assert abs(onset - info["direct_sample"]) <= 1.5
        assert info["distance"] >= 1.0 and info["rt60"] == 0.2


def test_reverberation_keeps_length_power_and_the_direct_path_delay(tiny_bank):
    rir, direct = tiny_bank.rirs[0], tiny_bank.info[0]["direct_sample"]
    clicks = np.zeros(SR, np.float32)
    clicks[[1000, 9000]] = 1.0
    out = reverberate(clicks, rir)
    assert out.shape == clicks.shape and out.dtype == np.float32
    assert np.mean(out.astype(np.float64) ** 2) == pytest.approx(np.mean(clicks.astype(np.float64) ** 2), rel=1e-4)
    onset = int(np.argmax(np.abs(out) > 0.3 * np.abs(out).max()))
    assert abs(onset - (1000 + direct)) <= 1.5
    # nothing before the sound reaches the microphone (pyroomacoustics' zero-phase 10 Hz high-pass
    # leaves a slow ripple of a few % there)
    early = out[: 1000 + int(direct) - 45]
    assert np.abs(early).max() < 0.05 * np.abs(out).max() and np.sum(early**2) < 1e-2 * np.sum(out**2)
    tail = np.abs(out[9000 + int(direct) + 200 : 9000 + int(direct) + 1200]).max()
    assert tail > 1e-3  # reflections after the direct path: the room is heard


def test_bank_is_cached_once_and_reloaded_equal(tmp_path, monkeypatch, tiny_bank):
    import audio_lottery.data.pipeline.reverb as reverb

    first = cached_bank(SR, tmp_path, TINY_ROOMS, placements=2)
    files = list(tmp_path.glob("rirs_16000_*.safetensors"))
    assert len(files) == 1
    monkeypatch.setattr(reverb, "simulate_rirs", lambda *a, **k: pytest.fail("simulated again"))
    second = cached_bank(SR, tmp_path, TINY_ROOMS, placements=2)
    assert second.info == first.info == tiny_bank.info
    assert all(np.array_equal(a, b) for a, b in zip(second.rirs, tiny_bank.rirs))
    (tmp_path / "bad.safetensors").write_bytes(b"not a bank")
    with pytest.raises(ValueError, match="bad.safetensors"):
        load_bank(tmp_path / "bad.safetensors")


# ----------------------------------------------------------------- telephone channel


def test_telephone_channel_removes_energy_outside_the_voice_band():
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    out = telephone_channel(noise, SR)
    assert out.shape == noise.shape and out.dtype == np.float32
    total = _band_energy(out, 0, SR / 2)
    assert _band_energy(out, 4000, SR / 2) < 1e-4 * total
    assert _band_energy(noise, 4000, SR / 2) > 0.4 * _band_energy(noise, 0, SR / 2)
    tone = _tone(1000.0)
    passed = telephone_channel(tone, SR)
    assert np.corrcoef(passed[800:-800], tone[800:-800])[0, 1] > 0.99
    hum = telephone_channel(_tone(60.0), SR)
    assert np.mean(hum[800:-800] ** 2) < 1e-2 * np.mean(_tone(60.0) ** 2)  # mains hum: below the band
    assert np.all(telephone_channel(np.zeros(SR, np.float32), SR) == 0)


@pytest.mark.parametrize("coder", [mulaw_roundtrip, alaw_roundtrip])
def test_g711_companding_keeps_about_38_db_snr_and_is_coarse_near_full_scale(coder):
    x = np.linspace(-1, 1, 20001)
    y = coder(x)
    assert np.all(np.diff(y) >= 0) and y[0] == pytest.approx(-1, abs=1e-3) and y[-1] == pytest.approx(1, abs=1e-3)
    assert len(np.unique(np.round(y, 9))) <= 255  # an 8-bit code
    sine = 0.5 * np.sin(np.linspace(0, 200 * np.pi, 20000))
    snr = 10 * np.log10(np.mean(sine**2) / np.mean((coder(sine) - sine) ** 2))
    assert 30 < snr < 45
    # companding: small values get fine steps, large ones coarse steps
    small, large = np.linspace(0.001, 0.002, 2001), np.linspace(0.9, 0.901, 2001)
    assert np.abs(coder(small) - small).max() < np.abs(coder(large) - large).max() / 20


# ----------------------------------------------------------------- composition and determinism


def test_all_off_gives_no_augmentation_and_speed_filter_factor():
    fe = FeatureExtractor()
    assert build_augmentation(AugmentConfig(), SR, fe) is None
    assert shortest_duration_factor(AugmentConfig()) == 1.0
    assert shortest_duration_factor(AugmentConfig(speed_prob=0.5)) == pytest.approx(1 / 1.1)
    assert shortest_duration_factor(AugmentConfig(speed_prob=0.5, speed_factors=[0.8, 0.9])) == 1.0


def test_noise_and_specaugment_draw_as_before_the_other_augmentations_existed():
    fe, spec = FeatureExtractor(), SpecAugment(AugmentConfig(freq_masks=2, time_masks=2))
    wave = np.random.default_rng(3).standard_normal(SR).astype(np.float32) * 0.1

    def noise(w, rng):
        return w + 0.01 * rng.standard_normal(w.size).astype(np.float32)

    rng = np.random.default_rng([5, 2, 17])  # the dataset's old per-utterance stream
    old = spec(fe(torch.from_numpy(noise(wave, rng))), torch.Generator().manual_seed(int(rng.integers(2**31))))
    new = Augmentation(noise=noise, spec=spec).features(wave, fe, 5, 2, 17)
    assert torch.equal(old, new)
    # a new augmentation draws from its own stream: SpecAugment's masks and the noise stay the same
    with_vtlp = Augmentation(noise=noise, spec=spec, vtlp=VocalTractWarp(1.0, 1.0, 1.0)).features(wave, fe, 5, 2, 17)
    assert torch.equal(with_vtlp, new)


def test_sometimes_applies_with_its_probability():
    rng = np.random.default_rng(0)
    hits = sum(Sometimes(lambda w, r: w + 1, 0.3)(np.zeros(1), rng)[0] for _ in range(2000))
    assert 500 < hits < 700
    with pytest.raises(ValueError):
        Sometimes(lambda w, r: w, 1.5)


def _dataset(tmp_path, tiny_bank, monkeypatch) -> SpeechDataset:
    import audio_lottery.data.pipeline.reverb as reverb

    monkeypatch.setattr(reverb, "cached_bank", lambda sr: tiny_bank)  # the built-in bank takes seconds
    rng = np.random.default_rng(0)
    records = []
    for i in range(6):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, (rng.standard_normal(SR // 2 + 800 * i) * 0.1).astype(np.float32), SR)
        records.append({"id": f"u{i}", "audio": str(path), "duration": (SR // 2 + 800 * i) / SR, "text": "a b",
                        "offset": 0.0})
    cfg = AugmentConfig(speed_prob=1.0, vtlp_prob=0.7, reverb_prob=0.6, telephone_prob=0.5, freq_masks=1, time_masks=1)
    aug = build_augmentation(cfg, SR, FeatureExtractor())
    assert aug is not None and all(getattr(aug, k) is not None for k in ("speed", "reverb", "telephone", "vtlp", "spec"))
    return SpeechDataset(records, FeatureExtractor(), CharTokenizer(), SR, aug, seed=11)


def _epoch(ds: SpeechDataset, epoch: int, workers: int) -> dict[str, torch.Tensor]:
    ds.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, shuffle=False)
    return {item["id"]: item["feats"] for item in loader}


def test_augmented_features_depend_only_on_seed_epoch_and_utterance(tmp_path, tiny_bank, monkeypatch):
    ds = _dataset(tmp_path, tiny_bank, monkeypatch)
    one = _epoch(ds, 3, workers=0)
    two = _epoch(ds, 3, workers=2)
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
    other = _epoch(ds, 4, workers=0)
    assert any(not torch.equal(one[k], other[k]) for k in one)
    plain = {k: FeatureExtractor()(torch.from_numpy(sf.read(r["audio"], dtype="float32")[0]))
             for k, r in zip(one, ds.records)}
    assert any(one[k].shape != plain[k].shape for k in one)  # speed perturbation changed lengths


def test_augment_config_checks_name_the_key():
    with pytest.raises(ConfigError, match="speed_factors"):
        load_config(TINY_CONFIG, ["data.augment.speed_factors=[0.1, 1.0]"])
    with pytest.raises(ConfigError, match="vtlp_min"):
        load_config(TINY_CONFIG, ["data.augment.vtlp_min=1.2", "data.augment.vtlp_max=1.1"])
    with pytest.raises(ConfigError, match="telephone_codec"):
        load_config(TINY_CONFIG, ["data.augment.telephone_codec=gsm"])
