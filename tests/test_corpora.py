"""Corpus preparers on tiny fixtures written in the official layouts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_lottery.cli import main
from audio_lottery.data.audio import load_audio
from audio_lottery.data.corpora import PREPARERS, CorpusLayoutError, prepare_corpus, resolve_name
from audio_lottery.data.corpora.tedlium import clean_stm_text
from audio_lottery.data.manifest import read_manifest

SR = 16000


def _tone(seconds: float, freq: float = 440.0, sr: int = SR) -> np.ndarray:
    n = int(round(seconds * sr))
    rng = np.random.default_rng(n)
    wave = 0.3 * np.sin(2 * np.pi * freq * np.arange(n) / sr) + 0.01 * rng.standard_normal(n)
    return wave.astype(np.float32)


def _write(path: Path, seconds: float, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), _tone(seconds), SR, **kw)


def _corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio at all" * 20)


def _by_id(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_manifest(path)}


def _check(rec: dict, audio: Path, duration: float, text: str, speaker: str, offset: float = 0.0) -> None:
    assert rec["audio"] == str(audio.resolve())
    assert Path(rec["audio"]).is_absolute()
    assert rec["duration"] == pytest.approx(duration, abs=1e-3)
    assert rec["offset"] == pytest.approx(offset, abs=1e-3)
    assert rec["text"] == text
    assert rec["speaker"] == speaker


# ---------------------------------------------------------------- LibriSpeech


@pytest.fixture()
def librispeech(tmp_path: Path) -> Path:
    root = tmp_path / "download"
    chap = root / "LibriSpeech" / "test-clean" / "1089" / "134686"
    _write(chap / "1089-134686-0000.flac", 0.5)
    _write(chap / "1089-134686-0001.flac", 0.75)
    _corrupt(chap / "1089-134686-0002.flac")
    # 0003 has a transcript line but no audio
    _write(chap / "1089-134686-0004.flac", 0.25)  # transcript is punctuation only
    _write(chap / "1089-134686-0009.flac", 0.25)  # audio without a transcript line
    (chap / "1089-134686.trans.txt").write_text(
        "1089-134686-0000 HE HOPED THERE WOULD BE STEW FOR DINNER\n"
        "1089-134686-0001 DON'T STOP-GAP IT IN 1984\n"
        "1089-134686-0002 CORRUPT AUDIO\n"
        "1089-134686-0003 MISSING AUDIO\n"
        "1089-134686-0004 --\n"
    )
    chap2 = root / "LibriSpeech" / "test-clean" / "121" / "121726"
    _write(chap2 / "121-121726-0000.flac", 1.0)
    (chap2 / "121-121726.trans.txt").write_text("121-121726-0000 ALSO A POPULAR CONTRIVANCE\n")
    chap3 = root / "LibriSpeech" / "dev-clean" / "84" / "121123"
    _write(chap3 / "84-121123-0000.flac", 0.6)
    (chap3 / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n")
    return root


def test_librispeech(librispeech: Path, tmp_path: Path, caplog, capsys) -> None:
    out = tmp_path / "manifests"
    with caplog.at_level(logging.WARNING):
        report = prepare_corpus("librispeech", librispeech, out, progress=False)
    capsys.readouterr()  # the CLI writes the same manifests and prints the same report
    assert main(["-q", "data", "prepare", "librispeech", "--root", str(librispeech), "--out", str(tmp_path / "cli")]) == 0
    assert json.loads(capsys.readouterr().out) == report
    assert (tmp_path / "cli" / "test-clean.jsonl").read_text() == (out / "test-clean.jsonl").read_text()
    assert set(report) == {"test-clean", "dev-clean"}
    assert report["test-clean"] == {
        "written": 3,
        "skipped": 4,
        "reasons": {"empty_transcript": 1, "missing_audio": 1, "missing_transcript": 1, "unreadable_audio": 1},
    }
    assert report["dev-clean"] == {"written": 1, "skipped": 0, "reasons": {}}
    saved = json.loads((out / "prepare_report.json").read_text())
    assert saved["corpus"] == "librispeech" and saved["splits"] == report

    recs = _by_id(out / "test-clean.jsonl")
    assert list(recs) == ["1089-134686-0000", "1089-134686-0001", "121-121726-0000"]
    chap = librispeech / "LibriSpeech" / "test-clean" / "1089" / "134686"
    _check(recs["1089-134686-0000"], chap / "1089-134686-0000.flac", 0.5, "he hoped there would be stew for dinner", "1089")
    _check(recs["1089-134686-0001"], chap / "1089-134686-0001.flac", 0.75, "don't stop gap it in one nine eight four", "1089")
    assert recs["121-121726-0000"]["speaker"] == "121"
    assert recs["121-121726-0000"]["duration"] == pytest.approx(1.0, abs=1e-3)
    dev = _by_id(out / "dev-clean.jsonl")
    assert dev["84-121123-0000"]["text"] == "go do you hear"
    # the warnings name the bad files
    assert "1089-134686-0002.flac" in caplog.text and "1089-134686-0003.flac" in caplog.text
    assert "1089-134686.trans.txt:5" in caplog.text


def test_librispeech_root_is_the_corpus_folder(librispeech: Path) -> None:
    splits = PREPARERS["librispeech"](librispeech / "LibriSpeech", progress=False)
    assert sorted(splits) == ["dev-clean", "test-clean"]


# ---------------------------------------------------------------- TED-LIUM

STM = """;; comment line
AlGore_2009 1 AlGore_2009 0.00 1.00 <o,f0,male> ignore_time_segment_in_scoring
AlGore_2009 1 AlGore_2009 1.00 2.50 <o,f0,male> so it 's <unk> a {COUGH} great day
AlGore_2009 1 AlGore_2009 2.50 3.25 <o,f0,male> we do n't know (2) what they 've done
AlGore_2009 1 AlGore_2009 3.25 3.25 <o,f0,male> zero length
AlGore_2009 1 AlGore_2009 3.50 4.00 <o,f0,male> <unk> <unk>
AlGore_2009 1 AlGore_2009 4.00 6.00 <o,f0,male> beyond the end
AlGore_2009 1 AlGore_2009 4.00 4.98 <o,f0,male> the last bit
"""


@pytest.fixture()
def tedlium(tmp_path: Path) -> Path:
    root = tmp_path / "TEDLIUM_release2"
    split = root / "test"
    _write(split / "sph" / "AlGore_2009.sph", 5.0, format="NIST", subtype="PCM_16")
    (split / "stm").mkdir(parents=True)
    (split / "stm" / "AlGore_2009.stm").write_text(STM)
    (split / "stm" / "Missing_2010.stm").write_text(
        "Missing_2010 1 Missing_2010 0.00 1.00 <o,f0,female> first\n"
        "Missing_2010 1 Missing_2010 1.00 2.00 <o,f0,female> second\n"
    )
    _corrupt(split / "sph" / "Broken_2011.sph")
    (split / "stm" / "Broken_2011.stm").write_text("Broken_2011 1 Broken_2011 0.00 1.00 <o,f0,male> hello\n")
    return root


def test_clean_stm_text() -> None:
    assert clean_stm_text("it 's <unk> here {NOISE} (2) i 'm sure we 'll do n't") == "it's here i'm sure we'll don't"


def test_tedlium(tedlium: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "manifests"
    with caplog.at_level(logging.WARNING):
        report = prepare_corpus("TED-LIUM2", tedlium, out, progress=False)
    assert report == {
        "test": {
            "written": 3,
            "skipped": 7,
            "reasons": {
                "empty_transcript": 1,
                "ignored_segment": 1,
                "missing_audio": 2,
                "segment_beyond_audio": 1,
                "unreadable_audio": 1,
                "zero_duration": 1,
            },
        }
    }
    recs = _by_id(out / "test.jsonl")
    assert list(recs) == ["AlGore_2009-0000100-0000250", "AlGore_2009-0000250-0000325", "AlGore_2009-0000400-0000498"]
    sph = tedlium / "test" / "sph" / "AlGore_2009.sph"
    _check(recs["AlGore_2009-0000100-0000250"], sph, 1.5, "so it's a great day", "AlGore_2009", offset=1.0)
    _check(recs["AlGore_2009-0000250-0000325"], sph, 0.75, "we don't know what they've done", "AlGore_2009", offset=2.5)
    _check(recs["AlGore_2009-0000400-0000498"], sph, 0.98, "the last bit", "AlGore_2009", offset=4.0)
    assert "Broken_2011.sph" in caplog.text and "Missing_2010.sph" in caplog.text
    assert "ignore_time_segment_in_scoring" not in caplog.text  # ignored segments are normal, not warned

    seg = recs["AlGore_2009-0000100-0000250"]
    wave = load_audio(seg["audio"], SR, seg["offset"], seg["duration"])
    assert wave.shape == (24000,)
    full, _ = sf.read(str(sph), dtype="float32")
    np.testing.assert_allclose(wave, full[16000:40000], atol=1e-6)


def test_tedlium3_prefers_legacy_layout(tmp_path: Path) -> None:
    root = tmp_path / "TEDLIUM_release-3"
    for split in ("dev", "test"):
        d = root / "legacy" / split
        _write(d / "sph" / "Talk_1.sph", 2.0, format="NIST", subtype="PCM_16")
        (d / "stm").mkdir(parents=True)
        (d / "stm" / "Talk_1.stm").write_text("Talk_1 1 Speaker_A 0.5 1.5 <o,f0,female> hello there\n")
    # TED-LIUM 3 also ships data/ (all training talks) and speaker-adaptation/: ignored when legacy/ exists
    (root / "data" / "stm").mkdir(parents=True)
    (root / "data" / "stm" / "Other.stm").write_text("Other 1 Other 0 1 <o,f0,male> x\n")
    splits = PREPARERS["tedlium"](tmp_path, progress=False)
    assert sorted(splits) == ["dev", "test"]
    rec = splits["dev"].records[0]
    assert rec["speaker"] == "Speaker_A" and rec["text"] == "hello there"
    assert rec["offset"] == pytest.approx(0.5) and rec["duration"] == pytest.approx(1.0)
    assert "/legacy/dev/sph/" in rec["audio"]


# ---------------------------------------------------------------- Common Voice

HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"


def _row(client: str, clip: str, sentence: str, accent: str = "") -> str:
    return f"{client}\t{clip}\t{sentence}\t2\t0\ttwenties\t\t{accent}\ten\t\n"


@pytest.fixture()
def commonvoice(tmp_path: Path) -> Path:
    base = tmp_path / "cv-corpus-15.0-2023-09-08" / "en"
    clips = base / "clips"
    _write(clips / "common_voice_en_1.mp3", 0.9, format="MP3")
    _write(clips / "common_voice_en_2.mp3", 1.3, format="MP3")
    _write(clips / "common_voice_en_3.mp3", 0.5, format="MP3")
    _corrupt(clips / "common_voice_en_4.mp3")
    _write(clips / "common_voice_en_6.mp3", 0.5, format="MP3")
    (base / "train.tsv").write_text(
        HEADER
        + _row("abc123", "common_voice_en_1.mp3", '"Hello," she said -- it\'s café time!', "England English")
        + _row("def456", "common_voice_en_2.mp3", "Room 101 is on the left.")
        + _row("def456", "common_voice_en_4.mp3", "A corrupt clip.")
        + _row("abc123", "common_voice_en_5.mp3", "A missing clip.")
        + _row("abc123", "common_voice_en_6.mp3", "?!")
    )
    (base / "dev.tsv").write_text(HEADER + _row("ghi789", "common_voice_en_3.mp3", "Short one."))
    (base / "test.tsv").write_text(HEADER)
    (base / "validated.tsv").write_text(HEADER + _row("zzz", "common_voice_en_1.mp3", "not a split"))
    return tmp_path


def test_commonvoice(commonvoice: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "manifests"
    with caplog.at_level(logging.WARNING):
        report = prepare_corpus("common_voice", commonvoice, out, progress=False)
    assert report == {
        "train": {
            "written": 2,
            "skipped": 3,
            "reasons": {"empty_transcript": 1, "missing_audio": 1, "unreadable_audio": 1},
        },
        "dev": {"written": 1, "skipped": 0, "reasons": {}},
        "test": {"written": 0, "skipped": 0, "reasons": {}},
    }
    assert (out / "test.jsonl").read_text() == ""
    assert not (out / "validated.jsonl").exists()
    clips = commonvoice / "cv-corpus-15.0-2023-09-08" / "en" / "clips"
    recs = _by_id(out / "train.jsonl")
    assert list(recs) == ["common_voice_en_1", "common_voice_en_2"]
    _check(recs["common_voice_en_1"], clips / "common_voice_en_1.mp3", 0.9, "hello she said it's cafe time", "abc123")
    _check(recs["common_voice_en_2"], clips / "common_voice_en_2.mp3", 1.3, "room one zero one is on the left", "def456")
    assert recs["common_voice_en_1"]["accents"] == "England English"
    dev = _by_id(out / "dev.jsonl")
    _check(dev["common_voice_en_3"], clips / "common_voice_en_3.mp3", 0.5, "short one", "ghi789")
    assert "common_voice_en_4.mp3" in caplog.text and "common_voice_en_5.mp3" in caplog.text
    assert "train.tsv:6" in caplog.text  # the empty sentence, named by file and line


def test_commonvoice_missing_column(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "train.tsv").write_text("client_id\tfile\tsentence\n")
    with pytest.raises(CorpusLayoutError, match=r"train\.tsv.*path"):
        prepare_corpus("commonvoice", tmp_path, tmp_path / "out", progress=False)


# ---------------------------------------------------------------- registry


def test_unknown_corpus_lists_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="commonvoice, librispeech, tedlium"):
        prepare_corpus("timit", tmp_path, tmp_path / "out", progress=False)


def test_aliases() -> None:
    assert resolve_name("LibriSpeech") == "librispeech"
    assert resolve_name("tedlium3") == "tedlium"
    assert resolve_name("Common-Voice") == "commonvoice"


@pytest.mark.parametrize("name", sorted(PREPARERS))
def test_wrong_layout_is_a_clear_error(name: str, tmp_path: Path) -> None:
    (tmp_path / "something").mkdir()
    with pytest.raises(CorpusLayoutError, match=str(tmp_path)):
        prepare_corpus(name, tmp_path, tmp_path / "out", progress=False)
