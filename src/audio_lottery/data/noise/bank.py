"""The noise bank: a split noise manifest for noisy training and evaluation under noise.

``build_noise_bank(out, speech_manifest=...)`` writes ``out/noise.jsonl`` (every segment) plus
``noise_train.jsonl``, ``noise_dev.jsonl`` and ``noise_test.jsonl``, the audio under
``out/audio/<category>/`` and a summary ``out/bank.json``. Categories:

- ``white``, ``pink``, ``brown``: sox noise, one independent stretch per split;
- ``ambience``: ufoai-sound loops; ``effects``: openttd-opensfx recordings
  (each cut into segments of at most ``segment_seconds``; near-silent segments dropped);
- ``babble``: 3-6 overlapping talkers of a speech manifest (speakers disjoint per split).

Every record has ``split`` (train/dev/test), ``category`` and ``source``. Splits are drawn per
source (a recording family, an original recording or a babble clip), never per segment, so
no test noise is ever heard in training. Everything is deterministic for a seed; a bank whose
``bank.json`` matches the settings and inputs is not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_lottery.data.noise.babble import BabbleMaker, partition_speakers
from audio_lottery.data.manifest import read_manifest, write_manifest
from audio_lottery.data.noise.synthetic import KINDS, write_noise
from audio_lottery.data.noise.sources import PACKAGE_SOURCES, MissingPackage, NoiseClip
from audio_lottery.files import atomic_write_json, file_fingerprint, read_json

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
CATEGORIES = (*KINDS, "ambience", "effects", "babble")
SOURCES = ("sox", "ambience", "effects", "babble")
PEAK = 0.7
BANK_VERSION = 1


@dataclass
class BankSettings:
    """How a noise bank is built (all of it goes into ``bank.json``)."""

    seed: int = 0
    sample_rate: int = 16000
    sources: tuple[str, ...] = SOURCES
    test_fraction: float = 0.2  # of each category's audio (by source) held out for test
    dev_fraction: float = 0.1
    segment_seconds: float = 10.0  # long recordings are cut into segments of at most this
    min_seconds: float = 1.0  # shorter recordings and tail pieces are dropped / merged
    min_activity: float = 0.5  # a segment needs this fraction of 50 ms frames within 30 dB of its loudest
    sox_seconds: float = 30.0  # one file per kind and split
    babble_clips: int = 20  # split like the other categories (at least one per split)
    babble_seconds: float = 10.0
    babble_talkers: tuple[int, int] = (3, 6)
    limit: int = 0  # at most this many recordings per package (0 = all; for tests)

    def __post_init__(self) -> None:
        unknown = set(self.sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown noise sources {sorted(unknown)}; use some of {', '.join(SOURCES)}")
        if not (0 <= self.test_fraction < 1 and 0 <= self.dev_fraction < 1
                and self.test_fraction + self.dev_fraction < 1):
            raise ValueError(f"test/dev fractions must be in [0, 1) and sum below 1, got "
                             f"{self.test_fraction}/{self.dev_fraction}")

    @property
    def fractions(self) -> dict[str, float]:
        """Split -> share, train last (it takes the rest)."""
        return {"test": self.test_fraction, "dev": self.dev_fraction, "train": 1.0}


@dataclass
class Segment:
    """A piece of noise to write, before its split is known."""

    wave: np.ndarray
    category: str
    source: str
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- segmenting


def activity(wave: np.ndarray, sample_rate: int, frame_seconds: float = 0.05, range_db: float = 30.0) -> float:
    """Fraction of frames whose RMS is within ``range_db`` of the loudest frame (0 for silence)."""
    frame = max(1, int(frame_seconds * sample_rate))
    n = wave.size // frame
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.square(wave[: n * frame].reshape(n, frame), dtype=np.float64), axis=1))
    top = rms.max()
    if top <= 0:
        return 0.0
    return float(np.mean(rms >= top * 10 ** (-range_db / 20)))


def cut(wave: np.ndarray, sample_rate: int, segment_seconds: float, min_seconds: float) -> list[tuple[int, np.ndarray]]:
    """(start sample, piece) of at most ``segment_seconds``; a tail under ``min_seconds`` joins the
    previous piece, a recording under ``min_seconds`` gives nothing."""
    seg, low = int(segment_seconds * sample_rate), int(min_seconds * sample_rate)
    if wave.size < max(low, 1):
        return []
    starts = list(range(0, wave.size, seg))
    if len(starts) > 1 and wave.size - starts[-1] < low:
        starts.pop()
    ends = starts[1:] + [wave.size]
    return [(a, wave[a:b]) for a, b in zip(starts, ends)]


def clip_segments(clip: NoiseClip, s: BankSettings) -> list[Segment]:
    """The usable segments of a package recording (near-silent ones dropped)."""
    out = []
    for start, piece in cut(clip.wave, s.sample_rate, s.segment_seconds, s.min_seconds):
        if activity(piece, s.sample_rate) < s.min_activity:
            continue
        out.append(Segment(piece, clip.category, clip.group,
                           {"origin": clip.origin, "file": clip.name, "start": round(start / s.sample_rate, 3),
                            **clip.info}))
    return out


# --------------------------------------------------------------------------- splitting


def assign_splits(durations: dict[str, float], fractions: dict[str, float], seed: int, salt: str) -> dict[str, str]:
    """Source -> split. Sources, in a seeded random order, fill each held-out split (``test``, then
    ``dev``) up to its share of the total duration, at least one source each while training keeps
    at least one; the rest is ``train``."""
    names = sorted(durations)
    rng = np.random.default_rng([seed, int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16)])
    order = [names[i] for i in rng.permutation(len(names))]
    total, n = sum(durations.values()), len(order)
    held = [sp for sp in fractions if sp != "train" and fractions[sp] > 0]
    out: dict[str, str] = {}
    i = 0
    for k, split in enumerate(held):
        got = 0.0
        later = len(held) - k - 1  # held-out splits still waiting for their first source
        while n - i > 1 and (got == 0.0 or got < fractions[split] * total):
            if got > 0.0 and n - i - 1 <= later:
                break
            out[order[i]] = split
            got += durations[order[i]]
            i += 1
    for name in order[i:]:
        out[name] = "train"
    return out


# --------------------------------------------------------------------------- sources


def _sox_segments(out_dir: Path, s: BankSettings) -> list[tuple[Segment, str]]:
    """One noise file per kind and split, each an independent stretch of the generator."""
    out = []
    for si, split in enumerate(SPLITS):
        for ki, kind in enumerate(KINDS):
            tmp = out_dir / "tmp" / f"{kind}-{split}.flac"
            write_noise(tmp, kind, s.sox_seconds, stream=(s.seed * len(SPLITS) + si) * len(KINDS) + ki,
                        sample_rate=s.sample_rate)
            wave, _ = sf.read(str(tmp), dtype="float32")
            out.append((Segment(wave, kind, f"sox:{kind}:{split}", {"origin": "sox"}), split))
    shutil.rmtree(out_dir / "tmp", ignore_errors=True)
    return out


def _package_segments(category: str, s: BankSettings, missing: list[str]) -> list[tuple[Segment, str]]:
    package, reader = PACKAGE_SOURCES[category]
    try:
        clips = reader(s.sample_rate, limit=s.limit)
    except MissingPackage as exc:
        log.warning("%s", exc)
        missing.append(str(exc))
        return []
    segments = [seg for clip in clips for seg in clip_segments(clip, s)]
    durations: dict[str, float] = {}
    for seg in segments:
        durations[seg.source] = durations.get(seg.source, 0.0) + seg.wave.size / s.sample_rate
    splits = assign_splits(durations, s.fractions, s.seed, category)
    return [(seg, splits[seg.source]) for seg in segments]


def _babble_segments(speech: list[dict], test_speech: list[dict] | None, s: BankSettings) -> list[tuple[Segment, str]]:
    """Babble clips per split from disjoint speaker sets (test from ``test_speech`` when given)."""
    speakers = [r["speaker"] for r in speech]
    if test_speech is None:
        groups = partition_speakers(speakers, s.fractions, s.seed, minimum=s.babble_talkers[0])
        pool = speech
    else:
        groups = partition_speakers(speakers, {"dev": s.dev_fraction, "train": 1.0}, s.seed,
                                    minimum=s.babble_talkers[0])
        seen = set(speakers)
        groups["test"] = sorted({r["speaker"] for r in test_speech} - seen)
        pool = list(speech) + [r for r in test_speech if r["speaker"] not in seen]
    maker = BabbleMaker(pool, s.sample_rate, tuple(s.babble_talkers))
    counts = _clip_counts(s.babble_clips, s)
    out = []
    for si, split in enumerate(SPLITS):
        if counts[split] and len(groups.get(split, [])) < s.babble_talkers[0]:
            log.warning("babble: only %d speakers for the %s split (need %d); no %s babble",
                        len(groups.get(split, [])), split, s.babble_talkers[0], split)
            continue
        for k in range(counts[split]):
            rng = np.random.default_rng([s.seed, 13, si, k])
            wave, info = maker.clip(groups[split], s.babble_seconds, rng)
            out.append((Segment(wave, "babble", f"babble:{split}-{k:03d}", {"origin": "speech", **info}), split))
    return out


def _clip_counts(total: int, s: BankSettings) -> dict[str, int]:
    test = max(1, round(s.test_fraction * total)) if s.test_fraction > 0 else 0
    dev = max(1, round(s.dev_fraction * total)) if s.dev_fraction > 0 else 0
    return {"train": max(1, total - test - dev), "dev": dev, "test": test}


# --------------------------------------------------------------------------- writing


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "noise"


def _fingerprint(path: str | Path | None) -> str:
    return file_fingerprint(Path(path)) if path else ""


def _write(out_dir: Path, items: list[tuple[Segment, str]], sample_rate: int) -> list[dict]:
    records, counts = [], {}
    for seg, split in items:
        base = _safe(seg.source.split(":", 1)[-1] if seg.category not in KINDS else f"{seg.category}-{split}")
        counts[(seg.category, base)] = counts.get((seg.category, base), 0) + 1
        name = f"{base}-{counts[(seg.category, base)]:02d}"
        rel = Path("audio") / seg.category / f"{name}.flac"
        wave = seg.wave.astype(np.float64)
        wave = PEAK * wave / max(np.abs(wave).max(), 1e-12)
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out_dir / rel), wave.astype(np.float32), sample_rate, subtype="PCM_16", format="FLAC")
        records.append({"id": f"{seg.category}-{name}", "audio": str(rel), "duration": round(wave.size / sample_rate, 4),
                        "text": "", "speaker": seg.source, "category": seg.category, "source": seg.source,
                        "split": split, **seg.extra})
    return records


def _summary(records: list[dict]) -> dict:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for r in records:
        cell = table.setdefault(r["split"], {}).setdefault(r["category"], {"segments": 0, "sources": set(), "seconds": 0.0})
        cell["segments"] += 1
        cell["sources"].add(r["source"])
        cell["seconds"] += r["duration"]
    return {sp: {cat: {"segments": c["segments"], "sources": len(c["sources"]), "seconds": round(c["seconds"], 1)}
                 for cat, c in sorted(cats.items())} for sp, cats in sorted(table.items())}


def build_noise_bank(out_dir: str | Path, speech_manifest: str | Path | None = None,
                     test_speech_manifest: str | Path | None = None, settings: BankSettings | None = None) -> dict:
    """Build (or find) the noise bank in ``out_dir``; returns the summary written to ``bank.json``.

    ``speech_manifest`` (e.g. the training manifest) provides babble talkers; its speakers are
    partitioned between the splits. With ``test_speech_manifest`` the test babble instead uses
    that manifest's speakers that are not in ``speech_manifest``. Without a speech manifest
    there is no babble. Missing Debian packages are reported and skipped.
    """
    s = settings or BankSettings()
    out_dir = Path(out_dir)
    key = {"version": BANK_VERSION, "settings": asdict(s),
           "speech_manifest": str(Path(speech_manifest).resolve()) if speech_manifest else "",
           "speech_fingerprint": _fingerprint(speech_manifest),
           "test_speech_manifest": str(Path(test_speech_manifest).resolve()) if test_speech_manifest else "",
           "test_speech_fingerprint": _fingerprint(test_speech_manifest)}
    key = json.loads(json.dumps(key, sort_keys=True))  # as it reads back from bank.json
    summary_path = out_dir / "bank.json"
    if summary_path.is_file() and (out_dir / "noise.jsonl").is_file():
        old = read_json(summary_path)
        if old.get("key") == key:
            return old
    if (out_dir / "audio").is_dir():
        shutil.rmtree(out_dir / "audio")
    out_dir.mkdir(parents=True, exist_ok=True)
    items: list[tuple[Segment, str]] = []
    missing: list[str] = []
    if "sox" in s.sources:
        items += _sox_segments(out_dir, s)
    for category in ("ambience", "effects"):
        if category in s.sources:
            items += _package_segments(category, s, missing)
    if "babble" in s.sources:
        if speech_manifest:
            test_speech = read_manifest(test_speech_manifest) if test_speech_manifest else None
            items += _babble_segments(read_manifest(speech_manifest), test_speech, s)
        else:
            log.warning("no --speech-manifest: the noise bank has no babble")
            missing.append("babble: no speech manifest given")
    records = _write(out_dir, items, s.sample_rate)
    check_disjoint(records)
    write_manifest(out_dir / "noise.jsonl", records)
    for split in SPLITS:
        write_manifest(out_dir / f"noise_{split}.jsonl", [r for r in records if r["split"] == split])
    summary = {"key": key, "manifest": str((out_dir / "noise.jsonl").resolve()), "segments": len(records),
               "splits": _summary(records), "missing": missing}
    atomic_write_json(summary_path, summary)
    return summary


def check_disjoint(records: list[dict]) -> None:
    """Refuse a bank where a source, an original file or a babble speaker appears in two splits."""
    for fieldname in ("source", "file"):
        seen: dict[str, str] = {}
        for r in records:
            value = r.get(fieldname)
            if value is None:
                continue
            value = f"{r.get('origin')}:{value}"
            if seen.setdefault(value, r["split"]) != r["split"]:
                raise RuntimeError(f"noise bank: {fieldname} {value!r} is in splits {seen[value]} and {r['split']}")
    speakers: dict[str, str] = {}
    for r in records:
        for spk in r.get("speakers", []):
            if speakers.setdefault(spk, r["split"]) != r["split"]:
                raise RuntimeError(f"noise bank: babble speaker {spk!r} is in splits {speakers[spk]} and {r['split']}")
