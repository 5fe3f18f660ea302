"""Speed perturbation (Ko et al. 2015): resample so the utterance plays ``factor`` times faster.

Both tempo and pitch change, as with ``sox speed``: ``factor`` 1.1 shortens the audio to 1/1.1 of
its length and moves every frequency up by 1.1. Resampling is soxr's (the pipeline's resampler).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import soxr


def change_speed(wave: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """``wave`` played ``factor`` times faster: ``len / factor`` samples, frequencies times ``factor``."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0 or wave.size == 0:
        return wave
    out = soxr.resample(np.ascontiguousarray(wave, dtype=np.float32), sample_rate * factor, sample_rate)
    return out.astype(wave.dtype if wave.dtype.kind == "f" else np.float32, copy=False)


class SpeedPerturbation:
    """Draws one of ``factors`` per utterance (uniformly) and changes the speed by it."""

    def __init__(self, factors: Sequence[float], sample_rate: int) -> None:
        if not factors or any(f <= 0 for f in factors):
            raise ValueError(f"data.augment.speed_factors: need positive factors, got {list(factors)}")
        self.factors = [float(f) for f in factors]
        self.sample_rate = sample_rate

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return change_speed(wave, self.factors[int(rng.integers(len(self.factors)))], self.sample_rate)
