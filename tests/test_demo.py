"""The `make demo` pipeline end to end on the tiny preset and corpus."""

from __future__ import annotations

import json

import pytest

from audio_lottery.data.manifest import read_manifest
from audio_lottery.data import corpora
from audio_lottery.demo import branch_levels, ensure_real_speech, main

from conftest import TINY_CONFIG


@pytest.mark.slow
def test_demo_pipeline_on_the_tiny_preset(tiny_corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("audio_lottery.demo.git_commit", lambda: "commit-at-start")  # then HEAD moves on:
    monkeypatch.setattr("audio_lottery.provenance.git_commit", lambda: "commit-at-the-end")
    real = tmp_path / "real.jsonl"  # a stand-in real-speech test: raw_text scored through Whisper's normaliser
    rows = [{**r, "audio": str(tiny_corpus / r["audio"]), "raw_text": r["text"].capitalize() + "."}
            for r in read_manifest(tiny_corpus / "test.jsonl")[:4]]
    real.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["--data", str(tiny_corpus), "--runs", str(tmp_path), "--config", str(TINY_CONFIG),
                 "--branch-every", "1", "--set", f"data.real_test_manifest={real}"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / out.strip().splitlines()[-1].split("/")[-1]
    assert "reference" in out and "dense" in out and f"real speech ({real}):" in out
    md = (run_dir / "report.md").read_text()
    assert "random-reinit" in md and "random-prune" in md and "## Real-speech test" in md
    for png in ("wer.png", "density.png", "training.png"):
        assert (run_dir / "plots" / png).is_file()
    timings = json.loads((run_dir / "demo_timings.json").read_text())
    phases = timings["phases_s"]
    assert timings["corpus_present"] is True and phases["corpus"] is None and timings["levels_done_at_start"] == 0
    assert phases["real_speech"] is None  # data.real_test_manifest was given: nothing prepared
    assert timings["skipped"] == {"corpus": "present", "real_speech": "given by data.real_test_manifest"}
    assert 0 < phases["search"] and 0 < phases["branches"] and phases["search"] + phases["branches"] <= phases["total"]
    assert timings["run"] == run_dir.name and timings["conditions"]["machine"] and timings["branch_jobs"] == 2
    assert timings["conditions"]["commit"] == "commit-at-start"  # the code that ran, not HEAD when it ended


def test_branch_levels_cover_every_nth_level_and_the_extreme_ticket_or_the_last_level():
    assert branch_levels(5, 1, {"extreme": {"level": 4}, "best": {"level": 2}}) == [1, 2, 3, 4, 5]
    assert branch_levels(10, 4, {"extreme": {"level": 7}, "best": {"level": 0}}) == [4, 7, 8]
    assert branch_levels(10, 3, {"extreme": None, "best": None}) == [3, 6, 9, 10]
    assert branch_levels(10, 0, {"extreme": {"level": 7}, "best": {"level": 4}}) == [7]  # make demo's default
    assert branch_levels(10, 0, {"extreme": {"level": 10}, "best": {"level": 4}}) == [10]
    assert branch_levels(10, 0, {"extreme": None, "best": None}) == [10]  # nothing matches: the sparsest level
    with pytest.raises(ValueError, match="branch-every"):
        branch_levels(10, -1, {})


def test_the_real_speech_test_is_prepared_beside_the_corpus_unless_present(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_prepare(name, root, out, progress=True):
        calls.append((name, root, out))
        (out / "test.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (out / "test.jsonl").write_text("")
        return {"test": {"written": 0}}

    monkeypatch.setattr(corpora, "prepare_corpus", fake_prepare)
    seconds, why = ensure_real_speech(tmp_path / "synth")
    assert seconds is not None and why is None and calls == [("asterisk", None, tmp_path.resolve() / "asterisk")]
    assert ensure_real_speech(tmp_path / "synth") == (None, "present") and len(calls) == 1  # not prepared again
    assert "(present)" in capsys.readouterr().out


def test_the_demo_goes_on_without_the_real_speech_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(corpora.DEFAULT_ROOTS, "asterisk", tmp_path / "no_packages")
    (tmp_path / "no_packages").mkdir()
    seconds, why = ensure_real_speech(tmp_path / "synth")
    assert seconds is None and why.startswith("not prepared: ") and "asterisk-core-sounds-en" in why
    out = capsys.readouterr().out
    assert "real-speech test: not prepared" in out and "asterisk-core-sounds-en" in out
    assert not (tmp_path / "asterisk" / "test.jsonl").exists()


def test_a_bad_override_stops_the_demo_before_the_corpus_is_synthesised(tmp_path, monkeypatch, capsys):
    import audio_lottery.demo as demo

    monkeypatch.setattr(demo, "ensure_corpus", lambda *a: pytest.fail("the corpus was synthesised first"))
    assert main(["--data", str(tmp_path / "synth"), "--runs", str(tmp_path), "--config", str(TINY_CONFIG),
                 "--set", "seed=1"]) == 2
    err = capsys.readouterr().err
    assert "demo: error: " in err and "unknown key 'seed'" in err and "--set seed=1" in err
    assert not (tmp_path / "synth").exists()
