"""The Asterisk prompts preparer on a tiny fixture in the Debian packages' layout, and whisper-en scoring."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from audio_lottery.data.corpora import CorpusLayoutError, prepare_corpus
from audio_lottery.data.corpora.asterisk import SOUNDS, TRANSCRIPTS, spoken_form, split_of
from audio_lottery.data.manifest import read_manifest
from audio_lottery.eval.normalize import references, score_records, score_texts

SR = 16000
TRANSCRIPT_LINES = """; Core Asterisk Sounds in English

hello-world: Hello world.
digits/1: one
letters/at: at [@]
beep: [this is a simple beep tone]
silence/1: (1 second of silence)
slow: a
fast: This is far too much text for a third of a second of audio.
no-audio: There is no file for this prompt.
empty: Nothing was recorded.
dictate/both_help: press * to toggle pause, press # to enter a new dictation filename
goodbye: Goodbye.
vm-goodbye: Goodbye!
spy-iax2: IAX (note: does not say "2")
"""
# prompt -> seconds of audio (orphan has no transcript line, empty is a 0-byte file, no-audio has none)
AUDIO = {"hello-world": 1.0, "digits/1": 0.5, "letters/at": 0.4, "beep": 0.3, "silence/1": 1.0, "slow": 2.0,
         "fast": 0.33, "dictate/both_help": 3.0, "goodbye": 0.6, "vm-goodbye": 0.7, "spy-iax2": 0.5,
         "orphan": 0.5}


def encode_g722(seconds: float, freq: float = 440.0) -> bytes:
    """A tone as a raw G.722 file (PyAV)."""
    t = np.arange(int(round(seconds * SR))) / SR
    samples = (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="g722") as out:
        stream = out.add_stream("g722", rate=SR, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SR
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture()
def asterisk(tmp_path: Path) -> Path:
    root = tmp_path / "debian"
    (root / TRANSCRIPTS).parent.mkdir(parents=True)
    with gzip.open(root / TRANSCRIPTS, "wt", encoding="utf-8") as fh:
        fh.write(TRANSCRIPT_LINES)
    for name, seconds in AUDIO.items():
        path = root / SOUNDS / f"{name}.g722"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_g722(seconds))
    (root / SOUNDS / "empty.g722").write_bytes(b"")
    return root


def test_prepare(asterisk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = prepare_corpus("asterisk", asterisk, out, progress=False)
    assert set(report) == {"adapt", "dev", "test"}
    saved = json.loads((out / "prepare_report.json").read_text())
    assert saved["splits"] == report
    dropped = {d["id"]: d for items in saved["skipped_items"].values() for d in items}
    assert {k: d["reason"] for k, d in dropped.items()} == {
        "beep": "no_spoken_words", "silence.1": "no_spoken_words", "slow": "speaking_rate",
        "fast": "speaking_rate", "no-audio": "missing_audio", "empty": "zero_duration",
        "orphan": "missing_transcript",
    }
    assert "0.5 chars/s" in dropped["slow"]["detail"] and "outside 4-25" in dropped["fast"]["detail"]
    assert sum(r["skipped"] for r in report.values()) == 7
    assert Counter(d["reason"] for d in dropped.values()) == sum(
        (Counter(r["reasons"]) for r in report.values()), Counter())

    recs = {r["id"]: r for split in report for r in read_manifest(out / f"{split}.jsonl")}
    assert set(recs) == {"hello-world", "digits.1", "letters.at", "dictate.both_help", "goodbye", "vm-goodbye",
                         "spy-iax2"}
    hello = recs["hello-world"]
    assert hello["raw_text"] == "Hello world." and hello["text"] == "hello world" and "source_text" not in hello
    assert hello["speaker"] == "allison" and hello["corpus"] == "asterisk"
    assert hello["duration"] == pytest.approx(1.0, abs=1e-3)
    assert hello["audio"] == str((out / "wav" / "hello-world.wav").resolve())
    wave, sr = sf.read(hello["audio"])
    assert sr == SR and len(wave) == SR and np.abs(wave).max() > 0.2
    assert recs["digits.1"]["audio"].endswith("wav/digits/1.wav") and recs["digits.1"]["prompt"] == "digits/1"
    assert (recs["letters.at"]["raw_text"], recs["letters.at"]["source_text"]) == ("at", "at [@]")
    assert recs["spy-iax2"]["raw_text"] == "IAX" and recs["spy-iax2"]["text"] == "iax"
    assert recs["dictate.both_help"]["text"] == (
        "press star to toggle pause press pound to enter a new dictation filename")

    # each record in the split its normalised transcript hashes to: no transcript in two splits
    for split in report:
        for r in read_manifest(out / f"{split}.jsonl"):
            assert split_of(r["text"]) == split
    assert split_of("goodbye") in report and recs["goodbye"]["text"] == recs["vm-goodbye"]["text"]

    info = json.loads((out / "corpus.json").read_text())
    assert info["license"] == "CC-BY-SA-3.0" and "Allison Smith" in info["attribution"]
    assert "Digium" in info["attribution"] and info["speaker"]["id"] == "allison"
    hours = sum(r["duration"] for r in recs.values()) / 3600
    assert sum(info["hours"].values()) == pytest.approx(hours, abs=2e-4)


def test_prepare_is_deterministic(asterisk: Path, tmp_path: Path) -> None:
    prepare_corpus("asterisk", asterisk, tmp_path / "a", progress=False)
    prepare_corpus("asterisk", asterisk, tmp_path / "b", progress=False)
    for split in ("adapt", "dev", "test"):
        a = [{**r, "audio": Path(r["audio"]).name} for r in read_manifest(tmp_path / "a" / f"{split}.jsonl")]
        b = [{**r, "audio": Path(r["audio"]).name} for r in read_manifest(tmp_path / "b" / f"{split}.jsonl")]
        assert a == b


def test_split_shares() -> None:
    counts = Counter(split_of(f"transcript number {i}") for i in range(3000))
    assert counts["adapt"] / 3000 == pytest.approx(0.6, abs=0.03)
    assert counts["dev"] / 3000 == pytest.approx(0.2, abs=0.03)
    assert counts["test"] / 3000 == pytest.approx(0.2, abs=0.03)
    assert split_of("hello world") == split_of("hello world")


def test_spoken_form() -> None:
    assert spoken_form("dot [.]") == "dot"
    assert spoken_form("<beep ascending>") == ""
    assert spoken_form("When done hang up. (simple tone sound plays)") == "When done hang up."
    assert spoken_form("press * or #") == "press star or pound"


def test_missing_packages_name_them(asterisk: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusLayoutError, match=r"asterisk-core-sounds-en .*make setup"):
        prepare_corpus("asterisk", _empty(tmp_path / "nothing"), tmp_path / "x", progress=False)
    (asterisk / TRANSCRIPTS).unlink()
    with pytest.raises(CorpusLayoutError, match=r"core-sounds-en\.txt\.gz.*asterisk-core-sounds-en "):
        prepare_corpus("asterisk", asterisk, tmp_path / "x", progress=False)
    _empty(asterisk / TRANSCRIPTS.parent)
    (asterisk / TRANSCRIPTS).write_text("not gzip")
    with pytest.raises(CorpusLayoutError, match=r"core-sounds-en\.txt\.gz: unreadable"):
        prepare_corpus("asterisk", asterisk, tmp_path / "x", progress=False)
    for path in (asterisk / SOUNDS).rglob("*.g722"):
        path.unlink()
    with pytest.raises(CorpusLayoutError, match=r"en_US_f_Allison.*asterisk-core-sounds-en-g722.*make setup"):
        prepare_corpus("asterisk", asterisk, tmp_path / "x", progress=False)


def _empty(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_malformed_transcript_line(asterisk: Path, tmp_path: Path) -> None:
    with gzip.open(asterisk / TRANSCRIPTS, "wt") as fh:
        fh.write("hello-world: Hello world.\nthis line has no colon\n")
    with pytest.raises(CorpusLayoutError, match=r"core-sounds-en\.txt\.gz:2: expected 'name: transcript'"):
        prepare_corpus("asterisk", asterisk, tmp_path / "x", progress=False)


# ---------------------------------------------------------------- scoring


def test_whisper_normalizer_scores_spoken_forms_equal() -> None:
    refs, hyps = ["Mr. Smith paid $20"], ["mister smith paid twenty dollars"]
    assert score_texts(refs, hyps, "whisper-en")["wer"] == 0.0
    assert score_texts(refs, hyps, "whisper-en")["normalizer"] == "whisper-en"
    plain = score_texts(refs, hyps)
    assert plain["wer"] == pytest.approx(4 / 4) and "normalizer" not in plain
    one_error = score_texts(["Press 1 to mute."], ["press two to mute"], "whisper-en")
    assert (one_error["word_errors"], one_error["ref_words"]) == (1, 4)
    with pytest.raises(ValueError, match="unknown text normaliser 'nope'"):
        score_texts(refs, hyps, "nope")


def test_references_pick_raw_text() -> None:
    plain = [{"id": "a", "text": "hello"}, {"id": "b", "text": "world"}]
    assert references(plain) == (["hello", "world"], None)
    raw = [{**r, "raw_text": r["text"].title() + "!"} for r in plain]
    assert references(raw) == (["Hello!", "World!"], "whisper-en")
    assert score_records(raw, ["hello", "word"])["wer"] == 0.5
    assert score_records(plain, ["hello", "world"]) == score_texts(["hello", "world"], ["hello", "world"])
    with pytest.raises(ValueError, match=r"\(a\): no raw_text, while 1 of 2"):
        references([plain[0], raw[1]])


def test_cased_hypotheses_are_normalised_against_plain_text() -> None:
    """A cased recogniser (Whisper) on a corpus without raw_text: case and punctuation are not errors,
    a wrong word still is; an uncased recogniser's hypotheses are compared as given."""
    plain = [{"id": "a", "text": "hello world"}, {"id": "b", "text": "press two"}]
    assert references(plain, cased=True) == (["hello world", "press two"], "whisper-en")
    cased = score_records(plain, ["Hello, world.", "Press 3."], cased=True)
    assert (cased["word_errors"], cased["ref_words"]) == (1, 4)
    assert score_records(plain, ["Hello, world.", "press two"])["word_errors"] == 2


def test_evaluate_scores_raw_text_with_whisper_normalizer(asterisk: Path, tmp_path: Path) -> None:
    from audio_lottery.eval.evaluate import evaluate

    out = tmp_path / "out"
    report = prepare_corpus("asterisk", asterisk, out, progress=False)
    recs = {r["id"]: r for split in report for r in read_manifest(out / f"{split}.jsonl")}
    records = [recs["hello-world"], recs["letters.at"]]
    spoken = {SR: "hello world", len(sf.read(records[1]["audio"])[0]): "at"}

    class FakeRecognizer:  # the interface evaluate() uses: cfg sample rate, model.eval(), transcribe(), cased
        cfg = SimpleNamespace(data=SimpleNamespace(features=SimpleNamespace(sample_rate=SR)))
        model = torch.nn.Identity()
        tokenizer = SimpleNamespace(cased=False)

        def transcribe(self, waves: list, decoder=None) -> list[str]:
            return [spoken[len(w)] for w in waves]

    scores = evaluate(FakeRecognizer(), records)
    assert (scores["wer"], scores["normalizer"], scores["ref_words"]) == (0.0, "whisper-en", 3)
    assert scores["hyps"] == {"hello-world": "hello world", "letters.at": "at"}
    plain = evaluate(FakeRecognizer(), [{k: v for k, v in r.items() if k != "raw_text"} for r in records])
    assert plain["wer"] == 0.0 and "normalizer" not in plain
    spoken[SR] = "hello word"
    assert evaluate(FakeRecognizer(), records)["word_errors"] == 1


def test_audio_problem_drops_and_removes_wav(asterisk: Path, tmp_path: Path, monkeypatch) -> None:
    from audio_lottery.data.corpora import asterisk as module

    real = module.decode_g722
    monkeypatch.setattr(module, "decode_g722", lambda path, utt_id=None: real(path, utt_id) * 0
                        if utt_id == "hello-world" else real(path, utt_id))
    out = tmp_path / "out"
    prepare_corpus("asterisk", asterisk, out, progress=False)
    dropped = {d["id"]: d for items in json.loads((out / "prepare_report.json").read_text())["skipped_items"].values()
               for d in items}
    assert dropped["hello-world"]["reason"] == "silent_audio" and "peak amplitude" in dropped["hello-world"]["detail"]
    assert not (out / "wav" / "hello-world.wav").exists() and (out / "wav" / "goodbye.wav").is_file()
