"""Embedded corpus synthesis on a tiny corpus (seconds) and the sentence sources."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_lottery.cli import main
from audio_lottery.data.corpora import sentences as sentences_mod
from audio_lottery.data.corpora import synth as synth_mod
from audio_lottery.data.manifest import read_manifest
from audio_lottery.data.corpora.sentences import (
    Sentence,
    SentenceSourceError,
    load_sentence_records,
    load_sentences,
    speakable,
    split_sentences,
)
from audio_lottery.data.corpora.synth import (
    MAX_CHARS_PER_SECOND,
    SPLITS,
    Job,
    Speaker,
    available_voices,
    postprocess,
    synth_job,
    synthesize_corpus,
)
from audio_lottery.data.corpora.voices import voice_sex
from audio_lottery.data.text import out_of_vocabulary

# `make test` installs the TTS engines (Makefile .stamp-apt); a missing engine must fail loudly, not skip.
HOURS = 0.01
# a corpus of seconds cannot draw every speaker kind into training (the planned inventory has them all)
pytestmark = pytest.mark.filterwarnings("ignore:.*speaker kinds .* are in test but no training utterance:UserWarning")


def _sha(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict, dict[str, list[dict]]]:
    out = tmp_path_factory.mktemp("corpus")
    summary = synthesize_corpus(out, hours=HOURS, seed=0, workers=2, progress=False)
    return out, summary, {s: read_manifest(out / f"{s}.jsonl") for s in SPLITS}


def test_layout_and_summary(corpus):
    out, summary, manifests = corpus
    assert (out / "corpus.json").is_file()
    assert json.loads((out / "corpus.json").read_text())["splits"] == json.loads(json.dumps(summary["splits"]))
    for split, recs in manifests.items():
        assert recs, split
        assert summary["splits"][split]["utterances"] == len(recs)
        for rec in recs:
            assert rec["split"] == split and rec["offset"] == 0
            assert rec["audio"].startswith(str((out / "audio" / split).resolve()))
    train_s = sum(r["duration"] for r in manifests["train"])
    assert train_s >= HOURS * 3600


def test_audio_matches_manifest(corpus):
    _, _, manifests = corpus
    for recs in manifests.values():
        for rec in recs:
            info = sf.info(rec["audio"])
            assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
            assert info.frames / info.samplerate == pytest.approx(rec["duration"], abs=1e-3)


def test_text_vocabulary_and_rate(corpus):
    _, _, manifests = corpus
    for recs in manifests.values():
        for rec in recs:
            assert rec["text"] and not out_of_vocabulary(rec["text"])
            assert len(rec["text"]) / rec["duration"] <= MAX_CHARS_PER_SECOND


def test_splits_disjoint_and_voices(corpus):
    _, summary, manifests = corpus
    texts = {s: {r["text"] for r in recs} for s, recs in manifests.items()}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"] and not texts["dev"] & texts["test"]
    voices = {s: {(r["engine"], r["voice"]) for r in recs} for s, recs in manifests.items()}
    held_out = {(e, v) for e, v in summary["held_out_voices"].items()}
    multi_voice = {e for e, vs in available_voices().items() if len(vs) > 1}
    assert multi_voice == {"espeak", "flite", "festival"}
    assert {e for e, _ in held_out} == multi_voice, "one held-out voice per engine"
    assert not held_out & (voices["train"] | voices["dev"])
    assert all(r["seen_voice"] for s in ("train", "dev") for r in manifests[s])
    unseen = {(r["engine"], r["voice"]) for r in manifests["test"] if not r["seen_voice"]}
    assert unseen <= held_out and unseen, "test must contain held-out voices"
    assert any(r["seen_voice"] for r in manifests["test"]), "test must also contain seen voices"
    engines = set(available_voices())
    assert {e for e, _ in voices["train"]} == engines
    assert {e for s in SPLITS for e, _ in voices[s]} == engines


def test_records_and_coverage(corpus):
    """Each record carries engine, voice, sex and kind; corpus.json's coverage adds up to the manifests."""
    out, summary, manifests = corpus
    assert summary["version"] == synth_mod.VERSION == summary["settings"]["version"] == 2
    cov = json.loads((out / "corpus.json").read_text())["coverage"]
    assert cov["held_out_voices"] == summary["held_out_voices"]
    for split, recs in manifests.items():
        for rec in recs:
            assert rec["kind"] == f"{rec['engine']}-{rec['sex']}" and rec["sex"] in ("male", "female", "child")
            if rec["engine"] == "espeak":
                assert rec["sex"] == voice_sex("espeak", rec["voice"], rec["variant"])
        table = cov["splits"][split]
        for field in ("engine", "voice", "kind"):
            assert sum(c["utterances"] for c in table[field].values()) == len(recs), (split, field)
            assert sum(c["seconds"] for c in table[field].values()) == pytest.approx(sum(r["duration"] for r in recs), abs=0.01)
        assert set(table["kind"]) == {r["kind"] for r in recs}
        assert set(table["voice"]) == {f"{r['engine']}/{r['voice']}" for r in recs}
    # the held-out voices' kinds are all among the training speakers' kinds (the planned inventory)
    voices = available_voices()
    speakers = synth_mod.build_speakers(0, voices, tuple(summary["settings"]["espeak_variants"]))
    train_kinds = {s.kind for s in speakers if summary["held_out_voices"].get(s.engine) != s.voice}
    assert {s.kind for s in speakers} == train_kinds
    assert {r["kind"] for r in manifests["test"] if not r["seen_voice"]} <= train_kinds


def test_rerun_reuses_the_finished_corpus(corpus, monkeypatch, capsys):
    """`audio-lottery data synth` over a finished corpus returns its summary without synthesising."""
    out, summary, _ = corpus
    stamps = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()}

    def no_synthesis(*args, **kwargs):
        raise AssertionError("a finished corpus was synthesised again")

    monkeypatch.setattr(synth_mod, "load_sentence_records", no_synthesis)
    capsys.readouterr()
    assert main(["-q", "data", "synth", "--out", str(out), "--hours", str(HOURS), "--seed", "0"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again == json.loads((out / "corpus.json").read_text())
    assert again["splits"] == json.loads(json.dumps(summary["splits"]))
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()} == stamps


def test_deterministic_and_resumable(corpus, tmp_path):
    out, _, manifests = corpus
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    # simulate a killed run: no manifests yet, the test audio and one train file missing
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "corpus.json"):
        (copy / name).unlink()
    shutil.rmtree(copy / "audio" / "test")
    (copy / "audio" / "train" / Path(manifests["train"][0]["audio"]).name).unlink()
    (copy / "audio" / "train" / "stale.flac").write_bytes(b"not referenced")
    synthesize_corpus(copy, hours=HOURS, seed=0, workers=1, progress=False)
    for split in SPLITS:
        a = (out / f"{split}.jsonl").read_text()
        b = (copy / f"{split}.jsonl").read_text()
        assert a == b, split
        again = read_manifest(copy / f"{split}.jsonl")
        assert [_sha(r["audio"]) for r in again] == [_sha(r["audio"]) for r in manifests[split]]
    assert not (copy / "audio" / "train" / "stale.flac").exists()


def test_pitch_variants_add_training_speakers_only(corpus, tmp_path):
    """With ``train_pitch_variants`` the dev and test splits are the plain corpus's (same ids, same files) and
    the training split draws from the plain speakers and the pitch variants only."""
    out, summary, manifests = corpus
    copy = tmp_path / "pitched"
    shutil.copytree(out, copy)  # its finished audio is reused; the plain corpus.json no longer matches
    pitched = synthesize_corpus(copy, hours=HOURS, seed=0, workers=2, progress=False, train_pitch_variants=True)
    assert pitched["settings"]["train_pitch_variants"]["per_voice"] == synth_mod.PITCH_VARIANTS
    assert "train_pitch_variants" not in summary["settings"]
    for split in ("dev", "test"):
        assert (copy / f"{split}.jsonl").read_text() == (out / f"{split}.jsonl").read_text(), split
    voices = {k: tuple(v) for k, v in summary["settings"]["voices"].items()}
    plain = synth_mod.build_speakers(0, voices, tuple(summary["settings"]["espeak_variants"]))
    extra = synth_mod.pitch_variants(0, plain, summary["held_out_voices"])
    assert pitched["speakers"] == len(plain) + len(extra) > len(plain)
    allowed = {s.id for s in plain + extra if summary["held_out_voices"].get(s.engine) != s.voice}
    assert {r["speaker"] for r in read_manifest(copy / "train.jsonl")} <= allowed


def test_pitch_variants_inventory():
    """Per seen flite/festival voice that honours a target f0: PITCH_VARIANTS speakers, their pitch in range;
    the held-out voice and voices without an f0 target (flite rms, festival HTS) get none; deterministic per seed."""
    voices = {"espeak": ("en-us",), "flite": ("kal16", "awb", "rms", "slt"),
              "festival": ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")}
    plain = synth_mod.build_speakers(3, voices, ("f1", "m1"))
    held = {"flite": "awb", "festival": "ked_diphone"}
    extra = synth_mod.pitch_variants(3, plain, held)
    per_voice = {}
    for spk in extra:
        per_voice[(spk.engine, spk.voice)] = per_voice.get((spk.engine, spk.voice), 0) + 1
        low, high = synth_mod.VARIANT_F0_HZ[spk.sex]
        assert low <= spk.pitch <= high, spk
        assert spk.sex == voice_sex(spk.engine, spk.voice, "")
    assert per_voice == {("flite", "kal16"): 3, ("flite", "slt"): 3, ("festival", "kal_diphone"): 2}
    assert extra == synth_mod.pitch_variants(3, plain, held)
    assert extra != synth_mod.pitch_variants(4, plain, held)
    assert not {s.id for s in extra} & {s.id for s in plain}


def test_other_seed_differs(corpus, tmp_path):
    _, _, manifests = corpus
    synthesize_corpus(tmp_path, hours=0.003, seed=1, workers=2, progress=False)
    other = read_manifest(tmp_path / "test.jsonl")
    assert [r["text"] for r in other] != [r["text"] for r in manifests["test"]]


def test_failing_engine_is_skipped(tmp_path):
    sent = Sentence("Hello there my friend.", "hello there my friend", "test")
    job = Job("x-0", "train", sent, Speaker("espeak", "xx-no-such-voice", "", 100, 50, "male"), True, 0.5, 0.1, str(tmp_path))
    res = synth_job(job)
    assert res["skip"] == "failed" and "xx-no-such-voice" in res["message"] and "Hello there" in res["message"]
    assert not list(tmp_path.rglob("*.flac"))


def test_postprocess_trims_resamples_and_normalises():
    sr = 22050
    tone = 0.1 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr).astype(np.float32)
    audio = np.concatenate([np.zeros(sr, np.float32), tone, np.zeros(sr, np.float32)])
    out = postprocess(audio, sr, peak=0.7, margin_s=0.1)
    assert out.dtype == np.float32
    assert len(out) / 16000 == pytest.approx(1.2, abs=0.03)
    assert np.max(np.abs(out)) == pytest.approx(0.7, abs=1e-4)


def test_sentence_helpers():
    assert split_sentences("One two three. Four five six! Seven?") == ["One two three.", "Four five six!", "Seven?"]
    assert speakable("He went home, and slept.")
    for bad in ("He paid 5 dollars.", "Dr. Smith went home.", "Ask J. Smith now.", "The IBM machine.", "A & B."):
        assert not speakable(bad), bad


def test_load_sentences_deterministic_and_prefix():
    a = load_sentence_records(seed=3, limit=300)
    assert a == load_sentence_records(seed=3, limit=300)
    assert load_sentence_records(seed=3, limit=100) == a[:100]
    assert a != load_sentence_records(seed=4, limit=300)
    assert len({s.text for s in a}) == len(a)
    assert all(4 <= len(s.text.split()) <= 20 and not out_of_vocabulary(s.text) for s in a)
    assert load_sentences(seed=3, limit=50) == [s.text for s in a[:50]]


def test_missing_source_named(monkeypatch, tmp_path):
    monkeypatch.setattr(sentences_mod, "FORTUNE_DIR", tmp_path / "nope")
    sentences_mod._candidates.cache_clear()  # cached per process; the patched folder is not in the key
    with pytest.raises(SentenceSourceError, match="fortunes"):
        load_sentence_records(sources=("fortunes",), limit=10)
    with pytest.warns(UserWarning, match="fortunes"):
        sents = load_sentence_records(sources=("fortunes", "wordnet"), limit=10)
    assert {s.source for s in sents} == {"wordnet"}
    sentences_mod._candidates.cache_clear()
