"""Audio I/O with soundfile (wav, flac, ogg, mp3, sph) and soxr resampling."""

from __future__ import annotations

import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import soundfile as sf
import soxr


T = TypeVar("T")


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


def check_audio_path(path: str | Path) -> os.stat_result:
    """``stat`` of an audio file; :class:`AudioError` ``no such file: PATH`` when it is missing, or
    ``PATH: not a regular file`` (a folder, a device)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise AudioError(f"no such file: {p}") from None
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{p}: not a regular file")
    return st


def load_audio(
    path: str | Path, sample_rate: int = 16000, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate`` (resampled), optionally a segment.

    Raises :class:`AudioError` naming the file for missing, unreadable, empty or non-finite audio.
    """
    path = Path(path)
    check_audio_path(path)
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


#: Files larger than this are not read ahead whole (a long recording that a manifest cuts into
#: segments: one segment would pull the whole file from the disk).
READ_AHEAD_MAX_BYTES = 8 << 20


def read_ahead(paths: Iterable[str | Path]) -> int:
    """Ask the kernel to start reading these audio files into the page cache, and return at once.

    ``posix_fadvise(WILLNEED)`` queues the reads of many files together, so the reads that follow find
    them in memory instead of waiting on the disk one file after another (docs/bench_audio_read.md).
    Files that cannot be opened, and files over :data:`READ_AHEAD_MAX_BYTES`, are skipped (their own
    read reports or reads them); nothing happens where the system has no ``posix_fadvise``.
    Returns the number of files advised.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return 0
    advised = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if os.fstat(fd).st_size <= READ_AHEAD_MAX_BYTES:
                advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                advised += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return advised


def reading_ahead(groups: Iterable[T], files_of: Callable[[T], Iterable[str | Path]]) -> Iterator[T]:
    """``groups`` (batches, chunks of a manifest) unchanged and in order, each handed out once the files
    ``files_of`` names for the group after it are being read ahead (:func:`read_ahead`)."""
    current, started = None, False
    for group in groups:
        read_ahead(files_of(group))
        if started:
            yield current
        current, started = group, True
    if started:
        yield current


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


# --------------------------------------------------------------------------- checking

SILENCE_PEAK = 1e-4  # peak |sample| below this (-80 dBFS) counts as silence
_BLOCK_FRAMES = 1 << 20


@dataclass(frozen=True)
class AudioFacts:
    """What one pass over (a segment of) an audio file found."""

    sample_rate: int
    channels: int
    file_seconds: float   # length of the whole file
    frames: int           # frames in the segment that was read
    expected: int         # frames the header promised for that segment
    finite: bool          # no NaN or infinite sample
    peak: float           # largest |sample| (over the finite ones)


def inspect_audio(path: str | Path, offset: float = 0.0, duration: float | None = None) -> AudioFacts:
    """Read ``path`` (the segment ``offset``/``duration`` if given) block by block and describe it.

    Raises :class:`AudioError` naming the file when it is missing or cannot be decoded.
    Results are cached per (file, size, modification time, segment), so checking the same
    corpus again (every lottery level) costs one ``stat`` per file.
    """
    p = Path(path)
    st = check_audio_path(p)
    return _inspect(str(p), st.st_size, st.st_mtime_ns, float(offset), None if duration is None else float(duration))


#: Threads that read files ahead in :func:`inspect_many`: reading is mostly waiting on the disk,
#: so more threads than cores help where the page cache does not hold the corpus.
READ_AHEAD_THREADS = 8


#: Records that :func:`inspect_many` hands to its threads at a time, the files of the next chunk
#: being read ahead meanwhile.
INSPECT_CHUNK = 64


def inspect_many(records: Iterable[dict], threads: int = READ_AHEAD_THREADS, ahead: bool = True) -> None:
    """Inspect the audio of many manifest records in ``threads`` threads, so that the
    :func:`inspect_audio` calls that follow (one by one, in manifest order) find their results
    cached. With ``ahead``, the files of the next :data:`INSPECT_CHUNK` records that were not inspected
    before are read ahead (:func:`read_ahead`). Errors are left for those calls to raise, naming the file."""
    def one(rec: dict) -> None:
        try:
            inspect_audio(rec["audio"], rec.get("offset", 0.0), rec["duration"])
        except (KeyError, TypeError, ValueError):  # AudioError is a ValueError
            pass

    records = list(records)
    chunks = [records[i : i + INSPECT_CHUNK] for i in range(0, len(records), INSPECT_CHUNK)]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for chunk in reading_ahead(chunks, _uninspected_files if ahead else lambda chunk: ()):
            for _ in pool.map(one, chunk):
                pass


#: (path, size, modification time) of every file :func:`_inspect` has read in this process.
_INSPECTED: set[tuple[str, int, int]] = set()


def _uninspected_files(records: Iterable[dict]) -> list[str]:
    """The audio files of ``records`` that no inspection in this process has read yet."""
    files = []
    for rec in records:
        try:
            st = os.stat(rec["audio"])
        except (OSError, KeyError, TypeError):
            continue
        if (str(Path(rec["audio"])), st.st_size, st.st_mtime_ns) not in _INSPECTED:
            files.append(rec["audio"])
    return files


@lru_cache(maxsize=None)
def _inspect(path: str, size: int, mtime_ns: int, offset: float, duration: float | None) -> AudioFacts:
    frames, finite, peak, start, stop = 0, True, 0.0, 0, 0
    try:
        with sf.SoundFile(path) as fh:
            sr, channels, total = fh.samplerate, fh.channels, fh.frames
            start = min(int(round(offset * sr)), total)
            stop = total if duration is None else min(total, start + int(round(duration * sr)))
            if start:
                fh.seek(start)
            while frames < stop - start:
                block = fh.read(frames=min(_BLOCK_FRAMES, stop - start - frames), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                frames += block.shape[0]
                ok = np.isfinite(block)
                if not ok.all():
                    finite = False
                    block = np.where(ok, block, 0.0)
                peak = max(peak, float(np.abs(block).max()))
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types
        raise AudioError(f"{path}: unreadable audio ({exc})") from None
    _INSPECTED.add((path, size, mtime_ns))
    return AudioFacts(sr, channels, total / sr if sr > 0 else 0.0, frames, stop - start, finite, peak)


def audio_problem(rec: dict) -> tuple[tuple[str, str] | None, AudioFacts | None]:
    """(problem, facts) of a manifest record's audio: ``problem`` is (reason, detail) when the
    utterance cannot be used (missing, unreadable, empty, truncated, non-finite or silent audio,
    segment beyond the end), else None; ``facts`` is None when the file could not be read."""
    offset, duration = rec.get("offset", 0.0), rec["duration"]
    try:
        facts = inspect_audio(rec["audio"], offset, duration)
    except AudioError as exc:
        missing = str(exc).startswith("no such file") or "not a regular file" in str(exc)
        return ("missing audio file" if missing else "unreadable audio", str(exc)), None
    if facts.file_seconds <= 0:
        return ("empty audio", f"{rec['audio']}: the file has no samples"), facts
    if offset + duration > facts.file_seconds + 0.05:
        return ("segment beyond the end of the audio",
                f"{rec['audio']}: {offset + duration:.2f}s > {facts.file_seconds:.2f}s"), facts
    if facts.frames < facts.expected:
        return ("truncated audio", f"{rec['audio']}: decoded {facts.frames} of {facts.expected} frames"), facts
    if not facts.finite:
        return ("non-finite samples", f"{rec['audio']}: NaN or infinite samples"), facts
    if facts.peak < SILENCE_PEAK:
        return ("silent audio", f"{rec['audio']}: peak amplitude {facts.peak:.1e} < {SILENCE_PEAK:.0e}"), facts
    return None, facts


def conversion_notes(sample_rates: dict[int, int], multichannel: int, sample_rate: int) -> dict[str, int]:
    """Harmless conversions loading will do: ``{"resampled from 8000 Hz": n, "mixed down to mono": m}``."""
    notes = {f"resampled from {sr} Hz": n for sr, n in sorted(sample_rates.items()) if sr != sample_rate}
    if multichannel:
        notes["mixed down to mono (several channels)"] = multichannel
    return notes
