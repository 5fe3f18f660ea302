"""Shared data modules: text normalisation, JSONL manifests, audio loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_lottery.data.audio import AudioError, audio_info, load_audio
from audio_lottery.data.manifest import ManifestError, read_manifest, write_manifest
from audio_lottery.data.text import ALPHABET, normalize_text, out_of_vocabulary

# ---------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("  Multiple   spaces\tand\nnewlines ", "multiple spaces and newlines"),
        ("Café naïve RÉSUMÉ Ångström", "cafe naive resume angstrom"),
        ("Room 101", "room one zero one"),
        ("4x4", "four x four"),
        ("don't", "don't"),
        ("Don\u2019t", "don't"),
        ("`tis", "tis"),
        ("'quoted' words'", "quoted words"),
        ("the dogs' bowls", "the dogs bowls"),
        ("well-known state-of-the-art", "well known state of the art"),
        ("semi;colon: dash\u2014em (paren) [brack] \"dq\"", "semi colon dash em paren brack dq"),
        ("?!...", ""),
        ("", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_text_drops_digits_when_not_spelled() -> None:
    assert normalize_text("Room 101 ok", spell_digits=False) == "room ok"


def test_normalized_text_is_in_vocabulary() -> None:
    text = normalize_text("Ünïcode — ½ ß ø 日本 O'Brien's 3rd")
    assert not out_of_vocabulary(text)
    assert set(text) <= set(ALPHABET)
    assert out_of_vocabulary("ab!C") == {"!", "C"}


# ---------------------------------------------------------------- manifest


def _rec(**kw) -> dict:
    return {"id": "u1", "audio": "a.wav", "duration": 1.5, "text": "hello", "speaker": "s1", **kw}


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_manifest_round_trip_and_defaults(tmp_path: Path) -> None:
    rows = [_rec(), {"audio": "/abs/b.wav", "duration": 2, "text": "x", "speaker": 7, "offset": 1.25, "engine": "e"}]
    assert write_manifest(tmp_path / "m.jsonl", rows) == 2
    recs = read_manifest(tmp_path / "m.jsonl")
    assert recs[0]["offset"] == 0.0 and recs[0]["id"] == "u1"
    assert recs[1]["id"] == "b@1.25" and recs[1]["speaker"] == "7" and recs[1]["engine"] == "e"
    assert recs[1]["duration"] == 2.0 and recs[1]["audio"] == "/abs/b.wav"


def test_manifest_resolves_relative_paths(tmp_path: Path) -> None:
    sub = tmp_path / "data" / "manifests"
    sub.mkdir(parents=True)
    write_manifest(sub / "m.jsonl", [_rec(audio="../wavs/a.wav"), _rec(id="u2", audio="/elsewhere/b.wav")])
    recs = read_manifest(sub / "m.jsonl")
    assert recs[0]["audio"] == str((tmp_path / "data" / "wavs" / "a.wav").resolve())
    assert recs[1]["audio"] == "/elsewhere/b.wav"
    assert read_manifest(sub / "m.jsonl", resolve_audio=False)[0]["audio"] == "../wavs/a.wav"


def test_manifest_skips_blank_lines(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "m.jsonl", [json.dumps(_rec()), "", "   ", json.dumps(_rec(id="u2"))])
    assert [r["id"] for r in read_manifest(path)] == ["u1", "u2"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"audio": "a.wav", "text": "x", "speaker": "s"}), "missing field.*duration"),
        (json.dumps(_rec(id="u2", duration=-1.0)), "duration must be a positive"),
        (json.dumps(_rec(id="u2", duration=0)), "duration must be a positive"),
        (json.dumps(_rec(id="u2", duration="long")), "must be numbers"),
        (json.dumps(_rec(id="u2", offset=-0.5)), "offset must be a non-negative"),
        (json.dumps(_rec(id="u2", text=5)), "text must be a string"),
        (json.dumps(_rec()), "duplicate utterance id 'u1'"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps(_rec()), "", bad])
    with pytest.raises(ManifestError, match=rf"bad\.jsonl:3: .*{message}"):
        read_manifest(path)


def test_manifest_not_found(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nope.jsonl: manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- audio


def _sine(freq: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("sr", [8000, 44100, 16000])
def test_load_audio_resamples(tmp_path: Path, sr: int) -> None:
    path = tmp_path / f"sine_{sr}.wav"
    sf.write(str(path), _sine(1000.0, sr, 1.5), sr, subtype="PCM_16")
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 24000) <= 1
    assert _peak_hz(wave, 16000) == pytest.approx(1000.0, abs=2.0)
    assert 0.45 < np.abs(wave[1000:-1000]).max() < 0.55


def test_load_audio_stereo_to_mono(tmp_path: Path) -> None:
    left = np.full(1600, 0.5, dtype=np.float32)
    right = np.full(1600, -0.1, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wave = load_audio(path)
    assert wave.shape == (1600,)
    np.testing.assert_allclose(wave, 0.2, atol=1e-6)


def test_load_audio_segment(tmp_path: Path) -> None:
    ramp = (np.arange(32000) / 32000).astype(np.float32)
    path = tmp_path / "ramp.flac"
    sf.write(str(path), ramp, 16000, subtype="PCM_24")
    seg = load_audio(path, 16000, offset=0.5, duration=0.25)
    assert seg.shape == (4000,)
    np.testing.assert_allclose(seg, ramp[8000:12000], atol=1e-5)
    assert load_audio(path, 16000, offset=1.5).shape == (8000,)
    assert load_audio(path, 8000, offset=0.5, duration=0.25).shape == (2000,)


def test_load_audio_segment_errors(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(str(path), _sine(440.0, 16000, 0.5), 16000)
    with pytest.raises(AudioError, match="short.wav.*no samples"):
        load_audio(path, offset=2.0)
    with pytest.raises(AudioError, match="short.wav.*invalid segment"):
        load_audio(path, offset=-1.0)


def test_load_audio_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.flac"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(AudioError, match="corrupt.flac"):
        load_audio(path)
    with pytest.raises(AudioError, match="corrupt.flac"):
        audio_info(path)
    with pytest.raises(AudioError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")


def test_load_audio_rejects_nan(tmp_path: Path) -> None:
    wave = _sine(440.0, 16000, 0.1)
    wave[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        load_audio(path)


def test_audio_info(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(str(path), _sine(440.0, 22050, 0.5), 22050)
    duration, sr = audio_info(path)
    assert sr == 22050 and duration == pytest.approx(0.5, abs=1e-4)
