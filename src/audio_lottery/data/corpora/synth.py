"""Embedded default corpus: multi-speaker English synthesised offline with espeak-ng, flite and festival.

A *speaker* is engine + voice + variant + speed/pitch setting; its *kind* is sex x engine family
(:mod:`audio_lottery.data.corpora.voices`, the voice catalogue). One voice per engine is held out
of training and dev and appears in test only (``seen_voice: false``), chosen so that every kind
stays in training. Sentences come from
:mod:`audio_lottery.data.corpora.sentences`; train, dev and test never share a sentence.

Everything is a pure function of the seed: utterance ``i`` of a split always gets the same
sentence, speaker, gain and margin, so the same files come out (the engines are deterministic).
Splits are synthesised in order (test, dev, train) until their audio target is reached.

With ``train_pitch_variants`` the training split also draws from *pitch variants*: every seen flite and
festival voice that honours a target mean f0 (``Voice.f0_target``) gets extra training-only speakers at
another mean f0, drawn per sex. The corpus's dev and test splits stay what they are without the option
(the same files), so only the training voices become more varied.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from audio_lottery.data.manifest import read_manifest, write_manifest
from audio_lottery.data.corpora.sentences import Sentence, load_sentence_records
from audio_lottery.data.corpora.voices import (
    available_voices,
    choose_held_out,
    coverage,
    espeak_variants,
    kind,
    voice_info,
    voice_sex,
)
from audio_lottery.files import atomic_write_json

# 2: the voice catalogue (every usable espeak-ng variant, 5 male + 5 female-or-child per accent), sex and
# kind per utterance, a held-out voice per engine that keeps every kind in training, coverage in corpus.json
VERSION = 2
SAMPLE_RATE = 16000
MAX_CHARS_PER_SECOND = 14.0
SPLITS = ("test", "dev", "train")  # synthesis order; sentences are consumed in this order
EVAL_FRACTION = 0.065  # dev and test each get this fraction of the training audio
ENGINE_WEIGHTS = {"espeak": 5, "flite": 3, "festival": 2}  # utterances per block of 10
ESPEAK_PER_SEX = 5  # espeak variants per accent: this many male, and this many female or child
ESPEAK_SPEED = (90, 122)  # words per minute: espeak says ~0.1 * wpm chars/s, and >14 chars/s is dropped
ESPEAK_PITCH = (25, 75)
FLITE_STRETCH = (1.3, 1.55)
FESTIVAL_STRETCH = (1.3, 1.55)
PITCH_VARIANTS = {"flite": 3, "festival": 2}  # training-only pitch variants per voice that honours a target f0
VARIANT_F0_HZ = {"male": (75, 160), "female": (130, 250)}  # their mean f0 (flite, festival diphone)
ENGINE_TIMEOUT_S = 60


@dataclass(frozen=True)
class Speaker:
    """Engine + voice + variant + speed (wpm or duration stretch) + pitch + sex. The pitch is in the engine's
    units: espeak 0-99, festival HTS half-tones (hts_engine's -fm, which Debian's festival 2.5 ignores: the
    HTS speakers differ only in speed), flite and festival diphone a target mean f0 in Hz (0: the voice's own)."""

    engine: str
    voice: str
    variant: str
    speed: float
    pitch: float
    sex: str

    @property
    def kind(self) -> str:
        """Sex x engine family, e.g. ``espeak-female``."""
        return kind(self.engine, self.sex)

    @property
    def id(self) -> str:
        """Stable speaker label, e.g. ``espeak-en-gb-scotland+f2-s140-p50``."""
        var = f"+{self.variant}" if self.variant else ""
        return f"{self.engine}-{self.voice}{var}-s{self.speed:g}-p{self.pitch:g}"


@dataclass(frozen=True)
class Job:
    """One utterance to synthesise: everything that determines the output file."""

    uid: str
    split: str
    sentence: Sentence
    speaker: Speaker
    seen_voice: bool
    peak: float
    margin_s: float
    out_dir: str

    @property
    def rel_audio(self) -> str:
        return f"audio/{self.split}/{self.uid}.flac"


# ---------------------------------------------------------------- engines


def _engine_command(spk: Speaker, raw: str, wav: str) -> tuple[list[str], str | None]:
    """(argv, stdin text) that makes ``spk`` say ``raw`` into ``wav``."""
    if spk.engine == "espeak":
        voice = f"{spk.voice}+{spk.variant}" if spk.variant else spk.voice
        argv = ["espeak-ng", "-v", voice, "-s", str(int(spk.speed)), "-p", str(int(spk.pitch)), "-w", wav, raw]
        return argv, None
    if spk.engine == "flite":
        f0 = ["--setf", f"int_f0_target_mean={spk.pitch:g}"] if spk.pitch else []
        return ["flite", "-voice", spk.voice, "--setf", f"duration_stretch={spk.speed}", *f0, "-t", raw, "-o", wav], None
    if spk.engine == "festival":
        if spk.voice.endswith("_hts"):  # hts_engine: -r is the speech rate; -fm (half-tones) is ignored by festival 2.5
            setup = f"(set! hts_engine_params (append hts_engine_params '((\"-r\" {1 / spk.speed:.3f}) (\"-fm\" {spk.pitch:g}))))"
        else:
            setup = f"(Parameter.set 'Duration_Stretch {spk.speed})"
            if spk.pitch:  # the intonation model's target mean f0 (an earlier entry of the alist wins)
                setup += f" (set! int_lr_params (cons '(target_f0_mean {spk.pitch:g}) int_lr_params))"
        return ["text2wave", "-eval", f"(begin (voice_{spk.voice}) {setup})", "-o", wav], raw
    raise ValueError(f"unknown engine {spk.engine!r}")


def run_engine(spk: Speaker, raw: str) -> tuple[np.ndarray, int]:
    """Synthesise ``raw`` with speaker ``spk`` in a temp file; returns (float32 mono, sample rate)."""
    fd, wav = tempfile.mkstemp(suffix=".wav", prefix="al-synth-")
    os.close(fd)
    try:
        argv, stdin = _engine_command(spk, raw, wav)
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=ENGINE_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}")
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    finally:
        os.unlink(wav)
    if audio.shape[0] == 0:
        raise RuntimeError("engine produced no audio")
    return audio.mean(axis=1), sr


def postprocess(audio: np.ndarray, sr: int, peak: float, margin_s: float, floor_db: float = -40.0) -> np.ndarray:
    """Resample to 16 kHz, trim silence down to ``margin_s`` each side, peak-normalise to ``peak``."""
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
    hop = SAMPLE_RATE // 100
    frames = len(audio) // hop
    if frames == 0:
        raise RuntimeError("audio shorter than 10 ms")
    rms = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    margin = int(margin_s * SAMPLE_RATE)
    start = max(0, loud[0] * hop - margin)
    end = min(len(audio), (loud[-1] + 1) * hop + margin)
    audio = audio[start:end]
    top = float(np.max(np.abs(audio)))
    if top <= 0:
        raise RuntimeError("silent audio")
    return (audio * (peak / top)).astype(np.float32)


def _record(job: Job, duration: float) -> dict:
    spk = job.speaker
    return {
        "id": job.uid, "audio": job.rel_audio, "duration": round(duration, 4), "text": job.sentence.text,
        "speaker": spk.id, "offset": 0, "engine": spk.engine, "voice": spk.voice, "variant": spk.variant,
        "sex": spk.sex, "kind": spk.kind, "split": job.split, "seen_voice": job.seen_voice, "source": job.sentence.source,
    }  # fmt: skip


def synth_job(job: Job) -> dict:
    """Synthesise one job (reusing a finished file); returns its record or ``{"skip": reason, ...}``."""
    path = Path(job.out_dir) / job.rel_audio
    try:
        if path.is_file():
            info = sf.info(str(path))
            duration = info.frames / info.samplerate
        else:
            audio, sr = run_engine(job.speaker, job.sentence.raw)
            audio = postprocess(audio, sr, job.peak, job.margin_s)
            duration = len(audio) / SAMPLE_RATE
            _write_flac(path, audio)
    except Exception as exc:  # noqa: BLE001 - one failing utterance must not stop the corpus
        return {"skip": "failed", "id": job.uid, "message": f"{job.speaker.id}: {exc} (text: {job.sentence.raw!r})"}
    if len(job.sentence.text) / duration > MAX_CHARS_PER_SECOND:
        path.unlink(missing_ok=True)
        return {"skip": "too_fast", "id": job.uid, "engine": job.speaker.engine}
    return _record(job, duration)


def _write_flac(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(str(tmp), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)


# ---------------------------------------------------------------- speakers and planning


def build_speakers(seed: int, voices: dict[str, tuple[str, ...]], variants: tuple[str, ...]) -> list[Speaker]:
    """The speaker inventory for ``seed``: per espeak accent ESPEAK_PER_SEX male ``variants`` and as many
    female or child ones, 3 per flite voice, 2 per festival voice."""
    rng = random.Random(f"speakers:{seed}")
    out: list[Speaker] = []
    if voices.get("espeak") and not variants:
        raise RuntimeError("espeak-ng has none of the catalogue's variants installed: apt-get install espeak-ng-data")
    male = [v for v in variants if voice_sex("espeak", "", v) == "male"]
    other = [v for v in variants if v not in male]
    for accent in voices.get("espeak", ()):
        chosen = rng.sample(male, min(ESPEAK_PER_SEX, len(male))) + rng.sample(other, min(ESPEAK_PER_SEX, len(other)))
        for variant in chosen:
            out.append(Speaker("espeak", accent, variant, rng.randint(*ESPEAK_SPEED), rng.randint(*ESPEAK_PITCH),
                               voice_sex("espeak", accent, variant)))
    for voice in voices.get("flite", ()):
        for _ in range(3):
            out.append(Speaker("flite", voice, "", round(rng.uniform(*FLITE_STRETCH), 2), 0,
                               voice_sex("flite", voice, "")))
    for voice in voices.get("festival", ()):
        for _ in range(2):
            pitch = rng.choice((-3, -1, 1, 3)) if voice.endswith("_hts") else 0
            out.append(Speaker("festival", voice, "", round(rng.uniform(*FESTIVAL_STRETCH), 2), pitch,
                               voice_sex("festival", voice, "")))
    return out


def pitch_variants(seed: int, speakers: list[Speaker], held_out: dict[str, str]) -> list[Speaker]:
    """Training-only speakers for ``train_pitch_variants``: PITCH_VARIANTS per seen flite or festival voice
    that honours a target f0 (``Voice.f0_target``), each with its own duration stretch and a mean f0 drawn
    from VARIANT_F0_HZ of the voice's sex."""
    rng = random.Random(f"pitch-variants:{seed}")
    stretch = {"flite": FLITE_STRETCH, "festival": FESTIVAL_STRETCH}
    voices = dict.fromkeys((s.engine, s.voice, s.sex) for s in speakers if s.engine in PITCH_VARIANTS)
    out: list[Speaker] = []
    for engine, voice, sex in voices:
        if held_out.get(engine) == voice or not voice_info(engine, voice).f0_target:
            continue
        for _ in range(PITCH_VARIANTS[engine]):
            speed = round(rng.uniform(*stretch[engine]), 2)
            out.append(Speaker(engine, voice, "", speed, rng.randint(*VARIANT_F0_HZ[sex]), sex))
    return out


class Planner:
    """Deterministic job plan of one split: utterance ``i`` -> (engine, seen voice, speaker, gain)."""

    def __init__(self, split: str, seed: int, speakers: list[Speaker], held_out: dict[str, str], out_dir: Path):
        self.split, self.seed, self.out_dir = split, seed, str(out_dir)
        engines = sorted({s.engine for s in speakers})
        weights = {e: ENGINE_WEIGHTS.get(e, 1) for e in engines}
        self.block = [e for e in engines for _ in range(weights[e])]
        self.pools: dict[tuple[str, bool], list[Speaker]] = {}
        for spk in speakers:
            seen = held_out.get(spk.engine) != spk.voice
            self.pools.setdefault((spk.engine, seen), []).append(spk)
        self.engines: list[str] = []
        self.unseen: list[bool] = []

    def _extend(self, n: int) -> None:
        counts = Counter(self.engines)
        while len(self.engines) < n:
            block = list(self.block)
            random.Random(f"{self.seed}:{self.split}:block{len(self.engines)}").shuffle(block)
            for eng in block:
                # test alternates held-out / seen voices per engine, starting with a held-out one
                self.unseen.append(self.split == "test" and counts[eng] % 2 == 0 and (eng, False) in self.pools)
                counts[eng] += 1
                self.engines.append(eng)

    def job(self, i: int, sentence: Sentence) -> Job:
        """Job of utterance ``i`` of this split, saying ``sentence``."""
        self._extend(i + 1)
        seen = not self.unseen[i]
        rng = random.Random(f"{self.seed}:{self.split}:{i}")
        speaker = rng.choice(self.pools[(self.engines[i], seen)])
        peak, margin = round(rng.uniform(0.3, 0.95), 3), round(rng.uniform(0.08, 0.25), 3)
        key = json.dumps([VERSION, sentence.raw, asdict(speaker), peak, margin], sort_keys=True)
        uid = f"{self.split}-{i:06d}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        return Job(uid, self.split, sentence, speaker, seen, peak, margin, self.out_dir)


# ---------------------------------------------------------------- corpus


def corpus_settings(hours: float, seed: int, voices: dict[str, tuple[str, ...]], variants: tuple[str, ...],
                    train_pitch_variants: bool = False) -> dict:
    """Everything that determines the corpus (stored in corpus.json; a match makes a re-run a no-op)."""
    extra = {"train_pitch_variants": {"per_voice": PITCH_VARIANTS, "f0_hz": VARIANT_F0_HZ}} if train_pitch_variants else {}
    return {
        "version": VERSION, "hours": hours, "seed": seed, "sample_rate": SAMPLE_RATE,
        "max_chars_per_second": MAX_CHARS_PER_SECOND, "eval_fraction": EVAL_FRACTION,
        "engine_weights": ENGINE_WEIGHTS, "voices": {k: list(v) for k, v in sorted(voices.items())},
        "espeak_variants": list(variants), "espeak_per_sex": ESPEAK_PER_SEX,
        "espeak_speed": list(ESPEAK_SPEED), "espeak_pitch": list(ESPEAK_PITCH),
        "flite_stretch": list(FLITE_STRETCH), "festival_stretch": list(FESTIVAL_STRETCH),
        "sentences": {"min_words": 4, "max_words": 20, "max_chars": 120}, **extra,
    }  # fmt: skip


def split_targets(hours: float) -> dict[str, tuple[float, int]]:
    """(audio seconds, minimum utterances) per split: dev/test get EVAL_FRACTION of train, >= 12..150 utterances."""
    train_s = hours * 3600.0
    min_eval = min(150, max(12, int(50 * hours)))
    return {"test": (EVAL_FRACTION * train_s, min_eval), "dev": (EVAL_FRACTION * train_s, min_eval), "train": (train_s, 1)}


def _finished_summary(out_dir: Path, settings: dict) -> dict | None:
    meta = out_dir / "corpus.json"
    if not meta.is_file() or not all((out_dir / f"{s}.jsonl").is_file() for s in SPLITS):
        return None
    try:
        summary = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return summary if summary.get("settings") == json.loads(json.dumps(settings)) else None


class _SplitRun:
    """Accumulates the results of one split until its target is reached."""

    def __init__(self, target: tuple[float, int], progress: bool, desc: str):
        self.goal_s, self.min_count = target
        self.records: list[dict] = []
        self.seconds = 0.0
        self.consumed = 0
        self.skipped: Counter = Counter()
        self.timing: Counter = Counter()
        self.bar = tqdm(total=int(self.goal_s) + 1, unit="s", desc=desc, disable=not progress, unit_scale=False)

    def done(self) -> bool:
        return self.seconds >= self.goal_s and len(self.records) >= self.min_count

    def add(self, res: dict) -> None:
        self.consumed += 1
        elapsed = res.pop("_elapsed", 0.0)
        if "skip" in res:
            self.skipped[f"{res['skip']}:{res.get('engine', '?')}"] += 1
            if res["skip"] == "failed":
                warnings.warn(f"synthesis failed, utterance skipped: {res['message']}", stacklevel=2)
            return
        self.records.append(res)
        self.seconds += res["duration"]
        self.timing[f"{res['engine']}:audio_s"] += res["duration"]
        self.timing[f"{res['engine']}:synth_s"] += elapsed
        self.bar.update(int(self.seconds) - self.bar.n)  # audio seconds so far

    def next_batch(self, workers: int) -> int:
        mean = self.seconds / len(self.records) if self.records else 4.0
        need = max((self.goal_s - self.seconds) / mean, self.min_count - len(self.records), 1)
        return int(min(max(need * 1.05 + workers, 8), 200))


def _timed_job(job: Job) -> dict:
    t0 = time.perf_counter()
    res = synth_job(job)
    res["_elapsed"] = time.perf_counter() - t0
    if "skip" in res:
        res.setdefault("engine", job.speaker.engine)
    return res


def _run_split(pool, planner: Planner, sentences: list[Sentence], start: int, workers: int, progress: bool,
               target: tuple[float, int]) -> _SplitRun:  # fmt: skip
    run = _SplitRun(target, progress, f"synth {planner.split}")
    while not run.done():
        first = start + run.consumed
        n = min(run.next_batch(workers), len(sentences) - first)
        if n <= 0:
            raise RuntimeError(f"ran out of sentences in split {planner.split} after {first} sentences")
        jobs = [planner.job(run.consumed + k, sentences[first + k]) for k in range(n)]
        for res in pool.imap(_timed_job, jobs, chunksize=max(1, min(4, n // (4 * workers)))):
            run.add(res)
            if run.done():
                break
    run.bar.close()
    return run


def _summarise(runs: dict[str, _SplitRun], settings: dict, held_out: dict[str, str], n_speakers: int) -> dict:
    splits: dict[str, dict] = {}
    timing: Counter = Counter()
    skipped: Counter = Counter()
    for split, run in runs.items():
        engines: dict[str, dict] = {}
        for rec in run.records:
            e = engines.setdefault(rec["engine"], {"utterances": 0, "hours": 0.0})
            e["utterances"] += 1
            e["hours"] += rec["duration"] / 3600
        unseen = sum(not r["seen_voice"] for r in run.records)
        splits[split] = {"utterances": len(run.records), "hours": run.seconds / 3600, "engines": engines,
                         "unseen_voice_utterances": unseen, "speakers": len({r["speaker"] for r in run.records})}  # fmt: skip
        timing.update(run.timing)
        skipped.update(run.skipped)
    speed = {k.split(":")[0]: timing[k] / max(timing[k.replace("audio_s", "synth_s")], 1e-9)
             for k in timing if k.endswith(":audio_s")}  # fmt: skip
    return {"version": VERSION, "settings": settings, "splits": splits, "held_out_voices": held_out,
            "speakers": n_speakers, "coverage": coverage({s: r.records for s, r in runs.items()}, held_out),
            "skipped": dict(sorted(skipped.items())), "audio_seconds_per_synth_second": speed}  # fmt: skip


def _prune_unreferenced(out_dir: Path, runs: dict[str, _SplitRun]) -> None:
    for split, run in runs.items():
        keep = {Path(r["audio"]).name for r in run.records}
        folder = out_dir / "audio" / split
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.is_file() and path.name not in keep and (path.suffix in (".flac", ".tmp")):
                path.unlink()


def synthesize_corpus(
    out_dir: Path, hours: float = 3.5, seed: int = 0, workers: int | None = None, progress: bool = True,
    train_pitch_variants: bool = False,
) -> dict:
    """Synthesise the embedded corpus into ``out_dir`` (train/dev/test.jsonl, audio/, corpus.json).

    ``hours`` is the training audio; dev and test each get ~6.5 % of it (at least 12-150
    utterances). Returns the summary (utterances and hours per split and engine). A finished
    corpus with the same settings is returned at once; a killed run reuses its finished audio.
    ``train_pitch_variants`` adds the training-only pitch variants (:func:`pitch_variants`).
    """
    out_dir = Path(out_dir)
    voices = available_voices()
    if not voices:
        raise RuntimeError("no speech engine found: apt-get install espeak-ng flite festival festvox-kallpc16k")
    variants = espeak_variants() if "espeak" in voices else ()
    settings = corpus_settings(hours, seed, voices, variants, train_pitch_variants)
    finished = _finished_summary(out_dir, settings)
    if finished is not None:
        return finished
    t0 = time.perf_counter()
    # a prefix of the seed's sentence order: enough even if every utterance lasted only 2 s
    sentences = load_sentence_records(seed, limit=int(hours * 3600 * (1 + 2 * EVAL_FRACTION) / 2.0) + 500)
    speakers = build_speakers(seed, voices, variants)
    held_out = choose_held_out(seed, speakers)
    train_speakers = speakers + pitch_variants(seed, speakers, held_out) if train_pitch_variants else speakers
    workers = workers or os.cpu_count() or 1
    runs: dict[str, _SplitRun] = {}
    cursor = 0
    with mp.Pool(workers) as pool:
        for split, target in split_targets(hours).items():
            planner = Planner(split, seed, train_speakers if split == "train" else speakers, held_out, out_dir)
            runs[split] = _run_split(pool, planner, sentences, cursor, workers, progress, target)
            cursor += runs[split].consumed
        pool.terminate()
    summary = _summarise(runs, settings, held_out, len(train_speakers))
    if summary["coverage"]["kinds_only_in_test"]:  # planned away; a corpus too small to draw every kind can show it
        warnings.warn(f"{out_dir}: speaker kinds {summary['coverage']['kinds_only_in_test']} are in test but no "
                      f"training utterance drew them (a larger --hours draws every kind)", stacklevel=2)
    summary["wall_seconds"] = time.perf_counter() - t0
    for split in SPLITS:
        write_manifest(out_dir / f"{split}.jsonl", runs[split].records)
    atomic_write_json(out_dir / "corpus.json", summary)
    _prune_unreferenced(out_dir, runs)
    return summary


def load_corpus(out_dir: Path) -> dict[str, list[dict]]:
    """Read the three manifests of a synthesised corpus (validated, audio paths resolved)."""
    return {split: read_manifest(Path(out_dir) / f"{split}.jsonl") for split in SPLITS}
