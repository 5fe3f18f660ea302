"""Feature extraction: mel filterbank, log-mel, DS2 linear spectrogram, framing, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_lottery.config import FeatureConfig
from audio_lottery.data.pipeline.features import FeatureExtractor, mel_filterbank

SR = 16000


def _sine(freq: float, seconds: float = 1.0, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return torch.sin(2 * torch.pi * freq * t).float()


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax",
    [(16000, 512, 80, 0.0, None), (16000, 400, 40, 20.0, 7600.0), (8000, 256, 64, 0.0, None), (22050, 1024, 128, 50.0, None)],
)
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    import librosa
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == (n_fft // 2 + 1, n_mels)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref.T, atol=1e-5, rtol=0)


def test_logmel_matches_librosa_pipeline():
    import librosa
    wave = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    ours = FeatureExtractor(FeatureConfig(normalize=False))(torch.from_numpy(wave)).numpy()
    ref = librosa.feature.melspectrogram(
        y=wave, sr=SR, n_fft=512, win_length=400, hop_length=160, window="hann",
        center=True, pad_mode="constant", power=2.0, n_mels=80,
    )
    np.testing.assert_allclose(ours, np.log(ref + 1e-6).T, atol=1e-3)


def test_logmel_sine_peaks_at_right_bin():
    fe = FeatureExtractor(FeatureConfig(normalize=False))
    freq = 1000.0
    feats = fe(_sine(freq))
    assert feats.shape == (fe.num_frames(SR), 80)
    peak = int(feats[5:-5].mean(0).argmax())
    expected = int(mel_filterbank(SR, fe.n_fft, 80)[round(freq * fe.n_fft / SR)].argmax())
    assert abs(peak - expected) <= 1


def test_linear_spectrogram_ds2_shape_and_peak():
    fe = FeatureExtractor(FeatureConfig(kind="linear", win_ms=20.0, window="hamming", normalize=False))
    assert fe.n_fft == 320 and fe.dim == 161
    feats = fe(_sine(2000.0))
    assert feats.shape == (fe.num_frames(SR), 161)
    assert int(feats[5:-5].mean(0).argmax()) == round(2000.0 * 320 / SR)
    assert torch.all(feats >= 0)  # log1p of a magnitude


@pytest.mark.parametrize("kind", ["logmel", "linear"])
def test_num_frames_matches_forward(kind):
    fe = FeatureExtractor(FeatureConfig(kind=kind, normalize=False))
    for n in [0, 1, 2, 100, 159, 160, 161, 255, 256, 257, 399, 400, 511, 512, 513, 1599, 1600, 16000, 16001, 33333]:
        assert fe(torch.zeros(n)).shape[0] == fe.num_frames(n), n


@pytest.mark.parametrize("kind", ["logmel", "linear"])
def test_batch_equals_single(kind):
    fe = FeatureExtractor(FeatureConfig(kind=kind))
    waves = torch.randn(3, 8000)
    batch = fe(waves)
    assert batch.shape == (3, fe.num_frames(8000), fe.dim)
    for b in range(3):
        torch.testing.assert_close(batch[b], fe(waves[b]), atol=1e-5, rtol=1e-5)


def test_padded_batch_with_lengths_equals_single():
    fe = FeatureExtractor(FeatureConfig())
    lens = [8000, 5123, 3000]
    waves = [torch.randn(n) for n in lens]
    padded = torch.zeros(3, max(lens))
    for b, w in enumerate(waves):
        padded[b, : len(w)] = w
    batch = fe(padded, torch.tensor(lens))
    for b, w in enumerate(waves):
        t = fe.num_frames(len(w))
        torch.testing.assert_close(batch[b, :t], fe(w), atol=1e-4, rtol=1e-4)
        assert torch.all(batch[b, t:] == 0)


def test_normalisation_zero_mean_unit_std():
    fe = FeatureExtractor(FeatureConfig(normalize=True))
    feats = fe(torch.randn(SR) * 0.3 + _sine(440.0))
    torch.testing.assert_close(feats.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(feats.std(0, unbiased=False), torch.ones(80), atol=1e-3, rtol=0)


def test_float32_output_from_float64_input():
    fe = FeatureExtractor(FeatureConfig())
    assert fe(torch.randn(4000, dtype=torch.float64)).dtype == torch.float32


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="kind"):
        FeatureExtractor(FeatureConfig(kind="mfcc"))
    with pytest.raises(ValueError, match="window"):
        FeatureExtractor(FeatureConfig(window="blackman"))
