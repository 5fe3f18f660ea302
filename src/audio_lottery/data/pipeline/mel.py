"""Slaney-style mel scale and filterbank (librosa's ``htk=False``, ``norm="slaney"``), shared by the
project's log-mel front-end (:mod:`audio_lottery.data.pipeline.features`) and Whisper's
(:mod:`audio_lottery.data.pipeline.whisper_features`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

# Slaney mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel value of frequencies in Hz."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    high = hz >= _MIN_LOG_HZ
    mel[high] = _MIN_LOG_MEL + np.log(hz[high] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Frequencies in Hz of Slaney mel values."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    high = mel >= _MIN_LOG_MEL
    hz[high] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel[high] - _MIN_LOG_MEL))
    return hz


# VTLP's warp is linear up to this fraction of the Nyquist frequency (4800 Hz at 16 kHz, Jaitly & Hinton 2013)
VTLP_BOUNDARY = 0.6


def vtlp_warp(freqs: np.ndarray, alpha: float, sample_rate: int) -> np.ndarray:
    """Vocal-tract-length warp of frequencies (Hz): ``f -> alpha * f`` up to a boundary, then the
    straight line that maps the Nyquist frequency onto itself (monotone, 0 and Nyquist fixed).

    The boundary is ``VTLP_BOUNDARY * nyquist * min(alpha, 1) / alpha`` (Jaitly & Hinton 2013), so the
    warped axis never leaves ``[0, nyquist]``. ``alpha > 1`` moves spectral content up (a shorter
    vocal tract), ``alpha < 1`` down; ``alpha = 1`` is the identity.
    """
    if alpha <= 0:
        raise ValueError(f"VTLP warp factor must be positive, got {alpha}")
    freqs = np.asarray(freqs, dtype=np.float64)
    nyquist = sample_rate / 2.0
    knee = VTLP_BOUNDARY * nyquist * min(alpha, 1.0)
    edge = knee / alpha
    upper = nyquist - (nyquist - knee) / (nyquist - edge) * (nyquist - freqs)
    return np.where(freqs <= edge, alpha * freqs, upper)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None, warp: float = 1.0
) -> Tensor:
    """Triangular Slaney-scale mel filters with Slaney area normalisation, ``[n_fft//2+1, n_mels]``.

    Equal to ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin, fmax).T``.
    ``warp != 1`` gives VTLP's warped filterbank: FFT bin frequency ``f`` is read as
    :func:`vtlp_warp` ``(f, warp)``, so energy at ``f`` lands in the filter of ``warp * f``.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}")
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    if warp != 1.0:
        fft_freqs = vtlp_warp(fft_freqs, warp, sample_rate)
    mel_pts = mel_to_hz(np.linspace(hz_to_mel(np.array([fmin]))[0], hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    widths = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2:] - mel_pts[:-2]))[:, None]
    return torch.from_numpy(weights.T.astype(np.float32)).contiguous()
