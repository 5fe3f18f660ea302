"""Whisper's log-mel front-end, framed as faster-whisper frames it.

400-sample periodic Hann window (25 ms), hop 160 (10 ms), reflect padding of 200 samples at
both ends (``center=True``), power spectrum without its last frame, Slaney mel filterbank
(equal to Whisper's ``mel_filters.npz``), ``log10(max(x, 1e-10))``, floored at the utterance's
maximum minus 8, then ``(x + 4) / 4``. As in faster-whisper the waveform is first extended by
one hop of zeros (its ``padding=160``), the maximum is taken over all frames of that, and an
utterance of ``n`` samples keeps ``n // 160`` frames. Whisper's 30 s windows are padded with
zero *features* by the model (faster-whisper's ``pad_or_trim``), not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.config import FeatureConfig
from audio_lottery.data.pipeline.mel import mel_filterbank

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160


class WhisperLogMel(nn.Module):
    """Waveform -> Whisper log-mel features, ``[samples] -> [n // 160, n_mels]`` (or a padded batch)."""

    def __init__(self, cfg: FeatureConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FeatureConfig(kind="whisper")
        fixed = {"sample_rate": (cfg.sample_rate, SAMPLE_RATE), "win_ms": (cfg.win_ms, 25.0),
                 "hop_ms": (cfg.hop_ms, 10.0), "window": (cfg.window, "hann")}
        for key, (value, wanted) in fixed.items():
            if value != wanted:
                raise ValueError(f"data.features.{key}: Whisper's front-end needs {wanted!r}, got {value!r}")
        self.dim = cfg.n_mels
        self.hop_length = HOP
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.register_buffer("fbank_t", mel_filterbank(SAMPLE_RATE, N_FFT, cfg.n_mels).T.contiguous(),
                             persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Number of frames :meth:`forward` returns for ``num_samples`` samples."""
        return int(num_samples) // HOP

    def _one(self, wave: Tensor) -> Tensor:
        frames = self.num_frames(wave.shape[0])
        if frames == 0:
            return wave.new_zeros(0, self.dim)
        x = F.pad(wave.to(torch.float32), (0, HOP))
        spec = torch.stft(x, N_FFT, HOP, window=self.window, center=True, pad_mode="reflect", return_complex=True)
        power = spec[:, :-1].abs().square()
        log_spec = torch.matmul(self.fbank_t, power).clamp_min(1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0)[:, :frames].T.contiguous()

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Features of one waveform ``[samples]`` or a zero-padded batch ``[B, samples]``.

        For a batch, ``lengths`` (samples per utterance) gives each row's own extent; every row is
        framed alone (its maximum is its own) and the result is zero-padded to the longest.
        """
        if wave.dim() == 1:
            return self._one(wave)
        if wave.dim() != 2:
            raise ValueError(f"expected [samples] or [B, samples], got shape {tuple(wave.shape)}")
        lens = [wave.shape[1]] * wave.shape[0] if lengths is None else [int(n) for n in lengths]
        feats = [self._one(row[:n]) for row, n in zip(wave, lens)]
        out = wave.new_zeros(len(feats), max(f.shape[0] for f in feats), self.dim)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
        return out
