"""SpecAugment: frequency and time masks on features (background noise: :mod:`audio_lottery.data.noise.mix`)."""

from __future__ import annotations

import torch
from torch import Tensor

from audio_lottery.config import AugmentConfig

Span = tuple[int, int]


# --------------------------------------------------------------------------- SpecAugment


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[low, high]`` (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


class SpecAugment:
    """Frequency and time masking (Park et al. 2019) of ``[frames, dim]`` features.

    Each of ``freq_masks`` masks covers ``f ~ U[0, freq_width]`` bins; each of ``time_masks``
    masks covers ``t ~ U[0, min(time_width, time_width_ratio * frames)]`` frames. Masked values
    become 0, the mean of normalised features.
    """

    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        cfg = cfg or AugmentConfig()
        self.freq_masks = cfg.freq_masks
        self.freq_width = cfg.freq_width
        self.time_masks = cfg.time_masks
        self.time_width = cfg.time_width
        self.time_width_ratio = cfg.time_width_ratio

    @property
    def enabled(self) -> bool:
        """True when at least one mask is drawn."""
        return self.freq_masks > 0 or self.time_masks > 0

    def max_time_width(self, frames: int) -> int:
        """Largest time-mask width for an utterance of ``frames`` frames."""
        return max(0, min(self.time_width, int(self.time_width_ratio * frames)))

    def sample_masks(
        self, frames: int, dim: int, generator: torch.Generator | None = None
    ) -> tuple[list[Span], list[Span]]:
        """Draw ``(freq_spans, time_spans)``, each a list of ``(start, width)``."""
        freq = [self._span(dim, min(self.freq_width, dim), generator) for _ in range(self.freq_masks)]
        t_max = min(self.max_time_width(frames), frames)
        time = [self._span(frames, t_max, generator) for _ in range(self.time_masks)]
        return freq, time

    @staticmethod
    def _span(size: int, max_width: int, generator: torch.Generator | None) -> Span:
        width = _randint(0, max(0, max_width), generator)
        start = _randint(0, size - width, generator) if size > width else 0
        return start, width

    def __call__(
        self, feats: Tensor, generator: torch.Generator | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        """Masked copy of ``[frames, dim]`` or ``[B, frames, dim]`` (``lengths``: valid frames)."""
        if feats.dim() == 2:
            return self._mask_one(feats.clone(), feats.shape[0], generator)
        out = feats.clone()
        for b in range(out.shape[0]):
            frames = int(lengths[b]) if lengths is not None else out.shape[1]
            self._mask_one(out[b], frames, generator)
        return out

    def _mask_one(self, feats: Tensor, frames: int, generator: torch.Generator | None) -> Tensor:
        freq, time = self.sample_masks(frames, feats.shape[1], generator)
        for start, width in freq:
            feats[:frames, start : start + width] = 0.0
        for start, width in time:
            feats[start : start + width, :] = 0.0
        return feats
