"""The training augmentations of a run, composed in one place and in one order.

Waveform: speed perturbation -> room reverberation -> background noise -> telephone channel;
then features with a vocal-tract-length warp of the mel filterbank (VTLP); then SpecAugment.
Each is optional (``data.augment.*``, all off by default).

Randomness depends only on (seed, epoch, utterance index), so an utterance's augmented audio is
the same whatever the number of DataLoader workers and on a resumed epoch. Noise and SpecAugment
draw from the utterance's original stream in their original order (runs made before the other
augmentations existed see the same data); every other augmentation draws from a stream of its
own, so switching one on or off changes no other's draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from audio_lottery.config import AugmentConfig
from audio_lottery.data.pipeline.augment import SpecAugment
from audio_lottery.data.pipeline.speed import SpeedPerturbation

WaveFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]
# the random stream of each augmentation; the original stream (noise, then SpecAugment) has none
STREAMS = {"speed": 1, "reverb": 2, "telephone": 3, "vtlp": 4}


def utterance_rng(*keys: int) -> np.random.Generator:
    """A generator seeded by integer keys (seed, epoch, index[, stream])."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


class Sometimes:
    """Applies ``fn`` to a waveform with probability ``prob`` (one draw from the stream first)."""

    def __init__(self, fn: WaveFn, prob: float) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"augmentation probability must be in [0, 1], got {prob}")
        self.fn, self.prob = fn, prob

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.fn(wave, rng) if rng.random() < self.prob else wave


@dataclass(frozen=True)
class VocalTractWarp:
    """VTLP: with probability ``prob`` a warp factor ~ U[low, high] for the utterance, else 1."""

    prob: float
    low: float
    high: float

    def __call__(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high)) if rng.random() < self.prob else 1.0


@dataclass
class Augmentation:
    """Every training augmentation of a run (None = off), applied by :meth:`features`."""

    speed: WaveFn | None = None
    reverb: WaveFn | None = None
    noise: WaveFn | None = None  # a data.noise.mix.NoiseMixer (built by train/components.py)
    telephone: WaveFn | None = None
    vtlp: Callable[[np.random.Generator], float] | None = None
    spec: SpecAugment | None = None

    def waveform(self, wave: np.ndarray, seed: int, epoch: int, index: int) -> tuple[np.ndarray, np.random.Generator]:
        """The augmented waveform, and the utterance's original stream after noise (SpecAugment's next)."""
        main = utterance_rng(seed, epoch, index)
        for name in ("speed", "reverb", "noise", "telephone"):
            fn = getattr(self, name)
            if fn is not None:
                wave = fn(wave, main if name == "noise" else utterance_rng(seed, epoch, index, STREAMS[name]))
        return wave, main

    @property
    def keeps_features(self) -> bool:
        """Whether the front-end sees the recorded audio unchanged (at most SpecAugment is on, and it masks
        a copy): an utterance's un-masked features are then the same in every epoch and may be cached."""
        return all(getattr(self, name) is None for name in ("speed", "reverb", "noise", "telephone", "vtlp"))

    def features(self, wave: np.ndarray, featurizer: torch.nn.Module, seed: int, epoch: int, index: int) -> Tensor:
        """Features ``[frames, dim]`` of utterance ``index`` of ``epoch`` with every augmentation applied."""
        wave, main = self.waveform(wave, seed, epoch, index)
        warp = self.vtlp(utterance_rng(seed, epoch, index, STREAMS["vtlp"])) if self.vtlp is not None else 1.0
        return self._mask(front_end(wave, featurizer, warp), main)

    def masked(self, feats: Tensor, seed: int, epoch: int, index: int) -> Tensor:
        """What :meth:`features` returns, from the un-augmented ``feats`` of the utterance (``front_end``'s,
        e.g. cached); only valid when :attr:`keeps_features`. ``feats`` itself is left unchanged."""
        if not self.keeps_features:
            raise ValueError("Augmentation.masked: waveform augmentations or VTLP are on; use features()")
        return self._mask(feats, utterance_rng(seed, epoch, index))

    def _mask(self, feats: Tensor, main: np.random.Generator) -> Tensor:
        if self.spec is None:
            return feats
        with torch.no_grad():
            return self.spec(feats, torch.Generator().manual_seed(int(main.integers(2**31))))


def front_end(wave: np.ndarray, featurizer: torch.nn.Module, warp: float = 1.0) -> Tensor:
    """``featurizer``'s features ``[frames, dim]`` of a waveform (``warp``: VTLP factor, 1 = none)."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        return featurizer(x, warp=warp) if warp != 1.0 else featurizer(x)


def wave_augmentations(cfg: AugmentConfig, sample_rate: int) -> dict[str, WaveFn]:
    """The waveform augmentations of ``cfg`` that are on (speed, reverb, telephone; noise is data.noise's)."""
    # imported here: scipy.signal takes a second to import, and most runs use neither
    from audio_lottery.data.pipeline.reverb import Reverberation, cached_bank
    from audio_lottery.data.pipeline.telephone import TelephoneChannel

    out: dict[str, WaveFn] = {}
    if cfg.speed_prob > 0:
        out["speed"] = Sometimes(SpeedPerturbation(cfg.speed_factors, sample_rate), cfg.speed_prob)
    if cfg.reverb_prob > 0:
        out["reverb"] = Sometimes(Reverberation(cached_bank(sample_rate), sample_rate), cfg.reverb_prob)
    if cfg.telephone_prob > 0:
        out["telephone"] = Sometimes(TelephoneChannel(sample_rate, cfg.telephone_codec), cfg.telephone_prob)
    return out


def build_augmentation(cfg: AugmentConfig, sample_rate: int, featurizer: torch.nn.Module,
                       noise: WaveFn | None = None) -> Augmentation | None:
    """The run's :class:`Augmentation` (``noise``: the background-noise mixer, or None), or None when all are off.

    VTLP needs a front-end that takes a ``warp`` (the log-mel one): another raises ``ValueError``
    naming ``data.augment.vtlp_prob``.
    """
    vtlp = None
    if cfg.vtlp_prob > 0:
        if not getattr(featurizer, "warpable", False):
            kind = getattr(getattr(featurizer, "cfg", None), "kind", type(featurizer).__name__)
            raise ValueError(f"data.augment.vtlp_prob: the {kind!r} front-end has no mel filterbank to warp "
                             "(use data.features.kind=logmel)")
        vtlp = VocalTractWarp(cfg.vtlp_prob, cfg.vtlp_min, cfg.vtlp_max)
    spec = SpecAugment(cfg) if (cfg.freq_masks > 0 or cfg.time_masks > 0) else None
    aug = Augmentation(noise=noise, vtlp=vtlp, spec=spec, **wave_augmentations(cfg, sample_rate))
    return aug if any(getattr(aug, f) is not None for f in aug.__dataclass_fields__) else None


def shortest_duration_factor(cfg: AugmentConfig) -> float:
    """The shortest an utterance can get, as a fraction of its recorded duration (speed perturbation)."""
    return min(1.0, 1.0 / max(cfg.speed_factors)) if cfg.speed_prob > 0 else 1.0
