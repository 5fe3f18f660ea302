"""Background noise mixed into waveforms at a true SNR: the training augmentation's noise (NoiseMixer,
drawn from a noise bank split), the noise-level presets and their overrides."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from audio_lottery.config import AugmentConfig
from audio_lottery.data.audio import AudioError, audio_info, load_audio
from audio_lottery.data.manifest import read_manifest

log = logging.getLogger(__name__)
Wave = TypeVar("Wave", np.ndarray, Tensor)


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def fit_length(noise: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """``length`` samples of ``noise`` starting at ``offset``, tiled cyclically."""
    if noise.size == 0:
        return np.zeros(length, dtype=np.float32)
    idx = (np.arange(length) + offset) % noise.size
    return noise[idx]


def mix_at_snr(speech: Wave, noise: Wave | np.ndarray, snr_db: float) -> Wave:
    """``speech + g * noise`` with ``g`` such that ``10*log10(P_speech / P_noise') == snr_db``.

    Noise is tiled or cropped to the speech length. Silent speech or silent noise gets no
    noise (``g = 0``) rather than NaN. Returns the type (and dtype) of ``speech``.
    """
    is_tensor = isinstance(speech, Tensor)
    s = speech.detach().cpu().numpy() if is_tensor else np.asarray(speech)
    n = noise.detach().cpu().numpy() if isinstance(noise, Tensor) else np.asarray(noise)
    n = fit_length(n.reshape(-1), s.size).astype(np.float64)
    p_s, p_n = _power(s), _power(n)
    gain = 0.0 if p_s == 0.0 or p_n == 0.0 else np.sqrt(p_s / (p_n * 10.0 ** (snr_db / 10.0)))
    mixed = (s.astype(np.float64) + gain * n.reshape(s.shape)).astype(s.dtype if s.dtype.kind == "f" else np.float32)
    if is_tensor:
        return torch.from_numpy(mixed).to(speech.device)
    return mixed


def _stable_seed(*parts: object) -> int:
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")


def select_noise_split(records: list[dict], split: str | None, manifest: str | Path) -> list[dict]:
    """The records of noise split ``split`` (train/dev/test) of a noise bank manifest.

    ``split=None`` or a manifest without ``split`` fields (a plain list of noises) keeps every
    record; a split with no records raises ``ValueError`` naming the manifest.
    """
    if split is None or not any("split" in r for r in records):
        if split == "test":
            log.warning("%s: noise manifest has no split fields; test noise may also be training noise", manifest)
        return records
    chosen = [r for r in records if r.get("split") == split]
    if not chosen:
        raise ValueError(f"{manifest}: no noise of split {split!r} (build it with `audio-lottery data noise`)")
    return chosen


class NoiseMixer:
    """Mixes background noise from a noise manifest into waveforms at a random SNR.

    With ``split`` only that split of a noise bank is used (training draws from ``train``,
    evaluation from ``test``; see :func:`select_noise_split`). Every entry is checked at construction (an unreadable file raises :class:`AudioError`
    naming it); audio is loaded on first use and cached in memory.
    """

    def __init__(
        self,
        noise_manifest: str | Path,
        prob: float,
        snr_min: float,
        snr_max: float,
        sample_rate: int = 16000,
        seed: int = 0,
        split: str | None = None,
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"noise prob must be in [0, 1], got {prob}")
        if snr_min > snr_max:
            raise ValueError(f"snr_min ({snr_min}) must not exceed snr_max ({snr_max})")
        self.records = select_noise_split(read_manifest(noise_manifest), split, noise_manifest)
        if not self.records:
            raise ValueError(f"{noise_manifest}: noise manifest has no entries")
        for rec in self.records:
            audio_info(rec["audio"])
        self.prob, self.snr_min, self.snr_max = prob, snr_min, snr_max
        self.sample_rate, self.seed = sample_rate, seed
        self._cache: dict[int, np.ndarray] = {}

    @classmethod
    def from_config(cls, cfg: AugmentConfig, sample_rate: int = 16000, seed: int = 0) -> "NoiseMixer | None":
        """A mixer for ``cfg`` or None when noise is off."""
        if not cfg.noise_manifest or cfg.noise_prob <= 0.0:
            return None
        return cls(cfg.noise_manifest, cfg.noise_prob, cfg.snr_min, cfg.snr_max, sample_rate, seed, split="train")

    def __len__(self) -> int:
        return len(self.records)

    def noise(self, index: int) -> np.ndarray:
        """The cached float32 waveform of noise record ``index``."""
        if index not in self._cache:
            rec = self.records[index]
            wav = load_audio(rec["audio"], self.sample_rate, rec["offset"], rec.get("duration"))
            if _power(wav) == 0.0:
                raise AudioError(f"{rec['audio']}: noise recording is silent")
            self._cache[index] = wav
        return self._cache[index]

    def _mix(self, wave: Wave, rng: np.random.Generator, snr_db: float) -> Wave:
        index = int(rng.integers(len(self.records)))
        noise = self.noise(index)
        offset = int(rng.integers(noise.size))
        return mix_at_snr(wave, fit_length(noise, int(wave.shape[-1]), offset), snr_db)

    def __call__(self, wave: Wave, rng: np.random.Generator) -> Wave:
        """With probability ``prob`` a noisy copy of ``wave`` (SNR ~ U[snr_min, snr_max]), else ``wave``."""
        if rng.random() >= self.prob:
            return wave
        snr_db = float(rng.uniform(self.snr_min, self.snr_max))
        return self._mix(wave, rng, snr_db)

    def mix_fixed(self, wave: Wave, utt_id: str, snr_db: float) -> Wave:
        """Noise at ``snr_db`` whose recording and offset depend only on ``(utt_id, seed)``."""
        rng = np.random.default_rng(_stable_seed("noise", self.seed, utt_id))
        return self._mix(wave, rng, snr_db)


# --------------------------------------------------------------------------- noisy-training presets

# The paper's noisy-training protocol (every training utterance gets noise) at two strengths,
# as ``data.augment`` overrides. "low": 15-25 dB, speech clearly dominant (a quiet office or
# street); "high": 0-10 dB, noise as loud as the speech at the bottom of the range (the hard
# end of CHiME/Aurora-style test sets). Training draws noise only from the bank's train split.
NOISE_LEVELS: dict[str, dict[str, float]] = {
    "clean": {"noise_prob": 0.0},
    "low": {"noise_prob": 1.0, "snr_min": 15.0, "snr_max": 25.0},
    "high": {"noise_prob": 1.0, "snr_min": 0.0, "snr_max": 10.0},
}


def noise_overrides(level: str, noise_manifest: str | Path) -> list[str]:
    """``--set`` overrides for training at noise ``level`` (clean: none) with a noise bank manifest."""
    if level not in NOISE_LEVELS:
        raise ValueError(f"unknown noise level {level!r}; use one of {', '.join(NOISE_LEVELS)}")
    if level == "clean":
        return []
    values = {"noise_manifest": str(Path(noise_manifest).resolve()), **NOISE_LEVELS[level]}
    return [f"data.augment.{key}={value}" for key, value in values.items()]
