"""The voice catalogue: sexes and kinds, what is installed, the held-out choice, coverage."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from audio_lottery.data.corpora import voices as voices_mod
from audio_lottery.data.corpora.synth import Speaker, build_speakers, run_engine
from audio_lottery.data.corpora.voices import (
    ESPEAK_ACCENTS,
    ESPEAK_EXCLUDED,
    ESPEAK_VARIANT_SEX,
    FESTIVAL_VOICES,
    FLITE_VOICES,
    UNUSABLE,
    VoiceCoverageError,
    available_voices,
    choose_held_out,
    coverage,
    espeak_data_dir,
    espeak_variants,
    voice_sex,
)

ALL_VOICES = {"espeak": ESPEAK_ACCENTS, "flite": tuple(v.name for v in FLITE_VOICES),
              "festival": tuple(v.name for v in FESTIVAL_VOICES)}
ALL_VARIANTS = tuple(sorted(v for v in ESPEAK_VARIANT_SEX if v not in ESPEAK_EXCLUDED))


def _spk(engine: str, voice: str, sex: str) -> SimpleNamespace:
    return SimpleNamespace(engine=engine, voice=voice, sex=sex)


def test_sexes_and_kinds():
    assert voice_sex("espeak", "en-us", "f2") == "female" and voice_sex("espeak", "en-gb", "m1") == "male"
    assert voice_sex("espeak", "en-us", "zac") == "child" and voice_sex("espeak", "en-us", "") == "male"
    assert voice_sex("flite", "slt", "") == "female" and voice_sex("festival", "ked_diphone", "") == "male"
    assert Speaker("flite", "slt", "", 1.4, 0, "female").kind == "flite-female"
    with pytest.raises(KeyError, match="unknown flite voice 'nope'"):
        voice_sex("flite", "nope", "")


def test_unusable_candidates_say_why_and_are_never_drawn():
    """Every rejected candidate carries its reason and package, and none is a voice the corpus can draw."""
    usable = {(engine, name) for engine, names in ALL_VOICES.items() for name in names}
    for voice in UNUSABLE:
        assert not voice.usable and voice.note and voice.package, voice
        assert (voice.engine, voice.name) not in usable, voice
    assert {v.engine for v in UNUSABLE} >= {"rhvoice", "piper", "mimic3"}


@pytest.mark.parametrize("seed", range(12))
def test_held_out_keeps_every_kind_in_training(seed):
    speakers = build_speakers(seed, ALL_VOICES, ALL_VARIANTS)
    held = choose_held_out(seed, speakers)
    assert set(held) == {"espeak", "flite", "festival"}
    for engine, voice in held.items():
        group = [s for s in speakers if s.engine == engine]
        assert {s.kind for s in group if s.voice != voice} == {s.kind for s in group}, engine
    # the only female voice of flite and festival (slt) stays in training; so do the voices whose
    # recorded speaker another engine's training voice copies (kal)
    assert held["flite"] in ("awb", "rms") and held["festival"] == "ked_diphone"
    assert held == choose_held_out(seed, speakers), "deterministic per seed"


def test_held_out_varies_with_the_seed():
    picks = {tuple(sorted(choose_held_out(s, build_speakers(s, ALL_VOICES, ALL_VARIANTS)).items())) for s in range(12)}
    assert len({dict(p)["espeak"] for p in picks}) > 2 and {dict(p)["flite"] for p in picks} == {"awb", "rms"}


def test_held_out_never_leaves_a_kind_only_in_test():
    # two voices, each the only one of its sex: holding out either leaves a kind only in test
    with pytest.raises(VoiceCoverageError, match="flite: every voice of \\['kal', 'slt'\\]"):
        choose_held_out(0, [_spk("flite", "kal", "male"), _spk("flite", "slt", "female")])
    # one voice: nothing to hold out; a shared person is avoided when another choice exists
    assert choose_held_out(0, [_spk("festival", "kal_diphone", "male")]) == {}
    speakers = [_spk("flite", n, "male") for n in ("kal", "kal16", "rms")] + [_spk("flite", "slt", "female")]
    assert {choose_held_out(s, speakers)["flite"] for s in range(10)} == {"rms"}
    # without a unique person it falls back to any voice that keeps the kinds
    speakers = [_spk("flite", n, "male") for n in ("kal", "kal16")] + [_spk("flite", "slt", "female")]
    assert {choose_held_out(s, speakers)["flite"] for s in range(10)} == {"kal", "kal16"}


def test_missing_flite_voice_is_skipped_with_a_warning(monkeypatch):
    monkeypatch.setattr(voices_mod.shutil, "which", lambda name: "/usr/bin/" + name if name == "flite" else None)
    monkeypatch.setattr(voices_mod, "flite_installed", lambda: {"kal", "slt", "rms"})
    with pytest.warns(UserWarning, match=r"flite voice \w+ is not installed.*apt-get install flite") as rec:
        found = available_voices()
    assert found == {"flite": ("kal", "rms", "slt")}
    assert sorted(re.search(r"voice (\w+) is", str(w.message)).group(1) for w in rec) == ["awb", "kal16"]


def test_missing_festival_voice_names_its_package(monkeypatch):
    monkeypatch.setattr(voices_mod.shutil, "which", lambda name: "/usr/bin/" + name if name == "text2wave" else None)
    monkeypatch.setattr(voices_mod, "festival_installed", lambda name: name != "ked_diphone")
    with pytest.warns(UserWarning, match="festival voice ked_diphone.*festvox-kdlpc16k"):
        assert available_voices() == {"festival": ("kal_diphone", "cmu_us_slt_arctic_hts")}


def test_missing_espeak_variant_is_skipped_with_a_warning(tmp_path):
    folder = tmp_path / "voices" / "!v"
    folder.mkdir(parents=True)
    for name in ("m1", "f2", "whisper"):
        (folder / name).write_text("name x\n")
    with pytest.warns(UserWarning, match=r"espeak-ng variants \[.*'zac'.*\].*espeak-ng-data"):
        assert espeak_variants(tmp_path) == ("f2", "m1")  # whisper is installed but excluded


def test_catalogue_matches_installed_espeak_variants():
    """Every variant file of the installed espeak-ng is classified, and an explicit `gender` line agrees."""
    data = espeak_data_dir()
    assert data is not None, "espeak-ng is not installed (make setup)"
    files = {p.name: p.read_text(errors="replace") for p in (data / "voices" / "!v").iterdir() if p.is_file()}
    assert set(files) == set(ESPEAK_VARIANT_SEX)
    for name, text in files.items():
        gender = re.search(r"^gender\s+(\w+)", text, re.MULTILINE | re.IGNORECASE)
        if gender:
            assert gender.group(1).lower() == ESPEAK_VARIANT_SEX[name], name


def test_new_variants_are_spoken():
    """A variant changes the audio (espeak-ng speaks the plain voice, silently, for an unknown one)."""
    plain, sr = run_engine(Speaker("espeak", "en-us", "", 110, 50, "male"), "Hello there my friend.")
    for variant in ("Annie", "zac", "klatt3"):
        audio, sr2 = run_engine(Speaker("espeak", "en-us", variant, 110, 50, voice_sex("espeak", "en-us", variant)),
                                "Hello there my friend.")
        assert sr2 == sr and audio.size > sr // 4
        assert audio.shape != plain.shape or not np.allclose(audio, plain), variant


def _median_f0(audio: np.ndarray, sr: int) -> float:
    import librosa

    f0, _, _ = librosa.pyin(audio.astype(np.float64), fmin=50, fmax=400, sr=sr)
    return float(np.nanmedian(f0))


@pytest.mark.parametrize("voice", FLITE_VOICES + FESTIVAL_VOICES, ids=lambda v: f"{v.engine}-{v.name}")
def test_f0_target_flag_matches_the_engine(voice):
    """A voice flagged ``f0_target`` says a sentence at the mean f0 asked for (1.5 times its own); the others
    (flite rms; festival HTS, asked for +7 half-tones) keep their own, so the flag is not a guess."""
    text = "The quick brown fox jumps over the lazy dog."
    plain = _median_f0(*run_engine(Speaker(voice.engine, voice.name, "", 1.0, 0, voice.sex), text))
    target = 7 if voice.name.endswith("_hts") else round(plain * 1.5)
    shifted = _median_f0(*run_engine(Speaker(voice.engine, voice.name, "", 1.0, target, voice.sex), text))
    ratio = shifted / plain
    if voice.f0_target:
        assert 1.3 < ratio < 1.7, (plain, shifted)
    else:
        assert 0.95 < ratio < 1.05, (plain, shifted)


def test_coverage_counts_and_kinds_only_in_test():
    def rec(engine, voice, sex, duration):
        return {"engine": engine, "voice": voice, "kind": f"{engine}-{sex}", "duration": duration}

    records = {"train": [rec("flite", "kal", "male", 2.0), rec("flite", "kal", "male", 1.5), rec("espeak", "en-us", "female", 3.0)],
               "test": [rec("flite", "slt", "female", 4.0), rec("espeak", "en-gb", "female", 1.0)]}
    cov = coverage(records, {"flite": "slt"})
    assert cov["held_out_voices"] == {"flite": "slt"}
    assert cov["splits"]["train"]["voice"] == {"espeak/en-us": {"utterances": 1, "seconds": 3.0},
                                                "flite/kal": {"utterances": 2, "seconds": 3.5}}
    assert cov["splits"]["train"]["kind"]["flite-male"] == {"utterances": 2, "seconds": 3.5}
    assert cov["splits"]["test"]["engine"] == {"espeak": {"utterances": 1, "seconds": 1.0},
                                               "flite": {"utterances": 1, "seconds": 4.0}}
    assert cov["kinds_only_in_test"] == ["flite-female"]
