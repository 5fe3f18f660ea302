"""Room reverberation: a fixed bank of simulated room impulse responses, convolved on the fly.

The bank is simulated once with pyroomacoustics (image-source method in shoebox rooms whose wall
absorption is set by Sabine's formula for a target RT60; deterministic, no ray tracing) from a
fixed list of rooms and seeded source/microphone positions, and cached as a safetensors file
keyed by the room list, seed, sample rate and the pyroomacoustics version. Training draws one
response per utterance and convolves; the result keeps the utterance's length and power and the
response's direct-path delay.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import fftconvolve

from audio_lottery.files import load_tensors_and_metadata, save_tensors

log = logging.getLogger(__name__)

SPEED_OF_SOUND = 343.0  # m/s, pyroomacoustics' default
MAX_RIR_SECONDS = 1.0  # responses are cut here (the tail of the longest RT60 in the bank is below -60 dB by then)


@dataclass(frozen=True)
class Room:
    """A shoebox room (metres) and the reverberation times (s) simulated in it."""

    name: str
    dims: tuple[float, float, float]
    rt60s: tuple[float, ...]


# from a small booth to a lecture hall; RT60s typical of each
ROOMS: tuple[Room, ...] = (
    Room("booth", (3.0, 3.5, 2.5), (0.2, 0.35)),
    Room("office", (5.0, 4.0, 3.0), (0.3, 0.5)),
    Room("classroom", (8.0, 6.0, 3.2), (0.4, 0.7)),
    Room("hall", (12.0, 9.0, 4.5), (0.6, 0.9)),
)
PLACEMENTS = 3  # source/microphone placements per room and RT60
BANK_SEED = 0


@dataclass
class RirBank:
    """Room impulse responses (each its own length) and what each was simulated from."""

    rirs: list[np.ndarray]
    info: list[dict]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.rirs)


def _placement(dims: tuple[float, float, float], rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """A source and a microphone >= 0.5 m from every wall, at 1.2-1.8 m height, >= 1 m apart."""
    while True:
        src, mic = ([float(rng.uniform(0.5, d - 0.5)) for d in dims[:2]] + [float(rng.uniform(1.2, min(1.8, dims[2] - 0.3)))]
                    for _ in range(2))
        if np.linalg.norm(np.subtract(src, mic)) >= 1.0:
            return src, mic


def simulate_rirs(sample_rate: int, rooms: tuple[Room, ...] = ROOMS, placements: int = PLACEMENTS,
                  seed: int = BANK_SEED) -> RirBank:
    """Simulate the bank: for every room, RT60 and one of ``placements`` seeded positions, one response."""
    import pyroomacoustics as pra  # imported only here: it takes seconds and the cached bank does not need it

    rng = np.random.default_rng(seed)
    rirs, info = [], []
    for room in rooms:
        for rt60 in room.rt60s:
            absorption, max_order = pra.inverse_sabine(rt60, list(room.dims))
            for _ in range(placements):
                src, mic = _placement(room.dims, rng)
                sim = pra.ShoeBox(list(room.dims), fs=sample_rate, materials=pra.Material(absorption),
                                  max_order=max_order, air_absorption=False, ray_tracing=False)
                sim.add_source(src)
                sim.add_microphone(mic)
                sim.compute_rir()
                rir = np.asarray(sim.rir[0][0], dtype=np.float32)[: int(MAX_RIR_SECONDS * sample_rate)]
                distance = float(np.linalg.norm(np.subtract(src, mic)))
                direct = distance / SPEED_OF_SOUND * sample_rate + pra.constants.get("frac_delay_length") // 2
                rirs.append(rir / np.abs(rir).max())
                info.append({"room": room.name, "dims": list(room.dims), "rt60": rt60, "source": src, "mic": mic,
                             "distance": round(distance, 3), "direct_sample": round(direct, 2)})
    return RirBank(rirs, info, sample_rate)


def bank_key(sample_rate: int, rooms: tuple[Room, ...] = ROOMS, placements: int = PLACEMENTS,
             seed: int = BANK_SEED) -> str:
    """Identity of a bank: what it is simulated from, and by which pyroomacoustics version."""
    from importlib.metadata import version

    spec = {"rooms": [asdict(r) for r in rooms], "placements": placements, "seed": seed,
            "sample_rate": sample_rate, "pyroomacoustics": version("pyroomacoustics")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """Where simulated banks are kept: ``$AUDIO_LOTTERY_CACHE``, else ``$XDG_CACHE_HOME/audio-lottery``
    (``~/.cache/audio-lottery``)."""
    if os.environ.get("AUDIO_LOTTERY_CACHE"):
        return Path(os.environ["AUDIO_LOTTERY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "audio-lottery"


def save_bank(path: Path, bank: RirBank) -> None:
    """Write ``bank`` atomically (one tensor per response, the room facts as metadata)."""
    tensors = {f"rir_{i:03d}": torch.from_numpy(r) for i, r in enumerate(bank.rirs)}
    save_tensors(path, tensors, {"sample_rate": str(bank.sample_rate), "info": json.dumps(bank.info)})


def load_bank(path: Path) -> RirBank:
    """Read a bank written by :func:`save_bank`; a file that is not one raises ``ValueError`` naming it."""
    tensors, meta = load_tensors_and_metadata(path)
    try:
        info, sample_rate = json.loads(meta["info"]), int(meta["sample_rate"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a room impulse response bank ({exc})") from None
    rirs = [tensors[f"rir_{i:03d}"].numpy() for i in range(len(info)) if f"rir_{i:03d}" in tensors]
    if len(rirs) != len(info) or not rirs:
        raise ValueError(f"{path}: room impulse response bank lists {len(info)} responses, holds {len(rirs)}")
    return RirBank(rirs, info, sample_rate)


def cached_bank(sample_rate: int, folder: Path | None = None, rooms: tuple[Room, ...] = ROOMS,
                placements: int = PLACEMENTS) -> RirBank:
    """The bank of ``rooms`` at ``sample_rate`` (default: the built-in one): read from the cache
    (``folder``, default :func:`cache_dir`), or simulated once and cached."""
    path = (folder or cache_dir()) / f"rirs_{sample_rate}_{bank_key(sample_rate, rooms, placements)}.safetensors"
    if path.is_file():
        return load_bank(path)
    log.info("simulating %d room impulse responses into %s", sum(len(r.rt60s) for r in rooms) * placements, path)
    bank = simulate_rirs(sample_rate, rooms, placements)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_bank(path, bank)
    return bank


def reverberate(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``wave`` convolved with ``rir``, cut to ``wave``'s length and scaled back to its power."""
    if wave.size == 0:
        return wave
    x = np.asarray(wave, dtype=np.float64)
    wet = fftconvolve(x, np.asarray(rir, dtype=np.float64))[: x.size]
    p_in, p_out = float(np.mean(x * x)), float(np.mean(wet * wet))
    if p_out > 0.0:
        wet *= np.sqrt(p_in / p_out)
    return wet.astype(wave.dtype if wave.dtype.kind == "f" else np.float32)


class Reverberation:
    """The augmentation: one response of ``bank`` drawn uniformly per utterance."""

    def __init__(self, bank: RirBank, sample_rate: int) -> None:
        if bank.sample_rate != sample_rate:
            raise ValueError(f"room impulse responses at {bank.sample_rate} Hz for audio at {sample_rate} Hz")
        if not len(bank):
            raise ValueError("room impulse response bank is empty")
        self.bank = bank

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return reverberate(wave, self.bank.rirs[int(rng.integers(len(self.bank)))])
