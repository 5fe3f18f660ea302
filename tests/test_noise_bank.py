"""Noise bank: package readers, segmenting, source-disjoint splits, babble speakers, determinism."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_lottery.data.noise import sources as noise_sources
from audio_lottery.data.noise.babble import partition_speakers
from audio_lottery.data.manifest import read_manifest, write_manifest
from audio_lottery.data.noise.bank import BankSettings, activity, assign_splits, build_noise_bank, cut
from audio_lottery.data.noise.sources import MissingPackage, opensfx_originals, read_sound_catalogue

SR = 16000


def _tone(seconds: float, freq: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.05
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _wav_bytes(wave: np.ndarray, sr: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _catalogue(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    """An OpenTTD sound catalogue in the 'new format' (top bit of the first offset set)."""
    table = 8 * len(entries)
    offsets, blobs, pos = [], [], table
    for desc, wav in entries:
        name = desc.encode() + b"\0"
        blob = bytes([len(name)]) + name + wav
        offsets.append((pos, len(wav)))
        blobs.append(blob)
        pos += len(blob)
    head = b"".join(struct.pack("<II", (off | 0x80000000) if i == 0 else off, size)
                    for i, (off, size) in enumerate(offsets))
    path.write_bytes(head + b"".join(blobs))
    return path


@pytest.fixture(scope="module")
def fake_packages(tmp_path_factory):
    """A ufoai-like .pk3 (ogg loops at 44.1 kHz stereo) and an OpenSFX-like .cat (22.05 kHz wav)."""
    root = tmp_path_factory.mktemp("pkgs")
    pk3 = root / "0snd.pk3"
    with zipfile.ZipFile(pk3, "w") as zf:
        for i, name in enumerate(["fire03", "fire04", "water01", "wind", "hum", "city_atm", "steam"]):
            wave = _tone(3.0 + 4 * (i % 3), 200 + 50 * i, 44100, seed=i)
            if name == "steam":
                wave[int(0.3 * 44100):] = 0.0  # mostly silent: every segment is dropped
            zf.writestr(f"sound/ambience/{name}.ogg", _wav_bytes(np.stack([wave, wave], 1), 44100, "OGG", "VORBIS"))
        zf.writestr("sound/weapons/gun.ogg", _wav_bytes(_tone(1.0, 900, 44100), 44100, "OGG", "VORBIS"))
    descs = ['"Wind". Original "wind1.wav" by "Anton". License: CC-BY 3.0.',
             '"Heavy wind". Original "wind1.wav" by "Anton". Edited. License: CC-BY 3.0.',
             '"Bus". Original "file0375.mp3" by "saphix" and "horn.wav" by "mc". License: CC0.',
             '"Truck". Original "horn.wav" by "mc". License: CC0.',
             '"Beep". By Janis Lukss. License: CC-BY 3.0.',
             '"Unused/Nothing". Trivial empty sound file.',
             '"Cow". Original "Cow - Moan 2 - 96kHz.wav" by "Jarred". License: CC0.',
             '"Sheep". Original "Corner of a sheep field in summer" by David R Barnes. License: CC0.']
    wavs = [_wav_bytes(_tone(2.0 + i % 2, 300 + 40 * i, 22050, seed=10 + i), 22050) for i in range(len(descs))]
    wavs[5] = _wav_bytes(np.zeros(0, dtype=np.float32), 22050)
    cat = _catalogue(root / "opensfx.cat", list(zip(descs, wavs)))
    return {"ufoai-sound": [pk3], "openttd-opensfx": [cat]}


@pytest.fixture
def use_fake_packages(monkeypatch, fake_packages):
    monkeypatch.setattr(noise_sources, "package_files", lambda pkg: fake_packages[pkg])


@pytest.fixture(scope="module")
def speech_manifest(tmp_path_factory) -> Path:
    """12 'speakers' with 3 short utterances each (tones stand in for speech)."""
    root = tmp_path_factory.mktemp("speech")
    records = []
    for spk in range(12):
        for u in range(3):
            path = root / f"s{spk:02d}_{u}.flac"
            sf.write(str(path), _tone(1.0 + 0.2 * u, 150 + 30 * spk, seed=spk * 10 + u), SR)
            records.append({"id": f"s{spk:02d}_{u}", "audio": path.name, "duration": 1.0 + 0.2 * u,
                            "text": "a b", "speaker": f"spk{spk:02d}"})
    write_manifest(root / "train.jsonl", records)
    return root / "train.jsonl"


SMALL = dict(sox_seconds=1.0, segment_seconds=3.0, babble_clips=10, babble_seconds=2.0)


@pytest.fixture
def bank(tmp_path, use_fake_packages, speech_manifest) -> Path:
    build_noise_bank(tmp_path / "bank", speech_manifest, settings=BankSettings(**SMALL))
    return tmp_path / "bank"


# ----------------------------------------------------------------- readers


def test_opensfx_credit_parsing():
    assert opensfx_originals('"Wind". Original "wind1.wav" by "Anton". Edited by Janis.') == ("Wind", ["wind1.wav"])
    title, orig = opensfx_originals('"Toy factory". Original "ae_51_m.wav" by "Sedi", "vial-02.wav" by Jan aka '
                                    '"Vehicle" and "whoosh06.wav" by Richard. License: CC-BY.')
    assert title == "Toy factory" and orig == ["ae_51_m.wav", "vial-02.wav", "whoosh06.wav"]
    assert opensfx_originals('"Beep". By Janis Lukss. License: CC-BY 3.0.') == ("Beep", [])
    assert opensfx_originals('"Slurp". "Slurp!.wav" by "B" and "raw_drink5.ogg". Edited.')[1] == ["Slurp!.wav",
                                                                                                 "raw_drink5.ogg"]


def test_sound_catalogue_roundtrip_and_bad_file(tmp_path):
    wav = _wav_bytes(_tone(0.5, 440), SR)
    path = _catalogue(tmp_path / "a.cat", [('"A". By X.', wav), ('"B". By Y.', wav)])
    entries = read_sound_catalogue(path)
    assert [d for d, _ in entries] == ['"A". By X.', '"B". By Y.'] and entries[1][1] == wav
    (tmp_path / "bad.cat").write_bytes(b"\xff\xff\xff\x7f" + b"\0" * 8)
    with pytest.raises(ValueError, match="bad.cat"):
        read_sound_catalogue(tmp_path / "bad.cat")


def test_package_readers_group_and_resample(use_fake_packages):
    amb = noise_sources.ufoai_ambience(SR)
    assert [c.name.split("/")[-1] for c in amb][:2] == ["city_atm.ogg", "fire03.ogg"]
    assert {c.group for c in amb if "fire" in c.name} == {"ufoai-sound:fire"}  # a family shares a group
    assert all(c.wave.ndim == 1 and c.wave.dtype == np.float32 for c in amb)
    fire = next(c for c in amb if c.name.endswith("fire03.ogg"))
    assert abs(fire.wave.size / SR - 3.0) < 0.01  # 44.1 kHz -> 16 kHz keeps the duration
    fx = {c.info["title"]: c.group for c in noise_sources.opensfx_effects(SR)}
    assert "Unused/Nothing" not in fx
    assert fx["Wind"] == fx["Heavy wind"]  # same original recording
    assert fx["Bus"] == fx["Truck"]  # linked through "horn.wav"
    assert len({fx["Wind"], fx["Bus"], fx["Beep"], fx["Cow"], fx["Sheep"]}) == 5


def test_missing_package_is_named(monkeypatch, tmp_path):
    import shutil

    if shutil.which("dpkg"):
        with pytest.raises(MissingPackage, match="no-such-pkg-xyz is not installed.*apt-get install no-such-pkg-xyz"):
            noise_sources.package_files("no-such-pkg-xyz")

    def absent(pkg):
        raise MissingPackage(f"Debian package {pkg} is not installed")

    monkeypatch.setattr(noise_sources, "package_files", absent)
    summary = build_noise_bank(tmp_path / "b", settings=BankSettings(sox_seconds=1.0))
    assert any("ufoai-sound" in m for m in summary["missing"]) and any("openttd-opensfx" in m for m in summary["missing"])
    records = read_manifest(tmp_path / "b" / "noise.jsonl")
    assert {r["category"] for r in records} == {"white", "pink", "brown"}
    assert {r["split"] for r in records} == {"train", "dev", "test"}


# ----------------------------------------------------------------- segmenting and splitting


def test_cut_and_activity():
    wave = np.ones(25 * 100, dtype=np.float32)
    assert [(a, p.size) for a, p in cut(wave, 100, 10, 1)] == [(0, 1000), (1000, 1000), (2000, 500)]
    assert [p.size for _, p in cut(np.ones(2050), 100, 10, 1)] == [1000, 1050]  # 0.5 s tail joins
    assert cut(np.ones(50), 100, 10, 1) == []
    half = np.concatenate([np.ones(1000), np.zeros(1000)])
    assert activity(half, 1000) == pytest.approx(0.5) and activity(np.zeros(500), 1000) == 0.0


def test_assign_splits_shares_and_edge_cases():
    durations = {f"g{i}": 10.0 for i in range(20)}
    a = assign_splits(durations, {"test": 0.2, "dev": 0.1, "train": 1.0}, seed=0, salt="x")
    assert a == assign_splits(durations, {"test": 0.2, "dev": 0.1, "train": 1.0}, seed=0, salt="x")
    assert [list(a.values()).count(s) for s in ("test", "dev", "train")] == [4, 2, 14]
    assert a != assign_splits(durations, {"test": 0.2, "dev": 0.1, "train": 1.0}, seed=1, salt="x")
    fr = {"test": 0.2, "dev": 0.1, "train": 1.0}
    assert set(assign_splits({"a": 1.0}, fr, 0, "x").values()) == {"train"}
    assert sorted(assign_splits({"a": 1.0, "b": 1.0}, fr, 0, "x").values()) == ["test", "train"]
    assert sorted(assign_splits({"a": 1.0, "b": 1.0, "c": 9.0}, fr, 0, "x").values()) == ["dev", "test", "train"]


def test_partition_speakers_disjoint():
    groups = partition_speakers([f"s{i}" for i in range(10)] * 2, {"test": 0.2, "dev": 0.1, "train": 1.0}, seed=3)
    assert [len(groups[k]) for k in ("test", "dev", "train")] == [2, 1, 7]
    assert not set(groups["test"]) & set(groups["train"]) and not set(groups["dev"]) & set(groups["train"])
    assert sorted(sum(groups.values(), [])) == sorted(f"s{i}" for i in range(10))
    three = partition_speakers([f"s{i}" for i in range(10)], {"test": 0.2, "dev": 0.1, "train": 1.0}, 3, minimum=3)
    assert [len(three[k]) for k in ("test", "dev", "train")] == [3, 3, 4]
    few = partition_speakers([f"s{i}" for i in range(7)], {"test": 0.2, "dev": 0.1, "train": 1.0}, 3, minimum=3)
    assert [len(few[k]) for k in ("test", "dev", "train")] == [3, 0, 4]  # dev cannot get 3: train keeps 3+


# ----------------------------------------------------------------- the bank


def test_bank_splits_are_disjoint_by_source(bank):
    records = read_manifest(bank / "noise.jsonl")
    assert {r["split"] for r in records} == {"train", "dev", "test"}
    assert {r["category"] for r in records} == {"white", "pink", "brown", "ambience", "effects", "babble"}
    for key in ("source", "file"):
        splits: dict[str, set] = {}
        for r in records:
            if key in r:
                splits.setdefault(r[key], set()).add(r["split"])
        assert all(len(s) == 1 for s in splits.values()), f"a {key} is in two splits"
    fire = {r["split"] for r in records if r["source"] == "ufoai-sound:fire"}
    assert len(fire) == 1  # fire03 and fire04 are one family
    assert not any("steam" in r.get("file", "") for r in records)  # silent segments dropped
    for split in ("train", "dev", "test"):
        part = read_manifest(bank / f"noise_{split}.jsonl")
        assert part and all(r["split"] == split for r in part)
    assert all(r["duration"] <= 3.0 * 1.34 for r in records if r["category"] == "ambience")
    for r in records[:5]:
        info = sf.info(r["audio"])
        assert info.samplerate == SR and info.channels == 1 and abs(info.duration - r["duration"]) < 1e-3
    assert json.loads((bank / "bank.json").read_text())["segments"] == len(records)


def test_babble_speakers_are_disjoint(bank, speech_manifest):
    babble = [r for r in read_manifest(bank / "noise.jsonl") if r["category"] == "babble"]
    assert {r["split"] for r in babble} == {"train", "dev", "test"} and len(babble) == 10
    by_split: dict[str, set] = {}
    for r in babble:
        assert 3 <= r["talkers"] == len(set(r["speakers"])) <= 6
        by_split.setdefault(r["split"], set()).update(r["speakers"])
    assert not by_split["test"] & (by_split["train"] | by_split["dev"])
    assert not by_split["dev"] & by_split["train"]
    speaker_of = {r["id"]: r["speaker"] for r in read_manifest(speech_manifest)}
    for r in babble:
        assert {speaker_of[u] for u in r["utterances"]} == set(r["speakers"])


def test_babble_test_speakers_from_another_manifest(tmp_path, speech_manifest):
    records = read_manifest(speech_manifest)
    write_manifest(tmp_path / "a.jsonl", [r for r in records if r["speaker"] < "spk06"])
    write_manifest(tmp_path / "b.jsonl", [r for r in records if r["speaker"] >= "spk04"])  # overlaps a on 04, 05
    build_noise_bank(tmp_path / "bank", tmp_path / "a.jsonl", tmp_path / "b.jsonl",
                     BankSettings(sources=("babble",), babble_clips=6, babble_seconds=1.0, dev_fraction=0.0))
    babble = read_manifest(tmp_path / "bank" / "noise.jsonl")
    test = {s for r in babble if r["split"] == "test" for s in r["speakers"]}
    train = {s for r in babble if r["split"] == "train" for s in r["speakers"]}
    assert test and test <= {f"spk{i:02d}" for i in range(6, 12)} and train <= {f"spk{i:02d}" for i in range(6)}


def test_bank_is_deterministic_and_cached(tmp_path, use_fake_packages, speech_manifest):
    s = BankSettings(**SMALL)
    build_noise_bank(tmp_path / "a", speech_manifest, settings=s)
    build_noise_bank(tmp_path / "b", speech_manifest, settings=s)
    ma, mb = (tmp_path / "a" / "noise.jsonl").read_text(), (tmp_path / "b" / "noise.jsonl").read_text()
    assert ma == mb
    for line in ma.splitlines():
        rel = json.loads(line)["audio"]
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    stamp = (tmp_path / "a" / "noise.jsonl").stat().st_mtime_ns
    build_noise_bank(tmp_path / "a", speech_manifest, settings=s)  # same settings: not rebuilt
    assert (tmp_path / "a" / "noise.jsonl").stat().st_mtime_ns == stamp
    other = build_noise_bank(tmp_path / "a", speech_manifest, settings=BankSettings(**{**SMALL, "seed": 1}))
    assert (tmp_path / "a" / "noise.jsonl").read_text() != ma and other["key"]["settings"]["seed"] == 1


@pytest.mark.skipif(not Path("/usr/share/games/ufoai/base/0snd.pk3").is_file(), reason="ufoai-sound not installed")
def test_real_debian_packages_decode():
    amb = noise_sources.ufoai_ambience(SR, limit=2)
    fx = noise_sources.opensfx_effects(SR, limit=3)
    assert len(amb) == 2 and len(fx) == 3
    assert all(c.wave.size > SR // 10 and np.abs(c.wave).max() > 0.01 for c in amb + fx)
    assert fx[0].info["title"] == "Good Year" and amb[0].group == "ufoai-sound:alien-device"
