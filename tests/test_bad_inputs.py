"""Bad-input fuzzing: every broken corpus, manifest or dev set is skipped-and-counted or refused
before training, with a message naming the file (and manifest line); nothing crashes mid-level.
Untrusted folders (tokenizers, export bundles, --decode-params, audio to transcribe) are refused
before anything is read from outside them or allocated from their numbers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_lottery.config import load_config
from audio_lottery.data.audio import audio_problem
from audio_lottery.data.pipeline.dataset import SpeechDataset
from audio_lottery.data.pipeline.features import FeatureExtractor
from audio_lottery.data.manifest import read_manifest
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.files import read_json
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.pruning import Mask, global_magnitude
from audio_lottery.recognizer import Recognizer
from audio_lottery.testing.badcorpus import observe, observe_loads, write_bad_corpus, write_bad_folders

from conftest import TINY_CONFIG, run_cli, tiny_overrides


@pytest.fixture(scope="module")
def bad(tiny_corpus, tmp_path_factory):
    return write_bad_corpus(tmp_path_factory.mktemp("bad"), read_manifest(tiny_corpus / "train.jsonl")[:6])


def _cfg(tiny_corpus, *extra):
    return load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.threads=1", *extra))


def test_every_bad_input_is_handled(bad, tiny_corpus, tmp_path):
    observations = observe(bad, _cfg(tiny_corpus), tmp_path)
    failures = [(o.case.name, o.case.outcome, o.outcome, o.message[:300]) for o in observations if not o.handled]
    assert not failures
    assert Counter(o.outcome for o in observations) == {"skip": 20, "ok": 8, "refuse": 13, "refuse-eval": 4}


def _check(capsys, *args: str) -> tuple[int, str]:
    from audio_lottery.cli import main

    rc = main(["-q", "data", "check", *args])
    return rc, capsys.readouterr().out


def test_data_check_cli(bad, capsys):
    rc, out = _check(capsys, "--manifest", str(bad.train), "--config", str(TINY_CONFIG))
    assert rc == 0
    assert "usable: 14 of 34 utterances" in out and out.rstrip().endswith("verdict: OK")
    assert "skipped: non-finite samples: 2" in out and "line 13 (nan):" in out and "nan.wav" in out
    assert "resampled from 8000 Hz" in out
    refused = next(c for c in bad.cases if c.name == "duplicate utterance ids")
    rc, out = _check(capsys, "--manifest", str(refused.manifest), "--json")
    report = json.loads(out)
    assert rc == 1 and not report["ok"]
    assert report["refused"][0].startswith(f"{refused.manifest}:3: duplicate utterance id")
    dev = next(c for c in bad.cases if c.name == "dev utterance with NaN audio")
    rc, out = _check(capsys, "--manifest", str(dev.manifest), "--role", "eval")
    assert rc == 1 and "would refuse evaluation: non-finite samples: 1" in out and "line 3 (dev_nan)" in out


def test_a_lottery_level_on_the_bad_corpus_skips_counts_and_finishes(bad, tiny_corpus, tmp_path):
    cfg = _cfg(tiny_corpus, f"data.train_manifest={bad.train}", "train.epochs=1")
    cfg.lottery.levels = 1
    run = run_lottery(cfg, tmp_path, progress=False)
    expected = Counter(c.expect for c in bad.by_outcome("skip"))
    for level in (0, 1):
        train = run / f"level_{level}" / "train"
        report = read_json(train / "data_report.json")
        assert report["skipped_by_reason"] == dict(expected) and report["kept"] == 14
        assert {p["line"] for p in report["problems"]} == {c.line for c in bad.by_outcome("skip")}
        start = json.loads((train / "metrics.jsonl").read_text().splitlines()[0])
        assert start["event"] == "start" and start["filtered"] == dict(expected)
        assert read_json(train / "result.json")["kept"] == 14
        assert (run / f"level_{level}" / "result.json").is_file()


def test_bad_test_manifest_is_refused_before_any_training(bad, tiny_corpus, tmp_path):
    case = next(c for c in bad.cases if c.name == "dev utterance with a missing audio file")
    cfg = _cfg(tiny_corpus, f"data.test_manifest={case.manifest}")
    with pytest.raises(ValueError, match=rf"{case.manifest}:3 \(dev_missing\): missing audio file"):
        run_lottery(cfg, tmp_path, progress=False)
    assert not list(tmp_path.glob("lottery_*")), "nothing may be created before the data is accepted"


def test_read_ahead_caches_the_good_files_and_leaves_each_error_to_the_check(tmp_path, monkeypatch):
    from audio_lottery.data import audio as audio_module

    recs = []
    for i in range(6):
        path = tmp_path / f"u{i}.flac"
        sf.write(path, 0.1 * np.sin(np.arange(4000 + 800 * i, dtype=np.float32)), 16000)
        recs.append({"id": f"u{i}", "audio": str(path), "duration": (4000 + 800 * i) / 16000, "text": "a"})
    (tmp_path / "bad.flac").write_bytes(b"not audio")
    recs += [{"id": "bad", "audio": str(tmp_path / "bad.flac"), "duration": 0.5, "text": "a"},
             {"id": "gone", "audio": str(tmp_path / "gone.flac"), "duration": 0.5, "text": "a"}]
    audio_module.inspect_many(recs, threads=4)
    real_open = audio_module.sf.SoundFile
    opened = []
    monkeypatch.setattr(audio_module.sf, "SoundFile", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    problems = {r["id"]: audio_problem(r)[0] for r in recs}
    assert opened == [str(tmp_path / "bad.flac")]  # the good files were read ahead; the error is raised again
    assert all(problems[f"u{i}"] is None for i in range(6))
    assert problems["bad"][0] == "unreadable audio" and "bad.flac" in problems["bad"][1]
    assert problems["gone"][0] == "missing audio file" and "gone.flac" in problems["gone"][1]


def test_audio_broken_after_validation_is_skipped_when_loaded(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, 0.1 * np.sin(np.arange(8000, dtype=np.float32)), 16000, subtype="FLOAT")
    rec = {"id": "a", "audio": str(path), "duration": 0.5, "text": "a", "offset": 0.0}
    assert audio_problem(rec)[0] is None
    wave = sf.read(path, dtype="float32")[0]
    wave[5] = np.nan
    sf.write(path, wave, 16000, subtype="FLOAT")  # changed on disk: the cached check is not reused
    assert audio_problem(rec)[0][0] == "non-finite samples"
    ds = SpeechDataset([rec], FeatureExtractor(), CharTokenizer(), 16000)
    assert ds[0] is None  # the loader skips it (and logs the file) instead of crashing the epoch
    assert torch.isfinite(FeatureExtractor()(torch.zeros(1600))).all()


# --------------------------------------------------------------------------- untrusted folders


@pytest.fixture(scope="module")
def ticket_rec():
    """A small DS2 recogniser and a 10.7 %-density ticket of it (compact export uses sparse encodings)."""
    torch.manual_seed(0)
    rec = Recognizer.build(load_config(TINY_CONFIG, ["model.ds2.rnn_hidden=48"]), CharTokenizer())
    params = {n: p.detach() for n, p in rec.model.named_parameters()}
    mask = Mask.from_patterns(rec.model)
    for _ in range(10):
        mask = global_magnitude(params, mask, 0.2)
    mask.apply_(rec.model)
    return rec, mask


def test_every_untrusted_folder_is_handled(ticket_rec, tiny_corpus, tmp_path):
    texts = [r["text"] for r in read_manifest(tiny_corpus / "train.jsonl")]
    cases = write_bad_folders(tmp_path, *ticket_rec, texts)
    observations = observe_loads(cases)
    failures = [(o.case.name, o.case.outcome, o.outcome, o.message[:300]) for o in observations if not o.handled]
    assert not failures
    assert Counter((o.case.kind, o.outcome) for o in observations) == {
        ("tokenizer", "refuse"): 6, ("tokenizer", "ok"): 2, ("export", "refuse"): 4, ("export", "ok"): 1,
        ("model", "refuse"): 1,
        ("decode-params", "refuse"): 5, ("decode-params", "ok"): 1, ("audio", "refuse"): 3}


def test_transcribe_names_unreadable_files_and_goes_on(ticket_rec, tiny_corpus, tmp_path, capsys):
    rec, _ = ticket_rec
    model = rec.save(tmp_path / "model")
    good = read_manifest(tiny_corpus / "test.jsonl")[0]["audio"]
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).bytes(20000))
    missing = tmp_path / "missing.wav"
    rc, out, err = run_cli(capsys, "transcribe", "--model", str(model), good, str(noise), str(missing), good)
    assert rc == 1
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [good, good] and lines[0] == lines[1]
    assert f"{noise}: unreadable audio" in err and f"no such file: {missing}" in err
    assert "System error" not in err and f"2 of 4 files not transcribed: {noise}, {missing}" in err
    rc, out, err = run_cli(capsys, "transcribe", "--model", str(model), good)
    assert rc == 0 and out.startswith(f"{good}\t") and not err
