"""Babble noise: several talkers of a speech manifest speaking at once.

Each clip overlaps ``k`` (3-6) talkers, every talker a different speaker whose utterances are
concatenated (short pauses between them) and scaled to the same power. Speakers are
partitioned between the noise splits first, so test babble never contains a voice heard in
training babble.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from audio_lottery.data.audio import load_audio

PEAK = 0.7


def partition_speakers(speakers: Sequence[str], fractions: dict[str, float], seed: int,
                       minimum: int = 1) -> dict[str, list[str]]:
    """Split distinct speakers into disjoint named groups of about ``fractions`` of them.

    Every key but the last (e.g. ``test``, ``dev``) gets at least ``minimum`` speakers while the last
    (``train``, which takes the rest) keeps ``minimum``; a group that cannot get them stays empty.
    Deterministic for ``seed``.
    """
    unique = sorted(set(speakers))
    order = [unique[i] for i in np.random.default_rng([seed, 11]).permutation(len(unique))]
    names = list(fractions)
    out: dict[str, list[str]] = {}
    start = 0
    for name in names[:-1]:
        want = max(minimum, int(round(fractions[name] * len(unique)))) if fractions[name] > 0 else 0
        if len(unique) - start - want < minimum:
            want = 0
        out[name] = sorted(order[start : start + want])
        start += want
    out[names[-1]] = sorted(order[start:])
    return out


class BabbleMaker:
    """Builds babble clips from the utterances of a speech manifest (audio loaded once, cached)."""

    def __init__(self, records: Sequence[dict], sample_rate: int, talkers: tuple[int, int] = (3, 6),
                 pause: tuple[float, float] = (0.1, 0.4)) -> None:
        if talkers[0] < 2 or talkers[0] > talkers[1]:
            raise ValueError(f"babble talkers must be a range with at least 2 talkers, got {talkers}")
        self.by_speaker: dict[str, list[dict]] = defaultdict(list)
        for rec in records:
            self.by_speaker[rec["speaker"]].append(rec)
        self.sample_rate, self.talkers, self.pause = sample_rate, talkers, pause
        self._cache: dict[str, np.ndarray] = {}

    def _audio(self, rec: dict) -> np.ndarray:
        if rec["id"] not in self._cache:
            self._cache[rec["id"]] = load_audio(rec["audio"], self.sample_rate, rec.get("offset", 0.0),
                                                rec["duration"])
        return self._cache[rec["id"]]

    def _talker(self, speaker: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        """``n`` samples of one speaker talking (utterances in random order, looped if needed)."""
        recs = self.by_speaker[speaker]
        lead = int(rng.uniform(0.0, 1.0) * self.sample_rate)  # talkers do not start together
        parts, used, total = [np.zeros(lead, dtype=np.float32)], [], lead
        order = rng.permutation(len(recs))
        k = 0
        while total < n:
            rec = recs[order[k % len(recs)]]
            wav = self._audio(rec)
            gap = np.zeros(int(rng.uniform(*self.pause) * self.sample_rate), dtype=np.float32)
            parts += [wav, gap]
            total += wav.size + gap.size
            if rec["id"] not in used:
                used.append(rec["id"])
            k += 1
        out = np.concatenate(parts)[:n].astype(np.float64)
        power = np.mean(out**2)
        return (out / np.sqrt(power) if power > 0 else out), used

    def clip(self, speakers: Sequence[str], seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """One babble clip of ``seconds`` from ``k`` distinct ``speakers``; returns (wave, info).

        ``info`` lists the ``speakers`` and ``utterances`` used.
        """
        pool = sorted(s for s in set(speakers) if self.by_speaker.get(s))
        if len(pool) < self.talkers[0]:
            raise ValueError(f"babble needs at least {self.talkers[0]} speakers, got {len(pool)}")
        k = int(rng.integers(self.talkers[0], min(self.talkers[1], len(pool)) + 1))
        chosen = sorted(rng.choice(pool, size=k, replace=False).tolist())
        n = int(round(seconds * self.sample_rate))
        mix = np.zeros(n)
        utterances: list[str] = []
        for speaker in chosen:
            wav, used = self._talker(speaker, n, rng)
            mix += wav
            utterances += used
        mix = PEAK * mix / max(np.abs(mix).max(), 1e-12)
        return mix.astype(np.float32), {"speakers": chosen, "talkers": k, "utterances": utterances}
