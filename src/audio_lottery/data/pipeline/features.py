"""Acoustic features in torch: log-mel filterbanks and the DeepSpeech2 linear spectrogram.

Framing is ``center=True`` with zero padding of ``n_fft // 2`` samples on both sides, so an
utterance of ``n`` samples always gives ``1 + n // hop`` frames (see
:meth:`FeatureExtractor.num_frames`). Zero padding also makes the valid frames of a
zero-padded batch identical to those of the single utterance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from typing import Callable, TypeVar

from audio_lottery.config import FeatureConfig, register_plugin
from audio_lottery.data.pipeline.mel import hz_to_mel, mel_filterbank, mel_to_hz  # noqa: F401  (re-exported)

LOG_EPS = 1e-6
NORM_EPS = 1e-5

FRONT_ENDS: dict[str, Callable[[FeatureConfig], nn.Module]] = {}
M = TypeVar("M", bound=type)


def register_front_end(kind: str, help: str) -> Callable[[M], M]:
    """Class decorator: ``cls(cfg)`` is the feature front-end ``kind``, a choice of
    ``data.features.kind`` described by the one-line ``help``. The module needs ``dim`` and
    ``num_frames(num_samples)``; ``forward`` maps ``[samples]`` or ``[B, samples]`` to features."""
    def deco(cls: M) -> M:
        register_plugin(FRONT_ENDS, "data.features.kind", kind, cls, help)
        return cls
    return deco


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _window(name: str, length: int) -> Tensor:
    if name == "hann":
        return torch.hann_window(length, periodic=True, dtype=torch.float32)
    if name == "hamming":
        return torch.hamming_window(length, periodic=True, dtype=torch.float32)
    raise ValueError(f"unknown window {name!r}; use hann or hamming")


class FeatureExtractor(nn.Module):
    """Waveform -> features, ``[samples] -> [frames, dim]`` or ``[B, samples] -> [B, frames, dim]``.

    ``kind="logmel"``: power spectrum (n_fft = next power of two >= window), mel filterbank,
    ``log(x + 1e-6)``. ``kind="linear"``: DeepSpeech2 ``log1p`` magnitude spectrum with
    n_fft = window length (161 bins for 20 ms at 16 kHz). With ``cfg.normalize`` every bin is
    standardised over the frames of its utterance.
    """

    def __init__(self, cfg: FeatureConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FeatureConfig()
        if cfg.kind not in ("logmel", "linear"):
            raise ValueError(f"feature kind {cfg.kind!r} is not FeatureExtractor's (logmel, linear): use build_featurizer")
        self.win_length = int(round(cfg.win_ms * cfg.sample_rate / 1000.0))
        self.hop_length = int(round(cfg.hop_ms * cfg.sample_rate / 1000.0))
        if self.win_length <= 0 or self.hop_length <= 0:
            raise ValueError(f"window ({cfg.win_ms} ms) and hop ({cfg.hop_ms} ms) must be positive")
        self.n_fft = _next_pow2(self.win_length) if cfg.kind == "logmel" else self.win_length
        self.register_buffer("window", _window(cfg.window, self.win_length), persistent=False)
        if cfg.kind == "logmel":
            fb = mel_filterbank(cfg.sample_rate, self.n_fft, cfg.n_mels)
            self.register_buffer("fbank_t", fb.T.contiguous(), persistent=False)
            self.dim = cfg.n_mels
        else:
            self.fbank_t = None
            self.dim = self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Number of frames that :meth:`forward` returns for ``num_samples`` samples."""
        return 1 + int(num_samples) // self.hop_length

    def _spectrum(self, wave: Tensor) -> Tensor:
        """``[B, samples] -> [B, n_fft//2+1, frames]`` power (logmel) or magnitude (linear)."""
        pad = self.n_fft // 2
        wave = F.pad(wave, (pad, pad))
        spec = torch.stft(
            wave, self.n_fft, self.hop_length, self.win_length, self.window,
            center=False, return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        return power if self.cfg.kind == "logmel" else power.sqrt_()

    @property
    def warpable(self) -> bool:
        """Whether :meth:`forward` takes a VTLP ``warp`` (log-mel: its filterbank is warped)."""
        return self.cfg.kind == "logmel"

    def _fbank_t(self, warp: float) -> Tensor:
        if warp == 1.0:
            return self.fbank_t
        fb = mel_filterbank(self.cfg.sample_rate, self.n_fft, self.cfg.n_mels, warp=warp)
        return fb.T.contiguous().to(self.fbank_t.device)

    def _compress(self, spec: Tensor, warp: float = 1.0) -> Tensor:
        """``[B, bins, frames] -> [B, frames, dim]`` log features (``warp``: VTLP factor, log-mel only)."""
        if self.cfg.kind == "logmel":
            out = torch.matmul(self._fbank_t(warp), spec).add_(LOG_EPS).log_()
        else:
            out = spec.log1p_()
        return out.transpose(1, 2)

    def forward(self, wave: Tensor, lengths: Tensor | None = None, warp: float = 1.0) -> Tensor:
        """Features of one waveform ``[samples]`` or a zero-padded batch ``[B, samples]``.

        ``lengths`` (samples per utterance, batch only) restricts normalisation to each
        utterance's own frames and zeroes the padded frames. ``warp`` is a vocal-tract-length
        perturbation factor (training augmentation): the mel filterbank is warped by it
        (:func:`~audio_lottery.data.pipeline.mel.mel_filterbank`); only the log-mel front-end takes one.
        """
        if warp != 1.0 and not self.warpable:
            raise ValueError(f"data.augment.vtlp_prob: the {self.cfg.kind!r} front-end has no mel filterbank to warp")
        single = wave.dim() == 1
        if wave.dim() not in (1, 2):
            raise ValueError(f"expected [samples] or [B, samples], got shape {tuple(wave.shape)}")
        x = wave.to(torch.float32)
        x = x.unsqueeze(0) if single else x
        feats = self._compress(self._spectrum(x), warp)
        frame_lens = None
        if lengths is not None and not single:
            frame_lens = torch.as_tensor(lengths, device=feats.device).div(self.hop_length, rounding_mode="floor") + 1
        if self.cfg.normalize:
            feats = normalize_features(feats, frame_lens)
        elif frame_lens is not None:
            feats = feats * _frame_mask(frame_lens, feats.shape[1]).unsqueeze(-1)
        feats = feats.contiguous()
        return feats[0] if single else feats


def _frame_mask(frame_lens: Tensor, frames: int) -> Tensor:
    return torch.arange(frames, device=frame_lens.device)[None, :] < frame_lens[:, None]


def normalize_features(feats: Tensor, frame_lens: Tensor | None = None) -> Tensor:
    """Per-utterance, per-bin mean/variance normalisation of ``[B, frames, dim]``.

    With ``frame_lens`` only the first ``frame_lens[b]`` frames count and the rest become 0.
    """
    if frame_lens is None:
        mean = feats.mean(dim=1, keepdim=True)
        std = feats.std(dim=1, keepdim=True, unbiased=False)
        return (feats - mean) / (std + NORM_EPS)
    mask = _frame_mask(frame_lens, feats.shape[1]).unsqueeze(-1).to(feats.dtype)
    count = mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (feats * mask).sum(dim=1, keepdim=True) / count
    var = ((feats - mean).pow(2) * mask).sum(dim=1, keepdim=True) / count
    return (feats - mean) / (var.sqrt() + NORM_EPS) * mask


register_front_end("logmel", "mel filterbank, log(x + 1e-6)")(FeatureExtractor)
register_front_end("linear", "DeepSpeech2 log1p magnitude spectrogram")(FeatureExtractor)


def build_featurizer(cfg: FeatureConfig) -> nn.Module:
    """The registered front-end of ``cfg.kind`` (:func:`register_front_end`)."""
    if cfg.kind not in FRONT_ENDS:
        raise ValueError(f"unknown feature kind {cfg.kind!r}; registered: {', '.join(FRONT_ENDS)}")
    return FRONT_ENDS[cfg.kind](cfg)
