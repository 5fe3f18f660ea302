"""A telephone channel: the 300-3400 Hz voice band, 8 kHz sampling and G.711 companding (mu-law or A-law).

The signal is band-passed (4th-order Butterworth, zero phase), resampled to 8 kHz (soxr), coded to
8 bits per sample (255 mid-tread levels) with the G.711 companding law and decoded again, and resampled back. The
companding uses the continuous laws (ITU-T G.711's segmented tables approximate them), with the
companded value quantised; full scale is 1.0.
"""

from __future__ import annotations

import functools

import numpy as np
import soxr
from scipy.signal import butter, sosfiltfilt

PHONE_RATE = 8000
BAND_HZ = (300.0, 3400.0)
MU = 255.0
A = 87.6
CODECS = ("mulaw", "alaw")


def quantize8(y: np.ndarray) -> np.ndarray:
    """``y`` in [-1, 1] on an 8-bit grid: 255 mid-tread levels, so silence stays exactly 0."""
    return np.round(np.clip(y, -1.0, 1.0) * 127.0) / 127.0


def mulaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """``x`` coded with 8-bit mu-law (mu = 255) and decoded."""
    x = np.clip(x, -1.0, 1.0)
    y = quantize8(np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU))
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU


def alaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """``x`` coded with 8-bit A-law (A = 87.6) and decoded."""
    x = np.clip(x, -1.0, 1.0)
    ax = np.abs(x)
    norm = 1.0 + np.log(A)
    small = ax < 1.0 / A
    y = np.sign(x) * np.where(small, A * ax / norm, (1.0 + np.log(np.maximum(A * ax, 1.0))) / norm)
    y = quantize8(y)
    ay = np.abs(y)
    return np.sign(y) * np.where(ay < 1.0 / norm, ay * norm / A, np.exp(ay * norm - 1.0) / A)


_CODERS = {"mulaw": mulaw_roundtrip, "alaw": alaw_roundtrip}


@functools.lru_cache(maxsize=4)
def _band_pass(sample_rate: int) -> np.ndarray:
    return butter(4, BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")


def telephone_channel(wave: np.ndarray, sample_rate: int, codec: str = "mulaw") -> np.ndarray:
    """``wave`` as heard through a narrow-band telephone line, at ``sample_rate`` and its length."""
    if codec not in _CODERS:
        raise ValueError(f"data.augment.telephone_codec: unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    if sample_rate <= 2 * BAND_HZ[1]:
        raise ValueError(f"telephone channel needs a sample rate above {2 * BAND_HZ[1]:g} Hz, got {sample_rate}")
    x = np.asarray(wave, dtype=np.float64)
    if x.size <= 27:  # sosfiltfilt's padding needs a few samples more than the filter's order
        return wave
    band = sosfiltfilt(_band_pass(sample_rate), x)
    narrow = soxr.resample(band, sample_rate, PHONE_RATE)
    coded = _CODERS[codec](narrow)
    out = soxr.resample(coded, PHONE_RATE, sample_rate)
    out = np.pad(out, (0, max(0, x.size - out.size)))[: x.size]
    return out.astype(wave.dtype if wave.dtype.kind == "f" else np.float32)


class TelephoneChannel:
    """The augmentation: :func:`telephone_channel` with one codec (no random choice inside)."""

    def __init__(self, sample_rate: int, codec: str = "mulaw") -> None:
        if codec not in _CODERS:
            raise ValueError(f"data.augment.telephone_codec: unknown codec {codec!r}; use one of {', '.join(CODECS)}")
        self.sample_rate, self.codec = sample_rate, codec

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return telephone_channel(wave, self.sample_rate, self.codec)
