"""Audio I/O with soundfile (wav, flac, ogg, mp3, sph) and soxr resampling."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """Audio could not be read or is unusable; the message names the file."""


def audio_info(path: str | Path) -> tuple[float, int]:
    """(duration in s, sample rate) of an audio file."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types
        raise AudioError(f"{path}: unreadable audio ({exc})") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError(f"{path}: empty audio")
    return info.frames / info.samplerate, info.samplerate


def load_audio(
    path: str | Path, sample_rate: int = 16000, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate`` (resampled), optionally a segment.

    Raises :class:`AudioError` naming the file for unreadable, empty or non-finite audio.
    """
    path = Path(path)
    if offset < 0 or (duration is not None and duration <= 0):
        raise AudioError(f"{path}: invalid segment (offset={offset}s, duration={duration}s)")
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = fh.samplerate
            start = int(round(offset * sr))
            if start:
                fh.seek(min(start, fh.frames))
            frames = -1 if duration is None else int(round(duration * sr))
            wav = fh.read(frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise AudioError(f"{path}: unreadable audio ({exc})") from None
    if wav.shape[0] == 0:
        raise AudioError(f"{path}: no samples (offset={offset}s)")
    return to_mono_rate(wav, sr, sample_rate, path)


def to_mono_rate(wav: np.ndarray, sr: int, sample_rate: int, name: str | Path) -> np.ndarray:
    """``[frames, channels]`` float audio -> contiguous float32 mono at ``sample_rate`` (soxr)."""
    wav = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if sr != sample_rate:
        wav = soxr.resample(wav, sr, sample_rate).astype(np.float32)
    return np.ascontiguousarray(wav, dtype=np.float32)


def decode_audio(data: bytes, sample_rate: int, name: str) -> np.ndarray:
    """Decode an in-memory audio file (wav, flac, ogg, ...) to float32 mono at ``sample_rate``.

    ``name`` (e.g. ``archive.pk3:sound/fire.ogg``) is used in error messages.
    """
    try:
        wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise AudioError(f"{name}: unreadable audio ({exc})") from None
    if wav.shape[0] == 0:
        raise AudioError(f"{name}: no samples")
    return to_mono_rate(wav, sr, sample_rate, name)
