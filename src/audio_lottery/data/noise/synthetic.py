"""Synthetic background noises (white, pink, brown) and their noise manifest.

Uses ``sox -R`` (repeatable random numbers) when sox is installed, otherwise numpy. SoX has
no seed argument, so a seed selects a different stretch of its repeatable noise stream.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_lottery.data.audio import audio_info
from audio_lottery.data.manifest import write_manifest

SAMPLE_RATE = 16000
KINDS = ("white", "pink", "brown")
PEAK = 0.7


def _sox_noise(path: Path, kind: str, seconds: float, skip: float, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``seconds`` of sox ``<kind>noise`` after skipping ``skip`` s of the -R stream."""
    cmd = [
        "sox", "-R", "-n", "-r", str(sample_rate), "-c", "1", "-b", "16", str(path),
        "synth", f"{skip + seconds:.6f}", f"{kind}noise",
        "trim", f"{skip:.6f}", f"{seconds:.6f}", "norm", "-3",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"sox failed for {path}: {res.stderr.strip()}")


def _numpy_noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) noise shaped in the frequency domain."""
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    else:
        spec = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)
        freqs[0] = freqs[1] if n > 1 else 1.0
        exponent = 0.5 if kind == "pink" else 1.0
        out = np.fft.irfft(spec / freqs**exponent, n)
    out = out - out.mean()
    return (PEAK * out / max(np.abs(out).max(), 1e-12)).astype(np.float32)


def write_noise(path: Path, kind: str, seconds: float, stream: int, sample_rate: int = SAMPLE_RATE) -> float:
    """Write ``seconds`` of ``kind`` noise (16-bit mono FLAC) and return its duration.

    ``stream`` picks a distinct, repeatable stretch of noise: with sox, the ``stream``-th block
    of its ``-R`` stream; without sox, numpy noise seeded by ``stream``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; use one of {', '.join(KINDS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("sox") is not None:
        _sox_noise(path, kind, seconds, skip=stream * seconds, sample_rate=sample_rate)
    else:
        rng = np.random.default_rng([stream, KINDS.index(kind)])
        wave = _numpy_noise(kind, int(round(seconds * sample_rate)), rng, sample_rate)
        sf.write(str(path), wave, sample_rate, subtype="PCM_16")
    return audio_info(path)[0]


def generate_sox_noises(
    out_dir: Path, seconds: float = 30.0, kinds: tuple[str, ...] = KINDS, seed: int = 0
) -> Path:
    """Write 16 kHz mono FLAC noises ``<kind>.flac`` and ``noise.jsonl``; return the manifest path.

    Deterministic for a given ``seed``. Manifest fields: audio, duration, text "", speaker and kind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown noise kind {kind!r}; use one of {', '.join(KINDS)}")
        path = out_dir / f"{kind}.flac"
        duration = write_noise(path, kind, seconds, stream=seed * len(KINDS) + KINDS.index(kind))
        records.append({"id": f"noise_{kind}", "audio": path.name, "duration": duration,
                        "text": "", "speaker": kind, "kind": kind})
    manifest = out_dir / "noise.jsonl"
    write_manifest(manifest, records)
    return manifest
